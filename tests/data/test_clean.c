/*
 * test_clean.c — ember_coo_dedupe, ember_coo_filter_min (k-core) and
 * ember_coo_threshold on hand-made interaction lists, plus a random
 * comparison of dedupe with a brute-force reference.
 */
#include "testutil.h"

#include "data/data.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t u, i;
    float r;
    int64_t t;
} row;

static void fill(ember_coo *c, const row *rows, size_t n)
{
    memset(c, 0, sizeof *c);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(ember_coo_push(c, rows[k].u, rows[k].i, rows[k].r, rows[k].t), EMBER_OK);
}

static void assert_rows(const ember_coo *c, const row *want, size_t n)
{
    assert_int_equal(c->n, n);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(c->user[k], want[k].u);
        assert_int_equal(c->item[k], want[k].i);
        assert_true(c->rating[k] == want[k].r);
        assert_int_equal(c->ts[k], want[k].t);
    }
}

static void test_dedupe_keeps_latest_timestamp(void **state)
{
    (void)state;
    /* (0,7) three times: the row with ts 30 wins although it is not last */
    const row in[] = {{0, 7, 1, 10}, {0, 7, 2, 30}, {0, 7, 3, 20}};
    const row want[] = {{0, 7, 2, 30}};
    ember_coo c;
    fill(&c, in, 3);
    assert_int_equal(ember_coo_dedupe(&c), EMBER_OK);
    assert_rows(&c, want, 1);
    ember_coo_free(&c);
}

static void test_dedupe_ties_keep_last_in_file(void **state)
{
    (void)state;
    const row in[] = {{3, 1, 5, 100}, {3, 1, 4, 100}, {3, 1, 2, 50}, {3, 1, 3, 100}};
    const row want[] = {{3, 1, 3, 100}};
    ember_coo c;
    fill(&c, in, 4);
    assert_int_equal(ember_coo_dedupe(&c), EMBER_OK);
    assert_rows(&c, want, 1);
    ember_coo_free(&c);
}

static void test_dedupe_survivors_stay_in_file_order(void **state)
{
    (void)state;
    /* pairs (1,1) (0,2) (1,2) (0,1) (1,1)* (0,2)*: starred ones are later */
    const row in[] = {{1, 1, 1, 5}, {0, 2, 1, 5}, {1, 2, 1, 5},
                      {0, 1, 1, 5}, {1, 1, 2, 6}, {0, 2, 2, 5}};
    const row want[] = {{1, 2, 1, 5}, {0, 1, 1, 5}, {1, 1, 2, 6}, {0, 2, 2, 5}};
    ember_coo c;
    fill(&c, in, 6);
    assert_int_equal(ember_coo_dedupe(&c), EMBER_OK);
    assert_rows(&c, want, 4);
    ember_coo_free(&c);
}

static void test_dedupe_same_item_different_users_are_distinct(void **state)
{
    (void)state;
    const row in[] = {{0, 4, 1, 1}, {1, 4, 1, 1}, {2, 4, 1, 1}};
    ember_coo c;
    fill(&c, in, 3);
    assert_int_equal(ember_coo_dedupe(&c), EMBER_OK);
    assert_rows(&c, in, 3);
    ember_coo_free(&c);
}

static void test_dedupe_handles_sparse_indices(void **state)
{
    (void)state;
    /* indices far beyond the row count take the rank path */
    const row in[] = {{4000000000u, 3000000000u, 1, 2},
                      {7, 3000000000u, 1, 2},
                      {4000000000u, 3000000000u, 2, 1},
                      {7, 3000000000u, 3, 2}};
    const row want[] = {{4000000000u, 3000000000u, 1, 2}, {7, 3000000000u, 3, 2}};
    ember_coo c;
    fill(&c, in, 4);
    assert_int_equal(ember_coo_dedupe(&c), EMBER_OK);
    assert_rows(&c, want, 2);
    ember_coo_free(&c);
}

/* Brute force: row k survives when no other row of its pair is later by
 * (ts, position). */
