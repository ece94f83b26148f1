/*
 * als.c — implicit-feedback alternating least squares, the weighted matrix
 * factorization of Hu, Koren & Volinsky 2008 ("Collaborative Filtering for
 * Implicit Feedback Datasets", ICDM).
 *
 * Every (user, item) cell has a preference p (1 for an interaction, 0
 * otherwise) and a confidence c; the model minimises
 *   sum_{u,i} c_ui (p_ui - x_u . y_i)^2 + reg (sum_u |x_u|^2 + sum_i |y_i|^2)
 * over all cells, observed or not.  Interactions are binary (every one is
 * a positive, whatever its rating).  Two weightings (param conf):
 *   hkv       c = 1 + alpha for a positive, 1 for a missing cell (the paper)
 *   implicit  c = alpha for a positive, 1 for a missing cell (the
 *             `implicit` library's convention: its data value is the
 *             confidence); reg is not scaled by counts in either.
 * With the other side fixed, each row is a ridge regression
 *   (Y^T Y + sum_{i in I_u} (c_ui - 1) y_i y_i^T + reg I) x_u = sum_{i in I_u} c_ui y_i
 * where Y^T Y (the Gram matrix, from BLAS ssyrk once per half-iteration)
 * carries all the missing cells, so a row costs O(|I_u| dim) plus the
 * dense part.  Rows are solved either by a few conjugate-gradient steps
 * warm-started from the previous iterate (Takács, Pilászy & Tikk 2011,
 * "Applications of the conjugate gradient method for implicit feedback
 * collaborative filtering"; the `implicit` library's default), the sparse
 * sum applied through dot products with the rows y_i and never formed, or
 * exactly by Cholesky in double (solver=cholesky).  Rows are independent:
 * OpenMP over rows, and the result does not depend on the thread count
 * (the Gram matrix aside).  The CG products are AVX2 kernels in this file
 * (a dense d x d mat-vec with 32 outputs in registers, and a fused
 * dot-then-update over the positives with prefetch), as the fit is bound
 * by reading the other side's rows.
 *
 * Each iteration solves the items first, then the users, so the stored
 * user vectors are the (approximate) least-squares answers to the final
 * item table; Q^T Q of that table is kept in the model file ("als.YtY")
 * so that fold-in of a new history (mf_foldin_ls, exact weighted least
 * squares) is one dim x dim Cholesky solve: about 0.2 ms for 50 items at
 * 64 factors.
 */
#include "core/kernels.h"
#include "models/epochs.h"
#include "models/mf.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { CONF_HKV, CONF_IMPLICIT };
enum { SOLVER_CG, SOLVER_CHOLESKY };

typedef struct {
    int64_t factors;
    int64_t iterations;
    double alpha;
    double reg;
    int conf;
    int solver;
    int64_t cg_steps;
    double init_std;
    int64_t eval_every;
    int64_t patience;
} als_params;

/* Defaults chosen on the ML-100K general split's valid set (mean of 5
 * seeds): a grid over conf x alpha x reg, then a finer one around the
 * best (alpha 2, reg 20: valid NDCG@10 0.2653).  For binary data the two
 * weightings are one family (hkv alpha a = implicit alpha 1 + a). */
static const model_param als_param_table[] = {
    {"factors", PARAM_INT, offsetof(als_params, factors), "64", 1, 1024, NULL,
     "latent dimension"},
    {"iterations", PARAM_INT, offsetof(als_params, iterations), "15", 1, 1000, NULL,
     "alternating iterations (items then users)"},
    {"alpha", PARAM_FLOAT, offsetof(als_params, alpha), "2", 1e-6, 1e6, NULL,
     "confidence of a positive: 1 + alpha (conf=hkv) or alpha (conf=implicit)"},
    {"reg", PARAM_FLOAT, offsetof(als_params, reg), "20", 0, 1e9, NULL,
     "L2 regularization of every factor row (not scaled by counts)"},
    {"conf", PARAM_CHOICE, offsetof(als_params, conf), "implicit", 0, 0, "hkv|implicit",
     "confidence weighting: hkv c = 1 + alpha, implicit c = alpha (missing cells: 1)"},
    {"solver", PARAM_CHOICE, offsetof(als_params, solver), "cg", 0, 0, "cg|cholesky",
     "per-row solver: warm-started conjugate gradient, or exact Cholesky"},
    {"cg_steps", PARAM_INT, offsetof(als_params, cg_steps), "3", 1, 1024, NULL,
     "conjugate-gradient steps per row and half-iteration (solver=cg)"},
    {"init_std", PARAM_FLOAT, offsetof(als_params, init_std), "0.01", 0, 10, NULL,
     "standard deviation of the seeded normal initialization"},
    {"eval_every", PARAM_INT, offsetof(als_params, eval_every), "1", 1, 1000, NULL,
     "validate every this many iterations (when a valid set is given)"},
    {"patience", PARAM_INT, offsetof(als_params, patience), "0", 0, 1000, NULL,
     "stop after this many validations without improvement (0: run all iterations); "
     "the best validated iterate is kept"},
};

