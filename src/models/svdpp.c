/*
 * svdpp.c — SVD++ (Koren 2008, "Factorization Meets the Neighborhood: a
 * Multifaceted Collaborative Filtering Model", eq. 15): biased matrix
 * factorization of ratings plus an implicit-feedback term, the items the
 * user rated (whatever the rating):
 *
 *   r^(u, i) = mu + bu + bi + q_i . (p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j)
 *
 * N(u) is the set of distinct items of the user's training history; when
 * scoring, the items a query brings are added to it.  So a new user with a
 * history and no ratings is scored by the implicit term alone (p_u = 0,
 * bu = 0): the model's own fold-in, no optimisation needed.
 *
 * Training: SGD on the squared error with L2 (reg for p and q per rating,
 * reg_bias for each bias once, as in svd.c; reg_y for the y_j), learning
 * rate lr0 * lr_decay^epoch, batched per user as in the usual fast
 * implementations: users in a fresh random order every epoch; for each,
 * z = |N|^-1/2 sum y_j once, then the user's ratings in random order with
 * the per-rating steps
 *   e = r - r^;  bu += lr (e - reg_bias / n_u bu);  bi += lr (e - reg_bias / n_i bi)
 *   p_u += lr (e q_i - reg p_u);  q_i += lr (e (p_u + z) - reg q_i)
 *   g += e q_i
 * and at the end of the user  y_j += lr_y (|N|^-1/2 g - reg_y y_j)  for j
 * in N(u).  Per-rating updates of every y_j (Koren's original, and
 * Surprise) cost |N(u)| times more.  The y step is one step for all the
 * user's ratings at once, so it has its own, smaller learning rate.
 * Users are spread over the threads, which share the tables without locks
 * (Hogwild); the order within a user comes from a per-user seed, so one
 * thread and a fixed seed give bit-identical factors.  The tables live
 * on huge pages and the rows of the next steps are prefetched (svd.c).
 * No early stopping on the ranking metric of valid_fn (see svd.c).
 *
 * similar(i): cosine of the item factors q (mf_similar_cosine).
 */
#include "core/kernels.h"
#include "models/epochs.h"
#include "models/mf.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define SVDPP_MAX_FACTORS 1024

/* Defined in svd.c. */

#define SVDPP_PREFETCH 4 /* rows this many steps ahead are prefetched */

static inline void prefetch_row(const float *row, size_t d)
{
    for (size_t off = 0; off < d; off += 16)
        __builtin_prefetch(row + off, 1, 3);
}

typedef struct {
    int64_t factors;
    int64_t epochs;
    double lr;
    double lr_y;
    double lr_decay;
    double reg;
    double reg_bias;
    double reg_y;
    double init_std;
    int64_t patience;
} svdpp_params;

static const model_param svdpp_param_table[] = {
    {"factors", PARAM_INT, offsetof(svdpp_params, factors), "128", 1, SVDPP_MAX_FACTORS, NULL,
     "latent dimensions"},
    {"epochs", PARAM_INT, offsetof(svdpp_params, epochs), "40", 1, 10000, NULL,
     "passes over the training ratings"},
    {"lr", PARAM_FLOAT, offsetof(svdpp_params, lr), "0.02", 1e-6, 1, NULL,
     "SGD learning rate of the first epoch"},
    {"lr_y", PARAM_FLOAT, offsetof(svdpp_params, lr_y), "0.002", 1e-6, 1, NULL,
     "SGD learning rate of the y of the first epoch (one step per user)"},
    {"lr_decay", PARAM_FLOAT, offsetof(svdpp_params, lr_decay), "0.95", 0.5, 1, NULL,
     "learning rate multiplied by this after every epoch"},
    {"reg", PARAM_FLOAT, offsetof(svdpp_params, reg), "0.07", 0, 10, NULL,
     "L2 regularization of p and q"},
    {"reg_bias", PARAM_FLOAT, offsetof(svdpp_params, reg_bias), "10", 0, 1000, NULL,
     "L2 regularization of each bias, spread over its ratings (Koren's baseline: "
     "b = sum of residuals / (count + reg_bias))"},
    {"reg_y", PARAM_FLOAT, offsetof(svdpp_params, reg_y), "0.3", 0, 10, NULL,
     "L2 regularization of the implicit item vectors y"},
    {"init_std", PARAM_FLOAT, offsetof(svdpp_params, init_std), "0.01", 0, 1, NULL,
     "standard deviation of the initial factors"},
    {"patience", PARAM_INT, offsetof(svdpp_params, patience), "3", 0, 10000, NULL,
     "with a valid set: stop after this many epochs without a lower valid RMSE, keeping the "
     "best epoch (0: run all epochs)"},
};

