/*
 * svd.c — biased matrix factorization for explicit ratings ("SVD", Funk
 * 2006; Koren, Bell & Volinsky 2009, "Matrix Factorization Techniques for
 * Recommender Systems", eq. 4-5):
 *
 *   r^(u, i) = mu + bu + bi + p_u . q_i
 *
 * trained by SGD on
 *   sum_(u,i) [(r - r^)^2 + reg (|p_u|^2 + |q_i|^2)]
 *     + reg_bias (sum_u bu^2 + sum_i bi^2)
 * (the factors' penalty counted per rating, as libmf and Funk do; each
 * bias's penalty once, as in Koren's baseline estimates, so at rest a
 * bias is its residuals' sum / (count + reg_bias) and a film seen twice
 * does not get the bias of a film seen a thousand times).  Per rating:
 *   e = r - r^;  bu += lr (e - reg_bias / n_u bu);  bi += lr (e - reg_bias / n_i bi)
 *   p_u += lr (e q_i - reg p_u);  q_i += lr (e p_u - reg q_i)
 * with lr = lr0 * lr_decay^epoch.  Scores are predicted ratings.
 *
 * Speed (libmf's way, Chin et al. 2015): users and items are cut into B
 * random groups each, so the ratings fall into B x B blocks, stored
 * together, each in a random order.  Threads take blocks from a small
 * scheduler (a random block not done this epoch whose user and item
 * groups no other thread holds) and update the shared tables without
 * locks (Hogwild, Recht et al. 2011); B is chosen so that the rows the
 * threads hold at once fit in the shared cache, and every epoch visits
 * the blocks in a new random order, each from a random start.  The
 * tables live on transparent huge pages (no TLB miss per row).  The inner
 * step is one pass over the two rows (dot product, then both updates) in
 * AVX2+FMA when the CPU has it, with the rows of the rating a few steps
 * ahead prefetched; no allocation, no call through a pointer.  One
 * thread and a fixed seed give bit-identical factors.  The epoch's loss
 * (logged) is the mean squared error seen before each update.
 *
 * Early stopping: given a valid set of ratings (ember train --valid), the
 * fit validates the RMSE of its predictions after every epoch (not the
 * ranking metric of the other models: that is not what svd minimises),
 * stops after `patience` epochs without a lower one and keeps the best
 * epoch's tables.  Without one, `epochs` epochs (the defaults chosen on
 * held-out ratings, bench/bench_rating.c --mode select).
 *
 * A history query (a new user, item ids, no ratings): the model learnt
 * only from ratings, so a new user's vector is the direction of the sum
 * of the history's item vectors, its norm half the mean norm of the
 * trained user vectors (SVD_FOLDIN_SCALE), bu = 0: the implicit-only term
 * of SVD++, with the item factors standing in for y_j.  A known user who
 * brings extra items gets the count-weighted blend of his vector and
 * that one.  Fitting p_u by SGD towards the training mean as every
 * history item's rating was rejected: it teaches the vector to *dislike*
 * the history wherever its items are rated above the mean.
 *
 * similar(i): cosine of item factor vectors (mf_similar_cosine).
 */
#include "core/kernels.h"
#include "models/epochs.h"
#include "models/mf.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define SVD_MAX_FACTORS 1024
#define SVD_PREFETCH 8 /* ratings ahead whose rows are prefetched */
/* A new user's vector norm, in units of the mean trained user's: chosen
 * by the RMSE of users' held-out ratings predicted from their history
 * alone (bench_rating's slices 0-2 of fold1.train held out, the rest
 * trained): 0.25 -> 1.0326, 0.35 -> 1.0321, 0.5 -> 1.0326, 0.7 -> 1.0354,
 * 1 -> 1.0443, no history 1.0364; the known users 0.9216.  0.5 rather
 * than 0.35 (a tie) for a history that moves the ranking more. */
#define SVD_FOLDIN_SCALE 0.5

typedef struct {
    int64_t factors;
    int64_t epochs;
    double lr;
    double lr_decay;
    double reg;
    double reg_bias;
    double init_std;
    int64_t patience;
} svd_params;

