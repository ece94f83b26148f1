/*
 * test_deep_train.c — the shared trainer of the neural models
 * (src/models/deep_train.c) on a toy model (least squares on a
 * parameter vector): every example once per epoch in batches of the
 * given size, shuffled; the loss falls; early stopping stops after
 * `patience` validations without improvement and leaves the best
 * validated epoch's parameters; validation every eval_every epochs; one
 * JSON log line per epoch; the same seed gives the same parameters bit
 * for bit; per-epoch learning-rate decay; the Polyak average; errors from
 * a diverging loss and from a failed graph; and the negative sampler
 * (never a positive, popularity in proportion to counts).
 */
#include "testutil.h"

#include "models/deep_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------- a toy model */

enum { N = 100, D = 3 };

typedef struct {
    nn_params ps;
    nn_param *w;
    float x[N][D], y[N];
    unsigned visits[N];
    size_t batches, batch_sizes[64];
    size_t first_order[N], n_first;
    uint32_t last_epoch;
    /* trajectory of w before each step (for the averaging test) */
    float seen[512][D];
    size_t n_seen;
    int mode; /* 0 least squares, 1 sum(w), 2 NaN loss, 3 bad shapes */
    size_t examples;      /* what epoch_begin reports */
} toy;

static const ember_model_ops toy_ops = {.name = "toy"};

static void toy_init(toy *t)
{
    memset(t, 0, sizeof *t);
    nn_params_init(&t->ps);
    t->w = nn_params_add(&t->ps, "w", 2, (int[]){D, 1}, false);
    assert_non_null(t->w);
    ember_rng r;
    ember_rng_seed(&r, 5);
    static const float truth[D] = {1.5f, -2.0f, 0.5f};
    for (int i = 0; i < N; i++) {
        t->y[i] = 0;
        for (int k = 0; k < D; k++) {
            t->x[i][k] = (float)ember_rng_normal(&r);
            t->y[i] += truth[k] * t->x[i][k];
        }
    }
}

static nn_tensor *toy_loss(void *ctx, const deep_batch *b)
{
    toy *t = ctx;
    nn_graph *g = b->g;
    if (t->n_seen < 512)
        memcpy(t->seen[t->n_seen++], t->w->value, sizeof t->seen[0]);
    if (t->batches < 64)
        t->batch_sizes[t->batches] = b->n;
    t->batches++;
    for (size_t i = 0; i < b->n; i++) {
        t->visits[b->idx[i]]++;
        if (b->epoch == 1 && t->n_first < N)
            t->first_order[t->n_first++] = b->idx[i];
    }
    t->last_epoch = (uint32_t)b->epoch;
    nn_tensor *w = nn_param_node(g, t->w);
    if (t->mode == 1)
        return nn_sum(g, w);
    if (t->mode == 2)
        return nn_scale(g, nn_sum(g, w), NAN);
    nn_tensor *x = nn_input(g, 2, (int[]){(int)b->n, t->mode == 3 ? D + 1 : D}, NULL, false);
    nn_tensor *y = nn_input(g, 2, (int[]){(int)b->n, 1}, NULL, false);
    if (!x || !y)
        return NULL;
    for (size_t i = 0; i < b->n && t->mode == 0; i++) {
        memcpy(x->data + i * D, t->x[b->idx[i]], sizeof t->x[0]);
        y->data[i] = t->y[b->idx[i]];
    }
    return nn_mse(g, nn_matmul(g, x, w, false, false), y);
}

static int toy_epoch_begin(void *ctx, size_t epoch, ember_rng *rng, size_t *n)
{
    (void)epoch;
    (void)rng;
    toy *t = ctx;
    *n = t->examples;
    return EMBER_OK;
}

static deep_train_cfg toy_cfg(size_t epochs, size_t batch)
{
    deep_train_cfg c;
    deep_cfg_from_params(&c, (int64_t)epochs, (int64_t)batch, 0.05, 1.0, 0.0, 0.0, 0, 1);
    return c;
}

