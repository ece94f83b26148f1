/* test_train.c — whole training steps: a small MLP learns XOR; a toy
 * sequence model using most ops trains bit-identically run to run with a
 * fixed seed (one thread, and also two); after the first step a training
 * step does no malloc (the arena's statistic). */
#include "testutil.h"

#include "nn/nn.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- XOR */

static void test_mlp_learns_xor(void **state)
{
    static const float x[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    static const float y[4] = {0, 1, 1, 0};
    nn_graph *g = nn_graph_new(0);
    nn_params ps;
    nn_params_init(&ps);
    nn_param *w1 = nn_params_add(&ps, "w1", 2, (int[]){2, 8}, false);
    nn_param *b1 = nn_params_add(&ps, "b1", 1, (int[]){8}, false);
    nn_param *w2 = nn_params_add(&ps, "w2", 2, (int[]){8, 1}, false);
    nn_param *b2 = nn_params_add(&ps, "b2", 1, (int[]){1}, false);
    ember_rng rng;
    ember_rng_seed(&rng, 2024);
    nn_init_xavier_uniform(w1, &rng, 1.0f);
    nn_init_xavier_uniform(w2, &rng, 1.0f);
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_ADAM);
    o.lr = 0.05f;
    nn_optim opt;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_OK);
    float loss = 1e9f, pred[4] = {0};
    for (int step = 0; step < 500; step++) {
        nn_tensor *X = nn_input(g, 2, (int[]){4, 2}, x, false);
        nn_tensor *h = nn_tanh(g, nn_add(g, nn_matmul(g, X, nn_param_node(g, w1), false, false),
                                         nn_param_node(g, b1)));
        nn_tensor *logit = nn_add(g, nn_matmul(g, h, nn_param_node(g, w2), false, false),
                                  nn_param_node(g, b2));
        nn_tensor *l = nn_bce_logits(g, logit, nn_input(g, 2, (int[]){4, 1}, y, false));
        assert_non_null(l);
        assert_int_equal(nn_backward(g, l), EMBER_OK);
        assert_int_equal(nn_optim_step(&opt, &ps, -1.0f), EMBER_OK);
        loss = l->data[0];
        memcpy(pred, logit->data, sizeof pred);
        nn_graph_reset(g);
    }
    print_message("XOR loss after 500 steps: %.5f\n", (double)loss);
    assert_true(loss < 0.05f);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pred[i] > 0.0f, y[i] > 0.5f);
    nn_params_free(&ps);
    nn_graph_free(g);
}

/* ------------------------------------------------ a toy sequence model */

enum { B = 16, T = 8, D = 32, V = 300, HEADS = 2 };

typedef struct {
    nn_params ps;
    nn_param *emb, *pos, *ln_g, *ln_b, *wq, *wk, *wv, *w1, *b1;
    nn_param *w_ih, *w_hh, *b_ih, *b_hh, *bag;
    uint32_t items[B * T], targets[B * T], bag_idx[B * 3], bag_off[B + 1], last[B];
    int32_t len[B];
    uint8_t valid[B * T];
    float label[B];
    nn_optim opt;
} toy;

