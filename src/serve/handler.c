/*
 * handler.c — serve_handle(): the whole HTTP API as one function of the
 * server state and one request (method, raw target, Authorization header,
 * whether the client is local, body), answering a status and a body.  The
 * libmicrohttpd glue (http.c), the tests and the libFuzzer target call
 * it, so what is tested and fuzzed is what serves.
 *
 * Steps: parse the target (path and percent-encoded query), find the
 * route (404) and the method (405 with Allow), check the key and its role
 * (401 / 403), the body size (413), then the route's own handler, which
 * checks its input strictly (400 with {"error": ...}) before it touches
 * the model or the store.  The route table is below; docs/api.md
 * describes every route and error.
 */
#include "serve/serve.h"

#include "core/topk.h"
#include "models/model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_PARAMS 16
#define ID_MAX 256
#define TYPE_MAX 32
#define PATH_MAX_LEN 4096

typedef struct {
    char *key, *value;
} query_param;

typedef struct {
    serve_server *s;
    const serve_request *rq;
    char *query_buf;
    query_param params[MAX_PARAMS];
    size_t n_params;
    const char *tail; /* what follows a prefix route, decoded */
    char *tail_buf;
} req_ctx;

typedef void (*route_fn)(req_ctx *c, serve_response *out);

typedef struct {
    serve_route id;
    const char *path;   /* exact; a path ending in '/' is a prefix */
    const char *method;
    serve_role role;
    route_fn fn;
} route_entry;

static void get_recommend(req_ctx *c, serve_response *out);
static void post_recommend(req_ctx *c, serve_response *out);
static void get_similar(req_ctx *c, serve_response *out);
static void post_events(req_ctx *c, serve_response *out);
static void delete_user(req_ctx *c, serve_response *out);
static void get_healthz(req_ctx *c, serve_response *out);
static void get_metrics(req_ctx *c, serve_response *out);
static void get_model(req_ctx *c, serve_response *out);
static void post_reload(req_ctx *c, serve_response *out);
static void get_explain(req_ctx *c, serve_response *out);
static void get_dashboard(req_ctx *c, serve_response *out);
static void post_items(req_ctx *c, serve_response *out);

static const route_entry routes[] = {
    {ROUTE_RECOMMEND, "/v1/recommend", "GET", SERVE_ROLE_READ, get_recommend},
    {ROUTE_RECOMMEND, "/v1/recommend", "POST", SERVE_ROLE_READ, post_recommend},
    {ROUTE_SIMILAR, "/v1/similar", "GET", SERVE_ROLE_READ, get_similar},
    {ROUTE_EVENTS, "/v1/events", "POST", SERVE_ROLE_WRITE, post_events},
    {ROUTE_USERS, "/v1/users/", "DELETE", SERVE_ROLE_WRITE, delete_user},
    {ROUTE_HEALTHZ, "/healthz", "GET", SERVE_ROLE_NONE, get_healthz},
    {ROUTE_METRICS, "/metrics", "GET", SERVE_ROLE_READ, get_metrics},
    {ROUTE_MODEL, "/v1/model", "GET", SERVE_ROLE_READ, get_model},
    {ROUTE_RELOAD, "/v1/admin/reload", "POST", SERVE_ROLE_ADMIN, post_reload},
    {ROUTE_EXPLAIN, "/v1/explain", "GET", SERVE_ROLE_READ, get_explain},
    {ROUTE_DASHBOARD, "/", "GET", SERVE_ROLE_NONE, get_dashboard},
    {ROUTE_ITEMS, "/v1/items", "POST", SERVE_ROLE_WRITE, post_items},
};

static const char json_type[] = "application/json";

/* ---------------------------------------------------------- replies */

static void set_body(serve_response *out, int status, char *body, size_t len, const char *type)
{
    free(out->body);
    out->status = status;
    out->body = body;
    out->len = len;
    out->content_type = type;
}

/* The last resort when even an error body cannot be allocated: a static
 * text copied into a tiny malloc, or an empty body. */
static void reply_oom(serve_response *out)
{
    static const char text[] = "{\"error\":\"out of memory\"}";
    char *p = malloc(sizeof text);
    if (p)
        memcpy(p, text, sizeof text);
    set_body(out, 500, p, p ? sizeof text - 1 : 0, json_type);
}

static void reply_json(serve_response *out, int status, cJSON *j)
{
    char *text = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!text) {
        reply_oom(out);
        return;
    }
    set_body(out, status, text, strlen(text), json_type);
}

static void reply_error(serve_response *out, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply_error(serve_response *out, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *j = cJSON_CreateObject();
    if (j && !cJSON_AddStringToObject(j, "error", msg)) {
        cJSON_Delete(j);
        j = NULL;
    }
    reply_json(out, status, j);
}

/* An HTTP status for a library failure. */
static int status_of(int st)
{
    switch (st) {
    case EMBER_EINVAL:
    case EMBER_EFORMAT:
        return 400;
    case EMBER_ENOTFOUND:
        return 404;
    case EMBER_ETOOBIG:
        return 413;
    case EMBER_EUNSUPPORTED:
        return 501;
    case EMBER_EIO:
        return 503;
    default:
        return 500;
    }
}

/* A short printable copy of client text for messages (control
 * characters become '?', long text is cut and ends with "..."). */
static const char *quote(const char *s, char *buf, size_t cap)
{
    size_t j = 0, i = 0;
    for (; s[i] && j + 4 < cap; i++)
        buf[j++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (s[i])
        for (int d = 0; d < 3; d++)
            buf[j++] = '.';
    buf[j] = '\0';
    return buf;
}

/* Builds JSON without checking each call: cJSON_Add* returns NULL on
 * failure, which marks the builder failed. */
typedef struct {
    bool failed;
} jb;

static cJSON *jb_check(jb *b, cJSON *v)
{
    if (!v)
        b->failed = true;
    return v;
}

/* ---------------------------------------------------------- parsing */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s in place ('+' is a space when plus is set); refuses
 * a bad escape and an encoded NUL. */
static bool url_decode(char *s, bool plus)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        if (*r == '%') {
            int hi = hexval(r[1]), lo = hi < 0 ? -1 : hexval(r[2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = plus && *r == '+' ? ' ' : *r;
        }
    }
    *w = '\0';
    return true;
}

/* Splits the query into decoded key/value pairs. */
static int parse_query(req_ctx *c, const char *q, serve_response *out)
{
    c->query_buf = ember_strdup(q);
    if (!c->query_buf) {
        reply_oom(out);
        return -1;
    }
    char *save = NULL;
    for (char *part = strtok_r(c->query_buf, "&", &save); part; part = strtok_r(NULL, "&", &save)) {
        if (c->n_params == MAX_PARAMS) {
            reply_error(out, 400, "too many query parameters (at most %d)", MAX_PARAMS);
            return -1;
        }
        char *eq = strchr(part, '=');
        char *value = eq ? eq + 1 : part + strlen(part);
        if (eq)
            *eq = '\0';
        if (!url_decode(part, true) || !url_decode(value, true)) {
            reply_error(out, 400, "bad percent-encoding in the query");
            return -1;
        }
        for (size_t i = 0; i < c->n_params; i++)
            if (strcmp(c->params[i].key, part) == 0) {
                char b[64];
                reply_error(out, 400, "query parameter '%s' given twice", quote(part, b, sizeof b));
                return -1;
            }
        c->params[c->n_params++] = (query_param){part, value};
    }
    return 0;
}

/* Refuses query parameters a route does not take (NULL-terminated list). */
static bool only_params(req_ctx *c, const char *const *allowed, serve_response *out)
{
    for (size_t i = 0; i < c->n_params; i++) {
        bool ok = false;
        for (size_t j = 0; allowed[j] && !ok; j++)
            ok = strcmp(c->params[i].key, allowed[j]) == 0;
        if (!ok) {
            char b[64];
            reply_error(out, 400, "unknown query parameter '%s'",
                        quote(c->params[i].key, b, sizeof b));
            return false;
        }
    }
    return true;
}

static const char *param(const req_ctx *c, const char *key)
{
    for (size_t i = 0; i < c->n_params; i++)
        if (strcmp(c->params[i].key, key) == 0)
            return c->params[i].value;
    return NULL;
}

/* An id (user or item) from client text: 1..255 bytes, no control
 * characters.  Returns a message or NULL. */
static const char *check_id(const char *s, size_t len)
{
    if (len == 0)
        return "must not be empty";
    if (len >= ID_MAX)
        return "is longer than 255 bytes";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return "holds a control character";
    return NULL;
}

static bool k_from_text(req_ctx *c, const char *v, size_t *k, serve_response *out)
{
    int64_t x;
    if (!v) {
        *k = 10;
        return true;
    }
    if (!ember_parse_i64(v, strlen(v), &x) || x < 1 || (uint64_t)x > c->s->cfg.max_k) {
        reply_error(out, 400, "k must be an integer in 1..%zu", c->s->cfg.max_k);
        return false;
    }
    *k = (size_t)x;
    return true;
}

/* The body as a JSON object (400 and NULL when it is not one). */
static cJSON *parse_body(req_ctx *c, serve_response *out, bool allow_empty)
{
    const serve_request *rq = c->rq;
    if (rq->len == 0) {
        if (allow_empty) {
            cJSON *j = cJSON_CreateObject();
            if (!j)
                reply_oom(out);
            return j;
        }
        reply_error(out, 400, "a JSON body is required");
        return NULL;
    }
    if (memchr(rq->body, '\0', rq->len)) {
        reply_error(out, 400, "malformed JSON: NUL byte in the body");
        return NULL;
    }
    char *text = malloc(rq->len + 1);
    if (!text) {
        reply_oom(out);
        return NULL;
    }
    memcpy(text, rq->body, rq->len);
    text[rq->len] = '\0';
    const char *end = NULL;
    /* cJSON also records a parse error in a global; harmless, unused here */
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    size_t at = end ? (size_t)(end - text) : 0;
    free(text);
    if (!j) {
        reply_error(out, 400, "malformed JSON near byte %zu", at);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        reply_error(out, 400, "the body must be a JSON object");
        return NULL;
    }
    return j;
}

/* Refuses fields an object may not have (NULL-terminated list). */
static bool only_fields(const cJSON *obj, const char *const *allowed, const char *where,
                        serve_response *out)
{
    for (const cJSON *f = obj->child; f; f = f->next) {
        bool ok = false;
        for (size_t j = 0; allowed[j] && !ok; j++)
            ok = f->string && strcmp(f->string, allowed[j]) == 0;
        if (!ok) {
            char b[64];
            reply_error(out, 400, "%sunknown field '%s'", where,
                        quote(f->string ? f->string : "", b, sizeof b));
            return false;
        }
        for (const cJSON *g = obj->child; g != f; g = g->next)
            if (g->string && f->string && strcmp(g->string, f->string) == 0) {
                char b[64];
                reply_error(out, 400, "%sfield '%s' given twice", where,
                            quote(f->string, b, sizeof b));
                return false;
            }
    }
    return true;
}

/* A JSON id: a string, or an integer written in decimal (into buf). */
static const char *json_id(const cJSON *v, char buf[32], const char **why)
{
    if (cJSON_IsString(v) && v->valuestring) {
        *why = check_id(v->valuestring, strlen(v->valuestring));
        return *why ? NULL : v->valuestring;
    }
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) <= 9007199254740992.0) {
            snprintf(buf, 32, "%lld", (long long)d);
            *why = NULL;
            return buf;
        }
        *why = "must be a string or an integer";
        return NULL;
    }
    *why = "must be a string or an integer";
    return NULL;
}

