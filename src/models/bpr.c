/*
 * bpr.c — matrix factorization trained for ranking from implicit feedback:
 * BPR-MF (Rendle, Freudenthaler, Gantner & Schmidt-Thieme 2009, "BPR:
 * Bayesian Personalized Ranking from Implicit Feedback", UAI) and, as an
 * option, the WARP loss (Weston, Bengio & Usunier 2011, "WSABIE: Scaling
 * Up to Large Vocabulary Image Annotation", IJCAI).
 *
 * score(u, i) = p_u . q_i + b_i   (b_i: optional item bias)
 *
 * BPR: for a triple (u, i, j), i a positive of u and j a sampled item u
 * has not interacted with, x = score(u, i) - score(u, j) and SGD ascends
 *   ln sigmoid(x) - reg (|p_u|^2 + |q_i|^2 + |q_j|^2) - reg_bias (b_i^2 + b_j^2)
 * with g = sigmoid(-x):  p_u += lr (g (q_i - q_j) - reg p_u),
 * q_i += lr (g p_u - reg q_i),  q_j += lr (-g p_u - reg q_j).
 * WARP: negatives are drawn until one violates the margin (score(u, j) >
 * score(u, i) - 1) or max_trials draws fail; the violating one is updated
 * with weight ln(floor((n_items - 1) / draws)) (the rank estimate of
 * Weston et al.), clipped at 10 as LightFM does.
 *
 * Negatives are uniform over the catalogue, or proportional to popularity
 * (the item of a uniformly drawn interaction); a draw that hits one of the
 * user's positives (a hash set of the training pairs) is redrawn.
 * An epoch is as many triples as there are training interactions, each
 * positive drawn uniformly.  Hogwild (Niu, Recht, Ré & Wright 2011): the
 * threads update the shared tables without locks, each with its own RNG
 * (seed + thread id); with one thread a fit is exactly reproducible.  The
 * learning rate decays by lr_decay per epoch.  With a valid set the model
 * validates every eval_every epochs, keeps a snapshot of the best epoch
 * and restores it at the end (early stopping with patience).
 *
 * The BPR loop does no allocation and no indirect call: an AVX2+FMA step
 * (chosen once, following ember_kernels()) or a plain C one, inlined; it
 * is software-pipelined so that the random reads of several samples are
 * in flight at once (one epoch over 5M positives is bound by memory
 * latency, not arithmetic).
 *
 * Fold-in of a history (new user, or a known user bringing items): a
 * fresh user vector, zero, trained by foldin_epochs passes over the
 * history with the items fixed, one uniform negative per positive per
 * pass, at foldin_lr and the training reg, from a fixed seed (the same
 * history always gives the same scores).  Defaults: 30 passes at lr 0.05,
 * chosen on ML-100K so that fold-in of a known user's history recommends
 * nearly what the trained vector does (mean top-10 overlap 8.9 of 10) at
 * the same valid NDCG@10.  The fold-in uses the BPR step whatever the
 * training loss.
 */
#include "core/kernels.h"
#include "models/epochs.h"
#include "models/mf.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

enum { NEG_UNIFORM, NEG_POP };
enum { LOSS_BPR, LOSS_WARP };

typedef struct {
    int64_t factors;
    int64_t epochs;
    double lr;
    double lr_decay;
    double reg;
    double reg_bias;
    int item_bias;
    int neg;
    int loss;
    int64_t max_trials;
    double init_std;
    int64_t eval_every;
    int64_t patience;
    int64_t update_epochs;
    int64_t foldin_epochs;
    double foldin_lr;
} bpr_params;

/* Defaults chosen on the ML-100K general split's valid set (mean of 3
 * seeds, fixed epochs without early stopping): lr 0.1 decaying by 0.97 an
 * epoch for 100 epochs, reg 0.015, an item bias (valid NDCG@10 0.2476). */
