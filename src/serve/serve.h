/*
 * serve.h — the serving layer (`ember serve`): an HTTP JSON API over one
 * model, a durable event store, and per-user state that events change at
 * once.  Internal to libember; the CLI and the tests use it.
 *
 * Pieces, one file each:
 *   server.c   the server object: config, the active model behind a
 *              reference-counted pointer swapped on reload
 *   handler.c  serve_handle(): one request in, one response out, a pure
 *              function of the server state (the HTTP glue, the tests and
 *              the fuzzer all call it)
 *   http.c     libmicrohttpd glue (thread pool, bodies, limits)
 *   store.c    SQLite event store in WAL mode with group commit
 *   users.c    per-user recent history in memory, striped locks
 *   auth.c     API keys and roles
 *   metrics.c  request counters and latency histograms (Prometheus text)
 */
#ifndef EMBER_SERVE_H
#define EMBER_SERVE_H

#include "core/core.h"
#include "data/data.h"
#include "core/mips.h"
#include "serve/rerank.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>

/* ------------------------------------------------------------ config */

typedef struct {
    const char *model_path; /* required */
    const char *db_path;    /* required; ":memory:" for a throwaway store */
    const char *keys_path;  /* NULL: no keys (only loopback clients may write) */
    const char *bind;       /* address to listen on, default "127.0.0.1" */
    uint16_t port;          /* 0: an ephemeral port */
    int threads;            /* HTTP worker threads, default 2 */
    size_t max_body;        /* request body limit in bytes, default 1 MB */
    size_t max_batch;       /* events per POST /v1/events, default 10,000 */
    size_t max_k;           /* largest k a request may ask, default 1,000 */
    size_t history_len;     /* recent items kept in memory per user, default 200 */
    bool durable;           /* fsync every commit (SQLite synchronous=FULL), default true */
    /* item features (RecBole .item or TSV, keyed by item id): categories
     * for filters, diversity and fatigue, titles for answers; NULL: none */
    const char *items_path;
    const char *category_col; /* default "category" (else "genre", "class") */
    const char *title_col;    /* default "title" (else "movie_title") */
} serve_config;

void serve_config_init(serve_config *c);

/* ------------------------------------------------------------- auth */

typedef enum {
    SERVE_ROLE_NONE = 0,
    SERVE_ROLE_READ,
    SERVE_ROLE_WRITE,
    SERVE_ROLE_ADMIN
} serve_role;

typedef struct serve_keys serve_keys;

/* A key file: one `KEY ROLE` per line, roles read|write|admin, '#'
 * comments and blank lines allowed.  Keys are 8..256 printable ASCII
 * characters without spaces, each listed once. */
int serve_keys_parse(const char *text, size_t len, const char *name, serve_keys **out);
int serve_keys_load(const char *path, serve_keys **out);
void serve_keys_free(serve_keys *k);
size_t serve_keys_count(const serve_keys *k);
/* The role of a key (SERVE_ROLE_NONE when it is not listed); the
 * comparison takes the same time wherever the key differs. */
serve_role serve_keys_role(const serve_keys *k, const char *key, size_t len);
const char *serve_role_name(serve_role r);

/* ------------------------------------------------------ users (state) */

typedef struct serve_users serve_users;

/* history_len: recent distinct items kept per user (the oldest go). */
int users_new(size_t history_len, serve_users **out);
void users_free(serve_users *u);
/* Appends item to user's recent history (an item already there moves to
 * the newest place).  Strings are copied. */
int users_append(serve_users *u, const char *user, const char *item, int64_t ts);
/* Forgets a user; returns whether there was anything to forget. */
bool users_erase(serve_users *u, const char *user);
/* The user's recent items that the map knows, oldest first, as indices
 * into it (at most cap); *n_recent receives how many items are kept for
 * the user, known or not (0: the user has no state).  Indices are cached
 * per generation: give each distinct map its own generation number. */
void users_history(serve_users *u, const char *user, const ember_idmap *items,
                   uint64_t generation, uint32_t *out, size_t cap, size_t *n_out,
                   size_t *n_recent);
size_t users_count(const serve_users *u);
/* Impressions (events of type "impression"): what the user was shown,
 * kept apart from the history (at most history_len, newest last), for
 * exposure capping and category fatigue. */
int users_impress(serve_users *u, const char *user, const char *item, int64_t ts);
/* The indices (in items, resolved for generation) of the user's
 * impressions at ts >= since, repeats included, into out (cap). */