typedef struct {
    mf_factors f;
    const double *YtY; /* dim x dim, Q^T Q of the final item table */
    double *YtY_owned;
    float *inv_norm;   /* 1 / |Q_i| (0 for a zero row), for similar() */
} als_state;

static float als_conf(const als_params *p)
{
    return (float)(p->conf == CONF_HKV ? 1.0 + p->alpha : p->alpha);
}

static void als_destroy(ember_model *m)
{
    als_state *s = m->state;
    if (!s)
        return;
    mf_free(&s->f);
    free(s->YtY_owned);
    free(s->inv_norm);
    free(s);
    m->state = NULL;
}

/* G = X^T X (d x d, float, both triangles) for X n x d row-major, by BLAS
 * ssyrk in blocks of rows (so that n may exceed the int range). */
static void gram(const float *X, size_t n, size_t d, float *G)
{
    const size_t block = (size_t)1 << 24;
    memset(G, 0, d * d * sizeof *G);
    for (size_t r0 = 0; r0 < n; r0 += block) {
        size_t nr = EMBER_MIN(block, n - r0);
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)nr, 1.0f, X + r0 * d,
                    (int)d, 1.0f, G, (int)d);
    }
    for (size_t a = 0; a < d; a++)
        for (size_t b = 0; b < a; b++)
            G[a * d + b] = G[b * d + a];
}

/* ------------------------------------------------------------ kernels
 * The two products a CG step is made of, for a row with positives
 * idx[0..n) in the fixed table Y:
 *   matvec: out = A v, A the dense (symmetric) d x d Gram matrix + reg I;
 *   gather: out += sum_k (alpha - beta (y_k . v)) y_k over the positives.
 * A plain C version, and an AVX2+FMA one (for d a multiple of 8) that
 * keeps 32 outputs in registers while it walks A, and fuses the dot
 * product and the update of each positive (y_k is read from memory once). */
typedef struct {
    void (*matvec)(const float *A, const float *v, float *out, size_t d);
    void (*gather)(const float *Y, const uint32_t *idx, size_t n, const float *v, float alpha,
                   float beta, float *out, size_t d);
} row_kernels;

static void matvec_c(const float *A, const float *v, float *out, size_t d)
{
    for (size_t a = 0; a < d; a++) {
        float s = 0;
        for (size_t b = 0; b < d; b++)
            s += A[a * d + b] * v[b];
        out[a] = s;
    }
}

static void gather_c(const float *Y, const uint32_t *idx, size_t n, const float *v, float alpha,
                     float beta, float *out, size_t d)
{
    for (size_t k = 0; k < n; k++) {
        const float *y = Y + (size_t)idx[k] * d;
        float t = 0;
        for (size_t f = 0; f < d; f++)
            t += y[f] * v[f];
        float w = alpha - beta * t;
        for (size_t f = 0; f < d; f++)
            out[f] += w * y[f];
    }
}

/* A is symmetric: out[a] = sum_b A[b][a] v[b], row b of A scaled by v[b]
 * and added, 32 (or 8) outputs at a time. */
__attribute__((target("avx2,fma"))) static void matvec_avx2(const float *A, const float *v,
                                                            float *out, size_t d)
{
    size_t a0 = 0;
    for (; a0 + 32 <= d; a0 += 32) {
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
        for (size_t b = 0; b < d; b++) {
            const float *row = A + b * d + a0;
            __m256 vb = _mm256_broadcast_ss(v + b);
            s0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), s0);
            s1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), s1);
            s2 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 16), s2);
            s3 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 24), s3);
        }
        _mm256_storeu_ps(out + a0, s0);
        _mm256_storeu_ps(out + a0 + 8, s1);
        _mm256_storeu_ps(out + a0 + 16, s2);
        _mm256_storeu_ps(out + a0 + 24, s3);
    }
    for (; a0 < d; a0 += 8) {
        __m256 s0 = _mm256_setzero_ps();
        for (size_t b = 0; b < d; b++)
            s0 = _mm256_fmadd_ps(_mm256_broadcast_ss(v + b), _mm256_loadu_ps(A + b * d + a0), s0);
        _mm256_storeu_ps(out + a0, s0);
    }
}