static const model_param bpr_param_table[] = {
    {"factors", PARAM_INT, offsetof(bpr_params, factors), "64", 1, 1024, NULL,
     "latent dimension"},
    {"epochs", PARAM_INT, offsetof(bpr_params, epochs), "100", 1, 100000, NULL,
     "epochs (each as many samples as training interactions); with a valid set, the most"},
    {"lr", PARAM_FLOAT, offsetof(bpr_params, lr), "0.1", 1e-9, 100, NULL,
     "SGD learning rate of the first epoch"},
    {"lr_decay", PARAM_FLOAT, offsetof(bpr_params, lr_decay), "0.97", 0.5, 1, NULL,
     "learning rate multiplier per epoch"},
    {"reg", PARAM_FLOAT, offsetof(bpr_params, reg), "0.015", 0, 10, NULL,
     "L2 regularization of the factor rows, applied at each update"},
    {"reg_bias", PARAM_FLOAT, offsetof(bpr_params, reg_bias), "0", 0, 10, NULL,
     "L2 regularization of the item biases"},
    {"item_bias", PARAM_BOOL, offsetof(bpr_params, item_bias), "true", 0, 0, NULL,
     "learn an item bias b_i"},
    {"neg", PARAM_CHOICE, offsetof(bpr_params, neg), "uniform", 0, 0, "uniform|pop",
     "negative sampling: uniform over items, or proportional to popularity"},
    {"loss", PARAM_CHOICE, offsetof(bpr_params, loss), "bpr", 0, 0, "bpr|warp",
     "pairwise loss: BPR (log-sigmoid) or WARP (rank-weighted hinge)"},
    {"max_trials", PARAM_INT, offsetof(bpr_params, max_trials), "10", 1, 100000, NULL,
     "WARP: negatives drawn per positive before giving up"},
    {"init_std", PARAM_FLOAT, offsetof(bpr_params, init_std), "0.1", 0, 10, NULL,
     "standard deviation of the seeded normal initialization"},
    {"eval_every", PARAM_INT, offsetof(bpr_params, eval_every), "5", 1, 1000, NULL,
     "validate every this many epochs (when a valid set is given)"},
    {"patience", PARAM_INT, offsetof(bpr_params, patience), "4", 0, 1000, NULL,
     "stop after this many validations without improvement (0: never); the best "
     "validated epoch is kept"},
    {"update_epochs", PARAM_INT, offsetof(bpr_params, update_epochs), "10", 1, 100000, NULL,
     "online update: passes over the new interactions (BPR steps at lr)"},
    {"foldin_epochs", PARAM_INT, offsetof(bpr_params, foldin_epochs), "30", 1, 100000, NULL,
     "fold-in: SGD passes over a new history (items fixed)"},
    {"foldin_lr", PARAM_FLOAT, offsetof(bpr_params, foldin_lr), "0.05", 1e-9, 100, NULL,
     "fold-in: learning rate"},
};

typedef struct {
    mf_factors f;
    float *inv_norm; /* 1 / |Q_i| (0 for a zero row), for similar() */
} bpr_state;

static void bpr_destroy(ember_model *m)
{
    bpr_state *s = m->state;
    if (!s)
        return;
    mf_free(&s->f);
    free(s->inv_norm);
    free(s);
    m->state = NULL;
}

/* ------------------------------------------------------- the kernels */

/* The two operations of a step: the score difference and the update of
 * the three rows.  gu = lr g (the gradient scale), lr_reg = lr reg; the
 * item j update is skipped when qj is NULL (fold-in updates p only). */
typedef struct {
    float (*dot)(const float *p, const float *q, size_t d);
    void (*update)(float *restrict p, float *restrict qi, float *restrict qj, size_t d, float gu,
                   float lr_reg);
} step_kernels;

static float dot_c(const float *p, const float *q, size_t d)
{
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t f = 0;
    for (; f + 4 <= d; f += 4) {
        s0 += p[f] * q[f];
        s1 += p[f + 1] * q[f + 1];
        s2 += p[f + 2] * q[f + 2];
        s3 += p[f + 3] * q[f + 3];
    }
    for (; f < d; f++)
        s0 += p[f] * q[f];
    return (s0 + s1) + (s2 + s3);
}

static void update_c(float *restrict p, float *restrict qi, float *restrict qj, size_t d,
                     float gu, float lr_reg)
{
    for (size_t f = 0; f < d; f++) {
        float pf = p[f], qif = qi[f], qjf = qj[f];
        p[f] = pf + gu * (qif - qjf) - lr_reg * pf;
        qi[f] = qif + gu * pf - lr_reg * qif;
        qj[f] = qjf - gu * pf - lr_reg * qjf;
    }
}

__attribute__((target("avx2,fma"))) static float dot_avx2(const float *p, const float *q,
                                                          size_t d)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t f = 0;
    for (; f + 16 <= d; f += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(p + f), _mm256_loadu_ps(q + f), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(p + f + 8), _mm256_loadu_ps(q + f + 8), s1);
    }
    for (; f + 8 <= d; f += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(p + f), _mm256_loadu_ps(q + f), s0);
    __m256 v = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float s = _mm_cvtss_f32(h);
    for (; f < d; f++)
        s += p[f] * q[f];
    return s;
}

