/*
 * test_handler.c — the HTTP API through serve_handle(), without sockets:
 * every route, every error status, the key/role matrix, events changing
 * the next recommendation, deleting a user, restarts replaying the store,
 * and model reloads (good, bad, and in-flight requests on the old model).
 */
#include "serve_fixture.h"

#include <pthread.h>
#include <sqlite3.h>

static int teardown(void **state)
{
    (void)state;
    serve_response_free(&last);
    return 0;
}

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    remove(p);
    return p;
}

/* Rows of the events table matching a WHERE clause. */
static long db_count(const char *db, const char *where)
{
    sqlite3 *h;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM events WHERE %s", where);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    long n = (long)sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(h);
    return n;
}

static double num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(j, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static const char *str(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(j, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

/* ------------------------------------------------------------ routes */

static void test_healthz_answers_ok_with_the_model_name(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    cJSON *j;
    assert_int_equal(call(s, "GET", "/healthz", NULL, &j), 200);
    assert_string_equal(str(j, "status"), "ok");
    assert_string_equal(str(j, "model"), "itemknn");
    assert_int_equal(strlen(str(j, "version")), 16);
    assert_string_equal(last.content_type, "application/json");
    cJSON_Delete(j);
    serve_free(s);
}

static void test_unknown_route_is_404(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    assert_int_equal(call(s, "GET", "/v1/nothing", NULL, NULL), 404);
    assert_int_equal(call(s, "GET", "/v1/recommend/", NULL, NULL), 404);
    assert_int_equal(call(s, "GET", "/index.html", NULL, NULL), 404);
    assert_int_equal(call(s, "DELETE", "/v1/users/", NULL, NULL), 404);
    assert_int_equal(call(s, "DELETE", "/v1/users/a/b", NULL, NULL), 404);
    assert_int_equal(call(s, "GET", "nothing", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "", NULL, NULL), 400);
    serve_free(s);
}

static void test_wrong_method_is_405_with_allow(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    assert_int_equal(call(s, "PUT", "/v1/recommend", NULL, NULL), 405);
    assert_string_equal(last.allow, "GET, HEAD, POST");
    assert_int_equal(call(s, "POST", "/v1/similar?item=1", NULL, NULL), 405);
    assert_string_equal(last.allow, "GET, HEAD");
    assert_int_equal(call(s, "GET", "/v1/events", NULL, NULL), 405);
    assert_string_equal(last.allow, "POST");
    assert_int_equal(call(s, "GET", "/v1/users/1", NULL, NULL), 405);
    assert_string_equal(last.allow, "DELETE");
    assert_int_equal(call(s, "GET", "/v1/admin/reload", NULL, NULL), 405);
    assert_int_equal(call(s, "get", "/healthz", NULL, NULL), 405);
    assert_int_equal(call(s, "HEAD", "/healthz", NULL, NULL), 200);
    assert_string_equal(last.allow, "");
    serve_free(s);
}

static void test_recommend_get_matches_the_model_for_a_known_user(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    cJSON *j;
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5&k=7", NULL, &j), 200);
    char got[1024], want[1024];
    assert_string_equal(item_list(j, got, sizeof got),
                        model_list(fx.knn, "5", NULL, 0, 7, want, sizeof want));
    assert_string_equal(str(j, "user"), "5");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "known_user")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 7);
    cJSON_Delete(j);
    /* k defaults to 10 */
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5", NULL, &j), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")), 10);
    cJSON_Delete(j);
    serve_free(s);
}

static void test_recommend_k_out_of_range_is_400(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    const char *bad[] = {"/v1/recommend?user=5&k=0", "/v1/recommend?user=5&k=1001",
                         "/v1/recommend?user=5&k=ten", "/v1/recommend?user=5&k=-3",
                         "/v1/recommend?user=5&k=", "/v1/recommend?user=5&k=5x"};
    for (size_t i = 0; i < EMBER_ARRAY_LEN(bad); i++)
        assert_int_equal(call(s, "GET", bad[i], NULL, NULL), 400);
    assert_int_equal(call(s, "POST", "/v1/recommend", "{\"user\":\"5\",\"k\":0}", NULL), 400);
    assert_int_equal(call(s, "POST", "/v1/recommend", "{\"user\":\"5\",\"k\":2.5}", NULL), 400);
    assert_int_equal(call(s, "POST", "/v1/recommend", "{\"user\":\"5\",\"k\":1e9}", NULL), 400);
    /* k above the catalogue is clamped to it, not an error */
    cJSON *j;
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5&k=1000", NULL, &j), 200);
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(j, "items")) <= 300);
    cJSON_Delete(j);
    serve_free(s);
}

