/*
 * store.c — the durable event store: SQLite in WAL mode, one table of
 * events (user, item, type, value, timestamp, received_at), written by one
 * writer thread with group commit.
 *
 * A request hands its batch to the writer's queue and sleeps.  The writer
 * takes everything queued, runs it in one transaction (BEGIN IMMEDIATE,
 * inserts and deletes, COMMIT: with synchronous=FULL the WAL is fsynced),
 * tells the owner what was committed (the in-memory state is updated in
 * commit order, so memory and disk never disagree on the order of an
 * insert and a delete), and wakes the requests.  While one fsync runs, the
 * next requests queue up, so the cost of a commit is shared by every
 * batch that arrived meanwhile (group commit, as in database logs since
 * DeWitt et al. 1984).  When the shared transaction fails, each operation
 * is retried alone, so one bad batch cannot fail the others.
 *
 * Schema (user_version 1):
 *   events(seq INTEGER PRIMARY KEY, user TEXT, item TEXT, type TEXT,
 *          value REAL, ts INTEGER, received_at INTEGER)  -- received_at: unix ms
 *   index events_by_user(user)
 */
#include "serve/serve.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OP_APPEND, OP_DELETE, OP_ITEMS } op_kind;

/* An op's status when its events are committed but the in-memory state
 * could not take them all (out of memory). */
#define APPLIED_PARTLY 1

typedef struct store_op {
    op_kind kind;
    const serve_event *ev;
    size_t n;
    int64_t received_ms;
    const char *user;
    const serve_item *items;
    /* results */
    int status;
    char err[200];
    size_t deleted;
    bool erased;
    bool done;
    struct store_op *next;
} store_op;

struct serve_store {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *ins, *del, *put, *begin, *commit, *rollback;
    pthread_mutex_t lock;
    pthread_cond_t work, done;
    store_op *head, **tail;
    bool stop, running;
    pthread_t thread;
    store_hooks hooks;
    atomic_uint_fast64_t count, commits;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS events("
    " seq INTEGER PRIMARY KEY,"
    " user TEXT NOT NULL,"
    " item TEXT NOT NULL,"
    " type TEXT NOT NULL DEFAULT 'view',"
    " value REAL NOT NULL DEFAULT 1,"
    " ts INTEGER NOT NULL,"
    " received_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_by_user ON events(user);"
    "CREATE TABLE IF NOT EXISTS items("
    " item TEXT PRIMARY KEY,"
    " title TEXT,"
    " category TEXT NOT NULL DEFAULT '',"
    " added_at INTEGER NOT NULL);"
    "PRAGMA user_version = 1;";

static int db_fail(serve_store *st, const char *what)
{
    return ember_fail(EMBER_EIO, "%s: %s: %s", st->path, what, sqlite3_errmsg(st->db));
}

static int prepare(serve_store *st, const char *sql, sqlite3_stmt **out)
{
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) != SQLITE_OK)
        return db_fail(st, "not an ember event store");
    return EMBER_OK;
}

/* One value from a pragma that answers a row. */
static int pragma_text(serve_store *st, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
        return db_fail(st, sql);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(s, 0));
    else
        out[0] = '\0';
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? EMBER_OK : db_fail(st, sql);
}

