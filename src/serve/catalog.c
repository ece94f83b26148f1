/*
 * catalog.c — the items added while the server runs (POST /v1/items):
 * id, title and categories, kept in memory (and in the event store, which
 * replays them at start), whatever model is loaded.  Items the model has
 * not learnt are served through content fallbacks (handler.c): "fresh"
 * slots in recommendations chosen by category affinity with the user's
 * history, and similar items by shared categories.
 *
 * Ids go through an ember_idmap (interned once, never removed); the
 * title and categories of an id are replaced by a later POST.  A
 * read-write lock: requests read, POSTs write.
 */
#include "serve/serve.h"

#include <stdlib.h>
#include <string.h>

struct serve_catalog {
    pthread_rwlock_t lock;
    ember_idmap *ids;
    catalog_item *items; /* by id index */
    size_t cap;
};

int catalog_new(serve_catalog **out)
{
    *out = NULL;
    serve_catalog *c = ember_calloc(1, sizeof *c);
    if (!c)
        return EMBER_ENOMEM;
    c->ids = ember_idmap_new();
    if (!c->ids) {
        free(c);
        return EMBER_ENOMEM;
    }
    pthread_rwlock_init(&c->lock, NULL);
    *out = c;
    return EMBER_OK;
}

static void item_clear(catalog_item *it)
{
    free(it->title);
    for (size_t k = 0; k < it->n_cats; k++)
        free(it->cats[k]);
    free(it->cats);
    memset(it, 0, sizeof *it);
}

void catalog_free(serve_catalog *c)
{
    if (!c)
        return;
    size_t n = ember_idmap_size(c->ids);
    for (size_t i = 0; i < n; i++)
        item_clear(&c->items[i]);
    free(c->items);
    ember_idmap_free(c->ids);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

/* The categories of a tab-joined list, as separate strings. */
static int split_cats(const char *text, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!text || !*text)
        return EMBER_OK;
    size_t count = 1;
    for (const char *p = text; *p; p++)
        count += *p == '\t';
    char **cats = ember_calloc(count, sizeof *cats);
    if (!cats)
        return EMBER_ENOMEM;
    const char *p = text;
    for (size_t k = 0; k < count; k++) {
        size_t len = strcspn(p, "\t");
        cats[k] = ember_alloc(len + 1, 1);
        if (!cats[k]) {
            for (size_t j = 0; j < k; j++)
                free(cats[j]);
            free(cats);
            return EMBER_ENOMEM;
        }
        memcpy(cats[k], p, len);
        cats[k][len] = '\0';
        p += len + (p[len] == '\t');
    }
    *out = cats;
    *n = count;
    return EMBER_OK;
}

int catalog_put(serve_catalog *c, const serve_item *it, size_t n)
{
    int st = EMBER_OK;
    pthread_rwlock_wrlock(&c->lock);
    for (size_t i = 0; i < n && st == EMBER_OK; i++) {
        catalog_item fresh = {.added_at = it[i].added_at};
        if (it[i].title && !(fresh.title = ember_strdup(it[i].title))) {
            st = EMBER_ENOMEM;
            break;
        }
        if ((st = split_cats(it[i].category, &fresh.cats, &fresh.n_cats))) {
            item_clear(&fresh);
            break;
        }
        uint32_t idx;
        size_t before = ember_idmap_size(c->ids);
        if ((st = ember_idmap_intern(c->ids, it[i].item, strlen(it[i].item), &idx)) ||
            (idx >= before &&
             (st = ember_grow((void **)&c->items, &c->cap, (size_t)idx + 1, sizeof *c->items)))) {
            item_clear(&fresh);
            break;
        }
        if (idx >= before)
            memset(&c->items[idx], 0, sizeof c->items[idx]);
        item_clear(&c->items[idx]);
        c->items[idx] = fresh;
    }
    pthread_rwlock_unlock(&c->lock);
    return st;
}

size_t catalog_count(serve_catalog *c)
{
    pthread_rwlock_rdlock(&c->lock);
    size_t n = ember_idmap_size(c->ids);
    pthread_rwlock_unlock(&c->lock);
    return n;
}

void catalog_each(serve_catalog *c, catalog_fn fn, void *ctx)
{
    pthread_rwlock_rdlock(&c->lock);
    size_t n = ember_idmap_size(c->ids);
    for (size_t i = 0; i < n; i++)
        fn(ctx, ember_idmap_name(c->ids, (uint32_t)i), &c->items[i]);
    pthread_rwlock_unlock(&c->lock);
}

bool catalog_with(serve_catalog *c, const char *id, catalog_fn fn, void *ctx)
{
    pthread_rwlock_rdlock(&c->lock);
    int64_t idx = ember_idmap_find(c->ids, id, strlen(id));
    if (idx >= 0)
        fn(ctx, ember_idmap_name(c->ids, (uint32_t)idx), &c->items[idx]);
    pthread_rwlock_unlock(&c->lock);
    return idx >= 0;
}
