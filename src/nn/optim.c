/*
 * optim.c — optimizers (SGD with momentum, Adagrad, Adam, AdamW), gradient
 * clipping by global norm, L2 regularisation and learning-rate schedules.
 *
 * A step walks the parameters; a dense parameter (or a sparse one some
 * dense op touched this step) is updated whole, a sparse parameter only in
 * the rows its lookups touched ("lazy" updates: the cost of a step follows
 * the batch, not the catalogue).  The update of a span of floats is the
 * same function in both cases.  The optimizer state (m, v) lives in the
 * parameters, beside their values.  After the update the gradients it used
 * are zeroed, which is the invariant the graph relies on.
 *
 * Formulas as in the papers / PyTorch:
 *   SGD:     v = mu v + g;  w -= lr v          (mu = 0: w -= lr g)
 *   Adagrad: s += g^2;      w -= lr g / (sqrt(s) + eps)      (Duchi et al. 2011)
 *   Adam:    m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *            w -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)   (Kingma & Ba 2015)
 *   AdamW:   w -= lr wd w, then Adam without L2  (Loshchilov & Hutter 2019)
 * L2 (weight_decay for SGD, Adagrad, Adam) adds wd w to the gradient.
 * Clipping scales every gradient by clip / norm when the global norm is
 * larger (Pascanu et al. 2013).
 */
#include "nn/nn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void nn_optim_opts_default(nn_optim_opts *o, nn_optim_kind kind)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->lr = (kind == NN_SGD || kind == NN_ADAGRAD) ? 0.01f : 0.001f;
    o->momentum = 0.0f;
    o->beta1 = 0.9f;
    o->beta2 = 0.999f;
    o->eps = kind == NN_ADAGRAD ? 1e-10f : 1e-8f;
    o->weight_decay = kind == NN_ADAMW ? 0.01f : 0.0f;
    o->clip_norm = 0.0f;
    o->adagrad_init = 0.0f;
}

static bool in_range(float x, float lo, float hi)
{
    return isfinite(x) && x >= lo && x <= hi;
}

static int check_opts(const nn_optim_opts *o)
{
    if (o->kind < NN_SGD || o->kind > NN_ADAMW)
        return ember_fail(EMBER_EINVAL, "optimizer: unknown kind %d", (int)o->kind);
    if (!in_range(o->lr, 0.0f, 1e6f) || o->lr == 0.0f)
        return ember_fail(EMBER_EINVAL, "optimizer: learning rate %g must be positive",
                          (double)o->lr);
    if (!in_range(o->momentum, 0.0f, 0.999999f))
        return ember_fail(EMBER_EINVAL, "optimizer: momentum %g outside [0, 1)",
                          (double)o->momentum);
    if (!in_range(o->beta1, 0.0f, 0.999999f) || !in_range(o->beta2, 0.0f, 0.999999f))
        return ember_fail(EMBER_EINVAL, "optimizer: betas %g, %g outside [0, 1)",
                          (double)o->beta1, (double)o->beta2);
    if (!in_range(o->eps, 0.0f, 1.0f) || o->eps == 0.0f)
        return ember_fail(EMBER_EINVAL, "optimizer: eps %g must be in (0, 1]", (double)o->eps);
    if (!in_range(o->weight_decay, 0.0f, 1e6f) || !in_range(o->clip_norm, 0.0f, 1e30f) ||
        !in_range(o->adagrad_init, 0.0f, 1e30f))
        return ember_fail(EMBER_EINVAL, "optimizer: weight decay %g, clip %g, adagrad init %g "
                                        "must be >= 0",
                          (double)o->weight_decay, (double)o->clip_norm, (double)o->adagrad_init);
    return EMBER_OK;
}

