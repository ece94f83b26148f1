/*
 * fuzz_http_body.h — one fuzz input through the HTTP request handler,
 * serve_handle(), shared by the libFuzzer target (fuzz_http.c) and the
 * corpus replay test (tests/serve/test_fuzz_http_replay.c), so both run
 * the same code.
 *
 * An input is a request in a small text form:
 *   METHOD SP TARGET LF
 *   NAME ": " VALUE LF      (zero or more; Authorization is passed on,
 *                            "X-Remote: 1" makes the client non-local,
 *                            "X-Keys: 1" picks the server with a key file)
 *   LF
 *   BODY                    (the rest, any bytes)
 * Inputs without the first LF are sent whole as a body to POST /v1/events
 * (so the JSON parser and the event checks see raw mutations too).
 *
 * Two servers answer: one without keys, one with a key file (keys
 * "fuzz-read-key", "fuzz-write-key", "fuzz-admin-key"); both serve a small
 * itemknn trained at start-up on generated data, with an in-memory event
 * store.  They are rebuilt every 20,000 inputs so the store stays small.
 *
 * Checks (a failure returns its number, and the target traps):
 *   1  the answer has a body, and the status is one the API documents
 *      (500 and 503 are not: they would mean a bug or a broken store)
 *   2  a JSON answer parses; an error answer is {"error": "..."}
 *   3  405 carries Allow, 401 carries the Bearer challenge
 *   4  a 200 recommend/similar answer lists at most k items, each known
 *      to the model, with finite scores
 */
#ifndef EMBER_FUZZ_HTTP_BODY_H
#define EMBER_FUZZ_HTTP_BODY_H

#include "data/data.h"
#include "ember.h"
#include "serve/serve.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char dir[256], model[300], keys[300];
    serve_server *open, *keyed;
    size_t runs;
    int ready; /* 1 ready, -1 setup failed */
} fuzz_http_env;

static fuzz_http_env fuzz_http;

static inline void fuzz_http_cleanup(void)
{
    serve_free(fuzz_http.open);
    serve_free(fuzz_http.keyed);
    fuzz_http.open = fuzz_http.keyed = NULL;
    if (fuzz_http.dir[0]) {
        char path[400];
        const char *names[] = {"synth.tsv", "model.ember", "keys.txt"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            snprintf(path, sizeof path, "%s/%s", fuzz_http.dir, names[i]);
            unlink(path);
        }
        rmdir(fuzz_http.dir);
        fuzz_http.dir[0] = '\0';
    }
}

static inline serve_server *fuzz_http_server(const char *keys)
{
    serve_config c;
    serve_config_init(&c);
    c.model_path = fuzz_http.model;
    c.db_path = ":memory:";
    c.keys_path = keys;
    c.durable = false;
    c.max_body = 65536;
    c.max_batch = 200;
    c.history_len = 50;
    serve_server *s = NULL;
    return serve_new(&c, &s) == EMBER_OK ? s : NULL;
}

static inline int fuzz_http_setup(void)
{
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fuzz_http.dir, sizeof fuzz_http.dir, "%s/ember-fuzz-http-XXXXXX", base);
    if (!mkdtemp(fuzz_http.dir))
        return -1;
    atexit(fuzz_http_cleanup);
    char data[300];
    snprintf(data, sizeof data, "%s/synth.tsv", fuzz_http.dir);
    snprintf(fuzz_http.model, sizeof fuzz_http.model, "%s/model.ember", fuzz_http.dir);
    snprintf(fuzz_http.keys, sizeof fuzz_http.keys, "%s/keys.txt", fuzz_http.dir);
    data_synth_opts o;
    data_synth_opts_init(&o);
    o.n_users = 60;
    o.n_items = 80;
    o.n_interactions = 1500;
    o.seed = 11;
    if (data_synth_write(&o, data, NULL))
        return -1;
    ember_read_opts ro;
    ember_read_opts_init(&ro);
    ember_dataset *d;
    if (ember_dataset_load(data, &ro, NULL, NULL, &d, NULL))
        return -1;
    ember_model *m;
    ember_fit_opts fo = {.threads = 1, .seed = 1};
    int st = ember_model_new("itemknn", NULL, &m);
    if (st == EMBER_OK) {
        st = ember_model_fit(m, d, NULL, &fo);
        if (st == EMBER_OK)
            st = ember_model_save(m, fuzz_http.model);
        ember_model_free(m);
    }
    ember_dataset_free(d);
    FILE *f = fopen(fuzz_http.keys, "w");
    if (st || !f) {
        if (f)
            fclose(f);
        return -1;
    }
    fputs("fuzz-read-key read\nfuzz-write-key write\nfuzz-admin-key admin\n", f);
    fclose(f);
    return 0;
}

static inline int fuzz_http_ensure(void)
{
    if (fuzz_http.ready == 0)
        fuzz_http.ready = fuzz_http_setup() == 0 ? 1 : -1;
    if (fuzz_http.ready < 0)
        return -1;
    if (fuzz_http.runs++ % 20000 == 0) {
        serve_free(fuzz_http.open);
        serve_free(fuzz_http.keyed);
        fuzz_http.open = fuzz_http_server(NULL);
        fuzz_http.keyed = fuzz_http_server(fuzz_http.keys);
    }
    return fuzz_http.open && fuzz_http.keyed ? 0 : -1;
}

