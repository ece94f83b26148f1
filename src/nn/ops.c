/*
 * ops.c — the general-purpose ops: matrix products, elementwise arithmetic
 * with broadcasting, activations, gather/embedding lookups, shape ops
 * (concat, slice, reshape, transpose) and reductions.
 *
 * Each op is a builder (checks shapes, makes the node, runs it), a forward
 * and a backward, side by side.  Backward adds into the sources' gradients
 * (a tensor used twice gets both contributions).
 *
 * Matrix products go to OpenBLAS (cblas_sgemm, split over the threads by
 * nn_gemm in gemm.c), with the batch folded into one call when the second
 * operand is shared.  Elementwise loops run in
 * parallel (static schedule) above NN_PAR_MIN elements; contiguous inner
 * loops carry `omp simd` so they vectorize at -O2.  A broadcast operand's
 * gradient is reduced on one thread (its rows collide).
 */
#include "nn/nn_internal.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* ------------------------------------------------------------ matmul */

typedef struct {
    int m, n, k;           /* C [m, n] = op(A) [m, k] op(B) [k, n] */
    size_t batch;          /* number of products */
    size_t a_step, b_step; /* elements between batches (0 = shared) */
    int lda, ldb;
} mm_geom;

static size_t batch_of(const nn_tensor *x)
{
    size_t b = 1;
    for (int i = 0; i < x->ndim - 2; i++)
        b *= (size_t)x->shape[i];
    return b;
}

static void mm_geometry(const nn_tensor *t, mm_geom *m)
{
    const nn_tensor *a = t->src[0], *b = t->src[1];
    bool ta = t->arg.i[0], tb = t->arg.i[1];
    int ar = a->shape[a->ndim - 2], ac = a->shape[a->ndim - 1];
    int br = b->shape[b->ndim - 2], bc = b->shape[b->ndim - 1];
    m->m = ta ? ac : ar;
    m->k = ta ? ar : ac;
    m->n = tb ? br : bc;
    m->lda = ac;
    m->ldb = bc;
    size_t ba = batch_of(a), bb = batch_of(b);
    m->batch = ba > bb ? ba : bb;
    m->a_step = ba > 1 ? (size_t)ar * (size_t)ac : 0;
    m->b_step = bb > 1 ? (size_t)br * (size_t)bc : 0;
}

nn_tensor *nn_matmul(nn_graph *g, nn_tensor *a, nn_tensor *b, bool trans_a, bool trans_b)
{
    nn_tensor *src[2] = {a, b};
    if (!nn_inputs_ok(g, "nn_matmul", src, 2))
        return NULL;
    if (a->ndim < 2 || b->ndim < 2) {
        nn_fail(g, EMBER_EINVAL, "nn_matmul: operands need 2 or more dims (a %s, b %s)",
                nn_shape_str(a->ndim, a->shape), nn_shape_str(b->ndim, b->shape));
        return NULL;
    }
    int ar = a->shape[a->ndim - 2], ac = a->shape[a->ndim - 1];
    int br = b->shape[b->ndim - 2], bc = b->shape[b->ndim - 1];
    int m = trans_a ? ac : ar, ka = trans_a ? ar : ac;
    int kb = trans_b ? bc : br, n = trans_b ? br : bc;
    if (ka != kb) {
        nn_fail(g, EMBER_EINVAL, "nn_matmul: inner dims differ (a %s%s, b %s%s)",
                nn_shape_str(a->ndim, a->shape), trans_a ? "^T" : "",
                nn_shape_str(b->ndim, b->shape), trans_b ? "^T" : "");
        return NULL;
    }
    if (a->ndim > 2 && b->ndim > 2) {
        bool same = a->ndim == b->ndim;
        for (int i = 0; same && i < a->ndim - 2; i++)
            same = a->shape[i] == b->shape[i];
        if (!same) {
            nn_fail(g, EMBER_EINVAL, "nn_matmul: batch dims differ (a %s, b %s)",
                    nn_shape_str(a->ndim, a->shape), nn_shape_str(b->ndim, b->shape));
            return NULL;
        }
    }
    size_t folded = batch_of(a) * (size_t)(trans_a ? ac : ar);
    if (folded > INT32_MAX) { /* BLAS takes int sizes; a shared b folds the batch into M */
        nn_fail(g, EMBER_ETOOBIG, "nn_matmul: a %s is too large for one BLAS call",
                nn_shape_str(a->ndim, a->shape));
        return NULL;
    }
    const nn_tensor *lead = a->ndim >= b->ndim ? a : b;
    int shape[NN_MAX_DIMS];
    int nd = lead->ndim;
    for (int i = 0; i < nd - 2; i++)
        shape[i] = lead->shape[i];
    shape[nd - 2] = m;
    shape[nd - 1] = n;
    nn_tensor *t = nn_node_new(g, NN_OP_MATMUL, nd, shape, src, 2);
    if (!t)
        return NULL;
    t->arg.i[0] = trans_a;
    t->arg.i[1] = trans_b;
    return nn_node_run(g, t);
}

int nn_matmul_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *a = t->src[0], *b = t->src[1];
    bool ta = t->arg.i[0], tb = t->arg.i[1];
    mm_geom G;
    mm_geometry(t, &G);
    size_t c_step = (size_t)G.m * (size_t)G.n;
    if (G.batch > 1 && G.b_step == 0 && !ta) {
        /* b shared: the batch is one tall product */
        nn_gemm(false, tb, (int)((size_t)G.m * G.batch), G.n, G.k, 1.0f, a->data, G.lda, b->data,
                G.ldb, 0.0f, t->data, G.n);
        return EMBER_OK;
    }
    for (size_t i = 0; i < G.batch; i++)
        nn_gemm(ta, tb, G.m, G.n, G.k, 1.0f, a->data + i * G.a_step, G.lda, b->data + i * G.b_step,
                G.ldb, 0.0f, t->data + i * c_step, G.n);
    return EMBER_OK;
}

