/*
 * test_rerank_api.c — the re-ranking stage through the HTTP API
 * (src/serve/handler.c with rerank.c and the item features of --items):
 * titles and categories in answers, the category filter, MMR diversity
 * widening the categories of a list, the popularity penalty lowering its
 * popularity, exposure capping and category fatigue fed by impression
 * events (which stay out of the history), and bad settings refused;
 * items added by POST /v1/items (the catalogue): fresh slots chosen by
 * category affinity, similar items by categories, kept across restarts.
 */
#include "serve_fixture.h"

#include <math.h>
#include <unistd.h>

static char als_path[512], items_path[512];
static ember_dataset *train;

static int setup(void **state)
{
    if (fixture_setup(state))
        return -1;
    const char *dir = test_tmpdir();
    char data[512];
    snprintf(data, sizeof data, "%s/rr.tsv", dir);
    snprintf(items_path, sizeof items_path, "%s/rr.item", dir);
    snprintf(als_path, sizeof als_path, "%s/rr-als.ember", dir);
    data_synth_opts o;
    data_synth_opts_init(&o);
    o.n_users = 300;
    o.n_items = 400;
    o.n_interactions = 12000;
    o.n_topics = 8;
    o.seed = 11;
    if (data_synth_write(&o, data, items_path))
        return -1;
    if (ember_dataset_load(data, NULL, NULL, NULL, &train, NULL))
        return -1;
    ember_model *m;
    static const char *const p[] = {"factors=16", "iterations=5", NULL};
    if (ember_model_new("als", p, &m))
        return -1;
    ember_fit_opts fo = {.threads = 1, .seed = 1};
    if (ember_model_fit(m, train, NULL, &fo) || ember_model_save(m, als_path))
        return -1;
    ember_model_free(m);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ember_dataset_free(train);
    serve_response_free(&last);
    return 0;
}

static serve_server *server_with_db(const char *model, const char *db)
{
    serve_config c;
    serve_config_init(&c);
    c.model_path = model;
    c.db_path = db;
    c.items_path = items_path;
    serve_server *s = NULL;
    if (serve_new(&c, &s))
        fail_msg("serve_new: %s", ember_last_error());
    return s;
}

static serve_server *server_with_items(const char *model)
{
    return server_with_db(model, ":memory:");
}

/* The "items" array of an answer. */
static const cJSON *items_of(const cJSON *j)
{
    const cJSON *a = cJSON_GetObjectItem(j, "items");
    assert_true(cJSON_IsArray(a));
    return a;
}

static const char *first_category(const cJSON *item)
{
    const cJSON *c = cJSON_GetObjectItem(item, "category");
    assert_true(cJSON_IsArray(c));
    assert_true(cJSON_GetArraySize(c) >= 1);
    return cJSON_GetArrayItem(c, 0)->valuestring;
}

static size_t distinct_categories(const cJSON *j)
{
    const char *seen[64];
    size_t n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, items_of(j))
    {
        const char *c = first_category(it);
        bool dup = false;
        for (size_t k = 0; k < n; k++)
            dup |= strcmp(seen[k], c) == 0;
        if (!dup && n < 64)
            seen[n++] = c;
    }
    return n;
}

/* Mean training count of the items of an answer. */
static double mean_popularity(const cJSON *j)
{
    const cJSON *it;
    double sum = 0;
    int n = 0;
    ember_idmap *items = ember_dataset_items(train);
    cJSON_ArrayForEach(it, items_of(j))
    {
        const char *id = cJSON_GetObjectItem(it, "item")->valuestring;
        int64_t idx = ember_idmap_find(items, id, strlen(id));
        assert_true(idx >= 0);
        sum += (double)data_item_len(train, (uint32_t)idx);
        n++;
    }
    return n ? sum / n : 0;
}

static void test_answers_carry_titles_and_categories(void **state)
{
    (void)state;
    serve_server *s = server_with_items(als_path);
    cJSON *j;
    assert_int_equal(call(s, "GET", "/v1/recommend?user=1&k=5", NULL, &j), 200);
    const cJSON *it;
    int n = 0;
    cJSON_ArrayForEach(it, items_of(j))
    {
        assert_true(cJSON_IsString(cJSON_GetObjectItem(it, "title")));
        first_category(it);
        n++;
    }
    assert_int_equal(n, 5);
    cJSON_Delete(j);
    serve_free(s);
}