static const model_param svd_param_table[] = {
    {"factors", PARAM_INT, offsetof(svd_params, factors), "128", 1, SVD_MAX_FACTORS, NULL,
     "latent dimensions"},
    {"epochs", PARAM_INT, offsetof(svd_params, epochs), "40", 1, 10000, NULL,
     "passes over the training ratings"},
    {"lr", PARAM_FLOAT, offsetof(svd_params, lr), "0.03", 1e-6, 1, NULL,
     "SGD learning rate of the first epoch"},
    {"lr_decay", PARAM_FLOAT, offsetof(svd_params, lr_decay), "0.95", 0.5, 1, NULL,
     "learning rate multiplied by this after every epoch"},
    {"reg", PARAM_FLOAT, offsetof(svd_params, reg), "0.085", 0, 10, NULL,
     "L2 regularization of the factor vectors"},
    {"reg_bias", PARAM_FLOAT, offsetof(svd_params, reg_bias), "3", 0, 1000, NULL,
     "L2 regularization of each bias, spread over its ratings (Koren's baseline: "
     "b = sum of residuals / (count + reg_bias))"},
    {"init_std", PARAM_FLOAT, offsetof(svd_params, init_std), "0.01", 0, 1, NULL,
     "standard deviation of the initial factors"},
    {"patience", PARAM_INT, offsetof(svd_params, patience), "3", 0, 10000, NULL,
     "with a valid set: stop after this many epochs without a lower valid RMSE, keeping the "
     "best epoch (0: run all epochs)"},
};

typedef struct {
    mf_factors f;
    float user_norm; /* mean |p_u| over users with ratings: a new user's vector norm */
} svd_state;

typedef struct {
    uint32_t u, i;
    float r;
} svd_rating;

/* ------------------------------------------------ shared with svdpp.c */


/* ---------------------------------------------------------- fold-in */

/* Mean of |p_u| over the users with training interactions (0 if none). */
static float mean_user_norm(const mf_factors *f, const model_hist *h)
{
    const ember_kernel_table *K = ember_kernels();
    double sum = 0;
    size_t n = 0;
    for (size_t u = 0; u < f->n_users; u++) {
        if (h->ptr[u + 1] == h->ptr[u])
            continue;
        const float *p = f->P + u * f->dim;
        sum += sqrt((double)K->dot(p, p, f->dim));
        n++;
    }
    return n ? (float)(sum / (double)n) : 0.0f;
}

/* -------------------------------------------------------- SGD epoch */

/* What one pass of SGD steps reads and writes. */
typedef struct {
    float *P, *Q, *bu, *bi;
    const float *inv_nu, *inv_ni; /* 1 / ratings of each user, item */
    float mu, lr, keep;           /* keep = 1 - lr reg */
    float lr_reg_b;               /* lr reg_bias */
    size_t d;
} sgd_ctx;

/* One pass over ratings[0..n): the reference version.  Returns the sum
 * of squared errors seen before each update. */
static double sgd_run_generic(const sgd_ctx *c, const svd_rating *restrict rt, size_t n)
{
    float *restrict P = c->P, *restrict Q = c->Q, *restrict bu = c->bu, *restrict bi = c->bi;
    size_t d = c->d;
    float keep = c->keep, lr = c->lr;
    double sse = 0;
    for (size_t k = 0; k < n; k++) {
        if (k + SVD_PREFETCH < n) {
            __builtin_prefetch(P + (size_t)rt[k + SVD_PREFETCH].u * d, 1, 3);
            __builtin_prefetch(Q + (size_t)rt[k + SVD_PREFETCH].i * d, 1, 3);
        }
        uint32_t u = rt[k].u, i = rt[k].i;
        float *p = P + (size_t)u * d, *q = Q + (size_t)i * d;
        float dot = 0;
        for (size_t j = 0; j < d; j++)
            dot += p[j] * q[j];
        float e = rt[k].r - (c->mu + bu[u] + bi[i] + dot);
        sse += (double)e * e;
        float g = lr * e;
        bu[u] = (1.0f - c->lr_reg_b * c->inv_nu[u]) * bu[u] + g;
        bi[i] = (1.0f - c->lr_reg_b * c->inv_ni[i]) * bi[i] + g;
        for (size_t j = 0; j < d; j++) {
            float pj = p[j], qj = q[j];
            p[j] = keep * pj + g * qj;
            q[j] = keep * qj + g * pj;
        }
    }
    return sse;
}