int nn_matmul_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *a = t->src[0], *b = t->src[1];
    bool ta = t->arg.i[0], tb = t->arg.i[1];
    mm_geom G;
    mm_geometry(t, &G);
    size_t c_step = (size_t)G.m * (size_t)G.n;
    const float *dc = t->grad;
    bool fold = G.batch > 1 && G.b_step == 0 && !ta;
    size_t nb = fold ? 1 : G.batch;
    int m = fold ? (int)((size_t)G.m * G.batch) : G.m;
    if (a->requires_grad) {
        for (size_t i = 0; i < nb; i++) {
            const float *B = b->data + i * G.b_step, *C = dc + i * c_step;
            float *dA = a->grad + i * G.a_step;
            if (!ta) /* dA [m,k] += dC [m,n] op(B)^T */
                nn_gemm(false, !tb, m, G.k, G.n, 1.0f, C, G.n, B, G.ldb, 1.0f, dA, G.lda);
            else /* dA [k,m] += op(B) dC^T */
                nn_gemm(tb, true, G.k, m, G.n, 1.0f, B, G.ldb, C, G.n, 1.0f, dA, G.lda);
        }
    }
    if (b->requires_grad) {
        for (size_t i = 0; i < nb; i++) {
            const float *A = a->data + i * G.a_step, *C = dc + i * c_step;
            float *dB = b->grad + i * G.b_step;
            if (!tb) /* dB [k,n] += op(A)^T dC */
                nn_gemm(!ta, false, G.k, G.n, m, 1.0f, A, G.lda, C, G.n, 1.0f, dB, G.ldb);
            else /* dB [n,k] += dC^T op(A) */
                nn_gemm(true, ta, G.n, G.k, m, 1.0f, C, G.n, A, G.lda, 1.0f, dB, G.ldb);
        }
    }
    return EMBER_OK;
}

/* ------------------------------------------------------ broadcasting */

/* The iteration space of a broadcast op: the output shape padded on the
 * left to 4 dims, and each operand's strides in it (0 where it repeats). */
typedef struct {
    size_t d[4];
    size_t s[2][4];
} bcast;

static void pad4(const nn_tensor *x, size_t d[4])
{
    int off = 4 - x->ndim;
    for (int i = 0; i < 4; i++)
        d[i] = i < off ? 1 : (size_t)x->shape[i - off];
}

static void strides_into(const size_t out[4], const size_t d[4], size_t s[4])
{
    size_t st = 1;
    for (int i = 3; i >= 0; i--) {
        s[i] = (d[i] == 1 && out[i] != 1) ? 0 : st;
        st *= d[i];
    }
}

static void bcast_make(const nn_tensor *t, bcast *bc)
{
    pad4(t, bc->d);
    for (int k = 0; k < 2; k++) {
        size_t d[4];
        pad4(t->src[k], d);
        strides_into(bc->d, d, bc->s[k]);
    }
}

/* Output shape of broadcasting a with b; status. */
static int bcast_shape(nn_graph *g, const char *who, const nn_tensor *a, const nn_tensor *b,
                       int *ndim, int shape[NN_MAX_DIMS])
{
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < nd; i++) {
        int ia = a->ndim - nd + i, ib = b->ndim - nd + i;
        int da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return nn_fail(g, EMBER_EINVAL, "%s: shapes %s and %s do not broadcast", who,
                           nn_shape_str(a->ndim, a->shape), nn_shape_str(b->ndim, b->shape));
        shape[i] = da > db ? da : db;
    }
    *ndim = nd;
    return EMBER_OK;
}

static bool same_shape(const nn_tensor *a, const nn_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

static nn_tensor *binary(nn_graph *g, nn_op op, const char *who, nn_tensor *a, nn_tensor *b)
{
    nn_tensor *src[2] = {a, b};
    if (!nn_inputs_ok(g, who, src, 2))
        return NULL;
    int nd = 0, shape[NN_MAX_DIMS];
    if (bcast_shape(g, who, a, b, &nd, shape))
        return NULL;
    nn_tensor *t = nn_node_new(g, op, nd, shape, src, 2);
    return t ? nn_node_run(g, t) : NULL;
}

nn_tensor *nn_add(nn_graph *g, nn_tensor *a, nn_tensor *b)
{
    return binary(g, NN_OP_ADD, "nn_add", a, b);
}

nn_tensor *nn_sub(nn_graph *g, nn_tensor *a, nn_tensor *b)
{
    return binary(g, NN_OP_SUB, "nn_sub", a, b);
}

nn_tensor *nn_mul(nn_graph *g, nn_tensor *a, nn_tensor *b)
{
    return binary(g, NN_OP_MUL, "nn_mul", a, b);
}

nn_tensor *nn_div(nn_graph *g, nn_tensor *a, nn_tensor *b)
{
    return binary(g, NN_OP_DIV, "nn_div", a, b);
}

/* o = a op b over n elements, operands with strides 0 or 1.  The op and
 * the strides are constants after inlining, so each call site is one
 * tight loop. */
static inline __attribute__((always_inline)) void
bin_loop(int op, float *restrict o, const float *restrict a, size_t sa, const float *restrict b,
         size_t sb, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = a[i * sa], y = b[i * sb];
        o[i] = op == NN_OP_ADD ? x + y : op == NN_OP_SUB ? x - y : op == NN_OP_MUL ? x * y : x / y;
    }
}

