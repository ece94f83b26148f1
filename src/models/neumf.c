/*
 * neumf.c — Neural Matrix Factorization (He, Liao, Zhang, Nie, Hu & Chua
 * 2017, "Neural Collaborative Filtering", WWW): a generalized matrix
 * factorization branch and an MLP branch over separate user and item
 * embeddings, fused by one output layer:
 *
 *   gmf  = p_u (*) q_i                              (elementwise, mf_dim)
 *   mlp  = ReLU(... ReLU(W_1 [p'_u ; q'_i] + b_1) ...)   (tower: hidden,
 *          hidden/2, ...; optional dropout before each layer)
 *   score(u, i) = w . [gmf ; mlp] + b
 *
 * In training the first layer is computed once per distinct user and
 * item of a batch, W_1 [p' ; q'] + b_1 = W_u p' + (W_i q' + b_1), and
 * gathered per pair: the same function at a third of the arithmetic of
 * the concatenation (the dropout before it then falls on the distinct
 * rows).
 *
 * trained pointwise with binary cross-entropy: every training interaction
 * is a positive, each with `negatives` sampled items the user has not
 * interacted with (uniformly or by popularity), drawn afresh every
 * epoch.  Pre-training of the two branches (the paper's option) is not
 * done: RecBole's default trains NeuMF from scratch too.  Embeddings are
 * sparse parameters (lazy Adam: only the rows of a batch move); the
 * shared trainer (deep_train.c) runs the epochs, the moving average of
 * the weights that scoring uses, early stopping and the best-epoch
 * snapshot.
 *
 * Scoring a known user runs the network over every item, with the first
 * MLP layer split: W_1 [p' ; q'] + b_1 = W_u p' + (W_i q' + b_1), the
 * item half cached for every item after each change of the parameters,
 * so a user costs one small matrix-vector product plus the upper layers
 * per item, run on blocks of 64 items with an AVX2+FMA kernel that keeps
 * a 4 x 16 tile of outputs in registers (each item's score is the same
 * whatever its block-mates).
 *
 * A history (a new user, or a known user bringing items) is folded in:
 * fresh user embeddings (zeros) are trained by foldin_steps full-batch
 * Adam steps on the same loss, items and network fixed, over the unique
 * history items as positives and `negatives` uniform negatives per
 * positive per step from an RNG seeded by the history, so the same
 * history always gives the same scores.  The gradient with respect to the
 * user's two vectors is written out by hand (a backward pass through the
 * fixed MLP), so it needs no graph and is reentrant.
 *
 * similar(i): cosine of the items' concatenated embeddings [q_i ; q'_i].
 */
#include "core/kernels.h"
#include "models/deep_train.h"
#include "nn/params_io.h"

#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 6

typedef struct {
    int64_t mf_dim;
    int64_t mlp_dim;
    int64_t mlp_hidden;
    int64_t mlp_layers;
    double dropout;
    int64_t negatives;
    int neg;
    double init_std;
    int64_t foldin_steps;
    double foldin_lr;
    DEEP_PARAM_FIELDS;
} neumf_params;

/* Defaults: RecBole's architecture (embeddings 64 and 64, MLP 128-64,
 * embeddings N(0, 0.01)), trained as chosen on the ML-100K general
 * split's valid set (valid NDCG@10, mean of 3 seeds where given): 4
 * negatives per positive (1: 0.2311, 4: 0.2410, 8: 0.2462 at twice the
 * cost), batches of 1024 positives at lr 0.002 (0.2370, best epoch ~9;
 * lr 0.001: 0.2389 at epoch ~20), scoring with the moving average of the
 * weights at 0.999 a step (0.2447; 0.99: 0.2397), no dropout (0.2438
 * against 0.2447 with RecBole's 0.1: a tie, at 80% of the time),
 * validation every 2 epochs with patience 5.  Fold-in: 50 Adam steps at
 * lr 0.01 (valid NDCG@10 of 1 user in 3 folded in from their training
 * items 0.2220, against 0.2364 from their trained vectors; 30 steps at
 * 0.015: 0.2179, 20 at 0.02: 0.2132, 50 at 0.005: 0.2102). */