__attribute__((target("avx2,fma"))) static inline float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The same pass in AVX2+FMA (call only when the CPU has both). */
__attribute__((target("avx2,fma"))) static double sgd_run_avx2(const sgd_ctx *c,
                                                               const svd_rating *restrict rt,
                                                               size_t n)
{
    float *restrict P = c->P, *restrict Q = c->Q, *restrict bu = c->bu, *restrict bi = c->bi;
    size_t d = c->d, d8 = d & ~(size_t)7, row_bytes = d * sizeof(float);
    float keep = c->keep, lr = c->lr;
    const __m256 vkeep = _mm256_set1_ps(keep);
    double sse = 0;
    for (size_t k = 0; k < n; k++) {
        if (k + SVD_PREFETCH < n) {
            const char *pp = (const char *)(P + (size_t)rt[k + SVD_PREFETCH].u * d);
            const char *qq = (const char *)(Q + (size_t)rt[k + SVD_PREFETCH].i * d);
            for (size_t off = 0; off < row_bytes; off += 64) {
                _mm_prefetch(pp + off, _MM_HINT_T0);
                _mm_prefetch(qq + off, _MM_HINT_T0);
            }
        }
        uint32_t u = rt[k].u, i = rt[k].i;
        float *p = P + (size_t)u * d, *q = Q + (size_t)i * d;
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        size_t j = 0;
        for (; j + 16 <= d8; j += 16) {
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(p + j), _mm256_loadu_ps(q + j), s0);
            s1 = _mm256_fmadd_ps(_mm256_loadu_ps(p + j + 8), _mm256_loadu_ps(q + j + 8), s1);
        }
        if (j < d8)
            s0 = _mm256_fmadd_ps(_mm256_loadu_ps(p + j), _mm256_loadu_ps(q + j), s0);
        float dot = hsum8(_mm256_add_ps(s0, s1));
        for (j = d8; j < d; j++)
            dot += p[j] * q[j];
        float e = rt[k].r - (c->mu + bu[u] + bi[i] + dot);
        sse += (double)e * e;
        float g = lr * e;
        bu[u] = (1.0f - c->lr_reg_b * c->inv_nu[u]) * bu[u] + g;
        bi[i] = (1.0f - c->lr_reg_b * c->inv_ni[i]) * bi[i] + g;
        const __m256 vg = _mm256_set1_ps(g);
        for (j = 0; j < d8; j += 8) {
            __m256 pj = _mm256_loadu_ps(p + j), qj = _mm256_loadu_ps(q + j);
            _mm256_storeu_ps(p + j, _mm256_fmadd_ps(vg, qj, _mm256_mul_ps(vkeep, pj)));
            _mm256_storeu_ps(q + j, _mm256_fmadd_ps(vg, pj, _mm256_mul_ps(vkeep, qj)));
        }
        for (; j < d; j++) {
            float pj = p[j], qj = q[j];
            p[j] = keep * pj + g * qj;
            q[j] = keep * qj + g * pj;
        }
    }
    return sse;
}

/* --------------------------------------------------------------- fit */

static void svd_destroy(ember_model *m)
{
    svd_state *s = m->state;
    if (!s)
        return;
    mf_free(&s->f);
    free(s);
    m->state = NULL;
}

/* ------------------------------------------------ blocks and schedule */

/* The rating matrix cut into B x B blocks: users in B groups and items
 * in B groups (each group a random set of about n/B rows), the ratings
 * of each block stored together, in random order. */
typedef struct {
    size_t B;
    svd_rating *rt; /* nnz, block after block */
    uint64_t *ptr;  /* B*B + 1 */
} svd_blocks;

static void blocks_free(svd_blocks *b)
{
    free(b->rt);
    free(b->ptr);
}

/* Row r of n goes to group g[r]: a random permutation cut in B parts. */
static int random_groups(size_t n, size_t B, ember_rng *rng, uint32_t **out)
{
    uint32_t *g = ember_alloc(n ? n : 1, sizeof *g);
    if (!g)
        return EMBER_ENOMEM;
    for (size_t r = 0; r < n; r++)
        g[r] = (uint32_t)r;
    ember_rng_shuffle_u32(rng, g, n);
    uint32_t *grp = ember_alloc(n ? n : 1, sizeof *grp);
    if (!grp) {
        free(g);
        return EMBER_ENOMEM;
    }
    for (size_t k = 0; k < n; k++)
        grp[g[k]] = (uint32_t)(k * B / n);
    free(g);
    *out = grp;
    return EMBER_OK;
}