__attribute__((target("avx2,fma"))) static void update_avx2(float *restrict p,
                                                            float *restrict qi,
                                                            float *restrict qj, size_t d,
                                                            float gu, float lr_reg)
{
    const __m256 vg = _mm256_set1_ps(gu), vr = _mm256_set1_ps(lr_reg);
    size_t f = 0;
    for (; f + 8 <= d; f += 8) {
        __m256 pf = _mm256_loadu_ps(p + f), qif = _mm256_loadu_ps(qi + f);
        __m256 qjf = _mm256_loadu_ps(qj + f);
        __m256 np = _mm256_fnmadd_ps(vr, pf, _mm256_fmadd_ps(vg, _mm256_sub_ps(qif, qjf), pf));
        __m256 ni = _mm256_fnmadd_ps(vr, qif, _mm256_fmadd_ps(vg, pf, qif));
        __m256 nj = _mm256_fnmadd_ps(vr, qjf, _mm256_fnmadd_ps(vg, pf, qjf));
        _mm256_storeu_ps(p + f, np);
        _mm256_storeu_ps(qi + f, ni);
        _mm256_storeu_ps(qj + f, nj);
    }
    for (; f < d; f++) {
        float pf = p[f], qif = qi[f], qjf = qj[f];
        p[f] = pf + gu * (qif - qjf) - lr_reg * pf;
        qi[f] = qif + gu * pf - lr_reg * qif;
        qj[f] = qjf - gu * pf - lr_reg * qjf;
    }
}

static step_kernels choose_kernels(void)
{
    if (ember_kernels() == &ember_kernels_avx2)
        return (step_kernels){dot_avx2, update_avx2};
    return (step_kernels){dot_c, update_c};
}

/* ------------------------------------------------------------ sampling */

/* Uniform in [0, n) by multiply-shift (Lemire); the bias is below 2^-32
 * for any n this model sees. */
static inline uint64_t draw(ember_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)ember_rng_next(r) * n) >> 64);
}

/* Whether the sorted a[0..n) holds x: a branch-free binary search (the
 * compare becomes a conditional move, no mispredicted branches). */
/* The training pairs as a set, for the negative check of a fit: open
 * addressing with linear probing over 32-bit fingerprints of a 64-bit
 * hash of (u, i); 0 marks an empty slot; at most 2/3 full.  One check is
 * one cache line that the pipeline prefetches, where a binary search
 * among the user's items is a chain of dependent misses.  A fingerprint
 * collision (about 2^-32 a probe) can only reject a true negative, which
 * costs a redraw; a positive is never taken for a negative. */
typedef struct {
    uint32_t *slot;
    uint64_t mask;
} pair_set;