static void test_recommend_unknown_user_is_404(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    assert_int_equal(call(s, "GET", "/v1/recommend?user=nobody", NULL, NULL), 404);
    assert_int_equal(call(s, "POST", "/v1/recommend", "{\"user\":\"nobody\"}", NULL), 404);
    assert_int_equal(call(s, "POST", "/v1/recommend", "{\"history\":[\"nope\",\"nada\"]}", NULL),
                     404);
    assert_int_equal(call(s, "GET", "/v1/recommend", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/recommend?k=3", NULL, NULL), 400);
    serve_free(s);
}

static void test_recommend_post_history_matches_the_model_for_a_new_user(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    cJSON *j;
    assert_int_equal(call(s, "POST", "/v1/recommend",
                          "{\"history\":[\"3\",\"17\",40],\"k\":5}", &j), 200);
    char got[1024], want[1024];
    const char *hist[] = {"3", "17", "40"};
    assert_string_equal(item_list(j, got, sizeof got),
                        model_list(fx.knn, NULL, hist, 3, 5, want, sizeof want));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "user")));
    assert_int_equal((int)num(j, "history_used"), 3);
    cJSON_Delete(j);
    /* a known user plus a history: the history is appended to the user's */
    assert_int_equal(call(s, "POST", "/v1/recommend",
                          "{\"user\":5,\"history\":[\"3\"],\"k\":5}", &j), 200);
    assert_string_equal(item_list(j, got, sizeof got),
                        model_list(fx.knn, "5", hist, 1, 5, want, sizeof want));
    cJSON_Delete(j);
    serve_free(s);
}

static void test_recommend_post_exclude_removes_items(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    cJSON *j;
    char before[1024], after[1024], want[1024];
    assert_int_equal(call(s, "POST", "/v1/recommend", "{\"user\":\"5\",\"k\":6}", &j), 200);
    item_list(j, before, sizeof before);
    cJSON_Delete(j);
    /* exclude the first two: the answer is items 3..6 of before and then
     * the 7th and 8th of the model's own list */
    char first[64], second[64];
    sscanf(before, "%63[^,],%63[^,]", first, second);
    char body[256];
    snprintf(body, sizeof body, "{\"user\":\"5\",\"k\":6,\"exclude\":[\"%s\",\"%s\",\"nope\"]}",
             first, second);
    assert_int_equal(call(s, "POST", "/v1/recommend", body, &j), 200);
    item_list(j, after, sizeof after);
    cJSON_Delete(j);
    model_list(fx.knn, "5", NULL, 0, 8, want, sizeof want);
    const char *rest = strchr(strchr(want, ',') + 1, ',') + 1;
    assert_string_equal(after, rest);
    serve_free(s);
}

static void test_recommend_reports_unknown_history_items(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    cJSON *j;
    assert_int_equal(call(s, "POST", "/v1/recommend", "{\"history\":[\"3\",\"new-item\"],\"k\":3}",
                          &j), 200);
    const cJSON *u = cJSON_GetObjectItem(j, "unknown_items");
    assert_int_equal(cJSON_GetArraySize(u), 1);
    assert_string_equal(cJSON_GetArrayItem(u, 0)->valuestring, "new-item");
    assert_int_equal((int)num(j, "history_used"), 1);
    cJSON_Delete(j);
    serve_free(s);
}

static void test_recommend_wrong_types_are_400(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    const char *bad[] = {
        "{\"user\":{}}",
        "{\"user\":true}",
        "{\"user\":1.5}",
        "{\"user\":\"\"}",
        "{\"user\":\"5\",\"k\":\"10\"}",
        "{\"history\":\"3\"}",
        "{\"history\":[true]}",
        "{\"history\":[[\"3\"]]}",
        "{\"user\":\"5\",\"exclude\":[null]}",
        "{\"user\":\"5\",\"include_seen\":1}",
        "{\"user\":\"5\",\"histroy\":[\"3\"]}",
        "{\"user\":\"5\",\"user\":\"6\"}",
        "{\"k\":3}",
        "{}",
        "[\"5\"]",
        "\"5\"",
        "{\"user\":\"a\\u0001b\"}",
    };
    for (size_t i = 0; i < EMBER_ARRAY_LEN(bad); i++)
        if (call(s, "POST", "/v1/recommend", bad[i], NULL) != 400)
            fail_msg("%s: %d, expected 400", bad[i], last.status);
    serve_free(s);
}

static void test_malformed_json_is_400(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    const char *bad[] = {"", "{", "{\"user\":", "{\"user\":\"5\"} x", "{'user':'5'}", "nul",
                         "{\"user\":\"5\",}", "\xff\xfe"};
    for (size_t i = 0; i < EMBER_ARRAY_LEN(bad); i++) {
        assert_int_equal(call(s, "POST", "/v1/recommend", bad[i], NULL), 400);
        assert_int_equal(call(s, "POST", "/v1/events", bad[i], NULL), 400);
    }
    /* a NUL byte inside the body */
    serve_request rq = {.method = "POST", .target = "/v1/events", .local = true,
                        .body = "{\"events\":[]}\0{}", .len = 16};
    serve_response r;
    assert_int_equal(serve_handle(s, &rq, &r), 400);
    serve_response_free(&r);
    serve_free(s);
}

static void test_query_is_percent_decoded_and_checked(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    cJSON *j;
    assert_int_equal(call(s, "POST", "/v1/events",
                          "{\"events\":[{\"user\":\"ann & bob+\",\"item\":\"3\"}]}", NULL), 200);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=ann%20%26%20bob%2B&k=2", NULL, &j), 200);
    assert_string_equal(str(j, "user"), "ann & bob+");
    cJSON_Delete(j);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=ann+%26+bob%2b&k=2", NULL, NULL), 200);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5%", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5%zz", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5%00", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5&user=6", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5&color=red", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5&include_seen=yes", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=%01", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5&&&k=2", NULL, NULL), 200);
    assert_int_equal(call(s, "GET",
                          "/v1/recommend?a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11&l=12&m=13"
                          "&n=14&o=15&p=16&q=17", NULL, NULL), 400);
    serve_free(s);
}

