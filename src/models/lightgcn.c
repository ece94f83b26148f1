/*
 * lightgcn.c — LightGCN (He, Deng, Wang, Li, Zhang & Wang 2020,
 * "LightGCN: Simplifying and Powering Graph Convolution Network for
 * Recommendation", SIGIR): user and item embeddings E^(0) smoothed over
 * the user-item graph by K parameter-free propagation layers,
 *
 *   E^(k+1) = D^-1/2 A D^-1/2 E^(k),   F = (E^(0) + ... + E^(K)) / (K + 1)
 *
 * A the symmetric bipartite adjacency of the distinct training pairs, D
 * its degrees; score(u, i) = F_u . F_i.  Trained with BPR (Rendle et al.
 * 2009): every training interaction with `negatives` sampled items the
 * user has not seen (deep_negs) is a triple (u, i, j) each, plus L2 on
 * the batch's layer-0 rows:
 *   loss = mean_b -ln sigmoid(F_u . F_i - F_u . F_j)
 *          + reg / (2B) sum_b (|E0_u|^2 + |E0_i|^2 + |E0_j|^2)
 * (RecBole's EmbLoss with require_pow; its LightGCN default sums
 * unsquared norms at reg 1e-5, which barely acts: here the weight is
 * chosen on valid, see the parameter table).
 *
 * The propagation is not on the autodiff tape.  A step propagates every
 * user and item (as RecBole does), computes the BPR loss and its
 * gradient G = dloss/dF by hand on the batch's rows, and pushes G back
 * through the layers: A being symmetric, dloss/dE^(0) = (1/(K+1)) sum_k
 * Â^k G, evaluated Horner-wise (H = G, then K times H = G + Â H), so the
 * backward is the same gather over the same two CSR halves of Â (user
 * rows over items, item rows over users) as the forward, with no
 * scatter.  A product is one output row per OpenMP iteration, a weighted
 * sum of gathered rows kept in registers (AVX2: 0.56 ms a product on
 * ML-100K at dim 64 on one thread, against 0.62 ms with kernels'
 * add_rows); rows are independent, so the result does not depend on the
 * thread count or the schedule.  The tape then carries the finished
 * gradient to the trainer as the term sum(E0 (*) g) - c, whose value is
 * exactly 0 and whose gradient is g; the shared trainer (deep_train.c)
 * runs Adam, the moving average of the weights, early stopping and the
 * best-epoch snapshot.  Four products a step whatever the batch size
 * make the step count the cost: hence large batches (see the defaults).
 *
 * After fitting (and after a load, from E^(0) and the stored training
 * history) the propagated F of every user and item is cached: scoring a
 * known user is one matrix-vector product (mf_score_all), similar(i) the
 * cosine of propagated item vectors (mf_similar_cosine).
 *
 * A history (a new user, or a known user bringing items) is folded in as
 * the propagation would treat a user with exactly those items: with the
 * history's n distinct items as its neighbours,
 *   e^(k) = sum_i 1/sqrt(n d_i) E_i^(k-1)   (k = 1..K, from the cached item
 *                                          layers, d_i the training degree)
 * (the item layers are the training graph's: the new user does not
 * change them, so a known user's own history gives the known user's
 * layers 1..K).  The layer-0 vector e^(0), which no propagation gives, is
 * fitted: foldin_steps full-batch Adam steps from 0 on the BPR loss of
 * the history items against one uniform negative each per step, items
 * fixed, from an RNG seeded by the history (the same history always
 * scores the same).  F_u = (e^(0) + ... + e^(K)) / (K + 1).  On ML-100K
 * (1 user in 3, valid NDCG@10 with the user's training items as the
 * history, the defaults trained 82 epochs): e^(0) = 0 gives 0.2239
 * against 0.2375 from the trained vectors, the top-10 shared with them
 * 7.19 of 10; 200 steps at lr 0.01 give 0.2319 and 8.85 (100 steps:
 * 0.2295, 300: 0.2290; lr 0.02: 0.2271 at 100 steps; lr 0.005: 0.2285 at
 * 200).  e^(0) = e^(1) without steps did worse than 0 (0.2189 against
 * 0.2222 on a model trained with reg 1e-5).
 *
 * Test hooks (declared in tests/models/test_lightgcn.c, not part of the
 * model interface): lightgcn_propagate() and lightgcn_batch_loss() run
 * the same code on a dataset's graph.
 */
#include "core/kernels.h"
#include "models/deep_train.h"
#include "models/lightgcn.h"
#include "models/mf.h"
#include "nn/params_io.h"

#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t dim;
    int64_t layers;
    double reg;
    int64_t negatives;
    int neg;
    int64_t foldin_steps;
    double foldin_lr;
    DEEP_PARAM_FIELDS;
} lgcn_params;