__attribute__((target("avx2,fma"))) static void gather_avx2(const float *Y, const uint32_t *idx,
                                                            size_t n, const float *v,
                                                            float alpha, float beta, float *out,
                                                            size_t d)
{
    for (size_t k = 0; k < n; k++) {
        const float *y = Y + (size_t)idx[k] * d;
        if (k + 8 < n) {
            const char *next = (const char *)(Y + (size_t)idx[k + 8] * d);
            for (size_t b = 0; b < d * sizeof *Y; b += 64)
                _mm_prefetch(next + b, _MM_HINT_T0);
        }
        __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();
        size_t f = 0;
        for (; f + 16 <= d; f += 16) {
            t0 = _mm256_fmadd_ps(_mm256_loadu_ps(y + f), _mm256_loadu_ps(v + f), t0);
            t1 = _mm256_fmadd_ps(_mm256_loadu_ps(y + f + 8), _mm256_loadu_ps(v + f + 8), t1);
        }
        for (; f < d; f += 8)
            t0 = _mm256_fmadd_ps(_mm256_loadu_ps(y + f), _mm256_loadu_ps(v + f), t0);
        __m256 t = _mm256_add_ps(t0, t1);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_movehdup_ps(h));
        __m256 w = _mm256_set1_ps(alpha - beta * _mm_cvtss_f32(h));
        for (f = 0; f < d; f += 8)
            _mm256_storeu_ps(out + f,
                             _mm256_fmadd_ps(w, _mm256_loadu_ps(y + f), _mm256_loadu_ps(out + f)));
    }
}

static row_kernels choose_kernels(size_t d)
{
    if (d % 8 == 0 && ember_kernels() == &ember_kernels_avx2)
        return (row_kernels){matvec_avx2, gather_avx2};
    return (row_kernels){matvec_c, gather_c};
}

/* A few conjugate-gradient steps on one row's system, from x as it is:
 *   (A + sum_k (c - 1) y_k y_k^T) x = c sum_k y_k,  A = Y^T Y + reg I.
 * The sparse sum is applied through dot products with the rows y_k, never
 * formed.  r, p, Ap: d floats of scratch each. */
static void cg_row(const row_kernels *R, const ember_kernel_table *K, const float *A,
                   const float *Y, const uint32_t *idx, size_t n, float c, size_t d,
                   int64_t steps, float *x, float *r, float *p, float *Ap)
{
    const float cm1 = c - 1.0f;
    R->matvec(A, x, r, d);
    K->scale(r, -1.0f, d);
    R->gather(Y, idx, n, x, c, cm1, r, d); /* r = c sum y - A x - sum (c-1)(y.x) y */
    float rs = K->dot(r, r, d);
    if (rs < 1e-20f)
        return;
    memcpy(p, r, d * sizeof *p);
    for (int64_t it = 0; it < steps; it++) {
        R->matvec(A, p, Ap, d);
        R->gather(Y, idx, n, p, 0.0f, -cm1, Ap, d); /* Ap += sum (c-1)(y.p) y */
        float pAp = K->dot(p, Ap, d);
        if (!(pAp > 0.0f))
            break;
        float step = rs / pAp;
        K->axpy(step, p, x, d);
        K->axpy(-step, Ap, r, d);
        float rs_new = K->dot(r, r, d);
        if (rs_new < 1e-20f)
            break;
        K->scale(p, rs_new / rs, d);
        K->axpy(1.0f, r, p, d);
        rs = rs_new;
    }
}

/* ------------------------------------------------------- exact solve
 * solver=cholesky: per row, A = Y^T Y + reg I + (c - 1) sum_k y_k y_k^T
 * (lower triangle, double) and b = c sum_k y_k, then A x = b by Cholesky.
 * The rank-one updates and the factorisation's dot products are written
 * for the vectorizer (omp simd), compiled twice: plain, and for AVX2+FMA
 * (chosen like the kernels above). */
static inline __attribute__((always_inline)) void exact_body(
    const double *G, double reg, const float *Y, const uint32_t *idx, size_t n, double c,
    size_t d, double *restrict A, double *restrict yb, double *restrict b, float *x, int *ok)
{
    for (size_t a = 0; a < d; a++) {
        b[a] = 0;
        for (size_t e = 0; e <= a; e++)
            A[a * d + e] = G[a * d + e];
        A[a * d + a] += reg;
    }
    for (size_t k = 0; k < n; k++) {
        const float *y = Y + (size_t)idx[k] * d;
        for (size_t a = 0; a < d; a++)
            yb[a] = y[a];
        for (size_t a = 0; a < d; a++) {
            double w = (c - 1.0) * yb[a];
            double *restrict row = A + a * d;
            b[a] += c * yb[a];
#pragma omp simd
            for (size_t e = 0; e <= a; e++)
                row[e] += w * yb[e];
        }
    }
    for (size_t j = 0; j < d; j++) { /* A = L L^T, L in the lower triangle */
        const double *lj = A + j * d;
        double sjj = A[j * d + j];
#pragma omp simd reduction(- : sjj)
        for (size_t k = 0; k < j; k++)
            sjj -= lj[k] * lj[k];
        if (!(sjj > 0)) {
            *ok = 0;
            return;
        }
        double l = sqrt(sjj);
        A[j * d + j] = l;
        for (size_t i = j + 1; i < d; i++) {
            const double *li = A + i * d;
            double t = A[i * d + j];
#pragma omp simd reduction(- : t)
            for (size_t k = 0; k < j; k++)
                t -= li[k] * lj[k];
            A[i * d + j] = t / l;
        }
    }
    for (size_t i = 0; i < d; i++) { /* L z = b */
        double t = b[i];
        for (size_t k = 0; k < i; k++)
            t -= A[i * d + k] * b[k];
        b[i] = t / A[i * d + i];
    }
    for (size_t i = d; i-- > 0;) { /* L^T x = z */
        double t = b[i];
        for (size_t k = i + 1; k < d; k++)
            t -= A[k * d + i] * b[k];
        b[i] = t / A[i * d + i];
    }
    for (size_t a = 0; a < d; a++)
        x[a] = (float)b[a];
    *ok = 1;
}