static void test_include_seen_keeps_the_users_items(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    assert_int_equal(call(s, "POST", "/v1/events",
                          "{\"events\":[{\"user\":\"fresh\",\"item\":\"1\"}]}", NULL), 200);
    cJSON *j;
    char got[4096];
    assert_int_equal(call(s, "GET", "/v1/recommend?user=fresh&k=300", NULL, &j), 200);
    item_list(j, got, sizeof got);
    cJSON_Delete(j);
    assert_null(strstr(got, ",1,"));
    assert_int_not_equal(strncmp(got, "1,", 2), 0);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=fresh&k=300&include_seen=true", NULL, &j),
                     200);
    item_list(j, got, sizeof got);
    cJSON_Delete(j);
    char padded[4200];
    snprintf(padded, sizeof padded, ",%s,", got);
    assert_non_null(strstr(padded, ",1,"));
    serve_free(s);
}

static void test_similar_matches_the_model_and_refuses_unknown_items(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    cJSON *j;
    assert_int_equal(call(s, "GET", "/v1/similar?item=3&k=4", NULL, &j), 200);
    assert_string_equal(str(j, "item"), "3");
    ember_model *m;
    assert_int_equal(ember_model_load(fx.knn, &m), EMBER_OK);
    uint32_t items[4];
    float scores[4];
    size_t n;
    int64_t idx = ember_idmap_find(ember_model_items(m), "3", 1);
    assert_int_equal(ember_model_similar(m, (uint32_t)idx, 4, items, scores, &n), EMBER_OK);
    const cJSON *list = cJSON_GetObjectItem(j, "items");
    assert_int_equal((size_t)cJSON_GetArraySize(list), n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(
            cJSON_GetObjectItem(cJSON_GetArrayItem(list, (int)i), "item")->valuestring,
            ember_idmap_name(ember_model_items(m), items[i]));
    ember_model_free(m);
    cJSON_Delete(j);
    assert_int_equal(call(s, "GET", "/v1/similar?item=no-such-item", NULL, NULL), 404);
    assert_int_equal(call(s, "GET", "/v1/similar", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/similar?item=3&k=0", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/similar?item=3&user=5", NULL, NULL), 400);
    serve_free(s);
}

static void test_similar_on_a_model_without_similarity_is_501(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){.model = fx.pop});
    assert_int_equal(call(s, "GET", "/v1/similar?item=3", NULL, NULL), 501);
    serve_free(s);
}

/* ------------------------------------------------------------ events */

static void test_events_are_committed_with_defaults_and_counted(void **state)
{
    (void)state;
    const char *db = tmp_path("events.sqlite");
    serve_server *s = fixture_server(&(fixture_opts){.db = db});
    cJSON *j;
    assert_int_equal(call(s, "POST", "/v1/events",
                          "{\"events\":[{\"user\":\"u1\",\"item\":\"3\"},"
                          "{\"user\":5,\"item\":4,\"type\":\"buy\",\"value\":2.5,\"timestamp\":1700000000},"
                          "{\"user\":\"u1\",\"item\":\"not-in-model\"}]}", &j), 200);
    assert_int_equal((int)num(j, "stored"), 3);
    assert_int_equal((int)num(j, "unknown_items"), 1);
    assert_int_equal((int)num(j, "unknown_users"), 2);
    cJSON_Delete(j);
    /* committed before the answer: another connection sees the rows */
    assert_int_equal(db_count(db, "1"), 3);
    assert_int_equal(db_count(db, "user='u1' AND item='3' AND type='view' AND value=1 AND "
                                  "ts > 1700000000 AND received_at > 1700000000000"), 1);
    assert_int_equal(db_count(db, "user='5' AND item='4' AND type='buy' AND value=2.5 AND "
                                  "ts=1700000000"), 1);
    assert_int_equal(db_count(db, "item='not-in-model'"), 1);
    assert_int_equal(call(s, "GET", "/v1/model", NULL, &j), 200);
    assert_int_equal((int)num(j, "events_stored"), 3);
    assert_int_equal((int)num(j, "users_in_memory"), 2);
    cJSON_Delete(j);
    serve_free(s);
}

