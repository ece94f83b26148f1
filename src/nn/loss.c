/*
 * loss.c — the losses, each a node with a scalar output [1]: binary
 * cross-entropy on logits, softmax cross-entropy over all classes and
 * sampled with the logQ correction, BPR, mean squared error, and the KL
 * term of a VAE.
 *
 * Every loss is fused: forward computes it stably from the logits
 * (log-sum-exp with the row maximum, softplus(x) = max(x, 0) +
 * log1p(e^-|x|)) and backward writes the closed-form gradient, e.g.
 * softmax(x) - onehot(target) for cross-entropy, without a softmax node in
 * between.  Sums are in double, in index order (deterministic).
 *
 * References: BPR, Rendle et al., UAI 2009; sampled softmax with logQ
 * correction, Yi et al., "Sampling-Bias-Corrected Neural Modeling for
 * Large Corpus Item Recommendations", RecSys 2019; the VAE KL term,
 * Kingma & Welling 2014 (as Mult-VAE, Liang et al., WWW 2018, uses it).
 */
#include "nn/nn_internal.h"

#include <math.h>
#include <string.h>

static const int scalar_shape[1] = {1};

static inline double softplus(double x)
{
    return (x > 0.0 ? x : 0.0) + log1p(exp(-fabs(x)));
}

static inline float sigmoidf(float x)
{
    if (x >= 0.0f)
        return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

/* A loss of two same-size inputs. */
static nn_tensor *pair_loss(nn_graph *g, nn_op op, const char *who, nn_tensor *a, nn_tensor *b)
{
    nn_tensor *src[2] = {a, b};
    if (!nn_inputs_ok(g, who, src, 2))
        return NULL;
    if (a->n != b->n) {
        nn_fail(g, EMBER_EINVAL, "%s: inputs %s and %s differ in size", who,
                nn_shape_str(a->ndim, a->shape), nn_shape_str(b->ndim, b->shape));
        return NULL;
    }
    nn_tensor *t = nn_node_new(g, op, 1, scalar_shape, src, 2);
    return t ? nn_node_run(g, t) : NULL;
}

/* ---------------------------------------------------------------- BCE */

nn_tensor *nn_bce_logits(nn_graph *g, nn_tensor *logits, nn_tensor *targets)
{
    return pair_loss(g, NN_OP_BCE_LOGITS, "nn_bce_logits", logits, targets);
}

/* -y log s(x) - (1-y) log(1 - s(x)) = softplus(x) - x y */
int nn_bce_logits_forward(nn_graph *g, nn_tensor *t)
{
    const float *x = t->src[0]->data, *y = t->src[1]->data;
    size_t n = t->src[0]->n;
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += softplus(x[i]) - (double)x[i] * y[i];
    t->data[0] = (float)(s / (double)n);
    return EMBER_OK;
}

int nn_bce_logits_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *a = t->src[0], *b = t->src[1];
    float d = t->grad[0] / (float)a->n;
    for (size_t i = 0; i < a->n; i++) {
        if (a->requires_grad)
            a->grad[i] += d * (sigmoidf(a->data[i]) - b->data[i]);
        if (b->requires_grad)
            b->grad[i] -= d * a->data[i];
    }
    return EMBER_OK;
}

/* ---------------------------------------------------- softmax + CE */

/* aux: the log-sum-exp of each row, then each row's loss. */
nn_tensor *nn_softmax_ce(nn_graph *g, nn_tensor *logits, const uint32_t *targets)
{
    if (!nn_inputs_ok(g, "nn_softmax_ce", &logits, 1))
        return NULL;
    size_t rows = nn_rows(logits), c = (size_t)nn_last(logits);
    if (!targets || rows > INT32_MAX) {
        nn_fail(g, EMBER_EINVAL, "nn_softmax_ce: %s", targets ? "too many rows" : "NULL targets");
        return NULL;
    }
    int counted = 0;
    for (size_t r = 0; r < rows; r++) {
        if (targets[r] == NN_IGNORE)
            continue;
        if (targets[r] >= c) {
            nn_fail(g, EMBER_EINVAL,
                    "nn_softmax_ce: target %u of row %zu out of range (%zu classes)",
                    targets[r], r, c);
            return NULL;
        }
        counted++;
    }
    nn_tensor *t = nn_node_new(g, NN_OP_SOFTMAX_CE, 1, scalar_shape, &logits, 1);
    if (!t)
        return NULL;
    t->idx = nn_graph_copy(g, targets, rows, sizeof *targets);
    t->aux = nn_graph_alloc(g, 2 * rows, sizeof(float));
    if (!t->idx || !t->aux)
        return NULL;
    t->arg.i[0] = counted;
    return nn_node_run(g, t);
}

/* Row-wise log-sum-exp of z = x - logq (logq NULL: 0), as in both
 * softmax losses; rows run in parallel, each a pure function of its row. */
