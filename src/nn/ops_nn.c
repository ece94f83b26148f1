/*
 * ops_nn.c — the row-wise neural-network ops: softmax and log-softmax over
 * the last dim, layer norm, dropout, and embedding bags.
 *
 * Row-wise ops run one row per iteration of a parallel loop (static
 * schedule) and keep what backward needs (means and inverse deviations of
 * layer norm, the dropout mask).  Softmax subtracts the row maximum first
 * (stable); softmax backward is y (dy - <dy, y>), log-softmax backward
 * dy - softmax(x) sum(dy).
 *
 * Layer norm: Ba, Kiros & Hinton, "Layer Normalization", 2016; with
 * xhat = (x - mean) * rstd, dx = rstd (dxhat - mean(dxhat) - xhat
 * mean(dxhat xhat)), dxhat = dy gamma.
 *
 * Embedding bags (as torch.nn.EmbeddingBag): bags of rows given by
 * offsets, summed or averaged; the gradient goes to the rows of the bags
 * only, and a sparse parameter learns which rows were touched.
 */
#include "nn/nn_internal.h"

#include <math.h>
#include <omp.h>
#include <string.h>

/* ----------------------------------------------------------- softmax */

static nn_tensor *rowwise(nn_graph *g, nn_op op, const char *who, nn_tensor *x)
{
    if (!nn_inputs_ok(g, who, &x, 1))
        return NULL;
    nn_tensor *t = nn_node_new(g, op, x->ndim, x->shape, &x, 1);
    return t ? nn_node_run(g, t) : NULL;
}

nn_tensor *nn_softmax(nn_graph *g, nn_tensor *x)
{
    return rowwise(g, NN_OP_SOFTMAX, "nn_softmax", x);
}

nn_tensor *nn_log_softmax(nn_graph *g, nn_tensor *x)
{
    return rowwise(g, NN_OP_LOG_SOFTMAX, "nn_log_softmax", x);
}

static float row_max(const float *x, size_t n)
{
    float m = x[0];
    for (size_t j = 1; j < n; j++)
        m = x[j] > m ? x[j] : m;
    return m;
}

int nn_softmax_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *x = t->src[0];
    size_t rows = nn_rows(t), w = (size_t)nn_last(t);
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *restrict s = x->data + r * w;
        float *restrict y = t->data + r * w;
        float m = row_max(s, w), sum = 0.0f;
        for (size_t j = 0; j < w; j++) {
            y[j] = expf(s[j] - m);
            sum += y[j];
        }
        float inv = 1.0f / sum;
#pragma omp simd
        for (size_t j = 0; j < w; j++)
            y[j] *= inv;
    }
    return EMBER_OK;
}

int nn_softmax_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0];
    size_t rows = nn_rows(t), w = (size_t)nn_last(t);
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *restrict y = t->data + r * w, *restrict gy = t->grad + r * w;
        float *restrict gx = x->grad + r * w;
        float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
        for (size_t j = 0; j < w; j++)
            dot += gy[j] * y[j];
#pragma omp simd
        for (size_t j = 0; j < w; j++)
            gx[j] += y[j] * (gy[j] - dot);
    }
    return EMBER_OK;
}

int nn_log_softmax_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *x = t->src[0];
    size_t rows = nn_rows(t), w = (size_t)nn_last(t);
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *restrict s = x->data + r * w;
        float *restrict y = t->data + r * w;
        float m = row_max(s, w), sum = 0.0f;
        for (size_t j = 0; j < w; j++)
            sum += expf(s[j] - m);
        float ls = logf(sum); /* (x - m) - log sum: exact at large x */
#pragma omp simd
        for (size_t j = 0; j < w; j++)
            y[j] = (s[j] - m) - ls;
    }
    return EMBER_OK;
}

int nn_log_softmax_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0];
    size_t rows = nn_rows(t), w = (size_t)nn_last(t);
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *restrict y = t->data + r * w, *restrict gy = t->grad + r * w;
        float *restrict gx = x->grad + r * w;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (size_t j = 0; j < w; j++)
            sum += gy[j];
        for (size_t j = 0; j < w; j++)
            gx[j] += gy[j] - expf(y[j]) * sum;
    }
    return EMBER_OK;
}

/* -------------------------------------------------------- layer norm */

nn_tensor *nn_layernorm(nn_graph *g, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta, float eps)
{
    nn_tensor *src[3] = {x, gamma, beta};
    if (!nn_inputs_ok(g, "nn_layernorm", src, 3))
        return NULL;
    int d = nn_last(x);
    if (gamma->n != (size_t)d || beta->n != (size_t)d) {
        nn_fail(g, EMBER_EINVAL, "nn_layernorm: gamma %s and beta %s must have %d elements (x %s)",
                nn_shape_str(gamma->ndim, gamma->shape), nn_shape_str(beta->ndim, beta->shape), d,
                nn_shape_str(x->ndim, x->shape));
        return NULL;
    }
    if (!(eps > 0.0f) || !isfinite(eps)) {
        nn_fail(g, EMBER_EINVAL, "nn_layernorm: eps %g must be positive", (double)eps);
        return NULL;
    }
    nn_tensor *t = nn_node_new(g, NN_OP_LAYERNORM, x->ndim, x->shape, src, 3);
    if (!t)
        return NULL;
    t->arg.f[0] = eps;
    t->aux = nn_graph_alloc(g, 2 * nn_rows(x), sizeof(float));
    if (!t->aux)
        return NULL;
    return nn_node_run(g, t);
}

