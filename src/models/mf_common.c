/*
 * mf_common.c — factor tables, scoring, fold-in and file sections shared by
 * the factorization models (see mf.h).
 *
 * Scoring a vector against all items is a matrix-vector product over the
 * item table, done row by row with the SIMD dot kernel (the table is read
 * once; 200,000 x 64 floats is 51 MB).  The least-squares fold-in solves a
 * dim x dim system by Cholesky in double.
 */
#include "models/mf.h"

#include "core/kernels.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

float *mf_alloc_table(size_t rows, size_t dim)
{
    size_t huge = (size_t)2 << 20;
    if (dim && rows > SIZE_MAX / sizeof(float) / dim) {
        ember_fail(EMBER_ENOMEM, "out of memory (a %zu x %zu table)", rows, dim);
        return NULL;
    }
    size_t n = rows * dim > 0 ? rows * dim : 1;
    size_t bytes = n * sizeof(float);
    void *p = NULL;
    if (bytes < 2 * huge) {
        p = ember_alloc_aligned(n, sizeof(float));
    } else {
        size_t padded = (bytes + huge - 1) / huge * huge;
        if (posix_memalign(&p, huge, padded) != 0) {
            ember_fail(EMBER_ENOMEM, "out of memory (%zu bytes)", padded);
            return NULL;
        }
        madvise(p, padded, MADV_HUGEPAGE); /* advice only: failure is harmless */
    }
    if (p)
        memset(p, 0, bytes);
    return p;
}

int mf_alloc(mf_factors *f, size_t n_users, size_t n_items, size_t dim, bool with_bias)
{
    memset(f, 0, sizeof *f);
    f->n_users = n_users;
    f->n_items = n_items;
    f->dim = dim;
    f->owned[0] = mf_alloc_table(n_users, dim);
    f->owned[1] = mf_alloc_table(n_items, dim);
    if (with_bias) {
        f->owned[2] = mf_alloc_table(n_users, 1);
        f->owned[3] = mf_alloc_table(n_items, 1);
    }
    if (!f->owned[0] || !f->owned[1] || (with_bias && (!f->owned[2] || !f->owned[3]))) {
        mf_free(f);
        return EMBER_ENOMEM;
    }
    f->P = f->owned[0];
    f->Q = f->owned[1];
    f->bu = f->owned[2];
    f->bi = f->owned[3];
    return EMBER_OK;
}

void mf_free(mf_factors *f)
{
    for (int k = 0; k < 4; k++)
        free(f->owned[k]);
    memset(f, 0, sizeof *f);
}

void mf_init_normal(mf_factors *f, uint64_t seed, double std)
{
    ember_rng r;
    ember_rng_seed(&r, seed);
    for (size_t k = 0; k < f->n_users * f->dim; k++)
        f->owned[0][k] = (float)(std * ember_rng_normal(&r));
    for (size_t k = 0; k < f->n_items * f->dim; k++)
        f->owned[1][k] = (float)(std * ember_rng_normal(&r));
}

void mf_score_all(const mf_factors *f, const float *p, float bu, float *out)
{
    const ember_kernel_table *K = ember_kernels();
    size_t d = f->dim;
    float base = f->mu + bu;
    for (size_t i = 0; i < f->n_items; i++)
        out[i] = base + (f->bi ? f->bi[i] : 0.0f) + K->dot(p, f->Q + i * d, d);
}

void mf_score_items(const mf_factors *f, const float *p, float bu, const uint32_t *items, size_t n,
                    float *out)
{
    const ember_kernel_table *K = ember_kernels();
    size_t d = f->dim;
    float base = f->mu + bu;
    for (size_t k = 0; k < n; k++) {
        uint32_t i = items[k];
        out[k] = base + (f->bi ? f->bi[i] : 0.0f) + K->dot(p, f->Q + (size_t)i * d, d);
    }
}

int mf_score_query(const ember_model *m, const mf_factors *f, mf_query_fn query_vector,
                   const ember_query *q, const uint32_t *items, size_t n, float *out)
{
    float *x = ember_alloc_aligned(f->dim, sizeof *x);
    if (!x)
        return EMBER_ENOMEM;
    const float *u;
    int st = query_vector(m, q, x, &u);
    if (st == EMBER_OK) {
        if (items)
            mf_score_items(f, u, 0.0f, items, n, out);
        else
            mf_score_all(f, u, 0.0f, out);
    }
    free(x);
    return st;
}