typedef struct {
    mf_factors f;
    const float *Y; /* n_items x dim: the implicit item vectors */
    float *owned_Y;
} svdpp_state;

/* ------------------------------------------------------ the user step */

/* Everything one user's pass needs. */
typedef struct {
    float *P, *Q, *Y, *bu, *bi;
    const float *inv_nu, *inv_ni; /* 1 / ratings of each user, item */
    float mu, lr, lr_y, keep, keep_y; /* keep = 1 - lr reg, keep_y = 1 - lr_y reg_y */
    float lr_reg_b;                   /* lr reg_bias */
    size_t d;
} step_ctx;

/* The per-rating step (see the top of the file) for item i, rating r;
 * p = p_u, z the implicit term, g the gradient sum of the y.  Returns the
 * error before the update. */
static float rate_generic(const step_ctx *c, float *restrict p, const float *restrict z,
                          float *restrict g, uint32_t u, uint32_t i, float r)
{
    size_t d = c->d;
    float *restrict q = c->Q + (size_t)i * d;
    float dot = 0;
    for (size_t j = 0; j < d; j++)
        dot += q[j] * (p[j] + z[j]);
    float e = r - (c->mu + c->bu[u] + c->bi[i] + dot), s = c->lr * e;
    c->bu[u] = (1.0f - c->lr_reg_b * c->inv_nu[u]) * c->bu[u] + s;
    c->bi[i] = (1.0f - c->lr_reg_b * c->inv_ni[i]) * c->bi[i] + s;
    for (size_t j = 0; j < d; j++) {
        float pj = p[j], qj = q[j];
        p[j] = c->keep * pj + s * qj;
        q[j] = c->keep * qj + s * (pj + z[j]);
        g[j] += e * qj;
    }
    return e;
}

__attribute__((target("avx2,fma"))) static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static float
rate_avx2(const step_ctx *c, float *restrict p, const float *restrict z, float *restrict g,
          uint32_t u, uint32_t i, float r)
{
    size_t d = c->d, d8 = d & ~(size_t)7, j;
    float *restrict q = c->Q + (size_t)i * d;
    __m256 acc = _mm256_setzero_ps();
    for (j = 0; j < d8; j += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(q + j),
                              _mm256_add_ps(_mm256_loadu_ps(p + j), _mm256_loadu_ps(z + j)), acc);
    float dot = hsum8(acc);
    for (; j < d; j++)
        dot += q[j] * (p[j] + z[j]);
    float e = r - (c->mu + c->bu[u] + c->bi[i] + dot), s = c->lr * e;
    c->bu[u] = (1.0f - c->lr_reg_b * c->inv_nu[u]) * c->bu[u] + s;
    c->bi[i] = (1.0f - c->lr_reg_b * c->inv_ni[i]) * c->bi[i] + s;
    const __m256 vs = _mm256_set1_ps(s), ve = _mm256_set1_ps(e), vk = _mm256_set1_ps(c->keep);
    for (j = 0; j < d8; j += 8) {
        __m256 pj = _mm256_loadu_ps(p + j), qj = _mm256_loadu_ps(q + j);
        __m256 pz = _mm256_add_ps(pj, _mm256_loadu_ps(z + j));
        _mm256_storeu_ps(p + j, _mm256_fmadd_ps(vs, qj, _mm256_mul_ps(vk, pj)));
        _mm256_storeu_ps(q + j, _mm256_fmadd_ps(vs, pz, _mm256_mul_ps(vk, qj)));
        _mm256_storeu_ps(g + j, _mm256_fmadd_ps(ve, qj, _mm256_loadu_ps(g + j)));
    }
    for (; j < d; j++) {
        float pj = p[j], qj = q[j];
        p[j] = c->keep * pj + s * qj;
        q[j] = c->keep * qj + s * (pj + z[j]);
        g[j] += e * qj;
    }
    return e;
}