static int run(toy *t, const deep_train_cfg *cfg, const ember_fit_opts *o, deep_train_report *rep)
{
    ember_model m = {.ops = &toy_ops};
    deep_model_fns fns = {.loss = toy_loss};
    if (t->examples)
        fns.epoch_begin = toy_epoch_begin;
    return deep_train(&m, &t->ps, &fns, t, N, cfg, o, rep);
}

/* A scripted validation: scores[k] at the k-th call; records w. */
typedef struct {
    double scores[32];
    size_t calls;
    float w_at[32][D];
    toy *t;
} script;

static int scripted_valid(const ember_model *m, void *ctx, double *score)
{
    (void)m;
    script *s = ctx;
    memcpy(s->w_at[s->calls], s->t->w->value, sizeof s->w_at[0]);
    *score = s->scores[s->calls++];
    return EMBER_OK;
}

/* ------------------------------------------------------------- tests */

static void test_every_example_once_per_epoch_in_batches(void **state)
{
    (void)state;
    toy t;
    toy_init(&t);
    deep_train_cfg c = toy_cfg(3, 32);
    ember_fit_opts o = {.threads = 1, .seed = 3};
    deep_train_report rep;
    assert_int_equal(run(&t, &c, &o, &rep), EMBER_OK);
    assert_int_equal(t.batches, 12);
    for (size_t b = 0; b < 12; b++)
        assert_int_equal(t.batch_sizes[b], b % 4 == 3 ? 4 : 32);
    for (int i = 0; i < N; i++)
        assert_int_equal(t.visits[i], 3);
    size_t in_place = 0;
    for (size_t i = 0; i < N; i++)
        in_place += t.first_order[i] == i;
    assert_true(in_place < N / 4); /* shuffled */
    assert_int_equal(rep.epochs_run, 3);
    assert_int_equal(rep.best_epoch, 0);
    nn_params_free(&t.ps);
}

static void test_loss_falls_and_the_fit_converges(void **state)
{
    (void)state;
    toy t;
    toy_init(&t);
    deep_train_cfg c = toy_cfg(200, 10);
    ember_fit_opts o = {.threads = 1, .seed = 3};
    deep_train_report rep;
    assert_int_equal(run(&t, &c, &o, &rep), EMBER_OK);
    assert_true(rep.last_loss < 0.01 * rep.first_loss);
    assert_float_equal(t.w->value[0], 1.5, 0.01);
    assert_float_equal(t.w->value[1], -2.0, 0.01);
    assert_float_equal(t.w->value[2], 0.5, 0.01);
    nn_params_free(&t.ps);
}

static void test_patience_stops_and_best_epoch_is_restored(void **state)
{
    (void)state;
    toy t;
    toy_init(&t);
    deep_train_cfg c = toy_cfg(20, 10);
    c.patience = 3;
    script s = {.scores = {0.1, 0.5, 0.3, 0.2, 0.4, 0.9, 0.9}, .t = &t};
    ember_fit_opts o = {.threads = 1, .seed = 3, .valid_fn = scripted_valid, .valid_ctx = &s};
    deep_train_report rep;
    assert_int_equal(run(&t, &c, &o, &rep), EMBER_OK);
    assert_int_equal(s.calls, 5); /* epochs 3, 4, 5 did not improve on 2 */
    assert_int_equal(rep.epochs_run, 5);
    assert_int_equal(rep.best_epoch, 2);
    assert_true(rep.best_score == 0.5);
    assert_int_equal(t.last_epoch, 5);
    assert_memory_equal(t.w->value, s.w_at[1], sizeof s.w_at[1]);
    assert_memory_not_equal(t.w->value, s.w_at[4], sizeof s.w_at[4]);
    assert_true(rep.seconds_to_best <= rep.seconds);
    nn_params_free(&t.ps);
}

