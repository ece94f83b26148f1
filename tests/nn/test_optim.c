/* test_optim.c — optimizers (hand-computed steps, convergence on a
 * quadratic, lazy updates of sparse rows), L2 and decoupled decay,
 * clipping, learning-rate schedules, initializers, and parameter lists. */
#include "testutil.h"

#include "nn/nn.h"

#include <math.h>
#include <string.h>

/* loss = sum((w - c)^2) over a parameter w; one backward. */
static void quadratic_grad(nn_graph *g, nn_param *w, const float *c)
{
    nn_graph_reset(g);
    nn_tensor *d = nn_sub(g, nn_param_node(g, w), nn_input(g, w->ndim, w->shape, c, false));
    nn_tensor *loss = nn_sum(g, nn_mul(g, d, d));
    assert_non_null(loss);
    assert_int_equal(nn_backward(g, loss), EMBER_OK);
}

static void converges(nn_optim_kind kind, float lr, float momentum, int steps)
{
    nn_graph *g = nn_graph_new(0);
    nn_params ps;
    nn_params_init(&ps);
    nn_param *w = nn_params_add(&ps, "w", 1, (int[]){4}, false);
    const float c[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    nn_optim_opts o;
    nn_optim_opts_default(&o, kind);
    o.lr = lr;
    o.momentum = momentum;
    o.weight_decay = 0.0f;
    nn_optim opt;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_OK);
    for (int s = 0; s < steps; s++) {
        quadratic_grad(g, w, c);
        assert_int_equal(nn_optim_step(&opt, &ps, -1.0f), EMBER_OK);
    }
    for (int i = 0; i < 4; i++) {
        if (fabsf(w->value[i] - c[i]) > 1e-2f)
            print_error("kind %d: w[%d] = %g, want %g\n", kind, i, (double)w->value[i],
                        (double)c[i]);
        assert_true(fabsf(w->value[i] - c[i]) <= 1e-2f);
    }
    /* the step zeroed the gradient it used */
    for (int i = 0; i < 4; i++)
        assert_float_equal(w->grad[i], 0.0f, 0);
    nn_params_free(&ps);
    nn_graph_free(g);
}

static void test_sgd_converges_on_a_quadratic(void **state)
{
    converges(NN_SGD, 0.1f, 0.0f, 100);
}

static void test_sgd_momentum_converges_on_a_quadratic(void **state)
{
    converges(NN_SGD, 0.02f, 0.9f, 300);
}

static void test_adagrad_converges_on_a_quadratic(void **state)
{
    converges(NN_ADAGRAD, 1.0f, 0.0f, 300);
}

static void test_adam_converges_on_a_quadratic(void **state)
{
    converges(NN_ADAM, 0.1f, 0.0f, 500);
}

static void test_adamw_converges_on_a_quadratic(void **state)
{
    converges(NN_ADAMW, 0.1f, 0.0f, 500);
}

/* A parameter with a gradient set by hand (no graph). */
static nn_param *one(nn_params *ps, const char *name, float w)
{
    nn_param *p = nn_params_add(ps, name, 1, (int[]){1}, false);
    p->value[0] = w;
    return p;
}

static void test_sgd_momentum_two_steps_by_hand(void **state)
{
    nn_params ps;
    nn_params_init(&ps);
    nn_param *p = one(&ps, "w", 1.0f);
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_SGD);
    o.lr = 0.1f;
    o.momentum = 0.9f;
    nn_optim opt;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_OK);
    /* f = w^2, g = 2w: v = 2, w = 0.8; then g = 1.6, v = 3.4, w = 0.46 */
    p->grad[0] = 2.0f * p->value[0];
    nn_optim_step(&opt, &ps, -1.0f);
    assert_float_equal(p->value[0], 0.8f, 1e-6f);
    p->grad[0] = 2.0f * p->value[0];
    nn_optim_step(&opt, &ps, -1.0f);
    assert_float_equal(p->value[0], 0.46f, 1e-6f);
    nn_params_free(&ps);
}

static void test_adagrad_step_by_hand(void **state)
{
    nn_params ps;
    nn_params_init(&ps);
    nn_param *p = one(&ps, "w", 1.0f);
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_ADAGRAD);
    o.lr = 0.5f;
    nn_optim opt;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_OK);
    /* s = 4, w = 1 - 0.5 * 2 / 2 = 0.5; then g = 3: s = 13, w = 0.5 - 0.5 * 3 / sqrt(13) */
    p->grad[0] = 2.0f;
    nn_optim_step(&opt, &ps, -1.0f);
    assert_float_equal(p->value[0], 0.5f, 1e-6f);
    p->grad[0] = 3.0f;
    nn_optim_step(&opt, &ps, -1.0f);
    assert_float_equal(p->value[0], 0.5f - 1.5f / sqrtf(13.0f), 1e-6f);
    nn_params_free(&ps);
}