typedef int (*exact_fn)(const double *G, double reg, const float *Y, const uint32_t *idx,
                        size_t n, double c, size_t d, double *A, double *yb, double *b, float *x);

static int exact_c(const double *G, double reg, const float *Y, const uint32_t *idx, size_t n,
                   double c, size_t d, double *A, double *yb, double *b, float *x)
{
    int ok;
    exact_body(G, reg, Y, idx, n, c, d, A, yb, b, x, &ok);
    return ok;
}

__attribute__((target("avx2,fma"))) static int exact_avx2(const double *G, double reg,
                                                          const float *Y, const uint32_t *idx,
                                                          size_t n, double c, size_t d,
                                                          double *A, double *yb, double *b,
                                                          float *x)
{
    int ok;
    exact_body(G, reg, Y, idx, n, c, d, A, yb, b, x, &ok);
    return ok;
}

static void prefetch_rows(const float *Y, const uint32_t *idx, size_t n, size_t d)
{
    for (size_t k = 0; k < n; k++)
        for (size_t b = 0; b < d * sizeof *Y; b += 64)
            __builtin_prefetch((const char *)(Y + (size_t)idx[k] * d) + b, 0, 3);
}

/* Fills the n x d table X with N(0, std^2), row r from its own generator
 * (seeded by seed and r), so the result does not depend on the threads:
 * Box-Muller in single precision, two values per 64-bit draw. */
static void init_normal(float *X, size_t n, size_t d, uint64_t seed, float std, int threads)
{
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t r = 0; r < n; r++) {
        ember_rng g;
        ember_rng_seed(&g, seed ^ (0x9e3779b97f4a7c15ULL * (r + 1)));
        float *x = X + r * d;
        for (size_t f = 0; f < d; f += 2) {
            uint64_t b = ember_rng_next(&g);
            float u1 = (float)((b >> 40) + 1) * 0x1p-24f; /* (0, 1] */
            float u2 = (float)(b & 0xffffff) * 0x1p-24f;  /* [0, 1) */
            float rad = std * sqrtf(-2.0f * logf(u1)), sn, cs;
            sincosf(6.2831853f * u2, &sn, &cs);
            x[f] = rad * cs;
            if (f + 1 < d)
                x[f + 1] = rad * sn;
        }
    }
}

/* Solves every row of X (n_rows x d) against the fixed table Y, the rows'
 * positives given as CSR (ptr, idx).  G: Y^T Y (float, for CG), Gd: the
 * same in double (for Cholesky).  scratch: threads x 3 d floats. */
static int solve_side(const als_params *p, float *X, size_t n_rows, const uint64_t *ptr,
                      const uint32_t *idx, const float *Y, const float *A, const double *Gd,
                      float *scratch, int threads)
{
    const ember_kernel_table *K = ember_kernels();
    size_t d = (size_t)p->factors;
    const row_kernels R = choose_kernels(d);
    float c = als_conf(p);
    int failed = 0;
    if (p->solver == SOLVER_CG) {
#pragma omp parallel num_threads(threads)
        {
            float *r = scratch + (size_t)omp_get_thread_num() * 3 * d;
#pragma omp for schedule(dynamic, 64)
            for (size_t u = 0; u < n_rows; u++) {
                if (u + 1 < n_rows) /* the next row's first positives */
                    prefetch_rows(Y, idx + ptr[u + 1], EMBER_MIN(ptr[u + 2] - ptr[u + 1], 8), d);
                cg_row(&R, K, A, Y, idx + ptr[u], (size_t)(ptr[u + 1] - ptr[u]), c, d,
                       p->cg_steps, X + u * d, r, r + d, r + 2 * d);
            }
        }
        return EMBER_OK;
    }
    const exact_fn solve = ember_kernels() == &ember_kernels_avx2 ? exact_avx2 : exact_c;
    int no_memory = 0;
#pragma omp parallel num_threads(threads)
    {
        double *M = ember_alloc(d * d + 2 * d, sizeof *M);
        if (!M) {
#pragma omp atomic write
            no_memory = 1;
        }
#pragma omp for schedule(dynamic, 16)
        for (size_t u = 0; u < n_rows; u++) {
            if (!M || failed)
                continue;
            if (!solve(Gd, p->reg, Y, idx + ptr[u], (size_t)(ptr[u + 1] - ptr[u]), c, d, M,
                       M + d * d, M + d * d + d, X + u * d)) {
#pragma omp atomic write
                failed = 1;
            }
        }
        free(M);
    }
    if (no_memory)
        return ember_fail(EMBER_ENOMEM, "als: out of memory");
    if (failed)
        return ember_fail(EMBER_EINVAL, "als: a row's system is not positive definite (raise "
                                        "reg, or use solver=cg)");
    return EMBER_OK;
}