static inline __attribute__((always_inline)) void
bin_strided(int op, float *restrict o, const float *a, size_t sa, const float *b, size_t sb,
            size_t n)
{
    if (sa == 1 && sb == 1)
        bin_loop(op, o, a, 1, b, 1, n);
    else if (sa == 1)
        bin_loop(op, o, a, 1, b, 0, n);
    else if (sb == 1)
        bin_loop(op, o, a, 0, b, 1, n);
    else
        bin_loop(op, o, a, 0, b, 0, n);
}

static void bin_row(nn_op op, float *o, const float *a, size_t sa, const float *b, size_t sb,
                    size_t n)
{
    switch (op) {
    case NN_OP_ADD:
        bin_strided(NN_OP_ADD, o, a, sa, b, sb, n);
        break;
    case NN_OP_SUB:
        bin_strided(NN_OP_SUB, o, a, sa, b, sb, n);
        break;
    case NN_OP_MUL:
        bin_strided(NN_OP_MUL, o, a, sa, b, sb, n);
        break;
    default:
        bin_strided(NN_OP_DIV, o, a, sa, b, sb, n);
        break;
    }
}

int nn_binary_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *a = t->src[0], *b = t->src[1];
    if (same_shape(a, b)) {
        size_t n = t->n, chunk = 8192, nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for if (n > NN_PAR_MIN) schedule(static)
        for (size_t c = 0; c < nchunks; c++) {
            size_t lo = c * chunk, len = EMBER_MIN(chunk, n - lo);
            bin_row(t->op, t->data + lo, a->data + lo, 1, b->data + lo, 1, len);
        }
        return EMBER_OK;
    }
    bcast bc;
    bcast_make(t, &bc);
    size_t rows = bc.d[0] * bc.d[1] * bc.d[2], len = bc.d[3];
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        size_t i2 = r % bc.d[2], i1 = (r / bc.d[2]) % bc.d[1], i0 = r / (bc.d[2] * bc.d[1]);
        size_t oa = i0 * bc.s[0][0] + i1 * bc.s[0][1] + i2 * bc.s[0][2];
        size_t ob = i0 * bc.s[1][0] + i1 * bc.s[1][1] + i2 * bc.s[1][2];
        bin_row(t->op, t->data + r * len, a->data + oa, bc.s[0][3], b->data + ob, bc.s[1][3], len);
    }
    return EMBER_OK;
}

/* The gradient of one operand x of a binary op, per element of the output:
 * gx += go * f, f by kind. */
enum { G_ONE, G_NEG, G_MUL, G_DIV, G_DIVB };

static inline __attribute__((always_inline)) float grad_term(int kind, float go, float y, float o)
{
    switch (kind) {
    case G_ONE:
        return go;
    case G_NEG:
        return -go;
    case G_MUL:
        return go * y;
    case G_DIV:
        return go / y;
    default:
        return -go * o / y;
    }
}

/* Contiguous case: gx, y (the other operand) and the output all have
 * the output's layout. */
static inline __attribute__((always_inline)) void
grad_loop(int kind, float *restrict gx, const float *restrict go, const float *restrict y,
          const float *restrict o, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        gx[i] += grad_term(kind, go[i], y ? y[i] : 0.0f, o[i]);
}

static void grad_flat(int kind, float *gx, const float *go, const float *y, const float *o,
                      size_t n)
{
    switch (kind) {
    case G_ONE:
        grad_loop(G_ONE, gx, go, NULL, o, n);
        break;
    case G_NEG:
        grad_loop(G_NEG, gx, go, NULL, o, n);
        break;
    case G_MUL:
        grad_loop(G_MUL, gx, go, y, o, n);
        break;
    case G_DIV:
        grad_loop(G_DIV, gx, go, y, o, n);
        break;
    default:
        grad_loop(G_DIVB, gx, go, y, o, n);
        break;
    }
}

/* General case: strides 0 or 1 in the row; no simd (sx may be 0). */
static void grad_row(int kind, float *gx, size_t sx, const float *go, const float *y, size_t sy,
                     const float *o, size_t n)
{
    for (size_t i = 0; i < n; i++)
        gx[i * sx] += grad_term(kind, go[i], y ? y[i * sy] : 0.0f, o[i]);
}

static void binary_grad(const nn_tensor *t, const bcast *bc, int which, int kind)
{
    nn_tensor *x = t->src[which];
    const nn_tensor *other = t->src[1 - which];
    const float *y = (kind == G_MUL || kind == G_DIV || kind == G_DIVB) ? other->data : NULL;
    if (kind == G_DIV || kind == G_DIVB)
        y = t->src[1]->data; /* both div terms divide by b */
    int yk = (kind == G_DIV || kind == G_DIVB) ? 1 : 1 - which;
    if (same_shape(x, t) && (!y || same_shape(t->src[yk], t))) {
        size_t n = t->n, chunk = 8192, nchunks = (n + chunk - 1) / chunk;
#pragma omp parallel for if (n > NN_PAR_MIN) schedule(static)
        for (size_t c = 0; c < nchunks; c++) {
            size_t lo = c * chunk, len = EMBER_MIN(chunk, n - lo);
            grad_flat(kind, x->grad + lo, t->grad + lo, y ? y + lo : NULL, t->data + lo, len);
        }
        return;
    }
    size_t rows = bc->d[0] * bc->d[1] * bc->d[2], len = bc->d[3];
    const size_t *sx = bc->s[which], *sy = bc->s[yk];
    /* rows of x are distinct when x repeats in no outer dim */
    bool distinct = true;
    for (int k = 0; k < 3; k++)
        if (sx[k] == 0 && bc->d[k] > 1)
            distinct = false;
#pragma omp parallel for if (distinct && t->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        size_t i2 = r % bc->d[2], i1 = (r / bc->d[2]) % bc->d[1], i0 = r / (bc->d[2] * bc->d[1]);
        size_t ox = i0 * sx[0] + i1 * sx[1] + i2 * sx[2];
        size_t oy = i0 * sy[0] + i1 * sy[1] + i2 * sy[2];
        grad_row(kind, x->grad + ox, sx[3], t->grad + r * len, y ? y + oy : NULL, sy[3],
                 t->data + r * len, len);
    }
}