/* A list of ids from a JSON array (pointers into v or into bufs). */
static bool json_ids(const cJSON *v, const char *name, const char ***ids, char (**bufs)[32],
                     size_t *n, size_t max, serve_response *out)
{
    *ids = NULL;
    *bufs = NULL;
    *n = 0;
    if (!v)
        return true;
    if (!cJSON_IsArray(v)) {
        reply_error(out, 400, "%s must be an array of item ids", name);
        return false;
    }
    size_t len = (size_t)cJSON_GetArraySize(v);
    if (len > max) {
        reply_error(out, 400, "%s has more than %zu items", name, max);
        return false;
    }
    *ids = ember_alloc(len ? len : 1, sizeof **ids);
    *bufs = ember_alloc(len ? len : 1, sizeof **bufs);
    if (!*ids || !*bufs) {
        reply_oom(out);
        return false;
    }
    for (const cJSON *e = v->child; e; e = e->next) {
        const char *why;
        const char *id = json_id(e, (*bufs)[*n], &why);
        if (!id) {
            reply_error(out, 400, "%s[%zu] %s", name, *n, why);
            return false;
        }
        (*ids)[(*n)++] = id;
    }
    return true;
}

static bool json_k(req_ctx *c, const cJSON *v, size_t *k, serve_response *out)
{
    *k = 10;
    if (!v)
        return true;
    double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < 1 || d > (double)c->s->cfg.max_k) {
        reply_error(out, 400, "k must be an integer in 1..%zu", c->s->cfg.max_k);
        return false;
    }
    *k = (size_t)d;
    return true;
}

/* --------------------------------------------------------- recommend */

typedef struct {
    const char *user; /* NULL: anonymous */
    const char **history;
    size_t n_history;
    const char **exclude;
    size_t n_exclude;
    size_t k;
    bool include_seen;
    /* the re-ranking stage (rerank.h) */
    const char *category;     /* filter: only items of this category */
    double diversity;         /* MMR weight 0..1 */
    double popularity;        /* popularity penalty 0..1 */
    size_t max_shown;         /* exposure cap (0: off) */
    size_t max_category;      /* category fatigue (0: off) */
    int64_t window;           /* seconds of impressions counted */
    size_t fresh;             /* slots for items the model has not learnt (POST /v1/items) */
} rec_args;

#define DEFAULT_FRESH 1

#define DEFAULT_WINDOW 86400 /* a day */

/* ------------------------------------------------- fresh items (content) */

/* A category profile: the categories of a history, with counts. */
typedef struct {
    char **name;
    size_t *count, n, cap, total;
} profile;

static int profile_add(profile *p, const char *name)
{
    p->total++;
    for (size_t k = 0; k < p->n; k++)
        if (strcmp(p->name[k], name) == 0) {
            p->count[k]++;
            return EMBER_OK;
        }
    size_t cap = p->cap;
    if (ember_grow((void **)&p->name, &cap, p->n + 1, sizeof *p->name) ||
        ember_grow((void **)&p->count, &p->cap, p->n + 1, sizeof *p->count))
        return EMBER_ENOMEM;
    if (!(p->name[p->n] = ember_strdup(name)))
        return EMBER_ENOMEM;
    p->count[p->n++] = 1;
    return EMBER_OK;
}

static void profile_free(profile *p)
{
    for (size_t k = 0; k < p->n; k++)
        free(p->name[k]);
    free(p->name);
    free(p->count);
}

static size_t profile_count(const profile *p, const char *name)
{
    for (size_t k = 0; k < p->n; k++)
        if (strcmp(p->name[k], name) == 0)
            return p->count[k];
    return 0;
}

/* the categories of a catalogue item into a profile */
typedef struct {
    profile *p;
    int st;
} profile_ctx;

static void profile_item(void *ctx, const char *id, const catalog_item *it)
{
    (void)id;
    profile_ctx *c = ctx;
    for (size_t k = 0; k < it->n_cats && c->st == EMBER_OK; k++)
        c->st = profile_add(c->p, it->cats[k]);
}

#define FRESH_MAX 100
#define TITLE_MAX 512 /* POST /v1/items: a title's bytes */
#define CAT_MAX 63    /* ... a category's */
#define CATS_MAX 16   /* ... categories of an item */

typedef struct {
    char id[32];
    char title[TITLE_MAX + 1];
    char cats[8][CAT_MAX + 1];
    size_t n_cats;
    double affinity;
    int64_t added_at;
} fresh_pick;

/* the best n of the catalogue items the model does not know */
typedef struct {
    const profile *p;
    const ember_idmap *model_items;
    const char *const *skip; /* ids not to pick (history, exclude) */
    size_t n_skip;
    fresh_pick *best;
    size_t n, want;
} fresh_ctx;

static bool fresh_better(const fresh_pick *a, const fresh_pick *b)
{
    if (a->affinity != b->affinity)
        return a->affinity > b->affinity;
    if (a->added_at != b->added_at)
        return a->added_at > b->added_at;
    return strcmp(a->id, b->id) < 0;
}

static void fresh_item(void *ctx, const char *id, const catalog_item *it)
{
    fresh_ctx *c = ctx;
    if (ember_idmap_find(c->model_items, id, strlen(id)) >= 0)
        return;
    for (size_t k = 0; k < c->n_skip; k++)
        if (strcmp(c->skip[k], id) == 0)
            return;
    fresh_pick f = {.added_at = it->added_at};
    size_t hits = 0;
    for (size_t k = 0; k < it->n_cats; k++)
        hits += profile_count(c->p, it->cats[k]);
    /* with a profile, only items that share a category with it; without
     * one (nothing known of the user), the newest */
    if (c->p->total > 0 && hits == 0)
        return;
    f.affinity = c->p->total ? (double)hits / (double)c->p->total : 0.0;
    snprintf(f.id, sizeof f.id, "%s", id);
    snprintf(f.title, sizeof f.title, "%s", it->title ? it->title : "");
    for (size_t k = 0; k < it->n_cats && f.n_cats < 8; k++)
        snprintf(f.cats[f.n_cats++], sizeof f.cats[0], "%s", it->cats[k]);
    /* insertion into the sorted best list */
    size_t at = c->n;
    while (at > 0 && fresh_better(&f, &c->best[at - 1]))
        at--;
    if (at >= c->want)
        return;
    size_t keep = EMBER_MIN(c->n, c->want - 1);
    memmove(c->best + at + 1, c->best + at, (keep - at) * sizeof *c->best);
    c->best[at] = f;
    c->n = keep + 1;
}

static void add_fresh(jb *b, cJSON *arr, const fresh_pick *f, size_t n)
{
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *e = jb_check(b, cJSON_CreateObject());
        if (!e)
            break;
        cJSON_AddItemToArray(arr, e);
        jb_check(b, cJSON_AddStringToObject(e, "item", f[i].id));
        jb_check(b, cJSON_AddNumberToObject(e, "score", f[i].affinity));
        jb_check(b, cJSON_AddBoolToObject(e, "fresh", true));
        if (f[i].title[0])
            jb_check(b, cJSON_AddStringToObject(e, "title", f[i].title));
        cJSON *cats = jb_check(b, cJSON_AddArrayToObject(e, "category"));
        for (size_t k = 0; cats && k < f[i].n_cats; k++) {
            cJSON *name = jb_check(b, cJSON_CreateString(f[i].cats[k]));
            if (name && !cJSON_AddItemToArray(cats, name)) {
                cJSON_Delete(name);
                b->failed = true;
            }
        }
    }
}