static const model_param neumf_param_table[] = {
    {"mf_dim", PARAM_INT, offsetof(neumf_params, mf_dim), "64", 1, 4096, NULL,
     "embedding size of the GMF branch"},
    {"mlp_dim", PARAM_INT, offsetof(neumf_params, mlp_dim), "64", 1, 4096, NULL,
     "embedding size of the MLP branch (user and item each)"},
    {"mlp_hidden", PARAM_INT, offsetof(neumf_params, mlp_hidden), "128", 1, 8192, NULL,
     "width of the first MLP layer; each next layer is half as wide"},
    {"mlp_layers", PARAM_INT, offsetof(neumf_params, mlp_layers), "2", 1, MAX_LAYERS, NULL,
     "number of MLP layers"},
    {"dropout", PARAM_FLOAT, offsetof(neumf_params, dropout), "0", 0, 0.95, NULL,
     "dropout rate before each MLP layer"},
    {"negatives", PARAM_INT, offsetof(neumf_params, negatives), "4", 1, 1000, NULL,
     "sampled negatives per positive"},
    {"neg", PARAM_CHOICE, offsetof(neumf_params, neg), "uniform", 0, 0, "uniform|pop",
     "negative sampling: uniform over items, or proportional to popularity"},
    {"init_std", PARAM_FLOAT, offsetof(neumf_params, init_std), "0.01", 0, 10, NULL,
     "standard deviation of the normal initialization of the embeddings"},
    {"foldin_steps", PARAM_INT, offsetof(neumf_params, foldin_steps), "50", 1, 100000, NULL,
     "fold-in of a history: Adam steps on fresh user embeddings (items fixed)"},
    {"foldin_lr", PARAM_FLOAT, offsetof(neumf_params, foldin_lr), "0.01", 1e-7, 10, NULL,
     "fold-in: Adam learning rate"},
    DEEP_PARAMS(neumf_params, "100", "1024", "0.002", "1", "0", "0.999", "5", "2"),
};

typedef struct {
    size_t n_users, n_items, mf, md, n_layers;
    size_t width[MAX_LAYERS]; /* output width of each MLP layer */
    nn_params ps;
    /* the first MLP layer is W_1 = [w0u ; w0i] (the user's and the item's
     * halves), the others w[1..] */
    nn_param *u_mf, *i_mf, *u_mlp, *i_mlp, *w0u, *w0i, *w[MAX_LAYERS], *b[MAX_LAYERS];
    nn_param *w_out, *b_out;
    float *item_pre; /* n_items x width[0]: W_i q'_i + b_1 */
    float *inv_norm; /* 1 / |[q_i ; q'_i]| (0 for a zero row) */
    bool avx2;
} neumf_state;

static void neumf_destroy(ember_model *m)
{
    neumf_state *s = m->state;
    if (!s)
        return;
    nn_params_free(&s->ps);
    free(s->item_pre);
    free(s->inv_norm);
    free(s);
    m->state = NULL;
}

enum { MAX_PARAMS = 7 + 2 * MAX_LAYERS };

/* The parameters for the hyper-parameters and sizes of m: the four
 * embedding tables, the first layer (w0u, w0i, b0), the later layers (w,
 * b each) and the output layer; their number into *n. */
static int neumf_specs(const ember_model *m, nn_param_spec *sp, size_t *n)
{
    const neumf_params *p = m->params;
    if (m->n_items == 0 || m->n_items > INT32_MAX || m->n_users == 0 || m->n_users > INT32_MAX)
        return ember_fail(EMBER_EINVAL, "neumf: %zu users, %zu items", m->n_users, m->n_items);
    if (p->mlp_hidden >> (p->mlp_layers - 1) < 1)
        return ember_fail(EMBER_EINVAL,
                          "neumf: mlp_hidden=%lld cannot be halved over %lld layers",
                          (long long)p->mlp_hidden, (long long)p->mlp_layers);
    int nu = (int)m->n_users, ni = (int)m->n_items, mf = (int)p->mf_dim, md = (int)p->mlp_dim;
    int h0 = (int)p->mlp_hidden;
    size_t k = 0;
    sp[k++] = (nn_param_spec){"user.mf", 2, {nu, mf}, true};
    sp[k++] = (nn_param_spec){"item.mf", 2, {ni, mf}, true};
    sp[k++] = (nn_param_spec){"user.mlp", 2, {nu, md}, true};
    sp[k++] = (nn_param_spec){"item.mlp", 2, {ni, md}, true};
    sp[k++] = (nn_param_spec){"mlp.w0u", 2, {md, h0}, false};
    sp[k++] = (nn_param_spec){"mlp.w0i", 2, {md, h0}, false};
    sp[k++] = (nn_param_spec){"mlp.b0", 1, {h0}, false};
    int in = h0;
    for (int64_t l = 1; l < p->mlp_layers; l++) {
        int out = (int)(p->mlp_hidden >> l);
        sp[k] = (nn_param_spec){"", 2, {in, out}, false};
        snprintf(sp[k++].name, sizeof sp->name, "mlp.w%lld", (long long)l);
        sp[k] = (nn_param_spec){"", 1, {out}, false};
        snprintf(sp[k++].name, sizeof sp->name, "mlp.b%lld", (long long)l);
        in = out;
    }
    sp[k++] = (nn_param_spec){"out.w", 2, {mf + in, 1}, false};
    sp[k++] = (nn_param_spec){"out.b", 1, {1}, false};
    *n = k;
    return EMBER_OK;
}

