/*
 * graph.c — the arena, the tape, the reverse pass, the table of ops and
 * the parameters.
 *
 * The arena is a list of 64-byte aligned blocks with a bump pointer.  When
 * a step needs more than the current block, a new block is chained; at the
 * next reset the blocks are merged into one of their total size, so the
 * second step of a training loop (and every later one of the same shape)
 * allocates nothing.  Every node, value, gradient and saved intermediate
 * comes from it; nn_graph_stats counts the mallocs to prove the point.
 *
 * The tape is the array of nodes in creation order, which is a topological
 * order (a node is made after its sources).  The reverse pass walks it
 * backwards from the loss; before a node's backward runs, the gradients of
 * its sources that need one are allocated and zeroed, except that a
 * reshape lends its own gradient buffer to a source that has none yet
 * (reshape's backward is then nothing at all).
 *
 * Reference: the design follows KANN/kautodiff (Heng Li) and ggml.
 */
#include "nn/nn_internal.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- table */

const nn_op_def nn_ops[NN_OP_COUNT] = {
    [NN_OP_LEAF] = {"leaf", NULL, NULL, false},
    [NN_OP_MATMUL] = {"matmul", nn_matmul_forward, nn_matmul_backward, false},
    [NN_OP_ADD] = {"add", nn_binary_forward, nn_binary_backward, false},
    [NN_OP_SUB] = {"sub", nn_binary_forward, nn_binary_backward, false},
    [NN_OP_MUL] = {"mul", nn_binary_forward, nn_binary_backward, false},
    [NN_OP_DIV] = {"div", nn_binary_forward, nn_binary_backward, false},
    [NN_OP_SCALE] = {"scale", nn_scale_forward, nn_scale_backward, false},
    [NN_OP_RELU] = {"relu", nn_relu_forward, nn_relu_backward, false},
    [NN_OP_GELU] = {"gelu", nn_gelu_forward, nn_gelu_backward, false},
    [NN_OP_SIGMOID] = {"sigmoid", nn_sigmoid_forward, nn_sigmoid_backward, false},
    [NN_OP_TANH] = {"tanh", nn_tanh_forward, nn_tanh_backward, false},
    [NN_OP_EXP] = {"exp", nn_exp_forward, nn_exp_backward, false},
    [NN_OP_SOFTMAX] = {"softmax", nn_softmax_forward, nn_softmax_backward, false},
    [NN_OP_LOG_SOFTMAX] = {"log_softmax", nn_log_softmax_forward, nn_log_softmax_backward, false},
    [NN_OP_LAYERNORM] = {"layernorm", nn_layernorm_forward, nn_layernorm_backward, false},
    [NN_OP_DROPOUT] = {"dropout", nn_dropout_forward, nn_dropout_backward, false},
    [NN_OP_EMBEDDING] = {"embedding", nn_gather_forward, nn_embedding_backward, true},
    [NN_OP_EMBEDDING_BAG] = {"embedding_bag", nn_embedding_bag_forward,
                             nn_embedding_bag_backward, true},
    [NN_OP_GATHER] = {"gather", nn_gather_forward, nn_gather_backward, false},
    [NN_OP_CONCAT] = {"concat", nn_concat_forward, nn_concat_backward, false},
    [NN_OP_SLICE] = {"slice", nn_slice_forward, nn_slice_backward, false},
    [NN_OP_RESHAPE] = {"reshape", nn_reshape_forward, nn_reshape_backward, false},
    [NN_OP_TRANSPOSE] = {"transpose", nn_transpose_forward, nn_transpose_backward, false},
    [NN_OP_SUM] = {"sum", nn_sum_forward, nn_sum_backward, false},
    [NN_OP_MEAN] = {"mean", nn_sum_forward, nn_sum_backward, false},
    [NN_OP_SUM_LAST] = {"sum_last", nn_sum_last_forward, nn_sum_last_backward, false},
    [NN_OP_MEAN_LAST] = {"mean_last", nn_sum_last_forward, nn_sum_last_backward, false},
    [NN_OP_MASKED_FILL] = {"masked_fill", nn_masked_fill_forward, nn_masked_fill_backward, false},
    [NN_OP_ROWDOT] = {"rowdot", nn_rowdot_forward, nn_rowdot_backward, false},
    [NN_OP_ATTENTION] = {"attention", nn_attention_forward, nn_attention_backward, false},
    [NN_OP_GRU] = {"gru", nn_gru_forward, nn_gru_backward, false},
    [NN_OP_BCE_LOGITS] = {"bce_logits", nn_bce_logits_forward, nn_bce_logits_backward, false},
    [NN_OP_SOFTMAX_CE] = {"softmax_ce", nn_softmax_ce_forward, nn_softmax_ce_backward, false},
    [NN_OP_SAMPLED_SOFTMAX_CE] = {"sampled_softmax_ce", nn_sampled_softmax_ce_forward,
                                  nn_sampled_softmax_ce_backward, false},
    [NN_OP_BPR] = {"bpr", nn_bpr_forward, nn_bpr_backward, false},
    [NN_OP_MSE] = {"mse", nn_mse_forward, nn_mse_backward, false},
    [NN_OP_KL_VAE] = {"kl_vae", nn_kl_vae_forward, nn_kl_vae_backward, false},
};
_Static_assert(sizeof nn_ops / sizeof nn_ops[0] == NN_OP_COUNT, "one row per op");