/* Defaults: RecBole's architecture (embeddings 64, 2 layers,
 * Xavier-uniform initialisation, one uniform negative per positive),
 * trained as chosen on the ML-100K general split's valid set (best valid
 * NDCG@10 under early stopping; mean of 2 to 4 seeds where given).
 * RecBole's training (batches of 2048, lr 0.001, reg 1e-5) gives 0.2306
 * here (lr 0.002: 0.2463 at epoch 101).  A step costs four products with
 * the whole graph whatever the batch, so batches of 8192 (4x fewer steps
 * an epoch): lr 0.005 gives 0.2458 at epoch ~107.  L2 on layer 0 helps:
 * reg 1e-3 0.2497 (3e-4: 0.2479, 3e-3: 0.2411, 1e-2: 0.2155).  A higher
 * rate with the moving average of the weights: lr 0.01 and reg 2e-3
 * 0.2489 (at epoch ~74), with averaging at 0.99 a step 0.2534; lr 0.02,
 * reg 2e-3, averaging 0.995: 0.2542 at epoch ~83, the default (averaging
 * 0.99: 0.2519 at ~58; 0.998: 0.2542 at ~106; lr 0.03: 0.2523 at ~61).
 * 4 negatives per positive did not help (0.2433 against 0.2471 at lr
 * 0.005).  Validation every 2 epochs with patience 5 stops where every
 * epoch with patience 10 (RecBole's) does, at half the validations. */
static const model_param lgcn_param_table[] = {
    {"dim", PARAM_INT, offsetof(lgcn_params, dim), "64", 1, 4096, NULL,
     "embedding size of users and items"},
    {"layers", PARAM_INT, offsetof(lgcn_params, layers), "2", 0, 8, NULL,
     "propagation layers K (0: BPR matrix factorization)"},
    {"reg", PARAM_FLOAT, offsetof(lgcn_params, reg), "2e-3", 0, 10, NULL,
     "L2 weight on the batch's layer-0 embeddings"},
    {"negatives", PARAM_INT, offsetof(lgcn_params, negatives), "1", 1, 1000, NULL,
     "sampled negatives per positive (a BPR triple each)"},
    {"neg", PARAM_CHOICE, offsetof(lgcn_params, neg), "uniform", 0, 0, "uniform|pop",
     "negative sampling: uniform over items, or proportional to popularity"},
    {"foldin_steps", PARAM_INT, offsetof(lgcn_params, foldin_steps), "200", 0, 100000, NULL,
     "fold-in of a history: Adam steps on the user's layer-0 vector (0: leave it 0)"},
    {"foldin_lr", PARAM_FLOAT, offsetof(lgcn_params, foldin_lr), "0.01", 1e-7, 10, NULL,
     "fold-in: Adam learning rate"},
    DEEP_PARAMS(lgcn_params, "300", "8192", "0.02", "1", "0", "0.995", "5", "2"),
};

/* ------------------------------------------------------------- graph */

/* Â = D^-1/2 A D^-1/2 in two CSR halves: user rows (items, weights) and
 * item rows (users, weights), each row ascending, w = 1/sqrt(d_u d_i). */
typedef struct {
    size_t n_users, n_items, nnz;
    uint64_t *u_ptr, *i_ptr;
    uint32_t *u_item, *i_user;
    float *u_w, *i_w;
} lgcn_graph;

