/*
 * nn.h — ember's neural-network core: fp32 tensors, a define-by-run tape
 * with reverse-mode differentiation, losses, optimizers and initializers.
 *
 * The shape of it (after KANN/kautodiff and ggml):
 *   - A node (nn_tensor) is a small struct: op, shape, value, gradient,
 *     sources.  Every op is a forward and a backward function side by side
 *     in one file (ops.c, ops_nn.c, ops_seq.c, loss.c) and one row of the
 *     table nn_ops[] (graph.c), indexed by the enum nn_op.
 *   - A graph owns an arena and the tape.  Building a node runs its forward
 *     at once (define-by-run) and appends it to the tape; nn_backward()
 *     walks the tape in reverse.  Node values, gradients and saved
 *     intermediates all live in the arena; nn_graph_reset() rewinds it, so
 *     from the second training step on a step calls malloc never (the
 *     arena keeps its memory; nn_graph_stats counts the mallocs).
 *   - Parameters (nn_param) live outside the arena: value, gradient and
 *     optimizer state, owned by an nn_params list.  nn_param_node() puts a
 *     parameter on the tape; its gradient accumulates straight into
 *     param->grad.  Gradients of parameters are zero between steps: the
 *     optimizer zeroes what it consumed (nn_params_zero_grad() does it by
 *     hand).  A "sparse" parameter (an embedding table) gets gradients by
 *     row from nn_embedding()/nn_embedding_bag() and remembers which rows
 *     were touched, so optimizers update only those rows; used by any other
 *     op it is marked densely touched and updated whole.
 *
 * A training step:
 *     nn_tensor *loss = forward(g, ...);      builders; NULL on error
 *     if (!loss) return nn_graph_status(g);
 *     rc = nn_backward(g, loss);              gradients into the parameters
 *     rc = nn_optim_step(&opt, &params, lr);  update, and zero the gradients
 *     nn_graph_reset(g);                      rewind the arena for the next step
 *
 * Tensors: fp32, contiguous row-major, 1 to 4 dimensions, every dimension
 * >= 1.  A scalar is shape [1].
 *
 * Errors (one convention for every builder): a builder returns the new node,
 * or NULL with the message set (ember_fail) and the graph marked failed
 * (nn_graph_status() returns the status: EMBER_EINVAL for bad shapes or
 * arguments, EMBER_ENOMEM for memory, EMBER_ETOOBIG for sizes a BLAS call
 * cannot take).  A builder given a NULL input returns
 * NULL without touching the message, so a whole forward pass can be written
 * without checks and checked once: `if (!loss) return nn_graph_status(g);`.
 * Functions that are not builders return an int status (0 = EMBER_OK).
 * Integer inputs (indices, offsets, lengths, masks) are copied into the
 * arena: the caller's arrays may change after the builder returns.
 *
 * Broadcasting (add/sub/mul/div): shapes are aligned on the right; each
 * dimension pair must be equal or one of them 1 (numpy rules), e.g.
 * [B,T,D] + [D], [B,T,D] * [B,T,1], [B,1,D] + [1,T,D].  A masked-fill mask
 * broadcasts the same way into the shape of x.
 *
 * Threads: OpenMP in the large elementwise loops, row-wise ops, embedding
 * bags and attention (over batch x heads); matrix products through
 * OpenBLAS.  Every parallel loop has a static schedule and no loop reduces
 * across threads, so results depend only on the seed and the number of
 * threads; with one thread (nn_set_threads(1)) and a fixed seed a run is
 * bit-identical to the last.  nn_set_threads() sets OpenMP's and
 * OpenBLAS's thread counts together.
 *
 * Debugging: EMBER_NN_CHECK=1 in the environment (read by nn_graph_new) or
 * nn_graph_set_check() checks the output of every op and every gradient
 * backward writes for NaN/Inf; the first op that produces one fails the
 * graph with a message naming it (op name and tape position).
 */
#ifndef EMBER_NN_H
#define EMBER_NN_H

#include "core/core.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NN_MAX_DIMS 4
#define NN_MAX_SRC 6

