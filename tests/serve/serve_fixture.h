/*
 * serve_fixture.h — what the server tests share: small models trained on
 * generated data (an itemknn, a pop, a file that is not a model), a
 * server built on them, and a call() that runs one request through
 * serve_handle and parses the JSON answer.
 */
#ifndef EMBER_SERVE_FIXTURE_H
#define EMBER_SERVE_FIXTURE_H

#include "testutil.h"

#include "data/data.h"
#include "serve/serve.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char knn[512], pop[512], bad[512], data[512];
} fixture_models;

static fixture_models fx;

static inline void fixture_train(const char *name, const ember_dataset *d, const char *path)
{
    ember_model *m;
    assert_int_equal(ember_model_new(name, NULL, &m), EMBER_OK);
    ember_fit_opts o = {.threads = 1, .seed = 1};
    assert_int_equal(ember_model_fit(m, d, NULL, &o), EMBER_OK);
    assert_int_equal(ember_model_save(m, path), EMBER_OK);
    ember_model_free(m);
}

/* Trains the fixture models once per test program (200 users, 300
 * items, 6,000 interactions, seed 7). */
static inline int fixture_setup(void **state)
{
    (void)state;
    const char *dir = test_tmpdir();
    snprintf(fx.data, sizeof fx.data, "%s/synth.tsv", dir);
    snprintf(fx.knn, sizeof fx.knn, "%s/knn.ember", dir);
    snprintf(fx.pop, sizeof fx.pop, "%s/pop.ember", dir);
    snprintf(fx.bad, sizeof fx.bad, "%s/bad.ember", dir);
    data_synth_opts o;
    data_synth_opts_init(&o);
    o.n_users = 200;
    o.n_items = 300;
    o.n_interactions = 6000;
    o.seed = 7;
    if (data_synth_write(&o, fx.data, NULL))
        return -1;
    ember_read_opts ro;
    ember_read_opts_init(&ro);
    ember_dataset *d;
    if (ember_dataset_load(fx.data, &ro, NULL, NULL, &d, NULL))
        return -1;
    fixture_train("itemknn", d, fx.knn);
    fixture_train("pop", d, fx.pop);
    ember_dataset_free(d);
    /* a model file cut in half: the checksum refuses it */
    FILE *in = fopen(fx.knn, "rb"), *out = fopen(fx.bad, "wb");
    if (!in || !out)
        return -1;
    char buf[4096];
    size_t n, total = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0 && total < 100000) {
        fwrite(buf, 1, n, out);
        total += n;
    }
    fclose(in);
    fclose(out);
    return 0;
}

typedef struct {
    const char *model, *db, *keys;
    size_t max_body, max_batch, history_len;
} fixture_opts;

static inline serve_server *fixture_server(const fixture_opts *o)
{
    serve_config c;
    serve_config_init(&c);
    c.model_path = o->model ? o->model : fx.knn;
    c.db_path = o->db ? o->db : ":memory:";
    c.keys_path = o->keys;
    if (o->max_body)
        c.max_body = o->max_body;
    if (o->max_batch)
        c.max_batch = o->max_batch;
    if (o->history_len)
        c.history_len = o->history_len;
    serve_server *s = NULL;
    int st = serve_new(&c, &s);
    if (st)
        fail_msg("serve_new: %s", ember_last_error());
    return s;
}

/* The last answer of call(), for checks on headers and raw text. */
static serve_response last;

/* One request (from 127.0.0.1 when local is set); *json receives the
 * parsed body when asked (NULL when the body is not JSON).  Returns the
 * status. */
static inline int call_full(serve_server *s, const char *method, const char *target,
                            const char *auth, bool local, const char *body, cJSON **json)
{
    serve_request rq = {.method = method, .target = target, .authorization = auth,
                        .local = local, .body = body, .len = body ? strlen(body) : 0};
    serve_response_free(&last);
    int status = serve_handle(s, &rq, &last);
    assert_int_equal(status, last.status);
    assert_non_null(last.body);
    if (json) {
        char *copy = malloc(last.len + 1);
        assert_non_null(copy);
        memcpy(copy, last.body, last.len);
        copy[last.len] = '\0';
        *json = cJSON_Parse(copy);
        free(copy);
    }
    /* every error answer is JSON with an "error" string */
    if (status >= 400) {
        char *copy = malloc(last.len + 1);
        assert_non_null(copy);
        memcpy(copy, last.body, last.len);
        copy[last.len] = '\0';
        cJSON *e = cJSON_Parse(copy);
        free(copy);
        if (!e || !cJSON_IsString(cJSON_GetObjectItem(e, "error")))
            fail_msg("%s %s: status %d without a JSON error: %.*s", method, target, status,
                     (int)last.len, last.body);
        cJSON_Delete(e);
    }
    return status;
}

static inline int call(serve_server *s, const char *method, const char *target, const char *body,
                cJSON **json)
{
    return call_full(s, method, target, NULL, true, body, json);
}

/* The item ids of an answer's "items" list, comma-joined, into buf. */
static inline const char *item_list(const cJSON *j, char *buf, size_t cap)
{
    buf[0] = '\0';
    const cJSON *items = cJSON_GetObjectItem(j, "items");
    assert_true(cJSON_IsArray(items));
    size_t len = 0;
    for (const cJSON *e = items->child; e; e = e->next) {
        const cJSON *id = cJSON_GetObjectItem(e, "item");
        assert_true(cJSON_IsString(id));
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? "," : "", id->valuestring);
        assert_true(len < cap);
    }
    return buf;
}

/* What the model itself recommends for a query given as ids. */
static inline const char *model_list(const char *model_path, const char *user,
                                     const char *const *hist, size_t nh, size_t k, char *buf,
                                     size_t cap)
{
    ember_model *m;
    assert_int_equal(ember_model_load(model_path, &m), EMBER_OK);
    ember_query q = {.user = user ? ember_idmap_find(ember_model_users(m), user, strlen(user)) : -1};
    uint32_t h[64];
    assert_true(nh <= 64);
    for (size_t i = 0; i < nh; i++) {
        int64_t idx = ember_idmap_find(ember_model_items(m), hist[i], strlen(hist[i]));
        assert_true(idx >= 0);
        h[i] = (uint32_t)idx;
    }
    q.hist = nh ? h : NULL;
    q.n_hist = nh;
    uint32_t items[64];
    float scores[64];
    size_t n = 0;
    assert_true(k <= 64);
    assert_int_equal(ember_model_recommend(m, &q, k, 1, items, scores, &n), EMBER_OK);
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? "," : "",
                                ember_idmap_name(ember_model_items(m), items[i]));
    ember_model_free(m);
    return buf;
}

#endif