static void add_items(jb *b, cJSON *obj, const serve_model *sm, const uint32_t *items,
                      const float *scores, size_t n)
{
    cJSON *arr = jb_check(b, cJSON_AddArrayToObject(obj, "items"));
    ember_idmap *names = ember_model_items(sm->m);
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *e = jb_check(b, cJSON_CreateObject());
        if (!e)
            break;
        cJSON_AddItemToArray(arr, e);
        jb_check(b, cJSON_AddStringToObject(e, "item", ember_idmap_name(names, items[i])));
        jb_check(b, cJSON_AddNumberToObject(e, "score", scores[i]));
        if (sm->title && sm->title->text[items[i]])
            jb_check(b, cJSON_AddStringToObject(e, "title", sm->title->text[items[i]]));
        if (sm->category) {
            cJSON *cats = jb_check(b, cJSON_AddArrayToObject(e, "category"));
            const data_feature *f = sm->category;
            for (uint64_t t = f->ptr[items[i]]; cats && t < f->ptr[items[i] + 1]; t++) {
                cJSON *name = jb_check(b, cJSON_CreateString(ember_idmap_name(f->vocab, f->tok[t])));
                if (name && !cJSON_AddItemToArray(cats, name)) {
                    cJSON_Delete(name);
                    b->failed = true;
                }
            }
        }
    }
}

/* Retrieval for a factor model: the query's vector against the packed
 * item table (core/mips.c), seen and excluded items left out in the
 * search itself; the pool best first into items/scores (*n of them). */
static int retrieve_dot(const serve_model *sm, const ember_query *q, const rec_args *a,
                        size_t pool, uint32_t *items, float *scores, size_t *n)
{
    const ember_model *m = sm->m;
    ember_idmap *item_map = ember_model_items(m);
    model_hist_view v = model_query_history(m, q);
    size_t cap = (a->include_seen ? 0 : v.na + v.nb) + a->n_exclude, w = 0;
    float *x = ember_alloc_aligned(sm->items.dim, sizeof *x);
    uint32_t *ex = ember_alloc(cap ? cap : 1, sizeof *ex);
    int st = EMBER_OK;
    if (!x || !ex) {
        st = EMBER_ENOMEM;
        goto done;
    }
    if (!a->include_seen) {
        memcpy(ex, v.a, v.na * sizeof *ex);
        memcpy(ex + v.na, v.b, v.nb * sizeof *ex);
        w = v.na + v.nb;
    }
    for (size_t i = 0; i < a->n_exclude; i++) {
        int64_t idx = ember_idmap_find(item_map, a->exclude[i], strlen(a->exclude[i]));
        if (idx >= 0)
            ex[w++] = (uint32_t)idx;
    }
    qsort(ex, w, sizeof *ex, ember_cmp_u32);
    float c;
    if ((st = m->ops->dot_query(m, q, x, &c)))
        goto done;
    uint64_t eptr[2] = {0, w};
    uint32_t got;
    mips_opts o = {.k = pool, .threads = 1, .excl_ptr = eptr, .excl = ex};
    if ((st = mips_topk(&sm->mips, x, sm->items.dim, 1, &o, items, scores, &got)))
        goto done;
    for (uint32_t r = 0; r < got; r++)
        scores[r] += c;
    *n = got;
done:
    free(x);
    free(ex);
    return st;
}

static bool reranks(const rec_args *a)
{
    return a->diversity > 0 || a->popularity > 0 || a->max_shown > 0 || a->max_category > 0;
}

static void recommend(req_ctx *c, const rec_args *a, serve_response *out)
{
    serve_server *s = c->s;
    serve_model *sm = serve_model_acquire(s);
    const ember_model *m = sm->m;
    ember_idmap *item_map = ember_model_items(m);
    size_t ni = ember_model_n_items(m);
    int64_t user = a->user ? ember_idmap_find(ember_model_users(m), a->user, strlen(a->user)) : -1;
    size_t cap = s->cfg.history_len + a->n_history;
    /* the pool the re-ranking stage chooses from */
    size_t pool = reranks(a) ? EMBER_MIN(ni, EMBER_MAX(5 * a->k, a->k + 50)) : a->k;
    uint32_t *hist = ember_alloc(cap ? cap : 1, sizeof *hist);
    float *all = NULL;
    uint32_t *items = ember_alloc(pool ? pool : 1, sizeof *items);
    float *scores = ember_alloc(pool ? pool : 1, sizeof *scores);
    uint32_t *picked = ember_alloc(a->k ? a->k : 1, sizeof *picked);
    float *picked_s = ember_alloc(a->k ? a->k : 1, sizeof *picked_s);
    uint32_t *shown = NULL;
    fresh_pick *fresh = NULL;
    cJSON *j = cJSON_CreateObject(), *unknown = NULL;
    jb b = {.failed = !hist || !items || !scores || !picked || !picked_s || !j};
    if (b.failed)
        goto done;
    int64_t cat_tok = -1;
    if (a->category) {
        char q[80];
        if (!sm->category) {
            reply_error(out, 400, "filter.category: the server has no item categories (start "
                                  "it with --items FILE)");
            goto done;
        }
        cat_tok = ember_idmap_find(sm->category->vocab, a->category, strlen(a->category));
        if (cat_tok < 0) {
            reply_error(out, 400, "filter.category: no item has category '%s'",
                        quote(a->category, q, sizeof q));
            goto done;
        }
    }
    size_t nh = 0, n_recent = 0;
    if (a->user)
        users_history(s->users, a->user, item_map, sm->generation, hist, s->cfg.history_len, &nh,
                      &n_recent);
    unknown = jb_check(&b, cJSON_CreateArray());
    if (!unknown)
        goto done;
    for (size_t i = 0; i < a->n_history; i++) {
        int64_t idx = ember_idmap_find(item_map, a->history[i], strlen(a->history[i]));
        if (idx >= 0) {
            hist[nh++] = (uint32_t)idx;
            continue;
        }
        cJSON *name = cJSON_CreateString(a->history[i]);
        if (!name || !cJSON_AddItemToArray(unknown, name)) {
            cJSON_Delete(name);
            b.failed = true;
        }
    }
    if (user < 0 && nh == 0) {
        char q[80];
        if (a->user && n_recent == 0 && a->n_history == 0)
            reply_error(out, 404, "unknown user '%s' (no trained state and no events)",
                        quote(a->user, q, sizeof q));
        else if (a->user)
            reply_error(out, 404, "user '%s' has no item the model knows",
                        quote(a->user, q, sizeof q));
        else
            reply_error(out, 404, "no item of the history is known to the model");
        goto done;
    }
    ember_query q = {.user = user, .hist = nh ? hist : NULL, .n_hist = nh};
    size_t n = 0, w = 0;
    int st;
    if (atomic_load(&sm->mips_ready) && cat_tok < 0) {
        /* retrieval for a factor model: the packed search */
        if ((st = retrieve_dot(sm, &q, a, pool, items, scores, &n))) {
            reply_error(out, status_of(st), "recommend: %s", ember_last_error());
            goto done;
        }
        goto rerank;
    }
    /* retrieval: every item scored, then what may not be shown removed */
    all = ember_alloc(ni ? ni : 1, sizeof *all);
    if (!all) {
        b.failed = true;
        goto done;
    }
    st = ember_model_score(m, &q, NULL, 0, all);
    if (st) {
        reply_error(out, status_of(st), "recommend: %s", ember_last_error());
        goto done;
    }
    if (!a->include_seen) {
        model_hist_view v = model_query_history(m, &q);
        for (size_t i = 0; i < v.na; i++)
            all[v.a[i]] = -INFINITY;
        for (size_t i = 0; i < v.nb; i++)
            all[v.b[i]] = -INFINITY;
    }
    for (size_t i = 0; i < a->n_exclude; i++) {
        int64_t idx = ember_idmap_find(item_map, a->exclude[i], strlen(a->exclude[i]));
        if (idx >= 0)
            all[idx] = -INFINITY;
    }
    if (cat_tok >= 0)
        for (uint32_t i = 0; i < ni; i++)
            if (!rerank_has_category(&sm->items, i, (uint32_t)cat_tok))
                all[i] = -INFINITY;
    ember_topk(all, ni, pool, items, scores, &n);
rerank:
    if (reranks(a)) {
        size_t n_shown = 0;
        if (a->user && (a->max_shown || a->max_category)) {
            shown = ember_alloc(s->cfg.history_len, sizeof *shown);
            if (!shown) {
                b.failed = true;
                goto done;
            }
            users_impressions(s->users, a->user, item_map, sm->generation,
                              serve_now_ms() / 1000 - a->window, shown, s->cfg.history_len,
                              &n_shown);
        }
        rerank_opts ro = {.diversity = a->diversity,
                          .popularity = a->popularity,
                          .max_shown = a->max_shown,
                          .max_category = a->max_category,
                          .shown = shown,
                          .n_shown = n_shown};
        if (rerank_select(&sm->items, &ro, items, scores, n, a->k, picked, picked_s, &w)) {
            b.failed = true;
            goto done;
        }
    } else {
        w = EMBER_MIN(n, a->k);
        memcpy(picked, items, w * sizeof *picked);
        memcpy(picked_s, scores, w * sizeof *picked_s);
    }
    /* fresh items: the catalogue's items the model has not learnt, by
     * category affinity with the history (the newest without one) */
    size_t n_fresh = 0;
    if (a->fresh > 0 && catalog_count(s->catalog) > 0) {
        fresh = ember_alloc(a->fresh, sizeof *fresh);
        const char **skip = ember_alloc(a->n_history + a->n_exclude + 1, sizeof *skip);
        profile p = {0};
        profile_ctx pc = {.p = &p, .st = fresh && skip ? EMBER_OK : EMBER_ENOMEM};
        model_hist_view v = model_query_history(m, &q);
        const data_feature *cf = sm->category;
        for (size_t i = 0; cf && pc.st == EMBER_OK && i < v.na + v.nb; i++) {
            uint32_t it = i < v.na ? v.a[i] : v.b[i - v.na];
            for (uint64_t t = cf->ptr[it]; pc.st == EMBER_OK && t < cf->ptr[it + 1]; t++)
                pc.st = profile_add(&p, ember_idmap_name(cf->vocab, cf->tok[t]));
        }
        size_t n_skip = 0;
        for (size_t i = 0; pc.st == EMBER_OK && i < a->n_history; i++) {
            catalog_with(s->catalog, a->history[i], profile_item, &pc);
            skip[n_skip++] = a->history[i];
        }
        for (size_t i = 0; skip && i < a->n_exclude; i++)
            skip[n_skip++] = a->exclude[i];
        if (pc.st == EMBER_OK) {
            fresh_ctx fc = {.p = &p, .model_items = item_map, .skip = skip, .n_skip = n_skip,
                            .best = fresh, .want = a->fresh};
            catalog_each(s->catalog, fresh_item, &fc);
            n_fresh = fc.n;
        }
        profile_free(&p);
        free(skip);
        if (pc.st) {
            b.failed = true;
            goto done;
        }
        w = EMBER_MIN(w, a->k - n_fresh);
    }
    if (a->user)
        jb_check(&b, cJSON_AddStringToObject(j, "user", a->user));
    else
        jb_check(&b, cJSON_AddNullToObject(j, "user"));
    jb_check(&b, cJSON_AddStringToObject(j, "model", ember_model_name(m)));
    jb_check(&b, cJSON_AddStringToObject(j, "version", sm->version));
    jb_check(&b, cJSON_AddBoolToObject(j, "known_user", user >= 0));
    jb_check(&b, cJSON_AddNumberToObject(j, "history_used", (double)nh));
    add_items(&b, j, sm, picked, picked_s, w);
    if (n_fresh)
        add_fresh(&b, cJSON_GetObjectItemCaseSensitive(j, "items"), fresh, n_fresh);
    if (!b.failed && cJSON_AddItemToObject(j, "unknown_items", unknown)) {
        unknown = NULL;
        reply_json(out, 200, j);
        j = NULL;
    } else {
        b.failed = true;
    }
done:
    if (b.failed)
        reply_oom(out);
    cJSON_Delete(unknown);
    cJSON_Delete(j);
    free(hist);
    free(all);
    free(items);
    free(scores);
    free(picked);
    free(picked_s);
    free(shown);
    free(fresh);
    serve_model_release(sm);
}