static float row_lse(const float *restrict x, const float *restrict logq, size_t c)
{
    float m = -INFINITY;
    for (size_t j = 0; j < c; j++) {
        float z = logq ? x[j] - logq[j] : x[j];
        m = z > m ? z : m;
    }
    float s = 0.0f;
    for (size_t j = 0; j < c; j++) {
        float z = logq ? x[j] - logq[j] : x[j];
        s += expf(z - m);
    }
    return m + logf(s);
}

static float mean_of_rows(const float *loss, size_t rows, int counted)
{
    double s = 0.0;
    for (size_t r = 0; r < rows; r++)
        s += loss[r];
    return counted ? (float)(s / counted) : 0.0f;
}

int nn_softmax_ce_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *x = t->src[0];
    const uint32_t *tg = t->idx;
    size_t rows = nn_rows(x), c = (size_t)nn_last(x);
    float *lse = t->aux, *loss = t->aux + rows;
#pragma omp parallel for if (x->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        if (tg[r] == NN_IGNORE) {
            lse[r] = 0.0f;
            loss[r] = 0.0f;
            continue;
        }
        const float *row = x->data + r * c;
        lse[r] = row_lse(row, NULL, c);
        loss[r] = lse[r] - row[tg[r]];
    }
    t->data[0] = mean_of_rows(loss, rows, t->arg.i[0]);
    return EMBER_OK;
}

int nn_softmax_ce_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0];
    const uint32_t *tg = t->idx;
    size_t rows = nn_rows(x), c = (size_t)nn_last(x);
    if (t->arg.i[0] == 0)
        return EMBER_OK;
    float d = t->grad[0] / (float)t->arg.i[0];
    const float *lse = t->aux;
#pragma omp parallel for if (x->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        if (tg[r] == NN_IGNORE)
            continue;
        const float *row = x->data + r * c;
        float *gx = x->grad + r * c, l = lse[r];
        for (size_t j = 0; j < c; j++)
            gx[j] += d * expf(row[j] - l);
        gx[tg[r]] -= d;
    }
    return EMBER_OK;
}

/* ------------------------------------------------- sampled softmax CE */

nn_tensor *nn_sampled_softmax_ce(nn_graph *g, nn_tensor *logits, const float *logq,
                                 bool logq_per_row, const uint8_t *valid)
{
    if (!nn_inputs_ok(g, "nn_sampled_softmax_ce", &logits, 1))
        return NULL;
    size_t rows = nn_rows(logits), c = (size_t)nn_last(logits);
    if (!logq || rows > INT32_MAX || c < 2) {
        nn_fail(g, EMBER_EINVAL, "nn_sampled_softmax_ce: logits %s need [N, 1+K] with K >= 1 "
                                 "and logq",
                nn_shape_str(logits->ndim, logits->shape));
        return NULL;
    }
    size_t nq = logq_per_row ? rows * c : c;
    for (size_t i = 0; i < nq; i++) {
        bool pos = i % c == 0;
        if (isnan(logq[i]) || logq[i] == -INFINITY || (pos && !isfinite(logq[i]))) {
            nn_fail(g, EMBER_EINVAL,
                    "nn_sampled_softmax_ce: logq[%zu] = %g (must be finite, or +inf for a "
                    "negative)",
                    i, (double)logq[i]);
            return NULL;
        }
    }
    int counted = 0;
    for (size_t r = 0; r < rows; r++)
        counted += !valid || valid[r];
    nn_tensor *t = nn_node_new(g, NN_OP_SAMPLED_SOFTMAX_CE, 1, scalar_shape, &logits, 1);
    if (!t)
        return NULL;
    t->aux = nn_graph_alloc(g, 2 * rows + nq, sizeof(float));
    if (!t->aux)
        return NULL;
    memcpy(t->aux + 2 * rows, logq, nq * sizeof(float));
    if (valid) {
        uint8_t *v = nn_graph_alloc(g, rows, 1);
        if (!v)
            return NULL;
        for (size_t r = 0; r < rows; r++)
            v[r] = valid[r] != 0;
        t->idx = v;
    }
    t->arg.i[0] = counted;
    t->arg.i[1] = logq_per_row;
    return nn_node_run(g, t);
}

int nn_sampled_softmax_ce_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *x = t->src[0];
    const uint8_t *valid = t->idx;
    size_t rows = nn_rows(x), c = (size_t)nn_last(x);
    float *lse = t->aux, *loss = t->aux + rows;
    const float *logq = t->aux + 2 * rows;
    bool per_row = t->arg.i[1];
#pragma omp parallel for if (x->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        if (valid && !valid[r]) {
            lse[r] = 0.0f;
            loss[r] = 0.0f;
            continue;
        }
        const float *row = x->data + r * c, *lq = logq + (per_row ? r * c : 0);
        lse[r] = row_lse(row, lq, c);
        loss[r] = lse[r] - (row[0] - lq[0]);
    }
    t->data[0] = mean_of_rows(loss, rows, t->arg.i[0]);
    return EMBER_OK;
}

