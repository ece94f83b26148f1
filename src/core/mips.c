/*
 * mips.c — batched exact top-k by inner product (mips.h).
 *
 * The work is an (n x dim) by (dim x n_items) matrix product, 2.56 TFLOP
 * for 100,000 users x 200,000 items at dim 64, and a selection over its
 * n x n_items results.  Written as sgemm then a scan, the scores would go
 * to memory and back (160 GB at that size); here each 6 x 16 tile of
 * scores is made in registers by the kernel (kernels.h mips_tile), which
 * also compares it with each query's current k-th best and says which
 * entries may enter, so the scan costs almost nothing and no score is
 * stored beyond the tile.
 *
 * Blocking: the packed item table is walked in chunks that fit the L2
 * cache (~192 KB); within a chunk, every group of 6 queries of the
 * thread's block goes over the chunk's panels, its 6 query vectors in
 * L1.  A block is 1,536 queries, so the item table streams from memory
 * once per 1,536 queries.  Threads take blocks (OpenMP, dynamic).
 *
 * Pruning, exact: items are packed by decreasing norm; a panel whose
 * bound |x| max|q| + max bias is below a query's k-th best cannot change
 * that query's list, and when the bound of everything from a panel on
 * is below it for all 6 queries of a group, the group is finished.  The
 * bound is widened by a relative 1e-5 for the rounding of a float dot
 * product.  How much this saves depends on the data: nothing when all
 * items have the same norm, most of the work when a few items dominate.
 *
 * Each query keeps a heap of its k best (worst at the root: lowest score,
 * then largest item), so ties resolve by smaller item index whatever the
 * packed order.  Left-out items are looked up (binary search) only for
 * entries that would enter the heap.
 */
#include "core/mips.h"

#include "core/core.h"
#include "core/kernels.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define TR EMBER_TILE_ROWS
#define TC EMBER_TILE_COLS
#define BLOCK_GROUPS 256     /* queries per block: 256 x 6 */
#define CHUNK_BYTES (192 << 10)
#define BOUND_SLACK 1.00001f /* rounding of a float dot product */

void mips_free(mips_index *ix)
{
    free(ix->panels);
    free(ix->bias);
    free(ix->item);
    free(ix->pnorm);
    free(ix->pbias);
    free(ix->snorm);
    free(ix->sbias);
    memset(ix, 0, sizeof *ix);
}

typedef struct {
    float norm;
    uint32_t item;
} norm_item;