/* y += a x for one row (the kernel table's axpy, AVX2 or reference). */
static void scale_add(const ember_kernel_table *K, float keep, float a, const float *x, float *y,
                      size_t d)
{
    K->scale(y, keep, d);
    K->axpy(a, x, y, d);
}

/* One user's pass; items[0..n) are the user's ratings in CSR order
 * (ascending), order[] scratch of n.  Returns the sum of squared errors. */
static double user_pass(const step_ctx *c, const ember_kernel_table *K, bool avx2, uint32_t u,
                        const uint32_t *items, const float *ratings, size_t n, size_t n_distinct,
                        ember_rng *rng, uint32_t *order, float *z, float *g)
{
    size_t d = c->d;
    float nrm = (float)(1.0 / sqrt((double)n_distinct));
    memset(z, 0, d * sizeof *z);
    memset(g, 0, d * sizeof *g);
    for (size_t k = 0; k < n; k++) {
        if (k + SVDPP_PREFETCH < n)
            prefetch_row(c->Y + (size_t)items[k + SVDPP_PREFETCH] * d, d);
        if (k == 0 || items[k] != items[k - 1])
            K->axpy(1.0f, c->Y + (size_t)items[k] * d, z, d);
    }
    K->scale(z, nrm, d);
    for (size_t k = 0; k < n; k++)
        order[k] = (uint32_t)k;
    ember_rng_shuffle_u32(rng, order, n);
    float *p = c->P + (size_t)u * d;
    double sse = 0;
    for (size_t k = 0; k < n; k++) {
        if (k + SVDPP_PREFETCH < n)
            prefetch_row(c->Q + (size_t)items[order[k + SVDPP_PREFETCH]] * d, d);
        uint32_t o = order[k];
        float e = avx2 ? rate_avx2(c, p, z, g, u, items[o], ratings[o])
                       : rate_generic(c, p, z, g, u, items[o], ratings[o]);
        sse += (double)e * e;
    }
    float a = c->lr_y * nrm;
    for (size_t k = 0; k < n; k++) {
        if (k + SVDPP_PREFETCH < n)
            prefetch_row(c->Y + (size_t)items[k + SVDPP_PREFETCH] * d, d);
        if (k == 0 || items[k] != items[k - 1])
            scale_add(K, c->keep_y, a, g, c->Y + (size_t)items[k] * d, d);
    }
    return sse;
}

/* --------------------------------------------------------------- fit */

static void svdpp_destroy(ember_model *m)
{
    svdpp_state *s = m->state;
    if (!s)
        return;
    mf_free(&s->f);
    free(s->owned_Y);
    free(s);
    m->state = NULL;
}

/* What the epochs need besides the model: the users with ratings (their
 * order is reshuffled every epoch), each user's count of distinct items,
 * and per-thread scratch (the order of a user's ratings, z and g). */
typedef struct {
    uint32_t *users;
    size_t n_active;
    uint32_t *n_distinct;
    uint32_t *order; /* threads x longest */
    size_t longest;
    float *scratch;  /* threads x 2 dim */
    float *inv;      /* 1 / count of each user, then of each item */
} epoch_work;