static void test_events_bad_input_is_4xx_and_stores_nothing(void **state)
{
    (void)state;
    const char *db = tmp_path("bad-events.sqlite");
    serve_server *s = fixture_server(&(fixture_opts){.db = db, .max_batch = 3});
    const char *bad[] = {
        "{}",
        "{\"events\":{}}",
        "{\"events\":[]}",
        "{\"events\":[1]}",
        "{\"events\":[{\"item\":\"3\"}]}",
        "{\"events\":[{\"user\":\"u\"}]}",
        "{\"events\":[{\"user\":\"u\",\"item\":\"\"}]}",
        "{\"events\":[{\"user\":\"u\",\"item\":\"3\",\"value\":\"x\"}]}",
        "{\"events\":[{\"user\":\"u\",\"item\":\"3\",\"timestamp\":-1}]}",
        "{\"events\":[{\"user\":\"u\",\"item\":\"3\",\"timestamp\":1.5}]}",
        "{\"events\":[{\"user\":\"u\",\"item\":\"3\",\"type\":\"\"}]}",
        "{\"events\":[{\"user\":\"u\",\"item\":\"3\",\"type\":7}]}",
        "{\"events\":[{\"user\":\"u\",\"item\":\"3\",\"colour\":\"red\"}]}",
        "{\"events\":[{\"user\":\"u\",\"item\":\"3\"},{\"user\":\"u\",\"item\":false}]}",
        "{\"events\":[],\"more\":1}",
    };
    for (size_t i = 0; i < EMBER_ARRAY_LEN(bad); i++)
        if (call(s, "POST", "/v1/events", bad[i], NULL) != 400)
            fail_msg("%s: %d, expected 400", bad[i], last.status);
    /* a batch over the limit */
    assert_int_equal(call(s, "POST", "/v1/events",
                          "{\"events\":[{\"user\":1,\"item\":1},{\"user\":1,\"item\":2},"
                          "{\"user\":1,\"item\":3},{\"user\":1,\"item\":4}]}", NULL), 413);
    assert_int_equal(db_count(db, "1"), 0);
    serve_free(s);
}

static void test_event_changes_the_next_recommendation_of_a_new_user(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    cJSON *j;
    char got[1024], want[1024];
    assert_int_equal(call(s, "GET", "/v1/recommend?user=newcomer&k=5", NULL, NULL), 404);
    assert_int_equal(call(s, "POST", "/v1/events",
                          "{\"events\":[{\"user\":\"newcomer\",\"item\":\"3\"}]}", NULL), 200);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=newcomer&k=5", NULL, &j), 200);
    const char *h1[] = {"3"};
    assert_string_equal(item_list(j, got, sizeof got),
                        model_list(fx.knn, NULL, h1, 1, 5, want, sizeof want));
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "known_user")));
    cJSON_Delete(j);
    char first[1024];
    snprintf(first, sizeof first, "%s", got);
    assert_int_equal(call(s, "POST", "/v1/events",
                          "{\"events\":[{\"user\":\"newcomer\",\"item\":\"250\"}]}", NULL), 200);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=newcomer&k=5", NULL, &j), 200);
    const char *h2[] = {"3", "250"};
    assert_string_equal(item_list(j, got, sizeof got),
                        model_list(fx.knn, NULL, h2, 2, 5, want, sizeof want));
    assert_string_not_equal(got, first);
    assert_int_equal((int)num(j, "history_used"), 2);
    cJSON_Delete(j);
    serve_free(s);
}

static void test_event_removes_the_item_from_a_known_users_next_recommendation(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    cJSON *j;
    char got[1024], want[1024], top[64];
    assert_int_equal(call(s, "GET", "/v1/recommend?user=9&k=5", NULL, &j), 200);
    item_list(j, got, sizeof got);
    cJSON_Delete(j);
    sscanf(got, "%63[^,]", top);
    char body[256];
    snprintf(body, sizeof body, "{\"events\":[{\"user\":\"9\",\"item\":\"%s\"}]}", top);
    assert_int_equal(call(s, "POST", "/v1/events", body, NULL), 200);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=9&k=5", NULL, &j), 200);
    item_list(j, got, sizeof got);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "known_user")));
    cJSON_Delete(j);
    /* the trained state plus the new item, exactly as the model scores it */
    const char *h[] = {top};
    assert_string_equal(got, model_list(fx.knn, "9", h, 1, 5, want, sizeof want));
    char padded[1100];
    snprintf(padded, sizeof padded, ",%s,", got);
    char needle[80];
    snprintf(needle, sizeof needle, ",%s,", top);
    assert_null(strstr(padded, needle));
    serve_free(s);
}

static void test_history_keeps_the_most_recent_items(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){.history_len = 2});
    assert_int_equal(call(s, "POST", "/v1/events",
                          "{\"events\":[{\"user\":\"h\",\"item\":\"3\"},{\"user\":\"h\",\"item\":\"4\"},"
                          "{\"user\":\"h\",\"item\":\"5\"},{\"user\":\"h\",\"item\":\"4\"}]}", NULL),
                     200);
    cJSON *j;
    char got[1024], want[1024];
    assert_int_equal(call(s, "GET", "/v1/recommend?user=h&k=5", NULL, &j), 200);
    const char *h[] = {"5", "4"};
    assert_string_equal(item_list(j, got, sizeof got),
                        model_list(fx.knn, NULL, h, 2, 5, want, sizeof want));
    cJSON_Delete(j);
    serve_free(s);
}

/* ------------------------------------------------------------- users */

static void test_delete_user_erases_events_and_state(void **state)
{
    (void)state;
    const char *db = tmp_path("delete.sqlite");
    serve_server *s = fixture_server(&(fixture_opts){.db = db});
    assert_int_equal(call(s, "POST", "/v1/events",
                          "{\"events\":[{\"user\":\"gone\",\"item\":\"3\"},{\"user\":\"gone\",\"item\":\"4\"},"
                          "{\"user\":\"stays\",\"item\":\"3\"}]}", NULL), 200);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=gone", NULL, NULL), 200);
    cJSON *j;
    assert_int_equal(call(s, "DELETE", "/v1/users/gone", NULL, &j), 200);
    assert_int_equal((int)num(j, "deleted_events"), 2);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "erased_from_memory")));
    cJSON_Delete(j);
    assert_int_equal(db_count(db, "user='gone'"), 0);
    assert_int_equal(db_count(db, "user='stays'"), 1);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=gone", NULL, NULL), 404);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=stays", NULL, NULL), 200);
    assert_int_equal(call(s, "DELETE", "/v1/users/gone", NULL, NULL), 404);
    serve_free(s);
    /* and a restart does not bring the user back */
    s = fixture_server(&(fixture_opts){.db = db});
    assert_int_equal(call(s, "GET", "/v1/recommend?user=gone", NULL, NULL), 404);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=stays", NULL, NULL), 200);
    serve_free(s);
}