static void test_validation_every_few_epochs_only(void **state)
{
    (void)state;
    toy t;
    toy_init(&t);
    deep_train_cfg c = toy_cfg(7, 50);
    c.eval_every = 3;
    script s = {.scores = {0.1, 0.2, 0.3}, .t = &t};
    ember_fit_opts o = {.threads = 1, .seed = 3, .valid_fn = scripted_valid, .valid_ctx = &s};
    deep_train_report rep;
    assert_int_equal(run(&t, &c, &o, &rep), EMBER_OK);
    assert_int_equal(s.calls, 2); /* epochs 3 and 6 */
    assert_int_equal(rep.best_epoch, 6);
    assert_int_equal(rep.epochs_run, 7);
    /* the best (epoch 6) is restored, not epoch 7's values */
    assert_memory_equal(t.w->value, s.w_at[1], sizeof s.w_at[1]);
    nn_params_free(&t.ps);
}

static void test_log_has_a_json_line_per_epoch(void **state)
{
    (void)state;
    toy t;
    toy_init(&t);
    deep_train_cfg c = toy_cfg(4, 25);
    c.eval_every = 2;
    script s = {.scores = {0.1, 0.2}, .t = &t};
    const char *log = test_write_file("train.log", "");
    ember_fit_opts o = {.threads = 1, .seed = 3, .valid_fn = scripted_valid, .valid_ctx = &s,
                        .log_path = log};
    assert_int_equal(run(&t, &c, &o, NULL), EMBER_OK);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char line[512];
    int lines = 0, with_valid = 0;
    while (fgets(line, sizeof line, f)) {
        lines++;
        char want[32];
        snprintf(want, sizeof want, "{\"epoch\":%d,\"loss\":", lines);
        assert_non_null(strstr(line, want));
        assert_non_null(strstr(line, "\"seconds\":"));
        with_valid += strstr(line, "\"valid_ndcg@10\":") != NULL;
    }
    fclose(f);
    assert_int_equal(lines, 4);
    assert_int_equal(with_valid, 2);
    nn_params_free(&t.ps);
}

static void test_same_seed_same_parameters_bit_for_bit(void **state)
{
    (void)state;
    float w[3][D];
    uint64_t seeds[3] = {11, 11, 12};
    for (int r = 0; r < 3; r++) {
        toy t;
        toy_init(&t);
        deep_train_cfg c = toy_cfg(3, 16);
        ember_fit_opts o = {.threads = 1, .seed = seeds[r]};
        assert_int_equal(run(&t, &c, &o, NULL), EMBER_OK);
        memcpy(w[r], t.w->value, sizeof w[r]);
        nn_params_free(&t.ps);
    }
    assert_memory_equal(w[0], w[1], sizeof w[0]);
    assert_memory_not_equal(w[0], w[2], sizeof w[0]); /* another order of batches */
}

/* loss = sum(w): every gradient is 1, so plain SGD moves each weight by
 * exactly -lr per step, and lr_decay shows in the second epoch. */
static void test_learning_rate_decays_per_epoch(void **state)
{
    (void)state;
    toy t;
    toy_init(&t);
    t.mode = 1;
    deep_train_cfg c = toy_cfg(2, N);
    nn_optim_opts_default(&c.optim, NN_SGD);
    c.optim.lr = 0.25f;
    c.lr_decay = 0.5;
    ember_fit_opts o = {.threads = 1, .seed = 3};
    assert_int_equal(run(&t, &c, &o, NULL), EMBER_OK);
    for (int k = 0; k < D; k++)
        assert_true(t.w->value[k] == -0.25f - 0.125f);
    nn_params_free(&t.ps);
}

