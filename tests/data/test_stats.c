/* test_stats.c — dataset statistics (src/data/stats.c) on small hand-made
 * datasets whose every figure is worked out in the comments. */
#include "testutil.h"

#include "data/data.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Doubles compared to 1e-9, with both values printed on failure. */
static void near(double got, double want, const char *what, int line)
{
    if (!(fabs(got - want) <= 1e-9))
        fail_msg("line %d: %s = %.12g, expected %.12g", line, what, got, want);
}
#define assert_near(got, want) near((got), (want), #got, __LINE__)

/* Reads TSV text into a dataset; extra_items are added to the item map
 * after reading (items without interactions). */
static ember_dataset *load(const char *text, const char *const *extra_items, size_t n_extra)
{
    ember_idmap *users = ember_idmap_new(), *items = ember_idmap_new();
    ember_coo c = {0};
    assert_int_equal(
        ember_coo_read_mem("hand.tsv", text, strlen(text), NULL, users, items, &c, NULL),
        EMBER_OK);
    for (size_t k = 0; k < n_extra; k++) {
        uint32_t idx;
        assert_int_equal(ember_idmap_intern(items, extra_items[k], strlen(extra_items[k]), &idx),
                         EMBER_OK);
    }
    ember_dataset *d;
    assert_int_equal(ember_dataset_build(&c, users, items, &d), EMBER_OK);
    ember_coo_free(&c);
    ember_idmap_free(users);
    ember_idmap_free(items);
    return d;
}

/* 4 users, 5 items with interactions plus "q" with none (6 items), 10 rows.
 * Item counts: x 4, y 3, z 1, w 1, v 1, q 0.  User lengths: a 4, b 2, c 2,
 * d 2.  Ratings sum to 33. */
static const char hand[] = "user\titem\trating\ttimestamp\n"
                           "a\tx\t5\t100\n"
                           "a\ty\t3\t200\n"
                           "a\tz\t4\t300\n"
                           "a\tw\t1\t400\n"
                           "b\tx\t4\t150\n"
                           "b\ty\t2\t250\n"
                           "c\tx\t3\t500\n"
                           "c\tv\t5\t50\n"
                           "d\tx\t2\t1000\n"
                           "d\ty\t4\t600\n";
static const char *const hand_extra[] = {"q"};

static void test_stats_counts_and_density(void **state)
{
    ember_dataset *d = load(hand, hand_extra, 1);
    data_stats s;
    assert_int_equal(data_stats_compute(d, &s), EMBER_OK);
    assert_int_equal(s.n_users, 4);
    assert_int_equal(s.n_items, 6);
    assert_int_equal(s.nnz, 10);
    assert_near(s.density, 10.0 / 24.0);
    ember_dataset_free(d);
}

static void test_stats_rating_range_and_mean(void **state)
{
    ember_dataset *d = load(hand, hand_extra, 1);
    data_stats s;
    assert_int_equal(data_stats_compute(d, &s), EMBER_OK);
    assert_near(s.rating_min, 1.0);
    assert_near(s.rating_max, 5.0);
    assert_near(s.rating_mean, 3.3);
    ember_dataset_free(d);
}

static void test_stats_time_range(void **state)
{
    ember_dataset *d = load(hand, hand_extra, 1);
    data_stats s;
    assert_int_equal(data_stats_compute(d, &s), EMBER_OK);
    assert_int_equal(s.t_min, 50);
    assert_int_equal(s.t_max, 1000);
    ember_dataset_free(d);
}

/* Counts ascending 0 1 1 1 3 4 (total 10): the top ceil(1% of 6) = 1 item
 * holds 4, ceil(10% of 6) = 1 item 4, ceil(20% of 6) = 2 items 7. */
static void test_stats_head_shares_and_single_interaction_items(void **state)
{
    ember_dataset *d = load(hand, hand_extra, 1);
    data_stats s;
    assert_int_equal(data_stats_compute(d, &s), EMBER_OK);
    assert_near(s.head1, 0.4);
    assert_near(s.head10, 0.4);
    assert_near(s.head20, 0.7);
    assert_int_equal(s.items_once, 3);
    ember_dataset_free(d);
}

/* G = sum_i (2i - n - 1) x_i / (n sum x) over 0 1 1 1 3 4:
 * (-5*0 - 3*1 - 1*1 + 1*1 + 3*3 + 5*4) / (6 * 10) = 26 / 60. */
static void test_stats_gini_of_item_counts(void **state)
{
    ember_dataset *d = load(hand, hand_extra, 1);
    data_stats s;
    assert_int_equal(data_stats_compute(d, &s), EMBER_OK);
    assert_near(s.item_gini, 26.0 / 60.0);
    ember_dataset_free(d);
}

/* Lengths 2 2 2 4: p25 at position 0.75 -> 2, median at 1.5 -> 2, p75 at
 * 2.25 -> 2 + 0.25 * 2 = 2.5, p90 at 2.7 -> 2 + 0.7 * 2 = 3.4. */
static void test_stats_user_length_percentiles_interpolate(void **state)
{
    ember_dataset *d = load(hand, hand_extra, 1);
    data_stats s;
    assert_int_equal(data_stats_compute(d, &s), EMBER_OK);
    assert_near(s.ulen_min, 2);
    assert_near(s.ulen_p25, 2);
    assert_near(s.ulen_p50, 2);
    assert_near(s.ulen_p75, 2.5);
    assert_near(s.ulen_p90, 3.4);
    assert_near(s.ulen_max, 4);
    assert_near(s.ulen_mean, 2.5);
    assert_near(s.ilen_mean, 10.0 / 6.0);
    assert_near(s.ilen_max, 4);
    ember_dataset_free(d);
}