static inline uint64_t pair_hash(uint32_t u, uint32_t i)
{
    uint64_t x = (uint64_t)u << 32 | i; /* splitmix64's finalizer */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static inline uint32_t pair_fingerprint(uint64_t h)
{
    return (uint32_t)(h >> 32) | 1u;
}

static inline bool pair_set_has(const pair_set *ps, uint64_t h)
{
    uint32_t fp = pair_fingerprint(h);
    for (uint64_t k = h & ps->mask;; k = (k + 1) & ps->mask) {
        uint32_t v = ps->slot[k];
        if (v == fp)
            return true;
        if (v == 0)
            return false;
    }
}

static int pair_set_build(pair_set *ps, const ember_dataset *train)
{
    uint64_t n = 1024;
    while (n < train->nnz + train->nnz / 2)
        n *= 2;
    ps->slot = ember_calloc(n, sizeof *ps->slot);
    if (!ps->slot)
        return EMBER_ENOMEM;
    ps->mask = n - 1;
    for (size_t u = 0; u < train->n_users; u++)
        for (uint64_t q = train->u_ptr[u]; q < train->u_ptr[u + 1]; q++) {
            uint64_t h = pair_hash((uint32_t)u, train->u_item[q]);
            uint32_t fp = pair_fingerprint(h);
            uint64_t k = h & ps->mask;
            while (ps->slot[k] != 0 && ps->slot[k] != fp)
                k = (k + 1) & ps->mask;
            ps->slot[k] = fp;
        }
    return EMBER_OK;
}

/* The catalogue a fit draws negatives from. */
typedef struct {
    const uint32_t *item; /* train CSR items (popularity draws pick one) */
    size_t nnz, n_items;
    int neg;
    const pair_set *pairs; /* the training pairs (NULL in fold-in) */
} neg_sampler;

static inline uint32_t draw_item(const neg_sampler *ns, ember_rng *r)
{
    return ns->neg == NEG_UNIFORM ? (uint32_t)draw(r, ns->n_items) : ns->item[draw(r, ns->nnz)];
}

/* A negative for user u of a fit: an item u has not interacted with, or
 * UINT32_MAX after 32 draws that all hit a positive. */
static inline uint32_t draw_negative(const neg_sampler *ns, ember_rng *r, uint32_t u)
{
    for (int t = 0; t < 32; t++) {
        uint32_t j = draw_item(ns, r);
        if (!pair_set_has(ns->pairs, pair_hash(u, j)))
            return j;
    }
    return UINT32_MAX;
}

/* sigmoid(-x), and -ln sigmoid(x) into *loss when loss is not NULL,
 * stably for any x. */
static inline float sigmoid_neg(float x, float *loss)
{
    float e = expf(-fabsf(x)); /* in (0, 1] */
    if (loss)
        *loss = (x < 0 ? -x : 0.0f) + log1pf(e);
    return x >= 0 ? e / (1.0f + e) : 1.0f / (1.0f + e);
}

/* ---------------------------------------------------------------- fit */

typedef struct {
    alignas(64) ember_rng rng;
} thread_rng;

typedef struct {
    const bpr_params *p;
    step_kernels k;
    neg_sampler ns;
    const uint32_t *pairs; /* (user, item) of each CSR position, interleaved: one read */
    float *P, *Q, *bi;
    size_t d;
    float lr;
    bool want_loss; /* compute the loss (for the log or the progress line) */
} epoch_ctx;

static inline void prefetch_row(const float *row, size_t d)
{
    for (size_t b = 0; b < d * sizeof *row; b += 64)
        __builtin_prefetch((const char *)row + b, 1, 3);
}

/* One sample of the BPR pipeline: a positive (position k of the CSR
 * arrays), its user u and item i, a candidate negative j and the hash of
 * (u, j). */
typedef struct {
    size_t k;
    uint64_t h;
    uint32_t u, i, j;
} bpr_sample;

/* Pipeline distances: a sample is drawn 2 AHEAD samples before its
 * update and resolved AHEAD before.  RING: a power of two >= 2 AHEAD. */
enum { AHEAD = 8, RING = 16 };

/* Stage 1: draw the positive and the candidate negative (for popularity
 * negatives, the interaction whose item it is); prefetch what stage 2
 * reads. */
static inline void stage_draw(const epoch_ctx *c, ember_rng *rng, bpr_sample *e)
{
    e->k = (size_t)draw(rng, c->ns.nnz);
    __builtin_prefetch(c->pairs + 2 * e->k, 0, 3);
    if (c->ns.neg == NEG_UNIFORM) {
        e->j = (uint32_t)draw(rng, c->ns.n_items);
    } else {
        size_t kj = (size_t)draw(rng, c->ns.nnz);
        __builtin_prefetch(c->ns.item + kj, 0, 3);
        e->j = (uint32_t)kj; /* resolved to an item in stage 2 */
    }
}

/* Stage 2: resolve user, item and negative; prefetch the three rows, the
 * biases and the pair-set slot of (u, j). */
static inline void stage_resolve(const epoch_ctx *c, bpr_sample *e)
{
    e->u = c->pairs[2 * e->k];
    e->i = c->pairs[2 * e->k + 1];
    if (c->ns.neg == NEG_POP)
        e->j = c->ns.item[e->j];
    e->h = pair_hash(e->u, e->j);
    __builtin_prefetch(c->ns.pairs->slot + (e->h & c->ns.pairs->mask), 0, 3);
    prefetch_row(c->P + (size_t)e->u * c->d, c->d);
    prefetch_row(c->Q + (size_t)e->i * c->d, c->d);
    prefetch_row(c->Q + (size_t)e->j * c->d, c->d);
    if (c->bi) {
        __builtin_prefetch(c->bi + e->i, 1, 3);
        __builtin_prefetch(c->bi + e->j, 1, 3);
    }
}

/* n BPR samples from one thread; returns the sum of -ln sigmoid(x) (0
 * unless want_loss).  Software-pipelined (stages above), so that the
 * dependent random reads of a sample (its CSR entry, then its factor rows
 * and pair-set slot) overlap the updates of the samples before it.  The
 * draws happen in a fixed order, so one thread is exactly reproducible.
 * Instantiated twice below with the kernels as constants, so that they
 * are inlined (no indirect call in the loop). */
static inline __attribute__((always_inline)) double
bpr_loop(const epoch_ctx *c, ember_rng *rng, size_t n,
         float (*dot)(const float *, const float *, size_t),
         void (*update)(float *restrict, float *restrict, float *restrict, size_t, float, float))
{
    const size_t d = c->d;
    const float lr = c->lr, lr_reg = (float)(c->lr * c->p->reg);
    const float lr_reg_b = (float)(c->lr * c->p->reg_bias);
    float *bi = c->bi;
    double loss = 0;
    bpr_sample ring[RING];
    for (size_t t = 0; t < EMBER_MIN(n, (size_t)2 * AHEAD); t++)
        stage_draw(c, rng, &ring[t]);
    for (size_t t = 0; t < EMBER_MIN(n, (size_t)AHEAD); t++)
        stage_resolve(c, &ring[t]);
    for (size_t s = 0; s < n; s++) {
        const bpr_sample e = ring[s % RING];
        if (s + 2 * AHEAD < n)
            stage_draw(c, rng, &ring[s % RING]);
        if (s + AHEAD < n)
            stage_resolve(c, &ring[(s + AHEAD) % RING]);
        uint32_t i = e.i, j = e.j;
        if (pair_set_has(c->ns.pairs, e.h)) { /* rare: redraw, without prefetch */
            j = draw_negative(&c->ns, rng, e.u);
            if (j == UINT32_MAX)
                continue;
        }
        float *pu = c->P + (size_t)e.u * d, *qi = c->Q + (size_t)i * d;
        float *qj = c->Q + (size_t)j * d;
        float x = dot(pu, qi, d) - dot(pu, qj, d);
        if (bi)
            x += bi[i] - bi[j];
        float l = 0, g = sigmoid_neg(x, c->want_loss ? &l : NULL);
        loss += l;
        update(pu, qi, qj, d, lr * g, lr_reg);
        if (bi) {
            bi[i] += lr * g - lr_reg_b * bi[i];
            bi[j] += -lr * g - lr_reg_b * bi[j];
        }
    }
    return loss;
}

static double run_bpr_c(const epoch_ctx *c, ember_rng *rng, size_t n)
{
    return bpr_loop(c, rng, n, dot_c, update_c);
}

__attribute__((target("avx2,fma"))) static double run_bpr_avx2(const epoch_ctx *c,
                                                               ember_rng *rng, size_t n)
{
    return bpr_loop(c, rng, n, dot_avx2, update_avx2);
}

/* n WARP samples; returns the sum of the weighted hinge losses. */
static double run_warp(const epoch_ctx *c, ember_rng *rng, size_t n)
{
    const size_t d = c->d, nnz = c->ns.nnz, ni = c->ns.n_items;
    const float lr = c->lr, lr_reg = (float)(c->lr * c->p->reg);
    const float lr_reg_b = (float)(c->lr * c->p->reg_bias);
    float *bi = c->bi;
    double loss = 0;
    for (size_t s = 0; s < n; s++) {
        size_t k = (size_t)draw(rng, nnz);
        uint32_t u = c->pairs[2 * k], i = c->pairs[2 * k + 1];
        float *pu = c->P + (size_t)u * d, *qi = c->Q + (size_t)i * d;
        float si = c->k.dot(pu, qi, d) + (bi ? bi[i] : 0.0f);
        for (int64_t t = 1; t <= c->p->max_trials; t++) {
            uint32_t j = draw_negative(&c->ns, rng, u);
            if (j == UINT32_MAX)
                break;
            float *qj = c->Q + (size_t)j * d;
            float sj = c->k.dot(pu, qj, d) + (bi ? bi[j] : 0.0f);
            if (sj > si - 1.0f) {
                float w = logf(floorf((float)(ni - 1) / (float)t));
                w = w < 1e-6f ? 0.0f : (w > 10.0f ? 10.0f : w);
                loss += w * (1.0f - si + sj);
                c->k.update(pu, qi, qj, d, lr * w, lr_reg);
                if (bi) {
                    bi[i] += lr * w - lr_reg_b * bi[i];
                    bi[j] += -lr * w - lr_reg_b * bi[j];
                }
                break;
            }
        }
    }
    return loss;
}

static int bpr_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                   const ember_fit_opts *o)
{
    (void)valid;
    const bpr_params *p = m->params;
    size_t nu = m->n_users, ni = m->n_items, nnz = train->nnz, d = (size_t)p->factors;
    if (ni < 2)
        return ember_fail(EMBER_EINVAL, "bpr: needs at least two items");
    int threads = model_threads(o);
    bpr_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    int st = mf_alloc(&s->f, nu, ni, d, p->item_bias);
    if (st)
        return st;
    mf_init_normal(&s->f, o->seed, p->init_std);
    uint32_t *ui = ember_alloc(nnz, 2 * sizeof *ui);
    pair_set pairs = {0};
    thread_rng *rngs = ember_alloc_aligned((size_t)threads, sizeof *rngs);
    bool track_best = o->valid_fn != NULL;
    float *best[3] = {NULL, NULL, NULL};
    if (track_best) {
        best[0] = ember_alloc(EMBER_MAX(nu * d, 1), sizeof(float));
        best[1] = ember_alloc(EMBER_MAX(ni * d, 1), sizeof(float));
        best[2] = ember_alloc(ni, sizeof(float));
    }
    if (!ui || !rngs || (track_best && (!best[0] || !best[1] || !best[2])) ||
        pair_set_build(&pairs, train)) {
        st = EMBER_ENOMEM;
        goto done;
    }
    for (size_t u = 0; u < nu; u++)
        for (uint64_t k = train->u_ptr[u]; k < train->u_ptr[u + 1]; k++)
            ui[2 * k] = (uint32_t)u, ui[2 * k + 1] = train->u_item[k];
    for (int t = 0; t < threads; t++)
        ember_rng_seed(&rngs[t].rng, o->seed + 1 + (uint64_t)t);
    epoch_ctx c = {.p = p, .k = choose_kernels(),
                   .ns = {.item = train->u_item, .nnz = nnz, .n_items = ni, .neg = p->neg,
                          .pairs = &pairs},
                   .pairs = ui,
                   .P = mf_P(&s->f), .Q = mf_Q(&s->f), .bi = mf_bi(&s->f), .d = d,
                   .lr = (float)p->lr, .want_loss = o->log_path || o->verbose};
    model_epochs ep;
    if ((st = model_epochs_begin(&ep, m, o, (size_t)p->patience, (size_t)p->eval_every)))
        goto done;
    size_t last = 0;
    for (size_t e = 1; e <= (size_t)p->epochs; e++) {
        double loss = 0;
#pragma omp parallel num_threads(threads) reduction(+ : loss)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            size_t n = nnz / (size_t)nt + ((size_t)t < nnz % (size_t)nt);
            if (p->loss == LOSS_WARP)
                loss = run_warp(&c, &rngs[t].rng, n);
            else if (c.k.dot == dot_avx2)
                loss = run_bpr_avx2(&c, &rngs[t].rng, n);
            else
                loss = run_bpr_c(&c, &rngs[t].rng, n);
        }
        c.lr = (float)(c.lr * p->lr_decay);
        bool is_best, stop;
        double mean = c.want_loss || p->loss == LOSS_WARP ? loss / (double)nnz : NAN;
        if ((st = model_epochs_end(&ep, m, e, mean, &is_best, &stop)))
            break;
        last = e;
        if (is_best) {
            memcpy(best[0], s->f.P, nu * d * sizeof(float));
            memcpy(best[1], s->f.Q, ni * d * sizeof(float));
            if (s->f.bi)
                memcpy(best[2], s->f.bi, ni * sizeof(float));
        }
        if (stop)
            break;
    }
    model_epochs_finish(&ep);
    if (st == EMBER_OK && track_best && ep.best_epoch && ep.best_epoch != last) {
        memcpy(mf_P(&s->f), best[0], nu * d * sizeof(float));
        memcpy(mf_Q(&s->f), best[1], ni * d * sizeof(float));
        if (s->f.bi)
            memcpy(mf_bi(&s->f), best[2], ni * sizeof(float));
    }
    if (st == EMBER_OK && !(s->inv_norm = mf_inv_norms(&s->f)))
        st = EMBER_ENOMEM;
