/*
 * data.h — internal view of datasets and the data-layer functions that the
 * CLI, models and evaluation use.  The public handle is ember_dataset.
 */
#ifndef EMBER_DATA_H
#define EMBER_DATA_H

#include "core/core.h"

/* CSR by user: user u's interactions are [u_ptr[u], u_ptr[u+1]) in u_item /
 * u_rating / u_ts, items ascending (ties in file order).  u_seq holds the
 * same items in time order (ties in file order): a user's sequence.  CSC by
 * item likewise, users ascending. */
struct ember_dataset {
    ember_idmap *users, *items;
    size_t n_users, n_items, nnz;
    uint64_t *u_ptr;
    uint32_t *u_item;
    float *u_rating;
    int64_t *u_ts;
    uint32_t *u_seq;
    int64_t *u_seq_ts;
    uint64_t *i_ptr;
    uint32_t *i_user;
    float *i_rating;
    int64_t t_min, t_max; /* over all interactions (0, 0 when empty) */
};

static inline size_t data_user_len(const ember_dataset *d, uint32_t u)
{
    return (size_t)(d->u_ptr[u + 1] - d->u_ptr[u]);
}

static inline size_t data_item_len(const ember_dataset *d, uint32_t i)
{
    return (size_t)(d->i_ptr[i + 1] - d->i_ptr[i]);
}

/* Copies the interactions of a dataset back into coordinate form (user
 * rows, items ascending). */
int data_to_coo(const ember_dataset *d, ember_coo *out);

/* Writes interactions as TSV with the header "user item rating timestamp",
 * ids through the maps. */
int data_write_tsv(const char *path, const ember_coo *c, const ember_idmap *users,
                   const ember_idmap *items);

/* Selects rows of c by index (keep[0..n) into c), into out (a new coo). */
int data_coo_select(const ember_coo *c, const size_t *idx, size_t n, ember_coo *out);


/* ------------------------------------------------------------- splits
 * Each splitter reads a coo and returns index lists into it (ascending
 * within each part, i.e. in file order).  Seeded: the same input and seed
 * give the same split on every machine.  The caller frees the lists. */

typedef struct {
    size_t *idx[3]; /* train, valid, test */
    size_t n[3];
} data_split3;

void data_split3_free(data_split3 *s);

/* Per user: shuffle the user's interactions, then test = round(tf * n),
 * valid = round(vf * n) (round half to even, as Python's round), the first
 * ones go to test, the next to valid, the rest to train (PROTOCOL.md
 * "general"). */
int data_split_ratio(const ember_coo *c, double valid_frac, double test_frac, uint64_t seed,
                     data_split3 *out);
/* Per user, by time (ties in file order): last -> test, second last ->
 * valid, the rest -> train; users with fewer than 3 interactions go wholly
 * to train (PROTOCOL.md "sequential"). */
int data_split_leave_one_out(const ember_coo *c, data_split3 *out);
/* Global time cut: interactions sorted by time (ties in file order); the
 * latest test_frac go to test, the valid_frac before them to valid. */
int data_split_temporal(const ember_coo *c, double valid_frac, double test_frac, data_split3 *out);
/* k folds of all interactions (shuffled, fold f takes positions f, f+k,
 * ...): fold_of[i] in 0..k-1 for each interaction. */
int data_split_kfold(const ember_coo *c, size_t k, uint64_t seed, uint32_t **fold_of);

/* ----------------------------------------------------------- features
 * Side features of items or users, read from a RecBole atomic file
 * (.item/.user with typed header "name:token", "name:token_seq",
 * "name:float", "name:float_seq") or a TSV with a header (types then come
 * from --types or are guessed: numbers -> float, else token).  Rows are
 * keyed by the entity id column (first column unless named) and mapped
 * through an existing idmap; rows for unknown ids are skipped and counted. */

typedef enum { FEAT_TOKEN, FEAT_TOKEN_SEQ, FEAT_FLOAT, FEAT_FLOAT_SEQ } data_feat_type;

typedef struct {
    char *name;
    data_feat_type type;
    /* token values: per entity a list of token indices into vocab (one for
     * FEAT_TOKEN, 0..n for FEAT_TOKEN_SEQ; 0 entries = missing). */
    uint64_t *ptr;     /* n_entities + 1 */
    uint32_t *tok;     /* token indices (sorted ascending and unique for TOKEN_SEQ) */
    ember_idmap *vocab;
    /* float values likewise */
    float *val;
    /* the raw text of each entity's value (for titles: "Toy Story"), or NULL */
    char **text;
} data_feature;

typedef struct {
    size_t n_entities; /* = size of the idmap when loaded */
    data_feature *cols;
    size_t n_cols;
    size_t skipped_unknown;
} data_features;

/* id_col NULL = first column. */
int data_features_load(const char *path, const char *id_col, const ember_idmap *ids,
                       data_features *out);
void data_features_free(data_features *f);
/* Column by name, or NULL. */
const data_feature *data_features_col(const data_features *f, const char *name);

/* ------------------------------------------------------------ synthetic
 * A seeded generator of realistic interaction data: Zipf-like item
 * popularity, latent topics (items belong to a category / topic), users
 * with a few interests who drift between them over time, ratings that
 * depend on topic affinity, timestamps increasing per user; plus item
 * titles made of topic words.  Same input, same output, on every machine. */
typedef struct {
    size_t n_users, n_items, n_interactions, n_topics;
    double zipf;       /* popularity exponent, ~0.9 */
    uint64_t seed;
} data_synth_opts;

void data_synth_opts_init(data_synth_opts *o); /* 1000 users, 2000 items, 50000 rows, 20 topics */
/* Writes interactions TSV (user item rating timestamp) to inter_path and,
 * when item_path is not NULL, a RecBole-style item file with
 * "item_id:token\ttitle:token_seq\tcategory:token" to item_path. */
int data_synth_write(const data_synth_opts *o, const char *inter_path, const char *item_path);

/* -------------------------------------------------------------- stats */
typedef struct {
    size_t n_users, n_items, nnz;
    double density;
    double rating_min, rating_max, rating_mean;
    int64_t t_min, t_max;
    /* popularity: share of interactions on the top 1% / 10% / 20% items,
     * number of items with 1 interaction, Gini of item counts */
    double head1, head10, head20, item_gini;
    size_t items_once;
    /* per-user lengths: min, p25, median, p75, p90, max, mean */
    double ulen_min, ulen_p25, ulen_p50, ulen_p75, ulen_p90, ulen_max, ulen_mean;
    double ilen_mean, ilen_max;
} data_stats;

int data_stats_compute(const ember_dataset *d, data_stats *out);

#endif