static void test_category_filter_keeps_only_that_category(void **state)
{
    (void)state;
    serve_server *s = server_with_items(als_path);
    cJSON *j;
    assert_int_equal(call(s, "GET", "/v1/recommend?user=2&k=10", NULL, &j), 200);
    /* a category of the unfiltered list's last item */
    char cat[64];
    const cJSON *arr = items_of(j);
    snprintf(cat, sizeof cat, "%s", first_category(cJSON_GetArrayItem(arr, 9)));
    cJSON_Delete(j);
    char body[256];
    snprintf(body, sizeof body, "{\"user\":\"2\",\"k\":10,\"filter\":{\"category\":\"%s\"}}", cat);
    assert_int_equal(call(s, "POST", "/v1/recommend", body, &j), 200);
    const cJSON *it;
    int n = 0;
    cJSON_ArrayForEach(it, items_of(j))
    {
        assert_string_equal(first_category(it), cat);
        n++;
    }
    assert_int_equal(n, 10);
    cJSON_Delete(j);
    char target[128];
    snprintf(target, sizeof target, "/v1/recommend?user=2&k=3&category=%s", cat);
    assert_int_equal(call(s, "GET", target, NULL, &j), 200);
    cJSON_ArrayForEach(it, items_of(j)) assert_string_equal(first_category(it), cat);
    cJSON_Delete(j);
    /* an unknown category, and a server without item features */
    assert_int_equal(call(s, "GET", "/v1/recommend?user=2&category=nosuch", NULL, NULL), 400);
    serve_free(s);
    s = fixture_server(&(fixture_opts){0});
    assert_int_equal(call(s, "GET", "/v1/recommend?user=2&category=x", NULL, NULL), 400);
    serve_free(s);
}

static void test_diversity_widens_the_categories(void **state)
{
    (void)state;
    serve_server *s = server_with_items(als_path);
    size_t plain = 0, diverse = 0;
    for (int u = 1; u <= 20; u++) {
        char body[128];
        cJSON *j;
        snprintf(body, sizeof body, "{\"user\":\"%d\",\"k\":10}", u);
        assert_int_equal(call(s, "POST", "/v1/recommend", body, &j), 200);
        plain += distinct_categories(j);
        cJSON_Delete(j);
        snprintf(body, sizeof body, "{\"user\":\"%d\",\"k\":10,\"diversity\":0.7}", u);
        assert_int_equal(call(s, "POST", "/v1/recommend", body, &j), 200);
        diverse += distinct_categories(j);
        cJSON_Delete(j);
    }
    print_message("distinct categories in 20 top-10 lists: %zu plain, %zu with diversity 0.7\n",
                  plain, diverse);
    assert_true(diverse > plain);
    serve_free(s);
}

static void test_popularity_penalty_lowers_popularity(void **state)
{
    (void)state;
    serve_server *s = server_with_items(als_path);
    double plain = 0, penalised = 0;
    for (int u = 1; u <= 20; u++) {
        char target[128];
        cJSON *j;
        snprintf(target, sizeof target, "/v1/recommend?user=%d&k=10", u);
        assert_int_equal(call(s, "GET", target, NULL, &j), 200);
        plain += mean_popularity(j);
        cJSON_Delete(j);
        snprintf(target, sizeof target, "/v1/recommend?user=%d&k=10&popularity_penalty=0.8", u);
        assert_int_equal(call(s, "GET", target, NULL, &j), 200);
        penalised += mean_popularity(j);
        cJSON_Delete(j);
    }
    print_message("mean popularity of 20 top-10 lists: %.1f plain, %.1f with penalty 0.8\n",
                  plain / 20, penalised / 20);
    assert_true(penalised < plain);
    serve_free(s);
}

