/*
 * server.c — the server object: its configuration, the active model, the
 * event store, the per-user state and the keys, created and torn down
 * together.
 *
 * The active model sits behind one pointer.  A request takes a reference
 * (the pointer read and the count bumped under a small mutex, a few
 * nanoseconds, never held while scoring), uses the model, and drops the
 * reference.  A reload loads the new file outside any lock, swaps the
 * pointer under the mutex and drops the server's reference to the old
 * model: requests in flight finish on the old one, and whoever drops the
 * last reference frees it.  A file that does not load leaves the old
 * model serving.  Each model gets a new generation number, which keys
 * the per-user caches of resolved item indices (users.c).
 */
#include "serve/serve.h"

#include "models/model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void serve_config_init(serve_config *c)
{
    memset(c, 0, sizeof *c);
    c->bind = "127.0.0.1";
    c->port = 8080;
    c->threads = 2;
    c->max_body = 1u << 20;
    c->max_batch = 10000;
    c->max_k = 1000;
    c->history_len = 200;
    c->durable = true;
}

int64_t serve_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The version of a model file: its trailer checksum (modelfile.h: the
 * last 16 bytes are the XXH3 of the rest, then "EMBEREND"). */
static void file_version(const char *path, char out[17])
{
    snprintf(out, 17, "unknown");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat sb;
    unsigned char tail[16];
    if (fstat(fd, &sb) == 0 && sb.st_size >= 16 &&
        pread(fd, tail, sizeof tail, sb.st_size - 16) == (ssize_t)sizeof tail &&
        memcmp(tail + 8, "EMBEREND", 8) == 0) {
        uint64_t sum;
        memcpy(&sum, tail, 8);
        snprintf(out, 17, "%016llx", (unsigned long long)sum);
    }
    close(fd);
}

static void model_free(serve_model *sm)
{
    if (!sm)
        return;
    data_features_free(&sm->feats);
    if (sm->mips_started) {
        pthread_join(sm->mips_thread, NULL);
        if (atomic_load(&sm->mips_ready))
            mips_free(&sm->mips);
    }
    ember_model_free(sm->m);
    free(sm->path);
    free(sm);
}

/* The thread that packs a factor model's item table for the search. */
static void *pack_items(void *arg)
{
    serve_model *sm = arg;
    const float *Q, *bias;
    size_t dim;
    sm->m->ops->dot_items(sm->m, &Q, &bias, &dim);
    if (mips_build(&sm->mips, Q, dim, bias, sm->m->n_items, dim) == EMBER_OK)
        atomic_store(&sm->mips_ready, true);
    return NULL;
}

/* The first of the named columns the features have (a list ending in
 * NULL). */
static const data_feature *first_col(const data_features *f, const char *const *names)
{
    for (size_t i = 0; names[i]; i++) {
        const data_feature *c = data_features_col(f, names[i]);
        if (c)
            return c;
    }
    return NULL;
}

/* The item features of cfg mapped through sm's items, and the re-ranking
 * stage's view of the items: popularity, factor vectors (dot-product
 * models), categories. */
