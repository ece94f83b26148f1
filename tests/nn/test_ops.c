/* test_ops.c — forward values of the ops on hand-computed examples,
 * broadcasting, gradients that accumulate, the masks of attention, the GRU
 * over variable lengths, sparse embedding gradients, bad shapes (an error
 * with a message, never a crash) and the NaN/Inf check. */
#include "testutil.h"

#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOL 1e-5f

static nn_graph *G;

static int setup(void **state)
{
    G = nn_graph_new(0);
    return G ? 0 : -1;
}

static int teardown(void **state)
{
    nn_graph_free(G);
    return 0;
}

static nn_graph *fresh(void)
{
    nn_graph_reset(G);
    nn_graph_set_training(G, true);
    nn_graph_set_check(G, false);
    ember_clear_error();
    return G;
}

static nn_tensor *in(nn_graph *g, int ndim, const int *shape, const float *data, bool grad)
{
    nn_tensor *t = nn_input(g, ndim, shape, data, grad);
    assert_non_null(t);
    return t;
}

static void assert_floats(const float *got, const float *want, size_t n, float tol)
{
    for (size_t i = 0; i < n; i++) {
        if (fabsf(got[i] - want[i]) > tol)
            print_error("element %zu: got %.7g, want %.7g\n", i, (double)got[i], (double)want[i]);
        assert_true(fabsf(got[i] - want[i]) <= tol);
    }
}

/* --------------------------------------------------------- values */

static void test_matmul_hand_example(void **state)
{
    nn_graph *g = fresh();
    float a[6] = {1, 2, 3, 4, 5, 6};  /* [2,3] */
    float b[6] = {7, 8, 9, 10, 11, 12}; /* [3,2] */
    nn_tensor *A = in(g, 2, (int[]){2, 3}, a, false), *Bm = in(g, 2, (int[]){3, 2}, b, false);
    nn_tensor *c = nn_matmul(g, A, Bm, false, false);
    assert_non_null(c);
    assert_int_equal(c->shape[0], 2);
    assert_int_equal(c->shape[1], 2);
    assert_floats(c->data, (float[]){58, 64, 139, 154}, 4, TOL);
    /* a^T [3,2] as stored [2,3] transposed, times b^T: [3,2] x [2,3] */
    nn_tensor *d = nn_matmul(g, A, Bm, true, true);
    assert_non_null(d);
    assert_int_equal(d->shape[0], 3);
    assert_int_equal(d->shape[1], 3);
    /* a^T = [[1,4],[2,5],[3,6]], b^T = [[7,9,11],[8,10,12]] */
    assert_floats(d->data, (float[]){39, 49, 59, 54, 68, 82, 69, 87, 105}, 9, TOL);
}