static void test_average_of_the_weights_is_kept(void **state)
{
    (void)state;
    /* the raw trajectory: w before each step, and the final w */
    toy raw;
    toy_init(&raw);
    deep_train_cfg c = toy_cfg(3, 20);
    ember_fit_opts o = {.threads = 1, .seed = 9};
    assert_int_equal(run(&raw, &c, &o, NULL), EMBER_OK);
    toy avg;
    toy_init(&avg);
    c.average = 0.8;
    assert_int_equal(run(&avg, &c, &o, NULL), EMBER_OK);
    /* training is the same; the result is the average */
    assert_int_equal(raw.n_seen, avg.n_seen);
    assert_memory_equal(raw.seen, avg.seen, raw.n_seen * sizeof raw.seen[0]);
    double expect[D];
    for (int k = 0; k < D; k++) {
        expect[k] = raw.seen[0][k];
        for (size_t s = 1; s <= raw.n_seen; s++) {
            double w = s < raw.n_seen ? raw.seen[s][k] : raw.w->value[k];
            expect[k] = 0.8 * expect[k] + 0.2 * w;
        }
        assert_float_equal(avg.w->value[k], expect[k], 1e-5);
        assert_true(fabs(avg.w->value[k] - raw.w->value[k]) > 1e-4);
    }
    nn_params_free(&raw.ps);
    nn_params_free(&avg.ps);
}

static void test_validation_sees_the_average_and_keeps_it(void **state)
{
    (void)state;
    toy t;
    toy_init(&t);
    deep_train_cfg c = toy_cfg(4, 20);
    c.average = 0.9;
    script s = {.scores = {0.1, 0.2, 0.4, 0.3}, .t = &t};
    ember_fit_opts o = {.threads = 1, .seed = 9, .valid_fn = scripted_valid, .valid_ctx = &s};
    assert_int_equal(run(&t, &c, &o, NULL), EMBER_OK);
    /* the validated values of epoch 3 are what the model keeps, and they
     * are not the raw weights that trained epoch 4 */
    assert_memory_equal(t.w->value, s.w_at[2], sizeof s.w_at[2]);
    assert_memory_not_equal(s.w_at[2], t.seen[15], sizeof s.w_at[2]);
    nn_params_free(&t.ps);
}

static void test_diverging_loss_is_an_error(void **state)
{
    (void)state;
    toy t;
    toy_init(&t);
    t.mode = 2;
    deep_train_cfg c = toy_cfg(3, 10);
    ember_fit_opts o = {.threads = 1, .seed = 3};
    assert_int_equal(run(&t, &c, &o, NULL), EMBER_EINVAL);
    assert_non_null(strstr(ember_last_error(), "diverged"));
    assert_int_equal(t.batches, 1);
    nn_params_free(&t.ps);
}

static void test_failed_graph_is_reported(void **state)
{
    (void)state;
    toy t;
    toy_init(&t);
    t.mode = 3; /* x has D + 1 columns: the matmul fails */
    deep_train_cfg c = toy_cfg(3, 10);
    ember_fit_opts o = {.threads = 1, .seed = 3};
    assert_int_equal(run(&t, &c, &o, NULL), EMBER_EINVAL);
    assert_non_null(strstr(ember_last_error(), "matmul"));
    nn_params_free(&t.ps);
}

static void test_epoch_begin_sets_the_example_count(void **state)
{
    (void)state;
    toy t;
    toy_init(&t);
    t.examples = 40;
    deep_train_cfg c = toy_cfg(2, 16);
    ember_fit_opts o = {.threads = 1, .seed = 3};
    assert_int_equal(run(&t, &c, &o, NULL), EMBER_OK);
    assert_int_equal(t.batches, 6);
    for (int i = 0; i < N; i++)
        assert_int_equal(t.visits[i], i < 40 ? 2 : 0);
    t.examples = 0;
    t.batches = 0;
    toy u;
    toy_init(&u);
    deep_train_cfg bad = toy_cfg(2, 0);
    assert_int_equal(run(&u, &bad, &o, NULL), EMBER_EINVAL);
    nn_params_free(&t.ps);
    nn_params_free(&u.ps);
}

/* ---------------------------------------------------------- negatives */

/* 3 users, 6 items: u0 has 0 1 2, u1 has every item, u2 has 0.  Counts:
 * item 0: 3, items 1 2: 2, items 3 4 5: 1. */