/* ------------------------------------------------------------- arena */

#define ARENA_ALIGN 64
#define ARENA_HEADER 64 /* the block header, padded to the alignment */
#define ARENA_DEFAULT (1u << 20)

typedef struct arena_block {
    struct arena_block *next; /* the previous (older) block */
    size_t cap, used;
} arena_block;
_Static_assert(sizeof(arena_block) <= ARENA_HEADER, "header fits its padding");

struct nn_graph {
    arena_block *block;  /* the current block; ->next the older ones */
    size_t arena_bytes;  /* capacity of all blocks */
    size_t used_before;  /* bytes used in the older blocks */
    size_t peak;
    size_t first_block;
    nn_tensor **tape;
    size_t n_tape, cap_tape;
    size_t mallocs;
    int status;
    bool training, check;
    const char *bad_op;
    ember_rng rng;
};

static arena_block *block_new(nn_graph *g, size_t cap)
{
    arena_block *b = ember_alloc_aligned(1, ARENA_HEADER + cap);
    if (!b)
        return NULL;
    g->mallocs++;
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    g->arena_bytes += cap;
    return b;
}

static void *arena_alloc(nn_graph *g, size_t bytes)
{
    if (bytes > SIZE_MAX - 2 * ARENA_ALIGN - ARENA_HEADER) {
        nn_fail(g, EMBER_ENOMEM, "nn arena: request of %zu bytes overflows", bytes);
        return NULL;
    }
    bytes = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (bytes == 0)
        bytes = ARENA_ALIGN;
    arena_block *b = g->block;
    if (!b || b->cap - b->used < bytes) {
        size_t cap = b ? b->cap * 2 : g->first_block;
        if (cap < bytes)
            cap = bytes;
        arena_block *nb = block_new(g, cap);
        if (!nb) {
            nn_fail(g, EMBER_ENOMEM, "nn arena: out of memory (%zu bytes)", cap);
            return NULL;
        }
        if (b)
            g->used_before += b->used;
        nb->next = b;
        g->block = b = nb;
    }
    void *p = (char *)b + ARENA_HEADER + b->used;
    b->used += bytes;
    size_t used = g->used_before + b->used;
    if (used > g->peak)
        g->peak = used;
    return p;
}

static void arena_free_blocks(nn_graph *g)
{
    arena_block *b = g->block;
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    g->block = NULL;
    g->arena_bytes = 0;
    g->used_before = 0;
}

/* Rewinds the arena; several blocks become one of their total size (so
 * the next step of the same shape fits in it). */
static void arena_reset(nn_graph *g)
{
    if (g->block && g->block->next) {
        size_t total = g->arena_bytes;
        arena_free_blocks(g);
        g->block = block_new(g, total);
        /* On failure the next alloc starts from nothing again. */
        return;
    }
    if (g->block)
        g->block->used = 0;
    g->used_before = 0;
}

