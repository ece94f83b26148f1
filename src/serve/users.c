/*
 * users.c — what the server knows of each user beyond the model: the
 * recent items of their events, kept in memory so that an event changes
 * the user's next recommendation at once.
 *
 * A hash table split into stripes, each with its own mutex and buckets,
 * so requests for different users rarely wait for each other (the
 * "striped locks" of ARCHITECTURE.md).  A user keeps at most history_len
 * distinct items, oldest first; an item seen again moves to the newest
 * place.  Items are kept as external id strings, because a reloaded model
 * may know items the previous one did not; each keeps the index it had in
 * the map of one generation, re-resolved when a request brings another.
 *
 * Impressions (what the user was shown) are kept beside, not in, the
 * history: every one counts (no move to the front), the oldest dropped
 * beyond history_len; the re-ranking stage counts them in a time window.
 */
#include "serve/serve.h"

#include <stdlib.h>
#include <string.h>

#define STRIPES 64

typedef struct {
    char *id;
    int64_t ts;
    int64_t idx;  /* index in the map of generation gen, -1 unknown */
    uint64_t gen; /* 0: not resolved yet */
} recent_item;

typedef struct user_entry {
    struct user_entry *next;
    uint64_t hash;
    char *id;
    recent_item *items;
    size_t n, cap;
    recent_item *shown; /* impressions, oldest first */
    size_t n_shown, cap_shown;
} user_entry;

typedef struct {
    pthread_mutex_t lock;
    user_entry **buckets;
    size_t n_buckets, n_users;
} __attribute__((aligned(64))) stripe;

struct serve_users {
    stripe stripes[STRIPES];
    size_t history_len;
    atomic_size_t n_users;
};

int users_new(size_t history_len, serve_users **out)
{
    *out = NULL;
    if (history_len == 0)
        return ember_fail(EMBER_EINVAL, "history length must be at least 1");
    serve_users *u = aligned_alloc(64, sizeof *u);
    if (!u)
        return ember_fail(EMBER_ENOMEM, "out of memory (user state)");
    memset(u, 0, sizeof *u);
    u->history_len = history_len;
    atomic_init(&u->n_users, 0);
    for (size_t i = 0; i < STRIPES; i++)
        pthread_mutex_init(&u->stripes[i].lock, NULL);
    *out = u;
    return EMBER_OK;
}

static void entry_free(user_entry *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->items[i].id);
    free(e->items);
    for (size_t i = 0; i < e->n_shown; i++)
        free(e->shown[i].id);
    free(e->shown);
    free(e->id);
    free(e);
}

void users_free(serve_users *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < STRIPES; i++) {
        stripe *s = &u->stripes[i];
        for (size_t b = 0; b < s->n_buckets; b++)
            for (user_entry *e = s->buckets[b], *next; e; e = next) {
                next = e->next;
                entry_free(e);
            }
        free(s->buckets);
        pthread_mutex_destroy(&s->lock);
    }
    free(u);
}

static uint64_t hash_id(const char *id)
{
    return ember_hash64(id, strlen(id));
}

static stripe *stripe_of(serve_users *u, uint64_t h)
{
    return &u->stripes[h % STRIPES];
}

/* The entry's link in its bucket (the stripe's lock held). */
static user_entry **find(stripe *s, uint64_t h, const char *id)
{
    if (s->n_buckets == 0)
        return NULL;
    user_entry **p = &s->buckets[(h / STRIPES) & (s->n_buckets - 1)];
    for (; *p; p = &(*p)->next)
        if ((*p)->hash == h && strcmp((*p)->id, id) == 0)
            return p;
    return NULL;
}

/* Doubles the buckets of a stripe when it holds as many users. */
static int grow_buckets(stripe *s)
{
    if (s->n_users < s->n_buckets)
        return EMBER_OK;
    size_t nb = s->n_buckets ? 2 * s->n_buckets : 16;
    user_entry **b = ember_calloc(nb, sizeof *b);
    if (!b)
        return EMBER_ENOMEM;
    for (size_t i = 0; i < s->n_buckets; i++)
        for (user_entry *e = s->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t at = (e->hash / STRIPES) & (nb - 1);
            e->next = b[at];
            b[at] = e;
        }
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = nb;
    return EMBER_OK;
}

static user_entry *entry_new(uint64_t h, const char *id)
{
    user_entry *e = ember_calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->hash = h;
    e->id = ember_strdup(id);
    if (!e->id) {
        free(e);
        return NULL;
    }
    return e;
}

/* Appends item at ts to a list of at most max, the oldest dropped. */
static int list_push(recent_item **items, size_t *n, size_t *cap, size_t max, const char *item,
                     int64_t ts)
{
    char *copy = ember_strdup(item);
    if (!copy)
        return EMBER_ENOMEM;
    if (*n == max) {
        free((*items)[0].id);
        memmove(*items, *items + 1, (*n - 1) * sizeof **items);
        (*n)--;
    } else if (ember_grow((void **)items, cap, *n + 1, sizeof **items)) {
        free(copy);
        return EMBER_ENOMEM;
    }
    (*items)[(*n)++] = (recent_item){.id = copy, .ts = ts, .idx = -1, .gen = 0};
    return EMBER_OK;
}