static int train_epochs(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                        const ember_fit_opts *o, ember_rng *rng, epoch_work *w)
{
    const svdpp_params *p = m->params;
    svdpp_state *s = m->state;
    size_t d = s->f.dim;
    int threads = model_threads(o);
    /* early stopping on the valid RMSE, as svd.c */
    bool track = valid && valid->nnz > 0; /* validated and logged; stops with patience */
    ember_fit_opts eo = *o;
    eo.valid_fn = track ? mf_valid_rmse : NULL;
    eo.valid_ctx = (void *)valid;
    model_epochs e = {0};
    mf_snapshot best = {0};
    int st = EMBER_OK;
    if (track && p->patience > 0) {
        float *const tables[5] = {mf_P(&s->f), mf_Q(&s->f), mf_bu(&s->f), mf_bi(&s->f),
                                  s->owned_Y};
        const size_t lens[5] = {m->n_users * d, m->n_items * d, m->n_users, m->n_items,
                                m->n_items * d};
        st = mf_snapshot_init(&best, tables, lens, 5);
    }
    if (st == EMBER_OK)
        st = model_epochs_begin(&e, m, &eo, (size_t)p->patience, 1);
    e.metric = "valid_rmse";
    e.lower_better = true;
    size_t last = 0;
    const ember_kernel_table *K = ember_kernels();
    bool avx2 = strcmp(K->name, "avx2") == 0;
    step_ctx c = {.P = mf_P(&s->f), .Q = mf_Q(&s->f), .Y = s->owned_Y, .bu = mf_bu(&s->f),
                  .bi = mf_bi(&s->f), .inv_nu = w->inv, .inv_ni = w->inv + m->n_users,
                  .mu = s->f.mu, .d = d};
    for (int64_t ep = 0; st == EMBER_OK && ep < p->epochs; ep++) {
        double decay = pow(p->lr_decay, (double)ep);
        c.lr = (float)(p->lr * decay);
        c.lr_y = (float)(p->lr_y * decay);
        c.keep = 1.0f - c.lr * (float)p->reg;
        c.lr_reg_b = c.lr * (float)p->reg_bias;
        c.keep_y = 1.0f - c.lr_y * (float)p->reg_y;
        ember_rng_shuffle_u32(rng, w->users, w->n_active);
        uint64_t epoch_seed = ember_rng_next(rng);
        double sse = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sse)
        {
            size_t t = (size_t)omp_get_thread_num();
            uint32_t *ord = w->order + t * w->longest;
            float *z = w->scratch + t * 2 * d, *g = z + d;
#pragma omp for schedule(dynamic, 8)
            for (size_t k = 0; k < w->n_active; k++) {
                uint32_t u = w->users[k];
                ember_rng ur; /* per user: the order within a user does not depend on threads */
                ember_rng_seed(&ur, epoch_seed ^ ((uint64_t)u * 0x9e3779b97f4a7c15ULL));
                uint64_t a = train->u_ptr[u], b = train->u_ptr[u + 1];
                sse += user_pass(&c, K, avx2, u, train->u_item + a, train->u_rating + a,
                                 (size_t)(b - a), w->n_distinct[u], &ur, ord, z, g);
            }
        }
        double loss = sse / (double)train->nnz;
        if (!isfinite(loss)) {
            st = ember_fail(EMBER_EINVAL,
                            "svdpp: training diverged in epoch %lld (lr=%g is too large)",
                            (long long)ep + 1, p->lr);
            break;
        }
        bool is_best, stop;
        st = model_epochs_end(&e, m, (size_t)ep + 1, loss, &is_best, &stop);
        last = (size_t)ep + 1;
        if (st == EMBER_OK && is_best)
            mf_snapshot_take(&best);
        if (stop)
            break;
    }
    if (st == EMBER_OK && track && p->patience > 0 && e.best_epoch && e.best_epoch != last)
        mf_snapshot_restore(&best);
    mf_snapshot_free(&best);
    model_epochs_finish(&e);
    return st;
}