static void graph_free(lgcn_graph *gr)
{
    free(gr->u_ptr);
    free(gr->i_ptr);
    free(gr->u_item);
    free(gr->i_user);
    free(gr->u_w);
    free(gr->i_w);
    memset(gr, 0, sizeof *gr);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* The edge weight of a user of degree du and an item of degree di (both
 * >= 1): one formula for the graph and for fold-in, so that the two give
 * the same bits. */
static inline float edge_weight(size_t du, size_t di)
{
    return (float)(1.0 / sqrt((double)du * (double)di));
}

/* The graph of users 0..nu with items item[ptr[u] .. ptr[u+1]) (any
 * order, repeats allowed: a pair counts once). */
static int graph_build(lgcn_graph *gr, size_t nu, size_t ni, const uint64_t *ptr,
                       const uint32_t *item)
{
    memset(gr, 0, sizeof *gr);
    gr->n_users = nu;
    gr->n_items = ni;
    size_t total = (size_t)ptr[nu];
    gr->u_ptr = ember_alloc(nu + 1, sizeof *gr->u_ptr);
    gr->i_ptr = ember_calloc(ni + 1, sizeof *gr->i_ptr);
    gr->u_item = ember_alloc(EMBER_MAX(total, 1), sizeof *gr->u_item);
    if (!gr->u_ptr || !gr->i_ptr || !gr->u_item)
        goto nomem;
    size_t w = 0;
    gr->u_ptr[0] = 0;
    for (size_t u = 0; u < nu; u++) {
        size_t start = w, len = (size_t)(ptr[u + 1] - ptr[u]);
        memcpy(gr->u_item + start, item + ptr[u], len * sizeof *item);
        qsort(gr->u_item + start, len, sizeof *item, cmp_u32);
        for (size_t k = 0; k < len; k++)
            if (w == start || gr->u_item[start + k] != gr->u_item[w - 1])
                gr->u_item[w++] = gr->u_item[start + k];
        gr->u_ptr[u + 1] = w;
    }
    gr->nnz = w;
    gr->i_user = ember_alloc(EMBER_MAX(w, 1), sizeof *gr->i_user);
    gr->u_w = ember_alloc(EMBER_MAX(w, 1), sizeof *gr->u_w);
    gr->i_w = ember_alloc(EMBER_MAX(w, 1), sizeof *gr->i_w);
    uint64_t *fill = ember_alloc(ni + 1, sizeof *fill);
    if (!gr->i_user || !gr->u_w || !gr->i_w || !fill) {
        free(fill);
        goto nomem;
    }
    for (size_t e = 0; e < w; e++)
        gr->i_ptr[gr->u_item[e] + 1]++;
    for (size_t i = 0; i < ni; i++)
        gr->i_ptr[i + 1] += gr->i_ptr[i];
    memcpy(fill, gr->i_ptr, (ni + 1) * sizeof *fill);
    for (size_t u = 0; u < nu; u++) {
        size_t du = (size_t)(gr->u_ptr[u + 1] - gr->u_ptr[u]);
        for (uint64_t e = gr->u_ptr[u]; e < gr->u_ptr[u + 1]; e++) {
            uint32_t i = gr->u_item[e];
            float x = edge_weight(du, (size_t)(gr->i_ptr[i + 1] - gr->i_ptr[i]));
            gr->u_w[e] = x;
            gr->i_user[fill[i]] = (uint32_t)u;
            gr->i_w[fill[i]++] = x;
        }
    }
    free(fill);
    return EMBER_OK;
nomem:
    graph_free(gr);
    return EMBER_ENOMEM;
}

/* One row of a product with Â: y = init + sum_e w[e] x[idx[e]] (init
 * NULL: 0), each column summed in edge order.  The AVX2 version keeps up
 * to 64 columns of y in registers over the whole edge list; it differs
 * from the plain one by the rounding of fused multiply-adds, so fold-in
 * uses the same kernel as the propagation. */
static void row_c(float *restrict y, const float *restrict init, const float *restrict x,
                  size_t d, const uint32_t *idx, const float *w, size_t m)
{
    for (size_t c = 0; c < d; c++)
        y[c] = init ? init[c] : 0.0f;
    for (size_t e = 0; e < m; e++) {
        const float *xr = x + (size_t)idx[e] * d;
        for (size_t c = 0; c < d; c++)
            y[c] += w[e] * xr[c];
    }
}

__attribute__((target("avx2,fma"))) static void row_avx2(float *restrict y,
                                                         const float *restrict init,
                                                         const float *restrict x, size_t d,
                                                         const uint32_t *idx, const float *w,
                                                         size_t m)
{
    size_t c = 0;
    for (; c + 64 <= d; c += 64) {
        __m256 a0, a1, a2, a3, a4, a5, a6, a7;
        if (init) {
            a0 = _mm256_loadu_ps(init + c), a1 = _mm256_loadu_ps(init + c + 8);
            a2 = _mm256_loadu_ps(init + c + 16), a3 = _mm256_loadu_ps(init + c + 24);
            a4 = _mm256_loadu_ps(init + c + 32), a5 = _mm256_loadu_ps(init + c + 40);
            a6 = _mm256_loadu_ps(init + c + 48), a7 = _mm256_loadu_ps(init + c + 56);
        } else {
            a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = _mm256_setzero_ps();
        }
        for (size_t e = 0; e < m; e++) {
            const float *xr = x + (size_t)idx[e] * d + c;
            __m256 we = _mm256_broadcast_ss(w + e);
            a0 = _mm256_fmadd_ps(we, _mm256_loadu_ps(xr), a0);
            a1 = _mm256_fmadd_ps(we, _mm256_loadu_ps(xr + 8), a1);
            a2 = _mm256_fmadd_ps(we, _mm256_loadu_ps(xr + 16), a2);
            a3 = _mm256_fmadd_ps(we, _mm256_loadu_ps(xr + 24), a3);
            a4 = _mm256_fmadd_ps(we, _mm256_loadu_ps(xr + 32), a4);
            a5 = _mm256_fmadd_ps(we, _mm256_loadu_ps(xr + 40), a5);
            a6 = _mm256_fmadd_ps(we, _mm256_loadu_ps(xr + 48), a6);
            a7 = _mm256_fmadd_ps(we, _mm256_loadu_ps(xr + 56), a7);
        }
        _mm256_storeu_ps(y + c, a0), _mm256_storeu_ps(y + c + 8, a1);
        _mm256_storeu_ps(y + c + 16, a2), _mm256_storeu_ps(y + c + 24, a3);
        _mm256_storeu_ps(y + c + 32, a4), _mm256_storeu_ps(y + c + 40, a5);
        _mm256_storeu_ps(y + c + 48, a6), _mm256_storeu_ps(y + c + 56, a7);
    }
    for (; c + 8 <= d; c += 8) {
        __m256 a = init ? _mm256_loadu_ps(init + c) : _mm256_setzero_ps();
        for (size_t e = 0; e < m; e++)
            a = _mm256_fmadd_ps(_mm256_broadcast_ss(w + e),
                                _mm256_loadu_ps(x + (size_t)idx[e] * d + c), a);
        _mm256_storeu_ps(y + c, a);
    }
    for (; c < d; c++) {
        float a = init ? init[c] : 0.0f;
        for (size_t e = 0; e < m; e++)
            a = fmaf(w[e], x[(size_t)idx[e] * d + c], a);
        y[c] = a;
    }
}

typedef void (*row_fn)(float *restrict y, const float *restrict init, const float *restrict x,
                       size_t d, const uint32_t *idx, const float *w, size_t m);

/* The row kernel: AVX2 when ember_kernels() chose it. */
static row_fn row_kernel(void)
{
    return ember_kernels() == &ember_kernels_avx2 ? row_avx2 : row_c;
}

/* One product with Â, row by row: for a user row y_u = init_u + sum_i
 * w_ui x_i (x_i the item rows), for an item row likewise over users;
 * init NULL means 0.  acc (NULL: none) then gets y added.  The layout of
 * every table here: user rows then item rows, d floats each. */
static void spmm(const lgcn_graph *gr, size_t d, const float *x, const float *init, float *y,
                 float *acc)
{
    const row_fn row = row_kernel();
    const size_t nu = gr->n_users, n = nu + gr->n_items;
    const float *xu = x, *xi = x + nu * d;
    /* rows are independent: any schedule gives the same bits */
#pragma omp parallel for if (gr->nnz * d > 65536) schedule(dynamic, 32)
    for (size_t r = 0; r < n; r++) {
        float *yr = y + r * d;
        const float *ir = init ? init + r * d : NULL;
        if (r < nu) {
            uint64_t a = gr->u_ptr[r], b = gr->u_ptr[r + 1];
            row(yr, ir, xi, d, gr->u_item + a, gr->u_w + a, (size_t)(b - a));
        } else {
            uint64_t a = gr->i_ptr[r - nu], b = gr->i_ptr[r - nu + 1];
            row(yr, ir, xu, d, gr->i_user + a, gr->i_w + a, (size_t)(b - a));
        }
        if (acc) {
            float *ar = acc + r * d;
            for (size_t k = 0; k < d; k++)
                ar[k] += yr[k];
        }
    }
}

/* out = (E0 + Â E0 + ... + Â^K E0) / (K + 1), E0 the user rows u0 and the
 * item rows i0; a and b are scratch tables.  When ilayers is not NULL,
 * the item rows of layers 0..K-1 go there (K x n_items x d). */
static void propagate(const lgcn_graph *gr, size_t d, size_t K, const float *u0,
                      const float *i0, float *out, float *a, float *b, float *ilayers)
{
    const size_t nu = gr->n_users, ni = gr->n_items, n = nu + ni;
    memcpy(out, u0, nu * d * sizeof *out);
    memcpy(out + nu * d, i0, ni * d * sizeof *out);
    if (K == 0)
        return;
    /* layer 0 as one table (the products read users and items from one) */
    memcpy(a, out, n * d * sizeof *a);
    float *cur = a, *next = b;
    for (size_t k = 1; k <= K; k++) {
        if (ilayers)
            memcpy(ilayers + (k - 1) * ni * d, cur + nu * d, ni * d * sizeof *ilayers);
        spmm(gr, d, cur, NULL, next, out);
        float *t = cur;
        cur = next;
        next = t;
    }
    const float inv = 1.0f / (float)(K + 1);
#pragma omp parallel for if (n * d > 65536) schedule(static)
    for (size_t k = 0; k < n * d; k++)
        out[k] *= inv;
}

/* The scratch of a step: the propagated table f, the gradient g, two
 * tables for the products (each (n_users + n_items) x d); per triple
 * (up to cap) the loss and the gradient coefficient; per row a count. */
typedef struct {
    float *f, *g, *a, *b;
    double *loss;
    float *coef;
    uint32_t *count;
    size_t cap;
} lgcn_work;

static void work_free(lgcn_work *w)
{
    free(w->f);
    free(w->loss);
    free(w->coef);
    free(w->count);
    memset(w, 0, sizeof *w);
}

static int work_alloc(lgcn_work *w, size_t rows, size_t d, size_t cap)
{
    memset(w, 0, sizeof *w);
    float *buf = ember_alloc_aligned(4 * rows * d, sizeof *buf);
    w->f = buf;
    w->loss = ember_alloc(EMBER_MAX(cap, 1), sizeof *w->loss);
    w->coef = ember_alloc(EMBER_MAX(cap, 1), sizeof *w->coef);
    w->count = ember_alloc(rows, sizeof *w->count);
    if (!buf || !w->loss || !w->coef || !w->count) {
        work_free(w);
        return EMBER_ENOMEM;
    }
    w->g = buf + rows * d;
    w->a = buf + 2 * rows * d;
    w->b = buf + 3 * rows * d;
    w->cap = cap;
    return EMBER_OK;
}

/* softplus(-x) = -ln sigmoid(x), computed stably. */
static inline double neg_log_sigmoid(double x)
{
    return x >= 0 ? log1p(exp(-x)) : -x + log1p(exp(x));
}

/* The loss of the triples (us[t], is[t], js[t]) at layer-0 embeddings
 * (u0, i0) and its gradient into (du0, di0) (overwritten).  See the top of
 * the file for the loss and the way back through the layers. */
static double batch_grad(const lgcn_graph *gr, size_t d, size_t K, double reg, const float *u0,
                         const float *i0, const uint32_t *us, const uint32_t *is,
                         const uint32_t *js, size_t n, const lgcn_work *w, float *du0,
                         float *di0)
{
    const ember_kernel_table *kt = ember_kernels();
    const size_t nu = gr->n_users, ni = gr->n_items, rows = nu + ni;
    propagate(gr, d, K, u0, i0, w->f, w->a, w->b, NULL);
    /* BPR on the propagated rows: G = dloss/dF */
    memset(w->g, 0, rows * d * sizeof *w->g);
    const float *fi = w->f + nu * d;
    float *gu = w->g, *gi = w->g + nu * d;
    const float inv_n = n ? 1.0f / (float)n : 0.0f;
    /* the triples' scores in parallel, the scatter in order */
#pragma omp parallel for if (n * d > 65536) schedule(static)
    for (size_t t = 0; t < n; t++) {
        const float *pu = w->f + (size_t)us[t] * d;
        double x = (double)kt->dot(pu, fi + (size_t)is[t] * d, d) -
                   (double)kt->dot(pu, fi + (size_t)js[t] * d, d);
        w->loss[t] = neg_log_sigmoid(x);
        /* d/dx -ln sigmoid(x) = -sigmoid(-x) */
        w->coef[t] = -(float)(1.0 / (1.0 + exp(x))) * inv_n;
    }
    double loss = 0;
    for (size_t t = 0; t < n; t++) {
        const float *pu = w->f + (size_t)us[t] * d, *pi = fi + (size_t)is[t] * d;
        const float *pj = fi + (size_t)js[t] * d;
        float c = w->coef[t], *g_u = gu + (size_t)us[t] * d;
        loss += w->loss[t];
        kt->axpy(c, pi, g_u, d);
        kt->axpy(-c, pj, g_u, d);
        kt->axpy(c, pu, gi + (size_t)is[t] * d, d);
        kt->axpy(-c, pu, gi + (size_t)js[t] * d, d);
    }
    loss = n ? loss / (double)n : 0.0;
    /* back through the layers: H = G, K times H = G + Â H */
    const float *h = w->g;
    for (size_t k = 0; k < K; k++) {
        float *y = k % 2 ? w->b : w->a;
        spmm(gr, d, h, w->g, y, NULL);
        h = y;
    }
    const float inv = 1.0f / (float)(K + 1);
#pragma omp parallel for if (rows * d > 65536) schedule(static)
    for (size_t k = 0; k < rows * d; k++) {
        float v = h[k] * inv;
        if (k < nu * d)
            du0[k] = v;
        else
            di0[k - nu * d] = v;
    }
    /* L2 on the batch's layer-0 rows, a row as often as the batch has it */
    if (reg > 0 && n > 0) {
        memset(w->count, 0, rows * sizeof *w->count);
        for (size_t t = 0; t < n; t++) {
            w->count[us[t]]++;
            w->count[nu + is[t]]++;
            w->count[nu + js[t]]++;
        }
        double sq = 0;
        for (size_t r = 0; r < rows; r++) {
            if (!w->count[r])
                continue;
            const float *e = r < nu ? u0 + r * d : i0 + (r - nu) * d;
            float *de = r < nu ? du0 + r * d : di0 + (r - nu) * d;
            sq += (double)w->count[r] * (double)kt->dot(e, e, d);
            kt->axpy((float)reg * inv_n * (float)w->count[r], e, de, d);
        }
        loss += reg * sq / (2.0 * (double)n);
    }
    return loss;
}

/* ------------------------------------------------------------- model */

typedef struct {
    size_t n_users, n_items, dim, layers;
    nn_params ps;
    nn_param *user, *item; /* E^(0) */
    lgcn_graph gr;
    float *f;        /* propagated rows: users then items */
    float *ilayers;  /* item rows of layers 0..K-1, for fold-in */
    float *inv_norm; /* 1 / |F_i| (0 for a zero row) */
    mf_factors mf;   /* a view: P, Q = the propagated rows */
} lgcn_state;

static void lgcn_destroy(ember_model *m)
{
    lgcn_state *s = m->state;
    if (!s)
        return;
    nn_params_free(&s->ps);
    graph_free(&s->gr);
    free(s->f);
    free(s->ilayers);
    free(s->inv_norm);
    free(s);
    m->state = NULL;
}

enum { LGCN_N_PARAMS = 2 };

static int lgcn_specs(const ember_model *m, nn_param_spec *sp)
{
    const lgcn_params *p = m->params;
    if (m->n_items == 0 || m->n_items > INT32_MAX || m->n_users == 0 ||
        m->n_users > INT32_MAX)
        return ember_fail(EMBER_EINVAL, "lightgcn: %zu users, %zu items", m->n_users,
                          m->n_items);
    int d = (int)p->dim;
    sp[0] = (nn_param_spec){"user", 2, {(int)m->n_users, d}, false};
    sp[1] = (nn_param_spec){"item", 2, {(int)m->n_items, d}, false};
    return EMBER_OK;
}

/* The state: zero parameters, the graph of the model's training history,
 * the caches. */
static int lgcn_build(ember_model *m, const nn_param_spec *sp)
{
    const lgcn_params *p = m->params;
    lgcn_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    nn_params_init(&s->ps);
    s->n_users = m->n_users;
    s->n_items = m->n_items;
    s->dim = (size_t)p->dim;
    s->layers = (size_t)p->layers;
    nn_param *q[LGCN_N_PARAMS];
    int st = nn_params_add_specs(&s->ps, sp, LGCN_N_PARAMS, q);
    if (st)
        return st;
    s->user = q[0];
    s->item = q[1];
    if ((st = graph_build(&s->gr, m->n_users, m->n_items, m->hist.ptr, m->hist.item)))
        return st;
    size_t rows = s->n_users + s->n_items, d = s->dim;
    s->f = ember_alloc_aligned(rows * d, sizeof *s->f);
    s->ilayers = ember_alloc_aligned(EMBER_MAX(s->layers, 1) * s->n_items * d,
                                     sizeof *s->ilayers);
    if (!s->f || !s->ilayers)
        return EMBER_ENOMEM;
    s->mf = (mf_factors){.n_users = s->n_users, .n_items = s->n_items, .dim = d,
                         .P = s->f, .Q = s->f + s->n_users * d};
    return EMBER_OK;
}

/* What scoring caches, from the current E^(0): the propagated rows, the
 * item layers and the item norms. */
static int refresh_cache(lgcn_state *s)
{
    size_t rows = s->n_users + s->n_items, d = s->dim;
    float *a = ember_alloc_aligned(2 * rows * d, sizeof *a);
    if (!a)
        return EMBER_ENOMEM;
    propagate(&s->gr, d, s->layers, s->user->value, s->item->value, s->f, a, a + rows * d,
              s->ilayers);
    free(a);
    float *inv = mf_inv_norms(&s->mf);
    if (!inv)
        return EMBER_ENOMEM;
    free(s->inv_norm);
    s->inv_norm = inv;
    return EMBER_OK;
}

/* ---------------------------------------------------------------- fit */

typedef struct {
    lgcn_state *s;
    const lgcn_params *p;
    const ember_dataset *train;
    const uint32_t *row_of; /* user of each CSR position */
    deep_negs negs;
    lgcn_work w;
} lgcn_ctx;

static int lgcn_sync(void *ctx)
{
    return refresh_cache(((lgcn_ctx *)ctx)->s);
}

/* One batch: `negatives` negatives per positive, the loss and its
 * gradient by hand (batch_grad), and on the tape the term that hands the
 * gradient to the trainer: loss + (sum(E0 (*) g) - c), c that sum's
 * value. */
static nn_tensor *lgcn_loss(void *ctx, const deep_batch *bt)
{
    lgcn_ctx *c = ctx;
    lgcn_state *s = c->s;
    nn_graph *g = bt->g;
    size_t d = s->dim;
    size_t cap = bt->n * (size_t)c->p->negatives;
    uint32_t *us = nn_graph_alloc(g, cap, sizeof *us);
    uint32_t *is = nn_graph_alloc(g, cap, sizeof *is);
    uint32_t *js = nn_graph_alloc(g, cap, sizeof *js);
    nn_tensor *pu = nn_param_node(g, s->user), *pi = nn_param_node(g, s->item);
    nn_tensor *gu = nn_input(g, 2, (int[]){(int)s->n_users, (int)d}, NULL, false);
    nn_tensor *gi = nn_input(g, 2, (int[]){(int)s->n_items, (int)d}, NULL, false);
    if (!us || !is || !js || !pu || !pi || !gu || !gi)
        return NULL;
    size_t n = 0;
    for (size_t b = 0; b < bt->n; b++) {
        uint32_t k = bt->idx[b], u = c->row_of[k];
        for (int64_t t = 0; t < c->p->negatives; t++) {
            uint32_t j = deep_negs_draw(&c->negs, bt->rng, u);
            if (j == UINT32_MAX) /* the user has (nearly) every item */
                continue;
            us[n] = u;
            is[n] = c->train->u_item[k];
            js[n++] = j;
        }
    }
    float loss = (float)batch_grad(&s->gr, d, s->layers, c->p->reg, s->user->value,
                                   s->item->value, us, is, js, n, &c->w, gu->data, gi->data);
    nn_tensor *lin = nn_add(g, nn_sum(g, nn_mul(g, pu, gu)), nn_sum(g, nn_mul(g, pi, gi)));
    if (!lin)
        return NULL;
    nn_tensor *zero = nn_sub(g, lin, nn_input(g, 1, (int[]){1}, lin->data, false));
    return nn_add(g, zero, nn_input(g, 1, (int[]){1}, &loss, false));
}

static int lgcn_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                    const ember_fit_opts *o)
{
    (void)valid;
    const lgcn_params *p = m->params;
    nn_param_spec sp[LGCN_N_PARAMS];
    int st = lgcn_specs(m, sp);
    if (st || (st = lgcn_build(m, sp)))
        return st;
    lgcn_state *s = m->state;
    if (m->n_items < 2)
        return ember_fail(EMBER_EINVAL, "lightgcn: needs at least two items");
    ember_rng rng;
    ember_rng_seed(&rng, o->seed);
    nn_init_xavier_uniform(s->user, &rng, 1.0f);
    nn_init_xavier_uniform(s->item, &rng, 1.0f);
    lgcn_ctx c = {.s = s, .p = p, .train = train};
    uint32_t *row_of = ember_alloc(train->nnz, sizeof *row_of);
    size_t cap = EMBER_MIN((size_t)p->batch, train->nnz) * (size_t)p->negatives;
    if (!row_of || (st = work_alloc(&c.w, s->n_users + s->n_items, s->dim, cap))) {
        st = EMBER_ENOMEM;
        goto done;
    }
    for (size_t u = 0; u < train->n_users; u++)
        for (uint64_t k = train->u_ptr[u]; k < train->u_ptr[u + 1]; k++)
            row_of[k] = (uint32_t)u;
    c.row_of = row_of;
    deep_negs_init(&c.negs, train, p->neg == 0 ? DEEP_NEG_UNIFORM : DEEP_NEG_POP);
    deep_train_cfg cfg;
    DEEP_CFG(&cfg, p);
    deep_model_fns fns = {.loss = lgcn_loss, .sync = lgcn_sync};
    st = deep_train(m, &s->ps, &fns, &c, train->nnz, &cfg, o, NULL);
done:
    free(row_of);
    work_free(&c.w);
    return st;
}