static void test_delete_user_path_is_percent_decoded(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    assert_int_equal(call(s, "POST", "/v1/events",
                          "{\"events\":[{\"user\":\"a b/c\",\"item\":\"3\"}]}", NULL), 200);
    assert_int_equal(call(s, "DELETE", "/v1/users/a%20b%2Fc", NULL, NULL), 200);
    assert_int_equal(call(s, "DELETE", "/v1/users/a%2", NULL, NULL), 400);
    assert_int_equal(call(s, "DELETE", "/v1/users/%01", NULL, NULL), 400);
    assert_int_equal(call(s, "DELETE", "/v1/users/x?y=1", NULL, NULL), 400);
    serve_free(s);
}

static void test_restart_replays_stored_events(void **state)
{
    (void)state;
    const char *db = tmp_path("replay.sqlite");
    serve_server *s = fixture_server(&(fixture_opts){.db = db});
    assert_int_equal(call(s, "POST", "/v1/events",
                          "{\"events\":[{\"user\":\"r\",\"item\":\"3\"},{\"user\":\"r\",\"item\":\"250\"}]}",
                          NULL), 200);
    cJSON *j;
    char before[1024], after[1024];
    assert_int_equal(call(s, "GET", "/v1/recommend?user=r&k=5", NULL, &j), 200);
    item_list(j, before, sizeof before);
    cJSON_Delete(j);
    serve_free(s);
    s = fixture_server(&(fixture_opts){.db = db});
    assert_int_equal(s->replayed, 2);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=r&k=5", NULL, &j), 200);
    assert_string_equal(item_list(j, after, sizeof after), before);
    assert_int_equal((int)num(j, "history_used"), 2);
    cJSON_Delete(j);
    serve_free(s);
}

static void test_a_file_that_is_not_a_database_is_refused(void **state)
{
    (void)state;
    serve_config c;
    serve_config_init(&c);
    c.model_path = fx.knn;
    c.db_path = fx.data; /* a TSV file */
    serve_server *s = (serve_server *)&c;
    assert_int_not_equal(serve_new(&c, &s), EMBER_OK);
    assert_null(s);
    assert_non_null(strstr(ember_last_error(), fx.data));
    c.db_path = ":memory:";
    c.model_path = fx.bad;
    assert_int_not_equal(serve_new(&c, &s), EMBER_OK);
    c.model_path = fx.knn;
    c.keys_path = fx.data; /* not a key file */
    assert_int_equal(serve_new(&c, &s), EMBER_EFORMAT);
}

/* ------------------------------------------------------ model, metrics */

static void test_model_describes_the_served_model(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    cJSON *j;
    assert_int_equal(call(s, "GET", "/v1/model", NULL, &j), 200);
    assert_string_equal(str(j, "name"), "itemknn");
    assert_string_equal(str(j, "file"), fx.knn);
    assert_int_equal((int)num(j, "items"), 300);
    assert_int_equal((int)num(j, "users"), 200);
    assert_int_equal((int)num(j, "generation"), 1);
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(j, "params")));
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "params"), "k"));
    cJSON_Delete(j);
    assert_int_equal(call(s, "GET", "/v1/model?x=1", NULL, NULL), 400);
    serve_free(s);
}

static void test_metrics_count_requests_per_route(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    call(s, "GET", "/v1/recommend?user=5", NULL, NULL);
    call(s, "GET", "/v1/recommend?user=5", NULL, NULL);
    call(s, "GET", "/v1/recommend?user=nobody", NULL, NULL);
    call(s, "GET", "/nowhere", NULL, NULL);
    call(s, "POST", "/v1/events", "{\"events\":[{\"user\":\"m\",\"item\":\"3\"},"
                                  "{\"user\":\"m\",\"item\":\"x\"}]}", NULL);
    assert_int_equal(call(s, "GET", "/metrics", NULL, NULL), 200);
    assert_non_null(strstr(last.content_type, "text/plain"));
    const char *want[] = {
        "ember_http_requests_total{route=\"recommend\",code=\"200\"} 2\n",
        "ember_http_requests_total{route=\"recommend\",code=\"404\"} 1\n",
        "ember_http_requests_total{route=\"other\",code=\"404\"} 1\n",
        "ember_http_requests_total{route=\"events\",code=\"200\"} 1\n",
        "ember_http_request_duration_seconds_bucket{route=\"recommend\",le=\"+Inf\"} 3\n",
        "ember_http_request_duration_seconds_count{route=\"recommend\"} 3\n",
        "ember_events_ingested_total 2\n",
        "ember_events_unknown_item_total 1\n",
        "ember_model_info{name=\"itemknn\",version=\"",
        "ember_model_generation 1\n",
        "ember_events_stored 2\n",
        "# TYPE ember_http_request_duration_seconds histogram\n",
    };
    for (size_t i = 0; i < EMBER_ARRAY_LEN(want); i++)
        if (!strstr(last.body, want[i]))
            fail_msg("metrics lack: %s", want[i]);
    /* buckets are cumulative: never decreasing */
    const char *p = last.body;
    unsigned long long prev = 0;
    while ((p = strstr(p, "ember_http_request_duration_seconds_bucket{route=\"recommend\",le=\""))) {
        p = strchr(p, '}') + 2;
        unsigned long long v = strtoull(p, NULL, 10);
        assert_true(v >= prev);
        prev = v;
    }
    serve_free(s);
}

