/*
 * test_idmap.c — external string ids <-> dense indices (src/core/idmap.c):
 * intern / find / name round trips, growth to a million ids, ids with odd
 * bytes (spaces, UTF-8, ':', tabs, prefixes of one another), the empty
 * id, reference counting, the packed form used by model files
 * (idmap_chars / idmap_from_chars and what it refuses), idmap_clone, and
 * allocation failures that leave the map as it was.
 */
#include "testutil.h"

#include "core/core.h"
#include "core/idmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t intern(ember_idmap *m, const char *s)
{
    uint32_t idx = UINT32_MAX;
    assert_int_equal(ember_idmap_intern(m, s, strlen(s), &idx), EMBER_OK);
    return idx;
}

static int64_t find(const ember_idmap *m, const char *s)
{
    return ember_idmap_find(m, s, strlen(s));
}

static void test_intern_gives_dense_indices_in_order_of_first_appearance(void **state)
{
    (void)state;
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    assert_int_equal(ember_idmap_size(m), 0);
    assert_int_equal(intern(m, "b"), 0);
    assert_int_equal(intern(m, "a"), 1);
    assert_int_equal(intern(m, "b"), 0);
    assert_int_equal(intern(m, "c"), 2);
    assert_int_equal(intern(m, "a"), 1);
    assert_int_equal(ember_idmap_size(m), 3);
    ember_idmap_free(m);
}

static void test_find_and_name_round_trip(void **state)
{
    (void)state;
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    intern(m, "alice");
    intern(m, "bob");
    assert_int_equal(find(m, "alice"), 0);
    assert_int_equal(find(m, "bob"), 1);
    assert_int_equal(find(m, "carol"), -1);
    assert_int_equal(find(m, "bo"), -1);
    assert_int_equal(find(m, "bobby"), -1);
    assert_string_equal(ember_idmap_name(m, 0), "alice");
    assert_string_equal(ember_idmap_name(m, 1), "bob");
    assert_null(ember_idmap_name(m, 2));
    assert_null(ember_idmap_name(m, UINT32_MAX));
    assert_null(ember_idmap_name(NULL, 0));
    assert_int_equal(ember_idmap_size(NULL), 0);
    /* find does not add */
    assert_int_equal(ember_idmap_size(m), 2);
    ember_idmap_free(m);
}

static void test_find_uses_the_given_length_not_the_nul(void **state)
{
    (void)state;
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    intern(m, "ab");
    /* a field inside a longer line: only the first len bytes are the id */
    assert_int_equal(ember_idmap_find(m, "abc", 2), 0);
    assert_int_equal(ember_idmap_find(m, "abc", 3), -1);
    uint32_t idx;
    assert_int_equal(ember_idmap_intern(m, "ab\tzz", 2, &idx), EMBER_OK);
    assert_int_equal(idx, 0);
    assert_int_equal(ember_idmap_size(m), 1);
    ember_idmap_free(m);
}

static void test_grows_to_one_million_ids(void **state)
{
    (void)state;
    enum { N = 1000000 };
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    char buf[32];
    for (uint32_t i = 0; i < N; i++) {
        int len = snprintf(buf, sizeof buf, "user-%u", i * 7919u);
        uint32_t idx;
        assert_int_equal(ember_idmap_intern(m, buf, (size_t)len, &idx), EMBER_OK);
        assert_int_equal(idx, i);
    }
    assert_int_equal(ember_idmap_size(m), N);
    for (uint32_t i = 0; i < N; i++) {
        int len = snprintf(buf, sizeof buf, "user-%u", i * 7919u);
        assert_int_equal(ember_idmap_find(m, buf, (size_t)len), i);
        assert_string_equal(ember_idmap_name(m, i), buf);
    }
    /* interning them all again adds nothing */
    for (uint32_t i = 0; i < N; i += 997) {
        int len = snprintf(buf, sizeof buf, "user-%u", i * 7919u);
        uint32_t idx;
        assert_int_equal(ember_idmap_intern(m, buf, (size_t)len, &idx), EMBER_OK);
        assert_int_equal(idx, i);
    }
    assert_int_equal(ember_idmap_size(m), N);
    assert_int_equal(find(m, "user-1"), -1);
    ember_idmap_free(m);
}

static const char *const ODD[] = {
    "a b",       "a",         "ab",     " a",         "a ",      "1:2",     "::",
    "1::2",      "\t",        "x\ny",   "ü",          "u\xcc\x88", /* u + combining diaeresis */
    "日本語",    "\xff\xfe", "\"q\"", "C:\\path", "0",       "00",      "-1",
};

static void test_ids_with_odd_bytes_are_distinct_and_round_trip(void **state)
{
    (void)state;
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    size_t n = EMBER_ARRAY_LEN(ODD);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(intern(m, ODD[i]), i);
    assert_int_equal(ember_idmap_size(m), n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(find(m, ODD[i]), (int64_t)i);
        assert_string_equal(ember_idmap_name(m, (uint32_t)i), ODD[i]);
    }
    ember_idmap_free(m);
}