void users_impressions(serve_users *u, const char *user, const ember_idmap *items,
                       uint64_t generation, int64_t since, uint32_t *out, size_t cap,
                       size_t *n_out);

/* ------------------------------------------------------- event store */

typedef struct {
    const char *user, *item, *type;
    double value;
    int64_t ts;
} serve_event;

/* What the store tells its owner once an operation is committed; the
 * writer thread calls these in commit order, before the caller of
 * store_append / store_delete_user is woken. */
/* An item added through POST /v1/items: its id, title (NULL: none) and
 * categories joined by tabs ("" for none). */
typedef struct {
    const char *item, *title, *category;
    int64_t added_at; /* unix ms */
} serve_item;

/* ---------------------------------------------------------- catalogue
 * The items added while the server runs (catalog.c). */
typedef struct {
    char *title; /* NULL: none */
    char **cats;
    size_t n_cats;
    int64_t added_at; /* unix ms */
} catalog_item;
typedef struct serve_catalog serve_catalog;
typedef void (*catalog_fn)(void *ctx, const char *id, const catalog_item *it);
int catalog_new(serve_catalog **out);
void catalog_free(serve_catalog *c);
/* Adds or replaces items (by id). */
int catalog_put(serve_catalog *c, const serve_item *it, size_t n);
size_t catalog_count(serve_catalog *c);
/* Calls fn for every item (under the read lock: fn must not call back). */
void catalog_each(serve_catalog *c, catalog_fn fn, void *ctx);
/* Calls fn for item id when the catalogue has it; returns whether. */
bool catalog_with(serve_catalog *c, const char *id, catalog_fn fn, void *ctx);

typedef struct {
    int (*events)(void *ctx, const serve_event *ev, size_t n);
    bool (*erase)(void *ctx, const char *user);
    void *ctx;
    /* items stored (and replayed), for the server's catalogue; NULL: none */
    int (*items)(void *ctx, const serve_item *it, size_t n);
    void *items_ctx;
} store_hooks;

typedef struct serve_store serve_store;

int store_open(const char *path, bool durable, serve_store **out);
/* Feeds every stored event, oldest first, to hooks->events (before
 * store_start; *n receives the count). */
int store_replay(serve_store *st, const store_hooks *hooks, size_t *n);
/* Starts the writer thread. */
int store_start(serve_store *st, const store_hooks *hooks);
/* Commits a batch in one transaction (concurrent batches share one)
 * and returns once it is durable.  Strings are borrowed until then. */
int store_append(serve_store *st, const serve_event *ev, size_t n, int64_t received_ms);
/* Deletes the user's events; *deleted: rows removed, *erased: whether
 * the in-memory state had the user (from hooks->erase). */
int store_delete_user(serve_store *st, const char *user, size_t *deleted, bool *erased);
/* Adds or replaces items (by id) in the store, committed before it
 * returns; then hands them to hooks.items. */
int store_put_items(serve_store *st, const serve_item *it, size_t n);
/* Events in the store, transactions committed by the writer. */
uint64_t store_count(const serve_store *st);
/* For training (`ember train --db`): appends the interactions stored in
 * the event database at path (opened read-only; a server may be writing
 * it) to out, ids interned in users and items (with fixed maps: events of
 * unknown ids are skipped); events of type "impression" are not
 * interactions and are left out.  *n_read: events appended, *n_skipped:
 * impressions and unknown ids. */
int store_read_interactions(const char *path, bool fixed_ids, ember_idmap *users,
                            ember_idmap *items, ember_coo *out, size_t *n_read,
                            size_t *n_skipped);
uint64_t store_commits(const serve_store *st);
/* Stops the writer (pending operations finish first) and closes. */
void store_close(serve_store *st);

/* ----------------------------------------------------------- metrics */

typedef enum {
    ROUTE_RECOMMEND,
    ROUTE_SIMILAR,
    ROUTE_EVENTS,
    ROUTE_USERS,
    ROUTE_HEALTHZ,
    ROUTE_METRICS,
    ROUTE_MODEL,
    ROUTE_RELOAD,
    ROUTE_EXPLAIN,
    ROUTE_DASHBOARD,
    ROUTE_ITEMS,
    ROUTE_OTHER, /* no route matched */
    ROUTE_COUNT
} serve_route;

#define METRICS_BUCKETS 13