int store_open(const char *path, bool durable, serve_store **out)
{
    *out = NULL;
    serve_store *st = ember_calloc(1, sizeof *st);
    if (!st)
        return EMBER_ENOMEM;
    st->path = ember_strdup(path);
    pthread_mutex_init(&st->lock, NULL);
    pthread_cond_init(&st->work, NULL);
    pthread_cond_init(&st->done, NULL);
    st->tail = &st->head;
    atomic_init(&st->count, 0);
    atomic_init(&st->commits, 0);
    if (!st->path) {
        store_close(st);
        return EMBER_ENOMEM;
    }
    int rc = sqlite3_open_v2(path, &st->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        int e = st->db ? db_fail(st, "cannot open")
                       : ember_fail(EMBER_ENOMEM, "%s: cannot open: out of memory", path);
        store_close(st);
        return e;
    }
    sqlite3_extended_result_codes(st->db, 1);
    sqlite3_busy_timeout(st->db, 10000);
    char mode[32];
    int e = pragma_text(st, "PRAGMA journal_mode=WAL", mode, sizeof mode);
    if (e == EMBER_OK && strcmp(mode, "wal") != 0 && strcmp(path, ":memory:") != 0)
        e = ember_fail(EMBER_EIO, "%s: cannot switch to WAL mode (journal mode is '%s')", path,
                       mode);
    if (e == EMBER_OK &&
        sqlite3_exec(st->db, durable ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF",
                     NULL, NULL, NULL) != SQLITE_OK)
        e = db_fail(st, "cannot set synchronous");
    if (e == EMBER_OK && sqlite3_exec(st->db, schema, NULL, NULL, NULL) != SQLITE_OK)
        e = db_fail(st, "not an ember event store (or the events table cannot be created)");
    if (e == EMBER_OK)
        e = prepare(st,
                    "INSERT INTO events(user, item, type, value, ts, received_at) "
                    "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                    &st->ins);
    if (e == EMBER_OK)
        e = prepare(st, "DELETE FROM events WHERE user = ?1", &st->del);
    if (e == EMBER_OK)
        e = prepare(st,
                    "INSERT INTO items(item, title, category, added_at) VALUES(?1, ?2, ?3, ?4) "
                    "ON CONFLICT(item) DO UPDATE SET title = excluded.title, "
                    "category = excluded.category, added_at = excluded.added_at",
                    &st->put);
    if (e == EMBER_OK)
        e = prepare(st, "BEGIN IMMEDIATE", &st->begin);
    if (e == EMBER_OK)
        e = prepare(st, "COMMIT", &st->commit);
    if (e == EMBER_OK)
        e = prepare(st, "ROLLBACK", &st->rollback);
    if (e) {
        store_close(st);
        return e;
    }
    *out = st;
    return EMBER_OK;
}

int store_replay(serve_store *st, const store_hooks *hooks, size_t *n)
{
    *n = 0;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(st->db, "SELECT user, item, type, value, ts FROM events ORDER BY seq",
                           -1, &s, NULL) != SQLITE_OK)
        return db_fail(st, "cannot read events");
    int rc, e = EMBER_OK;
    while (e == EMBER_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *user = (const char *)sqlite3_column_text(s, 0);
        const char *item = (const char *)sqlite3_column_text(s, 1);
        const char *type = (const char *)sqlite3_column_text(s, 2);
        if (!user || !item || !type) {
            e = sqlite3_errcode(st->db) == SQLITE_NOMEM ? ember_fail(EMBER_ENOMEM, "out of memory")
                                                        : ember_fail(EMBER_EFORMAT,
                                                                     "%s: an event without user "
                                                                     "or item", st->path);
            break;
        }
        serve_event ev = {user, item, type, sqlite3_column_double(s, 3),
                          sqlite3_column_int64(s, 4)};
        e = hooks->events(hooks->ctx, &ev, 1);
        (*n)++;
    }
    if (e == EMBER_OK && rc != SQLITE_DONE)
        e = db_fail(st, "cannot read events");
    sqlite3_finalize(s);
    atomic_store(&st->count, *n);
    if (e == EMBER_OK && hooks->items) {
        if (sqlite3_prepare_v2(st->db, "SELECT item, title, category, added_at FROM items", -1,
                               &s, NULL) != SQLITE_OK)
            return db_fail(st, "cannot read items");
        while (e == EMBER_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
            serve_item it = {(const char *)sqlite3_column_text(s, 0),
                             (const char *)sqlite3_column_text(s, 1),
                             (const char *)sqlite3_column_text(s, 2), sqlite3_column_int64(s, 3)};
            if (!it.item || !it.category) {
                e = ember_fail(EMBER_EFORMAT, "%s: an item without id or category", st->path);
                break;
            }
            e = hooks->items(hooks->items_ctx, &it, 1);
        }
        if (e == EMBER_OK && rc != SQLITE_DONE)
            e = db_fail(st, "cannot read items");
        sqlite3_finalize(s);
    }
    return e;
}

