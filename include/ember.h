/*
 * ember.h — the public API of libember, a recommender engine.
 *
 * Opaque handles, status codes and the few structs a caller fills.  Every
 * function that can fail returns an int status (0 ok, negative EMBER_E*)
 * and leaves a message for ember_last_error(); outputs go through pointers.
 * Whoever creates a handle frees it (ember_xxx_new / ember_xxx_free); freeing
 * NULL is a no-op.
 */
#ifndef EMBER_H
#define EMBER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(EMBER_BUILDING)
#define EMBER_API __attribute__((visibility("default")))
#else
#define EMBER_API
#endif

#define EMBER_VERSION_STRING "0.1.0"

/* Status codes: one list, so the enum and the messages never drift apart. */
#define EMBER_STATUS(X)                                   \
    X(EMBER_OK, 0, "ok")                                  \
    X(EMBER_ENOMEM, -1, "out of memory")                  \
    X(EMBER_EIO, -2, "i/o error")                         \
    X(EMBER_EFORMAT, -3, "malformed input")               \
    X(EMBER_EINVAL, -4, "invalid argument")               \
    X(EMBER_ENOTFOUND, -5, "not found")                   \
    X(EMBER_EUNSUPPORTED, -6, "unsupported")              \
    X(EMBER_ECORRUPT, -7, "corrupt or foreign model file") \
    X(EMBER_ETOOBIG, -8, "too large")

enum ember_status {
#define EMBER_STATUS_ENUM(name, code, msg) name = code,
    EMBER_STATUS(EMBER_STATUS_ENUM)
#undef EMBER_STATUS_ENUM
};

/* A short fixed text for a status code. */
EMBER_API const char *ember_strerror(int status);
/* The message of the last failure in this thread ("" if none). */
EMBER_API const char *ember_last_error(void);

/* ---------------------------------------------------------------- ids */

/* External ids are strings; an idmap gives each a dense index 0..n-1 in
 * order of first appearance, and back.  Reference counted: datasets and
 * models that share a map hold a reference each. */
typedef struct ember_idmap ember_idmap;

EMBER_API ember_idmap *ember_idmap_new(void);
EMBER_API ember_idmap *ember_idmap_ref(ember_idmap *m);
EMBER_API void ember_idmap_free(ember_idmap *m); /* drops one reference */
EMBER_API size_t ember_idmap_size(const ember_idmap *m);
/* Index of id, or -1 when absent. */
EMBER_API int64_t ember_idmap_find(const ember_idmap *m, const char *id, size_t len);
/* Index of id, adding it when absent. */
EMBER_API int ember_idmap_intern(ember_idmap *m, const char *id, size_t len, uint32_t *index);
/* The id string of an index (NUL-terminated, owned by the map), or NULL. */
EMBER_API const char *ember_idmap_name(const ember_idmap *m, uint32_t index);

/* ------------------------------------------------------- interactions */

typedef enum {
    EMBER_FMT_AUTO = 0, /* from the file name and first line */
    EMBER_FMT_TSV,      /* tab separated, header line with column names */
    EMBER_FMT_CSV,      /* comma separated, header line */
    EMBER_FMT_UDATA,    /* MovieLens u.data: user item rating time, tabs, no header */
    EMBER_FMT_ML_DAT,   /* MovieLens ratings.dat: user::item::rating::time */
    EMBER_FMT_ATOMIC    /* RecBole .inter: typed header "user_id:token ..." */
} ember_format;

typedef enum { EMBER_BAD_STOP = 0, EMBER_BAD_SKIP = 1 } ember_bad_policy;

typedef struct {
    ember_format format;
    /* Column choice for headed files: "user=userId,item=movieId,
     * rating=rating,time=timestamp"; NULL = the first header name found of
     * user|user_id|userId, item|item_id|itemId|movieId, rating|label,
     * timestamp|time.  Without a rating column every rating is 1, without
     * a time column every timestamp is 0. */
    const char *cols;
    ember_bad_policy on_bad; /* stop at the first malformed line, or skip and count */
    int fixed_ids;           /* 1: ids not already in the maps are counted and skipped */
} ember_read_opts;

typedef struct {
    size_t lines;         /* data lines seen (header excluded) */
    size_t rows;          /* interactions kept */
    size_t bad;           /* malformed lines skipped */
    size_t unknown;       /* lines skipped for an unknown id (fixed_ids) */
    size_t first_bad_line;
    char first_bad[160];  /* why the first bad line was bad */
} ember_read_stats;

