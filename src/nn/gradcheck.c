/*
 * gradcheck.c — finite-difference check of the reverse pass.
 *
 * The output of a forward pass is projected to a scalar f = sum_i w_i out_i
 * with fixed random weights (so every output element carries a different
 * upstream gradient, and f is accumulated in double outside the graph).
 * The analytic gradient comes from one reverse pass seeded with w; the
 * numeric one from central differences (f(x + h) - f(x - h)) / (2h) on
 * each checked element of each parameter, where 2h is the difference the
 * float perturbation really made.  The graph is reset and re-seeded before
 * every build, so random ops (dropout) draw the same masks each time.
 */
#include "nn/nn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void nn_gradcheck_opts_default(nn_gradcheck_opts *o)
{
    o->eps = 1e-3f;
    o->atol = 5e-4f;
    o->rtol = 5e-3f;
    o->max_checks = 0;
    o->seed = 1234;
}

/* Builds once and returns f = sum w_i out_i; out_n gets the output size
 * (w NULL: only that). */
static int evaluate(nn_graph *g, nn_build_fn build, void *ctx, uint64_t seed, const float *w,
                    size_t *out_n, double *f, nn_tensor **out)
{
    nn_graph_reset(g);
    nn_graph_seed(g, seed);
    nn_tensor *y = build(g, ctx);
    if (!y)
        return nn_graph_status(g) ? nn_graph_status(g) : EMBER_EINVAL;
    if (w && y->n != *out_n)
        return ember_fail(EMBER_EINVAL, "gradcheck: the output changed size (%zu, then %zu)",
                          *out_n, y->n);
    *out_n = y->n;
    if (w) {
        double s = 0.0;
        for (size_t i = 0; i < y->n; i++)
            s += (double)w[i] * y->data[i];
        *f = s;
    }
    if (out)
        *out = y;
    return EMBER_OK;
}

int nn_gradcheck(nn_graph *g, nn_build_fn build, void *ctx, nn_param *const *params,
                 size_t n_params, const nn_gradcheck_opts *o, nn_gradcheck_report *rep)
{
    memset(rep, 0, sizeof *rep);
    for (size_t k = 0; k < n_params; k++)
        nn_param_zero_grad(params[k]);
    size_t n_out = 0;
    nn_tensor *y = NULL;
    double f = 0.0;
    int rc = evaluate(g, build, ctx, o->seed, NULL, &n_out, &f, &y);
    if (rc)
        return rc;
    float *w = ember_alloc(n_out, sizeof *w);
    if (!w)
        return EMBER_ENOMEM;
    ember_rng rng;
    ember_rng_seed(&rng, o->seed ^ 0x5eedf00dULL);
    for (size_t i = 0; i < n_out; i++)
        w[i] = (float)(2.0 * ember_rng_uniform(&rng) - 1.0);
    rc = nn_backward_seeded(g, y, w);
    for (size_t k = 0; k < n_params && !rc; k++) {
        nn_param *p = params[k];
        size_t checks = o->max_checks && o->max_checks < p->n ? o->max_checks : p->n;
        for (size_t c = 0; c < checks && !rc; c++) {
            size_t i = checks == p->n ? c : c * p->n / checks;
            float x0 = p->value[i];
            float xp = x0 + o->eps, xm = x0 - o->eps;
            double fp, fm;
            p->value[i] = xp;
            rc = evaluate(g, build, ctx, o->seed, w, &n_out, &fp, NULL);
            p->value[i] = xm;
            if (!rc)
                rc = evaluate(g, build, ctx, o->seed, w, &n_out, &fm, NULL);
            p->value[i] = x0;
            if (rc)
                break;
            double num = (fp - fm) / ((double)xp - (double)xm);
            double ana = p->grad[i];
            double err = fabs(ana - num), mag = fmax(fabs(ana), fabs(num));
            double rel = mag > 0.0 ? err / mag : 0.0;
            rep->checked++;
            if (err > o->atol + o->rtol * mag)
                rep->failed++;
            if (err > rep->max_abs_err || !rep->worst_param) {
                rep->max_abs_err = err;
                rep->worst_param = p->name;
                rep->worst_index = i;
                rep->worst_analytic = ana;
                rep->worst_numeric = num;
            }
            if (rel > rep->max_rel_err)
                rep->max_rel_err = rel;
        }
    }
    free(w);
    for (size_t k = 0; k < n_params; k++)
        nn_param_zero_grad(params[k]);
    nn_graph_reset(g);
    return rc;
}