static void test_exposure_capping_from_impressions(void **state)
{
    (void)state;
    serve_server *s = server_with_items(als_path);
    cJSON *j;
    assert_int_equal(call(s, "GET", "/v1/recommend?user=3&k=5", NULL, &j), 200);
    char top[64];
    snprintf(top, sizeof top, "%s",
             cJSON_GetObjectItem(cJSON_GetArrayItem(items_of(j), 0), "item")->valuestring);
    cJSON_Delete(j);
    /* shown three times */
    char body[512];
    snprintf(body, sizeof body,
             "{\"events\":[{\"user\":\"3\",\"item\":\"%s\",\"type\":\"impression\"},"
             "{\"user\":\"3\",\"item\":\"%s\",\"type\":\"impression\"},"
             "{\"user\":\"3\",\"item\":\"%s\",\"type\":\"impression\"}]}",
             top, top, top);
    assert_int_equal(call(s, "POST", "/v1/events", body, NULL), 200);
    /* impressions are not history: without capping it is still first */
    assert_int_equal(call(s, "GET", "/v1/recommend?user=3&k=5", NULL, &j), 200);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(items_of(j), 0), "item")->valuestring, top);
    cJSON_Delete(j);
    /* capped at 3: demoted out of the top 5 */
    assert_int_equal(call(s, "GET", "/v1/recommend?user=3&k=5&max_shown=3", NULL, &j), 200);
    const cJSON *it;
    cJSON_ArrayForEach(it, items_of(j))
        assert_string_not_equal(cJSON_GetObjectItem(it, "item")->valuestring, top);
    cJSON_Delete(j);
    /* at 4 it stays */
    assert_int_equal(call(s, "POST", "/v1/recommend",
                          "{\"user\":\"3\",\"k\":5,\"exposure\":{\"max_shown\":4}}", &j),
                     200);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(items_of(j), 0), "item")->valuestring, top);
    cJSON_Delete(j);
    /* impressions older than the window (a day by default) do not count */
    assert_int_equal(call(s, "GET", "/v1/recommend?user=4&k=1", NULL, &j), 200);
    snprintf(top, sizeof top, "%s",
             cJSON_GetObjectItem(cJSON_GetArrayItem(items_of(j), 0), "item")->valuestring);
    cJSON_Delete(j);
    snprintf(body, sizeof body,
             "{\"events\":[{\"user\":\"4\",\"item\":\"%s\",\"type\":\"impression\","
             "\"timestamp\":1000}]}",
             top);
    assert_int_equal(call(s, "POST", "/v1/events", body, NULL), 200);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=4&k=1&max_shown=1", NULL, &j), 200);
    assert_string_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(items_of(j), 0), "item")->valuestring, top);
    cJSON_Delete(j);
    /* ... unless the window reaches back to them */
    assert_int_equal(
        call(s, "GET", "/v1/recommend?user=4&k=1&max_shown=1&window=9000000000", NULL, &j), 200);
    assert_string_not_equal(
        cJSON_GetObjectItem(cJSON_GetArrayItem(items_of(j), 0), "item")->valuestring, top);
    cJSON_Delete(j);
    serve_free(s);
}

static void test_category_fatigue_from_impressions(void **state)
{
    (void)state;
    serve_server *s = server_with_items(als_path);
    cJSON *j;
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5&k=10", NULL, &j), 200);
    const cJSON *arr = items_of(j);
    char cat[64], body[1024];
    snprintf(cat, sizeof cat, "%s", first_category(cJSON_GetArrayItem(arr, 0)));
    /* show two items of that category twice */
    size_t len = (size_t)snprintf(body, sizeof body, "{\"events\":[");
    int shown = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (strcmp(first_category(it), cat) != 0 || shown == 2)
            continue;
        const char *id = cJSON_GetObjectItem(it, "item")->valuestring;
        len += (size_t)snprintf(body + len, sizeof body - len,
                                "%s{\"user\":\"5\",\"item\":\"%s\",\"type\":\"impression\"}",
                                shown ? "," : "", id);
        shown++;
    }
    snprintf(body + len, sizeof body - len, "]}");
    cJSON_Delete(j);
    assert_int_equal(call(s, "POST", "/v1/events", body, NULL), 200);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5&k=5&max_category=2", NULL, &j), 200);
    cJSON_ArrayForEach(it, items_of(j)) assert_string_not_equal(first_category(it), cat);
    cJSON_Delete(j);
    serve_free(s);
}

/* A factor model is served through the packed search (core/mips.c): the
 * same lists as the model's own full scoring, for known users and for a
 * history with exclusions. */