/* The state with zero parameters and the cache buffers. */
static int neumf_build(ember_model *m, const nn_param_spec *sp, size_t n)
{
    const neumf_params *p = m->params;
    neumf_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    nn_params_init(&s->ps);
    s->avx2 = ember_kernels() == &ember_kernels_avx2;
    s->n_users = m->n_users;
    s->n_items = m->n_items;
    s->mf = (size_t)p->mf_dim;
    s->md = (size_t)p->mlp_dim;
    s->n_layers = (size_t)p->mlp_layers;
    nn_param *q[MAX_PARAMS];
    int st = nn_params_add_specs(&s->ps, sp, n, q);
    if (st)
        return st;
    s->u_mf = q[0], s->i_mf = q[1], s->u_mlp = q[2], s->i_mlp = q[3];
    s->w0u = q[4], s->w0i = q[5], s->b[0] = q[6];
    s->width[0] = (size_t)p->mlp_hidden;
    for (size_t l = 1; l < s->n_layers; l++) {
        s->w[l] = q[7 + 2 * (l - 1)];
        s->b[l] = q[8 + 2 * (l - 1)];
        s->width[l] = (size_t)(p->mlp_hidden >> l);
    }
    s->w_out = q[n - 2];
    s->b_out = q[n - 1];
    s->item_pre = ember_alloc_aligned(m->n_items * s->width[0], sizeof *s->item_pre);
    s->inv_norm = ember_alloc(m->n_items, sizeof *s->inv_norm);
    if (!s->item_pre || !s->inv_norm)
        return EMBER_ENOMEM;
    return EMBER_OK;
}

/* What scoring caches: the item half of the first MLP layer, and the item
 * norms for similar(). */
static int refresh_cache(neumf_state *s)
{
    const ember_kernel_table *K = ember_kernels();
    size_t md = s->md, h0 = s->width[0], mf = s->mf;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < s->n_items; i++) {
        float *y = s->item_pre + i * h0;
        const float *q = s->i_mlp->value + i * md;
        memcpy(y, s->b[0]->value, h0 * sizeof *y);
        for (size_t k = 0; k < md; k++)
            K->axpy(q[k], s->w0i->value + k * h0, y, h0);
        const float *qm = s->i_mf->value + i * mf;
        float n2 = K->dot(qm, qm, mf) + K->dot(q, q, md);
        s->inv_norm[i] = n2 > 0 ? 1.0f / sqrtf(n2) : 0.0f;
    }
    return EMBER_OK;
}

/* ---------------------------------------------------------------- fit */

typedef struct {
    neumf_state *s;
    const neumf_params *p;
    const ember_dataset *train;
    const uint32_t *row_of; /* user of each CSR position */
    deep_negs negs;
    int32_t *u_local, *i_local; /* -1, or the row of a user / item in this batch */
} neumf_ctx;

static int neumf_sync(void *ctx)
{
    return refresh_cache(((neumf_ctx *)ctx)->s);
}

/* The distinct values of ids[0..n) in order of first appearance into
 * uniq (returns how many), each id's position among them into pos;
 * local[] is all -1 before and after. */
static size_t distinct(const uint32_t *ids, size_t n, int32_t *local, uint32_t *uniq,
                       uint32_t *pos)
{
    size_t k = 0;
    for (size_t t = 0; t < n; t++) {
        if (local[ids[t]] < 0) {
            local[ids[t]] = (int32_t)k;
            uniq[k++] = ids[t];
        }
        pos[t] = (uint32_t)local[ids[t]];
    }
    for (size_t t = 0; t < k; t++)
        local[uniq[t]] = -1;
    return k;
}

/* One batch: its positives, `negatives` sampled items per positive, and
 * the network over them (the first layer per distinct user and item, see
 * the top of the file; dropout, when on, on the distinct embedding rows
 * and before every later layer). */
