/*
 * test_users.c — the in-memory per-user history (src/serve/users.c):
 * order, the move of a repeated item, the length cap, erasure, index
 * resolution per generation, many users across the stripes, threads.
 */
#include "testutil.h"

#include "serve/serve.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* A map of items "a".."e" at indices 0..4. */
static ember_idmap *letters(void)
{
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    uint32_t idx;
    for (char c = 'a'; c <= 'e'; c++)
        assert_int_equal(ember_idmap_intern(m, &c, 1, &idx), EMBER_OK);
    return m;
}

static void history(serve_users *u, const char *user, const ember_idmap *m, uint64_t gen,
                    char *out)
{
    uint32_t idx[16];
    size_t n, recent;
    users_history(u, user, m, gen, idx, 16, &n, &recent);
    for (size_t i = 0; i < n; i++)
        out[i] = ember_idmap_name(m, idx[i])[0];
    out[n] = '\0';
}

static void test_history_is_oldest_first_and_a_repeat_moves_to_the_end(void **state)
{
    (void)state;
    serve_users *u;
    assert_int_equal(users_new(10, &u), EMBER_OK);
    ember_idmap *m = letters();
    const char *seq = "abcb";
    for (size_t i = 0; seq[i]; i++) {
        char item[2] = {seq[i], 0};
        assert_int_equal(users_append(u, "x", item, (int64_t)i), EMBER_OK);
    }
    char got[16];
    history(u, "x", m, 1, got);
    assert_string_equal(got, "acb");
    ember_idmap_free(m);
    users_free(u);
}

static void test_history_keeps_only_the_newest_items(void **state)
{
    (void)state;
    serve_users *u;
    assert_int_equal(users_new(3, &u), EMBER_OK);
    ember_idmap *m = letters();
    for (char c = 'a'; c <= 'e'; c++) {
        char item[2] = {c, 0};
        assert_int_equal(users_append(u, "x", item, 0), EMBER_OK);
    }
    char got[16];
    history(u, "x", m, 1, got);
    assert_string_equal(got, "cde");
    ember_idmap_free(m);
    users_free(u);
}

static void test_unknown_items_are_kept_but_not_returned(void **state)
{
    (void)state;
    serve_users *u;
    assert_int_equal(users_new(10, &u), EMBER_OK);
    ember_idmap *m = letters();
    assert_int_equal(users_append(u, "x", "a", 0), EMBER_OK);
    assert_int_equal(users_append(u, "x", "zz", 0), EMBER_OK);
    assert_int_equal(users_append(u, "x", "c", 0), EMBER_OK);
    uint32_t idx[16];
    size_t n, recent;
    users_history(u, "x", m, 1, idx, 16, &n, &recent);
    assert_int_equal(n, 2);
    assert_int_equal(recent, 3);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 2);
    /* a new generation whose map knows "zz" resolves it */
    uint32_t at;
    assert_int_equal(ember_idmap_intern(m, "zz", 2, &at), EMBER_OK);
    users_history(u, "x", m, 1, idx, 16, &n, &recent);
    assert_int_equal(n, 2); /* same generation: cached */
    users_history(u, "x", m, 2, idx, 16, &n, &recent);
    assert_int_equal(n, 3);
    assert_int_equal(idx[1], at);
    /* cap on the output */
    users_history(u, "x", m, 2, idx, 1, &n, &recent);
    assert_int_equal(n, 1);
    ember_idmap_free(m);
    users_free(u);
}

static void test_erase_forgets_one_user(void **state)
{
    (void)state;
    serve_users *u;
    assert_int_equal(users_new(10, &u), EMBER_OK);
    ember_idmap *m = letters();
    assert_int_equal(users_append(u, "x", "a", 0), EMBER_OK);
    assert_int_equal(users_append(u, "y", "b", 0), EMBER_OK);
    assert_int_equal(users_count(u), 2);
    assert_true(users_erase(u, "x"));
    assert_false(users_erase(u, "x"));
    assert_int_equal(users_count(u), 1);
    char got[16];
    history(u, "x", m, 1, got);
    assert_string_equal(got, "");
    history(u, "y", m, 1, got);
    assert_string_equal(got, "b");
    ember_idmap_free(m);
    users_free(u);
}

static void test_many_users_stay_separate(void **state)
{
    (void)state;
    serve_users *u;
    assert_int_equal(users_new(4, &u), EMBER_OK);
    ember_idmap *m = letters();
    char id[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "user-%d", i);
        char item[2] = {(char)('a' + i % 5), 0};
        assert_int_equal(users_append(u, id, item, i), EMBER_OK);
    }
    assert_int_equal(users_count(u), 5000);
    for (int i = 0; i < 5000; i += 7) {
        snprintf(id, sizeof id, "user-%d", i);
        char got[16], want[2] = {(char)('a' + i % 5), 0};
        history(u, id, m, 1, got);
        assert_string_equal(got, want);
    }
    ember_idmap_free(m);
    users_free(u);
}

typedef struct {
    serve_users *u;
    const ember_idmap *m;
    int t;
} thread_ctx;

static void *hammer(void *arg)
{
    thread_ctx *c = arg;
    char id[32];
    uint32_t idx[8];
    size_t n, recent;
    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof id, "u%d", i % 50);
        char item[2] = {(char)('a' + (i + c->t) % 5), 0};
        if (users_append(c->u, id, item, i) != EMBER_OK)
            return (void *)1;
        users_history(c->u, id, c->m, (uint64_t)(1 + i % 2), idx, 8, &n, &recent);
        if (n == 0 || n > 5)
            return (void *)1;
        if (i % 97 == 0)
            users_erase(c->u, id);
    }
    return NULL;
}

static void test_threads_share_the_state_safely(void **state)
{
    (void)state;
    serve_users *u;
    assert_int_equal(users_new(8, &u), EMBER_OK);
    ember_idmap *m = letters();
    pthread_t t[4];
    thread_ctx c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (thread_ctx){u, m, i};
        pthread_create(&t[i], NULL, hammer, &c[i]);
    }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
    assert_true(users_count(u) <= 50);
    ember_idmap_free(m);
    users_free(u);
}

static void test_zero_history_length_is_refused(void **state)
{
    (void)state;
    serve_users *u = (serve_users *)&u;
    assert_int_equal(users_new(0, &u), EMBER_EINVAL);
    assert_null(u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history_is_oldest_first_and_a_repeat_moves_to_the_end),
        cmocka_unit_test(test_history_keeps_only_the_newest_items),
        cmocka_unit_test(test_unknown_items_are_kept_but_not_returned),
        cmocka_unit_test(test_erase_forgets_one_user),
        cmocka_unit_test(test_many_users_stay_separate),
        cmocka_unit_test(test_threads_share_the_state_safely),
        cmocka_unit_test(test_zero_history_length_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
