/*
 * test_explain.c — why an item is recommended (ember_model_explain,
 * src/models/model.c): exact shares that add up to the score for the
 * additive models (itemknn, ease) and for als (the least-squares
 * decomposition of a history's fold-in), leave-one-out for the others
 * (checked against the scores it is made of), no reasons from pop, the
 * order and the cap, and bad queries refused.  On synthetic data.
 */
#include "testutil.h"

#include "data/data.h"
#include "models/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static ember_dataset *train;

static int setup(void **state)
{
    (void)state;
    train = test_synth_dataset(200, 300, 6000, 1);
    return train ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ember_dataset_free(train);
    return 0;
}

static ember_model *fitted(const char *name, const char *const *params)
{
    return test_fit(name, params, train, 1, 2);
}

/* The top recommendation of user u. */
static uint32_t top_item(const ember_model *m, int64_t u)
{
    ember_query q = {.user = u};
    uint32_t it;
    size_t n;
    assert_int_equal(ember_model_recommend(m, &q, 1, 1, &it, NULL, &n), EMBER_OK);
    assert_int_equal(n, 1);
    return it;
}

static void check_sorted(const ember_reason *r, size_t n)
{
    for (size_t k = 1; k < n; k++)
        assert_true(r[k].weight <= r[k - 1].weight);
}

static void test_additive_models_split_the_score_exactly(void **state)
{
    (void)state;
    static const char *const knn_p[] = {"k=30", NULL};
    static const char *const ease_p[] = {"reg=50", NULL};
    const char *names[] = {"itemknn", "ease"};
    const char *const *params[] = {knn_p, ease_p};
    for (int t = 0; t < 2; t++) {
        ember_model *m = fitted(names[t], params[t]);
        for (int64_t u = 0; u < 20; u++) {
            uint32_t it = top_item(m, u);
            ember_query q = {.user = u};
            ember_reason r[1000];
            size_t n;
            float score;
            int method;
            assert_int_equal(ember_model_explain(m, &q, it, r, 1000, &n, &score, &method),
                             EMBER_OK);
            assert_int_equal(method, EMBER_EXPLAIN_EXACT);
            check_sorted(r, n);
            double sum = 0;
            for (size_t k = 0; k < n; k++)
                sum += r[k].weight;
            assert_float_equal(sum, score, 1e-4 * (1 + fabs(score)));
            /* a reason is the score of that item alone (once in the history) */
            ember_query one = {.user = -1, .hist = &r[0].item, .n_hist = 1};
            float alone;
            assert_int_equal(ember_model_score(m, &one, &it, 1, &alone), EMBER_OK);
            size_t times = 0;
            for (uint64_t e = m->hist.ptr[u]; e < m->hist.ptr[u + 1]; e++)
                times += m->hist.item[e] == r[0].item;
            assert_true(times >= 1);
            assert_float_equal(r[0].weight, alone * (float)times, 1e-5);
        }
        ember_model_free(m);
    }
}

static void test_als_shares_add_up_to_the_history_score(void **state)
{
    (void)state;
    static const char *const p[] = {"factors=8", "iterations=5", "solver=cholesky", NULL};
    ember_model *m = fitted("als", p);
    for (int64_t u = 0; u < 20; u++) {
        uint32_t it = top_item(m, u);
        /* the user's history as a new user: the fold-in the shares split */
        uint64_t a = m->hist.ptr[u], b = m->hist.ptr[u + 1];
        ember_query as_new = {.user = -1, .hist = m->hist.item + a, .n_hist = (size_t)(b - a)};
        ember_reason r[1000];
        size_t n;
        float score;
        int method;
        assert_int_equal(ember_model_explain(m, &as_new, it, r, 1000, &n, &score, &method),
                         EMBER_OK);
        assert_int_equal(method, EMBER_EXPLAIN_EXACT);
        check_sorted(r, n);
        double sum = 0;
        for (size_t k = 0; k < n; k++)
            sum += r[k].weight;
        assert_float_equal(sum, score, 1e-4 * (1 + fabs(score)));
        assert_true(r[0].weight > 0);
    }
    ember_model_free(m);
}