/* ------------------------------------------------------------ scoring */

/* Fold-in (see the top of the file) of the sorted distinct items[0..n)
 * into x (dim floats): layers 1..K exactly as the propagation forms them
 * for a user with these items, then layer 0 by foldin_steps full-batch
 * Adam steps on the BPR loss of the items against one uniform negative
 * each per step (never one of the items), from 0, everything else fixed,
 * from an RNG seeded by the history. */
static int fold_in(const ember_model *m, const uint32_t *items, size_t n, float *x)
{
    const lgcn_state *s = m->state;
    const lgcn_params *p = m->params;
    const ember_kernel_table *K = ember_kernels();
    size_t d = s->dim, ni = s->n_items;
    memset(x, 0, d * sizeof *x);
    if (n == 0)
        return EMBER_OK;
    /* the layer sum c, layer 0, its gradient, Adam's moments, the
     * propagated vector, one layer; the edge weights */
    float *buf = ember_calloc(6 * d + n, sizeof *buf);
    if (!buf)
        return EMBER_ENOMEM;
    float *c = buf, *e0 = c + d, *g = e0 + d, *am = g + d, *av = am + d, *f = av + d;
    float *w = f + d, *e = x; /* x holds one layer at a time until the end */
    for (size_t k = 0; k < n; k++) {
        uint32_t i = items[k];
        size_t di = (size_t)(s->gr.i_ptr[i + 1] - s->gr.i_ptr[i]);
        w[k] = edge_weight(n, EMBER_MAX(di, 1));
    }
    const row_fn row = row_kernel();
    for (size_t l = 0; l < s->layers; l++) {
        row(e, NULL, s->ilayers + l * ni * d, d, items, w, n);
        for (size_t k = 0; k < d; k++)
            c[k] += e[k];
    }
    const float inv = 1.0f / (float)(s->layers + 1);
    const float lr = (float)p->foldin_lr, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    const float *Q = s->mf.Q;
    ember_rng rng;
    ember_rng_seed(&rng, 0x243F6A8885A308D3ULL ^ ember_hash64(items, n * sizeof *items));
    for (int64_t t = 1; n < ni && t <= p->foldin_steps; t++) {
        for (size_t k = 0; k < d; k++)
            f[k] = (e0[k] + c[k]) * inv;
        memset(g, 0, d * sizeof *g);
        for (size_t h = 0; h < n; h++) {
            uint32_t j;
            do
                j = (uint32_t)ember_rng_below(&rng, ni);
            while (deep_sorted_has(items, n, j));
            const float *qi = Q + (size_t)items[h] * d, *qj = Q + (size_t)j * d;
            float z = K->dot(f, qi, d) - K->dot(f, qj, d);
            /* d/de0 of -ln sigmoid(z) / n, z = f . (q_i - q_j), f = (e0 + c) / (K + 1) */
            float a = -inv / ((1.0f + expf(z)) * (float)n);
            K->axpy(a, qi, g, d);
            K->axpy(-a, qj, g, d);
        }
        float bc1 = 1.0f - powf(b1, (float)t), bc2 = 1.0f - powf(b2, (float)t);
        for (size_t k = 0; k < d; k++) {
            am[k] = b1 * am[k] + (1 - b1) * g[k];
            av[k] = b2 * av[k] + (1 - b2) * g[k] * g[k];
            e0[k] -= lr * (am[k] / bc1) / (sqrtf(av[k] / bc2) + eps);
        }
    }
    for (size_t k = 0; k < d; k++)
        x[k] = (e0[k] + c[k]) * inv;
    free(buf);
    return EMBER_OK;
}

