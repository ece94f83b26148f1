/*
 * test_store.c — the event store (src/serve/store.c): WAL mode, rows as
 * given, replay in commit order, deletes, group commit under concurrent
 * writers (every batch committed exactly once, fewer transactions than
 * batches is allowed, never more), and a failing batch that does not take
 * the batches sharing its transaction down with it.
 */
#include "testutil.h"

#include "serve/serve.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    pthread_mutex_t lock;
    size_t events, erased;
    char last_user[64], last_item[64];
} seen;

static int on_events(void *ctx, const serve_event *ev, size_t n)
{
    seen *s = ctx;
    pthread_mutex_lock(&s->lock);
    s->events += n;
    snprintf(s->last_user, sizeof s->last_user, "%s", ev[n - 1].user);
    snprintf(s->last_item, sizeof s->last_item, "%s", ev[n - 1].item);
    pthread_mutex_unlock(&s->lock);
    return EMBER_OK;
}

static bool on_erase(void *ctx, const char *user)
{
    seen *s = ctx;
    (void)user;
    pthread_mutex_lock(&s->lock);
    s->erased++;
    pthread_mutex_unlock(&s->lock);
    return true;
}

static const char *db_path(const char *name)
{
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", test_tmpdir(), name);
    remove(p);
    return p;
}

static void sql(const char *db, const char *text, char *out, size_t cap)
{
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(h, text, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", text, sqlite3_errmsg(h));
    int rc = sqlite3_step(s);
    if (out) {
        assert_int_equal(rc, SQLITE_ROW);
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(s, 0));
    } else {
        assert_int_equal(rc, SQLITE_DONE);
    }
    sqlite3_finalize(s);
    sqlite3_close(h);
}

static void test_store_is_in_wal_mode_and_keeps_rows_as_given(void **state)
{
    (void)state;
    const char *db = db_path("a.sqlite");
    seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    store_hooks h = {on_events, on_erase, &s, NULL, NULL};
    serve_store *st;
    assert_int_equal(store_open(db, true, &st), EMBER_OK);
    size_t n;
    assert_int_equal(store_replay(st, &h, &n), EMBER_OK);
    assert_int_equal(n, 0);
    assert_int_equal(store_start(st, &h), EMBER_OK);
    serve_event ev[2] = {{"u1", "i1", "view", 1.0, 100}, {"u\xc3\xa9", "i'2", "buy", -2.5, 7}};
    assert_int_equal(store_append(st, ev, 2, 123456), EMBER_OK);
    assert_int_equal(s.events, 2);
    assert_int_equal(store_count(st), 2);
    char out[256];
    sql(db, "PRAGMA journal_mode", out, sizeof out);
    assert_string_equal(out, "wal");
    sql(db, "SELECT group_concat(user||'|'||item||'|'||type||'|'||value||'|'||ts||'|'||received_at, ';') "
            "FROM (SELECT * FROM events ORDER BY seq)", out, sizeof out);
    assert_string_equal(out, "u1|i1|view|1.0|100|123456;u\xc3\xa9|i'2|buy|-2.5|7|123456");
    store_close(st);
}

static void test_replay_gives_events_in_commit_order(void **state)
{
    (void)state;
    const char *db = db_path("b.sqlite");
    seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    store_hooks h = {on_events, on_erase, &s, NULL, NULL};
    serve_store *st;
    assert_int_equal(store_open(db, true, &st), EMBER_OK);
    size_t n;
    assert_int_equal(store_replay(st, &h, &n), EMBER_OK);
    assert_int_equal(store_start(st, &h), EMBER_OK);
    for (int i = 0; i < 5; i++) {
        char item[16];
        snprintf(item, sizeof item, "i%d", i);
        serve_event ev = {"u", item, "view", 1.0, 5 - i}; /* timestamps decrease */
        assert_int_equal(store_append(st, &ev, 1, 0), EMBER_OK);
    }
    size_t deleted;
    bool erased;
    serve_event other = {"v", "i9", "view", 1.0, 0};
    assert_int_equal(store_append(st, &other, 1, 0), EMBER_OK);
    assert_int_equal(store_delete_user(st, "v", &deleted, &erased), EMBER_OK);
    assert_int_equal(deleted, 1);
    assert_true(erased);
    assert_int_equal(store_count(st), 5);
    store_close(st);
    seen r = {.lock = PTHREAD_MUTEX_INITIALIZER};
    store_hooks h2 = {on_events, on_erase, &r, NULL, NULL};
    assert_int_equal(store_open(db, true, &st), EMBER_OK);
    assert_int_equal(store_replay(st, &h2, &n), EMBER_OK);
    assert_int_equal(n, 5);
    assert_int_equal(store_count(st), 5);
    assert_string_equal(r.last_item, "i4"); /* commit order, not timestamps */
    store_close(st);
}

