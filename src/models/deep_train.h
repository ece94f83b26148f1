/*
 * deep_train.h — the trainer every neural model shares (src/nn models:
 * neumf, multvae/multdae, and the sequence and graph models after them):
 * epochs over a set of training examples, shuffled each epoch and cut
 * into batches; the optimizer step (Adam by default) with a per-epoch
 * learning-rate decay or a per-step schedule; optionally the moving
 * (Polyak) average of the weights, which is what validation and the
 * final model use; negative sampling (uniform or by popularity, never a
 * positive of the user); validation through ember_fit_opts.valid_fn with
 * early stopping (model_epochs: patience, the per-epoch JSON log of
 * `ember train --log`, the progress line), a snapshot of the best
 * epoch's parameters restored at the end.
 *
 * A model gives the trainer its parameters and a few callbacks:
 *   loss(ctx, batch)  builds the loss of one batch on batch->g (training
 *                     mode) from the example indices batch->idx[0..n) and
 *                     returns the scalar node (NULL: the graph's status);
 *                     the trainer runs backward, the optimizer step and
 *                     the graph reset;
 *   epoch_begin       (optional) before each epoch: may change the number
 *                     of examples (e.g. regenerate samples);
 *   sync              (optional) after the parameters changed and before
 *                     anything scores with them (validation, the end of
 *                     the fit): refresh what scoring caches.
 * Examples are whatever the model says: users, interactions, sequences.
 *
 * Determinism: the example order, the negatives (batch->rng) and the
 * dropout masks (the graph's RNG) all come from ember_fit_opts.seed; with
 * one thread a fit is bit-identical run to run (and, the matrix products
 * running on one OpenBLAS thread and the nn ops on static schedules, the
 * same with two in practice).
 */
#ifndef EMBER_DEEP_TRAIN_H
#define EMBER_DEEP_TRAIN_H

#include "models/model.h"
#include "nn/nn.h"

/* ----------------------------------------------------- negative sampling */

typedef enum { DEEP_NEG_UNIFORM = 0, DEEP_NEG_POP = 1 } deep_neg_kind;

/* Negatives for the users of a training set: an item drawn uniformly, or
 * proportionally to its number of training interactions (the item of a
 * uniformly drawn interaction), redrawn while it is one of the user's
 * training items (binary search in the user's sorted items).  Borrows
 * train. */
typedef struct {
    const uint64_t *u_ptr;
    const uint32_t *u_item; /* per user, ascending */
    size_t n_users, n_items, nnz;
    deep_neg_kind kind;
} deep_negs;

void deep_negs_init(deep_negs *ns, const ember_dataset *train, deep_neg_kind kind);
/* A negative for user u (< n_users), or UINT32_MAX when 64 draws in a row
 * all hit the user's positives (a user who has nearly every item). */
uint32_t deep_negs_draw(const deep_negs *ns, ember_rng *rng, uint32_t u);
/* Whether the sorted a[0..n) holds x. */
bool deep_sorted_has(const uint32_t *a, size_t n, uint32_t x);

/* ------------------------------------------------------------- training */

typedef struct {
    nn_graph *g;        /* in training mode, empty */
    ember_rng *rng;     /* the trainer's RNG (negatives, noise) */
    const uint32_t *idx; /* the batch: example indices, in shuffled order */
    size_t n;
    size_t epoch;       /* 1-based */
    long step;          /* optimizer steps taken before this batch */
} deep_batch;

typedef struct {
    nn_tensor *(*loss)(void *ctx, const deep_batch *b);
    int (*epoch_begin)(void *ctx, size_t epoch, ember_rng *rng, size_t *n_examples);
    int (*sync)(void *ctx);
} deep_model_fns;

typedef struct {
    size_t epochs;     /* the most epochs */
    size_t batch;      /* examples per batch (the last one may be smaller) */
    size_t patience;   /* validations without improvement before stopping (0: never) */
    size_t eval_every; /* validate every this many epochs */
    nn_optim_opts optim;
    /* the learning rate of epoch e is optim.lr * lr_decay^(e-1) (1: constant) */
    double lr_decay;
    /* or, when not NULL, the rate of each step from this schedule */
    const nn_lr_schedule *schedule;
    /* > 0: validate and keep the Polyak average of the weights,
     * avg = average avg + (1 - average) w after each step (0: off) */
    double average;
} deep_train_cfg;