static nn_tensor *neumf_loss(void *ctx, const deep_batch *bt)
{
    neumf_ctx *c = ctx;
    const neumf_state *s = c->s;
    nn_graph *g = bt->g;
    size_t per = 1 + (size_t)c->p->negatives, cap = bt->n * per;
    uint32_t *us = nn_graph_alloc(g, cap, sizeof *us);
    uint32_t *is = nn_graph_alloc(g, cap, sizeof *is);
    uint32_t *up = nn_graph_alloc(g, cap, sizeof *up);
    uint32_t *ip = nn_graph_alloc(g, cap, sizeof *ip);
    uint32_t *uu = nn_graph_alloc(g, cap, sizeof *uu);
    uint32_t *iu = nn_graph_alloc(g, cap, sizeof *iu);
    float *ys = nn_graph_alloc(g, cap, sizeof *ys);
    if (!us || !is || !up || !ip || !uu || !iu || !ys)
        return NULL;
    size_t n = 0;
    for (size_t b = 0; b < bt->n; b++) {
        uint32_t k = bt->idx[b], u = c->row_of[k];
        us[n] = u;
        is[n] = c->train->u_item[k];
        ys[n++] = 1.0f;
        for (int64_t t = 0; t < c->p->negatives; t++) {
            uint32_t j = deep_negs_draw(&c->negs, bt->rng, u);
            if (j == UINT32_MAX)
                continue;
            us[n] = u;
            is[n] = j;
            ys[n++] = 0.0f;
        }
    }
    size_t nu = distinct(us, n, c->u_local, uu, up), ni = distinct(is, n, c->i_local, iu, ip);
    float drop = (float)c->p->dropout;
    nn_tensor *gmf = nn_mul(g, nn_embedding(g, nn_param_node(g, s->u_mf), us, n),
                            nn_embedding(g, nn_param_node(g, s->i_mf), is, n));
    nn_tensor *eu = nn_embedding(g, nn_param_node(g, s->u_mlp), uu, nu);
    nn_tensor *ei = nn_embedding(g, nn_param_node(g, s->i_mlp), iu, ni);
    nn_tensor *hu = nn_matmul(g, nn_dropout(g, eu, drop), nn_param_node(g, s->w0u), false, false);
    nn_tensor *hi = nn_add(g, nn_matmul(g, nn_dropout(g, ei, drop), nn_param_node(g, s->w0i),
                                        false, false),
                           nn_param_node(g, s->b[0]));
    nn_tensor *x = nn_relu(g, nn_add(g, nn_gather(g, hu, up, n), nn_gather(g, hi, ip, n)));
    for (size_t l = 1; l < s->n_layers; l++)
        x = nn_relu(g, nn_add(g, nn_matmul(g, nn_dropout(g, x, drop), nn_param_node(g, s->w[l]),
                                           false, false),
                              nn_param_node(g, s->b[l])));
    nn_tensor *both[2] = {gmf, x};
    nn_tensor *logit = nn_add(g, nn_matmul(g, nn_concat(g, both, 2), nn_param_node(g, s->w_out),
                                           false, false),
                              nn_param_node(g, s->b_out));
    nn_tensor *y = nn_input(g, 2, (int[]){(int)n, 1}, ys, false);
    return nn_bce_logits(g, logit, y);
}

/* PyTorch's default for a linear layer (RecBole's MLP uses it):
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases. */
static void init_uniform_fan_in(nn_param *p, ember_rng *rng, size_t fan_in)
{
    float a = (float)(1.0 / sqrt((double)fan_in));
    nn_init_uniform(p, rng, -a, a);
}

static int neumf_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                     const ember_fit_opts *o)
{
    (void)valid;
    const neumf_params *p = m->params;
    nn_param_spec sp[MAX_PARAMS];
    size_t n_sp;
    int st = neumf_specs(m, sp, &n_sp);
    if (st || (st = neumf_build(m, sp, n_sp)))
        return st;
    neumf_state *s = m->state;
    if (m->n_items < 2)
        return ember_fail(EMBER_EINVAL, "neumf: needs at least two items");
    ember_rng rng;
    ember_rng_seed(&rng, o->seed);
    nn_init_normal(s->u_mf, &rng, 0.0f, (float)p->init_std);
    nn_init_normal(s->i_mf, &rng, 0.0f, (float)p->init_std);
    nn_init_normal(s->u_mlp, &rng, 0.0f, (float)p->init_std);
    nn_init_normal(s->i_mlp, &rng, 0.0f, (float)p->init_std);
    init_uniform_fan_in(s->w0u, &rng, 2 * s->md);
    init_uniform_fan_in(s->w0i, &rng, 2 * s->md);
    init_uniform_fan_in(s->b[0], &rng, 2 * s->md);
    for (size_t l = 1; l < s->n_layers; l++) {
        init_uniform_fan_in(s->w[l], &rng, s->width[l - 1]);
        init_uniform_fan_in(s->b[l], &rng, s->width[l - 1]);
    }
    init_uniform_fan_in(s->w_out, &rng, s->w_out->rows);
    init_uniform_fan_in(s->b_out, &rng, s->w_out->rows);
    neumf_ctx c = {.s = s, .p = p, .train = train};
    uint32_t *row_of = ember_alloc(train->nnz, sizeof *row_of);
    c.u_local = ember_alloc(m->n_users, sizeof *c.u_local);
    c.i_local = ember_alloc(m->n_items, sizeof *c.i_local);
    if (!row_of || !c.u_local || !c.i_local) {
        st = EMBER_ENOMEM;
        goto done;
    }
    for (size_t u = 0; u < train->n_users; u++)
        for (uint64_t k = train->u_ptr[u]; k < train->u_ptr[u + 1]; k++)
            row_of[k] = (uint32_t)u;
    memset(c.u_local, 0xff, m->n_users * sizeof *c.u_local);
    memset(c.i_local, 0xff, m->n_items * sizeof *c.i_local);
    c.row_of = row_of;
    deep_negs_init(&c.negs, train, p->neg == 0 ? DEEP_NEG_UNIFORM : DEEP_NEG_POP);
    deep_train_cfg cfg;
    DEEP_CFG(&cfg, p);
    deep_model_fns fns = {.loss = neumf_loss, .sync = neumf_sync};
    st = deep_train(m, &s->ps, &fns, &c, train->nnz, &cfg, o, NULL);
done:
    free(row_of);
    free(c.u_local);
    free(c.i_local);
    return st;
}