/* The user vector of a query: the cached one of a known user who brings
 * nothing, else a fold-in of the whole history (repeats once). */
static int query_vector(const ember_model *m, const ember_query *q, float *x, const float **u)
{
    const lgcn_state *s = m->state;
    model_hist_view v = model_query_history(m, q);
    if (q->user >= 0 && v.nb == 0) {
        *u = s->mf.P + (size_t)q->user * s->dim;
        return EMBER_OK;
    }
    size_t n = v.na + v.nb;
    uint32_t *items = ember_alloc(EMBER_MAX(n, 1), sizeof *items);
    if (!items)
        return EMBER_ENOMEM;
    memcpy(items, v.a, v.na * sizeof *items);
    memcpy(items + v.na, v.b, v.nb * sizeof *items);
    qsort(items, n, sizeof *items, cmp_u32);
    size_t w = 0;
    for (size_t k = 0; k < n; k++)
        if (w == 0 || items[k] != items[w - 1])
            items[w++] = items[k];
    int st = fold_in(m, items, w, x);
    free(items);
    *u = x;
    return st;
}

static int lgcn_score_all(const ember_model *m, const ember_query *q, float *out)
{
    const lgcn_state *s = m->state;
    return mf_score_query(m, &s->mf, query_vector, q, NULL, m->n_items, out);
}