done:
    free(ui);
    free(pairs.slot);
    free(rngs);
    for (int k = 0; k < 3; k++)
        free(best[k]);
    return st;
}

/* ------------------------------------------------------------ scoring */

/* Fold-in (see the top of the file): x from the sorted, unique items. */
static void fold_in(const ember_model *m, const uint32_t *items, size_t n, float *x)
{
    const bpr_state *s = m->state;
    const bpr_params *p = m->params;
    step_kernels k = choose_kernels();
    size_t d = s->f.dim;
    const float *Q = s->f.Q, *bi = s->f.bi;
    const uint64_t ni = s->f.n_items;
    ember_rng rng;
    ember_rng_seed(&rng, 0x9e3779b97f4a7c15ULL ^ (uint64_t)n);
    memset(x, 0, d * sizeof *x);
    const float lr = (float)p->foldin_lr, lr_reg = (float)(p->foldin_lr * p->reg);
    for (int64_t e = 0; e < p->foldin_epochs; e++) {
        for (size_t t = 0; t < n; t++) {
            uint32_t i = items[t], j = UINT32_MAX;
            for (int a = 0; a < 32 && j == UINT32_MAX; a++) {
                j = (uint32_t)draw(&rng, ni);
                if (ember_sorted_has_u32(items, n, j))
                    j = UINT32_MAX;
            }
            if (j == UINT32_MAX)
                return;
            const float *qi = Q + (size_t)i * d, *qj = Q + (size_t)j * d;
            float xs = k.dot(x, qi, d) - k.dot(x, qj, d);
            if (bi)
                xs += bi[i] - bi[j];
            float g = sigmoid_neg(xs, NULL);
            for (size_t f = 0; f < d; f++)
                x[f] += lr * g * (qi[f] - qj[f]) - lr_reg * x[f];
        }
    }
}

