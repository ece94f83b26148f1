/*
 * ops_seq.c — the sequence ops: fused multi-head scaled dot-product
 * attention with causal and key-padding masks, and a GRU layer over a
 * padded batch with backpropagation through time.
 *
 * Attention (Vaswani et al. 2017): per batch row b and head h,
 * P = softmax(Q K^T / sqrt(Dh)) with masked scores at -inf, O = P V.  The
 * heads are column slices of [B, T, D], so no reshape or transpose is
 * needed around it.  Forward keeps P ([B, H, T, S]); backward, with
 * dP = dO V^T and dS = P * (dP - rowsum(dP * P)):
 *   dQ = dS K / sqrt(Dh),  dK = dS^T Q / sqrt(Dh),  dV = P^T dO.
 * A (b, h) pair writes only its own column slice of dQ, dK and dV, so the
 * pairs run in parallel with no sharing.  A masked key has P = 0 and so
 * gets no gradient; a query that sees no key outputs zeros.
 *
 * GRU (Cho et al. 2014; PyTorch's formulation, gates r, z, n): the input
 * projections of all steps are one matrix product; each step is one
 * product with W_hh and an elementwise update.  Sequence b is valid for
 * t < lengths[b]; padded steps output zeros and leave the state alone.
 * Backward runs the steps in reverse, carrying dL/dh, and ends with one
 * product each for dW_ih and dx.
 */
#include "nn/nn_internal.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* --------------------------------------------------------- attention */

nn_tensor *nn_attention(nn_graph *g, nn_tensor *q, nn_tensor *k, nn_tensor *v, int heads,
                        bool causal, const uint8_t *key_valid)
{
    nn_tensor *src[3] = {q, k, v};
    if (!nn_inputs_ok(g, "nn_attention", src, 3))
        return NULL;
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3) {
        nn_fail(g, EMBER_EINVAL, "nn_attention: q %s, k %s, v %s must be 3-D [B, T, D]",
                nn_shape_str(q->ndim, q->shape), nn_shape_str(k->ndim, k->shape),
                nn_shape_str(v->ndim, v->shape));
        return NULL;
    }
    int B = q->shape[0], T = q->shape[1], D = q->shape[2], S = k->shape[1];
    bool ok = k->shape[0] == B && v->shape[0] == B && k->shape[2] == D && v->shape[2] == D &&
              v->shape[1] == S;
    if (!ok) {
        nn_fail(g, EMBER_EINVAL, "nn_attention: q %s, k %s, v %s do not match",
                nn_shape_str(q->ndim, q->shape), nn_shape_str(k->ndim, k->shape),
                nn_shape_str(v->ndim, v->shape));
        return NULL;
    }
    if (heads < 1 || D % heads != 0) {
        nn_fail(g, EMBER_EINVAL, "nn_attention: %d heads do not divide the width %d", heads, D);
        return NULL;
    }
    if (causal && S != T) {
        nn_fail(g, EMBER_EINVAL, "nn_attention: causal needs as many keys as queries (%d, %d)",
                S, T);
        return NULL;
    }
    nn_tensor *t = nn_node_new(g, NN_OP_ATTENTION, 3, q->shape, src, 3);
    if (!t)
        return NULL;
    t->arg.i[0] = heads;
    t->arg.i[1] = causal;
    size_t np = (size_t)B * (size_t)heads * (size_t)T * (size_t)S;
    t->aux = nn_graph_alloc(g, np, sizeof(float));
    if (!t->aux)
        return NULL;
    if (key_valid) {
        size_t nm = (size_t)B * (size_t)S;
        uint8_t *m = nn_graph_alloc(g, nm, 1);
        if (!m)
            return NULL;
        for (size_t i = 0; i < nm; i++)
            m[i] = key_valid[i] != 0;
        t->idx = m;
    }
    return nn_node_run(g, t);
}