int nn_binary_backward(nn_graph *g, nn_tensor *t)
{
    bcast bc;
    bcast_make(t, &bc);
    static const int kinds[4][2] = {
        {G_ONE, G_ONE}, /* add */
        {G_ONE, G_NEG}, /* sub */
        {G_MUL, G_MUL}, /* mul: ga += go b, gb += go a */
        {G_DIV, G_DIVB} /* div: ga += go / b, gb -= go (a/b) / b */
    };
    int k = (int)t->op - NN_OP_ADD;
    for (int w = 0; w < 2; w++)
        if (t->src[w]->requires_grad)
            binary_grad(t, &bc, w, kinds[k][w]);
    return EMBER_OK;
}

/* ------------------------------------------------- unary elementwise */

static nn_tensor *unary(nn_graph *g, nn_op op, const char *who, nn_tensor *x)
{
    if (!nn_inputs_ok(g, who, &x, 1))
        return NULL;
    nn_tensor *t = nn_node_new(g, op, x->ndim, x->shape, &x, 1);
    return t ? nn_node_run(g, t) : NULL;
}

nn_tensor *nn_scale(nn_graph *g, nn_tensor *x, float alpha)
{
    if (!nn_inputs_ok(g, "nn_scale", &x, 1))
        return NULL;
    nn_tensor *t = nn_node_new(g, NN_OP_SCALE, x->ndim, x->shape, &x, 1);
    if (!t)
        return NULL;
    t->arg.f[0] = alpha;
    return nn_node_run(g, t);
}

int nn_scale_forward(nn_graph *g, nn_tensor *t)
{
    const float *restrict x = t->src[0]->data;
    float *restrict y = t->data;
    float a = t->arg.f[0];
#pragma omp parallel for simd if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        y[i] = a * x[i];
    return EMBER_OK;
}

int nn_scale_backward(nn_graph *g, nn_tensor *t)
{
    float *restrict gx = t->src[0]->grad;
    const float *restrict gy = t->grad;
    float a = t->arg.f[0];
#pragma omp parallel for simd if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        gx[i] += a * gy[i];
    return EMBER_OK;
}

nn_tensor *nn_relu(nn_graph *g, nn_tensor *x)
{
    return unary(g, NN_OP_RELU, "nn_relu", x);
}

int nn_relu_forward(nn_graph *g, nn_tensor *t)
{
    const float *restrict x = t->src[0]->data;
    float *restrict y = t->data;
#pragma omp parallel for simd if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    return EMBER_OK;
}

int nn_relu_backward(nn_graph *g, nn_tensor *t)
{
    const float *restrict x = t->src[0]->data, *restrict gy = t->grad;
    float *restrict gx = t->src[0]->grad;
#pragma omp parallel for simd if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        gx[i] += x[i] > 0.0f ? gy[i] : 0.0f;
    return EMBER_OK;
}

/* Forward keeps Phi(x) for backward (erf is the costly part). */
nn_tensor *nn_gelu(nn_graph *g, nn_tensor *x)
{
    if (!nn_inputs_ok(g, "nn_gelu", &x, 1))
        return NULL;
    nn_tensor *t = nn_node_new(g, NN_OP_GELU, x->ndim, x->shape, &x, 1);
    if (!t)
        return NULL;
    if (x->requires_grad) {
        t->aux = nn_graph_alloc(g, x->n, sizeof(float));
        if (!t->aux)
            return NULL;
    }
    return nn_node_run(g, t);
}

#define NN_SQRT1_2 0.70710678118654752f
#define NN_INV_SQRT_2PI 0.39894228040143268f

int nn_gelu_forward(nn_graph *g, nn_tensor *t)
{
    const float *restrict x = t->src[0]->data;
    float *restrict y = t->data, *restrict cdf = t->aux;
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++) {
        float c = 0.5f * (1.0f + erff(x[i] * NN_SQRT1_2));
        y[i] = x[i] * c;
        if (cdf)
            cdf[i] = c;
    }
    return EMBER_OK;
}

/* d/dx x Phi(x) = Phi(x) + x phi(x). */
int nn_gelu_backward(nn_graph *g, nn_tensor *t)
{
    const float *restrict x = t->src[0]->data, *restrict gy = t->grad, *restrict cdf = t->aux;
    float *restrict gx = t->src[0]->grad;
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++) {
        float v = x[i];
        float pdf = NN_INV_SQRT_2PI * expf(-0.5f * v * v);
        gx[i] += gy[i] * (cdf[i] + v * pdf);
    }
    return EMBER_OK;
}

nn_tensor *nn_sigmoid(nn_graph *g, nn_tensor *x)
{
    return unary(g, NN_OP_SIGMOID, "nn_sigmoid", x);
}