int mf_valid_rmse(const ember_model *m, void *valid, double *rmse)
{
    const ember_dataset *v = valid;
    double sse = 0;
    size_t n = 0, longest = 0;
    for (size_t u = 0; u < v->n_users && u < m->n_users; u++)
        longest = EMBER_MAX(longest, (size_t)(v->u_ptr[u + 1] - v->u_ptr[u]));
    uint32_t *items = ember_alloc(EMBER_MAX(longest, 1), sizeof *items);
    float *pred = ember_alloc(EMBER_MAX(longest, 1), sizeof *pred);
    int st = items && pred ? EMBER_OK : EMBER_ENOMEM;
    for (size_t u = 0; st == EMBER_OK && u < v->n_users && u < m->n_users; u++) {
        size_t k = 0;
        for (uint64_t e = v->u_ptr[u]; e < v->u_ptr[u + 1]; e++)
            if (v->u_item[e] < m->n_items)
                items[k++] = v->u_item[e];
        if (k == 0)
            continue;
        ember_query q = {.user = (int64_t)u};
        if ((st = m->ops->score_items(m, &q, items, k, pred)))
            break;
        k = 0;
        for (uint64_t e = v->u_ptr[u]; e < v->u_ptr[u + 1]; e++) {
            if (v->u_item[e] >= m->n_items)
                continue;
            double p = EMBER_MIN(EMBER_MAX(pred[k], m->rating_min), m->rating_max);
            double err = p - v->u_rating[e];
            sse += err * err;
            k++;
            n++;
        }
    }
    free(items);
    free(pred);
    *rmse = n ? sqrt(sse / (double)n) : NAN;
    return st;
}

int mf_snapshot_init(mf_snapshot *s, float *const *tables, const size_t *lens, size_t n)
{
    memset(s, 0, sizeof *s);
    for (size_t t = 0; t < n && t < 5; t++) {
        s->table[t] = tables[t];
        s->len[t] = lens[t];
        s->copy[t] = ember_alloc(EMBER_MAX(lens[t], 1), sizeof(float));
        s->n = t + 1;
        if (!s->copy[t]) {
            mf_snapshot_free(s);
            return EMBER_ENOMEM;
        }
    }
    return EMBER_OK;
}

void mf_snapshot_take(mf_snapshot *s)
{
    for (size_t t = 0; t < s->n; t++)
        memcpy(s->copy[t], s->table[t], s->len[t] * sizeof(float));
}

void mf_snapshot_restore(const mf_snapshot *s)
{
    for (size_t t = 0; t < s->n; t++)
        memcpy(s->table[t], s->copy[t], s->len[t] * sizeof(float));
}

void mf_snapshot_free(mf_snapshot *s)
{
    for (size_t t = 0; t < s->n; t++)
        free(s->copy[t]);
    memset(s, 0, sizeof *s);
}

int mf_own_tables(mf_factors *f, bool items)
{
    for (int t = 0; t < (items ? 2 : 1); t++) {
        if (f->owned[t])
            continue;
        size_t rows = t == 0 ? f->n_users : f->n_items;
        float *copy = mf_alloc_table(rows, f->dim);
        if (!copy)
            return EMBER_ENOMEM;
        memcpy(copy, t == 0 ? f->P : f->Q, rows * f->dim * sizeof *copy);
        f->owned[t] = copy;
        if (t == 0)
            f->P = copy;
        else
            f->Q = copy;
    }
    if (items && f->bi && !f->owned[3]) {
        float *copy = ember_alloc(EMBER_MAX(f->n_items, 1), sizeof *copy);
        if (!copy)
            return EMBER_ENOMEM;
        memcpy(copy, f->bi, f->n_items * sizeof *copy);
        f->owned[3] = copy;
        f->bi = copy;
    }
    return EMBER_OK;
}

void mf_dot_items(const mf_factors *f, const float **Q, const float **bias, size_t *dim)
{
    *Q = f->Q;
    *bias = f->bi;
    *dim = f->dim;
}

int mf_dot_query(const ember_model *m, const mf_factors *f, mf_query_fn query_vector,
                 const ember_query *q, float *x, float *c)
{
    const float *u;
    int st = query_vector(m, q, x, &u);
    if (st == EMBER_OK && u != x)
        memcpy(x, u, f->dim * sizeof *x);
    *c = f->mu;
    return st;
}

float *mf_inv_norms(const mf_factors *f)
{
    float *inv = ember_alloc(f->n_items ? f->n_items : 1, sizeof *inv);
    if (!inv)
        return NULL;
    const ember_kernel_table *K = ember_kernels();
    for (size_t i = 0; i < f->n_items; i++) {
        const float *q = f->Q + i * f->dim;
        float n = sqrtf(K->dot(q, q, f->dim));
        inv[i] = n > 0 ? 1.0f / n : 0.0f;
    }
    return inv;
}

