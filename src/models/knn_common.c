/*
 * knn_common.c — neighbourhood search shared by itemknn and userknn.
 *
 * For each entity a (in parallel), co-occurrence counts with every b are
 * accumulated through the middle layer into a dense per-thread counter,
 * only the touched b's are visited, and the k best by similarity are kept
 * with a small min-heap (ties to the smaller index).  Cost: the sum over
 * middle nodes of degree squared, the usual sparse X^T X.
 */
#include "models/knn.h"

#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline double similarity(const knn_opts *o, double c, double da, double db)
{
    switch (o->sim) {
    case KNN_JACCARD:
        return c / (da + db - c + o->shrink);
    case KNN_ASYMMETRIC:
        return c / (pow(da, o->alpha) * pow(db, 1.0 - o->alpha) + o->shrink);
    default:
        return c / (sqrt(da * db) + o->shrink);
    }
}

/* a better than b: higher sim, then smaller index */
static inline bool better(float sa, uint32_t ia, float sb, uint32_t ib)
{
    return sa > sb || (sa == sb && ia < ib);
}

/* min-heap on "better": the root is the worst kept entry */
static void heap_sift_down(float *s, uint32_t *ix, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && better(s[w], ix[w], s[l], ix[l]))
            w = l;
        if (r < n && better(s[w], ix[w], s[r], ix[r]))
            w = r;
        if (w == i)
            return;
        float ts = s[i];
        s[i] = s[w];
        s[w] = ts;
        uint32_t ti = ix[i];
        ix[i] = ix[w];
        ix[w] = ti;
        i = w;
    }
}

static void heap_sift_up(float *s, uint32_t *ix, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!better(s[p], ix[p], s[i], ix[i]))
            return;
        float ts = s[i];
        s[i] = s[p];
        s[p] = ts;
        uint32_t ti = ix[i];
        ix[i] = ix[p];
        ix[p] = ti;
        i = p;
    }
}

/* Keeps the k best of (s, i) pairs offered one by one. */
typedef struct {
    float *s;
    uint32_t *ix;
    size_t n, k;
} topk_heap;

static void heap_offer(topk_heap *h, float s, uint32_t i)
{
    if (h->n < h->k) {
        h->s[h->n] = s;
        h->ix[h->n] = i;
        heap_sift_up(h->s, h->ix, h->n++);
    } else if (h->k && better(s, i, h->s[0], h->ix[0])) {
        h->s[0] = s;
        h->ix[0] = i;
        heap_sift_down(h->s, h->ix, h->n, 0);
    }
}

/* Empties the heap into out arrays, best first. */
static size_t heap_drain(topk_heap *h, float *s, uint32_t *ix)
{
    size_t n = h->n;
    for (size_t k = n; k-- > 0;) {
        s[k] = h->s[0];
        ix[k] = h->ix[0];
        h->n--;
        h->s[0] = h->s[h->n];
        h->ix[0] = h->ix[h->n];
        heap_sift_down(h->s, h->ix, h->n, 0);
    }
    return n;
}

void knn_graph_free(knn_graph *g)
{
    free(g->ptr);
    free(g->idx);
    free(g->sim);
    memset(g, 0, sizeof *g);
}