int nn_sigmoid_forward(nn_graph *g, nn_tensor *t)
{
    const float *restrict x = t->src[0]->data;
    float *restrict y = t->data;
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++) {
        float v = x[i];
        if (v >= 0.0f) {
            y[i] = 1.0f / (1.0f + expf(-v));
        } else {
            float e = expf(v);
            y[i] = e / (1.0f + e);
        }
    }
    return EMBER_OK;
}

int nn_sigmoid_backward(nn_graph *g, nn_tensor *t)
{
    const float *restrict y = t->data, *restrict gy = t->grad;
    float *restrict gx = t->src[0]->grad;
#pragma omp parallel for simd if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        gx[i] += gy[i] * y[i] * (1.0f - y[i]);
    return EMBER_OK;
}

nn_tensor *nn_tanh(nn_graph *g, nn_tensor *x)
{
    return unary(g, NN_OP_TANH, "nn_tanh", x);
}

int nn_tanh_forward(nn_graph *g, nn_tensor *t)
{
    const float *restrict x = t->src[0]->data;
    float *restrict y = t->data;
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        y[i] = tanhf(x[i]);
    return EMBER_OK;
}

int nn_tanh_backward(nn_graph *g, nn_tensor *t)
{
    const float *restrict y = t->data, *restrict gy = t->grad;
    float *restrict gx = t->src[0]->grad;
#pragma omp parallel for simd if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        gx[i] += gy[i] * (1.0f - y[i] * y[i]);
    return EMBER_OK;
}

nn_tensor *nn_exp(nn_graph *g, nn_tensor *x)
{
    return unary(g, NN_OP_EXP, "nn_exp", x);
}

int nn_exp_forward(nn_graph *g, nn_tensor *t)
{
    const float *restrict x = t->src[0]->data;
    float *restrict y = t->data;
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        y[i] = expf(x[i]);
    return EMBER_OK;
}

int nn_exp_backward(nn_graph *g, nn_tensor *t)
{
    const float *restrict y = t->data, *restrict gy = t->grad;
    float *restrict gx = t->src[0]->grad;
#pragma omp parallel for simd if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        gx[i] += gy[i] * y[i];
    return EMBER_OK;
}

/* ------------------------------------------------ gather / embedding */

static nn_tensor *gather(nn_graph *g, nn_op op, const char *who, nn_tensor *x,
                         const uint32_t *idx, size_t n)
{
    if (!nn_inputs_ok(g, who, &x, 1))
        return NULL;
    if (op == NN_OP_EMBEDDING && x->ndim != 2) {
        nn_fail(g, EMBER_EINVAL, "%s: the table must be 2-D [V, D], not %s", who,
                nn_shape_str(x->ndim, x->shape));
        return NULL;
    }
    if (n == 0 || n > INT32_MAX || (!idx)) {
        nn_fail(g, EMBER_EINVAL, "%s: %zu indices (1 to %d allowed, non-NULL)", who, n,
                INT32_MAX);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (idx[i] >= (uint32_t)x->shape[0]) {
            nn_fail(g, EMBER_EINVAL, "%s: index %u at %zu out of range (%d rows)", who, idx[i], i,
                    x->shape[0]);
            return NULL;
        }
    }
    int shape[NN_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[0] = (int)n;
    nn_tensor *t = nn_node_new(g, op, x->ndim, shape, &x, 1);
    if (!t)
        return NULL;
    t->idx = nn_graph_copy(g, idx, n, sizeof *idx);
    if (!t->idx)
        return NULL;
    return nn_node_run(g, t);
}

nn_tensor *nn_embedding(nn_graph *g, nn_tensor *table, const uint32_t *idx, size_t n)
{
    return gather(g, NN_OP_EMBEDDING, "nn_embedding", table, idx, n);
}

nn_tensor *nn_gather(nn_graph *g, nn_tensor *x, const uint32_t *idx, size_t n)
{
    return gather(g, NN_OP_GATHER, "nn_gather", x, idx, n);
}

int nn_gather_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *x = t->src[0];
    const uint32_t *idx = t->idx;
    size_t n = (size_t)t->shape[0], row = t->n / n;
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < n; i++)
        memcpy(t->data + i * row, x->data + (size_t)idx[i] * row, row * sizeof(float));
    return EMBER_OK;
}

/* gx[idx[i]] += gy[i].  Rows may repeat, so threads split by owner: a
 * thread adds only rows r with r % threads == its number, in index order;
 * the result does not depend on timing. */
static void scatter_add(float *gx, const float *gy, const uint32_t *idx, size_t n, size_t row)
{
    if (n * row <= NN_PAR_MIN) {
        for (size_t i = 0; i < n; i++) {
            float *restrict d = gx + (size_t)idx[i] * row;
            const float *restrict s = gy + i * row;
#pragma omp simd
            for (size_t j = 0; j < row; j++)
                d[j] += s[j];
        }
        return;
    }
#pragma omp parallel
    {
        uint32_t nt = (uint32_t)omp_get_num_threads(), me = (uint32_t)omp_get_thread_num();
        for (size_t i = 0; i < n; i++) {
            if (idx[i] % nt != me)
                continue;
            float *restrict d = gx + (size_t)idx[i] * row;
            const float *restrict s = gy + i * row;
#pragma omp simd
            for (size_t j = 0; j < row; j++)
                d[j] += s[j];
        }
    }
}

int nn_gather_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0];
    size_t n = (size_t)t->shape[0];
    scatter_add(x->grad, t->grad, t->idx, n, t->n / n);
    return EMBER_OK;
}

/* Like gather, and marks the rows of a sparse parameter touched. */
int nn_embedding_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0];
    const uint32_t *idx = t->idx;
    size_t n = (size_t)t->shape[0];
    if (x->param && x->param->sparse)
        for (size_t i = 0; i < n; i++)
            nn_param_touch_row(x->param, idx[i]);
    scatter_add(x->grad, t->grad, idx, n, t->n / n);
    return EMBER_OK;
}