typedef struct {
    size_t epochs_run;
    size_t best_epoch;      /* 0 when nothing was validated */
    double best_score;      /* the valid metric at best_epoch (NaN when none) */
    double last_loss;       /* mean training loss of the last epoch */
    double first_loss;      /* ... and of the first */
    double seconds;         /* the whole fit, validation included */
    double train_seconds;   /* the epochs' training only */
    double seconds_to_best; /* from the start to the end of the best epoch's validation */
} deep_train_report;

/* Trains ps with the model's callbacks over n_examples examples (> 0).
 * With a validation function in o, validates every eval_every epochs,
 * stops after patience validations without improvement and leaves ps
 * holding the best validated epoch's values; sync runs before each
 * validation and once at the end.  rep may be NULL. */
int deep_train(ember_model *m, nn_params *ps, const deep_model_fns *fns, void *ctx,
               size_t n_examples, const deep_train_cfg *cfg, const ember_fit_opts *o,
               deep_train_report *rep);

/* The shared hyper-parameters of deep models, as param-table rows: a model
 * declares the fields with DEEP_PARAM_FIELDS in its param struct and lists
 * DEEP_PARAMS(struct, then the default texts of epochs, batch, lr,
 * lr_decay, weight_decay, average, patience, eval_every) in its table. */
#define DEEP_PARAM_FIELDS \
    int64_t epochs;       \
    int64_t batch;        \
    double lr;            \
    double lr_decay;      \
    double weight_decay;  \
    double average;       \
    int64_t patience;     \
    int64_t eval_every

#define DEEP_PARAMS(type, epochs_def, batch_def, lr_def, decay_def, wd_def, avg_def,           \
                    patience_def, every_def)                                                   \
    {"epochs", PARAM_INT, offsetof(type, epochs), epochs_def, 1, 100000, NULL,                 \
     "training epochs (the most, with early stopping on a valid set)"},                        \
    {"batch", PARAM_INT, offsetof(type, batch), batch_def, 1, 1 << 20, NULL,                   \
     "training examples per mini-batch"},                                                      \
    {"lr", PARAM_FLOAT, offsetof(type, lr), lr_def, 1e-7, 10, NULL, "Adam learning rate"},     \
    {"lr_decay", PARAM_FLOAT, offsetof(type, lr_decay), decay_def, 0.01, 1, NULL,              \
     "learning-rate multiplier per epoch"},                                                    \
    {"weight_decay", PARAM_FLOAT, offsetof(type, weight_decay), wd_def, 0, 10, NULL,           \
     "L2 penalty added to the gradients (Adam weight decay)"},                                 \
    {"average", PARAM_FLOAT, offsetof(type, average), avg_def, 0, 0.9999, NULL,                \
     "keep the moving average of the weights with this decay per step and score with it "     \
     "(0: off)"},                                                                              \
    {"patience", PARAM_INT, offsetof(type, patience), patience_def, 0, 10000, NULL,            \
     "stop after this many validations without improvement (0: never); the best validated "    \
     "epoch is kept"},                                                                         \
    {"eval_every", PARAM_INT, offsetof(type, eval_every), every_def, 1, 10000, NULL,          \
     "validate every this many epochs (when a valid set is given)"}

/* A cfg from those fields: Adam with the given lr, per-epoch decay and
 * weight decay.  DEEP_CFG(&cfg, p) passes the fields of a param struct p. */
void deep_cfg_from_params(deep_train_cfg *cfg, int64_t epochs, int64_t batch, double lr,
                          double lr_decay, double weight_decay, double average,
                          int64_t patience, int64_t eval_every);
#define DEEP_CFG(cfg, p)                                                                       \
    deep_cfg_from_params(cfg, (p)->epochs, (p)->batch, (p)->lr, (p)->lr_decay,                 \
                         (p)->weight_decay, (p)->average, (p)->patience, (p)->eval_every)

#endif