void *nn_graph_alloc(nn_graph *g, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        nn_fail(g, EMBER_ENOMEM, "nn arena: %zu x %zu bytes overflows", n, size);
        return NULL;
    }
    return arena_alloc(g, n * size);
}

void *nn_graph_copy(nn_graph *g, const void *src, size_t n, size_t size)
{
    void *p = nn_graph_alloc(g, n, size);
    if (p && n)
        memcpy(p, src, n * size);
    return p;
}

/* ------------------------------------------------------------- graph */

nn_graph *nn_graph_new(size_t first_block)
{
    nn_graph *g = ember_calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->mallocs = 1;
    g->first_block = first_block ? (first_block + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1)
                                 : ARENA_DEFAULT;
    g->training = true;
    const char *env = getenv("EMBER_NN_CHECK");
    g->check = env && env[0] && strcmp(env, "0") != 0;
    ember_rng_seed(&g->rng, 42);
    return g;
}

void nn_graph_free(nn_graph *g)
{
    if (!g)
        return;
    arena_free_blocks(g);
    free(g->tape);
    free(g);
}

void nn_graph_reset(nn_graph *g)
{
    arena_reset(g);
    g->n_tape = 0;
    g->status = EMBER_OK;
    g->bad_op = NULL;
}

void nn_graph_set_training(nn_graph *g, bool training)
{
    g->training = training;
}

bool nn_graph_is_training(const nn_graph *g)
{
    return g->training;
}

void nn_graph_seed(nn_graph *g, uint64_t seed)
{
    ember_rng_seed(&g->rng, seed);
}

ember_rng *nn_graph_rng(nn_graph *g)
{
    return &g->rng;
}

void nn_graph_set_check(nn_graph *g, bool on)
{
    g->check = on;
}

int nn_graph_status(const nn_graph *g)
{
    return g ? g->status : EMBER_EINVAL;
}

const char *nn_graph_bad_op(const nn_graph *g)
{
    return g->bad_op;
}

void nn_graph_get_stats(const nn_graph *g, nn_graph_stats *st)
{
    st->mallocs = g->mallocs;
    st->arena_bytes = g->arena_bytes;
    st->arena_used = g->used_before + (g->block ? g->block->used : 0);
    st->arena_peak = g->peak;
    st->nodes = g->n_tape;
}

void nn_set_threads(int n)
{
    if (n <= 0)
        return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int nn_max_threads(void)
{
    return omp_get_max_threads();
}

int nn_fail(nn_graph *g, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g && g->status == EMBER_OK)
        g->status = status;
    return ember_fail(status, "%s", msg);
}

bool nn_inputs_ok(nn_graph *g, const char *who, nn_tensor *const *xs, int n)
{
    if (!g) {
        ember_fail(EMBER_EINVAL, "%s: NULL graph", who);
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (!xs[i]) {
            if (g->status == EMBER_OK)
                nn_fail(g, EMBER_EINVAL, "%s: NULL input %d", who, i);
            return false;
        }
    }
    return true;
}

const char *nn_shape_str(int ndim, const int *shape)
{
    static _Thread_local char ring[4][64];
    static _Thread_local int next;
    char *s = ring[next];
    next = (next + 1) % 4;
    size_t len = 0;
    s[len++] = '[';
    for (int i = 0; i < ndim && i < NN_MAX_DIMS; i++) {
        int w = snprintf(s + len, 64 - len, i ? ",%d" : "%d", shape[i]);
        if (w < 0 || (size_t)w >= 64 - len - 1)
            break;
        len += (size_t)w;
    }
    s[len++] = ']';
    s[len] = '\0';
    return s;
}

int nn_check_shape(nn_graph *g, const char *who, int ndim, const int *shape, size_t *n)
{
    if (ndim < 1 || ndim > NN_MAX_DIMS)
        return nn_fail(g, EMBER_EINVAL, "%s: %d dims (1 to %d allowed)", who, ndim, NN_MAX_DIMS);
    size_t total = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 1)
            return nn_fail(g, EMBER_EINVAL, "%s: shape %s has a dim < 1", who,
                           nn_shape_str(ndim, shape));
        if (total > (SIZE_MAX / sizeof(float)) / (size_t)shape[i])
            return nn_fail(g, EMBER_EINVAL, "%s: shape %s is too large", who,
                           nn_shape_str(ndim, shape));
        total *= (size_t)shape[i];
    }
    *n = total;
    return EMBER_OK;
}