int store_read_interactions(const char *path, bool fixed_ids, ember_idmap *users,
                            ember_idmap *items, ember_coo *out, size_t *n_read,
                            size_t *n_skipped)
{
    *n_read = *n_skipped = 0;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        int e = ember_fail(EMBER_EIO, "%s: cannot open: %s", path,
                           db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return e;
    }
    sqlite3_busy_timeout(db, 10000);
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, "SELECT user, item, type, value, ts FROM events ORDER BY seq", -1,
                           &s, NULL) != SQLITE_OK) {
        int e = ember_fail(EMBER_EFORMAT, "%s: not an ember event database: %s", path,
                           sqlite3_errmsg(db));
        sqlite3_close(db);
        return e;
    }
    size_t n0 = out->n;
    int rc, e = EMBER_OK;
    while (e == EMBER_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *user = (const char *)sqlite3_column_text(s, 0);
        const char *item = (const char *)sqlite3_column_text(s, 1);
        const char *type = (const char *)sqlite3_column_text(s, 2);
        if (!user || !item || !type) {
            e = ember_fail(EMBER_EFORMAT, "%s: an event without user, item or type", path);
            break;
        }
        if (strcmp(type, "impression") == 0) {
            (*n_skipped)++;
            continue;
        }
        uint32_t u, i;
        if (fixed_ids) {
            int64_t fu = ember_idmap_find(users, user, strlen(user));
            int64_t fi = ember_idmap_find(items, item, strlen(item));
            if (fu < 0 || fi < 0) {
                (*n_skipped)++;
                continue;
            }
            u = (uint32_t)fu;
            i = (uint32_t)fi;
        } else if ((e = ember_idmap_intern(users, user, strlen(user), &u)) ||
                   (e = ember_idmap_intern(items, item, strlen(item), &i))) {
            break;
        }
        double v = sqlite3_column_double(s, 3);
        if (!isfinite(v) || fabs(v) > 3e38) {
            e = ember_fail(EMBER_EFORMAT, "%s: event value %g out of range", path, v);
            break;
        }
        if ((e = ember_coo_push(out, u, i, (float)v, sqlite3_column_int64(s, 4))))
            break;
        (*n_read)++;
    }
    if (e == EMBER_OK && rc != SQLITE_DONE)
        e = ember_fail(EMBER_EIO, "%s: cannot read events: %s", path, sqlite3_errmsg(db));
    sqlite3_finalize(s);
    sqlite3_close(db);
    if (e) {
        out->n = n0; /* nothing half-read */
        *n_read = 0;
    }
    return e;
}

static int step_done(serve_store *st, sqlite3_stmt *s, const char *what, store_op *op)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    if (rc == SQLITE_DONE)
        return EMBER_OK;
    if (op)
        snprintf(op->err, sizeof op->err, "%s: %s: %s", st->path, what,
                 sqlite3_errstr(rc));
    return rc == SQLITE_NOMEM ? EMBER_ENOMEM : EMBER_EIO;
}