/* User k (k = 1..5) has items 1..len_k with lengths 1 2 3 4 10: item
 * counts 5 4 3 2 1 1 1 1 1 1 (20 in all, 10 items).  Percentiles of the
 * lengths: p25 -> 2, median -> 3, p75 -> 4, p90 at 3.6 -> 4 + 0.6 * 6 = 7.6.
 * Top 10% = 1 item: 5/20; top 20% = 2 items: 9/20.  Gini over 1 1 1 1 1 1
 * 2 3 4 5: (-9-7-5-3-1+1 + 3*2 + 5*3 + 7*4 + 9*5) / (10 * 20) = 70/200. */
static void test_stats_staircase_dataset(void **state)
{
    static const size_t lens[] = {1, 2, 3, 4, 10};
    char text[2048] = "user\titem\n";
    for (size_t u = 0; u < 5; u++)
        for (size_t i = 1; i <= lens[u]; i++) {
            char row[32];
            snprintf(row, sizeof row, "u%zu\ti%zu\n", u + 1, i);
            strcat(text, row);
        }
    ember_dataset *d = load(text, NULL, 0);
    data_stats s;
    assert_int_equal(data_stats_compute(d, &s), EMBER_OK);
    assert_int_equal(s.nnz, 20);
    assert_near(s.density, 20.0 / 50.0);
    assert_near(s.ulen_p25, 2);
    assert_near(s.ulen_p50, 3);
    assert_near(s.ulen_p75, 4);
    assert_near(s.ulen_p90, 7.6);
    assert_near(s.ulen_max, 10);
    assert_near(s.head1, 0.25);
    assert_near(s.head10, 0.25);
    assert_near(s.head20, 0.45);
    assert_near(s.item_gini, 0.35);
    assert_int_equal(s.items_once, 6);
    /* no rating column: every rating is 1 */
    assert_near(s.rating_min, 1);
    assert_near(s.rating_mean, 1);
    ember_dataset_free(d);
}

/* One item holds everything among 4: counts 0 0 0 3 give (n-1)/n = 0.75;
 * equal counts give 0. */
static void test_stats_gini_extremes(void **state)
{
    static const char *const idle[] = {"y", "z", "w"};
    ember_dataset *d = load("user\titem\na\tx\nb\tx\nc\tx\n", idle, 3);
    data_stats s;
    assert_int_equal(data_stats_compute(d, &s), EMBER_OK);
    assert_near(s.item_gini, 0.75);
    assert_near(s.head1, 1.0);
    ember_dataset_free(d);
    d = load("user\titem\na\tx\na\ty\nb\tz\nb\tw\n", NULL, 0);
    assert_int_equal(data_stats_compute(d, &s), EMBER_OK);
    assert_near(s.item_gini, 0.0);
    assert_near(s.head20, 0.25); /* ceil(0.8) = 1 item of 4 */
    ember_dataset_free(d);
}

static void test_stats_empty_dataset_is_all_zero(void **state)
{
    ember_dataset *d = load("user\titem\trating\ttimestamp\n", NULL, 0);
    data_stats s;
    memset(&s, 0xff, sizeof s);
    assert_int_equal(data_stats_compute(d, &s), EMBER_OK);
    assert_int_equal(s.n_users, 0);
    assert_int_equal(s.n_items, 0);
    assert_int_equal(s.nnz, 0);
    assert_near(s.density, 0);
    assert_near(s.rating_mean, 0);
    assert_near(s.item_gini, 0);
    assert_near(s.ulen_p50, 0);
    ember_dataset_free(d);
}

static void test_stats_null_dataset_is_invalid(void **state)
{
    data_stats s;
    assert_int_equal(data_stats_compute(NULL, &s), EMBER_EINVAL);
}

static void test_stats_ml100k_matches_known_figures(void **state)
{
    TEST_REQUIRE_DATA(path, "ml-100k/ml-100k.inter");
    ember_dataset *d;
    assert_int_equal(ember_dataset_load(path, NULL, NULL, NULL, &d, NULL), EMBER_OK);
    data_stats s;
    assert_int_equal(data_stats_compute(d, &s), EMBER_OK);
    assert_int_equal(s.n_users, 943);
    assert_int_equal(s.n_items, 1682);
    assert_int_equal(s.nnz, 100000);
    assert_near(s.density, 100000.0 / (943.0 * 1682.0));
    assert_near(s.ulen_min, 20); /* ML-100K keeps users with >= 20 ratings */
    assert_near(s.ulen_mean, 100000.0 / 943.0);
    assert_true(s.rating_mean > 3.52 && s.rating_mean < 3.54);
    ember_dataset_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_counts_and_density),
        cmocka_unit_test(test_stats_rating_range_and_mean),
        cmocka_unit_test(test_stats_time_range),
        cmocka_unit_test(test_stats_head_shares_and_single_interaction_items),
        cmocka_unit_test(test_stats_gini_of_item_counts),
        cmocka_unit_test(test_stats_user_length_percentiles_interpolate),
        cmocka_unit_test(test_stats_staircase_dataset),
        cmocka_unit_test(test_stats_gini_extremes),
        cmocka_unit_test(test_stats_empty_dataset_is_all_zero),
        cmocka_unit_test(test_stats_null_dataset_is_invalid),
        cmocka_unit_test(test_stats_ml100k_matches_known_figures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