static int svdpp_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                     const ember_fit_opts *o)
{
    const svdpp_params *p = m->params;
    svdpp_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    size_t d = (size_t)p->factors, nu = m->n_users, ni = m->n_items;
    if (mf_alloc(&s->f, nu, ni, d, true))
        return EMBER_ENOMEM;
    s->owned_Y = mf_alloc_table(ni, d);
    if (!s->owned_Y)
        return EMBER_ENOMEM;
    s->Y = s->owned_Y;
    mf_init_normal(&s->f, o->seed, p->init_std);
    ember_rng rng;
    ember_rng_seed(&rng, o->seed ^ 0x9e3779b97f4a7c15ULL);
    for (size_t k = 0; k < ni * d; k++)
        s->owned_Y[k] = (float)(p->init_std * ember_rng_normal(&rng));
    s->f.mu = m->rating_mean;

    int threads = model_threads(o);
    epoch_work w = {.longest = 1};
    w.users = ember_alloc(nu ? nu : 1, sizeof *w.users);
    w.n_distinct = ember_alloc(nu ? nu : 1, sizeof *w.n_distinct);
    w.inv = ember_alloc(nu + ni, sizeof *w.inv);
    int st = w.users && w.n_distinct && w.inv ? EMBER_OK : EMBER_ENOMEM;
    for (size_t u = 0; st == EMBER_OK && u < nu; u++)
        w.inv[u] = 1.0f / (float)EMBER_MAX(data_user_len(train, (uint32_t)u), (size_t)1);
    for (size_t i = 0; st == EMBER_OK && i < ni; i++)
        w.inv[nu + i] = 1.0f / (float)EMBER_MAX(data_item_len(train, (uint32_t)i), (size_t)1);
    for (size_t u = 0; st == EMBER_OK && u < nu; u++) {
        uint64_t a = train->u_ptr[u], b = train->u_ptr[u + 1];
        size_t nd = 0;
        for (uint64_t k = a; k < b; k++)
            nd += k == a || train->u_item[k] != train->u_item[k - 1];
        w.n_distinct[u] = (uint32_t)nd;
        if (b > a)
            w.users[w.n_active++] = (uint32_t)u;
        w.longest = EMBER_MAX(w.longest, (size_t)(b - a));
    }
    if (st == EMBER_OK) {
        w.order = ember_alloc((size_t)threads * w.longest, sizeof *w.order);
        w.scratch = ember_alloc_aligned((size_t)threads * 2 * d, sizeof *w.scratch);
        st = w.order && w.scratch ? EMBER_OK : EMBER_ENOMEM;
    }
    if (st == EMBER_OK)
        st = train_epochs(m, train, valid, o, &rng, &w);
    free(w.users);
    free(w.n_distinct);
    free(w.order);
    free(w.scratch);
    free(w.inv);
    if (st)
        return st;
    /* rows no rating touched keep their random start: clear them */
    for (size_t u = 0; u < nu; u++)
        if (train->u_ptr[u + 1] == train->u_ptr[u])
            memset(mf_P(&s->f) + u * d, 0, d * sizeof(float));
    for (size_t i = 0; i < ni; i++)
        if (train->i_ptr[i + 1] == train->i_ptr[i]) {
            memset(mf_Q(&s->f) + i * d, 0, d * sizeof(float));
            memset(s->owned_Y + i * d, 0, d * sizeof(float));
        }
    return EMBER_OK;
}

/* ----------------------------------------------------------- scoring */

/* p = p_u (0 for a new user) + |N|^-1/2 sum_{j in N} y_j, N the distinct
 * items of the stored and the brought history, added in ascending order. */
static int query_vector(const ember_model *m, const ember_query *q, float *p, float *bu)
{
    const svdpp_state *s = m->state;
    size_t d = s->f.dim;
    if (q->user >= 0) {
        memcpy(p, s->f.P + (size_t)q->user * d, d * sizeof *p);
        *bu = s->f.bu[q->user];
    } else {
        memset(p, 0, d * sizeof *p);
        *bu = 0.0f;
    }
    model_hist_view v = model_query_history(m, q);
    size_t n = v.na + v.nb;
    if (n == 0)
        return EMBER_OK;
    uint32_t *items = ember_alloc(n, sizeof *items);
    float *z = ember_calloc(d, sizeof *z);
    if (!items || !z) {
        free(items);
        free(z);
        return EMBER_ENOMEM;
    }
    if (v.na)
        memcpy(items, v.a, v.na * sizeof *items);
    if (v.nb)
        memcpy(items + v.na, v.b, v.nb * sizeof *items);
    qsort(items, n, sizeof *items, ember_cmp_u32);
    const ember_kernel_table *K = ember_kernels();
    size_t nd = 0;
    for (size_t k = 0; k < n; k++)
        if (k == 0 || items[k] != items[k - 1]) {
            K->axpy(1.0f, s->Y + (size_t)items[k] * d, z, d);
            nd++;
        }
    K->scale(z, (float)(1.0 / sqrt((double)nd)), d);
    for (size_t j = 0; j < d; j++)
        p[j] += z[j];
    free(items);
    free(z);
    return EMBER_OK;
}