static int blocks_build(const ember_dataset *train, size_t B, ember_rng *rng, svd_blocks *out)
{
    memset(out, 0, sizeof *out);
    out->B = B;
    uint32_t *ug = NULL, *ig = NULL;
    uint64_t *fill = NULL;
    int st = random_groups(train->n_users, B, rng, &ug);
    if (st == EMBER_OK)
        st = random_groups(train->n_items, B, rng, &ig);
    out->rt = ember_alloc(train->nnz, sizeof *out->rt);
    out->ptr = ember_calloc(B * B + 1, sizeof *out->ptr);
    fill = ember_alloc(B * B, sizeof *fill);
    if (st || !out->rt || !out->ptr || !fill) {
        free(ug);
        free(ig);
        free(fill);
        blocks_free(out);
        return EMBER_ENOMEM;
    }
    for (size_t u = 0; u < train->n_users; u++)
        for (uint64_t k = train->u_ptr[u]; k < train->u_ptr[u + 1]; k++)
            out->ptr[(size_t)ug[u] * B + ig[train->u_item[k]] + 1]++;
    for (size_t b = 0; b < B * B; b++) {
        out->ptr[b + 1] += out->ptr[b];
        fill[b] = out->ptr[b];
    }
    for (size_t u = 0; u < train->n_users; u++)
        for (uint64_t k = train->u_ptr[u]; k < train->u_ptr[u + 1]; k++) {
            uint32_t i = train->u_item[k];
            out->rt[fill[(size_t)ug[u] * B + ig[i]]++] =
                (svd_rating){(uint32_t)u, i, train->u_rating[k]};
        }
    for (size_t b = 0; b < B * B; b++) {
        svd_rating *r = out->rt + out->ptr[b];
        for (size_t k = (size_t)(out->ptr[b + 1] - out->ptr[b]); k > 1; k--) {
            size_t j = (size_t)ember_rng_below(rng, k);
            svd_rating t = r[k - 1];
            r[k - 1] = r[j];
            r[j] = t;
        }
    }
    free(ug);
    free(ig);
    free(fill);
    return EMBER_OK;
}

/* Which block a thread trains next (libmf's scheduler, Chin et al. 2015,
 * "A Fast Parallel Stochastic Gradient Method for Matrix Factorization in
 * Shared Memory Systems"): a random block not yet done this epoch whose
 * user group and item group no other thread holds, so the threads'
 * working sets stay apart and small enough for the shared cache; when
 * every remaining block clashes with a held one, a clashing one (Hogwild
 * tolerates the overlap) rather than waiting.  Call under the lock. */
typedef struct {
    size_t B;
    uint8_t *state;            /* B*B: 0 to do, 1 taken, 2 done */
    uint32_t *row_busy, *col_busy;
} svd_sched;

#define SVD_NONE SIZE_MAX

static size_t sched_pick(svd_sched *s, ember_rng *rng)
{
    size_t B = s->B, pick = SVD_NONE, clash = SVD_NONE, n_free = 0, n_clash = 0;
    for (size_t b = 0; b < B * B; b++) {
        if (s->state[b])
            continue;
        if (!s->row_busy[b / B] && !s->col_busy[b % B]) {
            if (ember_rng_below(rng, ++n_free) == 0)
                pick = b;
        } else if (ember_rng_below(rng, ++n_clash) == 0) {
            clash = b;
        }
    }
    if (pick == SVD_NONE)
        pick = clash;
    if (pick != SVD_NONE) {
        s->state[pick] = 1;
        s->row_busy[pick / B]++;
        s->col_busy[pick % B]++;
    }
    return pick;
}

static void sched_release(svd_sched *s, size_t b)
{
    s->state[b] = 2;
    s->row_busy[b / s->B]--;
    s->col_busy[b % s->B]--;
}

/* Groups per side: at least 2 per thread (so that a free block exists),
 * and enough that the rows T threads hold at once (T blocks, each 1/B of
 * the user and of the item table) fit in about 12 MB of shared cache. */
static size_t block_count(size_t n_users, size_t n_items, size_t d, int threads)
{
    double bytes = (double)(n_users + n_items) * (double)d * sizeof(float);
    size_t B = (size_t)ceil(bytes * threads / (12.0 * 1024 * 1024));
    return EMBER_MIN((size_t)64, EMBER_MAX(B, 2 * (size_t)threads));
}

/* --------------------------------------------------------------- fit */