static void test_adam_first_step_moves_by_lr_against_the_gradient(void **state)
{
    nn_params ps;
    nn_params_init(&ps);
    nn_param *a = one(&ps, "a", 1.0f), *b = one(&ps, "b", 1.0f);
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_ADAM);
    o.lr = 0.01f;
    nn_optim opt;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_OK);
    /* bias-corrected m / sqrt(v) = g / |g| at t = 1, whatever |g| */
    a->grad[0] = 5.0f;
    b->grad[0] = -0.001f;
    nn_optim_step(&opt, &ps, -1.0f);
    assert_float_equal(a->value[0], 0.99f, 1e-6f);
    assert_float_equal(b->value[0], 1.01f, 1e-5f);
    /* second step with g = 1 on a: m = 0.9*0.5 + 0.1 = 0.55, v = 0.999*0.025 + 0.001 */
    a->grad[0] = 1.0f;
    nn_optim_step(&opt, &ps, -1.0f);
    double m = 0.55 / (1 - 0.81), v = (0.999 * 0.025 + 0.001) / (1 - 0.998001);
    assert_float_equal(a->value[0], (float)(0.99 - 0.01 * m / (sqrt(v) + 1e-8)), 1e-6f);
    nn_params_free(&ps);
}

static void test_l2_adds_weight_to_the_gradient(void **state)
{
    nn_params ps;
    nn_params_init(&ps);
    nn_param *p = one(&ps, "w", 2.0f);
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_SGD);
    o.lr = 0.1f;
    o.weight_decay = 0.5f;
    nn_optim opt;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_OK);
    p->grad[0] = 1.0f; /* g + wd w = 2: w = 1.8 */
    nn_optim_step(&opt, &ps, -1.0f);
    assert_float_equal(p->value[0], 1.8f, 1e-6f);
    nn_params_free(&ps);
}

static void test_adamw_decay_is_decoupled_from_the_moments(void **state)
{
    nn_params ps;
    nn_params_init(&ps);
    nn_param *pw = one(&ps, "w", 1.0f);
    nn_params ps2;
    nn_params_init(&ps2);
    nn_param *pa = one(&ps2, "w", 1.0f);
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_ADAMW);
    o.lr = 0.1f;
    o.weight_decay = 0.5f;
    nn_optim adamw, adam;
    assert_int_equal(nn_optim_init(&adamw, &o, &ps), EMBER_OK);
    o.kind = NN_ADAM;
    assert_int_equal(nn_optim_init(&adam, &o, &ps2), EMBER_OK);
    /* zero gradient: AdamW only decays, w = 1 - 0.1 * 0.5 = 0.95; Adam
     * with L2 sees g = 0.5 and takes a full normalised step, w = 0.9 */
    nn_optim_step(&adamw, &ps, -1.0f);
    nn_optim_step(&adam, &ps2, -1.0f);
    assert_float_equal(pw->value[0], 0.95f, 1e-6f);
    assert_float_equal(pa->value[0], 0.9f, 1e-6f);
    nn_params_free(&ps);
    nn_params_free(&ps2);
}

static void test_clipping_scales_to_the_global_norm(void **state)
{
    nn_params ps;
    nn_params_init(&ps);
    nn_param *a = one(&ps, "a", 0.0f), *b = one(&ps, "b", 0.0f);
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_SGD);
    o.lr = 1.0f;
    o.clip_norm = 1.0f;
    nn_optim opt;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_OK);
    a->grad[0] = 3.0f;
    b->grad[0] = 4.0f;
    assert_float_equal((float)nn_grad_norm(&ps), 5.0f, 1e-6f);
    nn_optim_step(&opt, &ps, -1.0f);
    assert_float_equal(opt.last_norm, 5.0f, 1e-6f);
    assert_float_equal(a->value[0], -0.6f, 1e-6f);
    assert_float_equal(b->value[0], -0.8f, 1e-6f);
    /* below the threshold nothing is scaled */
    a->grad[0] = 0.3f;
    b->grad[0] = 0.4f;
    nn_optim_step(&opt, &ps, -1.0f);
    assert_float_equal(a->value[0], -0.9f, 1e-6f);
    nn_params_free(&ps);
}

/* ----------------------------------------------------- lazy updates */