static int svdpp_score_all(const ember_model *m, const ember_query *q, float *out)
{
    const svdpp_state *s = m->state;
    float p[SVDPP_MAX_FACTORS], bu;
    int st = query_vector(m, q, p, &bu);
    if (st == EMBER_OK)
        mf_score_all(&s->f, p, bu, out);
    return st;
}

static void svdpp_dot_items(const ember_model *m, const float **Q, const float **bias,
                            size_t *dim)
{
    const svdpp_state *s = m->state;
    mf_dot_items(&s->f, Q, bias, dim);
}

static int svdpp_dot_query(const ember_model *m, const ember_query *q, float *x, float *c)
{
    const svdpp_state *s = m->state;
    float bu;
    int st = query_vector(m, q, x, &bu);
    *c = s->f.mu + bu;
    return st;
}

static int svdpp_score_items(const ember_model *m, const ember_query *q, const uint32_t *items,
                             size_t n, float *out)
{
    const svdpp_state *s = m->state;
    float p[SVDPP_MAX_FACTORS], bu;
    int st = query_vector(m, q, p, &bu);
    if (st == EMBER_OK)
        mf_score_items(&s->f, p, bu, items, n, out);
    return st;
}

static int svdpp_similar(const ember_model *m, uint32_t item, float *out)
{
    const svdpp_state *s = m->state;
    mf_similar_cosine(&s->f, NULL, item, out);
    return EMBER_OK;
}

/* ------------------------------------------------------------- files */

static int svdpp_save(const ember_model *m, mf_writer *w)
{
    const svdpp_state *s = m->state;
    int st = mf_save(&s->f, w, "svdpp");
    if (st)
        return st;
    uint64_t shape[2] = {s->f.n_items, s->f.dim};
    return mf_add(w, "svdpp.Y", MF_F32, 2, shape, s->Y);
}

static int svdpp_load(ember_model *m, const mf_reader *r)
{
    const svdpp_params *p = m->params;
    svdpp_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    int st = mf_load(&s->f, r, "svdpp", m->n_users, m->n_items, true);
    if (st)
        return st;
    if (s->f.dim != (size_t)p->factors)
        return ember_fail(EMBER_ECORRUPT, "svdpp: factor tables have %zu columns, factors=%lld",
                          s->f.dim, (long long)p->factors);
    uint64_t shape[4];
    s->Y = mf_get(r, "svdpp.Y", MF_F32, 2, shape);
    if (!s->Y)
        return EMBER_ECORRUPT;
    if (shape[0] != m->n_items || shape[1] != s->f.dim)
        return ember_fail(EMBER_ECORRUPT, "svdpp.Y has the wrong shape");
    for (size_t k = 0; k < m->n_items * s->f.dim; k++)
        if (!isfinite(s->Y[k]))
            return ember_fail(EMBER_ECORRUPT, "svdpp.Y holds non-finite values");
    return EMBER_OK;
}

const ember_model_ops model_svdpp = {
    .name = "svdpp",
    .summary = "SVD++: rating factorization with implicit feedback (Koren 2008)",
    .predicts_ratings = true,
    .params = svdpp_param_table,
    .n_params = EMBER_ARRAY_LEN(svdpp_param_table),
    .params_size = sizeof(svdpp_params),
    .fit = svdpp_fit,
    .score_all = svdpp_score_all,
    .score_items = svdpp_score_items,
    .dot_items = svdpp_dot_items,
    .dot_query = svdpp_dot_query,
    .similar = svdpp_similar,
    .save = svdpp_save,
    .load = svdpp_load,
    .destroy = svdpp_destroy,
};