static nn_tensor *node_make(nn_graph *g, nn_op op, int ndim, const int *shape,
                            nn_tensor *const *src, int nsrc, bool with_data)
{
    size_t n;
    if (nn_check_shape(g, nn_ops[op].name, ndim, shape, &n))
        return NULL;
    nn_tensor *t = arena_alloc(g, sizeof *t);
    if (!t)
        return NULL;
    memset(t, 0, sizeof *t);
    t->op = op;
    t->ndim = ndim;
    t->n = n;
    memcpy(t->shape, shape, (size_t)ndim * sizeof(int));
    t->nsrc = nsrc;
    for (int i = 0; i < nsrc; i++) {
        t->src[i] = src[i];
        if (src[i]->requires_grad)
            t->requires_grad = true;
    }
    if (with_data) {
        t->data = nn_graph_alloc(g, n, sizeof(float));
        if (!t->data)
            return NULL;
    }
    return t;
}

nn_tensor *nn_node_new(nn_graph *g, nn_op op, int ndim, const int *shape, nn_tensor *const *src,
                       int nsrc)
{
    return node_make(g, op, ndim, shape, src, nsrc, true);
}

nn_tensor *nn_node_new_nodata(nn_graph *g, nn_op op, int ndim, const int *shape,
                              nn_tensor *const *src, int nsrc)
{
    return node_make(g, op, ndim, shape, src, nsrc, false);
}

static int tape_push(nn_graph *g, nn_tensor *t)
{
    if (g->n_tape == g->cap_tape) {
        size_t cap = g->cap_tape ? g->cap_tape * 2 : 256;
        nn_tensor **tape = ember_realloc(g->tape, cap, sizeof *tape);
        if (!tape)
            return nn_fail(g, EMBER_ENOMEM, "nn tape: out of memory (%zu nodes)", cap);
        g->mallocs++;
        g->tape = tape;
        g->cap_tape = cap;
    }
    if (g->n_tape >= UINT32_MAX)
        return nn_fail(g, EMBER_ETOOBIG, "nn tape: too many nodes");
    t->id = (uint32_t)g->n_tape;
    g->tape[g->n_tape++] = t;
    return EMBER_OK;
}

/* Index of the first non-finite value of x[0..n), or n. */
static size_t first_nonfinite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return n;
}

nn_tensor *nn_node_run(nn_graph *g, nn_tensor *t)
{
    if (t->op != NN_OP_LEAF) {
        int rc = nn_ops[t->op].forward(g, t);
        if (rc) {
            nn_fail(g, rc, "%s: %s", nn_ops[t->op].name, ember_last_error());
            return NULL;
        }
    }
    if (tape_push(g, t))
        return NULL;
    if (g->check && t->op != NN_OP_LEAF) {
        size_t i = first_nonfinite(t->data, t->n);
        if (i < t->n) {
            g->bad_op = nn_ops[t->op].name;
            nn_fail(g, EMBER_EINVAL,
                    "nn check: op '%s' (node %u, shape %s) produced %s at element %zu",
                    nn_ops[t->op].name, t->id, nn_shape_str(t->ndim, t->shape),
                    isnan(t->data[i]) ? "NaN" : "Inf", i);
            return NULL;
        }
    }
    return t;
}

/* ------------------------------------------------------------ leaves */

nn_tensor *nn_input(nn_graph *g, int ndim, const int *shape, const float *data,
                    bool requires_grad)
{
    if (!g) {
        ember_fail(EMBER_EINVAL, "nn_input: NULL graph");
        return NULL;
    }
    nn_tensor *t = nn_node_new(g, NN_OP_LEAF, ndim, shape, NULL, 0);
    if (!t)
        return NULL;
    if (data)
        memcpy(t->data, data, t->n * sizeof(float));
    else
        memset(t->data, 0, t->n * sizeof(float));
    t->requires_grad = requires_grad;
    return nn_node_run(g, t);
}