/* ------------------------------------------------------------ scoring */

/* y[r][j] = relu(b[j] + sum_k x[r][k] w[k][j]) for r < rows (x rows of
 * length in, y rows of length out): a layer of the tower for a block of
 * items.  The reference version, and an AVX2+FMA one that keeps a 4 x 16
 * block of y in registers. */
static void dense_relu_c(const float *restrict x, size_t rows, size_t in,
                         const float *restrict w, const float *restrict b, size_t out,
                         float *restrict y)
{
    for (size_t r = 0; r < rows; r++) {
        float *yr = y + r * out;
        memcpy(yr, b, out * sizeof *yr);
        for (size_t k = 0; k < in; k++) {
            float xk = x[r * in + k];
            const float *wk = w + k * out;
            for (size_t j = 0; j < out; j++)
                yr[j] += xk * wk[j];
        }
        for (size_t j = 0; j < out; j++)
            yr[j] = yr[j] > 0 ? yr[j] : 0;
    }
}

__attribute__((target("avx2,fma"))) static void dense_relu_avx2(const float *restrict x,
                                                                size_t rows, size_t in,
                                                                const float *restrict w,
                                                                const float *restrict b,
                                                                size_t out, float *restrict y)
{
    const __m256 zero = _mm256_setzero_ps();
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *x0 = x + r * in, *x1 = x0 + in, *x2 = x1 + in, *x3 = x2 + in;
        size_t j = 0;
        for (; j + 16 <= out; j += 16) {
            __m256 a00 = _mm256_loadu_ps(b + j), a01 = _mm256_loadu_ps(b + j + 8);
            __m256 a10 = a00, a11 = a01, a20 = a00, a21 = a01, a30 = a00, a31 = a01;
            for (size_t k = 0; k < in; k++) {
                __m256 w0 = _mm256_loadu_ps(w + k * out + j);
                __m256 w1 = _mm256_loadu_ps(w + k * out + j + 8);
                __m256 v = _mm256_broadcast_ss(x0 + k);
                a00 = _mm256_fmadd_ps(v, w0, a00);
                a01 = _mm256_fmadd_ps(v, w1, a01);
                v = _mm256_broadcast_ss(x1 + k);
                a10 = _mm256_fmadd_ps(v, w0, a10);
                a11 = _mm256_fmadd_ps(v, w1, a11);
                v = _mm256_broadcast_ss(x2 + k);
                a20 = _mm256_fmadd_ps(v, w0, a20);
                a21 = _mm256_fmadd_ps(v, w1, a21);
                v = _mm256_broadcast_ss(x3 + k);
                a30 = _mm256_fmadd_ps(v, w0, a30);
                a31 = _mm256_fmadd_ps(v, w1, a31);
            }
            float *y0 = y + r * out + j;
            _mm256_storeu_ps(y0, _mm256_max_ps(a00, zero));
            _mm256_storeu_ps(y0 + 8, _mm256_max_ps(a01, zero));
            _mm256_storeu_ps(y0 + out, _mm256_max_ps(a10, zero));
            _mm256_storeu_ps(y0 + out + 8, _mm256_max_ps(a11, zero));
            _mm256_storeu_ps(y0 + 2 * out, _mm256_max_ps(a20, zero));
            _mm256_storeu_ps(y0 + 2 * out + 8, _mm256_max_ps(a21, zero));
            _mm256_storeu_ps(y0 + 3 * out, _mm256_max_ps(a30, zero));
            _mm256_storeu_ps(y0 + 3 * out + 8, _mm256_max_ps(a31, zero));
        }
        for (; j < out; j++) {
            float s0 = b[j], s1 = b[j], s2 = b[j], s3 = b[j];
            for (size_t k = 0; k < in; k++) {
                float wk = w[k * out + j];
                s0 = fmaf(x0[k], wk, s0);
                s1 = fmaf(x1[k], wk, s1);
                s2 = fmaf(x2[k], wk, s2);
                s3 = fmaf(x3[k], wk, s3);
            }
            y[r * out + j] = s0 > 0 ? s0 : 0;
            y[(r + 1) * out + j] = s1 > 0 ? s1 : 0;
            y[(r + 2) * out + j] = s2 > 0 ? s2 : 0;
            y[(r + 3) * out + j] = s3 > 0 ? s3 : 0;
        }
    }
    /* the last rows one by one, with the same fused multiply-adds in the
     * same order: an item's score does not depend on its block-mates */
    for (; r < rows; r++) {
        const float *xr = x + r * in;
        size_t j = 0;
        for (; j + 16 <= out; j += 16) {
            __m256 a0 = _mm256_loadu_ps(b + j), a1 = _mm256_loadu_ps(b + j + 8);
            for (size_t k = 0; k < in; k++) {
                __m256 v = _mm256_broadcast_ss(xr + k);
                a0 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w + k * out + j), a0);
                a1 = _mm256_fmadd_ps(v, _mm256_loadu_ps(w + k * out + j + 8), a1);
            }
            _mm256_storeu_ps(y + r * out + j, _mm256_max_ps(a0, zero));
            _mm256_storeu_ps(y + r * out + j + 8, _mm256_max_ps(a1, zero));
        }
        for (; j < out; j++) {
            float s0 = b[j];
            for (size_t k = 0; k < in; k++)
                s0 = fmaf(xr[k], w[k * out + j], s0);
            y[r * out + j] = s0 > 0 ? s0 : 0;
        }
    }
}