const float *nn_attention_weights(const nn_tensor *attn)
{
    return attn && attn->op == NN_OP_ATTENTION ? attn->aux : NULL;
}

typedef struct {
    size_t B, T, S, D, H, dh;
    float scale;
    bool causal;
    const uint8_t *valid;
} attn_geom;

static void attn_geometry(const nn_tensor *t, attn_geom *a)
{
    a->B = (size_t)t->shape[0];
    a->T = (size_t)t->shape[1];
    a->D = (size_t)t->shape[2];
    a->S = (size_t)t->src[1]->shape[1];
    a->H = (size_t)t->arg.i[0];
    a->dh = a->D / a->H;
    a->scale = 1.0f / sqrtf((float)a->dh);
    a->causal = t->arg.i[1];
    a->valid = t->idx;
}

static inline float dotf(const float *restrict a, const float *restrict b, size_t n)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static inline void axpyf(float a, const float *restrict x, float *restrict y, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

int nn_attention_forward(nn_graph *g, nn_tensor *t)
{
    attn_geom A;
    attn_geometry(t, &A);
    const float *Q = t->src[0]->data, *K = t->src[1]->data, *V = t->src[2]->data;
    size_t pairs = A.B * A.H;
#pragma omp parallel for if (pairs > 1 && t->n * A.S > NN_PAR_MIN) schedule(static)
    for (size_t bh = 0; bh < pairs; bh++) {
        size_t b = bh / A.H, h = bh % A.H;
        for (size_t i = 0; i < A.T; i++) {
            const float *qi = Q + (b * A.T + i) * A.D + h * A.dh;
            float *P = t->aux + (bh * A.T + i) * A.S;
            float *o = t->data + (b * A.T + i) * A.D + h * A.dh;
            size_t limit = A.causal ? i + 1 : A.S;
            float mx = -INFINITY;
            for (size_t j = 0; j < A.S; j++) {
                bool seen = j < limit && (!A.valid || A.valid[b * A.S + j]);
                if (seen) {
                    P[j] = A.scale * dotf(qi, K + (b * A.S + j) * A.D + h * A.dh, A.dh);
                    mx = P[j] > mx ? P[j] : mx;
                } else {
                    P[j] = -INFINITY;
                }
            }
            memset(o, 0, A.dh * sizeof(float));
            if (mx == -INFINITY) { /* sees no key */
                memset(P, 0, A.S * sizeof(float));
                continue;
            }
            float sum = 0.0f;
            for (size_t j = 0; j < A.S; j++) {
                P[j] = expf(P[j] - mx);
                sum += P[j];
            }
            float inv = 1.0f / sum;
            for (size_t j = 0; j < A.S; j++) {
                P[j] *= inv;
                if (P[j] != 0.0f)
                    axpyf(P[j], V + (b * A.S + j) * A.D + h * A.dh, o, A.dh);
            }
        }
    }
    return EMBER_OK;
}

int nn_attention_backward(nn_graph *g, nn_tensor *t)
{
    attn_geom A;
    attn_geometry(t, &A);
    nn_tensor *q = t->src[0], *k = t->src[1], *v = t->src[2];
    size_t pairs = A.B * A.H;
    bool par = pairs > 1 && t->n * A.S > NN_PAR_MIN;
    int nt = par ? nn_max_threads() : 1;
    float *scratch = nn_graph_alloc(g, (size_t)nt * A.S, sizeof(float));
    if (!scratch)
        return nn_graph_status(g);
#pragma omp parallel for if (par) schedule(static)
    for (size_t bh = 0; bh < pairs; bh++) {
        size_t b = bh / A.H, h = bh % A.H;
        float *dP = scratch + (size_t)omp_get_thread_num() * A.S;
        for (size_t i = 0; i < A.T; i++) {
            const float *P = t->aux + (bh * A.T + i) * A.S;
            const float *go = t->grad + (b * A.T + i) * A.D + h * A.dh;
            const float *qi = q->data + (b * A.T + i) * A.D + h * A.dh;
            float dot = 0.0f;
            for (size_t j = 0; j < A.S; j++) {
                dP[j] = P[j] != 0.0f ? dotf(go, v->data + (b * A.S + j) * A.D + h * A.dh, A.dh)
                                     : 0.0f;
                dot += P[j] * dP[j];
            }
            for (size_t j = 0; j < A.S; j++) {
                if (P[j] == 0.0f)
                    continue;
                size_t row = (b * A.S + j) * A.D + h * A.dh;
                float ds = P[j] * (dP[j] - dot) * A.scale;
                if (q->requires_grad)
                    axpyf(ds, k->data + row, q->grad + (b * A.T + i) * A.D + h * A.dh, A.dh);
                if (k->requires_grad)
                    axpyf(ds, qi, k->grad + row, A.dh);
                if (v->requires_grad)
                    axpyf(P[j], go, v->grad + row, A.dh);
            }
        }
    }
    return EMBER_OK;
}

/* --------------------------------------------------------------- GRU */

/* aux layout: gates [B*T, 3H] (after activation: r, z, n), then the
 * recurrent part of n before the reset gate, hn = h W_hn + b_hn [B*T, H]. */
nn_tensor *nn_gru(nn_graph *g, nn_tensor *x, const int32_t *lengths, nn_tensor *w_ih,
                  nn_tensor *w_hh, nn_tensor *b_ih, nn_tensor *b_hh)
{
    nn_tensor *src[5] = {x, w_ih, w_hh, b_ih, b_hh};
    if (!nn_inputs_ok(g, "nn_gru", src, 5))
        return NULL;
    if (x->ndim != 3 || w_ih->ndim != 2 || w_hh->ndim != 2) {
        nn_fail(g, EMBER_EINVAL, "nn_gru: x %s must be [B, T, D], w_ih %s [D, 3H], w_hh %s [H, 3H]",
                nn_shape_str(x->ndim, x->shape), nn_shape_str(w_ih->ndim, w_ih->shape),
                nn_shape_str(w_hh->ndim, w_hh->shape));
        return NULL;
    }
    int B = x->shape[0], T = x->shape[1], D = x->shape[2], H = w_hh->shape[0];
    long h3 = 3L * H;
    bool ok = w_ih->shape[0] == D && w_ih->shape[1] == h3 && w_hh->shape[1] == h3 &&
              b_ih->n == (size_t)h3 && b_hh->n == (size_t)h3;
    if (!ok) {
        nn_fail(g, EMBER_EINVAL,
                "nn_gru: x %s, w_ih %s, w_hh %s, b_ih %s, b_hh %s: want [B,T,D], [D,3H], [H,3H], "
                "[3H], [3H]",
                nn_shape_str(x->ndim, x->shape), nn_shape_str(w_ih->ndim, w_ih->shape),
                nn_shape_str(w_hh->ndim, w_hh->shape), nn_shape_str(b_ih->ndim, b_ih->shape),
                nn_shape_str(b_hh->ndim, b_hh->shape));
        return NULL;
    }
    if (!lengths) {
        nn_fail(g, EMBER_EINVAL, "nn_gru: NULL lengths");
        return NULL;
    }
    if ((size_t)B * (size_t)T > INT32_MAX) {
        nn_fail(g, EMBER_ETOOBIG, "nn_gru: x %s is too large for one BLAS call",
                nn_shape_str(x->ndim, x->shape));
        return NULL;
    }
    for (int b = 0; b < B; b++) {
        if (lengths[b] < 0 || lengths[b] > T) {
            nn_fail(g, EMBER_EINVAL, "nn_gru: length %d of sequence %d outside 0..%d", lengths[b],
                    b, T);
            return NULL;
        }
    }
    int shape[3] = {B, T, H};
    nn_tensor *t = nn_node_new(g, NN_OP_GRU, 3, shape, src, 5);
    if (!t)
        return NULL;
    t->idx = nn_graph_copy(g, lengths, (size_t)B, sizeof *lengths);
    t->aux = nn_graph_alloc(g, (size_t)B * (size_t)T * 4 * (size_t)H, sizeof(float));
    if (!t->idx || !t->aux)
        return NULL;
    return nn_node_run(g, t);
}

static inline float sigmoidf(float x)
{
    return x >= 0.0f ? 1.0f / (1.0f + expf(-x)) : expf(x) / (1.0f + expf(x));
}

int nn_gru_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *x = t->src[0], *w_ih = t->src[1], *w_hh = t->src[2];
    const float *bi = t->src[3]->data, *bh = t->src[4]->data;
    const int32_t *len = t->idx;
    size_t B = (size_t)t->shape[0], T = (size_t)t->shape[1], H = (size_t)t->shape[2];
    size_t D = (size_t)x->shape[2], H3 = 3 * H;
    float *G = t->aux, *HN = t->aux + B * T * H3, *out = t->data;
    float *hprev = nn_graph_alloc(g, B * H, sizeof(float));
    float *hp = nn_graph_alloc(g, B * H3, sizeof(float));
    if (!hprev || !hp)
        return nn_graph_status(g);
    /* input projections of every step at once, plus b_ih */
    nn_gemm(false, false, (int)(B * T), (int)H3, (int)D, 1.0f, x->data, (int)D, w_ih->data, (int)H3,
            0.0f, G, (int)H3);
    for (size_t r = 0; r < B * T; r++)
        for (size_t j = 0; j < H3; j++)
            G[r * H3 + j] += bi[j];
    memset(out, 0, t->n * sizeof(float));
    size_t maxlen = 0;
    for (size_t b = 0; b < B; b++)
        maxlen = (size_t)len[b] > maxlen ? (size_t)len[b] : maxlen;
    for (size_t s = 0; s < maxlen; s++) {
        for (size_t b = 0; b < B; b++) {
            if (s > 0 && s < (size_t)len[b])
                memcpy(hprev + b * H, out + (b * T + s - 1) * H, H * sizeof(float));
            else
                memset(hprev + b * H, 0, H * sizeof(float));
        }
        nn_gemm(false, false, (int)B, (int)H3, (int)H, 1.0f, hprev, (int)H, w_hh->data, (int)H3,
                0.0f, hp, (int)H3);
#pragma omp parallel for if (B * H > NN_PAR_MIN / 4) schedule(static)
        for (size_t b = 0; b < B; b++) {
            if (s >= (size_t)len[b])
                continue;
            float *gt = G + (b * T + s) * H3, *hn = HN + (b * T + s) * H;
            const float *hr = hp + b * H3, *h0 = hprev + b * H;
            float *h = out + (b * T + s) * H;
            for (size_t j = 0; j < H; j++) {
                float r = sigmoidf(gt[j] + hr[j] + bh[j]);
                float z = sigmoidf(gt[H + j] + hr[H + j] + bh[H + j]);
                float hnj = hr[2 * H + j] + bh[2 * H + j];
                float n = tanhf(gt[2 * H + j] + r * hnj);
                gt[j] = r;
                gt[H + j] = z;
                gt[2 * H + j] = n;
                hn[j] = hnj;
                h[j] = (1.0f - z) * n + z * h0[j];
            }
        }
    }
    return EMBER_OK;
}