static void test_batched_matmul_multiplies_each_batch(void **state)
{
    nn_graph *g = fresh();
    float a[8] = {1, 0, 0, 1, 2, 0, 0, 2}; /* [2,2,2]: I, 2I */
    float b[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    nn_tensor *c = nn_matmul(g, in(g, 3, (int[]){2, 2, 2}, a, false),
                             in(g, 3, (int[]){2, 2, 2}, b, false), false, false);
    assert_non_null(c);
    assert_floats(c->data, (float[]){1, 2, 3, 4, 10, 12, 14, 16}, 8, TOL);
}

static void test_add_broadcasts_trailing_operand_over_rows(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *y = nn_add(g, in(g, 2, (int[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6}, false),
                          in(g, 1, (int[]){3}, (float[]){10, 20, 30}, false));
    assert_non_null(y);
    assert_int_equal(y->ndim, 2);
    assert_floats(y->data, (float[]){11, 22, 33, 14, 25, 36}, 6, TOL);
}

static void test_mul_broadcasts_one_value_per_row(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *y = nn_mul(g, in(g, 2, (int[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6}, false),
                          in(g, 2, (int[]){2, 1}, (float[]){2, -1}, false));
    assert_non_null(y);
    assert_floats(y->data, (float[]){2, 4, 6, -4, -5, -6}, 6, TOL);
}

static void test_broadcast_expands_both_operands(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *y = nn_sub(g, in(g, 2, (int[]){2, 1}, (float[]){10, 20}, false),
                          in(g, 2, (int[]){1, 3}, (float[]){1, 2, 3}, false));
    assert_non_null(y);
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->shape[1], 3);
    assert_floats(y->data, (float[]){9, 8, 7, 19, 18, 17}, 6, TOL);
}

static void test_broadcast_gradient_sums_over_repeats(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *x = in(g, 2, (int[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6}, true);
    nn_tensor *b = in(g, 1, (int[]){3}, (float[]){1, 1, 2}, true);
    nn_tensor *loss = nn_sum(g, nn_div(g, x, b));
    assert_int_equal(nn_backward(g, loss), EMBER_OK);
    /* d/dx = 1/b per column; d/db_j = -sum_i x_ij / b_j^2 */
    assert_floats(x->grad, (float[]){1, 1, 0.5f, 1, 1, 0.5f}, 6, TOL);
    assert_floats(b->grad, (float[]){-5, -7, -9.0f / 4}, 3, TOL);
}

static void test_gradient_accumulates_when_a_tensor_is_used_twice(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *x = in(g, 1, (int[]){3}, (float[]){1, -2, 3}, true);
    /* y = sum(x * x + x): dy/dx = 2x + 1 */
    nn_tensor *loss = nn_sum(g, nn_add(g, nn_mul(g, x, x), x));
    assert_int_equal(nn_backward(g, loss), EMBER_OK);
    assert_floats(x->grad, (float[]){3, -3, 7}, 3, TOL);
    assert_float_equal(loss->data[0], 1 + 4 + 9 + 2, TOL);
}

static void test_activations_hand_values(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *x = in(g, 1, (int[]){3}, (float[]){-1, 0, 1}, false);
    assert_floats(nn_relu(g, x)->data, (float[]){0, 0, 1}, 3, TOL);
    /* exact GELU: x Phi(x) */
    assert_floats(nn_gelu(g, x)->data, (float[]){-0.15865525f, 0, 0.84134475f}, 3, 1e-6f);
    assert_floats(nn_sigmoid(g, x)->data, (float[]){0.26894142f, 0.5f, 0.73105858f}, 3, 1e-6f);
    assert_floats(nn_tanh(g, x)->data, (float[]){-0.76159416f, 0, 0.76159416f}, 3, 1e-6f);
    assert_floats(nn_exp(g, x)->data, (float[]){0.36787944f, 1, 2.7182818f}, 3, 1e-6f);
    assert_floats(nn_scale(g, x, -2.0f)->data, (float[]){2, 0, -2}, 3, 0);
}

static void test_softmax_rows_and_log_softmax_agree(void **state)
{
    nn_graph *g = fresh();
    float v[6] = {1, 2, 3, 1000, 1000, 1000}; /* second row: large, equal */
    nn_tensor *x = in(g, 2, (int[]){2, 3}, v, false);
    nn_tensor *s = nn_softmax(g, x), *l = nn_log_softmax(g, x);
    assert_non_null(s);
    assert_non_null(l);
    float e1 = expf(1), e2 = expf(2), e3 = expf(3), z = e1 + e2 + e3;
    assert_floats(s->data, (float[]){e1 / z, e2 / z, e3 / z, 1.f / 3, 1.f / 3, 1.f / 3}, 6, 1e-6f);
    for (int i = 0; i < 6; i++)
        assert_float_equal(expf(l->data[i]), s->data[i], 1e-6f);
}

static void test_layernorm_normalizes_each_row(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *x = in(g, 2, (int[]){2, 4}, (float[]){1, 2, 3, 4, -1, -1, 1, 1}, false);
    nn_tensor *gam = in(g, 1, (int[]){4}, (float[]){1, 1, 2, 2}, false);
    nn_tensor *bet = in(g, 1, (int[]){4}, (float[]){0, 0, 0, 1}, false);
    nn_tensor *y = nn_layernorm(g, x, gam, bet, 1e-5f);
    assert_non_null(y);
    /* row 0: mean 2.5, var 1.25; row 1: mean 0, var 1 */
    float r = 1.0f / sqrtf(1.25f + 1e-5f), r1 = 1.0f / sqrtf(1.0f + 1e-5f);
    assert_floats(y->data,
                  (float[]){-1.5f * r, -0.5f * r, 2 * 0.5f * r, 2 * 1.5f * r + 1, -r1, -r1, 2 * r1,
                            2 * r1 + 1},
                  8, 1e-5f);
}

static void test_dropout_is_identity_in_eval_mode(void **state)
{
    nn_graph *g = fresh();
    nn_graph_set_training(g, false);
    nn_tensor *x = in(g, 1, (int[]){4}, (float[]){1, 2, 3, 4}, true);
    assert_ptr_equal(nn_dropout(g, x, 0.5f), x);
    nn_graph_set_training(g, true);
    assert_ptr_equal(nn_dropout(g, x, 0.0f), x);
}

static void test_dropout_drops_about_p_and_scales_the_rest(void **state)
{
    nn_graph *g = fresh();
    nn_graph_seed(g, 99);
    enum { N = 20000 };
    float *ones = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++)
        ones[i] = 1.0f;
    nn_tensor *y = nn_dropout(g, in(g, 1, (int[]){N}, ones, false), 0.25f);
    assert_non_null(y);
    int zeros = 0;
    for (int i = 0; i < N; i++) {
        if (y->data[i] == 0.0f)
            zeros++;
        else
            assert_float_equal(y->data[i], 1.0f / 0.75f, 1e-6f);
    }
    assert_true(zeros > N * 0.23 && zeros < N * 0.27);
    /* the same seed draws the same mask */
    nn_graph_seed(g, 99);
    nn_tensor *y2 = nn_dropout(g, in(g, 1, (int[]){N}, ones, false), 0.25f);
    assert_memory_equal(y->data, y2->data, N * sizeof(float));
    free(ones);
}

static void test_concat_split_and_slice_values(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *a = in(g, 2, (int[]){2, 1}, (float[]){1, 2}, false);
    nn_tensor *b = in(g, 2, (int[]){2, 2}, (float[]){3, 4, 5, 6}, false);
    nn_tensor *c = nn_concat(g, (nn_tensor *[]){a, b}, 2);
    assert_non_null(c);
    assert_int_equal(c->shape[1], 3);
    assert_floats(c->data, (float[]){1, 3, 4, 2, 5, 6}, 6, 0);
    nn_tensor *parts[2];
    assert_int_equal(nn_split(g, c, 2, (int[]){2, 1}, parts), EMBER_OK);
    assert_floats(parts[0]->data, (float[]){1, 3, 2, 5}, 4, 0);
    assert_floats(parts[1]->data, (float[]){4, 6}, 2, 0);
}

static void test_reshape_shares_data_and_transpose_swaps(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *x = in(g, 2, (int[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6}, false);
    nn_tensor *r = nn_reshape(g, x, 3, (int[]){3, 2, 1});
    assert_non_null(r);
    assert_ptr_equal(r->data, x->data);
    nn_tensor *t = nn_transpose(g, x);
    assert_int_equal(t->shape[0], 3);
    assert_floats(t->data, (float[]){1, 4, 2, 5, 3, 6}, 6, 0);
}

static void test_reductions_hand_values(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *x = in(g, 2, (int[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6}, false);
    assert_float_equal(nn_sum(g, x)->data[0], 21, 0);
    assert_float_equal(nn_mean(g, x)->data[0], 3.5f, 0);
    nn_tensor *s = nn_sum_last(g, x), *m = nn_mean_last(g, x);
    assert_int_equal(s->ndim, 2);
    assert_int_equal(s->shape[1], 1);
    assert_floats(s->data, (float[]){6, 15}, 2, 0);
    assert_floats(m->data, (float[]){2, 5}, 2, TOL);
    nn_tensor *d = nn_rowdot(g, x, x);
    assert_floats(d->data, (float[]){14, 77}, 2, 0);
}

static void test_masked_fill_broadcasts_and_blocks_gradient(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *x = in(g, 2, (int[]){2, 3}, (float[]){1, 2, 3, 4, 5, 6}, true);
    nn_tensor *y = nn_masked_fill(g, x, (uint8_t[]){0, 1}, 2, (int[]){2, 1}, -9.0f);
    assert_non_null(y);
    assert_floats(y->data, (float[]){1, 2, 3, -9, -9, -9}, 6, 0);
    assert_int_equal(nn_backward(g, nn_sum(g, y)), EMBER_OK);
    assert_floats(x->grad, (float[]){1, 1, 1, 0, 0, 0}, 6, 0);
}

/* ------------------------------------------------------- embeddings */

static void test_embedding_sparse_gradient_touches_only_looked_up_rows(void **state)
{
    nn_graph *g = fresh();
    nn_params ps;
    nn_params_init(&ps);
    nn_param *p = nn_params_add(&ps, "emb", 2, (int[]){10, 4}, true);
    assert_non_null(p);
    for (size_t i = 0; i < p->n; i++)
        p->value[i] = (float)i;
    nn_tensor *e = nn_embedding(g, nn_param_node(g, p), (uint32_t[]){3, 7, 3}, 3);
    assert_non_null(e);
    assert_floats(e->data + 4, (float[]){28, 29, 30, 31}, 4, 0);
    assert_int_equal(nn_backward(g, nn_sum(g, e)), EMBER_OK);
    assert_int_equal(p->n_touched, 2);
    assert_int_equal(p->touched[0], 3);
    assert_int_equal(p->touched[1], 7);
    assert_false(p->dense_touched);
    for (size_t r = 0; r < 10; r++) {
        float want = r == 3 ? 2.0f : r == 7 ? 1.0f : 0.0f;
        for (size_t j = 0; j < 4; j++)
            assert_float_equal(p->grad[r * 4 + j], want, 0);
        assert_int_equal(p->row_touched[r], r == 3 || r == 7);
    }
    nn_param_zero_grad(p);
    assert_int_equal(p->n_touched, 0);
    for (size_t i = 0; i < p->n; i++)
        assert_float_equal(p->grad[i], 0, 0);
    nn_params_free(&ps);
}

static void test_sparse_table_used_by_a_dense_op_is_marked_dense(void **state)
{
    nn_graph *g = fresh();
    nn_params ps;
    nn_params_init(&ps);
    nn_param *p = nn_params_add(&ps, "emb", 2, (int[]){5, 2}, true);
    nn_tensor *t = nn_param_node(g, p);
    nn_tensor *h = nn_embedding(g, t, (uint32_t[]){1}, 1);
    /* tied output layer: scores of every row */
    nn_tensor *s = nn_matmul(g, h, t, false, true);
    assert_int_equal(nn_backward(g, nn_sum(g, s)), EMBER_OK);
    assert_true(p->dense_touched);
    nn_params_free(&ps);
}

static void test_embedding_bag_sum_mean_and_empty_bag(void **state)
{
    nn_graph *g = fresh();
    nn_params ps;
    nn_params_init(&ps);
    nn_param *p = nn_params_add(&ps, "emb", 2, (int[]){4, 2}, true);
    for (size_t i = 0; i < p->n; i++)
        p->value[i] = (float)i; /* row r = (2r, 2r+1) */
    uint32_t idx[4] = {0, 3, 3, 1}, off[4] = {0, 2, 2, 4};
    nn_tensor *s = nn_embedding_bag(g, nn_param_node(g, p), idx, 4, off, 3, NN_BAG_SUM);
    nn_tensor *m = nn_embedding_bag(g, nn_param_node(g, p), idx, 4, off, 3, NN_BAG_MEAN);
    assert_non_null(s);
    assert_non_null(m);
    assert_floats(s->data, (float[]){6, 8, 0, 0, 8, 10}, 6, 0);
    assert_floats(m->data, (float[]){3, 4, 0, 0, 4, 5}, 6, 0);
    assert_int_equal(nn_backward(g, nn_sum(g, m)), EMBER_OK);
    /* mean bags: each row gets 1/len per occurrence */
    assert_floats(p->grad, (float[]){0.5f, 0.5f, 0.5f, 0.5f, 0, 0, 1, 1}, 8, 0);
    assert_int_equal(p->n_touched, 3);
    assert_int_equal(p->row_touched[2], 0);
    nn_params_free(&ps);
}

static void test_gather_scatters_gradient_of_repeated_rows(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *x = in(g, 2, (int[]){3, 2}, (float[]){1, 2, 3, 4, 5, 6}, true);
    nn_tensor *y = nn_gather(g, x, (uint32_t[]){2, 0, 2}, 3);
    assert_floats(y->data, (float[]){5, 6, 1, 2, 5, 6}, 6, 0);
    assert_int_equal(nn_backward(g, nn_sum(g, y)), EMBER_OK);
    assert_floats(x->grad, (float[]){1, 1, 0, 0, 2, 2}, 6, 0);
}

/* -------------------------------------------------------- attention */

static void fill_seq(float *x, size_t n, uint64_t seed)
{
    ember_rng r;
    ember_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(2.0 * ember_rng_uniform(&r) - 1.0);
}

static void test_attention_masked_key_gets_zero_weight_and_gradient(void **state)
{
    nn_graph *g = fresh();
    enum { B = 2, T = 4, D = 6 };
    float q[B * T * D], k[B * T * D], v[B * T * D];
    fill_seq(q, B * T * D, 1);
    fill_seq(k, B * T * D, 2);
    fill_seq(v, B * T * D, 3);
    uint8_t valid[B * T] = {1, 1, 0, 1, 1, 1, 1, 0}; /* key 2 of row 0, key 3 of row 1 */
    nn_tensor *Q = in(g, 3, (int[]){B, T, D}, q, true), *K = in(g, 3, (int[]){B, T, D}, k, true),
              *V = in(g, 3, (int[]){B, T, D}, v, true);
    nn_tensor *o = nn_attention(g, Q, K, V, 2, false, valid);
    assert_non_null(o);
    const float *P = nn_attention_weights(o);
    assert_non_null(P);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < T; i++) {
                float sum = 0;
                for (int j = 0; j < T; j++) {
                    float w = P[((b * 2 + h) * T + i) * T + j];
                    if (!valid[b * T + j])
                        assert_float_equal(w, 0.0f, 0);
                    sum += w;
                }
                assert_float_equal(sum, 1.0f, 1e-5f);
            }
    assert_int_equal(nn_backward(g, nn_sum(g, nn_mul(g, o, o))), EMBER_OK);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < T; j++)
            for (int d = 0; d < D; d++) {
                size_t e = ((size_t)b * T + j) * D + d;
                if (!valid[b * T + j]) {
                    assert_float_equal(K->grad[e], 0.0f, 0);
                    assert_float_equal(V->grad[e], 0.0f, 0);
                }
            }
    /* and a valid key does get a gradient */
    assert_true(fabsf(V->grad[0]) > 0);
}

static void test_attention_causal_mask_hides_the_future(void **state)
{
    nn_graph *g = fresh();
    enum { T = 5, D = 4 };
    float q[T * D], k[T * D], v[T * D];
    fill_seq(q, T * D, 4);
    fill_seq(k, T * D, 5);
    fill_seq(v, T * D, 6);
    nn_tensor *V = in(g, 3, (int[]){1, T, D}, v, true);
    nn_tensor *o = nn_attention(g, in(g, 3, (int[]){1, T, D}, q, false),
                                in(g, 3, (int[]){1, T, D}, k, false), V, 1, true, NULL);
    assert_non_null(o);
    const float *P = nn_attention_weights(o);
    for (int i = 0; i < T; i++)
        for (int j = i + 1; j < T; j++)
            assert_float_equal(P[i * T + j], 0.0f, 0);
    /* query 0 sees only key 0: its output is v_0 */
    assert_floats(o->data, v, D, 1e-6f);
    /* a loss on query 0 alone sends no gradient to later values */
    float seed[T * D] = {0};
    for (int d = 0; d < D; d++)
        seed[d] = 1.0f;
    assert_int_equal(nn_backward_seeded(g, o, seed), EMBER_OK);
    for (int e = D; e < T * D; e++)
        assert_float_equal(V->grad[e], 0.0f, 0);
}

static void test_attention_query_that_sees_no_key_outputs_zeros(void **state)
{
    nn_graph *g = fresh();
    float x[2 * 2] = {1, 2, 3, 4};
    nn_tensor *X = in(g, 3, (int[]){1, 2, 2}, x, true);
    /* key 0 is padding: causal query 0 sees nothing */
    nn_tensor *o = nn_attention(g, X, X, X, 1, true, (uint8_t[]){0, 1});
    assert_non_null(o);
    assert_floats(o->data, (float[]){0, 0, 3, 4}, 4, 1e-6f);
    assert_int_equal(nn_backward(g, nn_sum(g, o)), EMBER_OK);
    for (int i = 0; i < 4; i++)
        assert_true(isfinite(X->grad[i]));
}

static void test_attention_heads_are_column_slices(void **state)
{
    /* two heads of width 2 give the same result as two one-head calls
     * on the column halves */
    nn_graph *g = fresh();
    enum { B = 2, T = 3, D = 4 };
    float q[B * T * D], k[B * T * D], v[B * T * D];
    fill_seq(q, B * T * D, 7);
    fill_seq(k, B * T * D, 8);
    fill_seq(v, B * T * D, 9);
    int sh[3] = {B, T, D};
    nn_tensor *Q = in(g, 3, sh, q, false), *K = in(g, 3, sh, k, false), *V = in(g, 3, sh, v, false);
    nn_tensor *both = nn_attention(g, Q, K, V, 2, true, NULL);
    for (int h = 0; h < 2; h++) {
        nn_tensor *one = nn_attention(g, nn_slice(g, Q, 2 * h, 2), nn_slice(g, K, 2 * h, 2),
                                      nn_slice(g, V, 2 * h, 2), 1, true, NULL);
        assert_non_null(one);
        for (int r = 0; r < B * T; r++)
            assert_floats(both->data + r * D + 2 * h, one->data + r * 2, 2, 1e-6f);
    }
}

/* -------------------------------------------------------------- GRU */

typedef struct {
    float w_ih[2 * 9], w_hh[3 * 9], b_ih[9], b_hh[9];
} gru_w;

static nn_tensor *gru_run(nn_graph *g, const gru_w *w, const float *x, int B, int T,
                          const int32_t *len, nn_tensor **X, nn_tensor **Wih)
{
    *X = in(g, 3, (int[]){B, T, 2}, x, true);
    *Wih = in(g, 2, (int[]){2, 9}, w->w_ih, true);
    return nn_gru(g, *X, len, *Wih, in(g, 2, (int[]){3, 9}, w->w_hh, false),
                  in(g, 1, (int[]){9}, w->b_ih, false), in(g, 1, (int[]){9}, w->b_hh, false));
}

static void test_gru_padded_steps_do_not_affect_the_result(void **state)
{
    nn_graph *g = fresh();
    gru_w w;
    fill_seq(w.w_ih, 18, 11);
    fill_seq(w.w_hh, 27, 12);
    fill_seq(w.b_ih, 9, 13);
    fill_seq(w.b_hh, 9, 14);
    /* sequence of length 2, alone (T = 2) and padded to T = 4 with junk */
    float alone[2 * 2] = {0.5f, -1.0f, 0.25f, 0.75f};
    float padded[4 * 2] = {0.5f, -1.0f, 0.25f, 0.75f, 9.0f, -7.0f, 3.0f, 5.0f};
    float seed2[2 * 3], seed4[4 * 3] = {0};
    fill_seq(seed2, 6, 15);
    memcpy(seed4, seed2, sizeof seed2);
    nn_tensor *Xa, *Wa, *Xp, *Wp;
    nn_tensor *ha = gru_run(g, &w, alone, 1, 2, (int32_t[]){2}, &Xa, &Wa);
    assert_non_null(ha);
    assert_int_equal(nn_backward_seeded(g, ha, seed2), EMBER_OK);
    float ha_out[6], xa_grad[4], wa_grad[18];
    memcpy(ha_out, ha->data, sizeof ha_out);
    memcpy(xa_grad, Xa->grad, sizeof xa_grad);
    memcpy(wa_grad, Wa->grad, sizeof wa_grad);

    g = fresh();
    nn_tensor *hp = gru_run(g, &w, padded, 1, 4, (int32_t[]){2}, &Xp, &Wp);
    assert_non_null(hp);
    /* a gradient on the padded outputs must go nowhere */
    for (int i = 6; i < 12; i++)
        seed4[i] = 100.0f;
    assert_int_equal(nn_backward_seeded(g, hp, seed4), EMBER_OK);
    assert_floats(hp->data, ha_out, 6, 0);
    assert_floats(hp->data + 6, (float[]){0, 0, 0, 0, 0, 0}, 6, 0);
    assert_floats(Xp->grad, xa_grad, 4, 1e-6f);
    assert_floats(Xp->grad + 4, (float[]){0, 0, 0, 0}, 4, 0);
    assert_floats(Wp->grad, wa_grad, 18, 1e-5f);
}

static void test_gru_batch_rows_are_independent_of_each_others_lengths(void **state)
{
    nn_graph *g = fresh();
    gru_w w;
    fill_seq(w.w_ih, 18, 21);
    fill_seq(w.w_hh, 27, 22);
    fill_seq(w.b_ih, 9, 23);
    fill_seq(w.b_hh, 9, 24);
    float x[3 * 3 * 2];
    fill_seq(x, 18, 25);
    nn_tensor *X, *W;
    nn_tensor *h = gru_run(g, &w, x, 3, 3, (int32_t[]){3, 1, 0}, &X, &W);
    assert_non_null(h);
    float batch[27];
    memcpy(batch, h->data, sizeof batch);
    /* row 1 alone, length 1 */
    g = fresh();
    nn_tensor *h1 = gru_run(g, &w, x + 6, 1, 3, (int32_t[]){1}, &X, &W);
    assert_floats(batch + 9, h1->data, 9, 1e-6f);
    /* row 2 has length 0: all zeros */
    assert_floats(batch + 18, (float[9]){0}, 9, 0);
}

static void test_gru_one_step_hand_value(void **state)
{
    /* D = 1, H = 1 (w_ih [1,3], w_hh [1,3]); h0 = 0, so
     * r = s(x a_r + b_r + c_r), z = s(x a_z + b_z + c_z),
     * n = tanh(x a_n + b_n + r c_n), h = (1 - z) n */
    nn_graph *g = fresh();
    float a[3] = {0.5f, -0.3f, 0.8f}, wh[3] = {0.2f, 0.1f, -0.4f};
    float bi[3] = {0.1f, 0.2f, -0.1f}, bh[3] = {0.05f, -0.05f, 0.3f};
    float xv = 1.5f;
    nn_tensor *h = nn_gru(g, in(g, 3, (int[]){1, 1, 1}, &xv, false), (int32_t[]){1},
                          in(g, 2, (int[]){1, 3}, a, false), in(g, 2, (int[]){1, 3}, wh, false),
                          in(g, 1, (int[]){3}, bi, false), in(g, 1, (int[]){3}, bh, false));
    assert_non_null(h);
    double r = 1 / (1 + exp(-(xv * 0.5 + 0.1 + 0.05)));
    double z = 1 / (1 + exp(-(xv * -0.3 + 0.2 - 0.05)));
    double n = tanh(xv * 0.8 - 0.1 + r * 0.3);
    assert_float_equal(h->data[0], (float)((1 - z) * n), 1e-6f);
}

/* ------------------------------------------------------------ losses */

static void test_losses_hand_values(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *x = in(g, 1, (int[]){2}, (float[]){0.0f, 2.0f}, false);
    nn_tensor *y = in(g, 1, (int[]){2}, (float[]){1.0f, 0.0f}, false);
    /* BCE: (log 2 + log(1 + e^2)) / 2 */
    assert_float_equal(nn_bce_logits(g, x, y)->data[0],
                       (float)((log(2.0) + log1p(exp(2.0))) / 2), 1e-6f);
    /* MSE: (1 + 4) / 2 */
    assert_float_equal(nn_mse(g, x, y)->data[0], 2.5f, 1e-6f);
    /* BPR: -log s(0 - 1) and -log s(2 - 0), averaged */
    assert_float_equal(nn_bpr(g, x, y)->data[0], (float)((log1p(exp(1.0)) + log1p(exp(-2.0))) / 2),
                       1e-6f);
    /* CE over [1, 2, 3] with target 2 and an ignored row */
    nn_tensor *l = in(g, 2, (int[]){2, 3}, (float[]){1, 2, 3, 5, 5, 5}, false);
    double lse = log(exp(1.0) + exp(2.0) + exp(3.0));
    assert_float_equal(nn_softmax_ce(g, l, (uint32_t[]){2, NN_IGNORE})->data[0], (float)(lse - 3),
                       1e-6f);
    /* sampled: logits [1, 2, 3] minus logq [0, log 2, log 4] -> CE with target 0 */
    float lq[3] = {0.0f, logf(2), logf(4)};
    nn_tensor *s = in(g, 2, (int[]){1, 3}, (float[]){1, 2, 3}, false);
    double lse2 = log(exp(1.0) + exp(2 - log(2.0)) + exp(3 - log(4.0)));
    assert_float_equal(nn_sampled_softmax_ce(g, s, lq, false, NULL)->data[0], (float)(lse2 - 1),
                       1e-6f);
    /* a +inf logq drops the column */
    float lq2[3] = {0.0f, INFINITY, 0.0f};
    double lse3 = log(exp(1.0) + exp(3.0));
    assert_float_equal(nn_sampled_softmax_ce(g, s, lq2, false, NULL)->data[0], (float)(lse3 - 1),
                       1e-6f);
    /* KL: one row, mu = [1, 0], logvar = [0, log 2]:
     * -0.5 ((1 + 0 - 1 - 1) + (1 + log 2 - 0 - 2)) */
    nn_tensor *mu = in(g, 2, (int[]){1, 2}, (float[]){1, 0}, false);
    nn_tensor *lv = in(g, 2, (int[]){1, 2}, (float[]){0, logf(2)}, false);
    assert_float_equal(nn_kl_vae(g, mu, lv)->data[0], (float)(-0.5 * (-1 + (log(2.0) - 1))),
                       1e-6f);
}

/* ------------------------------------------------------------ errors */

static void expect_einval(nn_graph *g, nn_tensor *t, const char *needle)
{
    assert_null(t);
    assert_int_equal(nn_graph_status(g), EMBER_EINVAL);
    const char *msg = ember_last_error();
    if (!strstr(msg, needle))
        print_error("message '%s' lacks '%s'\n", msg, needle);
    assert_non_null(strstr(msg, needle));
}

/* Builders keep validating after a failure, so one graph serves: each
 * call is checked for its own message right after it runs. */
static void test_bad_shapes_fail_with_einval_and_a_message(void **state)
{
    nn_graph *g = fresh();
    float z[64] = {0};
    nn_tensor *a23 = in(g, 2, (int[]){2, 3}, z, false), *a2 = in(g, 1, (int[]){2}, z, false);
    nn_tensor *a45 = in(g, 2, (int[]){4, 5}, z, false);
    nn_tensor *b3 = in(g, 3, (int[]){2, 2, 3}, z, false);
    nn_tensor *k4 = in(g, 3, (int[]){2, 4, 3}, z, false);
    nn_tensor *w36 = in(g, 2, (int[]){3, 6}, z, false), *w35 = in(g, 2, (int[]){3, 5}, z, false);
    nn_tensor *w26 = in(g, 2, (int[]){2, 6}, z, false), *b6 = in(g, 1, (int[]){6}, z, false);
    nn_tensor *a32 = in(g, 2, (int[]){3, 2}, z, false);
    nn_tensor *c332 = in(g, 3, (int[]){3, 3, 2}, z, false);
    expect_einval(g, nn_add(g, a23, a2), "do not broadcast");
    expect_einval(g, nn_matmul(g, a23, a45, false, false), "inner dims");
    expect_einval(g, nn_matmul(g, a2, a23, false, false), "2 or more dims");
    expect_einval(g, nn_matmul(g, b3, c332, false, false), "batch dims");
    expect_einval(g, nn_reshape(g, a23, 2, (int[]){4, 2}), "elements");
    expect_einval(g, nn_reshape(g, a23, 5, (int[]){1, 1, 1, 2, 3}), "dims");
    expect_einval(g, nn_transpose(g, a2), "fewer than 2");
    expect_einval(g, nn_slice(g, a23, 2, 2), "outside");
    expect_einval(g, nn_concat(g, (nn_tensor *[]){a23, a45}, 2), "input 1");
    expect_einval(g, nn_concat(g, (nn_tensor *[]){a23}, 0), "inputs");
    expect_einval(g, nn_embedding(g, a23, (uint32_t[]){0, 2}, 2), "out of range");
    expect_einval(g, nn_embedding(g, b3, (uint32_t[]){0}, 1), "2-D");
    expect_einval(g, nn_embedding_bag(g, a23, (uint32_t[]){0, 1}, 2, (uint32_t[]){0, 1}, 1,
                                      NN_BAG_SUM),
                  "offsets");
    expect_einval(g, nn_embedding_bag(g, a23, (uint32_t[]){0, 1}, 2, (uint32_t[]){0, 2, 1, 2}, 3,
                                      NN_BAG_SUM),
                  "decrease");
    expect_einval(g, nn_gather(g, a23, (uint32_t[]){5}, 1), "out of range");
    expect_einval(g, nn_layernorm(g, a23, a2, a2, 1e-5f), "gamma");
    expect_einval(g, nn_layernorm(g, a23, in(g, 1, (int[]){3}, z, false),
                                  in(g, 1, (int[]){3}, z, false), 0.0f),
                  "eps");
    expect_einval(g, nn_dropout(g, a23, 1.0f), "rate");
    expect_einval(g, nn_softmax_ce(g, a23, (uint32_t[]){0, 3}), "out of range");
    expect_einval(g, nn_sampled_softmax_ce(g, a23, (float[]){NAN, 0, 0}, false, NULL), "logq");
    expect_einval(g, nn_sampled_softmax_ce(g, a23, (float[]){INFINITY, 0, 0}, false, NULL),
                  "logq");
    expect_einval(g, nn_bce_logits(g, a23, a2), "differ in size");
    expect_einval(g, nn_kl_vae(g, a23, a32), "differ");
    expect_einval(g, nn_rowdot(g, a23, a45), "differ");
    expect_einval(g, nn_masked_fill(g, a23, (uint8_t[]){1, 0}, 1, (int[]){2}, 0.0f), "broadcast");
    expect_einval(g, nn_attention(g, b3, b3, b3, 2, false, NULL), "heads");
    expect_einval(g, nn_attention(g, a23, a23, a23, 1, false, NULL), "3-D");
    expect_einval(g, nn_attention(g, b3, k4, k4, 1, true, NULL), "causal");
    expect_einval(g, nn_gru(g, b3, (int32_t[]){1, 5}, w36, w26, b6, b6), "length");
    expect_einval(g, nn_gru(g, b3, (int32_t[]){1, 1}, w35, w26, b6, b6), "want");
    expect_einval(g, nn_input(g, 2, (int[]){0, 3}, NULL, false), "dim < 1");
    assert_int_equal(nn_split(g, a23, 2, (int[]){1, 1}, (nn_tensor *[2]){0}), EMBER_EINVAL);
    assert_non_null(strstr(ember_last_error(), "sum to"));
}

/* Each bad call in a fresh graph, with its message. */
static void test_each_bad_call_names_the_problem(void **state)
{
    float z[64] = {0};
    nn_graph *g;
#define FRESH2() (g = fresh(), in(g, 2, (int[]){2, 3}, z, false))
    nn_tensor *x;
    x = FRESH2();
    expect_einval(g, nn_matmul(g, x, x, false, false), "inner dims differ");
    x = FRESH2();
    expect_einval(g, nn_reshape(g, x, 2, (int[]){4, 2}), "has 6 elements");
    x = FRESH2();
    expect_einval(g, nn_slice(g, x, 2, 2), "outside the last dim");
    x = FRESH2();
    expect_einval(g, nn_embedding(g, x, (uint32_t[]){0, 2}, 2), "index 2 at 1 out of range");
    x = FRESH2();
    expect_einval(g, nn_dropout(g, x, 1.5f), "outside [0, 1)");
    x = FRESH2();
    expect_einval(g, nn_softmax_ce(g, x, (uint32_t[]){0, 7}), "target 7 of row 1");
    x = FRESH2();
    expect_einval(g, nn_masked_fill(g, x, (uint8_t[]){1, 0}, 1, (int[]){2}, 0.0f),
                  "does not broadcast");
    x = FRESH2();
    expect_einval(g, nn_input(g, 2, (int[]){3, -1}, NULL, false), "dim < 1");
#undef FRESH2
}

static void test_null_input_propagates_without_new_message(void **state)
{
    nn_graph *g = fresh();
    float z[6] = {0};
    nn_tensor *x = in(g, 2, (int[]){2, 3}, z, false);
    nn_tensor *bad = nn_matmul(g, x, x, false, false);
    assert_null(bad);
    char first[256];
    snprintf(first, sizeof first, "%s", ember_last_error());
    nn_tensor *y = nn_relu(g, nn_add(g, bad, x));
    assert_null(y);
    assert_string_equal(ember_last_error(), first);
    assert_int_equal(nn_backward(g, y), EMBER_EINVAL);
    /* reset clears the failure */
    nn_graph_reset(g);
    assert_int_equal(nn_graph_status(g), EMBER_OK);
}

static void test_backward_needs_a_scalar_on_the_tape(void **state)
{
    nn_graph *g = fresh();
    nn_tensor *x = in(g, 1, (int[]){3}, (float[]){1, 2, 3}, true);
    assert_int_equal(nn_backward(g, nn_relu(g, x)), EMBER_EINVAL);
    assert_non_null(strstr(ember_last_error(), "not a scalar"));
}

/* ------------------------------------------------------- NaN check */

static void test_check_names_the_op_that_made_a_nan(void **state)
{
    nn_graph *g = fresh();
    nn_graph_set_check(g, true);
    nn_tensor *x = in(g, 1, (int[]){2}, (float[]){0, 1}, false);
    nn_tensor *r = nn_relu(g, x);
    assert_non_null(r);
    nn_tensor *d = nn_div(g, r, x); /* 0/0 */
    assert_null(d);
    assert_string_equal(nn_graph_bad_op(g), "div");
    assert_non_null(strstr(ember_last_error(), "'div'"));
    assert_non_null(strstr(ember_last_error(), "NaN"));
    /* without the check the same graph builds */
    g = fresh();
    x = in(g, 1, (int[]){2}, (float[]){0, 1}, false);
    d = nn_div(g, nn_relu(g, x), x);
    assert_non_null(d);
    assert_true(isnan(d->data[0]));
    assert_null(nn_graph_bad_op(g));
}

static void test_check_names_the_backward_that_made_an_inf(void **state)
{
    nn_graph *g = fresh();
    nn_graph_set_check(g, true);
    nn_tensor *a = in(g, 1, (int[]){1}, (float[]){1e-20f}, true);
    nn_tensor *b = in(g, 1, (int[]){1}, (float[]){1e-20f}, false);
    /* forward: 1e30 * (a / b) = 1e30, finite; backward: 1e30 / b = inf */
    nn_tensor *loss = nn_sum(g, nn_scale(g, nn_div(g, a, b), 1e30f));
    assert_non_null(loss);
    assert_int_equal(nn_backward(g, loss), EMBER_EINVAL);
    assert_string_equal(nn_graph_bad_op(g), "div");
    assert_non_null(strstr(ember_last_error(), "backward of op 'div'"));
}

static void test_check_is_on_with_the_environment_variable(void **state)
{
    setenv("EMBER_NN_CHECK", "1", 1);
    nn_graph *g = nn_graph_new(0);
    unsetenv("EMBER_NN_CHECK");
    assert_non_null(g);
    nn_tensor *x = nn_input(g, 1, (int[]){1}, (float[]){100.0f}, false);
    assert_null(nn_exp(g, x)); /* e^100 overflows float */
    assert_string_equal(nn_graph_bad_op(g), "exp");
    nn_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_hand_example),
        cmocka_unit_test(test_batched_matmul_multiplies_each_batch),
        cmocka_unit_test(test_add_broadcasts_trailing_operand_over_rows),
        cmocka_unit_test(test_mul_broadcasts_one_value_per_row),
        cmocka_unit_test(test_broadcast_expands_both_operands),
        cmocka_unit_test(test_broadcast_gradient_sums_over_repeats),
        cmocka_unit_test(test_gradient_accumulates_when_a_tensor_is_used_twice),
        cmocka_unit_test(test_activations_hand_values),
        cmocka_unit_test(test_softmax_rows_and_log_softmax_agree),
        cmocka_unit_test(test_layernorm_normalizes_each_row),
        cmocka_unit_test(test_dropout_is_identity_in_eval_mode),
        cmocka_unit_test(test_dropout_drops_about_p_and_scales_the_rest),
        cmocka_unit_test(test_concat_split_and_slice_values),
        cmocka_unit_test(test_reshape_shares_data_and_transpose_swaps),
        cmocka_unit_test(test_reductions_hand_values),
        cmocka_unit_test(test_masked_fill_broadcasts_and_blocks_gradient),
        cmocka_unit_test(test_embedding_sparse_gradient_touches_only_looked_up_rows),
        cmocka_unit_test(test_sparse_table_used_by_a_dense_op_is_marked_dense),
        cmocka_unit_test(test_embedding_bag_sum_mean_and_empty_bag),
        cmocka_unit_test(test_gather_scatters_gradient_of_repeated_rows),
        cmocka_unit_test(test_attention_masked_key_gets_zero_weight_and_gradient),
        cmocka_unit_test(test_attention_causal_mask_hides_the_future),
        cmocka_unit_test(test_attention_query_that_sees_no_key_outputs_zeros),
        cmocka_unit_test(test_attention_heads_are_column_slices),
        cmocka_unit_test(test_gru_padded_steps_do_not_affect_the_result),
        cmocka_unit_test(test_gru_batch_rows_are_independent_of_each_others_lengths),
        cmocka_unit_test(test_gru_one_step_hand_value),
        cmocka_unit_test(test_losses_hand_values),
        cmocka_unit_test(test_bad_shapes_fail_with_einval_and_a_message),
        cmocka_unit_test(test_each_bad_call_names_the_problem),
        cmocka_unit_test(test_null_input_propagates_without_new_message),
        cmocka_unit_test(test_backward_needs_a_scalar_on_the_tape),
        cmocka_unit_test(test_check_names_the_op_that_made_a_nan),
        cmocka_unit_test(test_check_names_the_backward_that_made_an_inf),
        cmocka_unit_test(test_check_is_on_with_the_environment_variable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