static void test_factor_model_search_matches_full_scoring(void **state)
{
    (void)state;
    serve_server *s = server_with_items(als_path);
    /* the item table is packed by a thread after the load: wait for it */
    serve_model *sm = serve_model_acquire(s);
    for (int t = 0; t < 5000 && !atomic_load(&sm->mips_ready); t++)
        usleep(1000);
    assert_true(atomic_load(&sm->mips_ready));
    serve_model_release(sm);
    ember_model *m;
    assert_int_equal(ember_model_load(als_path, &m), EMBER_OK);
    ember_idmap *names = ember_model_items(m), *users = ember_model_users(m);
    size_t differ = 0;
    for (int u = 1; u <= 40; u++) {
        char target[96], id[16];
        snprintf(id, sizeof id, "%d", u);
        snprintf(target, sizeof target, "/v1/recommend?user=%d&k=10", u);
        cJSON *j;
        assert_int_equal(call(s, "GET", target, NULL, &j), 200);
        ember_query q = {.user = ember_idmap_find(users, id, strlen(id))};
        assert_true(q.user >= 0);
        uint32_t want[10];
        float ws[10];
        size_t n;
        assert_int_equal(ember_model_recommend(m, &q, 10, 1, want, ws, &n), EMBER_OK);
        const cJSON *arr = items_of(j);
        assert_int_equal((size_t)cJSON_GetArraySize(arr), n);
        for (size_t r = 0; r < n; r++) {
            const cJSON *e = cJSON_GetArrayItem(arr, (int)r);
            assert_float_equal(cJSON_GetObjectItem(e, "score")->valuedouble, ws[r], 1e-4);
            differ += strcmp(cJSON_GetObjectItem(e, "item")->valuestring,
                             ember_idmap_name(names, want[r])) != 0;
        }
        cJSON_Delete(j);
    }
    assert_true(differ <= 2); /* only near ties may swap */
    /* a new user's history, with an exclusion */
    cJSON *j;
    assert_int_equal(call(s, "POST", "/v1/recommend",
                          "{\"history\":[\"1\",\"2\",\"3\"],\"k\":5,\"exclude\":[\"4\"]}", &j),
                     200);
    uint32_t hist[3];
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i + 1);
        hist[i] = (uint32_t)ember_idmap_find(names, id, strlen(id));
    }
    ember_query q = {.user = -1, .hist = hist, .n_hist = 3};
    uint32_t want[6];
    float ws[6];
    size_t n;
    assert_int_equal(ember_model_recommend(m, &q, 6, 1, want, ws, &n), EMBER_OK);
    size_t r = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, items_of(j))
    {
        const char *got = cJSON_GetObjectItem(e, "item")->valuestring;
        assert_string_not_equal(got, "4");
        while (r < n && strcmp(ember_idmap_name(names, want[r]), "4") == 0)
            r++;
        assert_true(r < n);
        assert_string_equal(got, ember_idmap_name(names, want[r]));
        r++;
    }
    cJSON_Delete(j);
    ember_model_free(m);
    serve_free(s);
}

/* ------------------------------------------------------ the catalogue */

static void test_added_items_fill_a_fresh_slot_by_category(void **state)
{
    (void)state;
    char db[512];
    snprintf(db, sizeof db, "%s/catalogue.sqlite", test_tmpdir());
    remove(db);
    serve_server *s = server_with_db(als_path, db);
    cJSON *j;
    assert_int_equal(call(s, "GET", "/v1/recommend?user=6&k=5", NULL, &j), 200);
    char cat[64];
    snprintf(cat, sizeof cat, "%s", first_category(cJSON_GetArrayItem(items_of(j), 0)));
    cJSON_Delete(j);
    /* one new item in the user's favourite category, one in no category
     * of theirs */
    char body[512];
    snprintf(body, sizeof body,
             "{\"items\":[{\"item\":\"new-1\",\"title\":\"A new one\",\"category\":[\"%s\"]},"
             "{\"item\":\"new-2\",\"title\":\"Elsewhere\",\"category\":\"no-such-topic\"}]}",
             cat);
    assert_int_equal(call(s, "POST", "/v1/items", body, &j), 200);
    assert_int_equal(cJSON_GetObjectItem(j, "stored")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(j, "known_to_model")->valueint, 0);
    cJSON_Delete(j);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=6&k=5", NULL, &j), 200);
    const cJSON *arr = items_of(j);
    assert_int_equal(cJSON_GetArraySize(arr), 5);
    const cJSON *tail = cJSON_GetArrayItem(arr, 4);
    assert_string_equal(cJSON_GetObjectItem(tail, "item")->valuestring, "new-1");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(tail, "fresh")));
    assert_string_equal(cJSON_GetObjectItem(tail, "title")->valuestring, "A new one");
    assert_true(cJSON_GetObjectItem(tail, "score")->valuedouble > 0);
    cJSON_Delete(j);
    /* fresh=0: the model's list only; excluded: not offered */
    assert_int_equal(call(s, "GET", "/v1/recommend?user=6&k=5&fresh=0", NULL, &j), 200);
    const cJSON *e;
    cJSON_ArrayForEach(e, items_of(j))
        assert_null(cJSON_GetObjectItem(e, "fresh"));
    cJSON_Delete(j);
    assert_int_equal(call(s, "POST", "/v1/recommend",
                          "{\"user\":\"6\",\"k\":5,\"exclude\":[\"new-1\"]}", &j),
                     200);
    cJSON_ArrayForEach(e, items_of(j))
        assert_string_not_equal(cJSON_GetObjectItem(e, "item")->valuestring, "new-1");
    cJSON_Delete(j);
    /* similar items by categories */
    assert_int_equal(call(s, "GET", "/v1/similar?item=new-1&k=3", NULL, &j), 200);
    assert_string_equal(cJSON_GetObjectItem(j, "method")->valuestring, "categories");
    assert_int_equal(cJSON_GetArraySize(items_of(j)), 3);
    cJSON_ArrayForEach(e, items_of(j)) assert_true(cJSON_GetObjectItem(e, "score")->valuedouble > 0);
    cJSON_Delete(j);
    assert_int_equal(call(s, "GET", "/v1/similar?item=new-3", NULL, NULL), 404);
    serve_free(s);
    /* a restart replays the catalogue */
    s = server_with_db(als_path, db);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=6&k=5", NULL, &j), 200);
    tail = cJSON_GetArrayItem(items_of(j), 4);
    assert_string_equal(cJSON_GetObjectItem(tail, "item")->valuestring, "new-1");
    cJSON_Delete(j);
    serve_free(s);
}