int nn_layernorm_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *x = t->src[0];
    const float *restrict gamma = t->src[1]->data, *restrict beta = t->src[2]->data;
    size_t rows = nn_rows(t), w = (size_t)nn_last(t);
    float *mean = t->aux, *rstd = t->aux + rows;
    float eps = t->arg.f[0];
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *restrict s = x->data + r * w;
        float *restrict y = t->data + r * w;
        float mu = 0.0f;
#pragma omp simd reduction(+ : mu)
        for (size_t j = 0; j < w; j++)
            mu += s[j];
        mu /= (float)w;
        float var = 0.0f;
#pragma omp simd reduction(+ : var)
        for (size_t j = 0; j < w; j++)
            var += (s[j] - mu) * (s[j] - mu);
        var /= (float)w;
        float rs = 1.0f / sqrtf(var + eps);
        mean[r] = mu;
        rstd[r] = rs;
#pragma omp simd
        for (size_t j = 0; j < w; j++)
            y[j] = (s[j] - mu) * rs * gamma[j] + beta[j];
    }
    return EMBER_OK;
}

int nn_layernorm_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0], *gm = t->src[1], *bt = t->src[2];
    const float *restrict gamma = gm->data;
    size_t rows = nn_rows(t), w = (size_t)nn_last(t);
    const float *mean = t->aux, *rstd = t->aux + rows;
    if (x->requires_grad) {
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
        for (size_t r = 0; r < rows; r++) {
            const float *restrict s = x->data + r * w, *restrict gy = t->grad + r * w;
            float *restrict gx = x->grad + r * w;
            float mu = mean[r], rs = rstd[r], a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
            for (size_t j = 0; j < w; j++) {
                float dxh = gy[j] * gamma[j];
                a += dxh;
                b += dxh * (s[j] - mu) * rs;
            }
            a /= (float)w;
            b /= (float)w;
#pragma omp simd
            for (size_t j = 0; j < w; j++)
                gx[j] += rs * (gy[j] * gamma[j] - a - (s[j] - mu) * rs * b);
        }
    }
    /* gamma and beta: sums over rows, in row order */
    for (size_t r = 0; r < rows; r++) {
        const float *restrict s = x->data + r * w, *restrict gy = t->grad + r * w;
        float mu = mean[r], rs = rstd[r];
        if (gm->requires_grad) {
            float *restrict gg = gm->grad;
#pragma omp simd
            for (size_t j = 0; j < w; j++)
                gg[j] += gy[j] * (s[j] - mu) * rs;
        }
        if (bt->requires_grad) {
            float *restrict gb = bt->grad;
#pragma omp simd
            for (size_t j = 0; j < w; j++)
                gb[j] += gy[j];
        }
    }
    return EMBER_OK;
}

/* ----------------------------------------------------------- dropout */

nn_tensor *nn_dropout(nn_graph *g, nn_tensor *x, float p)
{
    if (!nn_inputs_ok(g, "nn_dropout", &x, 1))
        return NULL;
    if (!(p >= 0.0f && p < 1.0f)) {
        nn_fail(g, EMBER_EINVAL, "nn_dropout: rate %g outside [0, 1)", (double)p);
        return NULL;
    }
    if (!nn_graph_is_training(g) || p == 0.0f)
        return x;
    nn_tensor *t = nn_node_new(g, NN_OP_DROPOUT, x->ndim, x->shape, &x, 1);
    if (!t)
        return NULL;
    t->arg.f[0] = p;
    t->aux = nn_graph_alloc(g, x->n, sizeof(float));
    if (!t->aux)
        return NULL;
    return nn_node_run(g, t);
}

/* The mask comes from the graph's RNG, one draw per element in order (so
 * a seed fixes it whatever the threads); kept elements carry 1/(1-p). */
int nn_dropout_forward(nn_graph *g, nn_tensor *t)
{
    ember_rng *rng = nn_graph_rng(g);
    float p = t->arg.f[0], keep = 1.0f / (1.0f - p);
    uint32_t thresh = (uint32_t)fmin((double)p * 4294967296.0, 4294967295.0);
    float *restrict m = t->aux;
    for (size_t i = 0; i < t->n; i++)
        m[i] = (uint32_t)(ember_rng_next(rng) >> 32) < thresh ? 0.0f : keep;
    const float *restrict x = t->src[0]->data;
    float *restrict y = t->data;
#pragma omp parallel for simd if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        y[i] = x[i] * m[i];
    return EMBER_OK;
}