/* Runs one operation inside the open transaction. */
static int exec_op(serve_store *st, store_op *op)
{
    if (op->kind == OP_ITEMS) {
        for (size_t i = 0; i < op->n; i++) {
            const serve_item *it = &op->items[i];
            sqlite3_bind_text(st->put, 1, it->item, -1, SQLITE_STATIC);
            if (it->title)
                sqlite3_bind_text(st->put, 2, it->title, -1, SQLITE_STATIC);
            else
                sqlite3_bind_null(st->put, 2);
            sqlite3_bind_text(st->put, 3, it->category ? it->category : "", -1, SQLITE_STATIC);
            sqlite3_bind_int64(st->put, 4, it->added_at);
            int e = step_done(st, st->put, "put item", op);
            if (e)
                return e;
        }
        sqlite3_clear_bindings(st->put);
        return EMBER_OK;
    }
    if (op->kind == OP_DELETE) {
        sqlite3_bind_text(st->del, 1, op->user, -1, SQLITE_STATIC);
        int e = step_done(st, st->del, "delete", op);
        sqlite3_clear_bindings(st->del);
        op->deleted = e == EMBER_OK ? (size_t)sqlite3_changes(st->db) : 0;
        return e;
    }
    for (size_t i = 0; i < op->n; i++) {
        const serve_event *ev = &op->ev[i];
        sqlite3_bind_text(st->ins, 1, ev->user, -1, SQLITE_STATIC);
        sqlite3_bind_text(st->ins, 2, ev->item, -1, SQLITE_STATIC);
        sqlite3_bind_text(st->ins, 3, ev->type, -1, SQLITE_STATIC);
        sqlite3_bind_double(st->ins, 4, ev->value);
        sqlite3_bind_int64(st->ins, 5, ev->ts);
        sqlite3_bind_int64(st->ins, 6, op->received_ms);
        int e = step_done(st, st->ins, "insert", op);
        if (e)
            return e;
    }
    sqlite3_clear_bindings(st->ins);
    return EMBER_OK;
}

static int begin(serve_store *st, store_op *op)
{
    return step_done(st, st->begin, "begin", op);
}

static int commit(serve_store *st, store_op *op)
{
    int e = step_done(st, st->commit, "commit", op);
    if (e)
        step_done(st, st->rollback, "rollback", NULL);
    return e;
}

/* Runs ops in one transaction; if that fails, each alone. */
static void run_group(serve_store *st, store_op *list)
{
    bool ok = begin(st, list) == EMBER_OK;
    for (store_op *op = list; ok && op; op = op->next)
        ok = exec_op(st, op) == EMBER_OK;
    if (ok)
        ok = commit(st, list) == EMBER_OK;
    else if (sqlite3_get_autocommit(st->db) == 0)
        step_done(st, st->rollback, "rollback", NULL);
    if (ok) {
        atomic_fetch_add(&st->commits, 1);
        for (store_op *op = list; op; op = op->next)
            op->status = EMBER_OK;
    } else {
        for (store_op *op = list; op; op = op->next) {
            op->err[0] = '\0';
            op->status = begin(st, op);
            if (op->status == EMBER_OK) {
                op->status = exec_op(st, op);
                if (op->status == EMBER_OK)
                    op->status = commit(st, op);
                else if (sqlite3_get_autocommit(st->db) == 0)
                    step_done(st, st->rollback, "rollback", NULL);
            }
            if (op->status == EMBER_OK)
                atomic_fetch_add(&st->commits, 1);
        }
    }
    for (store_op *op = list; op; op = op->next) {
        if (op->status != EMBER_OK)
            continue;
        if (op->kind == OP_ITEMS) {
            int e = st->hooks.items ? st->hooks.items(st->hooks.items_ctx, op->items, op->n)
                                    : EMBER_OK;
            if (e)
                snprintf(op->err, sizeof op->err, "items stored but not applied in memory: %s",
                         ember_last_error());
            op->status = e == EMBER_OK ? EMBER_OK : APPLIED_PARTLY;
        } else if (op->kind == OP_APPEND) {
            atomic_fetch_add(&st->count, op->n);
            int e = st->hooks.events(st->hooks.ctx, op->ev, op->n);
            if (e) /* committed, but memory is short: say so, the data is safe */
                snprintf(op->err, sizeof op->err, "events stored but not applied in memory: %s",
                         ember_last_error());
            op->status = e == EMBER_OK ? EMBER_OK : APPLIED_PARTLY;
        } else {
            atomic_fetch_sub(&st->count, op->deleted);
            op->erased = st->hooks.erase(st->hooks.ctx, op->user);
        }
    }
}