static int svd_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                   const ember_fit_opts *o)
{
    const svd_params *p = m->params;
    svd_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    size_t d = (size_t)p->factors, nnz = train->nnz;
    if (mf_alloc(&s->f, m->n_users, m->n_items, d, true))
        return EMBER_ENOMEM;
    mf_init_normal(&s->f, o->seed, p->init_std);
    s->f.mu = m->rating_mean;
    float *P = mf_P(&s->f), *Q = mf_Q(&s->f), *bu = mf_bu(&s->f), *bi = mf_bi(&s->f);

    int threads = model_threads(o);
    size_t B = block_count(m->n_users, m->n_items, d, threads);
    ember_rng rng;
    ember_rng_seed(&rng, o->seed ^ 0x5eed5eed5eedULL);
    svd_blocks blk;
    if (blocks_build(train, B, &rng, &blk))
        return EMBER_ENOMEM;
    svd_sched sc = {.B = B};
    sc.state = ember_alloc(B * B, 1);
    sc.row_busy = ember_calloc(B, sizeof *sc.row_busy);
    sc.col_busy = ember_calloc(B, sizeof *sc.col_busy);
    /* 1 / count of each user, then of each item (count 0: never read) */
    float *inv = ember_alloc(m->n_users + m->n_items, sizeof *inv);
    int st = !sc.state || !sc.row_busy || !sc.col_busy || !inv ? EMBER_ENOMEM : EMBER_OK;
    for (size_t u = 0; st == EMBER_OK && u < m->n_users; u++)
        inv[u] = 1.0f / (float)EMBER_MAX(data_user_len(train, (uint32_t)u), (size_t)1);
    for (size_t i = 0; st == EMBER_OK && i < m->n_items; i++)
        inv[m->n_users + i] = 1.0f / (float)EMBER_MAX(data_item_len(train, (uint32_t)i), (size_t)1);

    /* early stopping on the valid RMSE (not on a ranking metric) */
    bool track = valid && valid->nnz > 0; /* validated and logged; stops with patience */
    ember_fit_opts eo = *o;
    eo.valid_fn = track ? mf_valid_rmse : NULL;
    eo.valid_ctx = (void *)valid;
    model_epochs e = {0};
    mf_snapshot best = {0};
    if (st == EMBER_OK && track && p->patience > 0) {
        float *const tables[4] = {P, Q, bu, bi};
        const size_t lens[4] = {m->n_users * d, m->n_items * d, m->n_users, m->n_items};
        st = mf_snapshot_init(&best, tables, lens, 4);
    }
    if (st == EMBER_OK)
        st = model_epochs_begin(&e, m, &eo, (size_t)p->patience, 1);
    e.metric = "valid_rmse";
    e.lower_better = true;
    size_t last = 0;
    bool use_avx2 = strcmp(ember_kernels()->name, "avx2") == 0;
    sgd_ctx c = {.P = P, .Q = Q, .bu = bu, .bi = bi, .inv_nu = inv, .inv_ni = inv + m->n_users,
                 .mu = s->f.mu, .d = d};
    for (int64_t ep = 0; st == EMBER_OK && ep < p->epochs; ep++) {
        c.lr = (float)(p->lr * pow(p->lr_decay, (double)ep));
        c.keep = 1.0f - c.lr * (float)p->reg;
        c.lr_reg_b = c.lr * (float)p->reg_bias;
        memset(sc.state, 0, B * B);
        uint64_t epoch_seed = ember_rng_next(&rng);
        double sse = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sse)
        {
            ember_rng tr;
            ember_rng_seed(&tr, epoch_seed + (uint64_t)omp_get_thread_num());
            for (;;) {
                size_t b;
#pragma omp critical(svd_sched)
                b = sched_pick(&sc, &tr);
                if (b == SVD_NONE)
                    break;
                /* the block's fixed random order, from a random start */
                const svd_rating *r = blk.rt + blk.ptr[b];
                size_t n = (size_t)(blk.ptr[b + 1] - blk.ptr[b]);
                size_t at = n ? (size_t)ember_rng_below(&tr, n) : 0;
                if (use_avx2)
                    sse += sgd_run_avx2(&c, r + at, n - at) + sgd_run_avx2(&c, r, at);
                else
                    sse += sgd_run_generic(&c, r + at, n - at) + sgd_run_generic(&c, r, at);
#pragma omp critical(svd_sched)
                sched_release(&sc, b);
            }
        }
        double loss = sse / (double)nnz;
        if (!isfinite(loss)) {
            st = ember_fail(EMBER_EINVAL,
                            "svd: training diverged in epoch %lld (lr=%g is too large)",
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
    blocks_free(&blk);
    free(inv);
    free(sc.state);
    free(sc.row_busy);
    free(sc.col_busy);
    if (st)
        return st;
    /* Rows that no rating touched keep their random start: clear them, so
     * such a user gets the baseline mu + bi and such an item mu + bu. */
    for (size_t u = 0; u < m->n_users; u++)
        if (train->u_ptr[u + 1] == train->u_ptr[u])
            memset(P + u * d, 0, d * sizeof *P);
    for (size_t i = 0; i < m->n_items; i++)
        if (train->i_ptr[i + 1] == train->i_ptr[i])
            memset(Q + i * d, 0, d * sizeof *Q);
    s->user_norm = mean_user_norm(&s->f, &m->hist);
    return EMBER_OK;
}

/* ----------------------------------------------------------- scoring */

/* The query's user vector and bias (see the top of the file). */
static void query_vector(const ember_model *m, const ember_query *q, float *p, float *bu)
{
    const svd_state *s = m->state;
    size_t d = s->f.dim, na = 0, nb = q->hist ? q->n_hist : 0;
    if (q->user >= 0) {
        memcpy(p, s->f.P + (size_t)q->user * d, d * sizeof *p);
        *bu = s->f.bu[q->user];
        na = (size_t)(m->hist.ptr[q->user + 1] - m->hist.ptr[q->user]);
    } else {
        memset(p, 0, d * sizeof *p);
        *bu = 0.0f;
    }
    if (nb == 0)
        return;
    double h[SVD_MAX_FACTORS] = {0};
    for (size_t k = 0; k < nb; k++) {
        const float *qj = s->f.Q + (size_t)q->hist[k] * d;
        for (size_t j = 0; j < d; j++)
            h[j] += qj[j];
    }
    double norm = 0;
    for (size_t j = 0; j < d; j++)
        norm += h[j] * h[j];
    if (!(norm > 0))
        return;
    double wb = (double)nb / (double)(na + nb);
    double scale = wb * SVD_FOLDIN_SCALE * s->user_norm / sqrt(norm);
    for (size_t j = 0; j < d; j++)
        p[j] = (float)((1.0 - wb) * p[j] + scale * h[j]);
}

static int svd_score_all(const ember_model *m, const ember_query *q, float *out)
{
    const svd_state *s = m->state;
    float p[SVD_MAX_FACTORS], bu;
    query_vector(m, q, p, &bu);
    mf_score_all(&s->f, p, bu, out);
    return EMBER_OK;
}

static void svd_dot_items(const ember_model *m, const float **Q, const float **bias, size_t *dim)
{
    const svd_state *s = m->state;
    mf_dot_items(&s->f, Q, bias, dim);
}

static int svd_dot_query(const ember_model *m, const ember_query *q, float *x, float *c)
{
    const svd_state *s = m->state;
    float bu;
    query_vector(m, q, x, &bu);
    *c = s->f.mu + bu;
    return EMBER_OK;
}

static int svd_score_items(const ember_model *m, const ember_query *q, const uint32_t *items,
                           size_t n, float *out)
{
    const svd_state *s = m->state;
    float p[SVD_MAX_FACTORS], bu;
    query_vector(m, q, p, &bu);
    mf_score_items(&s->f, p, bu, items, n, out);
    return EMBER_OK;
}

static int svd_similar(const ember_model *m, uint32_t item, float *out)
{
    const svd_state *s = m->state;
    mf_similar_cosine(&s->f, NULL, item, out);
    return EMBER_OK;
}

/* ------------------------------------------------------------- files */

static int svd_save(const ember_model *m, mf_writer *w)
{
    const svd_state *s = m->state;
    return mf_save(&s->f, w, "svd");
}

static int svd_load(ember_model *m, const mf_reader *r)
{
    const svd_params *p = m->params;
    svd_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    int st = mf_load(&s->f, r, "svd", m->n_users, m->n_items, true);
    if (st)
        return st;
    if (s->f.dim != (size_t)p->factors)
        return ember_fail(EMBER_ECORRUPT, "svd: factor tables have %zu columns, factors=%lld",
                          s->f.dim, (long long)p->factors);
    s->user_norm = mean_user_norm(&s->f, &m->hist);
    return EMBER_OK;
}

const ember_model_ops model_svd = {
    .name = "svd",
    .summary = "biased matrix factorization of ratings by Hogwild SGD (Koren et al. 2009)",
    .predicts_ratings = true,
    .params = svd_param_table,
    .n_params = EMBER_ARRAY_LEN(svd_param_table),
    .params_size = sizeof(svd_params),
    .fit = svd_fit,
    .score_all = svd_score_all,
    .score_items = svd_score_items,
    .dot_items = svd_dot_items,
    .dot_query = svd_dot_query,
    .similar = svd_similar,
    .save = svd_save,
    .load = svd_load,
    .destroy = svd_destroy,
};