/* ------------------------------------------------------------ reload */

static void test_reload_swaps_to_a_good_model(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    cJSON *j;
    char body[700];
    snprintf(body, sizeof body, "{\"path\":\"%s\"}", fx.pop);
    assert_int_equal(call(s, "POST", "/v1/admin/reload", body, &j), 200);
    assert_string_equal(str(j, "name"), "pop");
    assert_int_equal((int)num(j, "generation"), 2);
    assert_int_not_equal(strcmp(str(j, "previous_version"), str(j, "version")), 0);
    cJSON_Delete(j);
    assert_int_equal(call(s, "GET", "/v1/model", NULL, &j), 200);
    assert_string_equal(str(j, "name"), "pop");
    cJSON_Delete(j);
    /* an empty body reloads the current file */
    assert_int_equal(call(s, "POST", "/v1/admin/reload", NULL, &j), 200);
    assert_string_equal(str(j, "name"), "pop");
    assert_int_equal((int)num(j, "generation"), 3);
    cJSON_Delete(j);
    serve_free(s);
}

static void test_reload_refuses_a_bad_file_and_keeps_serving(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    char body[700];
    const char *bad[] = {fx.bad, fx.data, "/nonexistent/model.ember", test_tmpdir(), "/dev/null"};
    for (size_t i = 0; i < EMBER_ARRAY_LEN(bad); i++) {
        snprintf(body, sizeof body, "{\"path\":\"%s\"}", bad[i]);
        assert_int_equal(call(s, "POST", "/v1/admin/reload", body, NULL), 422);
    }
    assert_int_equal(call(s, "POST", "/v1/admin/reload", "{\"path\":\"\"}", NULL), 400);
    assert_int_equal(call(s, "POST", "/v1/admin/reload", "{\"path\":3}", NULL), 400);
    assert_int_equal(call(s, "POST", "/v1/admin/reload", "{\"file\":\"x\"}", NULL), 400);
    cJSON *j;
    assert_int_equal(call(s, "GET", "/v1/model", NULL, &j), 200);
    assert_string_equal(str(j, "name"), "itemknn");
    assert_int_equal((int)num(j, "generation"), 1);
    cJSON_Delete(j);
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5", NULL, NULL), 200);
    assert_int_equal(call(s, "GET", "/metrics", NULL, NULL), 200);
    assert_non_null(strstr(last.body, "ember_model_reloads_total{result=\"error\"} 5\n"));
    serve_free(s);
}

static void test_a_request_in_flight_keeps_the_old_model_alive(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    serve_model *held = serve_model_acquire(s);
    assert_int_equal(serve_reload(s, fx.pop), EMBER_OK);
    serve_model *now = serve_model_acquire(s);
    assert_ptr_not_equal(held, now);
    assert_string_equal(ember_model_name(now->m), "pop");
    /* the old model still answers (ASan would see a use after free) */
    ember_query q = {.user = 0};
    uint32_t items[5];
    float scores[5];
    size_t n;
    assert_int_equal(ember_model_recommend(held->m, &q, 5, 1, items, scores, &n), EMBER_OK);
    assert_int_equal(n, 5);
    assert_string_equal(ember_model_name(held->m), "itemknn");
    serve_model_release(held);
    serve_model_release(now);
    serve_free(s);
}

typedef struct {
    serve_server *s;
    int failures;
} race_ctx;

static void *recommend_loop(void *arg)
{
    race_ctx *c = arg;
    for (int i = 0; i < 200; i++) {
        serve_request rq = {.method = "GET", .target = i % 2 ? "/v1/recommend?user=5&k=3"
                                                             : "/v1/similar?item=3&k=3",
                            .local = true};
        serve_response r;
        int st = serve_handle(c->s, &rq, &r);
        if (st != 200 && st != 501)
            c->failures++;
        serve_response_free(&r);
    }
    return NULL;
}

static void *events_loop(void *arg)
{
    race_ctx *c = arg;
    for (int i = 0; i < 50; i++) {
        char body[200];
        snprintf(body, sizeof body,
                 "{\"events\":[{\"user\":\"5\",\"item\":\"%d\"},{\"user\":\"t%d\",\"item\":\"3\"}]}",
                 i % 300 + 1, i);
        serve_request rq = {.method = "POST", .target = "/v1/events", .local = true,
                            .body = body, .len = strlen(body)};
        serve_response r;
        if (serve_handle(c->s, &rq, &r) != 200)
            c->failures++;
        serve_response_free(&r);
    }
    return NULL;
}