typedef struct {
    serve_store *st;
    int t;
    int failures;
} writer_ctx;

#define WRITERS 4
#define BATCHES 40
#define PER_BATCH 25

static void *writer(void *arg)
{
    writer_ctx *c = arg;
    char users[PER_BATCH][32], items[PER_BATCH][32];
    serve_event ev[PER_BATCH];
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < PER_BATCH; i++) {
            snprintf(users[i], sizeof users[i], "w%d", c->t);
            snprintf(items[i], sizeof items[i], "b%d-%d", b, i);
            ev[i] = (serve_event){users[i], items[i], "view", 1.0, b};
        }
        if (store_append(c->st, ev, PER_BATCH, b) != EMBER_OK)
            c->failures++;
    }
    return NULL;
}

static void test_concurrent_batches_are_each_committed_once(void **state)
{
    (void)state;
    const char *db = db_path("c.sqlite");
    seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    store_hooks h = {on_events, on_erase, &s, NULL, NULL};
    serve_store *st;
    assert_int_equal(store_open(db, true, &st), EMBER_OK);
    assert_int_equal(store_start(st, &h), EMBER_OK);
    pthread_t t[WRITERS];
    writer_ctx c[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        c[i] = (writer_ctx){st, i, 0};
        pthread_create(&t[i], NULL, writer, &c[i]);
    }
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].failures, 0);
    }
    size_t total = (size_t)WRITERS * BATCHES * PER_BATCH;
    assert_int_equal(store_count(st), total);
    assert_int_equal(s.events, total);
    assert_true(store_commits(st) <= (uint64_t)WRITERS * BATCHES);
    print_message("%d batches in %llu transactions\n", WRITERS * BATCHES,
                  (unsigned long long)store_commits(st));
    store_close(st);
    char out[64];
    sql(db, "SELECT count(DISTINCT user||item) FROM events", out, sizeof out);
    assert_int_equal(atol(out), (long)total);
}

typedef struct {
    serve_store *st;
    const char *user;
    int result;
} one_ctx;

static void *append_one(void *arg)
{
    one_ctx *c = arg;
    serve_event ev[3] = {{c->user, "x", "view", 1, 0}, {c->user, "y", "view", 1, 0},
                         {c->user, "z", "view", 1, 0}};
    c->result = store_append(c->st, ev, 3, 0);
    return NULL;
}

static void test_a_failing_batch_does_not_fail_the_others(void **state)
{
    (void)state;
    const char *db = db_path("d.sqlite");
    seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    store_hooks h = {on_events, on_erase, &s, NULL, NULL};
    serve_store *st;
    assert_int_equal(store_open(db, true, &st), EMBER_OK);
    /* a trigger that refuses one user's rows, set by another connection */
    sql(db, "CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.user = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned'); END", NULL, 0);
    assert_int_equal(store_start(st, &h), EMBER_OK);
    const char *users[6] = {"a", "poison", "b", "c", "poison", "d"};
    pthread_t t[6];
    one_ctx c[6];
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < 6; i++) {
            c[i] = (one_ctx){st, users[i], 99};
            pthread_create(&t[i], NULL, append_one, &c[i]);
        }
        for (int i = 0; i < 6; i++) {
            pthread_join(t[i], NULL);
            if (strcmp(users[i], "poison") == 0) {
                assert_int_equal(c[i].result, EMBER_EIO);
            } else {
                assert_int_equal(c[i].result, EMBER_OK);
            }
        }
    }
    assert_int_equal(store_count(st), 5 * 4 * 3);
    assert_int_equal(s.events, 5 * 4 * 3);
    store_close(st);
    char out[64];
    sql(db, "SELECT count(*) FROM events", out, sizeof out);
    assert_string_equal(out, "60");
}