/* ------------------------------------------------- concat and slices */

nn_tensor *nn_concat(nn_graph *g, nn_tensor *const *xs, int k)
{
    if (!g) {
        ember_fail(EMBER_EINVAL, "nn_concat: NULL graph");
        return NULL;
    }
    if (k < 1 || k > NN_MAX_SRC || !xs) {
        nn_fail(g, EMBER_EINVAL, "nn_concat: %d inputs (1 to %d allowed)", k, NN_MAX_SRC);
        return NULL;
    }
    if (!nn_inputs_ok(g, "nn_concat", xs, k))
        return NULL;
    int shape[NN_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof shape);
    int nd = xs[0]->ndim;
    long last = 0;
    for (int i = 0; i < k; i++) {
        bool ok = xs[i]->ndim == nd;
        for (int d = 0; ok && d < nd - 1; d++)
            ok = xs[i]->shape[d] == shape[d];
        if (!ok) {
            nn_fail(g, EMBER_EINVAL, "nn_concat: input %d has shape %s, input 0 %s", i,
                    nn_shape_str(xs[i]->ndim, xs[i]->shape), nn_shape_str(nd, shape));
            return NULL;
        }
        last += xs[i]->shape[nd - 1];
    }
    if (last > INT32_MAX) {
        nn_fail(g, EMBER_EINVAL, "nn_concat: last dim %ld too large", last);
        return NULL;
    }
    shape[nd - 1] = (int)last;
    nn_tensor *t = nn_node_new(g, NN_OP_CONCAT, nd, shape, xs, k);
    return t ? nn_node_run(g, t) : NULL;
}

int nn_concat_forward(nn_graph *g, nn_tensor *t)
{
    size_t rows = nn_rows(t), w = (size_t)nn_last(t);
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        size_t off = 0;
        for (int i = 0; i < t->nsrc; i++) {
            size_t wi = (size_t)nn_last(t->src[i]);
            memcpy(t->data + r * w + off, t->src[i]->data + r * wi, wi * sizeof(float));
            off += wi;
        }
    }
    return EMBER_OK;
}

int nn_concat_backward(nn_graph *g, nn_tensor *t)
{
    size_t rows = nn_rows(t), w = (size_t)nn_last(t);
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        size_t off = 0;
        for (int i = 0; i < t->nsrc; i++) {
            nn_tensor *x = t->src[i];
            size_t wi = (size_t)nn_last(x);
            if (x->requires_grad) {
                float *restrict d = x->grad + r * wi;
                const float *restrict s = t->grad + r * w + off;
#pragma omp simd
                for (size_t j = 0; j < wi; j++)
                    d[j] += s[j];
            }
            off += wi;
        }
    }
    return EMBER_OK;
}

nn_tensor *nn_slice(nn_graph *g, nn_tensor *x, int start, int len)
{
    if (!nn_inputs_ok(g, "nn_slice", &x, 1))
        return NULL;
    int w = nn_last(x);
    if (start < 0 || len < 1 || start > w - len) {
        nn_fail(g, EMBER_EINVAL, "nn_slice: columns [%d, %d+%d) outside the last dim of %s",
                start, start, len, nn_shape_str(x->ndim, x->shape));
        return NULL;
    }
    int shape[NN_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = len;
    nn_tensor *t = nn_node_new(g, NN_OP_SLICE, x->ndim, shape, &x, 1);
    if (!t)
        return NULL;
    t->arg.i[0] = start;
    return nn_node_run(g, t);
}

int nn_split(nn_graph *g, nn_tensor *x, int k, const int *sizes, nn_tensor **out)
{
    if (!nn_inputs_ok(g, "nn_split", &x, 1))
        return g ? nn_graph_status(g) : EMBER_EINVAL;
    if (k < 1 || !sizes || !out)
        return nn_fail(g, EMBER_EINVAL, "nn_split: %d parts", k);
    long total = 0;
    for (int i = 0; i < k; i++) {
        if (sizes[i] < 1)
            return nn_fail(g, EMBER_EINVAL, "nn_split: part %d has size %d", i, sizes[i]);
        total += sizes[i];
    }
    if (total != nn_last(x))
        return nn_fail(g, EMBER_EINVAL, "nn_split: parts sum to %ld, the last dim of %s is %d",
                       total, nn_shape_str(x->ndim, x->shape), nn_last(x));
    int start = 0;
    for (int i = 0; i < k; i++) {
        out[i] = nn_slice(g, x, start, sizes[i]);
        if (!out[i])
            return nn_graph_status(g);
        start += sizes[i];
    }
    return EMBER_OK;
}

int nn_slice_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *x = t->src[0];
    size_t rows = nn_rows(t), w = (size_t)nn_last(t), wx = (size_t)nn_last(x);
    size_t start = (size_t)t->arg.i[0];
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++)
        memcpy(t->data + r * w, x->data + r * wx + start, w * sizeof(float));
    return EMBER_OK;
}

int nn_slice_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0];
    size_t rows = nn_rows(t), w = (size_t)nn_last(t), wx = (size_t)nn_last(x);
    size_t start = (size_t)t->arg.i[0];
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        float *restrict d = x->grad + r * wx + start;
        const float *restrict s = t->grad + r * w;
#pragma omp simd
        for (size_t j = 0; j < w; j++)
            d[j] += s[j];
    }
    return EMBER_OK;
}

/* ------------------------------------------------ reshape, transpose */