/* A number in [lo, hi] from query text (NULL: def). */
static bool num_from_text(const char *v, const char *name, double lo, double hi, double def,
                          double *x, serve_response *out)
{
    *x = def;
    if (!v)
        return true;
    char *end;
    double d = strtod(v, &end);
    if (!*v || *end || !isfinite(d) || d < lo || d > hi) {
        reply_error(out, 400, "%s must be a number in %g..%g", name, lo, hi);
        return false;
    }
    *x = d;
    return true;
}

/* ... and from a JSON value (NULL: def). */
static bool num_from_json(const cJSON *v, const char *name, double lo, double hi, double def,
                          double *x, serve_response *out)
{
    *x = def;
    if (!v)
        return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        reply_error(out, 400, "%s must be a number in %g..%g", name, lo, hi);
        return false;
    }
    *x = v->valuedouble;
    return true;
}

/* The re-ranking settings: diversity, popularity_penalty, max_shown,
 * max_category, window, as numbers (query text or JSON). */
static bool rerank_args(rec_args *a, const double v[5])
{
    a->diversity = v[0];
    a->popularity = v[1];
    a->max_shown = (size_t)v[2];
    a->max_category = (size_t)v[3];
    a->window = (int64_t)v[4];
    return v[2] == floor(v[2]) && v[3] == floor(v[3]) && v[4] == floor(v[4]);
}

static const char *const rerank_names[5] = {"diversity", "popularity_penalty", "max_shown",
                                            "max_category", "window"};
static const double rerank_hi[5] = {1, 1, 1e6, 1e6, 1e10};
static const double rerank_def[5] = {0, 0, 0, 0, DEFAULT_WINDOW};

static void get_recommend(req_ctx *c, serve_response *out)
{
    static const char *const allowed[] = {"user",      "k",           "include_seen",
                                          "category",  "diversity",   "popularity_penalty",
                                          "max_shown", "max_category", "window",
                                          "fresh",     NULL};
    if (!only_params(c, allowed, out))
        return;
    rec_args a = {.user = param(c, "user"), .category = param(c, "category")};
    double fr;
    if (!num_from_text(param(c, "fresh"), "fresh", 0, FRESH_MAX, DEFAULT_FRESH, &fr, out))
        return;
    if (fr != floor(fr)) {
        reply_error(out, 400, "fresh must be a whole number");
        return;
    }
    double v[5];
    for (int i = 0; i < 5; i++)
        if (!num_from_text(param(c, rerank_names[i]), rerank_names[i], 0, rerank_hi[i],
                           rerank_def[i], &v[i], out))
            return;
    if (!rerank_args(&a, v)) {
        reply_error(out, 400, "max_shown, max_category and window must be whole numbers");
        return;
    }
    const char *why_cat;
    if (a.category && (why_cat = check_id(a.category, strlen(a.category))) != NULL) {
        reply_error(out, 400, "category %s", why_cat);
        return;
    }
    const char *why;
    if (!a.user) {
        reply_error(out, 400, "the query needs user=ID");
        return;
    }
    if ((why = check_id(a.user, strlen(a.user))) != NULL) {
        reply_error(out, 400, "user %s", why);
        return;
    }
    if (!k_from_text(c, param(c, "k"), &a.k, out))
        return;
    a.fresh = EMBER_MIN((size_t)fr, a.k);
    const char *inc = param(c, "include_seen");
    if (inc && strcmp(inc, "true") != 0 && strcmp(inc, "false") != 0) {
        reply_error(out, 400, "include_seen must be true or false");
        return;
    }
    a.include_seen = inc && strcmp(inc, "true") == 0;
    recommend(c, &a, out);
}

static void post_recommend(req_ctx *c, serve_response *out)
{
    static const char *const fields[] = {"user",      "history",   "k",
                                         "exclude",   "include_seen", "filter",
                                         "diversity", "popularity_penalty", "exposure",
                                         "fresh",     NULL};
    if (!only_params(c, (const char *const[]){NULL}, out))
        return;
    cJSON *j = parse_body(c, out, false);
    if (!j)
        return;
    rec_args a = {0};
    char ubuf[32], (*hbufs)[32] = NULL, (*ebufs)[32] = NULL;
    const char *why;
    if (!only_fields(j, fields, "", out))
        goto done;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "user");
    if (u && !cJSON_IsNull(u) && !(a.user = json_id(u, ubuf, &why))) {
        reply_error(out, 400, "user %s", why);
        goto done;
    }
    if (!json_k(c, cJSON_GetObjectItemCaseSensitive(j, "k"), &a.k, out))
        goto done;
    size_t max_list = 10000;
    if (!json_ids(cJSON_GetObjectItemCaseSensitive(j, "history"), "history", &a.history, &hbufs,
                  &a.n_history, max_list, out) ||
        !json_ids(cJSON_GetObjectItemCaseSensitive(j, "exclude"), "exclude", &a.exclude, &ebufs,
                  &a.n_exclude, max_list, out))
        goto done;
    const cJSON *inc = cJSON_GetObjectItemCaseSensitive(j, "include_seen");
    if (inc && !cJSON_IsBool(inc)) {
        reply_error(out, 400, "include_seen must be true or false");
        goto done;
    }
    a.include_seen = inc && cJSON_IsTrue(inc);
    /* re-ranking: "filter": {"category": C}, "diversity", "popularity_penalty",
     * "exposure": {"max_shown", "max_category", "window"} */
    const cJSON *filter = cJSON_GetObjectItemCaseSensitive(j, "filter");
    const cJSON *expo = cJSON_GetObjectItemCaseSensitive(j, "exposure");
    static const char *const filter_fields[] = {"category", NULL};
    static const char *const expo_fields[] = {"max_shown", "max_category", "window", NULL};
    if ((filter && !cJSON_IsObject(filter)) || (expo && !cJSON_IsObject(expo))) {
        reply_error(out, 400, "filter and exposure must be objects");
        goto done;
    }
    if ((filter && !only_fields(filter, filter_fields, "filter.", out)) ||
        (expo && !only_fields(expo, expo_fields, "exposure.", out)))
        goto done;
    const cJSON *cat = filter ? cJSON_GetObjectItemCaseSensitive(filter, "category") : NULL;
    char cbuf[32];
    if (cat && !(a.category = json_id(cat, cbuf, &why))) {
        reply_error(out, 400, "filter.category %s", why);
        goto done;
    }
    double v[5];
    const cJSON *src[5] = {cJSON_GetObjectItemCaseSensitive(j, "diversity"),
                           cJSON_GetObjectItemCaseSensitive(j, "popularity_penalty"),
                           expo ? cJSON_GetObjectItemCaseSensitive(expo, "max_shown") : NULL,
                           expo ? cJSON_GetObjectItemCaseSensitive(expo, "max_category") : NULL,
                           expo ? cJSON_GetObjectItemCaseSensitive(expo, "window") : NULL};
    for (int i = 0; i < 5; i++)
        if (!num_from_json(src[i], rerank_names[i], 0, rerank_hi[i], rerank_def[i], &v[i], out))
            goto done;
    if (!rerank_args(&a, v)) {
        reply_error(out, 400, "max_shown, max_category and window must be whole numbers");
        goto done;
    }
    double fr;
    if (!num_from_json(cJSON_GetObjectItemCaseSensitive(j, "fresh"), "fresh", 0, FRESH_MAX,
                       DEFAULT_FRESH, &fr, out))
        goto done;
    if (fr != floor(fr)) {
        reply_error(out, 400, "fresh must be a whole number");
        goto done;
    }
    a.fresh = EMBER_MIN((size_t)fr, a.k);
    if (!a.user && a.n_history == 0) {
        reply_error(out, 400, "give a user, a history, or both");
        goto done;
    }
    recommend(c, &a, out);