void mf_similar_cosine(const mf_factors *f, const float *inv_norm, uint32_t item, float *out)
{
    const ember_kernel_table *K = ember_kernels();
    size_t d = f->dim;
    const float *a = f->Q + (size_t)item * d;
    float na = sqrtf(K->dot(a, a, d));
    float ia = na > 0 ? 1.0f / na : 0.0f;
    for (size_t j = 0; j < f->n_items; j++) {
        const float *b = f->Q + j * d;
        float ib;
        if (inv_norm) {
            ib = inv_norm[j];
        } else {
            float nb = sqrtf(K->dot(b, b, d));
            ib = nb > 0 ? 1.0f / nb : 0.0f;
        }
        out[j] = K->dot(a, b, d) * ia * ib;
    }
}

static void section_name(char *buf, size_t n, const char *prefix, const char *what)
{
    snprintf(buf, n, "%s.%s", prefix, what);
}

int mf_save(const mf_factors *f, mf_writer *w, const char *prefix)
{
    char name[64];
    int st;
    uint64_t sp[2] = {f->n_users, f->dim}, sq[2] = {f->n_items, f->dim};
    section_name(name, sizeof name, prefix, "P");
    if ((st = mf_add(w, name, MF_F32, 2, sp, f->P)))
        return st;
    section_name(name, sizeof name, prefix, "Q");
    if ((st = mf_add(w, name, MF_F32, 2, sq, f->Q)))
        return st;
    section_name(name, sizeof name, prefix, "mu");
    if ((st = mf_add_1d(w, name, MF_F32, 1, &f->mu)))
        return st;
    if (f->bu) {
        section_name(name, sizeof name, prefix, "bu");
        if ((st = mf_add_1d(w, name, MF_F32, f->n_users, f->bu)))
            return st;
        section_name(name, sizeof name, prefix, "bi");
        if ((st = mf_add_1d(w, name, MF_F32, f->n_items, f->bi)))
            return st;
    }
    return EMBER_OK;
}

static bool all_finite(const float *x, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (!isfinite(x[k]))
            return false;
    return true;
}

int mf_load(mf_factors *f, const mf_reader *r, const char *prefix, size_t n_users,
            size_t n_items, bool with_bias)
{
    memset(f, 0, sizeof *f);
    char name[64];
    uint64_t sp[4], sq[4];
    section_name(name, sizeof name, prefix, "P");
    f->P = mf_get(r, name, MF_F32, 2, sp);
    section_name(name, sizeof name, prefix, "Q");
    f->Q = mf_get(r, name, MF_F32, 2, sq);
    if (!f->P || !f->Q)
        return EMBER_ECORRUPT;
    if (sp[0] != n_users || sq[0] != n_items || sp[1] != sq[1] || sp[1] == 0 || sp[1] > 4096)
        return ember_fail(EMBER_ECORRUPT, "%s: factor tables have the wrong shape", prefix);
    f->n_users = n_users;
    f->n_items = n_items;
    f->dim = (size_t)sp[1];
    section_name(name, sizeof name, prefix, "mu");
    const float *mu = mf_get_1d(r, name, MF_F32, 1, NULL);
    if (!mu)
        return EMBER_ECORRUPT;
    f->mu = *mu;
    if (with_bias) {
        section_name(name, sizeof name, prefix, "bu");
        f->bu = mf_get_1d(r, name, MF_F32, n_users, NULL);
        section_name(name, sizeof name, prefix, "bi");
        f->bi = mf_get_1d(r, name, MF_F32, n_items, NULL);
        if (!f->bu || !f->bi)
            return EMBER_ECORRUPT;
    }
    if (!isfinite(f->mu) || !all_finite(f->P, n_users * f->dim) ||
        !all_finite(f->Q, n_items * f->dim) || (f->bu && !all_finite(f->bu, n_users)) ||
        (f->bi && !all_finite(f->bi, n_items)))
        return ember_fail(EMBER_ECORRUPT, "%s: factor tables hold non-finite values", prefix);
    return EMBER_OK;
}