static int model_items(serve_model *sm, const serve_config *cfg)
{
    const ember_model *m = sm->m;
    sm->items = (rerank_items){.n_items = m->n_items, .pop = m->item_count};
    atomic_init(&sm->mips_ready, false);
    if (m->ops->dot_items && m->ops->dot_query) {
        const float *bias;
        m->ops->dot_items(m, &sm->items.Q, &bias, &sm->items.dim);
        /* no thread: the requests score the whole catalogue, as without */
        sm->mips_started = pthread_create(&sm->mips_thread, NULL, pack_items, sm) == 0;
    }
    if (!cfg->items_path)
        return EMBER_OK;
    int st = data_features_load(cfg->items_path, NULL, ember_model_items(sm->m), &sm->feats);
    if (st)
        return st;
    const char *cat_names[] = {cfg->category_col ? cfg->category_col : "category",
                               cfg->category_col ? NULL : "genre",
                               cfg->category_col ? NULL : "class", NULL};
    const char *title_names[] = {cfg->title_col ? cfg->title_col : "title",
                                 cfg->title_col ? NULL : "movie_title", NULL};
    sm->category = first_col(&sm->feats, cat_names);
    sm->title = first_col(&sm->feats, title_names);
    if (cfg->category_col && (!sm->category || !sm->category->ptr))
        return ember_fail(EMBER_EINVAL, "%s: no token column '%s'", cfg->items_path,
                          cfg->category_col);
    if (cfg->title_col && (!sm->title || !sm->title->text))
        return ember_fail(EMBER_EINVAL, "%s: no text column '%s'", cfg->items_path,
                          cfg->title_col);
    if (sm->category && sm->category->ptr) {
        sm->items.cat_ptr = sm->category->ptr;
        sm->items.cat_tok = sm->category->tok;
    } else {
        sm->category = NULL;
    }
    if (sm->title && !sm->title->text)
        sm->title = NULL;
    return EMBER_OK;
}

/* Loads a model file; only regular files (a FIFO or a device could block
 * or never end). */
