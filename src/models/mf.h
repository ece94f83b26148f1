/*
 * mf.h — what the factorization models (als, bpr, svd, svdpp) share:
 * user and item factor tables with optional biases, scoring a user vector
 * against all or some items, fold-in of a new user's vector from a history
 * (exact weighted least squares, or SGD steps), and the tables' model-file
 * sections.
 *
 * score(u, i) = mu + bu[u] + bi[i] + P[u] . Q[i]   (mu, bu, bi optional: 0)
 */
#ifndef EMBER_MF_H
#define EMBER_MF_H

#include "models/model.h"

typedef struct {
    size_t n_users, n_items, dim;
    const float *P, *Q;   /* n_users x dim, n_items x dim, row-major, 64-byte aligned */
    const float *bu, *bi; /* NULL when the model has no biases */
    float mu;
    float *owned[4]; /* P, Q, bu, bi of a fitted model (NULL when loaded) */
} mf_factors;

/* A zeroed rows x dim float table (free() releases it), 64-byte aligned; a
 * large one 2 MB aligned and advised onto transparent huge pages, so that
 * SGD's random row access does not pay a TLB miss per row. */
float *mf_alloc_table(size_t rows, size_t dim);
/* Allocates zeroed tables (biases only when with_bias) with mf_alloc_table. */
int mf_alloc(mf_factors *f, size_t n_users, size_t n_items, size_t dim, bool with_bias);
void mf_free(mf_factors *f);
/* Fills P and Q with N(0, std^2), from seed. */
void mf_init_normal(mf_factors *f, uint64_t seed, double std);
/* Writable views of a fitted model's tables. */
static inline float *mf_P(mf_factors *f) { return f->owned[0]; }
static inline float *mf_Q(mf_factors *f) { return f->owned[1]; }
static inline float *mf_bu(mf_factors *f) { return f->owned[2]; }
static inline float *mf_bi(mf_factors *f) { return f->owned[3]; }

/* out[i] = mu + bu + bi[i] + p . Q[i] for every item. */
void mf_score_all(const mf_factors *f, const float *p, float bu, float *out);
/* The same for items[0..n). */
void mf_score_items(const mf_factors *f, const float *p, float bu, const uint32_t *items, size_t n,
                    float *out);

/* out[j] = cosine of item vectors Q[item] and Q[j] (0 for a zero vector).
 * inv_norm: 1/|Q[j]| per item (0 for a zero row) from mf_inv_norms, or
 * NULL to compute the norms on the fly. */
void mf_similar_cosine(const mf_factors *f, const float *inv_norm, uint32_t item, float *out);
/* 1/|Q[i]| for every item (0 for a zero row); the caller frees. */
float *mf_inv_norms(const mf_factors *f);

/* A model's user vector for a query: P[u] itself (*u points into the
 * table) or one folded in from the query's history into x (dim floats). */
typedef int (*mf_query_fn)(const ember_model *m, const ember_query *q, float *x, const float **u);
/* Scores a query with its user vector from query_vector: all items when
 * items is NULL, else items[0..n).  Biases of the user are taken as 0. */
int mf_score_query(const ember_model *m, const mf_factors *f, mf_query_fn query_vector,
                   const ember_query *q, const uint32_t *items, size_t n, float *out);

/* dot_items / dot_query of the model interface for a factor model: Q and
 * bi of f; x from query_vector, c = mu. */
void mf_dot_items(const mf_factors *f, const float **Q, const float **bias, size_t *dim);
int mf_dot_query(const ember_model *m, const mf_factors *f, mf_query_fn query_vector,
                 const ember_query *q, float *x, float *c);

/* Makes P (and Q and bi when items) writable: a table that points into a
 * model file is copied into an owned one (online updates write them). */
int mf_own_tables(mf_factors *f, bool items);

/* Early stopping of the rating models (svd, svdpp) on held-out ratings:
 * an ember_valid_fn whose ctx is the valid dataset (indexed as the
 * model), giving the RMSE of the model's predictions (score_items of each
 * user, clipped to the training rating range) — lower is better. */
int mf_valid_rmse(const ember_model *m, void *valid, double *rmse);

/* Copies of float tables (the best epoch's, restored at the end). */
typedef struct {
    float *copy[5];
    float *table[5];
    size_t len[5], n;
} mf_snapshot;
/* Room for copies of tables[0..n) of lens[] floats (n <= 5). */
int mf_snapshot_init(mf_snapshot *s, float *const *tables, const size_t *lens, size_t n);
void mf_snapshot_take(mf_snapshot *s);
void mf_snapshot_restore(const mf_snapshot *s);
void mf_snapshot_free(mf_snapshot *s);

/* Sections "<prefix>.P", ".Q", ".bu", ".bi" and a "<prefix>.mu" scalar. */
int mf_save(const mf_factors *f, mf_writer *w, const char *prefix);
/* Points f into the file; checks shapes and that every value is finite. */
int mf_load(mf_factors *f, const mf_reader *r, const char *prefix, size_t n_users,
            size_t n_items, bool with_bias);

/* Weighted least squares fold-in (Hu, Koren & Volinsky 2008), items fixed:
 *   x = (YtY + sum_i (c_i - 1) y_i y_i^T + reg I)^-1  sum_i c_i y_i
 * with c_i = conf (the same for every history item), YtY = Q^T Q (dim x
 * dim, precomputed).  Work: O(n dim^2 + dim^3).  Returns EMBER_EINVAL when
 * the system is not positive definite. */
int mf_foldin_ls(const mf_factors *f, const double *YtY, const uint32_t *items, size_t n,
                 double conf, double reg, float *x);
/* The same system's explanation of item's score (Hu, Koren & Volinsky
 * 2008, section 5): x . q = sum_k conf y_k^T A^-1 q, so history item k
 * contributes out[k] = conf y_k . z with A z = Q[item]. */
int mf_explain_ls(const mf_factors *f, const double *YtY, const uint32_t *items, size_t n,
                  double conf, double reg, uint32_t item, float *out);
/* Q^T Q in double (dim x dim). */
int mf_gram(const mf_factors *f, double *YtY, int threads);

#endif