/* The objective per interaction:
 *   sum_u [x_u^T (Y^T Y) x_u + sum_{i in I_u} (c (1 - t)^2 - t^2)] + reg (|X|^2 + |Y|^2),
 * t = x_u . y_i, divided by the number of interactions.  G = Y^T Y. */
static double objective(const als_params *p, const ember_dataset *train, const float *P,
                        const float *Q, const float *G, size_t nu, size_t ni, float *scratch,
                        int threads)
{
    const ember_kernel_table *K = ember_kernels();
    size_t d = (size_t)p->factors;
    const row_kernels R = choose_kernels(d);
    double c = als_conf(p), sum = 0, norms = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sum, norms)
    {
        float *gx = scratch + (size_t)omp_get_thread_num() * 3 * d;
#pragma omp for schedule(static)
        for (size_t u = 0; u < nu; u++) {
            const float *x = P + u * d;
            R.matvec(G, x, gx, d);
            sum += K->dot(x, gx, d);
            norms += K->dot(x, x, d);
            for (uint64_t k = train->u_ptr[u]; k < train->u_ptr[u + 1]; k++) {
                double t = K->dot(x, Q + (size_t)train->u_item[k] * d, d);
                sum += c * (1 - t) * (1 - t) - t * t;
            }
        }
#pragma omp for schedule(static)
        for (size_t i = 0; i < ni; i++)
            norms += K->dot(Q + i * d, Q + i * d, d);
    }
    return (sum + p->reg * norms) / (double)train->nnz;
}

static int item_norms(als_state *s)
{
    s->inv_norm = mf_inv_norms(&s->f);
    return s->inv_norm ? EMBER_OK : EMBER_ENOMEM;
}

/* Copies the tables (a snapshot of the best iterate), or back. */
static void copy_tables(float *dP, float *dQ, double *dG, const float *P, const float *Q,
                        const double *G, size_t nu, size_t ni, size_t d)
{
    memcpy(dP, P, nu * d * sizeof *dP);
    memcpy(dQ, Q, ni * d * sizeof *dQ);
    memcpy(dG, G, d * d * sizeof *dG);
}

static int als_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                   const ember_fit_opts *o)
{
    (void)valid;
    const als_params *p = m->params;
    size_t nu = m->n_users, ni = m->n_items, d = (size_t)p->factors;
    int threads = model_threads(o);
    als_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    int st = mf_alloc(&s->f, nu, ni, d, false);
    if (st)
        return st;
    float *P = mf_P(&s->f), *Q = mf_Q(&s->f);
    init_normal(P, nu, d, o->seed, (float)p->init_std, threads);
    init_normal(Q, ni, d, o->seed + 1, (float)p->init_std, threads);
    s->YtY_owned = ember_calloc(d * d, sizeof *s->YtY_owned);
    float *G = ember_alloc_aligned(2 * d * d, sizeof *G);
    double *Gd = ember_alloc(d * d, sizeof *Gd);
    float *scratch = ember_alloc_aligned((size_t)threads * 3 * d, sizeof *scratch);
    float *bestP = NULL, *bestQ = NULL;
    double *bestG = NULL;
    bool track_best = o->valid_fn != NULL;
    if (track_best) {
        bestP = ember_alloc_aligned(EMBER_MAX(nu * d, 1), sizeof *bestP);
        bestQ = ember_alloc_aligned(EMBER_MAX(ni * d, 1), sizeof *bestQ);
        bestG = ember_alloc(d * d, sizeof *bestG);
    }
    if (!s->YtY_owned || !G || !Gd || !scratch || (track_best && (!bestP || !bestQ || !bestG))) {
        st = EMBER_ENOMEM;
        goto done;
    }
    s->YtY = s->YtY_owned;
    float *A = G + d * d; /* Gram + reg I, for CG */
    bool want_loss = o->log_path || o->verbose;
    model_epochs ep;
    if ((st = model_epochs_begin(&ep, m, o, (size_t)p->patience, (size_t)p->eval_every)))
        goto done;
    openblas_set_num_threads(threads);
    size_t last = 0;
    for (size_t it = 1; it <= (size_t)p->iterations; it++) {
        /* two halves: items from the users' table, then users from the items' */
        for (int half = 0; half < 2; half++) {
            const float *Y = half == 0 ? P : Q;
            size_t ny = half == 0 ? nu : ni;
            gram(Y, ny, d, G);
            for (size_t k = 0; k < d * d; k++) {
                Gd[k] = G[k];
                A[k] = G[k];
            }
            for (size_t a = 0; a < d; a++)
                A[a * d + a] += (float)p->reg;
            if (half == 0)
                st = solve_side(p, Q, ni, train->i_ptr, train->i_user, P, A, Gd, scratch,
                                threads);
            else
                st = solve_side(p, P, nu, train->u_ptr, train->u_item, Q, A, Gd, scratch,
                                threads);
            if (st)
                break;
        }
        if (st)
            break;
        memcpy(s->YtY_owned, Gd, d * d * sizeof *Gd); /* Q^T Q of the final Q */
        double loss = want_loss ? objective(p, train, P, Q, G, nu, ni, scratch, threads) : NAN;
        bool is_best, stop;
        if ((st = model_epochs_end(&ep, m, it, loss, &is_best, &stop)))
            break;
        last = it;
        if (is_best)
            copy_tables(bestP, bestQ, bestG, P, Q, s->YtY, nu, ni, d);
        if (stop)
            break;
    }
    model_epochs_finish(&ep);
    if (st == EMBER_OK && track_best && ep.best_epoch && ep.best_epoch != last)
        copy_tables(P, Q, s->YtY_owned, bestP, bestQ, bestG, nu, ni, d);
    if (st == EMBER_OK)
        st = item_norms(s);
done:
    free(G);
    free(Gd);
    free(scratch);
    free(bestP);
    free(bestQ);
    free(bestG);
    return st;
}

