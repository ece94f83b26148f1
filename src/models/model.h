/*
 * model.h — the one interface every model implements, and the pieces the
 * framework (model.c) gives all of them: parameters from "k=v" strings,
 * the training interactions of each user (for "seen" exclusion and for
 * history-based scoring), item popularity, and the model file.
 *
 * A model implements score_all() for one query (reentrant: evaluation
 * calls it from many threads at once) and fit/save/load/destroy; similar()
 * and the rest are optional.  Nothing outside src/models/ knows which model
 * it holds.
 */
#ifndef EMBER_MODEL_H
#define EMBER_MODEL_H

#include "core/modelfile.h"
#include "data/data.h"

/* ------------------------------------------------------------ params */

typedef enum { PARAM_INT, PARAM_FLOAT, PARAM_BOOL, PARAM_CHOICE } model_param_type;

/* One hyper-parameter: its field in the model's param struct (int64_t for
 * INT, double for FLOAT, int for BOOL and CHOICE: the index into choices),
 * its default as text, its allowed range, and a line of help. */
typedef struct {
    const char *name;
    model_param_type type;
    size_t offset;
    const char *def;
    double lo, hi;          /* inclusive range for INT and FLOAT */
    const char *choices;    /* "cosine|jaccard|asymmetric" for CHOICE */
    const char *help;
} model_param;

/* ------------------------------------------------------------- model */

/* The training interactions of each user, items in time order. */
typedef struct {
    const uint64_t *ptr; /* n_users + 1 */
    const uint32_t *item;
    const int64_t *ts;
    size_t nnz;
} model_hist;

/* A query's history in two runs: what the model stored for the user, then
 * the items the query brings (already restricted to known items). */
typedef struct {
    const uint32_t *a;
    size_t na;
    const uint32_t *b;
    size_t nb;
} model_hist_view;

typedef struct ember_model_ops ember_model_ops;

struct ember_model {
    const ember_model_ops *ops;
    void *params; /* the model's param struct */
    void *state;  /* the model's own state, freed by ops->destroy */
    char *params_json;
    ember_idmap *users, *items;
    size_t n_users, n_items;
    model_hist hist;
    const uint32_t *item_count; /* train interactions per item */
    int64_t t_max;              /* latest train timestamp */
    float rating_mean;          /* mean train rating (the fallback prediction) */
    float rating_min, rating_max; /* train rating range (predictions are clipped to it) */
    mf_reader *file;            /* when loaded: sections point into it */
    void *owned[4];             /* framework allocations of a fitted model */
};

struct ember_model_ops {
    const char *name;
    const char *summary;
    /* Scores are predicted ratings (svd, svdpp): eval reports RMSE/MAE. */
    bool predicts_ratings;
    const model_param *params;
    size_t n_params;
    size_t params_size;
    int (*fit)(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
               const ember_fit_opts *opts);
    /* Scores every item (out has n_items slots). */
    int (*score_all)(const ember_model *m, const ember_query *q, float *out);
    /* Optional: scores items[0..n) only (cheaper than score_all for
     * factor models; used for rating prediction).  Items are in range. */
    int (*score_items)(const ember_model *m, const ember_query *q, const uint32_t *items,
                       size_t n, float *out);
    /* Optional: similarity of every item to item (out has n_items slots;
     * item itself may be given any value, the caller excludes it). */
    int (*similar)(const ember_model *m, uint32_t item, float *out);
    /* Optional, factor models: a query's score of item i is
     *   c + x . Q[i] + bias[i]
     * with Q (n_items x dim, row-major) and bias (NULL: none) from
     * dot_items, x (dim floats) and c from dot_query; the top-k lists of
     * many users are then one blocked product (core/mips.h). */
    void (*dot_items)(const ember_model *m, const float **Q, const float **bias, size_t *dim);
    int (*dot_query)(const ember_model *m, const ember_query *q, float *x, float *c);
    /* Optional, online learning (ember_model_update): the stored histories
     * already hold the new interactions (ev_user[k], ev_item[k]) for k <
     * n_ev, of the users[0..n_users) (sorted, distinct) with the
     * items[0..n_items) (sorted, distinct); move the parameters.  All or
     * nothing: on an error leave them as they were. */
    /* Explanations (ember_model_explain).  additive: the score is a sum
     * of one term per history item, so an item's share is the score of
     * that item alone (itemknn, ease).  explain (optional): the exact
     * share of each of the distinct history items items[0..n) in the
     * score of item, into out[0..n) (als: the least-squares
     * decomposition).  Neither: leave-one-out. */
    bool additive;
    int (*explain)(const ember_model *m, const uint32_t *items, size_t n, uint32_t item,
                   float *out);
    int (*update)(ember_model *m, const uint32_t *ev_user, const uint32_t *ev_item, size_t n_ev,
                  const uint32_t *users, size_t n_users, const uint32_t *items, size_t n_items,
                  unsigned flags);
    int (*save)(const ember_model *m, mf_writer *w);
    int (*load)(ember_model *m, const mf_reader *r);
    void (*destroy)(ember_model *m);
};

/* The registry (registry.c). */
const ember_model_ops *model_find(const char *name);
size_t model_count(void);
const ember_model_ops *model_at(size_t i);

/* The query's history (stored + brought), for history-based models. */
model_hist_view model_query_history(const ember_model *m, const ember_query *q);

/* Number of threads for a fit. */
int model_threads(const ember_fit_opts *o);

#endif