/* Interactions as parallel arrays (coordinate form), in file order. */
typedef struct {
    uint32_t *user;
    uint32_t *item;
    float *rating;
    int64_t *ts;
    size_t n, cap;
} ember_coo;

EMBER_API void ember_read_opts_init(ember_read_opts *o);
/* Appends the file's interactions to out.  On failure out->n is what it
 * was before the call, while the maps may keep ids from earlier lines. */
EMBER_API int ember_coo_read(const char *path, const ember_read_opts *opts, ember_idmap *users,
                             ember_idmap *items, ember_coo *out, ember_read_stats *stats);
EMBER_API int ember_coo_read_mem(const char *name, const char *buf, size_t len,
                                 const ember_read_opts *opts, ember_idmap *users,
                                 ember_idmap *items, ember_coo *out, ember_read_stats *stats);
EMBER_API int ember_coo_push(ember_coo *c, uint32_t user, uint32_t item, float rating, int64_t ts);
EMBER_API void ember_coo_free(ember_coo *c);

/* Cleaning, in place.  Dedupe keeps the last interaction of each
 * (user, item) pair: the latest timestamp, then the latest in file order. */
EMBER_API int ember_coo_dedupe(ember_coo *c);
/* Drops users with fewer than min_user and items with fewer than min_item
 * interactions, repeated until nothing changes (a k-core). */
EMBER_API int ember_coo_filter_min(ember_coo *c, size_t min_user, size_t min_item);
/* Implicit feedback: rating >= threshold becomes 1, the rest are dropped. */
EMBER_API void ember_coo_threshold(ember_coo *c, float threshold);

/* ----------------------------------------------------------- datasets */

/* Interactions indexed both ways: CSR by user (items ascending) and CSC by
 * item (users ascending), plus each user's items in time order. */
typedef struct ember_dataset ember_dataset;

/* Builds from coo; takes a reference on both maps.  Duplicated pairs are
 * kept as given (dedupe first if they should not be). */
EMBER_API int ember_dataset_build(const ember_coo *c, ember_idmap *users, ember_idmap *items,
                                  ember_dataset **out);
/* Reads a file and builds; users/items may be NULL for fresh maps. */
EMBER_API int ember_dataset_load(const char *path, const ember_read_opts *opts, ember_idmap *users,
                                 ember_idmap *items, ember_dataset **out, ember_read_stats *stats);
EMBER_API void ember_dataset_free(ember_dataset *d);
EMBER_API size_t ember_dataset_n_users(const ember_dataset *d);
EMBER_API size_t ember_dataset_n_items(const ember_dataset *d);
EMBER_API size_t ember_dataset_nnz(const ember_dataset *d);
EMBER_API ember_idmap *ember_dataset_users(const ember_dataset *d);
EMBER_API ember_idmap *ember_dataset_items(const ember_dataset *d);

/* ------------------------------------------------------------- models */

typedef struct ember_model ember_model;

/* What a model scores for: a known user (index into the model's user map,
 * or -1), and/or a history of items (dense indices, oldest first) that is
 * appended to what the model knows of that user. */
typedef struct {
    int64_t user;
    const uint32_t *hist;
    const int64_t *hist_ts; /* may be NULL */
    size_t n_hist;
} ember_query;

/* A validation score (higher is better) of a model in the middle of its
 * fit, for early stopping; ctx is the caller's.  ember_valid_ndcg below
 * is the usual one. */
typedef int (*ember_valid_fn)(const ember_model *m, void *ctx, double *score);

typedef struct {
    int threads;     /* 0 = OpenMP default */
    uint64_t seed;
    int verbose;     /* 1: progress on stderr */
    ember_valid_fn valid_fn; /* NULL: no early stopping */
    void *valid_ctx;
    const char *log_path;    /* per-epoch JSON lines, for iterative models (NULL: none) */
} ember_fit_opts;

/* Creates an untrained model by name ("pop", "itemknn", "userknn",
 * "ease"), with parameters "k=v" (NULL-terminated list, may be NULL). */