/* The exact least-squares fold-in (mf_foldin_ls).  Should the system not
 * factor (reg=0 with a rank-deficient item table, or a damaged file), a
 * ridge of 1e-6 (1 + trace/d), growing a hundredfold per attempt, is
 * added until it does, and the zero vector is the answer of last resort:
 * a model that loads answers every query. */
static int foldin(const als_state *s, const uint32_t *items, size_t n, double conf, double reg,
                  float *x)
{
    size_t d = s->f.dim;
    double trace = 0;
    for (size_t a = 0; a < d; a++)
        trace += fabs(s->YtY[a * d + a]);
    double ridge = 1e-6 * (1.0 + trace / (double)d);
    int st = mf_foldin_ls(&s->f, s->YtY, items, n, conf, reg, x);
    for (int k = 0; st == EMBER_EINVAL && k < 8; k++, ridge *= 100)
        st = mf_foldin_ls(&s->f, s->YtY, items, n, conf, reg + ridge, x);
    if (st == EMBER_EINVAL) {
        memset(x, 0, d * sizeof *x);
        st = EMBER_OK;
    }
    if (st == EMBER_OK)
        ember_clear_error();
    return st;
}

/* The user vector of a query: the stored one for a known user who brings
 * nothing, else the exact least-squares fold-in of the whole history
 * (stored + brought, duplicates counted once). */
static int query_vector(const ember_model *m, const ember_query *q, float *x, const float **out)
{
    const als_state *s = m->state;
    const als_params *p = m->params;
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
    int st = foldin(s, items, w, als_conf(p), p->reg, x);
    free(items);
    return st;
}

static int als_score_all(const ember_model *m, const ember_query *q, float *out)
{
    const als_state *s = m->state;
    return mf_score_query(m, &s->f, query_vector, q, NULL, 0, out);
}

static void als_dot_items(const ember_model *m, const float **Q, const float **bias, size_t *dim)
{
    const als_state *s = m->state;
    mf_dot_items(&s->f, Q, bias, dim);
}

static int als_dot_query(const ember_model *m, const ember_query *q, float *x, float *c)
{
    const als_state *s = m->state;
    return mf_dot_query(m, &s->f, query_vector, q, x, c);
}

static int als_score_items(const ember_model *m, const ember_query *q, const uint32_t *items,
                           size_t n, float *out)
{
    const als_state *s = m->state;
    return mf_score_query(m, &s->f, query_vector, q, items, n, out);
}

/* ---------------------------------------------------------- update */

/* The distinct items of user u's stored history, sorted, into buf (room
 * for the history's length); returns how many. */
static size_t user_items(const ember_model *m, uint32_t u, uint32_t *buf)
{
    uint64_t a = m->hist.ptr[u], b = m->hist.ptr[u + 1];
    size_t n = (size_t)(b - a);
    memcpy(buf, m->hist.item + a, n * sizeof *buf);
    return ember_sort_unique_u32(buf, n);
}

/* The distinct users of each touched item (items[0..n), sorted) from the
 * stored histories: CSR (*ptr, *users) over the touched items. */
