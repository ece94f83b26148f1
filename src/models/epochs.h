/*
 * epochs.h — the epoch bookkeeping every iterative model shares: a
 * per-epoch JSON line (ember train --log), a progress line, validation
 * every few epochs through ember_fit_opts.valid_fn, and early stopping
 * with patience.  The model keeps its own snapshot of the best epoch when
 * told this epoch is the best so far.
 */
#ifndef EMBER_EPOCHS_H
#define EMBER_EPOCHS_H

#include "models/model.h"

#include <stdio.h>

typedef struct {
    const ember_fit_opts *opts;
    size_t patience;   /* validations without improvement before stopping (0: never stop) */
    size_t eval_every; /* validate every this many epochs (>= 1) */
    FILE *log;
    double best;       /* best validation score so far (-inf before any) */
    size_t best_epoch; /* 1-based; 0 before any */
    size_t bad;        /* validations since the best */
    double t_start, t_epoch;
    const char *model_name;
    /* the metric's name in the log and on the progress line, and whether
     * it is an error (lower is better: svd's valid RMSE); set after
     * model_epochs_begin (defaults: "valid_ndcg@10", higher is better) */
    const char *metric;
    bool lower_better;
} model_epochs;

int model_epochs_begin(model_epochs *e, const ember_model *m, const ember_fit_opts *o,
                       size_t patience, size_t eval_every);
/* Call at the end of epoch (1-based) with its training loss (NaN if none).
 * Sets *is_best when this epoch was validated and is the best so far, and
 * *stop when patience ran out.  Returns an error from valid_fn or I/O. */
int model_epochs_end(model_epochs *e, const ember_model *m, size_t epoch, double loss,
                     bool *is_best, bool *stop);
/* Closes the log; prints the summary line when verbose. */
void model_epochs_finish(model_epochs *e);

#endif