static void toy_init(toy *m, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    nn_params_init(&m->ps);
    nn_params *ps = &m->ps;
    m->emb = nn_params_add(ps, "emb", 2, (int[]){V, D}, true);
    m->pos = nn_params_add(ps, "pos", 2, (int[]){T, D}, false);
    m->ln_g = nn_params_add(ps, "ln_g", 1, (int[]){D}, false);
    m->ln_b = nn_params_add(ps, "ln_b", 1, (int[]){D}, false);
    m->wq = nn_params_add(ps, "wq", 2, (int[]){D, D}, false);
    m->wk = nn_params_add(ps, "wk", 2, (int[]){D, D}, false);
    m->wv = nn_params_add(ps, "wv", 2, (int[]){D, D}, false);
    m->w1 = nn_params_add(ps, "w1", 2, (int[]){D, D}, false);
    m->b1 = nn_params_add(ps, "b1", 1, (int[]){D}, false);
    m->w_ih = nn_params_add(ps, "w_ih", 2, (int[]){D, 3 * D}, false);
    m->w_hh = nn_params_add(ps, "w_hh", 2, (int[]){D, 3 * D}, false);
    m->b_ih = nn_params_add(ps, "b_ih", 1, (int[]){3 * D}, false);
    m->b_hh = nn_params_add(ps, "b_hh", 1, (int[]){3 * D}, false);
    m->bag = nn_params_add(ps, "bag", 2, (int[]){V, D}, true);
    assert_int_equal(ps->n, 14);
    ember_rng r;
    ember_rng_seed(&r, seed);
    for (size_t i = 0; i < ps->n; i++)
        if (ps->p[i] != m->ln_g && ps->p[i] != m->ln_b)
            nn_init_normal(ps->p[i], &r, 0.0f, 0.1f);
    nn_init_const(m->ln_g, 1.0f);
    for (int b = 0; b < B; b++) {
        m->len[b] = 1 + (int32_t)ember_rng_below(&r, T);
        for (int t = 0; t < T; t++) {
            bool ok = t < m->len[b];
            m->items[b * T + t] = (uint32_t)ember_rng_below(&r, V);
            m->targets[b * T + t] = ok ? (uint32_t)ember_rng_below(&r, V) : NN_IGNORE;
            m->valid[b * T + t] = ok;
        }
        m->last[b] = (uint32_t)(b * T + m->len[b] - 1);
        m->bag_off[b] = (uint32_t)(3 * b);
        for (int k = 0; k < 3; k++)
            m->bag_idx[3 * b + k] = (uint32_t)ember_rng_below(&r, V);
        m->label[b] = (float)(b % 2);
    }
    m->bag_off[B] = 3 * B;
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_ADAMW);
    o.lr = 0.01f;
    o.clip_norm = 5.0f;
    assert_int_equal(nn_optim_init(&m->opt, &o, ps), EMBER_OK);
}

static nn_tensor *toy_forward(nn_graph *g, toy *m)
{
    nn_tensor *emb = nn_param_node(g, m->emb);
    nn_tensor *e = nn_reshape(g, nn_embedding(g, emb, m->items, B * T), 3, (int[]){B, T, D});
    e = nn_dropout(g, nn_add(g, e, nn_param_node(g, m->pos)), 0.2f);
    nn_tensor *h = nn_layernorm(g, e, nn_param_node(g, m->ln_g), nn_param_node(g, m->ln_b), 1e-5f);
    nn_tensor *q = nn_matmul(g, h, nn_param_node(g, m->wq), false, false);
    nn_tensor *k = nn_matmul(g, h, nn_param_node(g, m->wk), false, false);
    nn_tensor *v = nn_matmul(g, h, nn_param_node(g, m->wv), false, false);
    h = nn_add(g, h, nn_attention(g, q, k, v, HEADS, true, m->valid));
    h = nn_gelu(g, nn_add(g, nn_matmul(g, h, nn_param_node(g, m->w1), false, false),
                          nn_param_node(g, m->b1)));
    h = nn_gru(g, h, m->len, nn_param_node(g, m->w_ih), nn_param_node(g, m->w_hh),
               nn_param_node(g, m->b_ih), nn_param_node(g, m->b_hh));
    nn_tensor *flat = nn_reshape(g, h, 2, (int[]){B * T, D});
    nn_tensor *logits = nn_matmul(g, flat, emb, false, true); /* tied: dense use */
    nn_tensor *ce = nn_softmax_ce(g, logits, m->targets);
    nn_tensor *bag = nn_embedding_bag(g, nn_param_node(g, m->bag), m->bag_idx, 3 * B, m->bag_off, B,
                                      NN_BAG_MEAN);
    nn_tensor *score = nn_rowdot(g, bag, nn_gather(g, flat, m->last, B));
    nn_tensor *bce = nn_bce_logits(g, score, nn_input(g, 2, (int[]){B, 1}, m->label, false));
    return nn_add(g, ce, bce);
}

static float toy_step(nn_graph *g, toy *m)
{
    nn_tensor *loss = toy_forward(g, m);
    if (!loss)
        print_error("toy forward: %s\n", ember_last_error());
    assert_non_null(loss);
    assert_int_equal(nn_backward(g, loss), EMBER_OK);
    assert_int_equal(nn_optim_step(&m->opt, &m->ps, -1.0f), EMBER_OK);
    float l = loss->data[0];
    nn_graph_reset(g);
    return l;
}

