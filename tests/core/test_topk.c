/* test_topk.c — ember_topk against hand-made cases and a brute-force sort
 * (score descending, index ascending, -inf and NaN left out). */
#include "testutil.h"

#include "core/topk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_topk_returns_best_first(void **state)
{
    const float s[6] = {0.5f, 2.0f, -1.0f, 2.5f, 3.0f, 0.0f};
    uint32_t idx[3];
    float val[3];
    size_t n = 99;
    ember_topk(s, 6, 3, idx, val, &n);
    assert_int_equal(n, 3);
    assert_int_equal(idx[0], 4);
    assert_int_equal(idx[1], 3);
    assert_int_equal(idx[2], 1);
    assert_float_equal(val[0], 3.0f, 0.0f);
    assert_float_equal(val[1], 2.5f, 0.0f);
    assert_float_equal(val[2], 2.0f, 0.0f);
}

static void test_topk_breaks_ties_by_smaller_index(void **state)
{
    /* 1 at 1, 3, 4, 6; 2 at 5: top 3 = 5, 1, 3 */
    const float s[7] = {0, 1, 0, 1, 1, 2, 1};
    uint32_t idx[3];
    size_t n;
    ember_topk(s, 7, 3, idx, NULL, &n);
    assert_int_equal(n, 3);
    assert_int_equal(idx[0], 5);
    assert_int_equal(idx[1], 1);
    assert_int_equal(idx[2], 3);
}

static void test_topk_k_larger_than_n_returns_all_sorted(void **state)
{
    const float s[4] = {1, 4, 2, 3};
    uint32_t idx[10];
    float val[10];
    size_t n;
    ember_topk(s, 4, 10, idx, val, &n);
    assert_int_equal(n, 4);
    const uint32_t want[4] = {1, 3, 2, 0};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(idx[i], want[i]);
        assert_float_equal(val[i], s[want[i]], 0.0f);
    }
}

static void test_topk_k_zero_returns_nothing(void **state)
{
    const float s[3] = {1, 2, 3};
    size_t n = 7;
    ember_topk(s, 3, 0, NULL, NULL, &n);
    assert_int_equal(n, 0);
}

static void test_topk_empty_input_returns_nothing(void **state)
{
    uint32_t idx[2];
    size_t n = 7;
    ember_topk(NULL, 0, 2, idx, NULL, &n);
    assert_int_equal(n, 0);
}

static void test_topk_all_excluded_returns_nothing(void **state)
{
    const float s[4] = {-INFINITY, NAN, -INFINITY, -NAN};
    uint32_t idx[3];
    size_t n = 7;
    ember_topk(s, 4, 3, idx, NULL, &n);
    assert_int_equal(n, 0);
}

static void test_topk_never_returns_nan_or_minus_inf(void **state)
{
    /* two usable entries: -5 at 2 and +inf at 4 */
    const float s[6] = {NAN, -INFINITY, -5.0f, NAN, INFINITY, -INFINITY};
    uint32_t idx[5];
    float val[5];
    size_t n;
    ember_topk(s, 6, 5, idx, val, &n);
    assert_int_equal(n, 2);
    assert_int_equal(idx[0], 4);
    assert_true(isinf(val[0]) && val[0] > 0);
    assert_int_equal(idx[1], 2);
    assert_float_equal(val[1], -5.0f, 0.0f);
}

static void test_topk_nan_after_heap_is_full_is_ignored(void **state)
{
    const float s[5] = {1, 2, NAN, 3, NAN};
    uint32_t idx[2];
    size_t n;
    ember_topk(s, 5, 2, idx, NULL, &n);
    assert_int_equal(n, 2);
    assert_int_equal(idx[0], 3);
    assert_int_equal(idx[1], 1);
}

/* Brute force: usable indices sorted by (score desc, index asc). */
static const float *cmp_scores;

static int cmp_rank(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (cmp_scores[x] != cmp_scores[y])
        return cmp_scores[x] > cmp_scores[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static size_t brute_topk(const float *s, size_t n, size_t k, uint32_t *out)
{
    uint32_t *all = malloc((n + 1) * sizeof *all);
    assert_non_null(all);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!isnan(s[i]) && s[i] != -INFINITY)
            all[m++] = (uint32_t)i;
    cmp_scores = s;
    qsort(all, m, sizeof *all, cmp_rank);
    m = m < k ? m : k;
    memcpy(out, all, m * sizeof *out);
    free(all);
    return m;
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static void check_against_sort(const float *s, size_t n, size_t k)
{
    uint32_t *got = malloc((k + 1) * sizeof *got), *want = malloc((k + 1) * sizeof *want);
    float *val = malloc((k + 1) * sizeof *val);
    assert_true(got && want && val);
    size_t ng;
    ember_topk(s, n, k, got, val, &ng);
    size_t nw = brute_topk(s, n, k, want);
    assert_int_equal(ng, nw);
    for (size_t i = 0; i < nw; i++) {
        if (got[i] != want[i])
            fail_msg("n=%zu k=%zu: position %zu holds %u, want %u", n, k, i, got[i], want[i]);
        assert_memory_equal(&val[i], &s[want[i]], sizeof(float));
    }
    free(got);
    free(want);
    free(val);
}

static void test_topk_matches_sort_on_random_inputs_with_ties(void **state)
{
    uint64_t r = 0x1234567;
    float *s = malloc(3000 * sizeof *s);
    assert_non_null(s);
    for (int trial = 0; trial < 400; trial++) {
        size_t n = (size_t)(next_rand(&r) % 3000);
        int levels = 1 + (int)(next_rand(&r) % 12); /* few levels: many ties */
        for (size_t i = 0; i < n; i++) {
            uint64_t x = next_rand(&r) % 100;
            if (x < 5)
                s[i] = NAN;
            else if (x < 12)
                s[i] = -INFINITY;
            else if (x < 13)
                s[i] = INFINITY;
            else
                s[i] = (float)(int)(next_rand(&r) % (uint64_t)levels) - 3.0f;
        }
        size_t k = (size_t)(next_rand(&r) % (n + 6));
        check_against_sort(s, n, k);
        check_against_sort(s, n, k < 10 ? k : 10);
    }
    free(s);
}

static void test_topk_large_n_small_k(void **state)
{
    enum { N = 200000 };
    uint64_t r = 99;
    float *s = malloc(N * sizeof *s);
    assert_non_null(s);
    for (size_t i = 0; i < N; i++)
        s[i] = (float)(next_rand(&r) % 100000) * 1e-3f; /* about two entries per value */
    for (size_t i = 0; i < N; i += 7)
        s[i] = -INFINITY; /* excluded, as seen items are */
    check_against_sort(s, N, 10);
    check_against_sort(s, N, 1024);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topk_returns_best_first),
        cmocka_unit_test(test_topk_breaks_ties_by_smaller_index),
        cmocka_unit_test(test_topk_k_larger_than_n_returns_all_sorted),
        cmocka_unit_test(test_topk_k_zero_returns_nothing),
        cmocka_unit_test(test_topk_empty_input_returns_nothing),
        cmocka_unit_test(test_topk_all_excluded_returns_nothing),
        cmocka_unit_test(test_topk_never_returns_nan_or_minus_inf),
        cmocka_unit_test(test_topk_nan_after_heap_is_full_is_ignored),
        cmocka_unit_test(test_topk_matches_sort_on_random_inputs_with_ties),
        cmocka_unit_test(test_topk_large_n_small_k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