/* Adds item as the newest of e (the stripe's lock held). */
static int entry_push(user_entry *e, size_t history_len, const char *item, int64_t ts)
{
    for (size_t i = e->n; i-- > 0;)
        if (strcmp(e->items[i].id, item) == 0) {
            recent_item keep = e->items[i];
            memmove(e->items + i, e->items + i + 1, (e->n - i - 1) * sizeof *e->items);
            keep.ts = ts;
            e->items[e->n - 1] = keep;
            return EMBER_OK;
        }
    return list_push(&e->items, &e->n, &e->cap, history_len, item, ts);
}

/* Adds an impression of item to e (the stripe's lock held). */
static int entry_show(user_entry *e, size_t history_len, const char *item, int64_t ts)
{
    return list_push(&e->shown, &e->n_shown, &e->cap_shown, history_len, item, ts);
}

static int append(serve_users *u, const char *user, const char *item, int64_t ts, bool shown);

int users_append(serve_users *u, const char *user, const char *item, int64_t ts)
{
    return append(u, user, item, ts, false);
}

int users_impress(serve_users *u, const char *user, const char *item, int64_t ts)
{
    return append(u, user, item, ts, true);
}

static int append(serve_users *u, const char *user, const char *item, int64_t ts, bool shown)
{
    uint64_t h = hash_id(user);
    stripe *s = stripe_of(u, h);
    pthread_mutex_lock(&s->lock);
    int st = EMBER_OK;
    user_entry **link = find(s, h, user), *e;
    if (link) {
        e = *link;
    } else {
        e = entry_new(h, user);
        if (!e || grow_buckets(s)) {
            if (e)
                entry_free(e);
            pthread_mutex_unlock(&s->lock);
            return EMBER_ENOMEM;
        }
    }
    st = shown ? entry_show(e, u->history_len, item, ts) : entry_push(e, u->history_len, item, ts);
    if (!link) {
        if (st == EMBER_OK) {
            size_t at = (h / STRIPES) & (s->n_buckets - 1);
            e->next = s->buckets[at];
            s->buckets[at] = e;
            s->n_users++;
            atomic_fetch_add(&u->n_users, 1);
        } else {
            entry_free(e);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return st;
}

bool users_erase(serve_users *u, const char *user)
{
    uint64_t h = hash_id(user);
    stripe *s = stripe_of(u, h);
    pthread_mutex_lock(&s->lock);
    user_entry **link = find(s, h, user);
    user_entry *e = link ? *link : NULL;
    if (e) {
        *link = e->next;
        s->n_users--;
        atomic_fetch_sub(&u->n_users, 1);
    }
    pthread_mutex_unlock(&s->lock);
    if (e)
        entry_free(e);
    return e != NULL;
}

void users_history(serve_users *u, const char *user, const ember_idmap *items,
                   uint64_t generation, uint32_t *out, size_t cap, size_t *n_out,
                   size_t *n_recent)
{
    *n_out = 0;
    *n_recent = 0;
    uint64_t h = hash_id(user);
    stripe *s = stripe_of(u, h);
    pthread_mutex_lock(&s->lock);
    user_entry **link = find(s, h, user);
    if (link) {
        user_entry *e = *link;
        *n_recent = e->n;
        for (size_t i = 0; i < e->n; i++) {
            recent_item *r = &e->items[i];
            if (r->gen != generation) {
                r->idx = ember_idmap_find(items, r->id, strlen(r->id));
                r->gen = generation;
            }
            if (r->idx >= 0 && *n_out < cap)
                out[(*n_out)++] = (uint32_t)r->idx;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

void users_impressions(serve_users *u, const char *user, const ember_idmap *items,
                       uint64_t generation, int64_t since, uint32_t *out, size_t cap,
                       size_t *n_out)
{
    *n_out = 0;
    uint64_t h = hash_id(user);
    stripe *s = stripe_of(u, h);
    pthread_mutex_lock(&s->lock);
    user_entry **link = find(s, h, user);
    if (link) {
        user_entry *e = *link;
        for (size_t i = 0; i < e->n_shown; i++) {
            recent_item *r = &e->shown[i];
            if (r->ts < since)
                continue;
            if (r->gen != generation) {
                r->idx = ember_idmap_find(items, r->id, strlen(r->id));
                r->gen = generation;
            }
            if (r->idx >= 0 && *n_out < cap)
                out[(*n_out)++] = (uint32_t)r->idx;
        }
    }
    pthread_mutex_unlock(&s->lock);
}

size_t users_count(const serve_users *u)
{
    return atomic_load(&u->n_users);
}