done:
    free(a.history);
    free(hbufs);
    free(a.exclude);
    free(ebufs);
    cJSON_Delete(j);
}

/* ----------------------------------------------------------- explain */

static const char *title_or_id(const serve_model *sm, uint32_t item)
{
    if (sm->title && sm->title->text[item])
        return sm->title->text[item];
    return ember_idmap_name(ember_model_items(sm->m), item);
}

/* GET /v1/explain?user=U&item=I[&k=5]: the history items that made the
 * model score I for U (ember_model_explain), with their shares, and a
 * sentence. */
static void get_explain(req_ctx *c, serve_response *out)
{
    static const char *const allowed[] = {"user", "item", "k", NULL};
    if (!only_params(c, allowed, out))
        return;
    const char *user = param(c, "user"), *item = param(c, "item"), *why;
    if (!user || !item) {
        reply_error(out, 400, "the query needs user=ID and item=ID");
        return;
    }
    if ((why = check_id(user, strlen(user))) || (why = check_id(item, strlen(item)))) {
        reply_error(out, 400, "user and item ids: %s", why);
        return;
    }
    size_t k = 5;
    if (param(c, "k") && !k_from_text(c, param(c, "k"), &k, out))
        return;
    k = EMBER_MIN(k, (size_t)100);
    serve_server *s = c->s;
    serve_model *sm = serve_model_acquire(s);
    const ember_model *m = sm->m;
    ember_idmap *item_map = ember_model_items(m);
    int64_t u = ember_idmap_find(ember_model_users(m), user, strlen(user));
    int64_t it = ember_idmap_find(item_map, item, strlen(item));
    uint32_t *hist = ember_alloc(s->cfg.history_len, sizeof *hist);
    ember_reason *r = ember_alloc(k, sizeof *r);
    cJSON *j = cJSON_CreateObject();
    jb b = {.failed = !hist || !r || !j};
    char q[80], text[1024];
    if (b.failed)
        goto done;
    if (it < 0) {
        reply_error(out, 404, "item '%s' is unknown to the model", quote(item, q, sizeof q));
        goto done;
    }
    size_t nh = 0, n_recent = 0, n = 0;
    users_history(s->users, user, item_map, sm->generation, hist, s->cfg.history_len, &nh,
                  &n_recent);
    if (u < 0 && nh == 0) {
        reply_error(out, 404, "unknown user '%s' (no trained state and no events)",
                    quote(user, q, sizeof q));
        goto done;
    }
    ember_query qy = {.user = u, .hist = nh ? hist : NULL, .n_hist = nh};
    float score;
    int method;
    int st = ember_model_explain(m, &qy, (uint32_t)it, r, k, &n, &score, &method);
    if (st) {
        reply_error(out, status_of(st), "explain: %s", ember_last_error());
        goto done;
    }
    static const char *const method_names[] = {"none", "exact", "leave-one-out"};
    jb_check(&b, cJSON_AddStringToObject(j, "user", user));
    jb_check(&b, cJSON_AddStringToObject(j, "item", item));
    if (sm->title && sm->title->text[it])
        jb_check(&b, cJSON_AddStringToObject(j, "title", sm->title->text[it]));
    jb_check(&b, cJSON_AddStringToObject(j, "model", ember_model_name(m)));
    jb_check(&b, cJSON_AddNumberToObject(j, "score", score));
    jb_check(&b, cJSON_AddStringToObject(j, "method", method_names[method]));
    cJSON *because = jb_check(&b, cJSON_AddArrayToObject(j, "because"));
    for (size_t i = 0; because && i < n; i++) {
        cJSON *e = jb_check(&b, cJSON_CreateObject());
        if (!e)
            break;
        cJSON_AddItemToArray(because, e);
        jb_check(&b, cJSON_AddStringToObject(e, "item", ember_idmap_name(item_map, r[i].item)));
        if (sm->title && sm->title->text[r[i].item])
            jb_check(&b, cJSON_AddStringToObject(e, "title", sm->title->text[r[i].item]));
        jb_check(&b, cJSON_AddNumberToObject(e, "weight", r[i].weight));
    }
    /* in plain words */
    size_t len = 0;
    if (method == EMBER_EXPLAIN_NONE || n == 0) {
        uint32_t cnt = m->item_count[it];
        len = (size_t)snprintf(text, sizeof text,
                               "%s is recommended for its popularity (%u interactions in "
                               "training), not for this user's history.",
                               title_or_id(sm, (uint32_t)it), cnt);
    } else {
        /* exact shares add up to the score: say which part; a
         * leave-one-out weight is how far the score falls without it */
        len = (size_t)snprintf(text, sizeof text, "Recommended because of ");
        for (size_t i = 0; i < n && i < 3 && len < sizeof text; i++) {
            const char *sep = i == 0 ? "" : (i + 1 == EMBER_MIN(n, (size_t)3) ? " and " : ", ");
            if (method == EMBER_EXPLAIN_EXACT && score > 0)
                len += (size_t)snprintf(text + len, sizeof text - len, "%s%s (%.0f%% of the score)",
                                        sep, title_or_id(sm, r[i].item),
                                        100.0 * r[i].weight / score);
            else
                len += (size_t)snprintf(text + len, sizeof text - len,
                                        "%s%s (the score falls by %.3g without it)", sep,
                                        title_or_id(sm, r[i].item), r[i].weight);
        }
        if (len < sizeof text)
            snprintf(text + len, sizeof text - len, ".");
    }
    jb_check(&b, cJSON_AddStringToObject(j, "text", text));
    if (!b.failed) {
        reply_json(out, 200, j);
        j = NULL;
    }
done:
    if (b.failed)
        reply_oom(out);
    cJSON_Delete(j);
    free(hist);
    free(r);
    serve_model_release(sm);
}

/* --------------------------------------------------------- dashboard */

extern const unsigned char serve_dashboard_html[];
extern const size_t serve_dashboard_html_len;

/* GET /: the one-page dashboard (src/serve/dashboard.html, embedded at
 * build time); user, k and diversity are read by the page's script. */
static void get_dashboard(req_ctx *c, serve_response *out)
{
    static const char *const allowed[] = {"user", "k", "diversity", NULL};
    if (!only_params(c, allowed, out))
        return;
    char *body = malloc(serve_dashboard_html_len + 1);
    if (!body) {
        reply_oom(out);
        return;
    }
    memcpy(body, serve_dashboard_html, serve_dashboard_html_len);
    body[serve_dashboard_html_len] = '\0';
    set_body(out, 200, body, serve_dashboard_html_len, "text/html; charset=utf-8");
}

/* ----------------------------------------------------------- similar */

/* The catalogue item's categories, copied out of the lock. */
typedef struct {
    char cats[CATS_MAX][CAT_MAX + 1];
    size_t n;
} cat_set;

static void copy_cats(void *ctx, const char *id, const catalog_item *it)
{
    (void)id;
    cat_set *s = ctx;
    for (size_t k = 0; k < it->n_cats && s->n < CATS_MAX; k++)
        snprintf(s->cats[s->n++], sizeof s->cats[0], "%s", it->cats[k]);
}

static bool in_set(const cat_set *s, const char *name)
{
    for (size_t k = 0; k < s->n; k++)
        if (strcmp(s->cats[k], name) == 0)
            return true;
    return false;
}

/* the catalogue's other items by Jaccard similarity of categories */
typedef struct {
    const cat_set *of;
    const char *self;
    const ember_idmap *model_items;
    fresh_pick *best;
    size_t n, want;
} content_ctx;