typedef struct {
    char method[32];
    char *target, *auth;
    int remote, keyed;
    const char *body;
    size_t len;
} fuzz_http_req;

/* Splits an input into a request (strings copied into buf). */
static inline void fuzz_http_parse(const uint8_t *data, size_t size, char *buf, fuzz_http_req *r)
{
    memset(r, 0, sizeof *r);
    const char *p = (const char *)data, *end = p + size;
    const char *nl = memchr(p, '\n', size);
    if (!nl) {
        snprintf(r->method, sizeof r->method, "POST");
        r->target = strcpy(buf, "/v1/events");
        r->body = p;
        r->len = size;
        return;
    }
    const char *sp = memchr(p, ' ', (size_t)(nl - p));
    size_t mlen = sp ? (size_t)(sp - p) : (size_t)(nl - p);
    if (mlen >= sizeof r->method)
        mlen = sizeof r->method - 1;
    memcpy(r->method, p, mlen);
    r->method[mlen] = '\0';
    const char *t = sp ? sp + 1 : nl;
    size_t tlen = (size_t)(nl - t);
    r->target = buf;
    memcpy(buf, t, tlen);
    buf[tlen] = '\0';
    buf += tlen + 1;
    p = nl + 1;
    while (p < end && *p != '\n') {
        nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        size_t n = (size_t)(line_end - p);
        if (n > 15 && strncmp(p, "Authorization: ", 15) == 0) {
            r->auth = buf;
            memcpy(buf, p + 15, n - 15);
            buf[n - 15] = '\0';
            buf += n - 15 + 1;
        } else if (n >= 11 && strncmp(p, "X-Remote: 1", 11) == 0) {
            r->remote = 1;
        } else if (n >= 9 && strncmp(p, "X-Keys: 1", 9) == 0) {
            r->keyed = 1;
        }
        p = nl ? nl + 1 : end;
    }
    if (p < end)
        p++; /* the blank line */
    r->body = p;
    r->len = (size_t)(end - p);
}

static inline bool fuzz_http_status_ok(int s)
{
    static const int ok[] = {200, 400, 401, 403, 404, 405, 413, 422, 501};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (s == ok[i])
            return true;
    return false;
}

/* Check 4: the items of a 200 recommend/similar answer. */
static inline int fuzz_http_items(serve_server *s, const cJSON *j)
{
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(j, "items");
    if (!cJSON_IsArray(items))
        return 4;
    serve_model *sm = serve_model_acquire(s);
    int bad = cJSON_GetArraySize(items) > (int)s->cfg.max_k;
    for (const cJSON *e = items->child; e && !bad; e = e->next) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "item");
        const cJSON *score = cJSON_GetObjectItemCaseSensitive(e, "score");
        bad = !cJSON_IsString(id) || !cJSON_IsNumber(score) || !isfinite(score->valuedouble) ||
              ember_idmap_find(ember_model_items(sm->m), id->valuestring,
                               strlen(id->valuestring)) < 0;
    }
    serve_model_release(sm);
    return bad ? 4 : 0;
}

static inline int fuzz_http_check(const uint8_t *data, size_t size, int *status)
{
    *status = 0;
    if (fuzz_http_ensure() != 0)
        return 0; /* no server here (no tmpfs, no memory): not a finding */
    char *buf = malloc(size + 32);
    if (!buf)
        return 0;
    fuzz_http_req r;
    fuzz_http_parse(data, size, buf, &r);
    serve_server *s = r.keyed ? fuzz_http.keyed : fuzz_http.open;
    serve_request rq = {.method = r.method, .target = r.target, .authorization = r.auth,
                        .local = !r.remote, .body = r.body, .len = r.len};
    serve_response out;
    int st = serve_handle(s, &rq, &out);
    *status = st;
    int bad = 0;
    if (!out.body || st != out.status || !fuzz_http_status_ok(st))
        bad = 1;
    if (!bad && strcmp(out.content_type, "application/json") == 0) {
        char *text = malloc(out.len + 1);
        if (text) {
            memcpy(text, out.body, out.len);
            text[out.len] = '\0';
            cJSON *j = cJSON_Parse(text);
            free(text);
            if (!j)
                bad = 2;
            else if (st >= 400 && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "error")))
                bad = 2;
            else if (st == 200 && (strncmp(r.target, "/v1/recommend", 13) == 0 ||
                      strncmp(r.target, "/v1/similar", 11) == 0))
                bad = fuzz_http_items(s, j);
            cJSON_Delete(j);
        }
    }
    if (!bad && ((st == 405 && !out.allow[0]) || (st == 401 && !out.challenge)))
        bad = 3;
    serve_response_free(&out);
    free(buf);
    return bad;
}

static inline int fuzz_http_one(const uint8_t *data, size_t size)
{
    int status;
    return fuzz_http_check(data, size, &status);
}

#endif