static int by_norm_desc(const void *a, const void *b)
{
    const norm_item *x = a, *y = b;
    if (x->norm != y->norm)
        return x->norm > y->norm ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

int mips_build(mips_index *ix, const float *Q, size_t ld, const float *bias, size_t n_items,
               size_t dim)
{
    memset(ix, 0, sizeof *ix);
    if (dim == 0 || ld < dim || n_items > UINT32_MAX - TC)
        return ember_fail(EMBER_EINVAL, "mips: %zu items of dim %zu", n_items, dim);
    size_t np = (n_items + TC - 1) / TC;
    ix->n_items = n_items;
    ix->dim = dim;
    ix->n_panels = np;
    size_t cells = EMBER_MAX(np, 1) * TC;
    norm_item *order = ember_alloc(EMBER_MAX(n_items, 1), sizeof *order);
    ix->panels = ember_alloc_aligned(cells * dim, sizeof(float));
    ix->bias = ember_alloc(cells, sizeof(float));
    ix->item = ember_alloc(cells, sizeof(uint32_t));
    ix->pnorm = ember_alloc(EMBER_MAX(np, 1), sizeof(float));
    ix->pbias = ember_alloc(EMBER_MAX(np, 1), sizeof(float));
    ix->snorm = ember_alloc(EMBER_MAX(np, 1), sizeof(float));
    ix->sbias = ember_alloc(EMBER_MAX(np, 1), sizeof(float));
    if (!order || !ix->panels || !ix->bias || !ix->item || !ix->pnorm || !ix->pbias ||
        !ix->snorm || !ix->sbias) {
        free(order);
        mips_free(ix);
        return EMBER_ENOMEM;
    }
    for (size_t i = 0; i < n_items; i++) {
        const float *q = Q + i * ld;
        double s = 0;
        for (size_t k = 0; k < dim; k++)
            s += (double)q[k] * q[k];
        if (!isfinite(s) || (bias && !isfinite(bias[i]))) {
            free(order);
            mips_free(ix);
            return ember_fail(EMBER_EINVAL, "mips: item %zu has a non-finite value", i);
        }
        order[i] = (norm_item){(float)sqrt(s), (uint32_t)i};
    }
    qsort(order, n_items, sizeof *order, by_norm_desc);
    memset(ix->panels, 0, cells * dim * sizeof(float));
    for (size_t c = 0; c < cells; c++) {
        size_t p = c / TC, j = c % TC;
        if (c < n_items) {
            uint32_t it = order[c].item;
            const float *q = Q + (size_t)it * ld;
            for (size_t k = 0; k < dim; k++)
                ix->panels[(p * dim + k) * TC + j] = q[k];
            ix->bias[c] = bias ? bias[it] : 0.0f;
            ix->item[c] = it;
        } else {
            ix->bias[c] = -INFINITY;
            ix->item[c] = UINT32_MAX;
        }
    }
    for (size_t p = 0; p < np; p++) {
        float mn = 0.0f, mb = -INFINITY;
        for (size_t j = 0; j < TC; j++) {
            size_t c = p * TC + j;
            if (c >= n_items)
                break;
            mn = EMBER_MAX(mn, order[c].norm);
            mb = EMBER_MAX(mb, ix->bias[c]);
        }
        ix->pnorm[p] = mn;
        ix->pbias[p] = mb;
    }
    for (size_t p = np; p-- > 0;) {
        ix->snorm[p] = p + 1 < np ? EMBER_MAX(ix->pnorm[p], ix->snorm[p + 1]) : ix->pnorm[p];
        ix->sbias[p] = p + 1 < np ? EMBER_MAX(ix->pbias[p], ix->sbias[p + 1]) : ix->pbias[p];
    }
    free(order);
    return EMBER_OK;
}

/* ------------------------------------------------------------ heaps */

/* a is worse than b: lower score, or the same score and a larger item */
static inline bool worse(float sa, uint32_t ia, float sb, uint32_t ib)
{
    return sa < sb || (sa == sb && ia > ib);
}

typedef struct {
    float *s;
    uint32_t *i;
    size_t n, k;
} heap;

static void heap_sift_down(heap *h, size_t at)
{
    for (;;) {
        size_t l = 2 * at + 1, r = l + 1, m = at;
        if (l < h->n && worse(h->s[l], h->i[l], h->s[m], h->i[m]))
            m = l;
        if (r < h->n && worse(h->s[r], h->i[r], h->s[m], h->i[m]))
            m = r;
        if (m == at)
            return;
        float ts = h->s[m];
        uint32_t ti = h->i[m];
        h->s[m] = h->s[at], h->i[m] = h->i[at];
        h->s[at] = ts, h->i[at] = ti;
        at = m;
    }
}

/* Offers (s, it); returns the new threshold (the root's score when full,
 * else -inf). */
static float heap_offer(heap *h, float s, uint32_t it)
{
    if (h->n < h->k) {
        size_t at = h->n++;
        h->s[at] = s, h->i[at] = it;
        while (at > 0) {
            size_t up = (at - 1) / 2;
            if (!worse(h->s[at], h->i[at], h->s[up], h->i[up]))
                break;
            float ts = h->s[up];
            uint32_t ti = h->i[up];
            h->s[up] = h->s[at], h->i[up] = h->i[at];
            h->s[at] = ts, h->i[at] = ti;
            at = up;
        }
    } else if (worse(h->s[0], h->i[0], s, it)) {
        h->s[0] = s, h->i[0] = it;
        heap_sift_down(h, 0);
    }
    return h->n < h->k ? -INFINITY : h->s[0];
}

/* ----------------------------------------------------------- search */

typedef struct {
    const mips_index *ix;
    const float *X;
    size_t ld, n, k;
    const mips_opts *o;
    const ember_kernel_table *K;
    const float *zero; /* dim zeros: the rows of a short last group */
} search;

/* One block of queries q0 .. q0 + nq into the heaps h[0..nq). */
static void search_block(const search *S, size_t q0, size_t nq, heap *h, float *thr,
                         float *xnorm, bool *done)
{
    const mips_index *ix = S->ix;
    size_t dim = ix->dim, ng = (nq + TR - 1) / TR;
    for (size_t q = 0; q < ng * TR; q++) {
        if (q < nq) {
            const float *x = S->X + (q0 + q) * S->ld;
            double s = 0;
            for (size_t k = 0; k < dim; k++)
                s += (double)x[k] * x[k];
            xnorm[q] = (float)sqrt(s) * BOUND_SLACK;
            thr[q] = -INFINITY;
        } else {
            xnorm[q] = 0.0f;
            thr[q] = INFINITY; /* a padding row never takes anything */
        }
    }
    memset(done, 0, ng * sizeof *done);
    size_t chunk = EMBER_MAX(1, CHUNK_BYTES / (dim * TC * sizeof(float)));
    float out[TR * TC];
    uint32_t mask[TR];
    for (size_t p0 = 0; p0 < ix->n_panels; p0 += chunk) {
        size_t p1 = EMBER_MIN(ix->n_panels, p0 + chunk);
        for (size_t g = 0; g < ng; g++) {
            if (done[g])
                continue;
            const float *x[TR];
            const float *xn = xnorm + g * TR;
            float *th = thr + g * TR;
            for (size_t r = 0; r < TR; r++) {
                size_t q = g * TR + r;
                x[r] = q < nq ? S->X + (q0 + q) * S->ld : S->zero;
            }
            for (size_t p = p0; p < p1; p++) {
                /* can anything from panel p on enter a list of the group? */
                bool later = false, here = false;
                for (size_t r = 0; r < TR; r++) {
                    later |= xn[r] * ix->snorm[p] + ix->sbias[p] >= th[r];
                    here |= xn[r] * ix->pnorm[p] + ix->pbias[p] >= th[r];
                }
                if (!later && !S->o->exhaustive) {
                    done[g] = true;
                    break;
                }
                if (!here && !S->o->exhaustive)
                    continue;
                if (!S->K->mips_tile(x, ix->panels + p * dim * TC, ix->bias + p * TC, dim, th,
                                     out, mask))
                    continue;
                for (size_t r = 0; r < TR; r++) {
                    uint32_t mk = mask[r];
                    size_t q = g * TR + r;
                    while (mk) {
                        unsigned j = (unsigned)__builtin_ctz(mk);
                        mk &= mk - 1;
                        float s = out[r * TC + j];
                        uint32_t it = ix->item[p * TC + j];
                        if (!(s > -INFINITY) || it == UINT32_MAX)
                            continue;
                        if (S->o->excl) {
                            uint64_t a = S->o->excl_ptr[q0 + q], b = S->o->excl_ptr[q0 + q + 1];
                            if (ember_sorted_has_u32(S->o->excl + a, (size_t)(b - a), it))
                                continue;
                        }
                        th[r] = heap_offer(&h[q], s, it);
                    }
                }
            }
        }
    }
}

/* The heap's entries best first into idx/val. */
static size_t heap_drain(heap *h, uint32_t *idx, float *val)
{
    size_t n = h->n;
    /* heap sort: repeatedly move the worst to the end */
    while (h->n > 0) {
        size_t last = --h->n;
        float ts = h->s[0];
        uint32_t ti = h->i[0];
        h->s[0] = h->s[last], h->i[0] = h->i[last];
        h->s[last] = ts, h->i[last] = ti;
        heap_sift_down(h, 0);
    }
    /* the worst went to the last slot first, so the array is best first */
    for (size_t j = 0; j < n; j++) {
        idx[j] = h->i[j];
        if (val)
            val[j] = h->s[j];
    }
    return n;
}

int mips_topk(const mips_index *ix, const float *X, size_t ld, size_t n, const mips_opts *o,
              uint32_t *idx, float *val, uint32_t *count)
{
    size_t k = o->k, dim = ix->dim;
    if (ld < dim)
        return ember_fail(EMBER_EINVAL, "mips: query stride %zu < dim %zu", ld, dim);
    if (n == 0)
        return EMBER_OK;
    if (k == 0) {
        memset(count, 0, n * sizeof *count);
        return EMBER_OK;
    }
    float *zero = ember_calloc(dim, sizeof *zero);
    if (!zero)
        return EMBER_ENOMEM;
    search S = {.ix = ix, .X = X, .ld = ld, .n = n, .k = k, .o = o, .K = ember_kernels(),
                .zero = zero};
    /* a block of queries per thread at a time (fewer for a small n: one
     * query, as a server asks, allocates for one group) */
    size_t block = EMBER_MIN((size_t)BLOCK_GROUPS * TR, (n + TR - 1) / TR * TR);
    size_t n_blocks = (n + block - 1) / block;
    int threads = o->threads > 0 ? o->threads : omp_get_max_threads();
    int failed = 0;
#pragma omp parallel num_threads(threads) if (threads > 1 && n_blocks > 1)
    {
        float *hs = ember_alloc(block * k, sizeof *hs);
        uint32_t *hi = ember_alloc(block * k, sizeof *hi);
        heap *h = ember_alloc(block, sizeof *h);
        float *thr = ember_alloc(block, sizeof *thr);
        float *xn = ember_alloc(block, sizeof *xn);
        bool *done = ember_alloc(BLOCK_GROUPS, sizeof *done);
        if (!hs || !hi || !h || !thr || !xn || !done) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (size_t b = 0; b < n_blocks; b++) {
            if (!hs || !hi || !h || !thr || !xn || !done)
                continue;
            size_t q0 = b * block, nq = EMBER_MIN(block, n - q0);
            for (size_t q = 0; q < nq; q++)
                h[q] = (heap){.s = hs + q * k, .i = hi + q * k, .n = 0, .k = k};
            search_block(&S, q0, nq, h, thr, xn, done);
            for (size_t q = 0; q < nq; q++)
                count[q0 + q] = (uint32_t)heap_drain(&h[q], idx + (q0 + q) * k,
                                                     val ? val + (q0 + q) * k : NULL);
        }
        free(hs);
        free(hi);
        free(h);
        free(thr);
        free(xn);
        free(done);
    }
    free(zero);
    return failed ? EMBER_ENOMEM : EMBER_OK;
}