/* Online update: update_epochs passes over the new interactions, each a
 * BPR step at the training learning rate against a fresh uniform
 * negative the user has not seen, moving the user's vector (and, with
 * EMBER_UPDATE_ITEMS, the two items' vectors and biases, as in training).
 * The RNG is seeded from the events, so an update is reproducible.  The
 * tables are copied out of a mapped model file first; a step cannot fail,
 * so nothing moves unless everything does. */
static int bpr_update(ember_model *m, const uint32_t *ev_user, const uint32_t *ev_item,
                      size_t n_ev, const uint32_t *users, size_t nu, const uint32_t *items,
                      size_t ni, unsigned flags)
{
    (void)items;
    (void)ni;
    bpr_state *s = m->state;
    const bpr_params *p = m->params;
    bool move_items = flags & EMBER_UPDATE_ITEMS;
    int st = mf_own_tables(&s->f, move_items);
    if (st)
        return st;
    size_t d = s->f.dim, total = 0;
    for (size_t k = 0; k < nu; k++)
        total += (size_t)(m->hist.ptr[users[k] + 1] - m->hist.ptr[users[k]]);
    /* each touched user's items, sorted, for the negatives */
    uint64_t *at = ember_alloc(EMBER_MAX(nu + 1, 1), sizeof *at);
    uint32_t *seen = ember_alloc(EMBER_MAX(total, 1), sizeof *seen);
    float *inv = move_items ? ember_alloc(EMBER_MAX(s->f.n_items, 1), sizeof *inv) : NULL;
    if (!at || !seen || (move_items && !inv)) {
        free(at);
        free(seen);
        free(inv);
        return EMBER_ENOMEM;
    }
    at[0] = 0;
    for (size_t k = 0; k < nu; k++) {
        uint64_t a = m->hist.ptr[users[k]], b = m->hist.ptr[users[k] + 1];
        memcpy(seen + at[k], m->hist.item + a, (size_t)(b - a) * sizeof *seen);
        qsort(seen + at[k], (size_t)(b - a), sizeof *seen, ember_cmp_u32);
        at[k + 1] = at[k] + (b - a);
    }
    step_kernels k = choose_kernels();
    float *P = mf_P(&s->f), *Q = mf_Q(&s->f), *bi = move_items ? mf_bi(&s->f) : NULL;
    const float *Qr = s->f.Q, *bir = s->f.bi;
    const float lr = (float)p->lr, lr_reg = (float)(p->lr * p->reg);
    const float lr_reg_b = (float)(p->lr * p->reg_bias);
    ember_rng rng;
    ember_rng_seed(&rng, 0x2545f4914f6cdd1dULL ^ ((uint64_t)n_ev << 32) ^ ev_user[0] ^
                             ((uint64_t)ev_item[0] << 16));
    for (int64_t e = 0; e < p->update_epochs; e++)
        for (size_t t = 0; t < n_ev; t++) {
            uint32_t u = ev_user[t], i = ev_item[t], j = UINT32_MAX;
            /* the user's slot among the touched (sorted) */
            size_t lo = 0, hi = nu;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (users[mid] < u)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            const uint32_t *us = seen + at[lo];
            size_t un = (size_t)(at[lo + 1] - at[lo]);
            for (int a = 0; a < 32 && j == UINT32_MAX; a++) {
                j = (uint32_t)draw(&rng, s->f.n_items);
                if (ember_sorted_has_u32(us, un, j))
                    j = UINT32_MAX;
            }
            if (j == UINT32_MAX)
                continue;
            float *pu = P + (size_t)u * d;
            const float *qi = Qr + (size_t)i * d, *qj = Qr + (size_t)j * d;
            float x = k.dot(pu, qi, d) - k.dot(pu, qj, d);
            if (bir)
                x += bir[i] - bir[j];
            float g = sigmoid_neg(x, NULL);
            if (move_items) {
                k.update(pu, Q + (size_t)i * d, Q + (size_t)j * d, d, lr * g, lr_reg);
                if (bi) {
                    bi[i] += lr * g - lr_reg_b * bi[i];
                    bi[j] += -lr * g - lr_reg_b * bi[j];
                }
            } else {
                for (size_t f = 0; f < d; f++)
                    pu[f] += lr * g * (qi[f] - qj[f]) - lr_reg * pu[f];
            }
        }
    free(at);
    free(seen);
    if (move_items) { /* similar() reads the item norms */
        for (size_t i = 0; i < s->f.n_items; i++) {
            float n2 = k.dot(s->f.Q + i * d, s->f.Q + i * d, d);
            inv[i] = n2 > 0 ? 1.0f / sqrtf(n2) : 0.0f;
        }
        free(s->inv_norm);
        s->inv_norm = inv;
    }
    return EMBER_OK;
}

