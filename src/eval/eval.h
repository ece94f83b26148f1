/*
 * eval.h — the full-ranking evaluation protocol of shared/docs/PROTOCOL.md
 * over a trained model: every test user is scored against every item the
 * model knows, excluded items are removed, the top K is compared with the
 * user's test items.  Parallel over users (OpenMP).
 */
#ifndef EMBER_EVAL_H
#define EMBER_EVAL_H

#include "data/data.h"
#include "eval/metrics.h"

#define EVAL_MAX_KS 4

typedef struct {
    size_t ks[EVAL_MAX_KS]; /* cut-offs, ascending (e.g. 10, 20) */
    size_t n_ks;
    int threads;
    /* All datasets below use id maps that extend the model's maps (the
     * model's users and items keep their indices; ids the model does not
     * know get larger ones). */
    const ember_dataset *test;
    const ember_dataset *const *exclude; /* items removed from each user's ranking */
    size_t n_exclude;
    const ember_dataset *const *history; /* items appended to each user's history */
    size_t n_history;
    /* Optional: item token sets (indexed by the model's items) for
     * intra-list diversity, e.g. ML-100K genres. */
    const uint64_t *tok_ptr;
    const uint32_t *tok;
} eval_opts;

typedef struct {
    size_t k;
    double hit, precision, recall, ndcg, mrr, map;
    double coverage, avg_popularity, novelty, gini, ild;
} eval_at_k;

typedef struct {
    size_t users;         /* users with at least one test item */
    size_t cold_users;    /* of those, users the model did not know */
    size_t test_items;    /* test interactions counted */
    size_t unknown_items; /* of those, items the model cannot rank */
    eval_at_k at[EVAL_MAX_KS];
    size_t n_ks;
    bool has_ild;
    double seconds;
} eval_result;

int eval_ranking(const ember_model *m, const eval_opts *o, eval_result *out);

/* Explicit ratings (PROTOCOL.md): every test row (u, i, r) is predicted
 * with the model's score for u and i, clipped to [lo, hi]; rows whose user
 * or item the model does not know get the training mean rating.  RMSE and
 * MAE over all rows. */
typedef struct {
    size_t rows, unknown;
    double rmse, mae;
    double seconds;
} eval_rating_result;

int eval_ratings(const ember_model *m, const ember_dataset *test, int threads, float lo, float hi,
                 eval_rating_result *out);

#endif