static void test_reloads_during_requests_keep_every_answer_valid(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    race_ctx c[3] = {{s, 0}, {s, 0}, {s, 0}};
    pthread_t t[3];
    pthread_create(&t[0], NULL, recommend_loop, &c[0]);
    pthread_create(&t[1], NULL, recommend_loop, &c[1]);
    pthread_create(&t[2], NULL, events_loop, &c[2]);
    for (int i = 0; i < 20; i++)
        assert_int_equal(serve_reload(s, i % 2 ? fx.knn : fx.pop), EMBER_OK);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].failures, 0);
    }
    assert_int_equal(store_count(s->store), 100);
    serve_free(s);
}

/* -------------------------------------------------------------- auth */

static const char *keys_file(void)
{
    return test_write_file("keys.txt", "# role matrix\n"
                                       "reader-key-0001 read\n"
                                       "writer-key-0001 write\n"
                                       "\n"
                                       "admin-key-00001   admin\n");
}

typedef struct {
    const char *method, *target, *body;
    int need; /* 0 open, 1 read, 2 write, 3 admin */
} auth_case;

static void test_auth_matrix(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){.keys = keys_file()});
    char reload[700];
    snprintf(reload, sizeof reload, "{\"path\":\"%s\"}", fx.knn);
    const auth_case cases[] = {
        {"GET", "/healthz", NULL, 0},
        {"GET", "/metrics", NULL, 1},
        {"GET", "/v1/model", NULL, 1},
        {"GET", "/v1/recommend?user=5", NULL, 1},
        {"POST", "/v1/recommend", "{\"user\":\"5\"}", 1},
        {"GET", "/v1/similar?item=3", NULL, 1},
        {"POST", "/v1/events", "{\"events\":[{\"user\":\"a\",\"item\":\"3\"}]}", 2},
        {"DELETE", "/v1/users/a", NULL, 2},
        {"POST", "/v1/admin/reload", reload, 3},
    };
    const char *keys[] = {NULL, "Bearer wrong-key-00001", "Bearer reader-key-0001",
                          "Bearer writer-key-0001", "Bearer admin-key-00001"};
    for (size_t i = 0; i < EMBER_ARRAY_LEN(cases); i++)
        for (int k = 0; k < 5; k++) {
            const auth_case *c = &cases[i];
            int want;
            if (c->need == 0)
                want = 200;
            else if (k < 2)
                want = 401;
            else
                want = k - 1 >= c->need ? 200 : 403;
            /* DELETE of a user with no events answers 404 once allowed */
            if (want == 200 && strcmp(c->method, "DELETE") == 0)
                call_full(s, "POST", "/v1/events", "Bearer admin-key-00001", true,
                          "{\"events\":[{\"user\":\"a\",\"item\":\"3\"}]}", NULL);
            int got = call_full(s, c->method, c->target, keys[k], true, c->body, NULL);
            if (got != want)
                fail_msg("%s %s with %s: %d, expected %d", c->method, c->target,
                         keys[k] ? keys[k] : "no key", got, want);
            assert_int_equal(last.challenge, want == 401);
        }
    /* header forms: scheme case, extra spaces; other schemes are not keys */
    assert_int_equal(call_full(s, "GET", "/v1/model", "bearer  reader-key-0001 ", true, NULL, NULL),
                     200);
    assert_int_equal(call_full(s, "GET", "/v1/model", "Basic reader-key-0001", true, NULL, NULL),
                     401);
    assert_int_equal(call_full(s, "GET", "/v1/model", "Bearer reader-key-000", true, NULL, NULL),
                     401);
    assert_int_equal(call_full(s, "GET", "/v1/model", "Bearer reader-key-00011", true, NULL, NULL),
                     401);
    assert_int_equal(call_full(s, "GET", "/v1/model", "Bearer ", true, NULL, NULL), 401);
    /* with keys, a local client needs one too */
    assert_int_equal(call_full(s, "POST", "/v1/events", NULL, false,
                               "{\"events\":[{\"user\":\"a\",\"item\":\"3\"}]}", NULL), 401);
    serve_free(s);
}

static void test_without_keys_only_local_clients_may_write(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    const char *ev = "{\"events\":[{\"user\":\"a\",\"item\":\"3\"}]}";
    assert_int_equal(call_full(s, "POST", "/v1/events", NULL, true, ev, NULL), 200);
    assert_int_equal(call_full(s, "POST", "/v1/events", NULL, true, ev, NULL), 200);
    assert_int_equal(call_full(s, "POST", "/v1/events", NULL, false, ev, NULL), 403);
    assert_int_equal(call_full(s, "DELETE", "/v1/users/a", NULL, false, NULL, NULL), 403);
    assert_int_equal(call_full(s, "POST", "/v1/admin/reload", NULL, false, NULL, NULL), 403);
    assert_int_equal(call_full(s, "GET", "/v1/recommend?user=5", NULL, false, NULL, NULL), 200);
    assert_int_equal(call_full(s, "GET", "/metrics", NULL, false, NULL, NULL), 200);
    assert_int_equal(call_full(s, "DELETE", "/v1/users/a", NULL, true, NULL, NULL), 200);
    serve_free(s);
}