static int model_open(const char *path, uint64_t generation, const serve_config *cfg,
                      serve_model **out)
{
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return ember_fail(EMBER_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return ember_fail(EMBER_EINVAL, "%s: not a regular file", path);
    serve_model *sm = ember_calloc(1, sizeof *sm);
    if (!sm)
        return EMBER_ENOMEM;
    sm->path = ember_strdup(path);
    if (!sm->path) {
        free(sm);
        return EMBER_ENOMEM;
    }
    int st = ember_model_load(path, &sm->m);
    if (st == EMBER_OK)
        st = model_items(sm, cfg);
    if (st) {
        model_free(sm);
        return st;
    }
    atomic_init(&sm->refs, 1);
    sm->generation = generation;
    sm->loaded_ms = serve_now_ms();
    file_version(path, sm->version);
    *out = sm;
    return EMBER_OK;
}

serve_model *serve_model_acquire(serve_server *s)
{
    pthread_mutex_lock(&s->model_lock);
    serve_model *sm = s->model;
    atomic_fetch_add_explicit(&sm->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&s->model_lock);
    return sm;
}

void serve_model_release(serve_model *sm)
{
    if (sm && atomic_fetch_sub_explicit(&sm->refs, 1, memory_order_acq_rel) == 1)
        model_free(sm);
}

int serve_reload(serve_server *s, const char *path)
{
    pthread_mutex_lock(&s->reload_lock);
    serve_model *cur = serve_model_acquire(s);
    char *own = ember_strdup(path ? path : cur->path);
    serve_model_release(cur);
    serve_model *sm = NULL;
    int st = own ? model_open(own, s->generations + 1, &s->cfg, &sm) : EMBER_ENOMEM;
    free(own);
    if (st == EMBER_OK) {
        s->generations++;
        pthread_mutex_lock(&s->model_lock);
        serve_model *old = s->model;
        s->model = sm;
        pthread_mutex_unlock(&s->model_lock);
        serve_model_release(old);
        atomic_fetch_add(&s->metrics->reloads_ok, 1);
    } else {
        atomic_fetch_add(&s->metrics->reloads_failed, 1);
    }
    pthread_mutex_unlock(&s->reload_lock);
    return st;
}

/* ------------------------------------------------------------ hooks */

static int apply_events(void *ctx, const serve_event *ev, size_t n)
{
    serve_users *u = ctx;
    for (size_t i = 0; i < n; i++) {
        int st = strcmp(ev[i].type, "impression") == 0
                     ? users_impress(u, ev[i].user, ev[i].item, ev[i].ts)
                     : users_append(u, ev[i].user, ev[i].item, ev[i].ts);
        if (st)
            return st;
    }
    return EMBER_OK;
}

static int put_items(void *ctx, const serve_item *it, size_t n)
{
    return catalog_put(ctx, it, n);
}

static bool erase_user(void *ctx, const char *user)
{
    return users_erase(ctx, user);
}

/* ---------------------------------------------------------- lifetime */

static int copy_config(serve_server *s, const serve_config *c)
{
    s->cfg = *c;
    s->cfg.model_path = ember_strdup(c->model_path);
    s->cfg.db_path = ember_strdup(c->db_path);
    s->cfg.bind = ember_strdup(c->bind ? c->bind : "127.0.0.1");
    s->cfg.keys_path = c->keys_path ? ember_strdup(c->keys_path) : NULL;
    s->cfg.items_path = c->items_path ? ember_strdup(c->items_path) : NULL;
    s->cfg.category_col = c->category_col ? ember_strdup(c->category_col) : NULL;
    s->cfg.title_col = c->title_col ? ember_strdup(c->title_col) : NULL;
    if (!s->cfg.model_path || !s->cfg.db_path || !s->cfg.bind ||
        (c->keys_path && !s->cfg.keys_path) || (c->items_path && !s->cfg.items_path) ||
        (c->category_col && !s->cfg.category_col) || (c->title_col && !s->cfg.title_col))
        return EMBER_ENOMEM;
    return EMBER_OK;
}

static int check_config(const serve_config *c)
{
    if (!c->model_path || !c->db_path)
        return ember_fail(EMBER_EINVAL, "a model file and an event database are required");
    if (c->threads < 1 || c->threads > 256)
        return ember_fail(EMBER_EINVAL, "threads must be in 1..256");
    if (c->max_body < 64 || c->max_batch < 1 || c->max_k < 1 || c->history_len < 1)
        return ember_fail(EMBER_EINVAL, "body limit, batch size, k and history must be positive");
    return EMBER_OK;
}

int serve_new(const serve_config *c, serve_server **out)
{
    *out = NULL;
    int st = check_config(c);
    if (st)
        return st;
    serve_server *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    pthread_mutex_init(&s->model_lock, NULL);
    pthread_mutex_init(&s->reload_lock, NULL);
    s->started_ms = serve_now_ms();
    s->metrics = ember_calloc(1, sizeof *s->metrics);
    st = s->metrics ? copy_config(s, c) : EMBER_ENOMEM;
    if (st == EMBER_OK)
        st = model_open(s->cfg.model_path, 1, &s->cfg, &s->model);
    if (st == EMBER_OK) {
        s->generations = 1;
        if (s->cfg.keys_path)
            st = serve_keys_load(s->cfg.keys_path, &s->keys);
    }
    if (st == EMBER_OK)
        st = users_new(s->cfg.history_len, &s->users);
    if (st == EMBER_OK)
        st = catalog_new(&s->catalog);
    if (st == EMBER_OK)
        st = store_open(s->cfg.db_path, s->cfg.durable, &s->store);
    store_hooks hooks = {apply_events, erase_user, s->users, put_items, s->catalog};
    if (st == EMBER_OK)
        st = store_replay(s->store, &hooks, &s->replayed);
    if (st == EMBER_OK)
        st = store_start(s->store, &hooks);
    if (st) {
        serve_free(s);
        return st;
    }
    *out = s;
    return EMBER_OK;
}

void serve_free(serve_server *s)
{
    if (!s)
        return;
    serve_http_stop(s);
    store_close(s->store);
    users_free(s->users);
    catalog_free(s->catalog);
    serve_keys_free(s->keys);
    serve_model_release(s->model);
    free(s->metrics);
    free((char *)s->cfg.model_path);
    free((char *)s->cfg.db_path);
    free((char *)s->cfg.bind);
    free((char *)s->cfg.keys_path);
    free((char *)s->cfg.items_path);
    free((char *)s->cfg.category_col);
    free((char *)s->cfg.title_col);
    pthread_mutex_destroy(&s->model_lock);
    pthread_mutex_destroy(&s->reload_lock);
    free(s);
}