int knn_build(const knn_adj *a_to_mid, const knn_adj *mid_to_b, const knn_adj *b_to_mid,
              bool same_kind, const knn_opts *o, knn_graph *out)
{
    memset(out, 0, sizeof *out);
    size_t na = a_to_mid->n, nb = b_to_mid->n, k = o->k;
    /* fixed k slots per row, compacted after */
    uint32_t *cnt_row = ember_calloc(na ? na : 1, sizeof *cnt_row);
    size_t slots = na * k > 0 ? na * k : 1;
    if (k && na > SIZE_MAX / 8 / k) {
        free(cnt_row);
        return ember_fail(EMBER_ETOOBIG, "neighbour table too large");
    }
    uint32_t *idx = ember_alloc(slots, sizeof *idx);
    float *sim = ember_alloc(slots, sizeof *sim);
    if (!cnt_row || !idx || !sim) {
        free(cnt_row);
        free(idx);
        free(sim);
        return EMBER_ENOMEM;
    }
    int failed = 0;
#pragma omp parallel num_threads(ember_threads(o->threads))
    {
        uint32_t *acc = calloc(nb ? nb : 1, sizeof *acc);
        uint32_t *touched = malloc((nb ? nb : 1) * sizeof *touched);
        float *hs = malloc((k ? k : 1) * sizeof *hs);
        uint32_t *hi = malloc((k ? k : 1) * sizeof *hi);
        if (!acc || !touched || !hs || !hi) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 64)
        for (size_t a = 0; a < na; a++) {
            if (!acc || !touched || !hs || !hi)
                continue;
            size_t nt = 0;
            for (uint64_t p = a_to_mid->ptr[a]; p < a_to_mid->ptr[a + 1]; p++) {
                uint32_t mid = a_to_mid->idx[p];
                for (uint64_t q = mid_to_b->ptr[mid]; q < mid_to_b->ptr[mid + 1]; q++) {
                    uint32_t b = mid_to_b->idx[q];
                    if (acc[b]++ == 0)
                        touched[nt++] = b;
                }
            }
            topk_heap h = {hs, hi, 0, k};
            double da = (double)(a_to_mid->ptr[a + 1] - a_to_mid->ptr[a]);
            for (size_t t = 0; t < nt; t++) {
                uint32_t b = touched[t];
                double c = acc[b];
                acc[b] = 0;
                if (same_kind && b == a)
                    continue;
                double db = (double)(b_to_mid->ptr[b + 1] - b_to_mid->ptr[b]);
                float s = (float)similarity(o, c, da, db);
                if (s > 0 && isfinite(s))
                    heap_offer(&h, s, b);
            }
            cnt_row[a] = (uint32_t)heap_drain(&h, sim + a * k, idx + a * k);
        }
        free(acc);
        free(touched);
        free(hs);
        free(hi);
    }
    if (failed) {
        free(cnt_row);
        free(idx);
        free(sim);
        return ember_fail(EMBER_ENOMEM, "out of memory in neighbour search");
    }
    /* compact in place: rows only move left */
    out->ptr = ember_alloc(na + 1, sizeof *out->ptr);
    if (!out->ptr) {
        free(cnt_row);
        free(idx);
        free(sim);
        return EMBER_ENOMEM;
    }
    uint64_t pos = 0;
    for (size_t a = 0; a < na; a++) {
        out->ptr[a] = pos;
        memmove(idx + pos, idx + a * k, cnt_row[a] * sizeof *idx);
        memmove(sim + pos, sim + a * k, cnt_row[a] * sizeof *sim);
        pos += cnt_row[a];
    }
    out->ptr[na] = pos;
    free(cnt_row);
    out->idx = ember_realloc(idx, pos ? pos : 1, sizeof *idx);
    out->sim = ember_realloc(sim, pos ? pos : 1, sizeof *sim);
    if (!out->idx || !out->sim) {
        free(out->idx ? out->idx : idx);
        free(out->sim ? out->sim : sim);
        free(out->ptr);
        memset(out, 0, sizeof *out);
        return EMBER_ENOMEM;
    }
    return EMBER_OK;
}

void knn_similarity_to_all(const uint32_t *mids, size_t n_mids, const knn_adj *mid_to_b,
                           const knn_adj *b_to_mid, const knn_opts *o, float *out)
{
    size_t nb = b_to_mid->n;
    memset(out, 0, nb * sizeof *out);
    for (size_t p = 0; p < n_mids; p++) {
        uint32_t mid = mids[p];
        for (uint64_t q = mid_to_b->ptr[mid]; q < mid_to_b->ptr[mid + 1]; q++)
            out[mid_to_b->idx[q]] += 1.0f;
    }
    double da = (double)n_mids;
    for (size_t b = 0; b < nb; b++) {
        if (out[b] == 0)
            continue;
        double db = (double)(b_to_mid->ptr[b + 1] - b_to_mid->ptr[b]);
        float s = (float)similarity(o, out[b], da, db);
        out[b] = isfinite(s) ? s : 0;
    }
}