EMBER_API int ember_model_new(const char *name, const char *const *params, ember_model **out);
EMBER_API int ember_model_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                              const ember_fit_opts *opts);
EMBER_API void ember_model_free(ember_model *m);
EMBER_API const char *ember_model_name(const ember_model *m);
/* 1 when scores are predicted ratings (explicit-feedback models). */
EMBER_API int ember_model_predicts_ratings(const ember_model *m);
/* Parameters of the model as a JSON object (owned by the model). */
EMBER_API const char *ember_model_params_json(const ember_model *m);
EMBER_API ember_idmap *ember_model_users(const ember_model *m);
EMBER_API ember_idmap *ember_model_items(const ember_model *m);
EMBER_API size_t ember_model_n_items(const ember_model *m);
/* Scores items[0..n) (all items when items is NULL; n is then ignored). */
EMBER_API int ember_model_score(const ember_model *m, const ember_query *q, const uint32_t *items,
                                size_t n, float *out);
/* Top-k for a query: item indices and scores, best first; the user's known
 * items are left out when exclude_seen is set.  *n_out <= k. */
EMBER_API int ember_model_recommend(const ember_model *m, const ember_query *q, size_t k,
                                    int exclude_seen, uint32_t *items, float *scores,
                                    size_t *n_out);
/* Why item is recommended for a query: the items of its history that
 * contributed most, best first, at most cap of them (out[0..*n_out)).
 * weight is the item's share of the score: exact for models whose score
 * is a sum over history items (itemknn, ease) and for als (the
 * least-squares decomposition: the weights of the distinct history items
 * sum to the score of the history); for the others, leave-one-out: how
 * much the score of the history falls without the item (the 50 most
 * recent distinct items are examined).  *method says which
 * (EMBER_EXPLAIN_*); models whose scores do not depend on the history
 * (pop) give no reasons and EMBER_EXPLAIN_NONE.  *score is the query's
 * score of item. */
typedef struct {
    uint32_t item;
    float weight;
} ember_reason;
enum { EMBER_EXPLAIN_NONE = 0, EMBER_EXPLAIN_EXACT = 1, EMBER_EXPLAIN_LEAVE_ONE_OUT = 2 };
EMBER_API int ember_model_explain(const ember_model *m, const ember_query *q, uint32_t item,
                                  ember_reason *out, size_t cap, size_t *n_out, float *score,
                                  int *method);
/* Online learning: new interactions of known users with known items (by
 * index), users[j] with items[j] at ts[j] (ts NULL: the latest time the
 * model knows).  The users' stored histories grow, so their
 * recommendations leave the new items out and history-based models use
 * them at once; models with an update step move their parameters: als
 * re-solves each touched user exactly against the item table (and, with
 * EMBER_UPDATE_ITEMS, each touched item against the user table), bpr
 * folds each touched user in again from the whole history.  All or
 * nothing: on an error the model is unchanged.  Not safe while other
 * threads read the same model (a server updates a copy and swaps it). */
#define EMBER_UPDATE_ITEMS 1u
EMBER_API int ember_model_update(ember_model *m, const uint32_t *users, const uint32_t *items,
                                 const int64_t *ts, size_t n, unsigned flags);
/* Top-k for many known users at once (users[0..n) indices < the model's
 * user count): user j's list, best first, in items[j * k ..] and
 * scores[j * k ..] (scores may be NULL), its length in counts[j].  The
 * users' training items are left out unless include_seen.  Factor models
 * (als, bpr, svd, svdpp) run one blocked product fused with the selection
 * (exact: the same lists as ember_model_recommend up to float rounding of
 * near ties); other models score user by user.  threads <= 0: default. */
EMBER_API int ember_model_recommend_users(const ember_model *m, const uint32_t *users, size_t n,
                                          size_t k, int include_seen, int threads,
                                          uint32_t *items, float *scores, uint32_t *counts);
/* The k items most similar to item (the model's own notion of similarity). */
EMBER_API int ember_model_similar(const ember_model *m, uint32_t item, size_t k, uint32_t *items,
                                  float *scores, size_t *n_out);
EMBER_API int ember_model_save(const ember_model *m, const char *path);
EMBER_API int ember_model_load(const char *path, ember_model **out);
/* NDCG@k on a validation set with full ranking, the items of exclude
 * removed from each user's ranking (PROTOCOL.md); ctx is an
 * ember_valid_ctx.  Datasets share the model's maps (or extend them). */
typedef struct {
    const ember_dataset *valid;
    const ember_dataset *exclude; /* usually the training set; may be NULL */
    size_t k;                     /* 0 = 10 */
    int threads;
} ember_valid_ctx;
EMBER_API int ember_valid_ndcg(const ember_model *m, void *ctx, double *score);

/* Names of the registered models, NULL-terminated. */
EMBER_API const char *const *ember_model_names(void);

#ifdef __cplusplus
}
#endif
#endif