/* Trains from seed for steps; leaves the final parameters in a buffer. */
static float *toy_train(int threads, int steps, float *losses)
{
    int saved = omp_get_max_threads();
    nn_set_threads(threads);
    toy m;
    toy_init(&m, 77);
    nn_graph *g = nn_graph_new(0);
    nn_graph_seed(g, 5);
    for (int s = 0; s < steps; s++)
        losses[s] = toy_step(g, &m);
    float *out = malloc(nn_params_count(&m.ps) * sizeof(float));
    size_t off = 0;
    for (size_t i = 0; i < m.ps.n; i++) {
        memcpy(out + off, m.ps.p[i]->value, m.ps.p[i]->n * sizeof(float));
        off += m.ps.p[i]->n;
    }
    nn_graph_free(g);
    nn_params_free(&m.ps);
    nn_set_threads(saved);
    return out;
}

static size_t toy_count(void)
{
    toy m;
    toy_init(&m, 1);
    size_t n = nn_params_count(&m.ps);
    nn_params_free(&m.ps);
    return n;
}

static void test_training_is_bit_identical_with_one_thread_and_a_fixed_seed(void **state)
{
    enum { STEPS = 6 };
    float l1[STEPS], l2[STEPS];
    float *a = toy_train(1, STEPS, l1), *b = toy_train(1, STEPS, l2);
    size_t n = toy_count();
    assert_memory_equal(l1, l2, sizeof l1);
    assert_memory_equal(a, b, n * sizeof(float));
    /* and it learned something */
    assert_true(l1[STEPS - 1] < l1[0]);
    free(a);
    free(b);
}

static void test_training_with_two_threads_repeats_too(void **state)
{
    enum { STEPS = 4 };
    float l1[STEPS], l2[STEPS];
    float *a = toy_train(2, STEPS, l1), *b = toy_train(2, STEPS, l2);
    assert_memory_equal(l1, l2, sizeof l1);
    assert_memory_equal(a, b, toy_count() * sizeof(float));
    free(a);
    free(b);
}

static void test_training_step_after_the_first_does_no_malloc(void **state)
{
    toy m;
    toy_init(&m, 3);
    nn_graph *g = nn_graph_new(4096); /* small first block: step 1 must grow */
    nn_graph_stats st1, st;
    toy_step(g, &m);
    nn_graph_get_stats(g, &st1);
    assert_true(st1.mallocs > 2); /* it did grow */
    assert_true(st1.arena_bytes >= st1.arena_peak);
    for (int s = 0; s < 4; s++) {
        toy_step(g, &m);
        nn_graph_get_stats(g, &st);
        assert_int_equal(st.mallocs, st1.mallocs);
        assert_int_equal(st.arena_bytes, st1.arena_bytes);
    }
    assert_int_equal(st.arena_used, 0);
    nn_graph_free(g);
    nn_params_free(&m.ps);
}

static void test_arena_out_of_memory_fails_the_graph_cleanly(void **state)
{
    toy m;
    toy_init(&m, 4);
    nn_graph *g = nn_graph_new(4096);
    /* the Nth malloc fails, for N = 1, 2, ...: the forward fails with
     * ENOMEM and nothing leaks; then a normal step works */
    bool succeeded = false;
    for (long n = 1; n < 200 && !succeeded; n++) {
        nn_graph_reset(g);
        ember_fault_inject_alloc(n);
        nn_tensor *loss = toy_forward(g, &m);
        ember_fault_inject_alloc(0);
        if (loss) {
            succeeded = true;
        } else {
            assert_int_equal(nn_graph_status(g), EMBER_ENOMEM);
        }
    }
    assert_true(succeeded);
    nn_graph_reset(g);
    nn_params_zero_grad(&m.ps);
    toy_step(g, &m);
    nn_graph_free(g);
    nn_params_free(&m.ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_learns_xor),
        cmocka_unit_test(test_training_is_bit_identical_with_one_thread_and_a_fixed_seed),
        cmocka_unit_test(test_training_with_two_threads_repeats_too),
        cmocka_unit_test(test_training_step_after_the_first_does_no_malloc),
        cmocka_unit_test(test_arena_out_of_memory_fails_the_graph_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