/* Every op, in the order of the table nn_ops[] (graph.c). */
typedef enum {
    NN_OP_LEAF = 0, /* an input or a parameter: no forward, no backward */
    NN_OP_MATMUL,
    NN_OP_ADD,
    NN_OP_SUB,
    NN_OP_MUL,
    NN_OP_DIV,
    NN_OP_SCALE,
    NN_OP_RELU,
    NN_OP_GELU,
    NN_OP_SIGMOID,
    NN_OP_TANH,
    NN_OP_EXP,
    NN_OP_SOFTMAX,
    NN_OP_LOG_SOFTMAX,
    NN_OP_LAYERNORM,
    NN_OP_DROPOUT,
    NN_OP_EMBEDDING,
    NN_OP_EMBEDDING_BAG,
    NN_OP_GATHER,
    NN_OP_CONCAT,
    NN_OP_SLICE,
    NN_OP_RESHAPE,
    NN_OP_TRANSPOSE,
    NN_OP_SUM,
    NN_OP_MEAN,
    NN_OP_SUM_LAST,
    NN_OP_MEAN_LAST,
    NN_OP_MASKED_FILL,
    NN_OP_ROWDOT,
    NN_OP_ATTENTION,
    NN_OP_GRU,
    NN_OP_BCE_LOGITS,
    NN_OP_SOFTMAX_CE,
    NN_OP_SAMPLED_SOFTMAX_CE,
    NN_OP_BPR,
    NN_OP_MSE,
    NN_OP_KL_VAE,
    NN_OP_COUNT
} nn_op;

typedef struct nn_graph nn_graph;
typedef struct nn_tensor nn_tensor;
typedef struct nn_param nn_param;

/* One node of the tape (or a leaf).  Read data, grad, shape and n freely;
 * the rest belongs to the op. */
struct nn_tensor {
    float *data;          /* n values, row-major */
    float *grad;          /* n gradients, NULL until backward reaches the node */
    size_t n;             /* number of elements */
    int ndim;
    int shape[NN_MAX_DIMS];
    nn_op op;
    bool requires_grad;   /* a parameter or a requires-grad input is upstream */
    nn_param *param;      /* the parameter of a parameter leaf, else NULL */
    int nsrc;
    nn_tensor *src[NN_MAX_SRC];
    union {               /* the op's scalar arguments */
        float f[4];
        int i[4];
    } arg;
    const void *idx;      /* the op's integer input, copied into the arena */
    const void *idx2;     /* a second one (offsets, masks) */
    float *aux;           /* what forward saved for backward */
    uint32_t id;          /* position on the tape */
};

/* The table every op is listed in: forward computes t->data from the
 * sources; backward adds t->grad's contribution into the sources'
 * gradients (already allocated and zeroed when first reached).  Both may
 * allocate from the arena and so may fail with EMBER_ENOMEM. */
typedef struct {
    const char *name;
    int (*forward)(nn_graph *g, nn_tensor *t);
    int (*backward)(nn_graph *g, nn_tensor *t);
    /* backward writes only rows of src[0]'s parameter, marking them
     * (embedding lookups); any other op marks a sparse parameter densely
     * touched */
    bool sparse_rows;
} nn_op_def;

extern const nn_op_def nn_ops[NN_OP_COUNT];

/* ------------------------------------------------------------- graph */

typedef struct {
    size_t mallocs;      /* calls to malloc/realloc the graph made, ever */
    size_t arena_bytes;  /* bytes the arena holds (all blocks) */
    size_t arena_used;   /* bytes in use now */
    size_t arena_peak;   /* most bytes in use since nn_graph_new */
    size_t nodes;        /* nodes on the tape now */
} nn_graph_stats;

/* A graph with an arena of first_block bytes (0: 1 MiB); it grows as
 * needed and keeps what it grew to.  NULL on failure. */
nn_graph *nn_graph_new(size_t first_block);
void nn_graph_free(nn_graph *g);
/* Drops the tape and rewinds the arena (keeps the memory; when the last
 * step needed more than one block, the blocks become one of their total
 * size).  Clears the failed status. */
void nn_graph_reset(nn_graph *g);
/* Training mode (dropout active) or evaluation mode; training at start. */
void nn_graph_set_training(nn_graph *g, bool training);
bool nn_graph_is_training(const nn_graph *g);
/* Seeds the graph's RNG (dropout masks). */
void nn_graph_seed(nn_graph *g, uint64_t seed);
/* Turns the NaN/Inf check on or off (default: EMBER_NN_CHECK=1 or not). */
void nn_graph_set_check(nn_graph *g, bool on);
/* 0, or the status of the first failure since the last reset. */
int nn_graph_status(const nn_graph *g);
/* When the NaN/Inf check failed: the name of the op that produced the
 * first non-finite value, else NULL. */