static void test_body_over_the_limit_is_413(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){.max_body = 100});
    char body[200];
    memset(body, ' ', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    memcpy(body, "{\"events\":[]}", 13);
    assert_int_equal(call(s, "POST", "/v1/events", body, NULL), 413);
    assert_int_equal(call(s, "POST", "/v1/recommend", body, NULL), 413);
    body[100] = '\0';
    assert_int_equal(call(s, "POST", "/v1/events", body, NULL), 400); /* at the limit: parsed */
    serve_free(s);
}

/* SQLite's way: the Nth allocation fails, for N = 1, 2, ... until the
 * request succeeds; each failure must be a clean 500 (ASan checks for
 * leaks).  Only ember_alloc & co. are injected, not cJSON's malloc. */
static void test_allocation_failures_answer_500_and_leak_nothing(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    const char *reqs[][3] = {
        {"GET", "/v1/recommend?user=5&k=5", NULL},
        {"POST", "/v1/recommend", "{\"user\":\"5\",\"history\":[\"3\",\"4\"],\"exclude\":[\"7\"]}"},
        {"GET", "/v1/similar?item=3&k=5", NULL},
        {"POST", "/v1/events", "{\"events\":[{\"user\":\"f\",\"item\":\"3\"},{\"user\":\"g\",\"item\":\"4\"}]}"},
        {"DELETE", "/v1/users/f", NULL},
        {"GET", "/v1/model", NULL},
    };
    for (size_t r = 0; r < EMBER_ARRAY_LEN(reqs); r++) {
        int status = 0;
        long n;
        for (n = 1; n < 1000 && status != 200; n++) {
            ember_fault_inject_alloc(n);
            status = call(s, reqs[r][0], reqs[r][1], reqs[r][2], NULL);
            ember_fault_inject_alloc(0);
            if (status != 200 && status != 500)
                fail_msg("%s %s with allocation %ld failing: %d", reqs[r][0], reqs[r][1], n,
                         status);
        }
        assert_int_equal(status, 200);
    }
    /* and the server still answers normally */
    assert_int_equal(call(s, "GET", "/v1/recommend?user=5&k=5", NULL, NULL), 200);
    serve_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_healthz_answers_ok_with_the_model_name, teardown),
        cmocka_unit_test_teardown(test_unknown_route_is_404, teardown),
        cmocka_unit_test_teardown(test_wrong_method_is_405_with_allow, teardown),
        cmocka_unit_test_teardown(test_recommend_get_matches_the_model_for_a_known_user, teardown),
        cmocka_unit_test_teardown(test_recommend_k_out_of_range_is_400, teardown),
        cmocka_unit_test_teardown(test_recommend_unknown_user_is_404, teardown),
        cmocka_unit_test_teardown(test_recommend_post_history_matches_the_model_for_a_new_user,
                                  teardown),
        cmocka_unit_test_teardown(test_recommend_post_exclude_removes_items, teardown),
        cmocka_unit_test_teardown(test_recommend_reports_unknown_history_items, teardown),
        cmocka_unit_test_teardown(test_recommend_wrong_types_are_400, teardown),
        cmocka_unit_test_teardown(test_malformed_json_is_400, teardown),
        cmocka_unit_test_teardown(test_query_is_percent_decoded_and_checked, teardown),
        cmocka_unit_test_teardown(test_include_seen_keeps_the_users_items, teardown),
        cmocka_unit_test_teardown(test_similar_matches_the_model_and_refuses_unknown_items,
                                  teardown),
        cmocka_unit_test_teardown(test_similar_on_a_model_without_similarity_is_501, teardown),
        cmocka_unit_test_teardown(test_events_are_committed_with_defaults_and_counted, teardown),
        cmocka_unit_test_teardown(test_events_bad_input_is_4xx_and_stores_nothing, teardown),
        cmocka_unit_test_teardown(test_event_changes_the_next_recommendation_of_a_new_user,
                                  teardown),
        cmocka_unit_test_teardown(
            test_event_removes_the_item_from_a_known_users_next_recommendation, teardown),
        cmocka_unit_test_teardown(test_history_keeps_the_most_recent_items, teardown),
        cmocka_unit_test_teardown(test_delete_user_erases_events_and_state, teardown),
        cmocka_unit_test_teardown(test_delete_user_path_is_percent_decoded, teardown),
        cmocka_unit_test_teardown(test_restart_replays_stored_events, teardown),
        cmocka_unit_test_teardown(test_a_file_that_is_not_a_database_is_refused, teardown),
        cmocka_unit_test_teardown(test_model_describes_the_served_model, teardown),
        cmocka_unit_test_teardown(test_metrics_count_requests_per_route, teardown),
        cmocka_unit_test_teardown(test_reload_swaps_to_a_good_model, teardown),
        cmocka_unit_test_teardown(test_reload_refuses_a_bad_file_and_keeps_serving, teardown),
        cmocka_unit_test_teardown(test_a_request_in_flight_keeps_the_old_model_alive, teardown),
        cmocka_unit_test_teardown(test_reloads_during_requests_keep_every_answer_valid, teardown),
        cmocka_unit_test_teardown(test_auth_matrix, teardown),
        cmocka_unit_test_teardown(test_without_keys_only_local_clients_may_write, teardown),
        cmocka_unit_test_teardown(test_body_over_the_limit_is_413, teardown),
        cmocka_unit_test_teardown(test_allocation_failures_answer_500_and_leak_nothing, teardown),
    };
    return cmocka_run_group_tests(tests, fixture_setup, NULL);
}