/* Scratch of one query: the user side, two activation blocks, indices. */
enum { BLOCK = 64 };

typedef struct {
    float *buf;
    float *gw, *upre, *xa, *xb;
    uint32_t idx[BLOCK];
} scratch;

static int scratch_alloc(const neumf_state *s, scratch *sc)
{
    size_t maxw = 0;
    for (size_t l = 0; l < s->n_layers; l++)
        maxw = EMBER_MAX(maxw, s->width[l]);
    sc->buf = ember_alloc_aligned(s->mf + s->width[0] + 2 * BLOCK * maxw, sizeof *sc->buf);
    if (!sc->buf)
        return EMBER_ENOMEM;
    sc->gw = sc->buf;
    sc->upre = sc->gw + s->mf;
    sc->xa = sc->upre + s->width[0];
    sc->xb = sc->xa + BLOCK * maxw;
    return EMBER_OK;
}

/* The user's side: the GMF weights w_gmf (*) p_u and the user half of the
 * first layer W_u p'_u. */
static void user_side(const neumf_state *s, const float *pu, const float *pu_mlp, float *gw,
                      float *upre)
{
    const ember_kernel_table *K = ember_kernels();
    size_t h0 = s->width[0];
    for (size_t f = 0; f < s->mf; f++)
        gw[f] = s->w_out->value[f] * pu[f];
    memset(upre, 0, h0 * sizeof *upre);
    for (size_t k = 0; k < s->md; k++)
        K->axpy(pu_mlp[k], s->w0u->value + k * h0, upre, h0);
}

/* Logits of items[0..n) (n <= BLOCK) for the user side in sc. */
static void score_block(const neumf_state *s, scratch *sc, const uint32_t *items, size_t n,
                        float *out)
{
    const ember_kernel_table *K = ember_kernels();
    size_t h0 = s->width[0];
    float *x = sc->xa, *y = sc->xb;
    for (size_t r = 0; r < n; r++) {
        const float *ip = s->item_pre + (size_t)items[r] * h0;
        float *xr = x + r * h0;
        for (size_t k = 0; k < h0; k++) {
            float a = sc->upre[k] + ip[k];
            xr[k] = a > 0 ? a : 0;
        }
    }
    for (size_t l = 1; l < s->n_layers; l++) {
        if (s->avx2)
            dense_relu_avx2(x, n, s->width[l - 1], s->w[l]->value, s->b[l]->value, s->width[l], y);
        else
            dense_relu_c(x, n, s->width[l - 1], s->w[l]->value, s->b[l]->value, s->width[l], y);
        float *t = x;
        x = y;
        y = t;
    }
    size_t last = s->width[s->n_layers - 1];
    const float *wm = s->w_out->value + s->mf;
    for (size_t r = 0; r < n; r++)
        out[r] = s->b_out->value[0] + K->dot(sc->gw, s->i_mf->value + (size_t)items[r] * s->mf, s->mf) +
                 K->dot(wm, x + r * last, last);
}

static inline float sigmoidf(float x)
{
    return x >= 0 ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}