const char *nn_graph_bad_op(const nn_graph *g);
void nn_graph_get_stats(const nn_graph *g, nn_graph_stats *st);
/* Scratch memory from the arena, 64-byte aligned, valid until the next
 * reset; NULL (graph failed) when out of memory. */
void *nn_graph_alloc(nn_graph *g, size_t n, size_t size);
/* Sets the threads OpenMP and OpenBLAS use (n <= 0: leave as is). */
void nn_set_threads(int n);

/* Reverse pass from a scalar (n == 1) node: its gradient is seeded with 1.
 * Once per build: call nn_graph_reset() and build again before the next
 * pass.  Parameters' gradients accumulate across passes until the
 * optimizer step (or nn_params_zero_grad) zeroes them. */
int nn_backward(nn_graph *g, nn_tensor *loss);
/* Reverse pass from any node with the given seed gradient (out->n values). */
int nn_backward_seeded(nn_graph *g, nn_tensor *out, const float *seed_grad);

/* ------------------------------------------------------------ leaves */

/* An input leaf of the given shape with data copied in (NULL: zeros).
 * requires_grad: gradients are computed for it (read node->grad after
 * backward). */
nn_tensor *nn_input(nn_graph *g, int ndim, const int *shape, const float *data,
                    bool requires_grad);
/* A parameter on the tape: data and grad are the parameter's own. */
nn_tensor *nn_param_node(nn_graph *g, nn_param *p);

/* -------------------------------------------- ops (ops.c, ops_nn.c, ...) */

/* Matrix product of the last two dims: a [..., M, K] (or [..., K, M] with
 * trans_a), b [..., K, N] (or [..., N, K] with trans_b) -> [..., M, N].
 * The leading (batch) dims of a and b are equal, or one of the two is 2-D
 * and shared by every batch. */
nn_tensor *nn_matmul(nn_graph *g, nn_tensor *a, nn_tensor *b, bool trans_a, bool trans_b);
/* Elementwise with broadcasting (see the top of this file). */
nn_tensor *nn_add(nn_graph *g, nn_tensor *a, nn_tensor *b);
nn_tensor *nn_sub(nn_graph *g, nn_tensor *a, nn_tensor *b);
nn_tensor *nn_mul(nn_graph *g, nn_tensor *a, nn_tensor *b);
nn_tensor *nn_div(nn_graph *g, nn_tensor *a, nn_tensor *b);
nn_tensor *nn_scale(nn_graph *g, nn_tensor *x, float alpha);
nn_tensor *nn_relu(nn_graph *g, nn_tensor *x);
/* GELU, exact form: x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (as BERT and
 * RecBole's SASRec), not the tanh approximation. */
nn_tensor *nn_gelu(nn_graph *g, nn_tensor *x);
nn_tensor *nn_sigmoid(nn_graph *g, nn_tensor *x);
nn_tensor *nn_tanh(nn_graph *g, nn_tensor *x);
nn_tensor *nn_exp(nn_graph *g, nn_tensor *x);
/* Over the last dim. */
nn_tensor *nn_softmax(nn_graph *g, nn_tensor *x);
nn_tensor *nn_log_softmax(nn_graph *g, nn_tensor *x);
/* Layer norm over the last dim D with affine gamma [D], beta [D]:
 * (x - mean) / sqrt(var + eps) * gamma + beta, var biased (as PyTorch). */
nn_tensor *nn_layernorm(nn_graph *g, nn_tensor *x, nn_tensor *gamma, nn_tensor *beta, float eps);
/* Inverted dropout with rate p from the graph's RNG: kept values are
 * scaled by 1/(1-p).  In evaluation mode, or with p == 0, returns x. */
nn_tensor *nn_dropout(nn_graph *g, nn_tensor *x, float p);
/* Rows idx[0..n) of table [V, D] -> [n, D].  When table is a sparse
 * parameter its gradient goes to the looked-up rows only, which are
 * marked touched.  Indices >= V are EMBER_EINVAL. */
nn_tensor *nn_embedding(nn_graph *g, nn_tensor *table, const uint32_t *idx, size_t n);
typedef enum { NN_BAG_SUM = 0, NN_BAG_MEAN = 1 } nn_bag_mode;
/* Bags of rows of table [V, D]: bag b is idx[offsets[b] .. offsets[b+1]),
 * offsets non-decreasing, offsets[0] == 0, offsets[n_bags] == n_idx.
 * -> [n_bags, D], the sum or the mean of the bag's rows (an empty bag
 * gives zeros). */