static int item_users(const ember_model *m, const uint32_t *items, size_t n, uint64_t **ptr_out,
                      uint32_t **users_out)
{
    int64_t *slot = ember_alloc(EMBER_MAX(m->n_items, 1), sizeof *slot);
    uint64_t *ptr = ember_calloc(n + 1, sizeof *ptr);
    if (!slot || !ptr) {
        free(slot);
        free(ptr);
        return EMBER_ENOMEM;
    }
    for (size_t i = 0; i < m->n_items; i++)
        slot[i] = -1;
    for (size_t k = 0; k < n; k++)
        slot[items[k]] = (int64_t)k;
    for (uint64_t e = 0; e < m->hist.nnz; e++)
        if (slot[m->hist.item[e]] >= 0)
            ptr[slot[m->hist.item[e]] + 1]++;
    for (size_t k = 0; k < n; k++)
        ptr[k + 1] += ptr[k];
    uint32_t *users = ember_alloc(EMBER_MAX(ptr[n], 1), sizeof *users);
    uint64_t *fill = ember_alloc(EMBER_MAX(n, 1), sizeof *fill);
    if (!users || !fill) {
        free(slot);
        free(ptr);
        free(users);
        free(fill);
        return EMBER_ENOMEM;
    }
    memcpy(fill, ptr, n * sizeof *fill);
    for (size_t u = 0; u < m->n_users; u++)
        for (uint64_t e = m->hist.ptr[u]; e < m->hist.ptr[u + 1]; e++)
            if (slot[m->hist.item[e]] >= 0) {
                uint64_t k = (uint64_t)slot[m->hist.item[e]];
                /* users come in order, so a repeat is the last one written */
                if (fill[k] == ptr[k] || users[fill[k] - 1] != u)
                    users[fill[k]++] = (uint32_t)u;
            }
    /* compact the lists (repeats left gaps at their ends) */
    uint64_t w = 0;
    for (size_t k = 0; k < n; k++) {
        uint64_t a = ptr[k], b = fill[k];
        ptr[k] = w;
        memmove(users + w, users + a, (size_t)(b - a) * sizeof *users);
        w += b - a;
    }
    ptr[n] = w;
    free(slot);
    free(fill);
    *ptr_out = ptr;
    *users_out = users;
    return EMBER_OK;
}

/* Online update: with EMBER_UPDATE_ITEMS, each touched item re-solved
 * exactly against the user table (the item half of an ALS iteration,
 * restricted to them; QtQ then corrected by the change of their rows);
 * then each touched user re-solved exactly against the item table from
 * the whole stored history — the value the user half of an iteration
 * gives, and what a fold-in of that history gives.  Old rows are kept
 * until every solve has succeeded, so a failure changes nothing. */
static int als_update(ember_model *m, const uint32_t *ev_user, const uint32_t *ev_item,
                      size_t n_ev, const uint32_t *users, size_t nu, const uint32_t *items,
                      size_t ni, unsigned flags)
{
    (void)ev_user;
    (void)ev_item;
    (void)n_ev;
    als_state *s = m->state;
    const als_params *p = m->params;
    size_t d = s->f.dim;
    bool do_items = (flags & EMBER_UPDATE_ITEMS) && ni > 0;
    int st = mf_own_tables(&s->f, do_items);
    if (st)
        return st;
    if (!s->YtY_owned) {
        s->YtY_owned = ember_alloc(d * d, sizeof *s->YtY_owned);
        if (!s->YtY_owned)
            return EMBER_ENOMEM;
        memcpy(s->YtY_owned, s->YtY, d * d * sizeof *s->YtY_owned);
        s->YtY = s->YtY_owned;
    }
    size_t longest = 0;
    for (size_t k = 0; k < nu; k++)
        longest = EMBER_MAX(longest, (size_t)(m->hist.ptr[users[k] + 1] - m->hist.ptr[users[k]]));
    float *new_u = ember_alloc(EMBER_MAX(nu * d, 1), sizeof *new_u);
    float *old_i = do_items ? ember_alloc(ni * d, sizeof *old_i) : NULL;
    float *new_i = do_items ? ember_alloc(ni * d, sizeof *new_i) : NULL;
    double *old_yty = ember_alloc(d * d, sizeof *old_yty);
    double *PtP = do_items ? ember_alloc(d * d, sizeof *PtP) : NULL;
    uint32_t *buf = ember_alloc(EMBER_MAX(longest, 1), sizeof *buf);
    uint64_t *iptr = NULL;
    uint32_t *iusers = NULL;
    float *P = mf_P(&s->f), *Q = mf_Q(&s->f);
    if (!new_u || !old_yty || !buf || (do_items && (!old_i || !new_i || !PtP))) {
        st = EMBER_ENOMEM;
        goto done;
    }
    memcpy(old_yty, s->YtY_owned, d * d * sizeof *old_yty);
    if (do_items) {
        /* the items against P: the same solve with the tables' roles swapped */
        mf_factors users_as_items = {.n_items = m->n_users, .dim = d, .Q = s->f.P};
        if ((st = mf_gram(&users_as_items, PtP, 0)) ||
            (st = item_users(m, items, ni, &iptr, &iusers)))
            goto done;
        als_state view = {.f = users_as_items, .YtY = PtP};
        for (size_t k = 0; k < ni && st == EMBER_OK; k++)
            st = foldin(&view, iusers + iptr[k], (size_t)(iptr[k + 1] - iptr[k]), als_conf(p),
                        p->reg, new_i + k * d);
        if (st)
            goto done;
        /* commit the item rows and correct QtQ by their change */
        for (size_t k = 0; k < ni; k++) {
            float *q = Q + (size_t)items[k] * d;
            memcpy(old_i + k * d, q, d * sizeof *q);
            for (size_t a = 0; a < d; a++)
                for (size_t b = 0; b < d; b++)
                    s->YtY_owned[a * d + b] += (double)new_i[k * d + a] * new_i[k * d + b] -
                                               (double)q[a] * q[b];
            memcpy(q, new_i + k * d, d * sizeof *q);
        }
    }
    for (size_t k = 0; k < nu && st == EMBER_OK; k++) {
        size_t n = user_items(m, users[k], buf);
        st = foldin(s, buf, n, als_conf(p), p->reg, new_u + k * d);
    }
    if (st) {
        /* put the items back */
        if (do_items) {
            for (size_t k = 0; k < ni; k++)
                memcpy(Q + (size_t)items[k] * d, old_i + k * d, d * sizeof *Q);
            memcpy(s->YtY_owned, old_yty, d * d * sizeof *old_yty);
        }
        goto done;
    }
    for (size_t k = 0; k < nu; k++)
        memcpy(P + (size_t)users[k] * d, new_u + k * d, d * sizeof *P);
    if (do_items) { /* similar() reads the item norms */
        for (size_t k = 0; k < ni; k++) {
            const float *q = Q + (size_t)items[k] * d;
            double n2 = 0;
            for (size_t a = 0; a < d; a++)
                n2 += (double)q[a] * q[a];
            s->inv_norm[items[k]] = n2 > 0 ? (float)(1.0 / sqrt(n2)) : 0.0f;
        }
    }
done:
    free(new_u);
    free(old_i);
    free(new_i);
    free(old_yty);
    free(PtP);
    free(buf);
    free(iptr);
    free(iusers);
    return st;
}