static int state_alloc(float **x, size_t n, float init)
{
    if (!*x) {
        *x = ember_alloc_aligned(n, sizeof(float));
        if (!*x)
            return EMBER_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        (*x)[i] = init;
    return EMBER_OK;
}

int nn_optim_init(nn_optim *opt, const nn_optim_opts *o, nn_params *ps)
{
    int rc = check_opts(o);
    if (rc)
        return rc;
    opt->o = *o;
    opt->t = 0;
    opt->last_norm = 0.0f;
    for (size_t i = 0; i < ps->n; i++) {
        nn_param *p = ps->p[i];
        bool need_m = o->kind == NN_ADAM || o->kind == NN_ADAMW ||
                      (o->kind == NN_SGD && o->momentum > 0.0f);
        bool need_v = o->kind != NN_SGD;
        float v0 = o->kind == NN_ADAGRAD ? o->adagrad_init : 0.0f;
        if ((need_m && state_alloc(&p->m, p->n, 0.0f)) || (need_v && state_alloc(&p->v, p->n, v0)))
            return EMBER_ENOMEM;
    }
    return EMBER_OK;
}

void nn_optim_release(nn_params *ps)
{
    for (size_t i = 0; i < ps->n; i++) {
        free(ps->p[i]->m);
        free(ps->p[i]->v);
        ps->p[i]->m = ps->p[i]->v = NULL;
    }
}

/* Whether p is updated row by row this step. */
static bool is_lazy(const nn_param *p)
{
    return p->sparse && !p->dense_touched;
}

static double sumsq(const float *restrict x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)x[i] * x[i];
    return s;
}

double nn_grad_norm(const nn_params *ps)
{
    double s = 0.0;
    for (size_t i = 0; i < ps->n; i++) {
        const nn_param *p = ps->p[i];
        if (p->frozen)
            continue;
        if (is_lazy(p))
            for (size_t k = 0; k < p->n_touched; k++)
                s += sumsq(p->grad + (size_t)p->touched[k] * p->cols, p->cols);
        else
            s += sumsq(p->grad, p->n);
    }
    return sqrt(s);
}

/* What one update needs besides the span. */
typedef struct {
    nn_optim_kind kind;
    float lr, gscale, l2, decay; /* decay: AdamW's lr * wd */
    float mu, b1, b2, eps;
    float step, bc2_sqrt;        /* Adam: lr / (1 - b1^t), sqrt(1 - b2^t) */
} upd;

/* Updates one span of a parameter and zeroes its gradient (in the same
 * pass: the rows of a lazy update are far apart in memory). */
static void update_span(const upd *u, float *restrict w, float *restrict gr, float *restrict m,
                        float *restrict v, size_t n)
{
    switch (u->kind) {
    case NN_SGD:
        if (m) {
#pragma omp simd
            for (size_t i = 0; i < n; i++) {
                float g = u->gscale * gr[i] + u->l2 * w[i];
                m[i] = u->mu * m[i] + g;
                w[i] -= u->lr * m[i];
            }
        } else {
#pragma omp simd
            for (size_t i = 0; i < n; i++)
                w[i] -= u->lr * (u->gscale * gr[i] + u->l2 * w[i]);
        }
        break;
    case NN_ADAGRAD:
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float g = u->gscale * gr[i] + u->l2 * w[i];
            v[i] += g * g;
            w[i] -= u->lr * g / (sqrtf(v[i]) + u->eps);
        }
        break;
    case NN_ADAM:
    case NN_ADAMW:
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            w[i] -= u->decay * w[i];
            float g = u->gscale * gr[i] + u->l2 * w[i];
            m[i] = u->b1 * m[i] + (1.0f - u->b1) * g;
            v[i] = u->b2 * v[i] + (1.0f - u->b2) * g * g;
            w[i] -= u->step * m[i] / (sqrtf(v[i]) / u->bc2_sqrt + u->eps);
        }
        break;
    }
    memset(gr, 0, n * sizeof(float));
}

static void update_row(const upd *u, nn_param *p, size_t r)
{
    size_t off = r * p->cols;
    update_span(u, p->value + off, p->grad + off, p->m ? p->m + off : NULL,
                p->v ? p->v + off : NULL, p->cols);
}

/* A lazy update visits the touched rows; when they are many it walks the
 * row flags in order instead, so memory is read front to back. */
static void update_lazy(const upd *u, nn_param *p)
{
    if (p->n_touched * 8 > p->rows) {
#pragma omp parallel for if (p->n_touched * p->cols > NN_PAR_MIN) schedule(static)
        for (size_t r = 0; r < p->rows; r++)
            if (p->row_touched[r])
                update_row(u, p, r);
    } else {
#pragma omp parallel for if (p->n_touched * p->cols > NN_PAR_MIN) schedule(static)
        for (size_t k = 0; k < p->n_touched; k++)
            update_row(u, p, p->touched[k]);
    }
}