static void content_item(void *ctx, const char *id, const catalog_item *it)
{
    content_ctx *c = ctx;
    if (strcmp(id, c->self) == 0 || ember_idmap_find(c->model_items, id, strlen(id)) >= 0)
        return; /* items the model knows are scored with its categories below */
    size_t both = 0;
    for (size_t k = 0; k < it->n_cats; k++)
        both += in_set(c->of, it->cats[k]);
    if (both == 0)
        return;
    fresh_pick f = {.affinity = (double)both / (double)(c->of->n + it->n_cats - both),
                    .added_at = it->added_at};
    snprintf(f.id, sizeof f.id, "%s", id);
    size_t at = c->n;
    while (at > 0 && fresh_better(&f, &c->best[at - 1]))
        at--;
    if (at >= c->want)
        return;
    size_t keep = EMBER_MIN(c->n, c->want - 1);
    memmove(c->best + at + 1, c->best + at, (keep - at) * sizeof *c->best);
    c->best[at] = f;
    c->n = keep + 1;
}

/* GET /v1/similar for an item only the catalogue has: the items sharing
 * its categories (Jaccard), from the model's item features and from the
 * catalogue. */
static void similar_by_content(req_ctx *c, const serve_model *sm, const char *item, size_t k,
                               serve_response *out)
{
    cat_set of = {0};
    char q[80];
    if (!catalog_with(c->s->catalog, item, copy_cats, &of)) {
        reply_error(out, 404, "unknown item '%s'", quote(item, q, sizeof q));
        return;
    }
    const ember_model *m = sm->m;
    fresh_pick *best = ember_alloc(k, sizeof *best);
    cJSON *j = cJSON_CreateObject();
    jb b = {.failed = !best || !j};
    size_t n = 0;
    if (!b.failed && of.n > 0) {
        content_ctx cc = {.of = &of, .self = item, .model_items = ember_model_items(m),
                          .best = best, .want = k};
        catalog_each(c->s->catalog, content_item, &cc);
        const data_feature *cf = sm->category;
        for (uint32_t i = 0; cf && i < m->n_items; i++) {
            size_t both = 0, len = (size_t)(cf->ptr[i + 1] - cf->ptr[i]);
            for (uint64_t t = cf->ptr[i]; t < cf->ptr[i + 1]; t++)
                both += in_set(&of, ember_idmap_name(cf->vocab, cf->tok[t]));
            if (both == 0)
                continue;
            fresh_pick f = {.affinity = (double)both / (double)(of.n + len - both),
                            .added_at = INT64_MIN};
            snprintf(f.id, sizeof f.id, "%s", ember_idmap_name(ember_model_items(m), i));
            size_t at = cc.n;
            while (at > 0 && fresh_better(&f, &cc.best[at - 1]))
                at--;
            if (at >= cc.want)
                continue;
            size_t keep = EMBER_MIN(cc.n, cc.want - 1);
            memmove(cc.best + at + 1, cc.best + at, (keep - at) * sizeof *cc.best);
            cc.best[at] = f;
            cc.n = keep + 1;
        }
        n = cc.n;
    }
    jb_check(&b, cJSON_AddStringToObject(j, "item", item));
    jb_check(&b, cJSON_AddStringToObject(j, "model", ember_model_name(m)));
    jb_check(&b, cJSON_AddStringToObject(j, "method", "categories"));
    cJSON *arr = jb_check(&b, cJSON_AddArrayToObject(j, "items"));
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *e = jb_check(&b, cJSON_CreateObject());
        if (!e)
            break;
        cJSON_AddItemToArray(arr, e);
        jb_check(&b, cJSON_AddStringToObject(e, "item", best[i].id));
        jb_check(&b, cJSON_AddNumberToObject(e, "score", best[i].affinity));
    }
    if (b.failed) {
        reply_oom(out);
    } else {
        reply_json(out, 200, j);
        j = NULL;
    }
    cJSON_Delete(j);
    free(best);
}

static void get_similar(req_ctx *c, serve_response *out)
{
    static const char *const allowed[] = {"item", "k", NULL};
    if (!only_params(c, allowed, out))
        return;
    const char *item = param(c, "item"), *why;
    size_t k;
    if (!item) {
        reply_error(out, 400, "the query needs item=ID");
        return;
    }
    if ((why = check_id(item, strlen(item))) != NULL) {
        reply_error(out, 400, "item %s", why);
        return;
    }
    if (!k_from_text(c, param(c, "k"), &k, out))
        return;
    serve_model *sm = serve_model_acquire(c->s);
    const ember_model *m = sm->m;
    int64_t idx = ember_idmap_find(ember_model_items(m), item, strlen(item));
    if (idx < 0) {
        similar_by_content(c, sm, item, k, out);
        serve_model_release(sm);
        return;
    }
    k = EMBER_MIN(k, ember_model_n_items(m));
    uint32_t *items = ember_alloc(k ? k : 1, sizeof *items);
    float *scores = ember_alloc(k ? k : 1, sizeof *scores);
    cJSON *j = cJSON_CreateObject();
    jb b = {.failed = !items || !scores || !j};
    size_t n = 0;
    int st = b.failed ? EMBER_ENOMEM
                      : ember_model_similar(m, (uint32_t)idx, k, items, scores, &n);
    if (st == EMBER_OK) {
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
            if (isfinite(scores[i])) {
                items[w] = items[i];
                scores[w++] = scores[i];
            }
        jb_check(&b, cJSON_AddStringToObject(j, "item", item));
        jb_check(&b, cJSON_AddStringToObject(j, "model", ember_model_name(m)));
        jb_check(&b, cJSON_AddStringToObject(j, "version", sm->version));
        add_items(&b, j, sm, items, scores, w);
        if (b.failed) {
            reply_oom(out);
        } else {
            reply_json(out, 200, j);
            j = NULL;
        }
    } else if (st == EMBER_EUNSUPPORTED) {
        reply_error(out, 501, "%s", ember_last_error());
    } else {
        reply_error(out, status_of(st), "similar: %s", ember_last_error());
    }
    cJSON_Delete(j);
    free(items);
    free(scores);
    serve_model_release(sm);
}

/* ------------------------------------------------------------ events */

typedef struct {
    char user[32], item[32];
} id_bufs;

/* One event object into ev (strings point into e or bufs). */
static bool parse_event(const cJSON *e, size_t i, int64_t now, serve_event *ev, id_bufs *bufs,
                        serve_response *out)
{
    static const char *const fields[] = {"user", "item", "type", "value", "timestamp", NULL};
    char where[48];
    snprintf(where, sizeof where, "events[%zu]: ", i);
    if (!cJSON_IsObject(e)) {
        reply_error(out, 400, "%smust be an object", where);
        return false;
    }
    if (!only_fields(e, fields, where, out))
        return false;
    const char *why;
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(e, "user");
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(e, "item");
    if (!u || !(ev->user = json_id(u, bufs->user, &why))) {
        reply_error(out, 400, "%suser %s", where, u ? why : "is required");
        return false;
    }
    if (!it || !(ev->item = json_id(it, bufs->item, &why))) {
        reply_error(out, 400, "%sitem %s", where, it ? why : "is required");
        return false;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type");
    ev->type = "view";
    if (t) {
        size_t len = cJSON_IsString(t) && t->valuestring ? strlen(t->valuestring) : 0;
        if (len == 0 || len > TYPE_MAX || check_id(t->valuestring, len)) {
            reply_error(out, 400, "%stype must be a string of 1..%d printable characters", where,
                        TYPE_MAX);
            return false;
        }
        ev->type = t->valuestring;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "value");
    ev->value = 1.0;
    if (v) {
        if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
            reply_error(out, 400, "%svalue must be a number", where);
            return false;
        }
        ev->value = v->valuedouble;
    }
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(e, "timestamp");
    ev->ts = now;
    if (ts) {
        double d = cJSON_IsNumber(ts) ? ts->valuedouble : -1;
        if (!cJSON_IsNumber(ts) || d != floor(d) || d < 0 || d > 9007199254740992.0) {
            reply_error(out, 400, "%stimestamp must be a non-negative integer (unix seconds)",
                        where);
            return false;
        }
        ev->ts = (int64_t)d;
    }
    return true;
}

static void post_events(req_ctx *c, serve_response *out)
{
    static const char *const fields[] = {"events", NULL};
    if (!only_params(c, (const char *const[]){NULL}, out))
        return;
    cJSON *j = parse_body(c, out, false);
    if (!j)
        return;
    serve_event *ev = NULL;
    id_bufs *bufs = NULL;
    serve_model *sm = NULL;
    if (!only_fields(j, fields, "", out))
        goto done;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "events");
    if (!cJSON_IsArray(arr)) {
        reply_error(out, 400, "events must be an array of event objects");
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n == 0) {
        reply_error(out, 400, "events is empty");
        goto done;
    }
    if (n > c->s->cfg.max_batch) {
        reply_error(out, 413, "a batch holds at most %zu events (got %zu)", c->s->cfg.max_batch, n);
        goto done;
    }
    ev = ember_alloc(n, sizeof *ev);
    bufs = ember_alloc(n, sizeof *bufs);
    if (!ev || !bufs) {
        reply_oom(out);
        goto done;
    }
    int64_t now = (int64_t)time(NULL);
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++)
        if (!parse_event(e, i, now, &ev[i], &bufs[i], out))
            goto done;
    int st = store_append(c->s->store, ev, n, serve_now_ms());
    if (st) {
        reply_error(out, st == EMBER_ENOMEM ? 500 : 503, "event store: %s",
                    ember_last_error());
        goto done;
    }
    sm = serve_model_acquire(c->s);
    size_t unknown_items = 0, unknown_users = 0;
    for (i = 0; i < n; i++) {
        unknown_items += ember_idmap_find(ember_model_items(sm->m), ev[i].item,
                                          strlen(ev[i].item)) < 0;
        unknown_users += ember_idmap_find(ember_model_users(sm->m), ev[i].user,
                                          strlen(ev[i].user)) < 0;
    }
    serve_metrics *mt = c->s->metrics;
    atomic_fetch_add_explicit(&mt->events_ingested, n, memory_order_relaxed);
    atomic_fetch_add_explicit(&mt->events_unknown_item, unknown_items, memory_order_relaxed);
    atomic_fetch_add_explicit(&mt->events_unknown_user, unknown_users, memory_order_relaxed);
    cJSON *r = cJSON_CreateObject();
    jb b = {.failed = !r};
    jb_check(&b, cJSON_AddNumberToObject(r, "stored", (double)n));
    jb_check(&b, cJSON_AddNumberToObject(r, "unknown_items", (double)unknown_items));
    jb_check(&b, cJSON_AddNumberToObject(r, "unknown_users", (double)unknown_users));
    if (b.failed) {
        cJSON_Delete(r);
        reply_oom(out);
    } else {
        reply_json(out, 200, r);
    }