static void test_bad_items_refused(void **state)
{
    (void)state;
    serve_server *s = server_with_items(als_path);
    static const char *const bad[] = {
        "{}",
        "{\"items\":[]}",
        "{\"items\":{}}",
        "{\"items\":[{\"title\":\"no id\"}]}",
        "{\"items\":[{\"item\":\"a\",\"title\":\"bad\\u0001title\"}]}",
        "{\"items\":[{\"item\":\"a\",\"title\":\"\"}]}",
        "{\"items\":[{\"item\":\"a\",\"category\":[1]}]}",
        "{\"items\":[{\"item\":\"a\",\"category\":[\"x\\ty\"]}]}",
        "{\"items\":[{\"item\":\"a\",\"colour\":\"red\"}]}",
        "{\"items\":[{\"item\":\"a\",\"category\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\","
        "\"8\",\"9\",\"10\",\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int st = call(s, "POST", "/v1/items", bad[i], NULL);
        if (st != 400)
            fail_msg("%s: %d", bad[i], st);
    }
    assert_int_equal(call(s, "GET", "/v1/recommend?user=1&fresh=1.5", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=1&fresh=101", NULL, NULL), 400);
    serve_free(s);
}

static void test_bad_reranking_settings_refused(void **state)
{
    (void)state;
    serve_server *s = server_with_items(als_path);
    static const char *const bad_get[] = {
        "/v1/recommend?user=1&diversity=2",          "/v1/recommend?user=1&diversity=-0.1",
        "/v1/recommend?user=1&diversity=x",          "/v1/recommend?user=1&popularity_penalty=nan",
        "/v1/recommend?user=1&max_shown=1.5",        "/v1/recommend?user=1&window=-1",
        "/v1/recommend?user=1&max_category=9999999",
    };
    for (size_t i = 0; i < sizeof bad_get / sizeof *bad_get; i++)
        assert_int_equal(call(s, "GET", bad_get[i], NULL, NULL), 400);
    static const char *const bad_post[] = {
        "{\"user\":\"1\",\"filter\":\"x\"}",
        "{\"user\":\"1\",\"filter\":{\"genre\":\"x\"}}",
        "{\"user\":\"1\",\"filter\":{\"category\":[1]}}",
        "{\"user\":\"1\",\"exposure\":{\"max_shown\":\"3\"}}",
        "{\"user\":\"1\",\"exposure\":{\"cap\":3}}",
        "{\"user\":\"1\",\"diversity\":true}",
        "{\"user\":\"1\",\"popularity_penalty\":1.5}",
    };
    for (size_t i = 0; i < sizeof bad_post / sizeof *bad_post; i++)
        assert_int_equal(call(s, "POST", "/v1/recommend", bad_post[i], NULL), 400);
    serve_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers_carry_titles_and_categories),
        cmocka_unit_test(test_category_filter_keeps_only_that_category),
        cmocka_unit_test(test_diversity_widens_the_categories),
        cmocka_unit_test(test_popularity_penalty_lowers_popularity),
        cmocka_unit_test(test_exposure_capping_from_impressions),
        cmocka_unit_test(test_category_fatigue_from_impressions),
        cmocka_unit_test(test_factor_model_search_matches_full_scoring),
        cmocka_unit_test(test_bad_reranking_settings_refused),
        cmocka_unit_test(test_added_items_fill_a_fresh_slot_by_category),
        cmocka_unit_test(test_bad_items_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