static void *writer_main(void *arg)
{
    serve_store *st = arg;
    pthread_mutex_lock(&st->lock);
    for (;;) {
        while (!st->head && !st->stop)
            pthread_cond_wait(&st->work, &st->lock);
        if (!st->head)
            break;
        store_op *list = st->head;
        st->head = NULL;
        st->tail = &st->head;
        pthread_mutex_unlock(&st->lock);
        run_group(st, list);
        pthread_mutex_lock(&st->lock);
        for (store_op *op = list, *next; op; op = next) {
            next = op->next; /* op may be gone once done is seen */
            op->done = true;
        }
        pthread_cond_broadcast(&st->done);
    }
    pthread_mutex_unlock(&st->lock);
    return NULL;
}

int store_start(serve_store *st, const store_hooks *hooks)
{
    st->hooks = *hooks;
    if (pthread_create(&st->thread, NULL, writer_main, st) != 0)
        return ember_fail(EMBER_EIO, "cannot start the event writer thread");
    st->running = true;
    return EMBER_OK;
}

/* Queues op and waits until the writer has run it. */
static int submit(serve_store *st, store_op *op)
{
    pthread_mutex_lock(&st->lock);
    if (st->stop || !st->running) {
        pthread_mutex_unlock(&st->lock);
        return ember_fail(EMBER_EIO, "the event store is closed");
    }
    op->next = NULL;
    *st->tail = op;
    st->tail = &op->next;
    pthread_cond_signal(&st->work);
    while (!op->done)
        pthread_cond_wait(&st->done, &st->lock);
    pthread_mutex_unlock(&st->lock);
    if (op->status == APPLIED_PARTLY)
        return ember_fail(EMBER_ENOMEM, "%s", op->err);
    if (op->status)
        return ember_fail(op->status, "%s", op->err[0] ? op->err : "event store failure");
    return EMBER_OK;
}

int store_append(serve_store *st, const serve_event *ev, size_t n, int64_t received_ms)
{
    store_op op = {.kind = OP_APPEND, .ev = ev, .n = n, .received_ms = received_ms};
    return submit(st, &op);
}

int store_put_items(serve_store *st, const serve_item *it, size_t n)
{
    store_op op = {.kind = OP_ITEMS, .items = it, .n = n};
    return submit(st, &op);
}

int store_delete_user(serve_store *st, const char *user, size_t *deleted, bool *erased)
{
    store_op op = {.kind = OP_DELETE, .user = user};
    int e = submit(st, &op);
    *deleted = op.deleted;
    *erased = op.erased;
    return e;
}

uint64_t store_count(const serve_store *st)
{
    return atomic_load(&st->count);
}

uint64_t store_commits(const serve_store *st)
{
    return atomic_load(&st->commits);
}

void store_close(serve_store *st)
{
    if (!st)
        return;
    if (st->running) {
        pthread_mutex_lock(&st->lock);
        st->stop = true;
        pthread_cond_signal(&st->work);
        pthread_mutex_unlock(&st->lock);
        pthread_join(st->thread, NULL);
    }
    sqlite3_finalize(st->ins);
    sqlite3_finalize(st->del);
    sqlite3_finalize(st->put);
    sqlite3_finalize(st->begin);
    sqlite3_finalize(st->commit);
    sqlite3_finalize(st->rollback);
    if (st->db)
        sqlite3_close(st->db);
    pthread_cond_destroy(&st->work);
    pthread_cond_destroy(&st->done);
    pthread_mutex_destroy(&st->lock);
    free(st->path);
    free(st);
}