nn_tensor *nn_embedding_bag(nn_graph *g, nn_tensor *table, const uint32_t *idx, size_t n_idx,
                            const uint32_t *offsets, size_t n_bags, nn_bag_mode mode);
/* Index-select along the first dim: x [R, ...] -> [n, ...] (rows may
 * repeat; the gradient is scatter-added). */
nn_tensor *nn_gather(nn_graph *g, nn_tensor *x, const uint32_t *idx, size_t n);
/* Concatenation along the last dim of k (1..NN_MAX_SRC) tensors whose
 * other dims are equal. */
nn_tensor *nn_concat(nn_graph *g, nn_tensor *const *xs, int k);
/* Columns [start, start + len) of the last dim. */
nn_tensor *nn_slice(nn_graph *g, nn_tensor *x, int start, int len);
/* Splits the last dim into k parts of sizes[i] (summing to it): out[i]
 * are slices.  Returns a status (a builder of several nodes). */
int nn_split(nn_graph *g, nn_tensor *x, int k, const int *sizes, nn_tensor **out);
/* Same data, new shape of the same element count (no copy). */
nn_tensor *nn_reshape(nn_graph *g, nn_tensor *x, int ndim, const int *shape);
/* Swaps the last two dims (x must have at least 2). */
nn_tensor *nn_transpose(nn_graph *g, nn_tensor *x);
/* Sum and mean of all elements -> [1]. */
nn_tensor *nn_sum(nn_graph *g, nn_tensor *x);
nn_tensor *nn_mean(nn_graph *g, nn_tensor *x);
/* Sum and mean over the last dim, kept as size 1: [..., D] -> [..., 1]. */
nn_tensor *nn_sum_last(nn_graph *g, nn_tensor *x);
nn_tensor *nn_mean_last(nn_graph *g, nn_tensor *x);
/* out = mask ? value : x, mask (nonzero = fill) of shape mask_shape
 * broadcast into x's shape.  No gradient flows to filled positions. */
nn_tensor *nn_masked_fill(nn_graph *g, nn_tensor *x, const uint8_t *mask, int mask_ndim,
                          const int *mask_shape, float value);
/* Dot product of matching rows: a [..., D], b [..., D] -> [..., 1]. */
nn_tensor *nn_rowdot(nn_graph *g, nn_tensor *a, nn_tensor *b);

/* Scaled dot-product attention, multi-head, fused forward and backward.
 * q [B, T, D], k and v [B, S, D]; the heads are slices of the last dim
 * (head h owns columns [h*D/H, (h+1)*D/H)), so the usual split of
 * [B, T, D] into [B, H, T, D/H] costs no reshape or transpose; the output
 * [B, T, D] holds the heads side by side, ready for the output projection.
 * softmax(q k^T / sqrt(D/H)) v per head, with: causal (needs S == T): query
 * t sees keys 0..t; key_valid (NULL or [B, S], 0 = padding): masked keys
 * get weight 0.  A query that sees no key outputs zeros. */
nn_tensor *nn_attention(nn_graph *g, nn_tensor *q, nn_tensor *k, nn_tensor *v, int heads,
                        bool causal, const uint8_t *key_valid);
/* The attention weights an attention node saved (its softmax,
 * [B, H, T, S]), for tests and inspection; NULL for another op. */
const float *nn_attention_weights(const nn_tensor *attn);

/* A GRU layer (PyTorch's equations, gate order r, z, n) over a padded
 * batch: x [B, T, D], lengths[b] in 0..T (the valid prefix of sequence b),
 * w_ih [D, 3H], w_hh [H, 3H], b_ih [3H], b_hh [3H]; h_0 = 0.
 *   r = sigma(x W_ir + b_ir + h W_hr + b_hr)
 *   z = sigma(x W_iz + b_iz + h W_hz + b_hz)
 *   n = tanh(x W_in + b_in + r * (h W_hn + b_hn))
 *   h' = (1 - z) * n + z * h
 * -> [B, T, H], every hidden state; padded steps (t >= lengths[b]) output
 * zeros and change nothing: what x holds there (finite values) affects no
 * output and no gradient, and x's gradient there is zero.
 * Backward runs through time. */
nn_tensor *nn_gru(nn_graph *g, nn_tensor *x, const int32_t *lengths, nn_tensor *w_ih,
                  nn_tensor *w_hh, nn_tensor *b_ih, nn_tensor *b_hh);

/* ------------------------------------------------- losses (loss.c) -> [1] */