static void test_other_models_leave_one_out(void **state)
{
    (void)state;
    static const char *const p[] = {"factors=8", "epochs=5", NULL};
    ember_model *m = fitted("bpr", p);
    int64_t u = 3;
    uint32_t it = top_item(m, u);
    ember_query q = {.user = u};
    ember_reason r[5];
    size_t n;
    float score;
    int method;
    assert_int_equal(ember_model_explain(m, &q, it, r, 5, &n, &score, &method), EMBER_OK);
    assert_int_equal(method, EMBER_EXPLAIN_LEAVE_ONE_OUT);
    assert_true(n >= 1 && n <= 5);
    check_sorted(r, n);
    /* the first weight: the history's score minus the score without it */
    uint64_t a = m->hist.ptr[u], b = m->hist.ptr[u + 1];
    uint32_t *rest = malloc((size_t)(b - a) * sizeof *rest);
    uint32_t *hist = malloc((size_t)(b - a) * sizeof *hist);
    size_t nr = 0, nh = 0;
    for (uint64_t e = a; e < b; e++) {
        bool dup = false;
        for (size_t t = 0; t < nh; t++)
            dup |= hist[t] == m->hist.item[e];
        if (!dup)
            hist[nh++] = m->hist.item[e];
    }
    for (size_t t = 0; t < nh; t++)
        if (hist[t] != r[0].item)
            rest[nr++] = hist[t];
    assert_int_equal(nr + 1, nh);
    float with, without;
    ember_query qa = {.user = -1, .hist = hist, .n_hist = nh};
    ember_query qb = {.user = -1, .hist = rest, .n_hist = nr};
    assert_int_equal(ember_model_score(m, &qa, &it, 1, &with), EMBER_OK);
    assert_int_equal(ember_model_score(m, &qb, &it, 1, &without), EMBER_OK);
    /* (bpr folds in the sorted distinct items: the order does not matter) */
    assert_true(r[0].weight > 0);
    assert_float_equal(r[0].weight, with - without, 1e-5);
    free(rest);
    free(hist);
    ember_model_free(m);
}

static void test_pop_gives_no_reasons(void **state)
{
    (void)state;
    ember_model *m = fitted("pop", NULL);
    ember_query q = {.user = 1};
    ember_reason r[5];
    size_t n = 99;
    float score;
    int method = -1;
    assert_int_equal(ember_model_explain(m, &q, top_item(m, 1), r, 5, &n, &score, &method),
                     EMBER_OK);
    assert_int_equal(n, 0);
    assert_int_equal(method, EMBER_EXPLAIN_NONE);
    assert_true(score > 0);
    ember_model_free(m);
}

static void test_cap_and_bad_queries(void **state)
{
    (void)state;
    ember_model *m = fitted("itemknn", NULL);
    ember_query q = {.user = 0};
    ember_reason r[2];
    size_t n;
    float score;
    int method;
    assert_int_equal(ember_model_explain(m, &q, top_item(m, 0), r, 2, &n, &score, &method),
                     EMBER_OK);
    assert_true(n <= 2);
    assert_int_equal(ember_model_explain(m, &q, (uint32_t)m->n_items, r, 2, &n, &score, &method),
                     EMBER_EINVAL);
    ember_query bad = {.user = (int64_t)m->n_users};
    assert_int_equal(ember_model_explain(m, &bad, 0, r, 2, &n, &score, &method), EMBER_EINVAL);
    uint32_t h = (uint32_t)m->n_items;
    ember_query bad_hist = {.user = -1, .hist = &h, .n_hist = 1};
    assert_int_equal(ember_model_explain(m, &bad_hist, 0, r, 2, &n, &score, &method),
                     EMBER_EINVAL);
    ember_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_additive_models_split_the_score_exactly),
        cmocka_unit_test(test_als_shares_add_up_to_the_history_score),
        cmocka_unit_test(test_other_models_leave_one_out),
        cmocka_unit_test(test_pop_gives_no_reasons),
        cmocka_unit_test(test_cap_and_bad_queries),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