static void lookup_step(nn_graph *g, nn_param *p, const uint32_t *rows, size_t n)
{
    nn_graph_reset(g);
    nn_tensor *e = nn_embedding(g, nn_param_node(g, p), rows, n);
    /* loss = sum(e * e) / 2 + sum(e): gradient e + 1 on each looked-up row */
    nn_tensor *loss = nn_add(g, nn_scale(g, nn_sum(g, nn_mul(g, e, e)), 0.5f), nn_sum(g, e));
    assert_non_null(loss);
    assert_int_equal(nn_backward(g, loss), EMBER_OK);
}

static void test_lazy_adam_leaves_untouched_rows_unchanged(void **state)
{
    nn_graph *g = nn_graph_new(0);
    nn_params ps;
    nn_params_init(&ps);
    nn_param *p = nn_params_add(&ps, "emb", 2, (int[]){6, 2}, true);
    ember_rng r;
    ember_rng_seed(&r, 5);
    nn_init_normal(p, &r, 0.0f, 1.0f);
    float init[12];
    memcpy(init, p->value, sizeof init);
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_ADAM);
    o.lr = 0.1f;
    nn_optim opt;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_OK);
    lookup_step(g, p, (uint32_t[]){1, 3}, 2);
    assert_int_equal(nn_optim_step(&opt, &ps, -1.0f), EMBER_OK);
    float after1[12], m1[12], v1[12];
    memcpy(after1, p->value, sizeof after1);
    memcpy(m1, p->m, sizeof m1);
    memcpy(v1, p->v, sizeof v1);
    lookup_step(g, p, (uint32_t[]){3}, 1);
    assert_int_equal(nn_optim_step(&opt, &ps, -1.0f), EMBER_OK);
    for (int row = 0; row < 6; row++) {
        for (int j = 0; j < 2; j++) {
            int e = row * 2 + j;
            if (row == 1) { /* touched at step 1 only: frozen since, moments too */
                assert_float_equal(p->value[e], after1[e], 0);
                assert_float_equal(p->m[e], m1[e], 0);
                assert_float_equal(p->v[e], v1[e], 0);
                assert_true(p->value[e] != init[e]);
            } else if (row == 3) {
                assert_true(p->value[e] != after1[e]);
            } else { /* never touched */
                assert_float_equal(p->value[e], init[e], 0);
                assert_float_equal(p->m[e], 0.0f, 0);
                assert_float_equal(p->v[e], 0.0f, 0);
            }
        }
    }
    assert_int_equal(p->n_touched, 0);
    nn_params_free(&ps);
    nn_graph_free(g);
}

static void test_lazy_adam_bias_correction_uses_the_global_step(void **state)
{
    nn_graph *g = nn_graph_new(0);
    nn_params ps;
    nn_params_init(&ps);
    nn_param *p = nn_params_add(&ps, "emb", 2, (int[]){3, 1}, true);
    p->value[0] = 1.0f, p->value[1] = 2.0f, p->value[2] = 3.0f;
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_ADAM);
    o.lr = 0.1f;
    nn_optim opt;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_OK);
    lookup_step(g, p, (uint32_t[]){0}, 1);
    nn_optim_step(&opt, &ps, -1.0f);
    /* row 2 first touched at t = 2: g = 3 + 1 = 4, m = 0.4, v = 0.016,
     * step = lr (m / (1 - 0.81)) / (sqrt(v / (1 - 0.998001)) + eps) */
    lookup_step(g, p, (uint32_t[]){2}, 1);
    nn_optim_step(&opt, &ps, -1.0f);
    double m = 0.4 / 0.19, v = 0.016 / (1 - 0.998001);
    assert_float_equal(p->value[2], (float)(3.0 - 0.1 * m / (sqrt(v) + 1e-8)), 1e-6f);
    assert_float_equal(p->value[1], 2.0f, 0);
    nn_params_free(&ps);
    nn_graph_free(g);
}

static void test_sparse_table_used_densely_updates_every_row(void **state)
{
    nn_graph *g = nn_graph_new(0);
    nn_params ps;
    nn_params_init(&ps);
    nn_param *p = nn_params_add(&ps, "emb", 2, (int[]){4, 2}, true);
    nn_init_const(p, 1.0f);
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_SGD);
    o.lr = 0.5f;
    nn_optim opt;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_OK);
    nn_tensor *loss = nn_sum(g, nn_param_node(g, p));
    assert_int_equal(nn_backward(g, loss), EMBER_OK);
    assert_true(p->dense_touched);
    nn_optim_step(&opt, &ps, -1.0f);
    for (int i = 0; i < 8; i++)
        assert_float_equal(p->value[i], 0.5f, 0);
    assert_false(p->dense_touched);
    nn_params_free(&ps);
    nn_graph_free(g);
}