nn_tensor *nn_reshape(nn_graph *g, nn_tensor *x, int ndim, const int *shape)
{
    if (!nn_inputs_ok(g, "nn_reshape", &x, 1))
        return NULL;
    size_t n;
    if (!shape) {
        nn_fail(g, EMBER_EINVAL, "nn_reshape: NULL shape");
        return NULL;
    }
    if (nn_check_shape(g, "nn_reshape", ndim, shape, &n))
        return NULL;
    if (n != x->n) {
        nn_fail(g, EMBER_EINVAL, "nn_reshape: %s has %zu elements, %s has %zu",
                nn_shape_str(x->ndim, x->shape), x->n, nn_shape_str(ndim, shape), n);
        return NULL;
    }
    nn_tensor *t = nn_node_new_nodata(g, NN_OP_RESHAPE, ndim, shape, &x, 1);
    return t ? nn_node_run(g, t) : NULL;
}

int nn_reshape_forward(nn_graph *g, nn_tensor *t)
{
    t->data = t->src[0]->data;
    return EMBER_OK;
}

int nn_reshape_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0];
    if (x->grad == t->grad) /* lent by the reverse pass */
        return EMBER_OK;
    float *restrict gx = x->grad;
    const float *restrict gy = t->grad;
#pragma omp parallel for simd if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        gx[i] += gy[i];
    return EMBER_OK;
}

nn_tensor *nn_transpose(nn_graph *g, nn_tensor *x)
{
    if (!nn_inputs_ok(g, "nn_transpose", &x, 1))
        return NULL;
    if (x->ndim < 2) {
        nn_fail(g, EMBER_EINVAL, "nn_transpose: %s has fewer than 2 dims",
                nn_shape_str(x->ndim, x->shape));
        return NULL;
    }
    int shape[NN_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 2] = x->shape[x->ndim - 1];
    shape[x->ndim - 1] = x->shape[x->ndim - 2];
    nn_tensor *t = nn_node_new(g, NN_OP_TRANSPOSE, x->ndim, shape, &x, 1);
    return t ? nn_node_run(g, t) : NULL;
}

int nn_transpose_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *x = t->src[0];
    size_t m = (size_t)x->shape[x->ndim - 2], n = (size_t)x->shape[x->ndim - 1];
    size_t batch = x->n / (m * n);
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t b = 0; b < batch; b++) {
        const float *restrict s = x->data + b * m * n;
        float *restrict d = t->data + b * m * n;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                d[j * m + i] = s[i * n + j];
    }
    return EMBER_OK;
}

int nn_transpose_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0];
    size_t m = (size_t)x->shape[x->ndim - 2], n = (size_t)x->shape[x->ndim - 1];
    size_t batch = x->n / (m * n);
#pragma omp parallel for if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t b = 0; b < batch; b++) {
        const float *restrict s = t->grad + b * m * n;
        float *restrict d = x->grad + b * m * n;
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                d[i * n + j] += s[j * m + i];
    }
    return EMBER_OK;
}

/* -------------------------------------------------------- reductions */

static nn_tensor *reduce_all(nn_graph *g, nn_op op, const char *who, nn_tensor *x)
{
    if (!nn_inputs_ok(g, who, &x, 1))
        return NULL;
    nn_tensor *t = nn_node_new(g, op, 1, (const int[]){1}, &x, 1);
    return t ? nn_node_run(g, t) : NULL;
}

nn_tensor *nn_sum(nn_graph *g, nn_tensor *x)
{
    return reduce_all(g, NN_OP_SUM, "nn_sum", x);
}

nn_tensor *nn_mean(nn_graph *g, nn_tensor *x)
{
    return reduce_all(g, NN_OP_MEAN, "nn_mean", x);
}

/* Sums in double, in index order (deterministic, and exact enough). */
int nn_sum_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *x = t->src[0];
    double s = 0.0;
    for (size_t i = 0; i < x->n; i++)
        s += x->data[i];
    if (t->op == NN_OP_MEAN)
        s /= (double)x->n;
    t->data[0] = (float)s;
    return EMBER_OK;
}

int nn_sum_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0];
    float d = t->grad[0];
    if (t->op == NN_OP_MEAN)
        d /= (float)x->n;
    float *restrict gx = x->grad;
#pragma omp parallel for simd if (x->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < x->n; i++)
        gx[i] += d;
    return EMBER_OK;
}

static nn_tensor *reduce_last(nn_graph *g, nn_op op, const char *who, nn_tensor *x)
{
    if (!nn_inputs_ok(g, who, &x, 1))
        return NULL;
    int shape[NN_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = 1;
    nn_tensor *t = nn_node_new(g, op, x->ndim, shape, &x, 1);
    return t ? nn_node_run(g, t) : NULL;
}

nn_tensor *nn_sum_last(nn_graph *g, nn_tensor *x)
{
    return reduce_last(g, NN_OP_SUM_LAST, "nn_sum_last", x);
}

nn_tensor *nn_mean_last(nn_graph *g, nn_tensor *x)
{
    return reduce_last(g, NN_OP_MEAN_LAST, "nn_mean_last", x);
}

int nn_sum_last_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *x = t->src[0];
    size_t rows = t->n, w = (size_t)nn_last(x);
    float scale = t->op == NN_OP_MEAN_LAST ? 1.0f / (float)w : 1.0f;
#pragma omp parallel for if (x->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *restrict s = x->data + r * w;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (size_t j = 0; j < w; j++)
            acc += s[j];
        t->data[r] = acc * scale;
    }
    return EMBER_OK;
}

int nn_sum_last_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *x = t->src[0];
    size_t rows = t->n, w = (size_t)nn_last(x);
    float scale = t->op == NN_OP_MEAN_LAST ? 1.0f / (float)w : 1.0f;