static void test_dedupe_matches_brute_force_on_random_rows(void **state)
{
    (void)state;
    ember_rng rng;
    ember_rng_seed(&rng, 11);
    enum { N = 3000 };
    row *in = malloc(N * sizeof *in);
    uint8_t *keep = malloc(N);
    assert_non_null(in);
    assert_non_null(keep);
    for (size_t k = 0; k < N; k++) {
        in[k] = (row){(uint32_t)ember_rng_below(&rng, 40), (uint32_t)ember_rng_below(&rng, 30),
                      (float)k, (int64_t)ember_rng_below(&rng, 5)};
    }
    size_t n_keep = 0;
    for (size_t k = 0; k < N; k++) {
        keep[k] = 1;
        for (size_t j = 0; j < N && keep[k]; j++)
            if (j != k && in[j].u == in[k].u && in[j].i == in[k].i &&
                (in[j].t > in[k].t || (in[j].t == in[k].t && j > k)))
                keep[k] = 0;
        n_keep += keep[k];
    }
    ember_coo c;
    fill(&c, in, N);
    assert_int_equal(ember_coo_dedupe(&c), EMBER_OK);
    assert_int_equal(c.n, n_keep);
    size_t w = 0;
    for (size_t k = 0; k < N; k++) {
        if (!keep[k])
            continue;
        assert_true(c.rating[w] == (float)k); /* rating carries the position */
        w++;
    }
    ember_coo_free(&c);
    free(in);
    free(keep);
}

/* The k-core needs several rounds: item 3 has one user, removing it leaves
 * user 3 with one item, removing user 3 leaves item 2 with one user,
 * removing item 2 leaves user 2 with one item. */
static void test_filter_min_iterates_to_a_core(void **state)
{
    (void)state;
    const row in[] = {{0, 0, 1, 1}, {3, 3, 1, 2}, {1, 0, 1, 3}, {2, 1, 1, 4}, {0, 1, 1, 5},
                      {3, 2, 1, 6}, {1, 1, 1, 7}, {2, 2, 1, 8}};
    const row want[] = {{0, 0, 1, 1}, {1, 0, 1, 3}, {0, 1, 1, 5}, {1, 1, 1, 7}};
    ember_coo c;
    fill(&c, in, 8);
    assert_int_equal(ember_coo_filter_min(&c, 2, 2), EMBER_OK);
    assert_rows(&c, want, 4);
    ember_coo_free(&c);
}

static void test_filter_min_users_only(void **state)
{
    (void)state;
    /* min_item 0: items with one row stay; user 1 (one row) goes */
    const row in[] = {{0, 0, 1, 1}, {1, 1, 1, 2}, {0, 2, 1, 3}};
    const row want[] = {{0, 0, 1, 1}, {0, 2, 1, 3}};
    ember_coo c;
    fill(&c, in, 3);
    assert_int_equal(ember_coo_filter_min(&c, 2, 0), EMBER_OK);
    assert_rows(&c, want, 2);
    ember_coo_free(&c);
}

static void test_filter_min_items_only(void **state)
{
    (void)state;
    const row in[] = {{0, 0, 1, 1}, {1, 1, 1, 2}, {2, 0, 1, 3}, {2, 1, 1, 4}, {0, 5, 1, 5}};
    const row want[] = {{0, 0, 1, 1}, {1, 1, 1, 2}, {2, 0, 1, 3}, {2, 1, 1, 4}};
    ember_coo c;
    fill(&c, in, 5);
    assert_int_equal(ember_coo_filter_min(&c, 0, 2), EMBER_OK);
    assert_rows(&c, want, 4);
    ember_coo_free(&c);
}

static void test_filter_min_can_empty_everything(void **state)
{
    (void)state;
    const row in[] = {{0, 0, 1, 1}, {0, 1, 1, 2}, {1, 0, 1, 3}};
    ember_coo c;
    fill(&c, in, 3);
    assert_int_equal(ember_coo_filter_min(&c, 3, 3), EMBER_OK);
    assert_int_equal(c.n, 0);
    ember_coo_free(&c);
}

static void test_filter_min_one_keeps_everything(void **state)
{
    (void)state;
    const row in[] = {{0, 0, 1, 1}, {1, 1, 1, 2}};
    ember_coo c;
    fill(&c, in, 2);
    assert_int_equal(ember_coo_filter_min(&c, 1, 1), EMBER_OK);
    assert_rows(&c, in, 2);
    ember_coo_free(&c);
}

static void test_filter_min_counts_duplicates(void **state)
{
    (void)state;
    /* user 0 rates item 0 twice: two interactions, so it meets min 2 */
    const row in[] = {{0, 0, 1, 1}, {0, 0, 2, 2}, {1, 0, 1, 3}};
    const row want[] = {{0, 0, 1, 1}, {0, 0, 2, 2}};
    ember_coo c;
    fill(&c, in, 3);
    assert_int_equal(ember_coo_filter_min(&c, 2, 0), EMBER_OK);
    assert_rows(&c, want, 2);
    ember_coo_free(&c);
}