static void test_frozen_parameter_is_not_updated(void **state)
{
    nn_graph *g = nn_graph_new(0);
    nn_params ps;
    nn_params_init(&ps);
    nn_param *p = one(&ps, "w", 1.0f);
    p->frozen = true;
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_SGD);
    nn_optim opt;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_OK);
    nn_tensor *x = nn_param_node(g, p);
    assert_false(x->requires_grad);
    nn_optim_step(&opt, &ps, -1.0f);
    assert_float_equal(p->value[0], 1.0f, 0);
    nn_params_free(&ps);
    nn_graph_free(g);
}

static void test_optimizer_rejects_bad_options(void **state)
{
    nn_params ps;
    nn_params_init(&ps);
    nn_optim opt;
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_ADAM);
    o.lr = 0.0f;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_EINVAL);
    assert_non_null(strstr(ember_last_error(), "learning rate"));
    nn_optim_opts_default(&o, NN_ADAM);
    o.beta1 = 1.0f;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_EINVAL);
    nn_optim_opts_default(&o, NN_SGD);
    o.momentum = -0.1f;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_EINVAL);
    nn_optim_opts_default(&o, NN_ADAM);
    o.eps = NAN;
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_EINVAL);
}

static void test_step_without_state_for_a_new_parameter_fails(void **state)
{
    nn_params ps;
    nn_params_init(&ps);
    one(&ps, "a", 1.0f);
    nn_optim opt;
    nn_optim_opts o;
    nn_optim_opts_default(&o, NN_ADAM);
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_OK);
    one(&ps, "b", 1.0f);
    assert_int_equal(nn_optim_step(&opt, &ps, -1.0f), EMBER_EINVAL);
    assert_non_null(strstr(ember_last_error(), "'b'"));
    assert_int_equal(nn_optim_init(&opt, &o, &ps), EMBER_OK);
    assert_int_equal(nn_optim_step(&opt, &ps, -1.0f), EMBER_OK);
    nn_params_free(&ps);
}

/* -------------------------------------------------------- schedules */

static void test_learning_rate_schedules(void **state)
{
    nn_lr_schedule s = {.kind = NN_LR_STEP, .base = 1.0f, .gamma = 0.5f, .step_size = 10};
    assert_float_equal(nn_lr_at(&s, 0), 1.0f, 0);
    assert_float_equal(nn_lr_at(&s, 9), 1.0f, 0);
    assert_float_equal(nn_lr_at(&s, 10), 0.5f, 0);
    assert_float_equal(nn_lr_at(&s, 25), 0.25f, 0);
    s = (nn_lr_schedule){.kind = NN_LR_EXP, .base = 2.0f, .gamma = 0.9f};
    assert_float_equal(nn_lr_at(&s, 2), 1.62f, 1e-6f);
    s = (nn_lr_schedule){.kind = NN_LR_COSINE, .base = 1.0f, .warmup = 10, .total = 110};
    assert_float_equal(nn_lr_at(&s, 0), 0.1f, 1e-6f);
    assert_float_equal(nn_lr_at(&s, 4), 0.5f, 1e-6f);
    assert_float_equal(nn_lr_at(&s, 9), 1.0f, 1e-6f);
    assert_float_equal(nn_lr_at(&s, 10), 1.0f, 1e-6f);
    assert_float_equal(nn_lr_at(&s, 60), 0.5f, 1e-6f);
    assert_float_equal(nn_lr_at(&s, 110), 0.0f, 1e-6f);
    assert_float_equal(nn_lr_at(&s, 500), 0.0f, 1e-6f);
    s.min_lr = 0.1f;
    assert_float_equal(nn_lr_at(&s, 60), 0.55f, 1e-6f);
    s = (nn_lr_schedule){.kind = NN_LR_CONST, .base = 0.3f};
    assert_float_equal(nn_lr_at(&s, 1000), 0.3f, 0);
}

/* ----------------------------------------------------- initializers */

static void test_xavier_uniform_bound_and_seed(void **state)
{
    nn_params ps;
    nn_params_init(&ps);
    nn_param *p = nn_params_add(&ps, "w", 2, (int[]){100, 50}, false);
    nn_param *q = nn_params_add(&ps, "w2", 2, (int[]){100, 50}, false);
    ember_rng r1, r2;
    ember_rng_seed(&r1, 9);
    ember_rng_seed(&r2, 9);
    nn_init_xavier_uniform(p, &r1, 1.0f);
    nn_init_xavier_uniform(q, &r2, 1.0f);
    assert_memory_equal(p->value, q->value, p->n * sizeof(float));
    double a = sqrt(6.0 / 150.0), s = 0, s2 = 0;
    for (size_t i = 0; i < p->n; i++) {
        assert_true(fabs(p->value[i]) <= a);
        s += p->value[i];
        s2 += (double)p->value[i] * p->value[i];
    }
    double mean = s / p->n, var = s2 / p->n - mean * mean;
    assert_true(fabs(mean) < 0.01);
    assert_true(fabs(var - a * a / 3) < 0.05 * a * a / 3);
    nn_params_free(&ps);
}

