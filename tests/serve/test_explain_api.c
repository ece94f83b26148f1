/*
 * test_explain_api.c — GET /v1/explain (the history items behind a
 * recommendation, their weights and a sentence; exact for itemknn, none
 * for pop; an event's item shows up at once) and GET / (the dashboard
 * page: HTML that reaches the API routes it needs).  The page itself is
 * loaded in a browser by tests/cli/test_dashboard.sh.
 */
#include "serve_fixture.h"

static int free_last(void **state)
{
    (void)state;
    serve_response_free(&last);
    return 0;
}

static void test_explain_names_history_items_with_weights(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0}); /* itemknn */
    cJSON *j;
    assert_int_equal(call(s, "GET", "/v1/recommend?user=1&k=1", NULL, &j), 200);
    char item[64];
    snprintf(item, sizeof item, "%s",
             cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "items"), 0), "item")
                 ->valuestring);
    double score = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "items"), 0),
                                       "score")
                       ->valuedouble;
    cJSON_Delete(j);
    char target[128];
    snprintf(target, sizeof target, "/v1/explain?user=1&item=%s&k=100", item);
    assert_int_equal(call(s, "GET", target, NULL, &j), 200);
    assert_string_equal(cJSON_GetObjectItem(j, "method")->valuestring, "exact");
    assert_float_equal(cJSON_GetObjectItem(j, "score")->valuedouble, score, 1e-5);
    const cJSON *because = cJSON_GetObjectItem(j, "because"), *e;
    assert_true(cJSON_GetArraySize(because) >= 1);
    double sum = 0, prev = 1e30;
    cJSON_ArrayForEach(e, because)
    {
        assert_true(cJSON_IsString(cJSON_GetObjectItem(e, "item")));
        double w = cJSON_GetObjectItem(e, "weight")->valuedouble;
        assert_true(w <= prev);
        prev = w;
        sum += w;
    }
    /* k=100 lists every history item that adds to the score: the sum */
    assert_float_equal(sum, score, 1e-3 * (1 + score));
    const char *text = cJSON_GetObjectItem(j, "text")->valuestring;
    assert_non_null(strstr(text, "Recommended because of"));
    assert_non_null(strstr(text, cJSON_GetObjectItem(cJSON_GetArrayItem(because, 0), "item")
                                     ->valuestring));
    cJSON_Delete(j);
    serve_free(s);
}

static void test_explain_sees_new_events(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    /* a visitor with one event: that item is the whole reason */
    assert_int_equal(call(s, "POST", "/v1/events",
                          "{\"events\":[{\"user\":\"visitor\",\"item\":\"1\"}]}", NULL),
                     200);
    cJSON *j;
    assert_int_equal(call(s, "GET", "/v1/recommend?user=visitor&k=1", NULL, &j), 200);
    char item[64];
    snprintf(item, sizeof item, "%s",
             cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "items"), 0), "item")
                 ->valuestring);
    cJSON_Delete(j);
    char target[128];
    snprintf(target, sizeof target, "/v1/explain?user=visitor&item=%s", item);
    assert_int_equal(call(s, "GET", target, NULL, &j), 200);
    const cJSON *because = cJSON_GetObjectItem(j, "because");
    assert_int_equal(cJSON_GetArraySize(because), 1);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(because, 0), "item")->valuestring,
                        "1");
    cJSON_Delete(j);
    serve_free(s);
}

static void test_explain_for_pop_says_popularity(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){.model = fx.pop});
    cJSON *j;
    assert_int_equal(call(s, "GET", "/v1/explain?user=1&item=1", NULL, &j), 200);
    assert_string_equal(cJSON_GetObjectItem(j, "method")->valuestring, "none");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "because")), 0);
    assert_non_null(strstr(cJSON_GetObjectItem(j, "text")->valuestring, "popularity"));
    cJSON_Delete(j);
    serve_free(s);
}

static void test_explain_bad_requests(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    assert_int_equal(call(s, "GET", "/v1/explain?user=1", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/explain?item=1", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/explain?user=1&item=1&z=2", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/explain?user=1&item=1&k=0", NULL, NULL), 400);
    assert_int_equal(call(s, "GET", "/v1/explain?user=1&item=no-such-item", NULL, NULL), 404);
    assert_int_equal(call(s, "GET", "/v1/explain?user=nobody&item=1", NULL, NULL), 404);
    assert_int_equal(call(s, "POST", "/v1/explain?user=1&item=1", "{}", NULL), 405);
    serve_free(s);
}

static void test_dashboard_page(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    assert_int_equal(call(s, "GET", "/", NULL, NULL), 200);
    assert_string_equal(last.content_type, "text/html; charset=utf-8");
    char *page = malloc(last.len + 1);
    memcpy(page, last.body, last.len);
    page[last.len] = '\0';
    assert_non_null(strstr(page, "<!doctype html>"));
    for (const char *const *r = (const char *const[]){"/v1/model", "/metrics", "/v1/recommend?",
                                                      "/v1/explain?", NULL};
         *r; r++)
        assert_non_null(strstr(page, *r));
    free(page);
    assert_int_equal(call(s, "GET", "/?user=1&k=5", NULL, NULL), 200);
    assert_int_equal(call(s, "GET", "/?x=1", NULL, NULL), 400);
    assert_int_equal(call(s, "POST", "/", "{}", NULL), 405);
    serve_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_explain_names_history_items_with_weights),
        cmocka_unit_test(test_explain_sees_new_events),
        cmocka_unit_test(test_explain_for_pop_says_popularity),
        cmocka_unit_test(test_explain_bad_requests),
        cmocka_unit_test(test_dashboard_page),
    };
    return cmocka_run_group_tests(tests, fixture_setup, free_last);
}