/* Mean over elements of BCE(sigmoid(logits), targets), computed stably. */
nn_tensor *nn_bce_logits(nn_graph *g, nn_tensor *logits, nn_tensor *targets);
/* Full softmax cross-entropy: logits [N, C], targets[N] in 0..C-1, or
 * NN_IGNORE to skip a row; the mean over the rows not skipped (0 when
 * all are). */
#define NN_IGNORE UINT32_MAX
nn_tensor *nn_softmax_ce(nn_graph *g, nn_tensor *logits, const uint32_t *targets);
/* Sampled softmax with the logQ correction (Yi et al., RecSys 2019):
 * logits [N, 1+K], column 0 the positive, columns 1..K sampled negatives;
 * logq holds log q of each column, either [1+K] (negatives shared by all
 * rows) or [N, 1+K]; loss = mean over valid rows of
 * -log softmax(logits - logq)[0].  A logq of +INFINITY drops a column (an
 * accidental hit of the positive).  valid: NULL (all rows) or [N], 0 skips
 * a row.  logq gets no gradient. */
nn_tensor *nn_sampled_softmax_ce(nn_graph *g, nn_tensor *logits, const float *logq,
                                 bool logq_per_row, const uint8_t *valid);
/* BPR (Rendle et al. 2009): mean of -log sigmoid(pos - neg). */
nn_tensor *nn_bpr(nn_graph *g, nn_tensor *pos, nn_tensor *neg);
/* Mean of (a - b)^2. */
nn_tensor *nn_mse(nn_graph *g, nn_tensor *a, nn_tensor *b);
/* KL(N(mu, exp(logvar)) || N(0, I)) of a VAE, summed over the latent
 * (last) dim and averaged over rows: mean_rows -0.5 sum(1 + lv - mu^2 - e^lv). */
nn_tensor *nn_kl_vae(nn_graph *g, nn_tensor *mu, nn_tensor *logvar);

/* ------------------------------------------------- parameters (graph.c) */

struct nn_param {
    char name[48];
    int ndim;
    int shape[NN_MAX_DIMS];
    size_t n;
    size_t rows, cols;     /* shape[0] and n / shape[0] */
    float *value;          /* n, 64-byte aligned */
    float *grad;           /* n, zero between steps */
    float *m, *v;          /* optimizer state (NULL until an optimizer needs it) */
    bool sparse;           /* row-sparse gradients (embedding tables) */
    bool frozen;           /* no gradient, no update */
    bool dense_touched;    /* a dense op wrote its gradient this step */
    uint8_t *row_touched;  /* sparse: rows flags */
    uint32_t *touched;     /* sparse: the touched rows, in order of touch */
    size_t n_touched;
};

/* The parameters of a model; the list owns them. */
typedef struct {
    nn_param **p;
    size_t n, cap;
} nn_params;

void nn_params_init(nn_params *ps);
void nn_params_free(nn_params *ps);
/* A new zero parameter; sparse for an embedding table.  NULL on failure. */
nn_param *nn_params_add(nn_params *ps, const char *name, int ndim, const int *shape, bool sparse);
nn_param *nn_params_find(const nn_params *ps, const char *name);
size_t nn_params_count(const nn_params *ps); /* total scalars */
/* Zeroes every gradient and clears the touched rows. */
void nn_params_zero_grad(nn_params *ps);
void nn_param_zero_grad(nn_param *p);
/* Marks row r of a sparse parameter touched (backward of lookups). */
void nn_param_touch_row(nn_param *p, uint32_t r);

/* ------------------------------------------------ initializers (init.c) */

/* Xavier/Glorot uniform: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)),
 * fan_in = rows, fan_out = cols of the parameter seen as a [rows, cols]
 * matrix (weights are [in, out] here: y = x W). */
void nn_init_xavier_uniform(nn_param *p, ember_rng *rng, float gain);
/* N(mean, std^2). */
void nn_init_normal(nn_param *p, ember_rng *rng, float mean, float std);
/* U(lo, hi). */
void nn_init_uniform(nn_param *p, ember_rng *rng, float lo, float hi);
void nn_init_zeros(nn_param *p);
void nn_init_const(nn_param *p, float value);
/* The same on a raw array seen as [rows, cols]. */
void nn_fill_xavier_uniform(float *x, size_t rows, size_t cols, ember_rng *rng, float gain);
void nn_fill_normal(float *x, size_t n, ember_rng *rng, float mean, float std);