static void test_normal_init_has_the_asked_std(void **state)
{
    nn_params ps;
    nn_params_init(&ps);
    nn_param *p = nn_params_add(&ps, "w", 1, (int[]){20000}, false);
    ember_rng r;
    ember_rng_seed(&r, 3);
    nn_init_normal(p, &r, 0.5f, 0.1f);
    double s = 0, s2 = 0;
    for (size_t i = 0; i < p->n; i++) {
        s += p->value[i];
        s2 += (double)p->value[i] * p->value[i];
    }
    double mean = s / p->n, sd = sqrt(s2 / p->n - mean * mean);
    assert_true(fabs(mean - 0.5) < 0.005);
    assert_true(fabs(sd - 0.1) < 0.005);
    nn_init_zeros(p);
    for (size_t i = 0; i < p->n; i++)
        assert_float_equal(p->value[i], 0.0f, 0);
    nn_params_free(&ps);
}

static void test_params_list_finds_counts_and_rejects_duplicates(void **state)
{
    nn_params ps;
    nn_params_init(&ps);
    assert_non_null(nn_params_add(&ps, "a", 2, (int[]){3, 4}, false));
    assert_non_null(nn_params_add(&ps, "b", 1, (int[]){5}, false));
    assert_null(nn_params_add(&ps, "a", 1, (int[]){1}, false));
    assert_non_null(strstr(ember_last_error(), "duplicate"));
    assert_null(nn_params_add(&ps, "c", 2, (int[]){3, 0}, false));
    assert_int_equal(nn_params_count(&ps), 17);
    nn_param *b = nn_params_find(&ps, "b");
    assert_non_null(b);
    assert_int_equal(b->rows, 5);
    assert_int_equal(b->cols, 1);
    assert_null(nn_params_find(&ps, "zz"));
    nn_params_free(&ps);
    nn_params_free(&ps); /* twice is fine */
}

static void test_param_allocation_failure_is_reported(void **state)
{
    nn_params ps;
    nn_params_init(&ps);
    for (long n = 1; n <= 6; n++) {
        ember_fault_inject_alloc(n);
        nn_param *p = nn_params_add(&ps, "emb", 2, (int[]){4, 2}, true);
        ember_fault_inject_alloc(0);
        if (p) {
            assert_int_equal(ps.n, 1);
            break;
        }
        assert_int_equal(ps.n, 0);
    }
    assert_int_equal(ps.n, 1);
    nn_params_free(&ps);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_converges_on_a_quadratic),
        cmocka_unit_test(test_sgd_momentum_converges_on_a_quadratic),
        cmocka_unit_test(test_adagrad_converges_on_a_quadratic),
        cmocka_unit_test(test_adam_converges_on_a_quadratic),
        cmocka_unit_test(test_adamw_converges_on_a_quadratic),
        cmocka_unit_test(test_sgd_momentum_two_steps_by_hand),
        cmocka_unit_test(test_adagrad_step_by_hand),
        cmocka_unit_test(test_adam_first_step_moves_by_lr_against_the_gradient),
        cmocka_unit_test(test_l2_adds_weight_to_the_gradient),
        cmocka_unit_test(test_adamw_decay_is_decoupled_from_the_moments),
        cmocka_unit_test(test_clipping_scales_to_the_global_norm),
        cmocka_unit_test(test_lazy_adam_leaves_untouched_rows_unchanged),
        cmocka_unit_test(test_lazy_adam_bias_correction_uses_the_global_step),
        cmocka_unit_test(test_sparse_table_used_densely_updates_every_row),
        cmocka_unit_test(test_frozen_parameter_is_not_updated),
        cmocka_unit_test(test_optimizer_rejects_bad_options),
        cmocka_unit_test(test_step_without_state_for_a_new_parameter_fails),
        cmocka_unit_test(test_learning_rate_schedules),
        cmocka_unit_test(test_xavier_uniform_bound_and_seed),
        cmocka_unit_test(test_normal_init_has_the_asked_std),
        cmocka_unit_test(test_params_list_finds_counts_and_rejects_duplicates),
        cmocka_unit_test(test_param_allocation_failure_is_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