nn_tensor *nn_param_node(nn_graph *g, nn_param *p)
{
    if (!g || !p) {
        if (g && g->status == EMBER_OK)
            nn_fail(g, EMBER_EINVAL, "nn_param_node: NULL parameter");
        else if (!g)
            ember_fail(EMBER_EINVAL, "nn_param_node: NULL graph");
        return NULL;
    }
    nn_tensor *t = nn_node_new_nodata(g, NN_OP_LEAF, p->ndim, p->shape, NULL, 0);
    if (!t)
        return NULL;
    t->data = p->value;
    t->param = p;
    t->requires_grad = !p->frozen;
    t->grad = p->frozen ? NULL : p->grad;
    return nn_node_run(g, t);
}

/* ---------------------------------------------------------- backward */

static int check_grads(nn_graph *g, nn_tensor *t)
{
    for (int s = 0; s < t->nsrc; s++) {
        nn_tensor *x = t->src[s];
        if (!x->requires_grad || !x->grad)
            continue;
        size_t i = first_nonfinite(x->grad, x->n);
        if (i < x->n) {
            g->bad_op = nn_ops[t->op].name;
            return nn_fail(g, EMBER_EINVAL,
                           "nn check: backward of op '%s' (node %u) produced %s in the "
                           "gradient of its input %d at element %zu",
                           nn_ops[t->op].name, t->id, isnan(x->grad[i]) ? "NaN" : "Inf", s, i);
        }
    }
    return EMBER_OK;
}

static int reverse_pass(nn_graph *g, nn_tensor *out)
{
    for (size_t k = (size_t)out->id + 1; k-- > 0;) {
        nn_tensor *t = g->tape[k];
        if (t->op == NN_OP_LEAF || !t->requires_grad || !t->grad)
            continue;
        for (int s = 0; s < t->nsrc; s++) {
            nn_tensor *x = t->src[s];
            if (!x->requires_grad || x->grad)
                continue;
            if (t->op == NN_OP_RESHAPE) {
                x->grad = t->grad; /* lent: reshape's backward is then a no-op */
                continue;
            }
            x->grad = nn_graph_alloc(g, x->n, sizeof(float));
            if (!x->grad)
                return g->status;
            memset(x->grad, 0, x->n * sizeof(float));
        }
        int rc = nn_ops[t->op].backward(g, t);
        if (rc)
            return nn_fail(g, rc, "backward of %s: %s", nn_ops[t->op].name, ember_last_error());
        for (int s = 0; s < t->nsrc; s++) {
            nn_param *p = t->src[s]->param;
            if (p && p->sparse && !(nn_ops[t->op].sparse_rows && s == 0))
                p->dense_touched = true;
        }
        if (g->check && check_grads(g, t))
            return g->status;
    }
    return EMBER_OK;
}

static int backward_start(nn_graph *g, nn_tensor *out, const char *who)
{
    if (!g)
        return ember_fail(EMBER_EINVAL, "%s: NULL graph", who);
    if (g->status)
        return g->status;
    if (!out)
        return nn_fail(g, EMBER_EINVAL, "%s: NULL output", who);
    if (out->id >= g->n_tape || g->tape[out->id] != out)
        return nn_fail(g, EMBER_EINVAL, "%s: the output is not on this graph's tape", who);
    if (!out->requires_grad)
        return EMBER_OK;
    if (!out->grad) {
        out->grad = nn_graph_alloc(g, out->n, sizeof(float));
        if (!out->grad)
            return g->status;
        memset(out->grad, 0, out->n * sizeof(float));
    }
    return EMBER_OK;
}

int nn_backward(nn_graph *g, nn_tensor *loss)
{
    int rc = backward_start(g, loss, "nn_backward");
    if (rc)
        return rc;
    if (loss->n != 1)
        return nn_fail(g, EMBER_EINVAL, "nn_backward: the loss has shape %s, not a scalar",
                       nn_shape_str(loss->ndim, loss->shape));
    if (!loss->requires_grad)
        return EMBER_OK;
    loss->grad[0] += 1.0f;
    return reverse_pass(g, loss);
}