static int lgcn_score_items(const ember_model *m, const ember_query *q, const uint32_t *items,
                            size_t n, float *out)
{
    const lgcn_state *s = m->state;
    return mf_score_query(m, &s->mf, query_vector, q, items, n, out);
}

static int lgcn_similar(const ember_model *m, uint32_t item, float *out)
{
    const lgcn_state *s = m->state;
    mf_similar_cosine(&s->mf, s->inv_norm, item, out);
    return EMBER_OK;
}

/* ---------------------------------------------------------- the file */

static int lgcn_save(const ember_model *m, mf_writer *w)
{
    const lgcn_state *s = m->state;
    return nn_params_save(w, "lightgcn", &s->ps);
}

static int lgcn_load(ember_model *m, const mf_reader *r)
{
    nn_param_spec sp[LGCN_N_PARAMS];
    int st = lgcn_specs(m, sp);
    if (st)
        return EMBER_ECORRUPT;
    if ((st = nn_params_check(r, "lightgcn", sp, LGCN_N_PARAMS)) || (st = lgcn_build(m, sp)))
        return st == EMBER_ENOMEM ? st : EMBER_ECORRUPT;
    lgcn_state *s = m->state;
    if ((st = nn_params_load(r, "lightgcn", &s->ps)))
        return st;
    return refresh_cache(s);
}

