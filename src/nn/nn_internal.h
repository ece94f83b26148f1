/*
 * nn_internal.h — what the op files share with graph.c: making a node,
 * running its forward, failing the graph, and the forward/backward pair of
 * every op (listed in the table nn_ops[] in graph.c).
 */
#ifndef EMBER_NN_INTERNAL_H
#define EMBER_NN_INTERNAL_H

#include "nn/nn.h"

/* Loops shorter than this run on one thread (the fork costs more). */
#define NN_PAR_MIN 32768

/* Fails the graph: sets the message and the sticky status, returns status. */
int nn_fail(nn_graph *g, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Whether every input is non-NULL (and g too); when one is NULL and the
 * graph has not failed yet, fails it with "<who>: NULL input". */
bool nn_inputs_ok(nn_graph *g, const char *who, nn_tensor *const *xs, int n);
/* A new node of op with this shape and sources, its data allocated (not
 * initialised) and requires_grad set from the sources; NULL on failure.
 * The node is not on the tape until nn_node_run(). */
nn_tensor *nn_node_new(nn_graph *g, nn_op op, int ndim, const int *shape, nn_tensor *const *src,
                       int nsrc);
/* The same without allocating data (ops whose data aliases a source). */
nn_tensor *nn_node_new_nodata(nn_graph *g, nn_op op, int ndim, const int *shape,
                              nn_tensor *const *src, int nsrc);
/* Runs the node's forward, appends it to the tape and checks its output
 * when asked; returns t, or NULL with the graph failed. */
nn_tensor *nn_node_run(nn_graph *g, nn_tensor *t);
/* Copies n items of size bytes into the arena; NULL (graph failed) on
 * failure. */
void *nn_graph_copy(nn_graph *g, const void *src, size_t n, size_t size);
/* Validates a shape: 1..4 dims each >= 1, element count without overflow. */
int nn_check_shape(nn_graph *g, const char *who, int ndim, const int *shape, size_t *n);
/* "[2,3,4]" for messages (ring of static buffers, 4 deep). */
const char *nn_shape_str(int ndim, const int *shape);
/* Rows of a tensor seen as [rows, last dim]. */
static inline size_t nn_rows(const nn_tensor *t)
{
    return t->n / (size_t)t->shape[t->ndim - 1];
}
static inline int nn_last(const nn_tensor *t)
{
    return t->shape[t->ndim - 1];
}
/* The graph's RNG (dropout masks). */
ember_rng *nn_graph_rng(nn_graph *g);
/* Threads a parallel region will use (for per-thread scratch). */
int nn_max_threads(void);

/* Forward and backward of every op (the table in graph.c lists them). */
int nn_matmul_forward(nn_graph *g, nn_tensor *t);
int nn_matmul_backward(nn_graph *g, nn_tensor *t);
int nn_binary_forward(nn_graph *g, nn_tensor *t); /* add, sub, mul, div */
int nn_binary_backward(nn_graph *g, nn_tensor *t);
int nn_scale_forward(nn_graph *g, nn_tensor *t);
int nn_scale_backward(nn_graph *g, nn_tensor *t);
int nn_relu_forward(nn_graph *g, nn_tensor *t);
int nn_relu_backward(nn_graph *g, nn_tensor *t);
int nn_gelu_forward(nn_graph *g, nn_tensor *t);
int nn_gelu_backward(nn_graph *g, nn_tensor *t);
int nn_sigmoid_forward(nn_graph *g, nn_tensor *t);
int nn_sigmoid_backward(nn_graph *g, nn_tensor *t);
int nn_tanh_forward(nn_graph *g, nn_tensor *t);
int nn_tanh_backward(nn_graph *g, nn_tensor *t);
int nn_exp_forward(nn_graph *g, nn_tensor *t);
int nn_exp_backward(nn_graph *g, nn_tensor *t);
int nn_gather_forward(nn_graph *g, nn_tensor *t); /* also embedding */
int nn_gather_backward(nn_graph *g, nn_tensor *t);
int nn_embedding_backward(nn_graph *g, nn_tensor *t);
int nn_concat_forward(nn_graph *g, nn_tensor *t);
int nn_concat_backward(nn_graph *g, nn_tensor *t);
int nn_slice_forward(nn_graph *g, nn_tensor *t);
int nn_slice_backward(nn_graph *g, nn_tensor *t);
int nn_reshape_forward(nn_graph *g, nn_tensor *t);
int nn_reshape_backward(nn_graph *g, nn_tensor *t);
int nn_transpose_forward(nn_graph *g, nn_tensor *t);
int nn_transpose_backward(nn_graph *g, nn_tensor *t);
int nn_sum_forward(nn_graph *g, nn_tensor *t); /* sum and mean */
int nn_sum_backward(nn_graph *g, nn_tensor *t);
int nn_sum_last_forward(nn_graph *g, nn_tensor *t); /* sum_last and mean_last */
int nn_sum_last_backward(nn_graph *g, nn_tensor *t);
int nn_masked_fill_forward(nn_graph *g, nn_tensor *t);
int nn_masked_fill_backward(nn_graph *g, nn_tensor *t);
int nn_rowdot_forward(nn_graph *g, nn_tensor *t);
int nn_rowdot_backward(nn_graph *g, nn_tensor *t);

int nn_softmax_forward(nn_graph *g, nn_tensor *t);
int nn_softmax_backward(nn_graph *g, nn_tensor *t);
int nn_log_softmax_forward(nn_graph *g, nn_tensor *t);
int nn_log_softmax_backward(nn_graph *g, nn_tensor *t);
int nn_layernorm_forward(nn_graph *g, nn_tensor *t);
int nn_layernorm_backward(nn_graph *g, nn_tensor *t);
int nn_dropout_forward(nn_graph *g, nn_tensor *t);
int nn_dropout_backward(nn_graph *g, nn_tensor *t);
int nn_embedding_bag_forward(nn_graph *g, nn_tensor *t);
int nn_embedding_bag_backward(nn_graph *g, nn_tensor *t);

int nn_attention_forward(nn_graph *g, nn_tensor *t);
int nn_attention_backward(nn_graph *g, nn_tensor *t);
int nn_gru_forward(nn_graph *g, nn_tensor *t);
int nn_gru_backward(nn_graph *g, nn_tensor *t);

int nn_bce_logits_forward(nn_graph *g, nn_tensor *t);
int nn_bce_logits_backward(nn_graph *g, nn_tensor *t);
int nn_softmax_ce_forward(nn_graph *g, nn_tensor *t);
int nn_softmax_ce_backward(nn_graph *g, nn_tensor *t);
int nn_sampled_softmax_ce_forward(nn_graph *g, nn_tensor *t);
int nn_sampled_softmax_ce_backward(nn_graph *g, nn_tensor *t);
int nn_bpr_forward(nn_graph *g, nn_tensor *t);
int nn_bpr_backward(nn_graph *g, nn_tensor *t);
int nn_mse_forward(nn_graph *g, nn_tensor *t);
int nn_mse_backward(nn_graph *g, nn_tensor *t);
int nn_kl_vae_forward(nn_graph *g, nn_tensor *t);
int nn_kl_vae_backward(nn_graph *g, nn_tensor *t);

/* C = alpha op(A) op(B) + beta C, row-major, as cblas_sgemm, with the
 * rows (or columns) of C split over the OpenMP threads when OpenBLAS
 * runs on one thread (gemm.c). */
void nn_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a, int lda,
             const float *b, int ldb, float beta, float *c, int ldc);

#endif