static ember_dataset *neg_dataset(void)
{
    ember_idmap *us = ember_idmap_new(), *is = ember_idmap_new();
    const char *un[3] = {"a", "b", "c"}, *in[6] = {"0", "1", "2", "3", "4", "5"};
    uint32_t id;
    for (int k = 0; k < 3; k++)
        assert_int_equal(ember_idmap_intern(us, un[k], 1, &id), EMBER_OK);
    for (int k = 0; k < 6; k++)
        assert_int_equal(ember_idmap_intern(is, in[k], 1, &id), EMBER_OK);
    ember_coo c = {0};
    for (uint32_t i = 0; i < 3; i++)
        assert_int_equal(ember_coo_push(&c, 0, i, 1, 0), EMBER_OK);
    for (uint32_t i = 0; i < 6; i++)
        assert_int_equal(ember_coo_push(&c, 1, i, 1, 0), EMBER_OK);
    assert_int_equal(ember_coo_push(&c, 2, 0, 1, 0), EMBER_OK);
    ember_dataset *d;
    assert_int_equal(ember_dataset_build(&c, us, is, &d), EMBER_OK);
    ember_coo_free(&c);
    ember_idmap_free(us);
    ember_idmap_free(is);
    return d;
}

static void test_negatives_are_never_positives(void **state)
{
    (void)state;
    ember_dataset *d = neg_dataset();
    ember_rng r;
    ember_rng_seed(&r, 1);
    for (int kind = 0; kind < 2; kind++) {
        deep_negs ns;
        deep_negs_init(&ns, d, (deep_neg_kind)kind);
        unsigned seen[6] = {0};
        for (int k = 0; k < 3000; k++) {
            uint32_t j = deep_negs_draw(&ns, &r, 0);
            assert_true(j >= 3 && j < 6);
            seen[j]++;
        }
        for (int j = 3; j < 6; j++)
            assert_true(seen[j] > 800); /* all three, about equally */
        assert_int_equal(deep_negs_draw(&ns, &r, 1), UINT32_MAX); /* has every item */
    }
    ember_dataset_free(d);
}

static void test_popularity_negatives_follow_the_counts(void **state)
{
    (void)state;
    ember_dataset *d = neg_dataset();
    ember_rng r;
    ember_rng_seed(&r, 2);
    deep_negs ns;
    deep_negs_init(&ns, d, DEEP_NEG_POP);
    /* user 2 has item 0: the rest in proportion 2:2:1:1:1 */
    unsigned seen[6] = {0};
    const int draws = 70000;
    for (int k = 0; k < draws; k++)
        seen[deep_negs_draw(&ns, &r, 2)]++;
    assert_int_equal(seen[0], 0);
    for (int j = 1; j < 6; j++) {
        double expect = draws * (j <= 2 ? 2.0 : 1.0) / 7.0;
        assert_true(fabs(seen[j] - expect) < 0.03 * expect);
    }
    ember_dataset_free(d);
}

static void test_sorted_has(void **state)
{
    (void)state;
    const uint32_t a[5] = {1, 4, 6, 9, 30};
    for (uint32_t x = 0; x < 32; x++)
        assert_int_equal(deep_sorted_has(a, 5, x), x == 1 || x == 4 || x == 6 || x == 9 || x == 30);
    assert_false(deep_sorted_has(a, 0, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_example_once_per_epoch_in_batches),
        cmocka_unit_test(test_loss_falls_and_the_fit_converges),
        cmocka_unit_test(test_patience_stops_and_best_epoch_is_restored),
        cmocka_unit_test(test_validation_every_few_epochs_only),
        cmocka_unit_test(test_log_has_a_json_line_per_epoch),
        cmocka_unit_test(test_same_seed_same_parameters_bit_for_bit),
        cmocka_unit_test(test_learning_rate_decays_per_epoch),
        cmocka_unit_test(test_average_of_the_weights_is_kept),
        cmocka_unit_test(test_validation_sees_the_average_and_keeps_it),
        cmocka_unit_test(test_diverging_loss_is_an_error),
        cmocka_unit_test(test_failed_graph_is_reported),
        cmocka_unit_test(test_epoch_begin_sets_the_example_count),
        cmocka_unit_test(test_negatives_are_never_positives),
        cmocka_unit_test(test_popularity_negatives_follow_the_counts),
        cmocka_unit_test(test_sorted_has),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