static void test_stored_events_read_for_training(void **state)
{
    (void)state;
    const char *db = db_path("train.sqlite");
    char path[512];
    snprintf(path, sizeof path, "%s", db);
    seen s = {.lock = PTHREAD_MUTEX_INITIALIZER};
    store_hooks h = {on_events, on_erase, &s, NULL, NULL};
    serve_store *st;
    assert_int_equal(store_open(path, true, &st), EMBER_OK);
    assert_int_equal(store_start(st, &h), EMBER_OK);
    serve_event ev[4] = {{"u1", "i1", "view", 1.0, 100},
                         {"u2", "i2", "impression", 1.0, 101},
                         {"u2", "i1", "buy", 5.0, 102},
                         {"u3", "i9", "view", 2.0, 103}};
    assert_int_equal(store_append(st, ev, 4, 0), EMBER_OK);
    /* read while the store is open (a running server) */
    ember_idmap *users = ember_idmap_new(), *items = ember_idmap_new();
    ember_coo c = {0};
    size_t n, skipped;
    assert_int_equal(store_read_interactions(path, false, users, items, &c, &n, &skipped),
                     EMBER_OK);
    assert_int_equal(n, 3);
    assert_int_equal(skipped, 1); /* the impression */
    assert_int_equal(c.n, 3);
    assert_string_equal(ember_idmap_name(users, c.user[1]), "u2");
    assert_string_equal(ember_idmap_name(items, c.item[1]), "i1");
    assert_float_equal(c.rating[1], 5.0, 0);
    assert_int_equal(c.ts[2], 103);
    /* with fixed maps, unknown ids are skipped: i9 is known now, a new map is not */
    ember_idmap *u2 = ember_idmap_new(), *i2 = ember_idmap_new();
    uint32_t idx;
    assert_int_equal(ember_idmap_intern(u2, "u1", 2, &idx), EMBER_OK);
    assert_int_equal(ember_idmap_intern(u2, "u2", 2, &idx), EMBER_OK);
    assert_int_equal(ember_idmap_intern(i2, "i1", 2, &idx), EMBER_OK);
    ember_coo c2 = {0};
    assert_int_equal(store_read_interactions(path, true, u2, i2, &c2, &n, &skipped), EMBER_OK);
    assert_int_equal(n, 2);
    assert_int_equal(skipped, 2);
    assert_int_equal(ember_idmap_size(u2), 2);
    store_close(st);
    /* not a database, and a missing one: refused, nothing appended */
    const char *text = test_write_file("not-a-db.sqlite", "user\titem\n1\t2\n");
    assert_int_equal(store_read_interactions(text, false, users, items, &c, &n, &skipped),
                     EMBER_EFORMAT);
    assert_int_equal(store_read_interactions("/nonexistent/x.sqlite", false, users, items, &c,
                                             &n, &skipped),
                     EMBER_EIO);
    assert_int_equal(c.n, 3);
    ember_coo_free(&c);
    ember_coo_free(&c2);
    ember_idmap_free(users);
    ember_idmap_free(items);
    ember_idmap_free(u2);
    ember_idmap_free(i2);
}

static void test_writes_after_close_are_refused(void **state)
{
    (void)state;
    serve_store *st;
    assert_int_equal(store_open(":memory:", false, &st), EMBER_OK);
    /* never started: refused, not blocked */
    serve_event ev = {"u", "i", "view", 1, 0};
    assert_int_equal(store_append(st, &ev, 1, 0), EMBER_EIO);
    store_close(st);
}

static void test_a_foreign_table_is_refused(void **state)
{
    (void)state;
    const char *db = db_path("e.sqlite");
    sql(db, "CREATE TABLE events(x INTEGER)", NULL, 0);
    serve_store *st = (serve_store *)&st;
    assert_int_equal(store_open(db, true, &st), EMBER_EIO);
    assert_null(st);
    assert_non_null(strstr(ember_last_error(), "not an ember event store"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_is_in_wal_mode_and_keeps_rows_as_given),
        cmocka_unit_test(test_replay_gives_events_in_commit_order),
        cmocka_unit_test(test_concurrent_batches_are_each_committed_once),
        cmocka_unit_test(test_a_failing_batch_does_not_fail_the_others),
        cmocka_unit_test(test_writes_after_close_are_refused),
        cmocka_unit_test(test_a_foreign_table_is_refused),
        cmocka_unit_test(test_stored_events_read_for_training),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