/* The user vector of a query: the stored one for a known user who brings
 * nothing, else a fold-in of the whole history (stored + brought,
 * duplicates counted once). */
static int query_vector(const ember_model *m, const ember_query *q, float *x, const float **out)
{
    const bpr_state *s = m->state;
    size_t d = s->f.dim;
    model_hist_view v = model_query_history(m, q);
    if (q->user >= 0 && v.nb == 0) {
        *out = s->f.P + (size_t)q->user * d;
        return EMBER_OK;
    }
    *out = x;
    size_t n = v.na + v.nb;
    if (n == 0) {
        memset(x, 0, d * sizeof *x);
        return EMBER_OK;
    }
    uint32_t *items = ember_alloc(n, sizeof *items);
    if (!items)
        return EMBER_ENOMEM;
    memcpy(items, v.a, v.na * sizeof *items);
    memcpy(items + v.na, v.b, v.nb * sizeof *items);
    size_t w = ember_sort_unique_u32(items, n);
    fold_in(m, items, w, x);
    free(items);
    return EMBER_OK;
}

static int bpr_score_all(const ember_model *m, const ember_query *q, float *out)
{
    const bpr_state *s = m->state;
    return mf_score_query(m, &s->f, query_vector, q, NULL, 0, out);
}

static void bpr_dot_items(const ember_model *m, const float **Q, const float **bias, size_t *dim)
{
    const bpr_state *s = m->state;
    mf_dot_items(&s->f, Q, bias, dim);
}