int nn_gru_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0], *w_ih = t->src[1], *w_hh = t->src[2];
    nn_tensor *b_ih = t->src[3], *b_hh = t->src[4];
    const int32_t *len = t->idx;
    size_t B = (size_t)t->shape[0], T = (size_t)t->shape[1], H = (size_t)t->shape[2];
    size_t D = (size_t)x->shape[2], H3 = 3 * H;
    const float *G = t->aux, *HN = t->aux + B * T * H3, *out = t->data;
    float *dxp = nn_graph_alloc(g, B * T * H3, sizeof(float));
    float *dhp = nn_graph_alloc(g, B * H3, sizeof(float));
    float *carry = nn_graph_alloc(g, B * H, sizeof(float));
    float *hprev = nn_graph_alloc(g, B * H, sizeof(float));
    if (!dxp || !dhp || !carry || !hprev)
        return nn_graph_status(g);
    memset(dxp, 0, B * T * H3 * sizeof(float));
    memset(carry, 0, B * H * sizeof(float));
    size_t maxlen = 0;
    for (size_t b = 0; b < B; b++)
        maxlen = (size_t)len[b] > maxlen ? (size_t)len[b] : maxlen;
    for (size_t s = maxlen; s-- > 0;) {
#pragma omp parallel for if (B * H > NN_PAR_MIN / 4) schedule(static)
        for (size_t b = 0; b < B; b++) {
            float *dh_c = carry + b * H, *dg = dhp + b * H3, *h0 = hprev + b * H;
            if (s >= (size_t)len[b]) {
                memset(dh_c, 0, H * sizeof(float));
                memset(dg, 0, H3 * sizeof(float));
                memset(h0, 0, H * sizeof(float));
                continue;
            }
            const float *gt = G + (b * T + s) * H3, *hn = HN + (b * T + s) * H;
            const float *go = t->grad + (b * T + s) * H;
            float *dx = dxp + (b * T + s) * H3;
            if (s > 0)
                memcpy(h0, out + (b * T + s - 1) * H, H * sizeof(float));
            else
                memset(h0, 0, H * sizeof(float));
            for (size_t j = 0; j < H; j++) {
                float r = gt[j], z = gt[H + j], n = gt[2 * H + j];
                float dh = go[j] + dh_c[j];
                float dn = dh * (1.0f - z), dz = dh * (h0[j] - n);
                float dan = dn * (1.0f - n * n);
                float dar = dan * hn[j] * r * (1.0f - r);
                float daz = dz * z * (1.0f - z);
                dx[j] = dar;
                dx[H + j] = daz;
                dx[2 * H + j] = dan;
                dg[j] = dar;
                dg[H + j] = daz;
                dg[2 * H + j] = dan * r;
                dh_c[j] = dh * z;
            }
        }
        if (s > 0) /* dL/dh_{s-1} += dHp W_hh^T (at s = 0 it is h_0, a constant) */
            nn_gemm(false, true, (int)B, (int)H, (int)H3, 1.0f, dhp, (int)H3, w_hh->data, (int)H3,
                    1.0f, carry, (int)H);
        if (w_hh->requires_grad && s > 0)
            nn_gemm(true, false, (int)H, (int)H3, (int)B, 1.0f, hprev, (int)H, dhp, (int)H3, 1.0f,
                    w_hh->grad, (int)H3);
        if (b_hh->requires_grad)
            for (size_t b = 0; b < B; b++)
                for (size_t j = 0; j < H3; j++)
                    b_hh->grad[j] += dhp[b * H3 + j];
    }
    int rows = (int)(B * T);
    if (w_ih->requires_grad)
        nn_gemm(true, false, (int)D, (int)H3, rows, 1.0f, x->data, (int)D, dxp, (int)H3, 1.0f,
                w_ih->grad, (int)H3);
    if (b_ih->requires_grad)
        for (size_t r = 0; r < B * T; r++)
            for (size_t j = 0; j < H3; j++)
                b_ih->grad[j] += dxp[r * H3 + j];
    if (x->requires_grad)
        nn_gemm(false, true, rows, (int)D, (int)H3, 1.0f, dxp, (int)H3, w_ih->data, (int)H3, 1.0f,
                x->grad, (int)D);
    return EMBER_OK;
}