int mf_gram(const mf_factors *f, double *YtY, int threads)
{
    size_t d = f->dim;
    memset(YtY, 0, d * d * sizeof *YtY);
    int nt = ember_threads(threads);
    double *part = ember_calloc((size_t)nt * d * d, sizeof *part);
    if (!part)
        return EMBER_ENOMEM;
#pragma omp parallel num_threads(nt)
    {
        double *acc = part + (size_t)omp_get_thread_num() * d * d;
#pragma omp for schedule(static)
        for (size_t i = 0; i < f->n_items; i++) {
            const float *q = f->Q + i * d;
            for (size_t a = 0; a < d; a++)
                for (size_t b = 0; b <= a; b++)
                    acc[a * d + b] += (double)q[a] * q[b];
        }
    }
    for (int t = 0; t < nt; t++)
        for (size_t k = 0; k < d * d; k++)
            YtY[k] += part[(size_t)t * d * d + k];
    for (size_t a = 0; a < d; a++)
        for (size_t b = 0; b < a; b++)
            YtY[b * d + a] = YtY[a * d + b];
    free(part);
    return EMBER_OK;
}

/* Solves A x = b in place (A symmetric positive definite, d x d, double). */
static int cholesky_solve(double *A, double *b, size_t d)
{
    for (size_t j = 0; j < d; j++) {
        double s = A[j * d + j];
        for (size_t k = 0; k < j; k++)
            s -= A[j * d + k] * A[j * d + k];
        if (!(s > 0))
            return EMBER_EINVAL;
        double l = sqrt(s);
        A[j * d + j] = l;
        for (size_t i = j + 1; i < d; i++) {
            double t = A[i * d + j];
            for (size_t k = 0; k < j; k++)
                t -= A[i * d + k] * A[j * d + k];
            A[i * d + j] = t / l;
        }
    }
    for (size_t i = 0; i < d; i++) { /* L y = b */
        double t = b[i];
        for (size_t k = 0; k < i; k++)
            t -= A[i * d + k] * b[k];
        b[i] = t / A[i * d + i];
    }
    for (size_t i = d; i-- > 0;) { /* L^T x = y */
        double t = b[i];
        for (size_t k = i + 1; k < d; k++)
            t -= A[k * d + i] * b[k];
        b[i] = t / A[i * d + i];
    }
    return EMBER_OK;
}

int mf_explain_ls(const mf_factors *f, const double *YtY, const uint32_t *items, size_t n,
                  double conf, double reg, uint32_t item, float *out)
{
    size_t d = f->dim;
    double *A = ember_alloc(d * d + d, sizeof *A);
    if (!A)
        return EMBER_ENOMEM;
    double *z = A + d * d;
    memcpy(A, YtY, d * d * sizeof *A);
    for (size_t a = 0; a < d; a++) {
        A[a * d + a] += reg;
        z[a] = f->Q[(size_t)item * d + a];
    }
    for (size_t k = 0; k < n; k++) {
        const float *y = f->Q + (size_t)items[k] * d;
        for (size_t a = 0; a < d; a++)
            for (size_t c = 0; c <= a; c++)
                A[a * d + c] += (conf - 1.0) * y[a] * y[c];
    }
    int st = cholesky_solve(A, z, d);
    if (st == EMBER_OK)
        for (size_t k = 0; k < n; k++) {
            const float *y = f->Q + (size_t)items[k] * d;
            double s = 0;
            for (size_t a = 0; a < d; a++)
                s += y[a] * z[a];
            out[k] = (float)(conf * s);
        }
    free(A);
    return st ? ember_fail(st, "explain: the system is not positive definite") : EMBER_OK;
}

int mf_foldin_ls(const mf_factors *f, const double *YtY, const uint32_t *items, size_t n,
                 double conf, double reg, float *x)
{
    size_t d = f->dim;
    double *A = ember_alloc(d * d + d, sizeof *A);
    if (!A)
        return EMBER_ENOMEM;
    double *b = A + d * d;
    memcpy(A, YtY, d * d * sizeof *A);
    memset(b, 0, d * sizeof *b);
    for (size_t a = 0; a < d; a++)
        A[a * d + a] += reg;
    for (size_t k = 0; k < n; k++) {
        const float *y = f->Q + (size_t)items[k] * d;
        for (size_t a = 0; a < d; a++) {
            b[a] += conf * y[a];
            for (size_t c = 0; c <= a; c++)
                A[a * d + c] += (conf - 1.0) * y[a] * y[c];
        }
    }
    int st = cholesky_solve(A, b, d);
    if (st == EMBER_OK)
        for (size_t a = 0; a < d; a++)
            x[a] = (float)b[a];
    free(A);
    return st ? ember_fail(st, "fold-in: the system is not positive definite") : EMBER_OK;
}