int nn_sampled_softmax_ce_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0];
    const uint8_t *valid = t->idx;
    size_t rows = nn_rows(x), c = (size_t)nn_last(x);
    if (t->arg.i[0] == 0)
        return EMBER_OK;
    float d = t->grad[0] / (float)t->arg.i[0];
    const float *lse = t->aux, *logq = t->aux + 2 * rows;
    bool per_row = t->arg.i[1];
#pragma omp parallel for if (x->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        if (valid && !valid[r])
            continue;
        const float *row = x->data + r * c, *lq = logq + (per_row ? r * c : 0);
        float *gx = x->grad + r * c, l = lse[r];
        for (size_t j = 0; j < c; j++)
            gx[j] += d * expf(row[j] - lq[j] - l);
        gx[0] -= d;
    }
    return EMBER_OK;
}

/* ---------------------------------------------------------------- BPR */

nn_tensor *nn_bpr(nn_graph *g, nn_tensor *pos, nn_tensor *neg)
{
    return pair_loss(g, NN_OP_BPR, "nn_bpr", pos, neg);
}

/* -log sigma(p - q) = softplus(q - p) */
int nn_bpr_forward(nn_graph *g, nn_tensor *t)
{
    const float *p = t->src[0]->data, *q = t->src[1]->data;
    size_t n = t->src[0]->n;
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += softplus((double)q[i] - p[i]);
    t->data[0] = (float)(s / (double)n);
    return EMBER_OK;
}

int nn_bpr_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *a = t->src[0], *b = t->src[1];
    float d = t->grad[0] / (float)a->n;
    for (size_t i = 0; i < a->n; i++) {
        float s = d * sigmoidf(b->data[i] - a->data[i]);
        if (a->requires_grad)
            a->grad[i] -= s;
        if (b->requires_grad)
            b->grad[i] += s;
    }
    return EMBER_OK;
}

/* ---------------------------------------------------------------- MSE */

nn_tensor *nn_mse(nn_graph *g, nn_tensor *a, nn_tensor *b)
{
    return pair_loss(g, NN_OP_MSE, "nn_mse", a, b);
}

int nn_mse_forward(nn_graph *g, nn_tensor *t)
{
    const float *a = t->src[0]->data, *b = t->src[1]->data;
    size_t n = t->src[0]->n;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        s += e * e;
    }
    t->data[0] = (float)(s / (double)n);
    return EMBER_OK;
}

int nn_mse_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *a = t->src[0], *b = t->src[1];
    float d = 2.0f * t->grad[0] / (float)a->n;
    for (size_t i = 0; i < a->n; i++) {
        float e = d * (a->data[i] - b->data[i]);
        if (a->requires_grad)
            a->grad[i] += e;
        if (b->requires_grad)
            b->grad[i] -= e;
    }
    return EMBER_OK;
}

/* ---------------------------------------------------------- VAE KL */

nn_tensor *nn_kl_vae(nn_graph *g, nn_tensor *mu, nn_tensor *logvar)
{
    nn_tensor *src[2] = {mu, logvar};
    if (!nn_inputs_ok(g, "nn_kl_vae", src, 2))
        return NULL;
    bool same = mu->ndim == logvar->ndim;
    for (int i = 0; same && i < mu->ndim; i++)
        same = mu->shape[i] == logvar->shape[i];
    if (!same) {
        nn_fail(g, EMBER_EINVAL, "nn_kl_vae: mu %s and logvar %s differ",
                nn_shape_str(mu->ndim, mu->shape), nn_shape_str(logvar->ndim, logvar->shape));
        return NULL;
    }
    nn_tensor *t = nn_node_new(g, NN_OP_KL_VAE, 1, scalar_shape, src, 2);
    return t ? nn_node_run(g, t) : NULL;
}

int nn_kl_vae_forward(nn_graph *g, nn_tensor *t)
{
    const float *mu = t->src[0]->data, *lv = t->src[1]->data;
    size_t n = t->src[0]->n, rows = nn_rows(t->src[0]);
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += 1.0 + lv[i] - (double)mu[i] * mu[i] - exp((double)lv[i]);
    t->data[0] = (float)(-0.5 * s / (double)rows);
    return EMBER_OK;
}

int nn_kl_vae_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *mu = t->src[0], *lv = t->src[1];
    float d = t->grad[0] / (float)nn_rows(mu);
    for (size_t i = 0; i < mu->n; i++) {
        if (mu->requires_grad)
            mu->grad[i] += d * mu->data[i];
        if (lv->requires_grad)
            lv->grad[i] += d * 0.5f * (expf(lv->data[i]) - 1.0f);
    }
    return EMBER_OK;
}