const ember_model_ops model_lightgcn = {
    .name = "lightgcn",
    .summary = "LightGCN (He et al. 2020): embeddings propagated over the user-item graph, "
               "BPR with sampled negatives",
    .params = lgcn_param_table,
    .n_params = EMBER_ARRAY_LEN(lgcn_param_table),
    .params_size = sizeof(lgcn_params),
    .fit = lgcn_fit,
    .score_all = lgcn_score_all,
    .score_items = lgcn_score_items,
    .similar = lgcn_similar,
    .save = lgcn_save,
    .load = lgcn_load,
    .destroy = lgcn_destroy,
};

/* ---------------------------------------------------------- test hooks */

/* out ((n_users + n_items) x dim, users first) = the propagation of
 * (user0, item0) over data's graph. */
int lightgcn_propagate(const ember_dataset *data, size_t dim, size_t layers, const float *user0,
                       const float *item0, float *out)
{
    lgcn_graph gr;
    int st = graph_build(&gr, data->n_users, data->n_items, data->u_ptr, data->u_item);
    if (st)
        return st;
    lgcn_work w;
    if ((st = work_alloc(&w, data->n_users + data->n_items, dim, 0)) == EMBER_OK) {
        propagate(&gr, dim, layers, user0, item0, out, w.a, w.b, NULL);
        work_free(&w);
    }
    graph_free(&gr);
    return st;
}

/* The training loss of the triples (users[t], pos[t], neg[t]) at (user0,
 * item0) and its gradient, as a training step computes them. */
int lightgcn_batch_loss(const ember_dataset *data, size_t dim, size_t layers, double reg,
                        const float *user0, const float *item0, const uint32_t *users,
                        const uint32_t *pos, const uint32_t *neg, size_t n, double *loss,
                        float *d_user0, float *d_item0)
{
    lgcn_graph gr;
    int st = graph_build(&gr, data->n_users, data->n_items, data->u_ptr, data->u_item);
    if (st)
        return st;
    lgcn_work w;
    if ((st = work_alloc(&w, data->n_users + data->n_items, dim, n)) == EMBER_OK) {
        *loss = batch_grad(&gr, dim, layers, reg, user0, item0, users, pos, neg, n, &w, d_user0,
                           d_item0);
        work_free(&w);
    }
    graph_free(&gr);
    return st;
}
