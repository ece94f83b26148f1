/*
 * mips.h — exact top-k by inner product for many queries at once
 * (maximum inner product search): the k items i with the largest
 *   score(x, i) = x . Q[i] + bias[i]
 * for each of n query vectors x, items a query must not get left out.
 * This is "top-10 for every user" of a factor model, done as one blocked
 * matrix product fused with the selection: scores are never written to
 * memory (kernels.h mips_tile), and tiles no query can use are skipped
 * by a norm bound (exact: Cauchy-Schwarz, |x . q| <= |x| |q|).
 */
#ifndef EMBER_MIPS_H
#define EMBER_MIPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The item table packed for the kernel: panels of EMBER_TILE_COLS items
 * (dim x 16 floats, step k of item j at k * 16 + j), items in order of
 * decreasing norm so that the bound of what is left falls as the search
 * goes on.  Built once per table; read-only after, shared by threads. */
typedef struct {
    size_t n_items, dim, n_panels;
    float *panels;     /* n_panels x dim x 16, 64-byte aligned */
    float *bias;       /* n_panels x 16 in packed order; padding -inf */
    uint32_t *item;    /* packed position -> item (padding UINT32_MAX) */
    float *pnorm;      /* per panel: the largest |Q[i]| */
    float *pbias;      /* per panel: the largest bias */
    float *snorm;      /* per panel p: the largest |Q[i]| of panels p.. */
    float *sbias;      /* ... and the largest bias */
} mips_index;

/* Packs Q (n_items rows of dim floats, row stride ld >= dim) and bias
 * (n_items floats, or NULL for none).  Non-finite values are refused
 * (EMBER_EINVAL). */
int mips_build(mips_index *ix, const float *Q, size_t ld, const float *bias, size_t n_items,
               size_t dim);
void mips_free(mips_index *ix);

typedef struct {
    size_t k;
    int threads; /* <= 0: OpenMP's default */
    /* Per query q, items to leave out: excl[excl_ptr[q] .. excl_ptr[q+1])
     * sorted ascending (NULL: none). */
    const uint64_t *excl_ptr;
    const uint32_t *excl;
    /* score every tile (no norm-bound pruning): the same lists, for
     * measuring the kernel itself */
    bool exhaustive;
} mips_opts;

/* For the queries X[0..n) (row-major, stride ld >= dim): the k best items
 * of each, best first, equal scores by smaller item first, into
 * idx[q * k ..] and val[q * k ..] (val may be NULL); count[q] = how many
 * (< k only when fewer items are left).  Scores -inf or NaN are never
 * returned.  Queries must be finite. */
int mips_topk(const mips_index *ix, const float *X, size_t ld, size_t n, const mips_opts *o,
              uint32_t *idx, float *val, uint32_t *count);

#endif