#pragma omp parallel for if (x->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        float *restrict d = x->grad + r * w;
        float v = t->grad[r] * scale;
#pragma omp simd
        for (size_t j = 0; j < w; j++)
            d[j] += v;
    }
    return EMBER_OK;
}

/* ------------------------------------------------------- masked fill */

nn_tensor *nn_masked_fill(nn_graph *g, nn_tensor *x, const uint8_t *mask, int mask_ndim,
                          const int *mask_shape, float value)
{
    if (!nn_inputs_ok(g, "nn_masked_fill", &x, 1))
        return NULL;
    size_t mn;
    if (!mask || !mask_shape) {
        nn_fail(g, EMBER_EINVAL, "nn_masked_fill: NULL mask");
        return NULL;
    }
    if (nn_check_shape(g, "nn_masked_fill", mask_ndim, mask_shape, &mn))
        return NULL;
    bool ok = mask_ndim <= x->ndim;
    for (int i = 0; ok && i < mask_ndim; i++) {
        int dm = mask_shape[mask_ndim - 1 - i], dx = x->shape[x->ndim - 1 - i];
        ok = dm == dx || dm == 1;
    }
    if (!ok) {
        nn_fail(g, EMBER_EINVAL, "nn_masked_fill: mask %s does not broadcast to %s",
                nn_shape_str(mask_ndim, mask_shape), nn_shape_str(x->ndim, x->shape));
        return NULL;
    }
    nn_tensor *t = nn_node_new(g, NN_OP_MASKED_FILL, x->ndim, x->shape, &x, 1);
    if (!t)
        return NULL;
    /* the mask expanded to x's shape, one byte per element */
    uint8_t *full = nn_graph_alloc(g, x->n, 1);
    if (!full)
        return NULL;
    size_t d[4], dm[4], sm[4];
    pad4(x, d);
    for (int i = 0; i < 4; i++) {
        int k = mask_ndim - 4 + i;
        dm[i] = k >= 0 ? (size_t)mask_shape[k] : 1;
    }
    strides_into(d, dm, sm);
    size_t e = 0;
    for (size_t i0 = 0; i0 < d[0]; i0++)
        for (size_t i1 = 0; i1 < d[1]; i1++)
            for (size_t i2 = 0; i2 < d[2]; i2++)
                for (size_t i3 = 0; i3 < d[3]; i3++)
                    full[e++] =
                        mask[i0 * sm[0] + i1 * sm[1] + i2 * sm[2] + i3 * sm[3]] != 0;
    t->idx = full;
    t->arg.f[0] = value;
    return nn_node_run(g, t);
}

int nn_masked_fill_forward(nn_graph *g, nn_tensor *t)
{
    const float *restrict x = t->src[0]->data;
    const uint8_t *restrict m = t->idx;
    float *restrict y = t->data;
    float v = t->arg.f[0];
#pragma omp parallel for simd if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        y[i] = m[i] ? v : x[i];
    return EMBER_OK;
}

int nn_masked_fill_backward(nn_graph *g, nn_tensor *t)
{
    const uint8_t *restrict m = t->idx;
    const float *restrict gy = t->grad;
    float *restrict gx = t->src[0]->grad;
#pragma omp parallel for simd if (t->n > NN_PAR_MIN) schedule(static)
    for (size_t i = 0; i < t->n; i++)
        gx[i] += m[i] ? 0.0f : gy[i];
    return EMBER_OK;
}

/* ----------------------------------------------------------- rowdot */

nn_tensor *nn_rowdot(nn_graph *g, nn_tensor *a, nn_tensor *b)
{
    nn_tensor *src[2] = {a, b};
    if (!nn_inputs_ok(g, "nn_rowdot", src, 2))
        return NULL;
    if (!same_shape(a, b)) {
        nn_fail(g, EMBER_EINVAL, "nn_rowdot: shapes %s and %s differ",
                nn_shape_str(a->ndim, a->shape), nn_shape_str(b->ndim, b->shape));
        return NULL;
    }
    int shape[NN_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[a->ndim - 1] = 1;
    nn_tensor *t = nn_node_new(g, NN_OP_ROWDOT, a->ndim, shape, src, 2);
    return t ? nn_node_run(g, t) : NULL;
}

int nn_rowdot_forward(nn_graph *g, nn_tensor *t)
{
    const nn_tensor *a = t->src[0], *b = t->src[1];
    size_t rows = t->n, w = (size_t)nn_last(a);
#pragma omp parallel for if (a->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        const float *restrict x = a->data + r * w, *restrict y = b->data + r * w;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (size_t j = 0; j < w; j++)
            acc += x[j] * y[j];
        t->data[r] = acc;
    }
    return EMBER_OK;
}

int nn_rowdot_backward(nn_graph *g, nn_tensor *t)
{
    nn_tensor *a = t->src[0], *b = t->src[1];
    size_t rows = t->n, w = (size_t)nn_last(a);
#pragma omp parallel for if (a->n > NN_PAR_MIN) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        float d = t->grad[r];
        if (a->requires_grad) {
            float *restrict ga = a->grad + r * w;
            const float *restrict y = b->data + r * w;
#pragma omp simd
            for (size_t j = 0; j < w; j++)
                ga[j] += d * y[j];
        }
        if (b->requires_grad) {
            float *restrict gb = b->grad + r * w;
            const float *restrict x = a->data + r * w;
#pragma omp simd
            for (size_t j = 0; j < w; j++)
                gb[j] += d * x[j];
        }
    }
    return EMBER_OK;
}
