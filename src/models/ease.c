/*
 * ease.c — EASE^R (Steck 2019, "Embarrassingly Shallow Autoencoders for
 * Sparse Data"): an item-item weight matrix in closed form,
 *   P = (X^T X + lambda I)^-1,   B_ij = -P_ij / P_jj,   B_jj = 0,
 * and score(u) = x_u B, a sum of the rows of B over the user's history.
 *
 * The Gram matrix is accumulated sparsely (the sum over users of their
 * length squared) in double, inverted through LAPACK's Cholesky
 * (dpotrf + dpotri), and B is kept in float, row-major, 64-byte aligned.
 * Memory is n_items^2 * 12 bytes during fit, so the model refuses
 * catalogues beyond max_items rather than exhausting the machine.
 */
#include "core/kernels.h"
#include "models/model.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotri_(const char *uplo, const int *n, double *a, const int *lda, int *info);

typedef struct {
    double reg;
    int64_t max_items;
} ease_params;

static const model_param ease_param_table[] = {
    {"reg", PARAM_FLOAT, offsetof(ease_params, reg), "400", 1e-6, 1e12, NULL,
     "L2 regularization lambda added to the Gram diagonal"},
    {"max_items", PARAM_INT, offsetof(ease_params, max_items), "30000", 1, 200000, NULL,
     "refuse larger catalogues (fit needs n_items^2 * 12 bytes)"},
};

typedef struct {
    const float *B; /* n_items x n_items */
    float *owned;
} ease_state;

static void ease_destroy(ember_model *m)
{
    ease_state *s = m->state;
    if (!s)
        return;
    free(s->owned);
    free(s);
    m->state = NULL;
}

static int ease_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                    const ember_fit_opts *o)
{
    const ease_params *p = m->params;
    size_t n = m->n_items;
    if (n > (size_t)p->max_items)
        return ember_fail(EMBER_ETOOBIG,
                          "ease: %zu items would need %.1f GB (n^2 x 12 bytes); the limit is "
                          "max_items=%lld (raise it if the machine has the memory)",
                          n, (double)n * (double)n * 12.0 / 1e9, (long long)p->max_items);
    ease_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    double *G = ember_calloc(n * n, sizeof *G);
    if (!G)
        return EMBER_ENOMEM;
    int threads = model_threads(o);
    /* G = X^T X (binary), row i from the users of item i */
#pragma omp parallel for schedule(dynamic, 16) num_threads(threads)
    for (size_t i = 0; i < n; i++) {
        double *row = G + i * n;
        for (uint64_t a = train->i_ptr[i]; a < train->i_ptr[i + 1]; a++) {
            uint32_t u = train->i_user[a];
            for (uint64_t b = train->u_ptr[u]; b < train->u_ptr[u + 1]; b++)
                row[train->u_item[b]] += 1.0;
        }
        row[i] += p->reg;
    }
    int ni = (int)n, info = 0;
    openblas_set_num_threads(threads);
    dpotrf_("L", &ni, G, &ni, &info);
    if (info == 0)
        dpotri_("L", &ni, G, &ni, &info);
    if (info != 0) {
        free(G);
        return ember_fail(EMBER_EINVAL, "ease: the regularized Gram matrix is not positive "
                                        "definite (LAPACK info %d); raise reg", info);
    }
    /* Column-major lower triangle holds P(r, c) for r >= c at G[r + c n];
     * in row-major terms that is G[c n + r]: fill the other half. */
    for (size_t c = 0; c < n; c++)
        for (size_t r = c + 1; r < n; r++)
            G[r * n + c] = G[c * n + r];
    s->owned = ember_alloc_aligned(n * n, sizeof *s->owned);
    if (!s->owned) {
        free(G);
        return EMBER_ENOMEM;
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            s->owned[i * n + j] = i == j ? 0.0f : (float)(-G[i * n + j] / G[j * n + j]);
    free(G);
    s->B = s->owned;
    return EMBER_OK;
}

static int ease_score_all(const ember_model *m, const ember_query *q, float *out)
{
    const ease_state *s = m->state;
    size_t n = m->n_items;
    memset(out, 0, n * sizeof *out);
    model_hist_view v = model_query_history(m, q);
    ember_k_add_rows(out, n, s->B, n, v.a, NULL, v.na);
    ember_k_add_rows(out, n, s->B, n, v.b, NULL, v.nb);
    return EMBER_OK;
}

static int ease_similar(const ember_model *m, uint32_t item, float *out)
{
    const ease_state *s = m->state;
    memcpy(out, s->B + (size_t)item * m->n_items, m->n_items * sizeof *out);
    return EMBER_OK;
}

static int ease_save(const ember_model *m, mf_writer *w)
{
    const ease_state *s = m->state;
    uint64_t shape[2] = {m->n_items, m->n_items};
    return mf_add(w, "ease.B", MF_F32, 2, shape, s->B);
}

static int ease_load(ember_model *m, const mf_reader *r)
{
    ease_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    uint64_t shape[4];
    s->B = mf_get(r, "ease.B", MF_F32, 2, shape);
    if (!s->B)
        return EMBER_ECORRUPT;
    if (shape[0] != m->n_items || shape[1] != m->n_items)
        return ember_fail(EMBER_ECORRUPT, "ease.B is %llux%llu, expected %zux%zu",
                          (unsigned long long)shape[0], (unsigned long long)shape[1], m->n_items,
                          m->n_items);
    return EMBER_OK;
}

const ember_model_ops model_ease = {
    .name = "ease",
    .summary = "EASE^R: closed-form item-item autoencoder (Steck 2019)",
    .params = ease_param_table,
    .n_params = EMBER_ARRAY_LEN(ease_param_table),
    .params_size = sizeof(ease_params),
    .fit = ease_fit,
    .score_all = ease_score_all,
    .similar = ease_similar,
    .additive = true,
    .save = ease_save,
    .load = ease_load,
    .destroy = ease_destroy,
};
