/*
 * test_recommend_users.c — top-k for many users at once
 * (ember_model_recommend_users, src/models/model.c): for the factor
 * models (one blocked search, core/mips.c) the lists are those of
 * ember_model_recommend user by user, up to float rounding of near ties;
 * for the other models (user by user) exactly the same; seen items left
 * out or kept; bad users refused.  On synthetic data (no external files).
 */
#include "testutil.h"

#include "data/data.h"
#include "models/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ember_dataset *train;

static int setup(void **state)
{
    (void)state;
    train = test_synth_dataset(400, 700, 12000, 1);
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
    return test_fit(name, params, train, 2, 3);
}

/* Every user's batched list against ember_model_recommend's: the same
 * length; at each rank the same score (to rounding), and the same item
 * unless its score ties with a neighbour's (to rounding). */
static void check_against_one_by_one(const ember_model *m, int include_seen, bool exact)
{
    enum { K = 10 };
    size_t n = ember_dataset_n_users(train);
    uint32_t *users = malloc(n * sizeof *users), *items = malloc(n * K * sizeof *items);
    float *scores = malloc(n * K * sizeof *scores);
    uint32_t *counts = malloc(n * sizeof *counts);
    for (size_t j = 0; j < n; j++)
        users[j] = (uint32_t)(n - 1 - j); /* any order */
    assert_int_equal(ember_model_recommend_users(m, users, n, K, include_seen, 2, items, scores,
                                                 counts),
                     EMBER_OK);
    size_t differ = 0;
    for (size_t j = 0; j < n; j++) {
        ember_query q = {.user = users[j]};
        uint32_t want[K];
        float ws[K];
        size_t got;
        assert_int_equal(ember_model_recommend(m, &q, K, !include_seen, want, ws, &got), EMBER_OK);
        assert_int_equal(counts[j], got);
        for (size_t r = 0; r < got; r++) {
            float s = scores[j * K + r];
            if (exact) {
                assert_int_equal(items[j * K + r], want[r]);
                assert_true(s == ws[r]);
                continue;
            }
            assert_float_equal(s, ws[r], 1e-4 * (1 + fabsf(ws[r])));
            if (items[j * K + r] != want[r]) {
                /* only where two scores tie to rounding */
                bool tie = (r > 0 && fabsf(ws[r] - ws[r - 1]) < 1e-4f) ||
                           (r + 1 < got && fabsf(ws[r] - ws[r + 1]) < 1e-4f) ||
                           (r + 1 == got);
                assert_true(tie);
                differ++;
            }
        }
    }
    print_message("%s: %zu of %zu entries differ (near ties)\n", ember_model_name(m), differ,
                  n * K);
    assert_true(differ <= n * K / 1000);
    free(users);
    free(items);
    free(scores);
    free(counts);
}

static void test_factor_models_match_one_by_one(void **state)
{
    (void)state;
    static const char *const als_p[] = {"factors=16", "iterations=3", NULL};
    static const char *const bpr_p[] = {"factors=16", "epochs=3", NULL};
    static const char *const svd_p[] = {"factors=16", "epochs=3", NULL};
    static const char *const svdpp_p[] = {"factors=16", "epochs=2", NULL};
    const char *names[] = {"als", "bpr", "svd", "svdpp"};
    const char *const *params[] = {als_p, bpr_p, svd_p, svdpp_p};
    for (size_t t = 0; t < 4; t++) {
        ember_model *m = fitted(names[t], params[t]);
        check_against_one_by_one(m, 0, false);
        check_against_one_by_one(m, 1, false);
        ember_model_free(m);
    }
}

static void test_other_models_match_one_by_one_exactly(void **state)
{
    (void)state;
    static const char *const knn_p[] = {"k=20", NULL};
    ember_model *m = fitted("itemknn", knn_p);
    check_against_one_by_one(m, 0, true);
    ember_model_free(m);
    m = fitted("pop", NULL);
    check_against_one_by_one(m, 1, true);
    ember_model_free(m);
}

static void test_seen_items_left_out(void **state)
{
    (void)state;
    static const char *const als_p[] = {"factors=8", "iterations=2", NULL};
    ember_model *m = fitted("als", als_p);
    size_t n = ember_dataset_n_users(train), k = 50;
    uint32_t *users = malloc(n * sizeof *users), *items = malloc(n * k * sizeof *items);
    uint32_t *counts = malloc(n * sizeof *counts);
    for (size_t j = 0; j < n; j++)
        users[j] = (uint32_t)j;
    assert_int_equal(ember_model_recommend_users(m, users, n, k, 0, 1, items, NULL, counts),
                     EMBER_OK);
    for (size_t j = 0; j < n; j++)
        for (size_t r = 0; r < counts[j]; r++)
            for (uint64_t e = m->hist.ptr[j]; e < m->hist.ptr[j + 1]; e++)
                assert_true(items[j * k + r] != m->hist.item[e]);
    free(users);
    free(items);
    free(counts);
    ember_model_free(m);
}

static void test_more_than_the_catalogue_gives_what_is_left(void **state)
{
    (void)state;
    static const char *const bpr_p[] = {"factors=8", "epochs=1", NULL};
    ember_model *m = fitted("bpr", bpr_p);
    size_t ni = ember_model_n_items(m), k = ni + 5;
    uint32_t users[2] = {0, 1}, counts[2];
    uint32_t *items = malloc(2 * k * sizeof *items);
    assert_int_equal(ember_model_recommend_users(m, users, 2, k, 0, 2, items, NULL, counts),
                     EMBER_OK);
    for (size_t j = 0; j < 2; j++) {
        size_t seen = 0;
        /* distinct seen items */
        bool *mark = calloc(ni, 1);
        for (uint64_t e = m->hist.ptr[j]; e < m->hist.ptr[j + 1]; e++)
            if (!mark[m->hist.item[e]])
                mark[m->hist.item[e]] = true, seen++;
        assert_int_equal(counts[j], ni - seen);
        free(mark);
    }
    assert_int_equal(ember_model_recommend_users(m, users, 2, k, 1, 2, items, NULL, counts),
                     EMBER_OK);
    assert_int_equal(counts[0], ni);
    free(items);
    ember_model_free(m);
}

static void test_bad_users_refused(void **state)
{
    (void)state;
    ember_model *m = fitted("pop", NULL);
    uint32_t users[2] = {0, (uint32_t)ember_dataset_n_users(train)}, items[20], counts[2];
    assert_int_equal(ember_model_recommend_users(m, users, 2, 10, 0, 1, items, NULL, counts),
                     EMBER_EINVAL);
    ember_model_free(m);
    ember_model *fresh;
    assert_int_equal(ember_model_new("als", NULL, &fresh), EMBER_OK);
    assert_int_equal(ember_model_recommend_users(fresh, users, 1, 10, 0, 1, items, NULL, counts),
                     EMBER_EINVAL);
    ember_model_free(fresh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_factor_models_match_one_by_one),
        cmocka_unit_test(test_other_models_match_one_by_one_exactly),
        cmocka_unit_test(test_seen_items_left_out),
        cmocka_unit_test(test_more_than_the_catalogue_gives_what_is_left),
        cmocka_unit_test(test_bad_users_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