/* Fold-in (see the top of the file) of the sorted unique items[0..n)
 * into pu [mf] and pu_mlp [md]: full-batch Adam on the two vectors, the
 * gradient of the mean BCE by a hand-written backward through the fixed
 * tower (acts: every layer's output for one pair). */
static int fold_in(const ember_model *m, const uint32_t *items, size_t n, float *pu,
                   float *pu_mlp)
{
    const neumf_state *s = m->state;
    const neumf_params *p = m->params;
    const ember_kernel_table *K = ember_kernels();
    size_t mf = s->mf, md = s->md, dim = mf + md, h0 = s->width[0], L = s->n_layers;
    size_t acts = 0, maxw = 0;
    for (size_t l = 0; l < L; l++) {
        acts += s->width[l];
        maxw = EMBER_MAX(maxw, s->width[l]);
    }
    memset(pu, 0, mf * sizeof *pu);
    memset(pu_mlp, 0, md * sizeof *pu_mlp);
    if (n == 0 || n >= s->n_items)
        return EMBER_OK;
    /* x = [pu ; pu_mlp], its gradient, Adam's moments, the user side,
     * the activations and two backward buffers */
    float *st = ember_calloc(4 * dim + mf + h0 + acts + 2 * maxw, sizeof *st);
    if (!st)
        return EMBER_ENOMEM;
    float *x = st, *gx = x + dim, *am = gx + dim, *av = am + dim, *gw = av + dim;
    float *upre = gw + mf, *act[MAX_LAYERS], *da = upre + h0 + acts, *dn = da + maxw;
    act[0] = upre + h0;
    for (size_t l = 1; l < L; l++)
        act[l] = act[l - 1] + s->width[l - 1];
    ember_rng rng;
    ember_rng_seed(&rng, 0x243F6A8885A308D3ULL ^ ember_hash64(items, n * sizeof *items));
    const float lr = (float)p->foldin_lr, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    const size_t per = 1 + (size_t)p->negatives;
    const float inv_n = 1.0f / (float)(n * per);
    const float *wo = s->w_out->value, *wm = wo + mf;
    for (int64_t t = 1; t <= p->foldin_steps; t++) {
        user_side(s, x, x + mf, gw, upre);
        memset(gx, 0, dim * sizeof *gx);
        for (size_t k = 0; k < n * per; k++) {
            uint32_t i = items[k / per];
            float y = 1.0f;
            if (k % per) {
                do
                    i = (uint32_t)ember_rng_below(&rng, s->n_items);
                while (deep_sorted_has(items, n, i));
                y = 0.0f;
            }
            /* forward through the tower, keeping every layer's output */
            const float *ip = s->item_pre + (size_t)i * h0;
            for (size_t j = 0; j < h0; j++) {
                float a = upre[j] + ip[j];
                act[0][j] = a > 0 ? a : 0;
            }
            for (size_t l = 1; l < L; l++)
                dense_relu_c(act[l - 1], 1, s->width[l - 1], s->w[l]->value, s->b[l]->value,
                             s->width[l], act[l]);
            const float *q = s->i_mf->value + (size_t)i * mf;
            float z = s->b_out->value[0] + K->dot(gw, q, mf) +
                      K->dot(wm, act[L - 1], s->width[L - 1]);
            float g = (sigmoidf(z) - y) * inv_n;
            /* GMF: d pu = g w_gmf (*) q_i */
            for (size_t f = 0; f < mf; f++)
                gx[f] += g * wo[f] * q[f];
            /* the tower: back to the first layer's pre-activation */
            for (size_t j = 0; j < s->width[L - 1]; j++)
                da[j] = act[L - 1][j] > 0 ? g * wm[j] : 0.0f;
            for (size_t l = L - 1; l >= 1; l--) {
                size_t in = s->width[l - 1], out = s->width[l];
                const float *W = s->w[l]->value;
                for (size_t r = 0; r < in; r++)
                    dn[r] = act[l - 1][r] > 0 ? K->dot(W + r * out, da, out) : 0.0f;
                memcpy(da, dn, in * sizeof *da);
            }
            /* d pu_mlp = W_u da */
            for (size_t f = 0; f < md; f++)
                gx[mf + f] += K->dot(s->w0u->value + f * h0, da, h0);
        }
        float bc1 = 1.0f - powf(b1, (float)t), bc2 = 1.0f - powf(b2, (float)t);
        for (size_t f = 0; f < dim; f++) {
            am[f] = b1 * am[f] + (1 - b1) * gx[f];
            av[f] = b2 * av[f] + (1 - b2) * gx[f] * gx[f];
            x[f] -= lr * (am[f] / bc1) / (sqrtf(av[f] / bc2) + eps);
        }
    }
    memcpy(pu, x, mf * sizeof *pu);
    memcpy(pu_mlp, x + mf, md * sizeof *pu_mlp);
    free(st);
    return EMBER_OK;
}

