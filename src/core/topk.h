/* topk.h — the k best of a score array (recommendation lists, neighbours). */
#ifndef EMBER_TOPK_H
#define EMBER_TOPK_H

#include <stddef.h>
#include <stdint.h>

/* The k largest of scores[0..n), best first; equal scores in order of
 * smaller index first.  Entries that are -INFINITY or NaN are never
 * returned (callers exclude items by setting them so); +INFINITY is a
 * score like any other.  *n_out = min(k, number of other entries), so it
 * may be < k.  idx (required when k > 0) must have room for k entries and
 * is also the working memory, so there is no allocation; val may be NULL,
 * else it receives the *n_out scores.  O(n + m log k) for the m entries
 * that beat the running k-th best.  n must be <= UINT32_MAX. */
void ember_topk(const float *scores, size_t n, size_t k, uint32_t *idx, float *val,
                size_t *n_out);

#endif