static void test_filter_min_handles_sparse_indices(void **state)
{
    (void)state;
    const row in[] = {{900000000u, 5, 1, 1}, {900000000u, 6, 1, 2}, {12, 5, 1, 3}};
    const row want[] = {{900000000u, 5, 1, 1}, {900000000u, 6, 1, 2}};
    ember_coo c;
    fill(&c, in, 3);
    assert_int_equal(ember_coo_filter_min(&c, 2, 0), EMBER_OK);
    assert_rows(&c, want, 2);
    ember_coo_free(&c);
}

static void test_threshold_keeps_at_or_above_as_one(void **state)
{
    (void)state;
    const row in[] = {{0, 0, 3.5f, 1}, {0, 1, 4, 2}, {1, 0, 5, 3}, {1, 2, 3.99f, 4}, {2, 2, 4.5f, 5}};
    const row want[] = {{0, 1, 1, 2}, {1, 0, 1, 3}, {2, 2, 1, 5}};
    ember_coo c;
    fill(&c, in, 5);
    ember_coo_threshold(&c, 4.0f);
    assert_rows(&c, want, 3);
    ember_coo_free(&c);
}

static void test_cleaning_empty_coo_is_fine(void **state)
{
    (void)state;
    ember_coo c = {0};
    assert_int_equal(ember_coo_dedupe(&c), EMBER_OK);
    assert_int_equal(ember_coo_filter_min(&c, 5, 5), EMBER_OK);
    ember_coo_threshold(&c, 1.0f);
    assert_int_equal(c.n, 0);
}

/* SQLite's way: the Nth allocation of the call fails, for N = 1, 2, ...
 * until the call succeeds; every failure is a clean ENOMEM that leaves the
 * rows as they were. */
static void run_with_failing_allocations(const row *in, size_t n, int (*op)(ember_coo *),
                                         const row *want, size_t n_want)
{
    long nth;
    for (nth = 1; nth < 100; nth++) {
        ember_coo c;
        fill(&c, in, n);
        ember_fault_inject_alloc(nth);
        int st = op(&c);
        ember_fault_inject_alloc(0);
        if (st == EMBER_OK) {
            assert_rows(&c, want, n_want);
            ember_coo_free(&c);
            break;
        }
        assert_int_equal(st, EMBER_ENOMEM);
        assert_rows(&c, in, n);
        ember_coo_free(&c);
    }
    assert_true(nth > 1 && nth < 100);
}

static int dedupe_op(ember_coo *c)
{
    return ember_coo_dedupe(c);
}

static int core_op(ember_coo *c)
{
    return ember_coo_filter_min(c, 2, 2);
}

static void test_dedupe_survives_allocation_failures(void **state)
{
    (void)state;
    const row in[] = {{0, 0, 1, 1}, {0, 0, 2, 2}, {1, 0, 1, 3}};
    const row want[] = {{0, 0, 2, 2}, {1, 0, 1, 3}};
    run_with_failing_allocations(in, 3, dedupe_op, want, 2);
}

static void test_filter_min_survives_allocation_failures(void **state)
{
    (void)state;
    const row in[] = {{0, 0, 1, 1}, {0, 1, 1, 2}, {1, 0, 1, 3}, {1, 1, 1, 4}, {2, 0, 1, 5}};
    const row want[] = {{0, 0, 1, 1}, {0, 1, 1, 2}, {1, 0, 1, 3}, {1, 1, 1, 4}};
    run_with_failing_allocations(in, 5, core_op, want, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedupe_keeps_latest_timestamp),
        cmocka_unit_test(test_dedupe_ties_keep_last_in_file),
        cmocka_unit_test(test_dedupe_survivors_stay_in_file_order),
        cmocka_unit_test(test_dedupe_same_item_different_users_are_distinct),
        cmocka_unit_test(test_dedupe_handles_sparse_indices),
        cmocka_unit_test(test_dedupe_matches_brute_force_on_random_rows),
        cmocka_unit_test(test_filter_min_iterates_to_a_core),
        cmocka_unit_test(test_filter_min_users_only),
        cmocka_unit_test(test_filter_min_items_only),
        cmocka_unit_test(test_filter_min_can_empty_everything),
        cmocka_unit_test(test_filter_min_one_keeps_everything),
        cmocka_unit_test(test_filter_min_counts_duplicates),
        cmocka_unit_test(test_filter_min_handles_sparse_indices),
        cmocka_unit_test(test_threshold_keeps_at_or_above_as_one),
        cmocka_unit_test(test_cleaning_empty_coo_is_fine),
        cmocka_unit_test(test_dedupe_survives_allocation_failures),
        cmocka_unit_test(test_filter_min_survives_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