/* After the update (which zeroed the gradient): no row is touched. */
static void clear_marks(nn_param *p)
{
    if (p->sparse) {
        for (size_t k = 0; k < p->n_touched; k++)
            p->row_touched[p->touched[k]] = 0;
        p->n_touched = 0;
    }
    p->dense_touched = false;
}

#define SPAN 4096 /* dense parameters are updated in chunks of this many, in parallel */

int nn_optim_step(nn_optim *opt, nn_params *ps, float lr)
{
    const nn_optim_opts *o = &opt->o;
    if (lr < 0.0f)
        lr = o->lr;
    if (!isfinite(lr))
        return ember_fail(EMBER_EINVAL, "optimizer: learning rate %g", (double)lr);
    bool need_m = o->kind == NN_ADAM || o->kind == NN_ADAMW ||
                  (o->kind == NN_SGD && o->momentum > 0.0f);
    for (size_t i = 0; i < ps->n; i++) {
        const nn_param *p = ps->p[i];
        if (!p->frozen && ((need_m && !p->m) || (o->kind != NN_SGD && !p->v)))
            return ember_fail(EMBER_EINVAL, "optimizer: parameter '%s' has no state "
                                            "(call nn_optim_init after adding it)",
                              p->name);
    }
    opt->t++;
    upd u = {.kind = o->kind, .lr = lr, .gscale = 1.0f, .mu = o->momentum, .b1 = o->beta1,
             .b2 = o->beta2, .eps = o->eps};
    if (o->kind == NN_ADAMW)
        u.decay = lr * o->weight_decay;
    else
        u.l2 = o->weight_decay;
    if (o->kind == NN_ADAM || o->kind == NN_ADAMW) {
        double t = (double)opt->t;
        u.step = (float)(lr / (1.0 - pow(o->beta1, t)));
        u.bc2_sqrt = (float)sqrt(1.0 - pow(o->beta2, t));
    }
    opt->last_norm = 0.0f;
    if (o->clip_norm > 0.0f) {
        double norm = nn_grad_norm(ps);
        opt->last_norm = (float)norm;
        if (norm > o->clip_norm)
            u.gscale = (float)(o->clip_norm / norm);
    }
    for (size_t i = 0; i < ps->n; i++) {
        nn_param *p = ps->p[i];
        if (p->frozen)
            continue;
        if (is_lazy(p)) {
            update_lazy(&u, p);
        } else {
            size_t chunks = (p->n + SPAN - 1) / SPAN;
#pragma omp parallel for if (p->n > NN_PAR_MIN) schedule(static)
            for (size_t k = 0; k < chunks; k++) {
                size_t off = k * SPAN, len = EMBER_MIN(SPAN, p->n - off);
                update_span(&u, p->value + off, p->grad + off, p->m ? p->m + off : NULL,
                            p->v ? p->v + off : NULL, len);
            }
        }
        clear_marks(p);
    }
    return EMBER_OK;
}

/* -------------------------------------------------------- schedules */

float nn_lr_at(const nn_lr_schedule *s, long t)
{
    if (t < 0)
        t = 0;
    switch (s->kind) {
    case NN_LR_STEP: {
        long k = s->step_size > 0 ? t / s->step_size : 0;
        return (float)(s->base * pow(s->gamma, (double)k));
    }
    case NN_LR_EXP:
        return (float)(s->base * pow(s->gamma, (double)t));
    case NN_LR_COSINE: {
        if (t < s->warmup)
            return (float)((double)s->base * (double)(t + 1) / (double)s->warmup);
        long span = s->total - s->warmup;
        double progress = span > 0 ? (double)(t - s->warmup) / (double)span : 1.0;
        if (progress > 1.0)
            progress = 1.0;
        return (float)(s->min_lr + (s->base - s->min_lr) * 0.5 * (1.0 + cos(M_PI * progress)));
    }
    case NN_LR_CONST:
    default:
        return s->base;
    }
}
