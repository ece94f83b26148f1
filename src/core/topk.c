/*
 * topk.c — the k best entries of a score array, without sorting it.
 *
 * A size-k binary min-heap of indices kept in the caller's idx array: its
 * root is the worst entry kept.  Once the heap is full, the scan is one
 * compare per entry against the root's score (the threshold), so for
 * n = 200,000 and k = 10 almost every entry costs a load and a compare.
 * "Worse" is a lower score, or an equal score at a larger index; since
 * entries are scanned in index order, a later entry that only ties the
 * threshold never enters, and the strict `>` also rejects NaN and -inf.
 * A final in-place heapsort puts the kept entries best first.
 */
#include "core/topk.h"

#include <math.h>
#include <stdbool.h>

/* Whether entry a ranks below entry b. */
static inline bool worse(const float *s, uint32_t a, uint32_t b)
{
    return s[a] < s[b] || (s[a] == s[b] && a > b);
}

static void sift_up(const float *s, uint32_t *h, size_t i)
{
    uint32_t x = h[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!worse(s, x, h[parent]))
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = x;
}

static void sift_down(const float *s, uint32_t *h, size_t m, size_t i)
{
    uint32_t x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m)
            break;
        if (c + 1 < m && worse(s, h[c + 1], h[c]))
            c++;
        if (!worse(s, h[c], x))
            break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

void ember_topk(const float *scores, size_t n, size_t k, uint32_t *idx, float *val,
                size_t *n_out)
{
    size_t m = 0, i = 0;
    if (k == 0) {
        *n_out = 0;
        return;
    }
    /* fill the heap with the first k entries that count */
    for (; i < n && m < k; i++) {
        float v = scores[i];
        if (isnan(v) || v == -INFINITY)
            continue;
        idx[m] = (uint32_t)i;
        sift_up(scores, idx, m);
        m++;
    }
    if (m == k) {
        float thr = scores[idx[0]];
        for (; i < n; i++) {
            if (scores[i] > thr) {
                idx[0] = (uint32_t)i;
                sift_down(scores, idx, k, 0);
                thr = scores[idx[0]];
            }
        }
    }
    /* heapsort: move the worst to the end until the array is best first */
    for (size_t end = m; end > 1; end--) {
        uint32_t t = idx[0];
        idx[0] = idx[end - 1];
        idx[end - 1] = t;
        sift_down(scores, idx, end - 1, 0);
    }
    if (val)
        for (size_t j = 0; j < m; j++)
            val[j] = scores[idx[j]];
    *n_out = m;
}
