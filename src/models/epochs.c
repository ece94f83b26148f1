/*
 * epochs.c — epoch bookkeeping for iterative models (see epochs.h): logs,
 * progress, validation and early stopping in one place, so no model
 * carries its own copy.
 */
#include "models/epochs.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

int model_epochs_begin(model_epochs *e, const ember_model *m, const ember_fit_opts *o,
                       size_t patience, size_t eval_every)
{
    memset(e, 0, sizeof *e);
    e->opts = o;
    e->patience = patience;
    e->eval_every = eval_every ? eval_every : 1;
    e->best = -INFINITY;
    e->model_name = m->ops->name;
    e->metric = "valid_ndcg@10";
    e->t_start = e->t_epoch = ember_now();
    if (o && o->log_path) {
        e->log = fopen(o->log_path, "w");
        if (!e->log)
            return ember_fail(EMBER_EIO, "%s: %s", o->log_path, strerror(errno));
    }
    return EMBER_OK;
}

int model_epochs_end(model_epochs *e, const ember_model *m, size_t epoch, double loss,
                     bool *is_best, bool *stop)
{
    *is_best = false;
    *stop = false;
    double now = ember_now(), secs = now - e->t_epoch;
    double score = NAN;
    bool validated = false;
    if (e->opts && e->opts->valid_fn && epoch % e->eval_every == 0) {
        int st = e->opts->valid_fn(m, e->opts->valid_ctx, &score);
        if (st)
            return st;
        validated = true;
        double better = e->lower_better ? -score : score; /* e->best is kept as "higher" */
        if (better > e->best) {
            e->best = better;
            e->best_epoch = epoch;
            e->bad = 0;
            *is_best = true;
        } else if (e->patience && ++e->bad >= e->patience) {
            *stop = true;
        }
    }
    if (e->log) {
        fprintf(e->log, "{\"epoch\":%zu,\"loss\":", epoch);
        if (isfinite(loss))
            fprintf(e->log, "%.6g", loss);
        else
            fprintf(e->log, "null");
        if (validated)
            fprintf(e->log, ",\"%s\":%.6f", e->metric, score);
        fprintf(e->log, ",\"seconds\":%.4f,\"elapsed\":%.4f}\n", secs, now - e->t_start);
        if (fflush(e->log) != 0)
            return ember_fail(EMBER_EIO, "cannot write the training log");
    }
    if (e->opts && e->opts->verbose && isatty(STDERR_FILENO)) {
        fprintf(stderr, "\r\033[K%s epoch %zu  loss %.5g", e->model_name, epoch, loss);
        if (validated)
            fprintf(stderr, "  %s %.4f (best %.4f at %zu)", e->metric, score,
                    e->lower_better ? -e->best : e->best, e->best_epoch);
        fprintf(stderr, "  %.2f s/epoch", secs);
        fflush(stderr);
    }
    e->t_epoch = ember_now(); /* validation time is not the next epoch's */
    return EMBER_OK;
}

void model_epochs_finish(model_epochs *e)
{
    if (e->log)
        fclose(e->log);
    e->log = NULL;
    if (e->opts && e->opts->verbose && isatty(STDERR_FILENO))
        fprintf(stderr, "\r\033[K");
}