done:
    serve_model_release(sm);
    free(ev);
    free(bufs);
    cJSON_Delete(j);
}

/* ------------------------------------------------------------- items */

/* A text with no control character (titles and categories). */
static bool plain_text(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* One item object into it (strings point into e, bufs; the categories
 * joined by tabs into cat_buf). */
static bool parse_item(const cJSON *e, size_t i, int64_t now, serve_item *it, char *id_buf,
                       char *cat_buf, size_t cat_cap, serve_response *out)
{
    static const char *const fields[] = {"item", "title", "category", NULL};
    char where[48];
    snprintf(where, sizeof where, "items[%zu]: ", i);
    if (!cJSON_IsObject(e)) {
        reply_error(out, 400, "%smust be an object", where);
        return false;
    }
    if (!only_fields(e, fields, where, out))
        return false;
    const char *why;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "item");
    if (!id || !(it->item = json_id(id, id_buf, &why))) {
        reply_error(out, 400, "%sitem %s", where, id ? why : "is required");
        return false;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "title");
    it->title = NULL;
    if (t) {
        if (!cJSON_IsString(t) || !t->valuestring || !plain_text(t->valuestring, TITLE_MAX)) {
            reply_error(out, 400, "%stitle must be a string of 1..%d characters without control "
                                  "characters", where, TITLE_MAX);
            return false;
        }
        it->title = t->valuestring;
    }
    const cJSON *cats = cJSON_GetObjectItemCaseSensitive(e, "category");
    size_t len = 0, n = 0;
    cat_buf[0] = '\0';
    const cJSON *one = cats;
    if (cats && cJSON_IsArray(cats))
        one = cats->child;
    for (; cats && one; one = cJSON_IsArray(cats) ? one->next : NULL) {
        if (!cJSON_IsString(one) || !one->valuestring || !plain_text(one->valuestring, CAT_MAX) ||
            ++n > CATS_MAX) {
            reply_error(out, 400, "%scategory must be a string or an array of at most %d "
                                  "strings of 1..%d characters", where, CATS_MAX, CAT_MAX);
            return false;
        }
        len += (size_t)snprintf(cat_buf + len, cat_cap - len, "%s%s", len ? "\t" : "",
                                one->valuestring);
    }
    it->category = cat_buf;
    it->added_at = now;
    return true;
}

/* POST /v1/items: items with a title and categories, stored before the
 * answer; the model need not know them (content fallbacks serve them). */
static void post_items(req_ctx *c, serve_response *out)
{
    static const char *const fields[] = {"items", NULL};
    if (!only_params(c, (const char *const[]){NULL}, out))
        return;
    cJSON *j = parse_body(c, out, false);
    if (!j)
        return;
    serve_item *it = NULL;
    char (*ids)[32] = NULL, *cats = NULL;
    const size_t cat_cap = CATS_MAX * (CAT_MAX + 1) + 1;
    if (!only_fields(j, fields, "", out))
        goto done;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, "items");
    if (!cJSON_IsArray(arr) || !arr->child) {
        reply_error(out, 400, "items must be a non-empty array of item objects");
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n > c->s->cfg.max_batch) {
        reply_error(out, 413, "a batch holds at most %zu items (got %zu)", c->s->cfg.max_batch, n);
        goto done;
    }
    it = ember_alloc(n, sizeof *it);
    ids = ember_alloc(n, sizeof *ids);
    cats = ember_alloc(n, cat_cap);
    if (!it || !ids || !cats) {
        reply_oom(out);
        goto done;
    }
    int64_t now = serve_now_ms();
    size_t i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++)
        if (!parse_item(e, i, now, &it[i], ids[i], cats + i * cat_cap, cat_cap, out))
            goto done;
    int st = store_put_items(c->s->store, it, n);
    if (st) {
        reply_error(out, st == EMBER_ENOMEM ? 500 : 503, "item store: %s", ember_last_error());
        goto done;
    }
    serve_model *sm = serve_model_acquire(c->s);
    size_t known = 0;
    for (i = 0; i < n; i++)
        known += ember_idmap_find(ember_model_items(sm->m), it[i].item, strlen(it[i].item)) >= 0;
    serve_model_release(sm);
    cJSON *r = cJSON_CreateObject();
    jb b = {.failed = !r};
    jb_check(&b, cJSON_AddNumberToObject(r, "stored", (double)n));
    jb_check(&b, cJSON_AddNumberToObject(r, "known_to_model", (double)known));
    jb_check(&b, cJSON_AddNumberToObject(r, "catalogue", (double)catalog_count(c->s->catalog)));
    if (b.failed) {
        cJSON_Delete(r);
        reply_oom(out);
    } else {
        reply_json(out, 200, r);
    }
done:
    free(it);
    free(ids);
    free(cats);
    cJSON_Delete(j);
}

/* ------------------------------------------------------------- users */

static void delete_user(req_ctx *c, serve_response *out)
{
    if (!only_params(c, (const char *const[]){NULL}, out))
        return;
    const char *user = c->tail, *why;
    if ((why = check_id(user, strlen(user))) != NULL) {
        reply_error(out, 400, "user id %s", why);
        return;
    }
    size_t deleted = 0;
    bool erased = false;
    int st = store_delete_user(c->s->store, user, &deleted, &erased);
    if (st) {
        reply_error(out, st == EMBER_ENOMEM ? 500 : 503, "user not deleted: %s",
                    ember_last_error());
        return;
    }
    if (deleted == 0 && !erased) {
        char q[80];
        reply_error(out, 404, "user '%s' has no stored events", quote(user, q, sizeof q));
        return;
    }
    atomic_fetch_add_explicit(&c->s->metrics->users_deleted, 1, memory_order_relaxed);
    cJSON *r = cJSON_CreateObject();
    jb b = {.failed = !r};
    jb_check(&b, cJSON_AddStringToObject(r, "user", user));
    jb_check(&b, cJSON_AddNumberToObject(r, "deleted_events", (double)deleted));
    jb_check(&b, cJSON_AddBoolToObject(r, "erased_from_memory", erased));
    if (b.failed) {
        cJSON_Delete(r);
        reply_oom(out);
        return;
    }
    reply_json(out, 200, r);
}

/* ---------------------------------------------- health, model, metrics */

static void get_healthz(req_ctx *c, serve_response *out)
{
    if (!only_params(c, (const char *const[]){NULL}, out))
        return;
    serve_model *sm = serve_model_acquire(c->s);
    cJSON *r = cJSON_CreateObject();
    jb b = {.failed = !r};
    jb_check(&b, cJSON_AddStringToObject(r, "status", "ok"));
    jb_check(&b, cJSON_AddStringToObject(r, "model", ember_model_name(sm->m)));
    jb_check(&b, cJSON_AddStringToObject(r, "version", sm->version));
    serve_model_release(sm);
    if (b.failed) {
        cJSON_Delete(r);
        reply_oom(out);
        return;
    }
    reply_json(out, 200, r);
}

/* The model's description, shared by GET /v1/model and the reload answer. */
static cJSON *model_json(serve_server *s, const serve_model *sm, jb *b)
{
    cJSON *r = jb_check(b, cJSON_CreateObject());
    if (!r)
        return NULL;
    const ember_model *m = sm->m;
    jb_check(b, cJSON_AddStringToObject(r, "name", ember_model_name(m)));
    jb_check(b, cJSON_AddStringToObject(r, "version", sm->version));
    jb_check(b, cJSON_AddNumberToObject(r, "generation", (double)sm->generation));
    jb_check(b, cJSON_AddStringToObject(r, "file", sm->path));
    cJSON *params = cJSON_Parse(ember_model_params_json(m));
    if (params)
        cJSON_AddItemToObject(r, "params", params);
    else
        jb_check(b, cJSON_AddObjectToObject(r, "params"));
    size_t n_users = ember_idmap_size(ember_model_users(m));
    jb_check(b, cJSON_AddNumberToObject(r, "users", (double)n_users));
    jb_check(b, cJSON_AddNumberToObject(r, "items", (double)ember_model_n_items(m)));
    jb_check(b, cJSON_AddBoolToObject(r, "predicts_ratings", ember_model_predicts_ratings(m)));
    jb_check(b, cJSON_AddNumberToObject(r, "loaded_at_ms", (double)sm->loaded_ms));
    jb_check(b, cJSON_AddNumberToObject(r, "events_stored", (double)store_count(s->store)));
    jb_check(b, cJSON_AddNumberToObject(r, "users_in_memory", (double)users_count(s->users)));
    return r;
}