/* ------------------------------------------------- optimizers (optim.c) */

typedef enum { NN_SGD = 0, NN_ADAGRAD, NN_ADAM, NN_ADAMW } nn_optim_kind;

typedef struct {
    nn_optim_kind kind;
    float lr;            /* 1e-3 */
    float momentum;      /* SGD: 0 (plain SGD); heavy ball v = mu v + g */
    float beta1, beta2;  /* Adam: 0.9, 0.999 */
    float eps;           /* Adam 1e-8, Adagrad 1e-10 */
    float weight_decay;  /* 0; L2 added to the gradient (SGD, Adagrad, Adam),
                            decoupled p -= lr wd p (AdamW) */
    float clip_norm;     /* 0 = off; else the global gradient norm is clipped
                            to clip_norm before the update */
    float adagrad_init;  /* Adagrad initial accumulator: 0 */
} nn_optim_opts;

typedef struct {
    nn_optim_opts o;
    long t;              /* steps taken */
    float last_norm;     /* global gradient norm of the last step (before clipping) */
} nn_optim;

/* Defaults for a kind (values in the comments above). */
void nn_optim_opts_default(nn_optim_opts *o, nn_optim_kind kind);
/* Validates the options, sets the step count to 0 and allocates (or
 * resets to its initial value) the state of every parameter in ps; call
 * it again after adding parameters. */
int nn_optim_init(nn_optim *opt, const nn_optim_opts *o, nn_params *ps);
/* One update of every parameter with learning rate lr (< 0: opts lr),
 * then zeroes the gradients it used.  Sparse parameters not densely
 * touched are updated lazily: only touched rows change.  Lazy Adam is
 * PyTorch's SparseAdam / TF's LazyAdam: a touched row updates its m and v
 * with its gradient and takes a step bias-corrected with the global step
 * count t; an untouched row keeps value, m and v exactly (no decay of its
 * moments, no weight decay).  L2 and AdamW's decay apply to touched rows
 * only.  Clipping uses the norm over dense gradients plus touched rows. */
int nn_optim_step(nn_optim *opt, nn_params *ps, float lr);
/* The global L2 norm of the gradients (dense, and touched rows). */
double nn_grad_norm(const nn_params *ps);
/* Frees the optimizer state held in the parameters. */
void nn_optim_release(nn_params *ps);

/* Learning-rate schedules: the rate at step t (0-based). */
typedef enum { NN_LR_CONST = 0, NN_LR_STEP, NN_LR_EXP, NN_LR_COSINE } nn_lr_kind;
typedef struct {
    nn_lr_kind kind;
    float base;          /* the rate */
    float gamma;         /* STEP: base * gamma^(t / step_size); EXP: base * gamma^t */
    long step_size;
    long warmup;         /* COSINE: linear from base/warmup up to base over warmup
                            steps, then cosine from base down to min_lr at total */
    long total;
    float min_lr;
} nn_lr_schedule;
float nn_lr_at(const nn_lr_schedule *s, long t);

/* ---------------------------------------- gradient check (gradcheck.c) */

/* Builds a forward pass on g from parameters the check perturbs and
 * returns its output node (any shape), or NULL on failure. */
typedef nn_tensor *(*nn_build_fn)(nn_graph *g, void *ctx);

typedef struct {
    float eps;          /* central difference step: 1e-3 */
    float atol, rtol;   /* pass when |analytic - numeric| <= atol + rtol * max(|a|, |n|):
                           5e-4 and 5e-3 */
    size_t max_checks;  /* per parameter, spread evenly (0: every element) */
    uint64_t seed;      /* the projection weights and the graph RNG */
} nn_gradcheck_opts;

typedef struct {
    size_t checked;
    size_t failed;
    double max_abs_err;
    double max_rel_err;
    const char *worst_param; /* name of the parameter of the worst element */
    size_t worst_index;
    double worst_analytic, worst_numeric;
} nn_gradcheck_report;

void nn_gradcheck_opts_default(nn_gradcheck_opts *o);
/* Finite-difference check of d f / d params, f = sum_i w_i out_i with
 * fixed random weights w in [-1, 1] (f accumulated in double); the graph
 * is reset and re-seeded before each build, so dropout masks repeat.
 * Returns a status; the verdict is in the report (failed == 0). */
int nn_gradcheck(nn_graph *g, nn_build_fn build, void *ctx, nn_param *const *params,
                 size_t n_params, const nn_gradcheck_opts *o, nn_gradcheck_report *rep);

#endif