static int bpr_dot_query(const ember_model *m, const ember_query *q, float *x, float *c)
{
    const bpr_state *s = m->state;
    return mf_dot_query(m, &s->f, query_vector, q, x, c);
}

static int bpr_score_items(const ember_model *m, const ember_query *q, const uint32_t *items,
                           size_t n, float *out)
{
    const bpr_state *s = m->state;
    return mf_score_query(m, &s->f, query_vector, q, items, n, out);
}

/* Cosine similarity of item factor vectors (biases left out). */
static int bpr_similar(const ember_model *m, uint32_t item, float *out)
{
    const bpr_state *s = m->state;
    mf_similar_cosine(&s->f, s->inv_norm, item, out);
    return EMBER_OK;
}

static int bpr_save(const ember_model *m, mf_writer *w)
{
    const bpr_state *s = m->state;
    return mf_save(&s->f, w, "bpr");
}

static int bpr_load(ember_model *m, const mf_reader *r)
{
    const bpr_params *p = m->params;
    bpr_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    int st = mf_load(&s->f, r, "bpr", m->n_users, m->n_items, p->item_bias);
    if (st)
        return st;
    if (s->f.dim != (size_t)p->factors)
        return ember_fail(EMBER_ECORRUPT, "bpr: factor tables have %zu columns, factors=%lld",
                          s->f.dim, (long long)p->factors);
    s->inv_norm = mf_inv_norms(&s->f);
    return s->inv_norm ? EMBER_OK : EMBER_ENOMEM;
}

const ember_model_ops model_bpr = {
    .name = "bpr",
    .summary = "BPR-MF (Rendle et al. 2009) or WARP, Hogwild SGD, uniform/popularity negatives",
    .params = bpr_param_table,
    .n_params = EMBER_ARRAY_LEN(bpr_param_table),
    .params_size = sizeof(bpr_params),
    .fit = bpr_fit,
    .score_all = bpr_score_all,
    .score_items = bpr_score_items,
    .dot_items = bpr_dot_items,
    .dot_query = bpr_dot_query,
    .update = bpr_update,
    .similar = bpr_similar,
    .save = bpr_save,
    .load = bpr_load,
    .destroy = bpr_destroy,
};