int nn_dropout_backward(nn_graph *g, nn_tensor *t)
{
    const float *restrict m = t->aux, *restrict gy = t->grad;
    float *restrict gx = t->src[0]->grad;
#pragma omp parallel for simd if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        gx[i] += gy[i] * m[i];
    return EMBER_OK;
}

/* ----------------------------------------------------- embedding bag */

nn_tensor *nn_embedding_bag(nn_graph *g, nn_tensor *table, const uint32_t *idx, size_t n_idx,
                            const uint32_t *offsets, size_t n_bags, nn_bag_mode mode)
{
    if (!nn_inputs_ok(g, "nn_embedding_bag", &table, 1))
        return NULL;
    if (table->ndim != 2) {
        nn_fail(g, EMBER_EINVAL, "nn_embedding_bag: the table must be 2-D [V, D], not %s",
                nn_shape_str(table->ndim, table->shape));
        return NULL;
    }
    if (n_bags == 0 || n_bags > INT32_MAX || !offsets || (n_idx && !idx) ||
        (mode != NN_BAG_SUM && mode != NN_BAG_MEAN) || n_idx > UINT32_MAX) {
        nn_fail(g, EMBER_EINVAL, "nn_embedding_bag: bad arguments (%zu bags, %zu indices)",
                n_bags, n_idx);
        return NULL;
    }
    if (offsets[0] != 0 || offsets[n_bags] != n_idx) {
        nn_fail(g, EMBER_EINVAL,
                "nn_embedding_bag: offsets must start at 0 and end at %zu (got %u .. %u)", n_idx,
                offsets[0], offsets[n_bags]);
        return NULL;
    }
    for (size_t b = 0; b < n_bags; b++) {
        if (offsets[b + 1] < offsets[b]) {
            nn_fail(g, EMBER_EINVAL, "nn_embedding_bag: offsets decrease at bag %zu", b);
            return NULL;
        }
    }
    for (size_t i = 0; i < n_idx; i++) {
        if (idx[i] >= (uint32_t)table->shape[0]) {
            nn_fail(g, EMBER_EINVAL, "nn_embedding_bag: index %u at %zu out of range (%d rows)",
                    idx[i], i, table->shape[0]);
            return NULL;
        }
    }
    int shape[2] = {(int)n_bags, table->shape[1]};
    nn_tensor *t = nn_node_new(g, NN_OP_EMBEDDING_BAG, 2, shape, &table, 1);
    if (!t)
        return NULL;
    t->idx = nn_graph_copy(g, idx, n_idx, sizeof *idx);
    t->idx2 = nn_graph_copy(g, offsets, n_bags + 1, sizeof *offsets);
    if (!t->idx || !t->idx2)
        return NULL;
    t->arg.i[0] = (int)mode;
    return nn_node_run(g, t);
}

int nn_embedding_bag_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *x = t->src[0];
    const uint32_t *idx = t->idx, *off = t->idx2;
    size_t bags = (size_t)t->shape[0], d = (size_t)t->shape[1];
    bool mean = t->arg.i[0] == NN_BAG_MEAN;
#pragma omp parallel for if ((size_t)off[bags] * d > NN_PAR_MIN) schedule(static)
    for (size_t b = 0; b < bags; b++) {
        float *restrict y = t->data + b * d;
        memset(y, 0, d * sizeof(float));
        for (uint32_t i = off[b]; i < off[b + 1]; i++) {
            const float *restrict s = x->data + (size_t)idx[i] * d;
#pragma omp simd
            for (size_t j = 0; j < d; j++)
                y[j] += s[j];
        }
        size_t len = off[b + 1] - off[b];
        if (mean && len > 1) {
            float inv = 1.0f / (float)len;
#pragma omp simd
            for (size_t j = 0; j < d; j++)
                y[j] *= inv;
        }
    }
    return EMBER_OK;
}

/* Each bag's gradient (divided by its length for mean) goes to each of its
 * rows.  Threads split by owner of the row (row % threads), as in gather. */
int nn_embedding_bag_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0];
    const uint32_t *idx = t->idx, *off = t->idx2;
    size_t bags = (size_t)t->shape[0], d = (size_t)t->shape[1];
    bool mean = t->arg.i[0] == NN_BAG_MEAN;
    if (x->param && x->param->sparse)
        for (uint32_t i = 0; i < off[bags]; i++)
            nn_param_touch_row(x->param, idx[i]);
#pragma omp parallel if ((size_t)off[bags] * d > NN_PAR_MIN)
    {
        uint32_t nt = (uint32_t)omp_get_num_threads(), me = (uint32_t)omp_get_thread_num();
        for (size_t b = 0; b < bags; b++) {
            size_t len = off[b + 1] - off[b];
            float scale = mean && len ? 1.0f / (float)len : 1.0f;
            const float *restrict gy = t->grad + b * d;
            for (uint32_t i = off[b]; i < off[b + 1]; i++) {
                if (idx[i] % nt != me)
                    continue;
                float *restrict gx = x->grad + (size_t)idx[i] * d;
#pragma omp simd
                for (size_t j = 0; j < d; j++)
                    gx[j] += scale * gy[j];
            }
        }
    }
    return EMBER_OK;
}