static void test_empty_id_is_an_id_like_any_other(void **state)
{
    (void)state;
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    assert_int_equal(find(m, ""), -1);
    assert_int_equal(intern(m, "x"), 0);
    assert_int_equal(intern(m, ""), 1);
    assert_int_equal(intern(m, ""), 1);
    assert_int_equal(find(m, ""), 1);
    assert_string_equal(ember_idmap_name(m, 1), "");
    assert_int_equal(ember_idmap_size(m), 2);
    ember_idmap_free(m);
}

static void test_intern_refuses_an_id_with_a_nul_byte(void **state)
{
    (void)state;
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    uint32_t idx;
    ember_clear_error();
    assert_int_equal(ember_idmap_intern(m, "a\0b", 3, &idx), EMBER_EFORMAT);
    assert_string_not_equal(ember_last_error(), "");
    assert_int_equal(ember_idmap_size(m), 0);
    ember_idmap_free(m);
}

static void test_reference_counting_frees_at_the_last_reference(void **state)
{
    (void)state;
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    intern(m, "kept");
    assert_ptr_equal(ember_idmap_ref(m), m);
    assert_ptr_equal(ember_idmap_ref(m), m);
    ember_idmap_free(m);
    ember_idmap_free(m);
    /* one reference left: still usable (ASan would report a use after free) */
    assert_int_equal(find(m, "kept"), 0);
    assert_int_equal(intern(m, "more"), 1);
    ember_idmap_free(m);
    /* NULL is a no-op both ways */
    assert_null(ember_idmap_ref(NULL));
    ember_idmap_free(NULL);
}

static void test_chars_packs_ids_nul_terminated_in_index_order(void **state)
{
    (void)state;
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    size_t len = 99;
    idmap_chars(m, &len);
    assert_int_equal(len, 0);
    intern(m, "b");
    intern(m, "");
    intern(m, "a:1");
    intern(m, "b");
    const char *c = idmap_chars(m, &len);
    assert_int_equal(len, 7);
    assert_memory_equal(c, "b\0\0a:1\0", 7);
    ember_idmap_free(m);
}

static void test_from_chars_rebuilds_the_same_map(void **state)
{
    (void)state;
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    size_t n = EMBER_ARRAY_LEN(ODD);
    for (size_t i = 0; i < n; i++)
        intern(m, ODD[i]);
    intern(m, "");
    size_t len;
    const char *c = idmap_chars(m, &len);
    ember_idmap *back = NULL;
    assert_int_equal(idmap_from_chars(c, len, n + 1, &back), EMBER_OK);
    assert_non_null(back);
    assert_int_equal(ember_idmap_size(back), n + 1);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(ember_idmap_name(back, (uint32_t)i), ODD[i]);
        assert_int_equal(find(back, ODD[i]), (int64_t)i);
    }
    assert_int_equal(find(back, ""), (int64_t)n);
    ember_idmap_free(back);
    ember_idmap_free(m);
}

static void test_from_chars_of_nothing_is_an_empty_map(void **state)
{
    (void)state;
    ember_idmap *m = NULL;
    assert_int_equal(idmap_from_chars("", 0, 0, &m), EMBER_OK);
    assert_non_null(m);
    assert_int_equal(ember_idmap_size(m), 0);
    ember_idmap_free(m);
}

static void assert_from_chars_refused(const char *buf, size_t len, size_t expect_n,
                                      const char *why)
{
    ember_idmap *m = (ember_idmap *)0x1;
    ember_clear_error();
    assert_int_equal(idmap_from_chars(buf, len, expect_n, &m), EMBER_ECORRUPT);
    assert_ptr_equal(m, (ember_idmap *)0x1); /* not written on failure */
    if (!strstr(ember_last_error(), why)) {
        print_message("message '%s' lacks '%s'\n", ember_last_error(), why);
        fail();
    }
}

static void test_from_chars_refuses_a_duplicate_id(void **state)
{
    (void)state;
    assert_from_chars_refused("a\0b\0a\0", 6, 3, "duplicate");
    assert_from_chars_refused("\0\0", 2, 2, "duplicate"); /* the empty id twice */
}

static void test_from_chars_refuses_a_missing_final_nul(void **state)
{
    (void)state;
    assert_from_chars_refused("a\0bc", 4, 2, "NUL");
    assert_from_chars_refused("abc", 3, 1, "NUL");
}

static void test_from_chars_refuses_a_count_mismatch(void **state)
{
    (void)state;
    assert_from_chars_refused("a\0b\0", 4, 3, "2 ids");
    assert_from_chars_refused("a\0b\0", 4, 1, "2 ids");
    assert_from_chars_refused("", 0, 1, "0 ids");
}