/* The least-squares decomposition of item's score over the history. */
static int als_explain(const ember_model *m, const uint32_t *items, size_t n, uint32_t item,
                       float *out)
{
    const als_state *s = m->state;
    const als_params *p = m->params;
    return mf_explain_ls(&s->f, s->YtY, items, n, als_conf(p), p->reg, item, out);
}

/* Cosine similarity of item factor vectors. */
static int als_similar(const ember_model *m, uint32_t item, float *out)
{
    const als_state *s = m->state;
    mf_similar_cosine(&s->f, s->inv_norm, item, out);
    return EMBER_OK;
}

static int als_save(const ember_model *m, mf_writer *w)
{
    const als_state *s = m->state;
    int st = mf_save(&s->f, w, "als");
    if (st)
        return st;
    uint64_t shape[2] = {s->f.dim, s->f.dim};
    return mf_add(w, "als.YtY", MF_F64, 2, shape, s->YtY);
}

static int als_load(ember_model *m, const mf_reader *r)
{
    const als_params *p = m->params;
    als_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    int st = mf_load(&s->f, r, "als", m->n_users, m->n_items, false);
    if (st)
        return st;
    if (s->f.dim != (size_t)p->factors)
        return ember_fail(EMBER_ECORRUPT, "als: factor tables have %zu columns, factors=%lld",
                          s->f.dim, (long long)p->factors);
    uint64_t shape[4];
    s->YtY = mf_get(r, "als.YtY", MF_F64, 2, shape);
    if (!s->YtY)
        return EMBER_ECORRUPT;
    size_t d = s->f.dim;
    if (shape[0] != d || shape[1] != d)
        return ember_fail(EMBER_ECORRUPT, "als.YtY has the wrong shape");
    for (size_t a = 0; a < d; a++)
        for (size_t b = 0; b <= a; b++)
            if (!isfinite(s->YtY[a * d + b]) || s->YtY[a * d + b] != s->YtY[b * d + a] ||
                (a == b && s->YtY[a * d + a] < 0))
                return ember_fail(EMBER_ECORRUPT,
                                  "als.YtY is not a Gram matrix (non-finite, asymmetric or a "
                                  "negative diagonal)");
    return item_norms(s);
}

const ember_model_ops model_als = {
    .name = "als",
    .summary = "implicit-feedback ALS, weighted MF (Hu, Koren & Volinsky 2008), CG or Cholesky",
    .params = als_param_table,
    .n_params = EMBER_ARRAY_LEN(als_param_table),
    .params_size = sizeof(als_params),
    .fit = als_fit,
    .score_all = als_score_all,
    .score_items = als_score_items,
    .dot_items = als_dot_items,
    .dot_query = als_dot_query,
    .update = als_update,
    .similar = als_similar,
    .explain = als_explain,
    .save = als_save,
    .load = als_load,
    .destroy = als_destroy,
};