/* The user's two vectors for a query: stored for a known user who brings
 * nothing, else a fold-in of the whole history (duplicates once). */
static int query_user(const ember_model *m, const ember_query *q, float *tmp, const float **pu,
                      const float **pu_mlp)
{
    const neumf_state *s = m->state;
    model_hist_view v = model_query_history(m, q);
    if (q->user >= 0 && v.nb == 0) {
        *pu = s->u_mf->value + (size_t)q->user * s->mf;
        *pu_mlp = s->u_mlp->value + (size_t)q->user * s->md;
        return EMBER_OK;
    }
    size_t n = v.na + v.nb;
    uint32_t *items = ember_alloc(EMBER_MAX(n, 1), sizeof *items);
    if (!items)
        return EMBER_ENOMEM;
    memcpy(items, v.a, v.na * sizeof *items);
    memcpy(items + v.na, v.b, v.nb * sizeof *items);
    size_t w = ember_sort_unique_u32(items, n);
    int st = fold_in(m, items, w, tmp, tmp + s->mf);
    free(items);
    *pu = tmp;
    *pu_mlp = tmp + s->mf;
    return st;
}

static int score(const ember_model *m, const ember_query *q, const uint32_t *items, size_t n,
                 float *out)
{
    const neumf_state *s = m->state;
    float *tmp = ember_alloc(s->mf + s->md, sizeof *tmp);
    scratch sc = {0};
    int st = tmp ? scratch_alloc(s, &sc) : EMBER_ENOMEM;
    const float *pu, *pu_mlp;
    if (st == EMBER_OK)
        st = query_user(m, q, tmp, &pu, &pu_mlp);
    if (st == EMBER_OK) {
        user_side(s, pu, pu_mlp, sc.gw, sc.upre);
        for (size_t b = 0; b < n; b += BLOCK) {
            size_t len = EMBER_MIN((size_t)BLOCK, n - b);
            const uint32_t *blk = items ? items + b : sc.idx;
            if (!items)
                for (size_t r = 0; r < len; r++)
                    sc.idx[r] = (uint32_t)(b + r);
            score_block(s, &sc, blk, len, out + b);
        }
    }
    free(tmp);
    free(sc.buf);
    return st;
}

static int neumf_score_all(const ember_model *m, const ember_query *q, float *out)
{
    return score(m, q, NULL, m->n_items, out);
}

static int neumf_score_items(const ember_model *m, const ember_query *q, const uint32_t *items,
                             size_t n, float *out)
{
    return score(m, q, items, n, out);
}

static int neumf_similar(const ember_model *m, uint32_t item, float *out)
{
    const neumf_state *s = m->state;
    const ember_kernel_table *K = ember_kernels();
    size_t mf = s->mf, md = s->md;
    const float *a = s->i_mf->value + (size_t)item * mf, *b = s->i_mlp->value + (size_t)item * md;
    for (size_t j = 0; j < s->n_items; j++)
        out[j] = (K->dot(a, s->i_mf->value + j * mf, mf) + K->dot(b, s->i_mlp->value + j * md, md)) *
                 s->inv_norm[item] * s->inv_norm[j];
    return EMBER_OK;
}

/* ---------------------------------------------------------- the file */

static int neumf_save(const ember_model *m, mf_writer *w)
{
    const neumf_state *s = m->state;
    return nn_params_save(w, "neumf", &s->ps);
}

static int neumf_load(ember_model *m, const mf_reader *r)
{
    nn_param_spec sp[MAX_PARAMS];
    size_t n_sp;
    int st = neumf_specs(m, sp, &n_sp);
    if (st)
        return EMBER_ECORRUPT;
    if ((st = nn_params_check(r, "neumf", sp, n_sp)) || (st = neumf_build(m, sp, n_sp)))
        return st == EMBER_ENOMEM ? st : EMBER_ECORRUPT;
    neumf_state *s = m->state;
    if ((st = nn_params_load(r, "neumf", &s->ps)))
        return st;
    return refresh_cache(s);
}

const ember_model_ops model_neumf = {
    .name = "neumf",
    .summary = "NeuMF (He et al. 2017): GMF + MLP, BCE with sampled negatives",
    .params = neumf_param_table,
    .n_params = EMBER_ARRAY_LEN(neumf_param_table),
    .params_size = sizeof(neumf_params),
    .fit = neumf_fit,
    .score_all = neumf_score_all,
    .score_items = neumf_score_items,
    .similar = neumf_similar,
    .save = neumf_save,
    .load = neumf_load,
    .destroy = neumf_destroy,
};