static void test_clone_keeps_the_first_n_ids_with_their_indices(void **state)
{
    (void)state;
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    intern(m, "x");
    intern(m, "y");
    intern(m, "z");
    ember_idmap *c = idmap_clone(m, 2);
    assert_non_null(c);
    assert_ptr_not_equal(c, m);
    assert_int_equal(ember_idmap_size(c), 2);
    assert_int_equal(find(c, "x"), 0);
    assert_int_equal(find(c, "y"), 1);
    assert_int_equal(find(c, "z"), -1);
    /* independent: growing the clone leaves the original alone */
    assert_int_equal(intern(c, "w"), 2);
    assert_int_equal(find(m, "w"), -1);
    assert_string_equal(ember_idmap_name(m, 2), "z");
    ember_idmap_free(c);
    ember_idmap *all = idmap_clone(m, 3);
    assert_non_null(all);
    assert_int_equal(ember_idmap_size(all), 3);
    ember_idmap_free(all);
    ember_idmap *none = idmap_clone(m, 0);
    assert_non_null(none);
    assert_int_equal(ember_idmap_size(none), 0);
    ember_idmap_free(none);
    ember_clear_error();
    assert_null(idmap_clone(m, 4));
    assert_string_not_equal(ember_last_error(), "");
    ember_idmap_free(m);
}

/* Every allocation of building a map of 200 ids fails in turn: each
 * failure is EMBER_ENOMEM with a message, the map keeps exactly the ids
 * interned before the failing call, and nothing leaks. */
static void test_allocation_failure_in_intern_leaves_the_map_unchanged(void **state)
{
    (void)state;
    enum { N = 200 };
    char buf[32];
    bool done = false;
    for (long nth = 1; nth <= 10000 && !done; nth++) {
        ember_fault_inject_alloc(nth);
        ember_idmap *m = ember_idmap_new();
        if (!m) {
            ember_fault_inject_alloc(0);
            continue;
        }
        size_t i = 0;
        int st = EMBER_OK;
        for (; i < N; i++) {
            int len = snprintf(buf, sizeof buf, "id%zu", i);
            uint32_t idx;
            ember_clear_error();
            st = ember_idmap_intern(m, buf, (size_t)len, &idx);
            if (st)
                break;
            assert_int_equal(idx, i);
        }
        ember_fault_inject_alloc(0);
        if (st == EMBER_OK) {
            done = true;
        } else {
            assert_int_equal(st, EMBER_ENOMEM);
            assert_string_not_equal(ember_last_error(), "");
            /* the failed id is not in the map, the earlier ones are */
            assert_int_equal(ember_idmap_size(m), i);
            int len = snprintf(buf, sizeof buf, "id%zu", i);
            assert_int_equal(ember_idmap_find(m, buf, (size_t)len), -1);
        }
        for (size_t j = 0; j < ember_idmap_size(m); j++) {
            int len = snprintf(buf, sizeof buf, "id%zu", j);
            assert_int_equal(ember_idmap_find(m, buf, (size_t)len), (int64_t)j);
        }
        /* and it keeps working once memory is back */
        for (size_t j = 0; j < N; j++) {
            int len = snprintf(buf, sizeof buf, "id%zu", j);
            uint32_t idx;
            assert_int_equal(ember_idmap_intern(m, buf, (size_t)len, &idx), EMBER_OK);
            assert_int_equal(idx, j);
        }
        ember_idmap_free(m);
    }
    assert_true(done);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_intern_gives_dense_indices_in_order_of_first_appearance),
        cmocka_unit_test(test_find_and_name_round_trip),
        cmocka_unit_test(test_find_uses_the_given_length_not_the_nul),
        cmocka_unit_test(test_grows_to_one_million_ids),
        cmocka_unit_test(test_ids_with_odd_bytes_are_distinct_and_round_trip),
        cmocka_unit_test(test_empty_id_is_an_id_like_any_other),
        cmocka_unit_test(test_intern_refuses_an_id_with_a_nul_byte),
        cmocka_unit_test(test_reference_counting_frees_at_the_last_reference),
        cmocka_unit_test(test_chars_packs_ids_nul_terminated_in_index_order),
        cmocka_unit_test(test_from_chars_rebuilds_the_same_map),
        cmocka_unit_test(test_from_chars_of_nothing_is_an_empty_map),
        cmocka_unit_test(test_from_chars_refuses_a_duplicate_id),
        cmocka_unit_test(test_from_chars_refuses_a_missing_final_nul),
        cmocka_unit_test(test_from_chars_refuses_a_count_mismatch),
        cmocka_unit_test(test_clone_keeps_the_first_n_ids_with_their_indices),
        cmocka_unit_test(test_allocation_failure_in_intern_leaves_the_map_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