int knn_transpose(const knn_graph *g, size_t n_a, size_t n_b, knn_graph *out)
{
    memset(out, 0, sizeof *out);
    uint64_t nnz = g->ptr[n_a];
    out->ptr = ember_calloc(n_b + 1, sizeof *out->ptr);
    out->idx = ember_alloc(nnz ? nnz : 1, sizeof *out->idx);
    out->sim = ember_alloc(nnz ? nnz : 1, sizeof *out->sim);
    if (!out->ptr || !out->idx || !out->sim) {
        knn_graph_free(out);
        return EMBER_ENOMEM;
    }
    for (uint64_t p = 0; p < nnz; p++)
        out->ptr[g->idx[p] + 1]++;
    for (size_t b = 0; b < n_b; b++)
        out->ptr[b + 1] += out->ptr[b];
    uint64_t *fill = ember_alloc(n_b ? n_b : 1, sizeof *fill);
    if (!fill) {
        knn_graph_free(out);
        return EMBER_ENOMEM;
    }
    memcpy(fill, out->ptr, n_b * sizeof *fill);
    for (size_t a = 0; a < n_a; a++)
        for (uint64_t p = g->ptr[a]; p < g->ptr[a + 1]; p++) {
            uint64_t d = fill[g->idx[p]]++;
            out->idx[d] = (uint32_t)a;
            out->sim[d] = g->sim[p];
        }
    free(fill);
    return EMBER_OK;
}

int knn_validate(const uint64_t *ptr, const uint32_t *idx, const float *sim, size_t n_a,
                 uint64_t nnz, size_t n_b)
{
    if (ptr[0] != 0 || ptr[n_a] != nnz)
        return ember_fail(EMBER_ECORRUPT, "neighbour pointers are inconsistent");
    for (size_t a = 0; a < n_a; a++)
        if (ptr[a + 1] < ptr[a])
            return ember_fail(EMBER_ECORRUPT, "neighbour pointers decrease");
    for (uint64_t p = 0; p < nnz; p++)
        if (idx[p] >= n_b || !isfinite(sim[p]))
            return ember_fail(EMBER_ECORRUPT, "neighbour entry %llu is invalid",
                              (unsigned long long)p);
    return EMBER_OK;
}

int knn_invert(const knn_adj *user_items, size_t n_items, uint64_t **ptr_out, uint32_t **idx_out)
{
    uint64_t nnz = user_items->ptr[user_items->n];
    uint64_t *ptr = ember_calloc(n_items + 1, sizeof *ptr);
    uint32_t *idx = ember_alloc(nnz ? nnz : 1, sizeof *idx);
    uint64_t *fill = ember_alloc(n_items ? n_items : 1, sizeof *fill);
    if (!ptr || !idx || !fill) {
        free(ptr);
        free(idx);
        free(fill);
        return EMBER_ENOMEM;
    }
    for (uint64_t p = 0; p < nnz; p++)
        ptr[user_items->idx[p] + 1]++;
    for (size_t i = 0; i < n_items; i++)
        ptr[i + 1] += ptr[i];
    memcpy(fill, ptr, n_items * sizeof *fill);
    for (size_t u = 0; u < user_items->n; u++)
        for (uint64_t p = user_items->ptr[u]; p < user_items->ptr[u + 1]; p++)
            idx[fill[user_items->idx[p]]++] = (uint32_t)u;
    free(fill);
    *ptr_out = ptr;
    *idx_out = idx;
    return EMBER_OK;
}