int nn_backward_seeded(nn_graph *g, nn_tensor *out, const float *seed_grad)
{
    int rc = backward_start(g, out, "nn_backward_seeded");
    if (rc || !out->requires_grad)
        return rc;
    for (size_t i = 0; i < out->n; i++)
        out->grad[i] += seed_grad[i];
    return reverse_pass(g, out);
}

/* -------------------------------------------------------- parameters */

void nn_params_init(nn_params *ps)
{
    ps->p = NULL;
    ps->n = ps->cap = 0;
}

static void param_free(nn_param *p)
{
    if (!p)
        return;
    free(p->value);
    free(p->grad);
    free(p->m);
    free(p->v);
    free(p->row_touched);
    free(p->touched);
    free(p);
}

void nn_params_free(nn_params *ps)
{
    if (!ps)
        return;
    for (size_t i = 0; i < ps->n; i++)
        param_free(ps->p[i]);
    free(ps->p);
    nn_params_init(ps);
}

nn_param *nn_params_add(nn_params *ps, const char *name, int ndim, const int *shape, bool sparse)
{
    size_t n;
    if (nn_check_shape(NULL, "nn_params_add", ndim, shape, &n))
        return NULL;
    if (!name || strlen(name) >= sizeof(((nn_param *)0)->name)) {
        ember_fail(EMBER_EINVAL, "nn_params_add: name missing or longer than %zu",
                   sizeof(((nn_param *)0)->name) - 1);
        return NULL;
    }
    if (nn_params_find(ps, name)) {
        ember_fail(EMBER_EINVAL, "nn_params_add: duplicate parameter '%s'", name);
        return NULL;
    }
    if (ember_grow((void **)&ps->p, &ps->cap, ps->n + 1, sizeof *ps->p))
        return NULL;
    nn_param *p = ember_calloc(1, sizeof *p);
    if (!p)
        return NULL;
    strcpy(p->name, name);
    p->ndim = ndim;
    memcpy(p->shape, shape, (size_t)ndim * sizeof(int));
    p->n = n;
    p->rows = (size_t)shape[0];
    p->cols = n / p->rows;
    p->sparse = sparse;
    p->value = ember_alloc_aligned(n, sizeof(float));
    p->grad = ember_alloc_aligned(n, sizeof(float));
    if (sparse) {
        p->row_touched = ember_calloc(p->rows, 1);
        p->touched = ember_alloc(p->rows, sizeof(uint32_t));
    }
    if (!p->value || !p->grad || (sparse && (!p->row_touched || !p->touched))) {
        param_free(p);
        return NULL;
    }
    memset(p->value, 0, n * sizeof(float));
    memset(p->grad, 0, n * sizeof(float));
    ps->p[ps->n++] = p;
    return p;
}

nn_param *nn_params_find(const nn_params *ps, const char *name)
{
    for (size_t i = 0; i < ps->n; i++)
        if (strcmp(ps->p[i]->name, name) == 0)
            return ps->p[i];
    return NULL;
}

size_t nn_params_count(const nn_params *ps)
{
    size_t total = 0;
    for (size_t i = 0; i < ps->n; i++)
        total += ps->p[i]->n;
    return total;
}

void nn_param_zero_grad(nn_param *p)
{
    if (p->sparse && !p->dense_touched) {
        for (size_t k = 0; k < p->n_touched; k++)
            memset(p->grad + (size_t)p->touched[k] * p->cols, 0, p->cols * sizeof(float));
    } else {
        memset(p->grad, 0, p->n * sizeof(float));
    }
    if (p->sparse) {
        for (size_t k = 0; k < p->n_touched; k++)
            p->row_touched[p->touched[k]] = 0;
        p->n_touched = 0;
    }
    p->dense_touched = false;
}

void nn_params_zero_grad(nn_params *ps)
{
    for (size_t i = 0; i < ps->n; i++)
        nn_param_zero_grad(ps->p[i]);
}

void nn_param_touch_row(nn_param *p, uint32_t r)
{
    if (!p->row_touched[r]) {
        p->row_touched[r] = 1;
        p->touched[p->n_touched++] = r;
    }
}