static void get_model(req_ctx *c, serve_response *out)
{
    if (!only_params(c, (const char *const[]){NULL}, out))
        return;
    serve_model *sm = serve_model_acquire(c->s);
    jb b = {0};
    cJSON *r = model_json(c->s, sm, &b);
    serve_model_release(sm);
    if (b.failed) {
        cJSON_Delete(r);
        reply_oom(out);
        return;
    }
    reply_json(out, 200, r);
}

static void get_metrics(req_ctx *c, serve_response *out)
{
    if (!only_params(c, (const char *const[]){NULL}, out))
        return;
    serve_server *s = c->s;
    serve_buf b = {0};
    metrics_write(s->metrics, &b);
    serve_model *sm = serve_model_acquire(s);
    buf_printf(&b, "# HELP ember_model_info The model being served.\n"
                   "# TYPE ember_model_info gauge\nember_model_info{name=\"");
    metrics_label(&b, ember_model_name(sm->m));
    buf_printf(&b, "\",version=\"%s\",file=\"", sm->version);
    metrics_label(&b, sm->path);
    buf_printf(&b, "\"} 1\n"
                   "# HELP ember_model_generation Models loaded since start (1 = the first).\n"
                   "# TYPE ember_model_generation gauge\nember_model_generation %llu\n"
                   "# HELP ember_model_items Items the model knows.\n"
                   "# TYPE ember_model_items gauge\nember_model_items %zu\n"
                   "# HELP ember_model_users Users the model was trained on.\n"
                   "# TYPE ember_model_users gauge\nember_model_users %zu\n",
               (unsigned long long)sm->generation, ember_model_n_items(sm->m),
               ember_idmap_size(ember_model_users(sm->m)));
    serve_model_release(sm);
    buf_printf(&b, "# HELP ember_events_stored Events in the event store.\n"
                   "# TYPE ember_events_stored gauge\nember_events_stored %llu\n"
                   "# HELP ember_store_commits_total Transactions committed by the event writer.\n"
                   "# TYPE ember_store_commits_total counter\nember_store_commits_total %llu\n"
                   "# HELP ember_users_in_memory Users with recent events in memory.\n"
                   "# TYPE ember_users_in_memory gauge\nember_users_in_memory %zu\n"
                   "# HELP ember_uptime_seconds Seconds since the server started.\n"
                   "# TYPE ember_uptime_seconds gauge\nember_uptime_seconds %.3f\n",
               (unsigned long long)store_count(s->store),
               (unsigned long long)store_commits(s->store), users_count(s->users),
               (double)(serve_now_ms() - s->started_ms) / 1000.0);
    if (b.failed) {
        free(b.p);
        reply_oom(out);
        return;
    }
    set_body(out, 200, b.p, b.len, "text/plain; version=0.0.4; charset=utf-8");
}

static void post_reload(req_ctx *c, serve_response *out)
{
    static const char *const fields[] = {"path", NULL};
    if (!only_params(c, (const char *const[]){NULL}, out))
        return;
    cJSON *j = parse_body(c, out, true);
    if (!j)
        return;
    const char *path = NULL;
    if (!only_fields(j, fields, "", out))
        goto done;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "path");
    if (p) {
        size_t len = cJSON_IsString(p) && p->valuestring ? strlen(p->valuestring) : 0;
        if (len == 0 || len > PATH_MAX_LEN) {
            reply_error(out, 400, "path must be a non-empty string");
            goto done;
        }
        path = p->valuestring;
    }
    serve_model *before = serve_model_acquire(c->s);
    char previous[17];
    memcpy(previous, before->version, sizeof previous);
    serve_model_release(before);
    int st = serve_reload(c->s, path);
    if (st) {
        reply_error(out, st == EMBER_ENOMEM ? 500 : 422,
                    "model not reloaded, the previous one keeps serving: %s", ember_last_error());
        goto done;
    }
    serve_model *sm = serve_model_acquire(c->s);
    jb b = {0};
    cJSON *r = model_json(c->s, sm, &b);
    serve_model_release(sm);
    if (r)
        jb_check(&b, cJSON_AddStringToObject(r, "previous_version", previous));
    if (b.failed) {
        cJSON_Delete(r);
        reply_oom(out);
    } else {
        reply_json(out, 200, r);
    }
done:
    cJSON_Delete(j);
}

/* ---------------------------------------------------------- dispatch */

/* The key of "Authorization: Bearer KEY" (scheme case-insensitive). */
static bool bearer(const char *h, const char **key, size_t *len)
{
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
        n--;
    *key = h;
    *len = n;
    return n > 0;
}

/* 0 when the request may go on, else the status already replied. */
static int check_access(serve_server *s, const serve_request *rq, serve_role need,
                        serve_response *out)
{
    if (need == SERVE_ROLE_NONE)
        return 0;
    if (!s->keys) {
        if (need >= SERVE_ROLE_WRITE && !rq->local) {
            reply_error(out, 403, "without a key file, only clients on 127.0.0.1 may write");
            return 403;
        }
        return 0;
    }
    const char *key;
    size_t len;
    if (!bearer(rq->authorization, &key, &len)) {
        reply_error(out, 401, "an API key is required (Authorization: Bearer KEY)");
        out->challenge = true;
        return 401;
    }
    serve_role have = serve_keys_role(s->keys, key, len);
    if (have == SERVE_ROLE_NONE) {
        reply_error(out, 401, "invalid API key");
        out->challenge = true;
        return 401;
    }
    if (have < need) {
        reply_error(out, 403, "this route needs the %s role; the key has %s",
                    serve_role_name(need), serve_role_name(have));
        return 403;
    }
    return 0;
}

static bool path_matches(const route_entry *r, const char *path, size_t len)
{
    size_t n = strlen(r->path);
    if (n > 1 && r->path[n - 1] == '/')
        return len > n && memcmp(path, r->path, n) == 0 && !memchr(path + n, '/', len - n);
    return len == n && memcmp(path, r->path, n) == 0;
}

static serve_route dispatch(serve_server *s, const serve_request *rq, serve_response *out)
{
    req_ctx c = {.s = s, .rq = rq};
    const char *target = rq->target ? rq->target : "";
    const char *method = rq->method ? rq->method : "";
    if (strcmp(method, "HEAD") == 0)
        method = "GET";
    size_t path_len = strcspn(target, "?");
    if (target[0] != '/' || path_len > PATH_MAX_LEN) {
        reply_error(out, 400, "bad request target");
        return ROUTE_OTHER;
    }
    const route_entry *found = NULL, *any = NULL;
    for (size_t i = 0; i < EMBER_ARRAY_LEN(routes); i++) {
        if (!path_matches(&routes[i], target, path_len))
            continue;
        if (!any)
            any = &routes[i];
        /* the Allow header: every method of the path, HEAD with GET */
        const char *m = routes[i].method;
        size_t used = strlen(out->allow);
        snprintf(out->allow + used, sizeof out->allow - used, "%s%s%s", used ? ", " : "", m,
                 strcmp(m, "GET") == 0 ? ", HEAD" : "");
        if (strcmp(m, method) == 0)
            found = &routes[i];
    }
    if (!any) {
        reply_error(out, 404, "no such route");
        return ROUTE_OTHER;
    }
    if (!found) {
        char q[32];
        reply_error(out, 405, "method %s not allowed here (allowed: %s)",
                    quote(rq->method ? rq->method : "", q, sizeof q), out->allow);
        return any->id;
    }
    out->allow[0] = '\0';
    if (check_access(s, rq, found->role, out))
        return found->id;
    if (rq->len > s->cfg.max_body) {
        reply_error(out, 413, "the body is over the %zu-byte limit", s->cfg.max_body);
        return found->id;
    }
    if (target[path_len] == '?' && parse_query(&c, target + path_len + 1, out) != 0)
        goto done;
    size_t plen = strlen(found->path);
    if (plen > 1 && found->path[plen - 1] == '/') {
        c.tail_buf = ember_alloc(path_len - plen + 1, 1);
        if (!c.tail_buf) {
            reply_oom(out);
            goto done;
        }
        memcpy(c.tail_buf, target + plen, path_len - plen);
        c.tail_buf[path_len - plen] = '\0';
        if (!url_decode(c.tail_buf, false)) {
            reply_error(out, 400, "bad percent-encoding in the path");
            goto done;
        }
        c.tail = c.tail_buf;
    }
    found->fn(&c, out);
done:
    free(c.query_buf);
    free(c.tail_buf);
    return found->id;
}

int serve_handle(serve_server *s, const serve_request *rq, serve_response *out)
{
    double t0 = ember_now();
    memset(out, 0, sizeof *out);
    serve_route r = dispatch(s, rq, out);
    if (!out->body) /* a route that forgot to answer is a bug; never an empty reply */
        reply_error(out, 500, "internal error: no answer");
    metrics_observe(s->metrics, r, out->status, ember_now() - t0);
    return out->status;
}

void serve_response_free(serve_response *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