typedef struct {
    atomic_uint_fast64_t status[ROUTE_COUNT][500]; /* by code - 100 */
    atomic_uint_fast64_t bucket[ROUTE_COUNT][METRICS_BUCKETS];
    atomic_uint_fast64_t sum_ns[ROUTE_COUNT];
    atomic_uint_fast64_t events_ingested, events_unknown_item, events_unknown_user;
    atomic_uint_fast64_t users_deleted, reloads_ok, reloads_failed;
} serve_metrics;

/* A growable text buffer; after a failed allocation it stays failed. */
typedef struct {
    char *p;
    size_t len, cap;
    bool failed;
} serve_buf;

void buf_put(serve_buf *b, const char *s, size_t n);
void buf_printf(serve_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

const char *route_name(serve_route r);
void metrics_observe(serve_metrics *m, serve_route r, int status, double seconds);
/* Request counters and histograms in Prometheus text format. */
void metrics_write(const serve_metrics *m, serve_buf *b);
/* A Prometheus label value with \, " and newline escaped. */
void metrics_label(serve_buf *b, const char *s);

/* ------------------------------------------------------------ server */

/* A loaded model and what the API reports of it.  Requests hold a
 * reference while they use it; the last one out frees it. */
typedef struct {
    ember_model *m;
    /* the item features mapped through this model's items (n_entities 0
     * when the server has none), and what the re-ranking stage reads */
    data_features feats;
    const data_feature *category, *title;
    rerank_items items;
    /* factor models: the item table packed for the batched search (core/
     * mips.h), so that a request reads the few panels that can hold its
     * top k instead of scoring the whole catalogue */
    mips_index mips;
    /* packed by a thread of its own after the load (a 1M-item table
     * takes about a second), so the server starts at once; until
     * mips_ready, requests score the whole catalogue */
    pthread_t mips_thread;
    bool mips_started;
    atomic_bool mips_ready;
    atomic_size_t refs;
    char *path;
    char version[17]; /* the file's XXH3 checksum, hex */
    uint64_t generation; /* 1, 2, ... for each model the server loaded */
    int64_t loaded_ms;   /* unix time */
} serve_model;

typedef struct serve_server {
    serve_config cfg; /* strings owned (copies) */
    pthread_mutex_t model_lock; /* guards the pointer swap and the reference grab */
    serve_model *model;
    pthread_mutex_t reload_lock; /* one reload at a time */
    uint64_t generations;
    serve_keys *keys;
    serve_store *store;
    serve_users *users;
    serve_catalog *catalog; /* items added by POST /v1/items */
    serve_metrics *metrics;
    size_t replayed;
    int64_t started_ms;
    void *http; /* struct MHD_Daemon */
    uint16_t bound_port;
} serve_server;

/* Loads the model and the keys, opens the store, replays its events into
 * memory and starts the writer.  No HTTP yet (serve_http_start). */
int serve_new(const serve_config *c, serve_server **out);
/* Stops HTTP if running, then the writer; frees everything. */
void serve_free(serve_server *s);
/* The active model, with a reference the caller drops. */
serve_model *serve_model_acquire(serve_server *s);
void serve_model_release(serve_model *sm);
/* Loads path (NULL: the current model's file) and makes it the active
 * model; on failure the old model stays and the message says why. */
int serve_reload(serve_server *s, const char *path);
int64_t serve_now_ms(void);

/* ----------------------------------------------------------- handler */

typedef struct {
    const char *method;        /* "GET", "POST", ... */
    const char *target;        /* raw request target: path?query, percent-encoded */
    const char *authorization; /* the Authorization header, or NULL */
    bool local;                /* the client is on the loopback interface */
    const char *body;          /* may hold any bytes; need not be NUL-terminated */
    size_t len;
} serve_request;

typedef struct {
    int status;
    char *body; /* malloc'd (free()), never NULL after serve_handle */
    size_t len;
    const char *content_type;
    char allow[40];     /* for 405: the methods the path takes (else empty) */
    bool challenge;     /* 401: send WWW-Authenticate: Bearer */
} serve_response;

/* Answers one request.  Never fails: every outcome, out-of-memory
 * included, is an HTTP status with a body (JSON {"error": ...} for
 * errors).  Returns out->status. */
int serve_handle(serve_server *s, const serve_request *rq, serve_response *out);
void serve_response_free(serve_response *r);

/* -------------------------------------------------------------- http */

/* Listens on cfg.bind:cfg.port with cfg.threads threads; s->bound_port
 * receives the port (useful with port 0). */
int serve_http_start(serve_server *s);
void serve_http_stop(serve_server *s);

#endif
