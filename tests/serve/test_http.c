/*
 * test_http.c — the real server end to end: libmicrohttpd on an ephemeral
 * port of 127.0.0.1 in this process, spoken to over TCP sockets.  What
 * only the HTTP layer does is checked here (headers, body limits before
 * and while reading, chunked bodies, keep-alive, the raw target, garbage
 * on the wire, concurrent clients, shutdown with open connections); the
 * routes themselves are covered through serve_handle in test_handler.c.
 */
#include "serve_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct {
    int status;
    char head[4096];
    char body[65536];
    size_t body_len;
} http_reply;

static serve_server *start(const fixture_opts *o)
{
    serve_server *s = fixture_server(o);
    s->cfg.port = 0;
    if (serve_http_start(s))
        fail_msg("serve_http_start: %s", ember_last_error());
    assert_true(s->bound_port > 0);
    return s;
}

static int dial(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server may close early (413): the reply is what counts */
        p += w;
        n -= (size_t)w;
    }
}

/* Reads one response (headers, then Content-Length bytes of body). */
static void read_reply(int fd, http_reply *r)
{
    memset(r, 0, sizeof *r);
    char buf[70000];
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        ssize_t got = recv(fd, buf + len, 1, 0); /* byte by byte: keep-alive safe */
        if (got <= 0)
            fail_msg("connection closed before the headers ended");
        len += (size_t)got;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        assert_true(len < sizeof r->head);
    }
    memcpy(r->head, buf, len);
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    const char *cl = strcasestr(r->head, "\r\nContent-Length:");
    assert_non_null(cl);
    size_t n = strtoul(cl + 17, NULL, 10);
    assert_true(n < sizeof r->body);
    size_t have = 0;
    while (have < n) {
        ssize_t got = recv(fd, r->body + have, n - have, 0);
        if (got <= 0)
            fail_msg("connection closed in the body");
        have += (size_t)got;
    }
    r->body[n] = '\0';
    r->body_len = n;
}

static int request(uint16_t port, const char *raw, http_reply *r)
{
    int fd = dial(port);
    send_all(fd, raw, strlen(raw));
    read_reply(fd, r);
    close(fd);
    return r->status;
}

static void test_healthz_over_a_socket(void **state)
{
    (void)state;
    serve_server *s = start(&(fixture_opts){0});
    http_reply r;
    assert_int_equal(request(s->bound_port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
    assert_non_null(strcasestr(r.head, "Content-Type: application/json"));
    assert_non_null(strstr(r.body, "\"status\":\"ok\""));
    serve_free(s);
}

static void test_event_is_visible_in_the_next_request(void **state)
{
    (void)state;
    serve_server *s = start(&(fixture_opts){0});
    http_reply r;
    assert_int_equal(request(s->bound_port,
                             "GET /v1/recommend?user=wire&k=3 HTTP/1.1\r\nHost: x\r\n\r\n", &r),
                     404);
    const char *body = "{\"events\":[{\"user\":\"wire\",\"item\":\"3\"}]}";
    char raw[512];
    snprintf(raw, sizeof raw,
             "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    assert_int_equal(request(s->bound_port, raw, &r), 200);
    assert_non_null(strstr(r.body, "\"stored\":1"));
    assert_int_equal(request(s->bound_port,
                             "GET /v1/recommend?user=wire&k=3 HTTP/1.1\r\nHost: x\r\n\r\n", &r),
                     200);
    assert_non_null(strstr(r.body, "\"history_used\":1"));
    serve_free(s);
}

static void test_a_declared_body_over_the_limit_is_413_before_it_is_sent(void **state)
{
    (void)state;
    serve_server *s = start(&(fixture_opts){.max_body = 1024});
    http_reply r;
    /* only the headers are sent: the answer must not wait for the body */
    assert_int_equal(request(s->bound_port,
                             "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n",
                             &r), 413);
    assert_non_null(strstr(r.body, "\"error\""));
    serve_free(s);
}

static void test_a_chunked_body_over_the_limit_is_413(void **state)
{
    (void)state;
    serve_server *s = start(&(fixture_opts){.max_body = 1024});
    int fd = dial(s->bound_port);
    const char *head = "POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    send_all(fd, head, strlen(head));
    char chunk[600];
    memset(chunk, ' ', sizeof chunk);
    for (int i = 0; i < 4; i++) {
        char size[16];
        snprintf(size, sizeof size, "%zx\r\n", sizeof chunk);
        send_all(fd, size, strlen(size));
        send_all(fd, chunk, sizeof chunk);
        send_all(fd, "\r\n", 2);
    }
    send_all(fd, "0\r\n\r\n", 5);
    http_reply r;
    read_reply(fd, &r);
    close(fd);
    assert_int_equal(r.status, 413);
    /* a chunked body under the limit is read whole */
    fd = dial(s->bound_port);
    const char *small = "POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "f\r\n{\"events\":[{\"us\r\n"
                        "18\r\ner\":\"c\",\"item\":\"3\"}]}   \r\n0\r\n\r\n";
    send_all(fd, small, strlen(small));
    read_reply(fd, &r);
    close(fd);
    assert_int_equal(r.status, 200);
    serve_free(s);
}

static void test_keep_alive_serves_several_requests_on_one_connection(void **state)
{
    (void)state;
    serve_server *s = start(&(fixture_opts){0});
    int fd = dial(s->bound_port);
    const char *two = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /v1/similar?item=3&k=2 HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, two, strlen(two));
    http_reply r;
    read_reply(fd, &r);
    assert_int_equal(r.status, 200);
    read_reply(fd, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"item\":\"3\""));
    const char *third = "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, third, strlen(third));
    read_reply(fd, &r);
    assert_int_equal(r.status, 404);
    close(fd);
    serve_free(s);
}

static void test_status_headers_reach_the_client(void **state)
{
    (void)state;
    const char *keys = test_write_file("http-keys.txt", "reader-key-0001 read\n");
    serve_server *s = start(&(fixture_opts){.keys = keys});
    http_reply r;
    assert_int_equal(request(s->bound_port, "PUT /v1/recommend HTTP/1.1\r\nHost: x\r\n\r\n", &r),
                     405);
    assert_non_null(strcasestr(r.head, "\r\nAllow: GET, HEAD, POST\r\n"));
    assert_int_equal(request(s->bound_port, "GET /v1/model HTTP/1.1\r\nHost: x\r\n\r\n", &r), 401);
    assert_non_null(strcasestr(r.head, "\r\nWWW-Authenticate: Bearer"));
    assert_int_equal(request(s->bound_port,
                             "GET /v1/model HTTP/1.1\r\nHost: x\r\n"
                             "Authorization: Bearer reader-key-0001\r\n\r\n", &r), 200);
    assert_int_equal(request(s->bound_port, "GET /metrics HTTP/1.1\r\nHost: x\r\n"
                                            "Authorization: Bearer reader-key-0001\r\n\r\n", &r),
                     200);
    assert_non_null(strcasestr(r.head, "Content-Type: text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body, "ember_http_requests_total{route=\"model\",code=\"401\"} 1"));
    serve_free(s);
}

static void test_the_raw_target_reaches_the_handler(void **state)
{
    (void)state;
    serve_server *s = start(&(fixture_opts){0});
    http_reply r;
    const char *body = "{\"events\":[{\"user\":\"a/b c\",\"item\":\"3\"}]}";
    char raw[512];
    snprintf(raw, sizeof raw, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    assert_int_equal(request(s->bound_port, raw, &r), 200);
    assert_int_equal(request(s->bound_port,
                             "GET /v1/recommend?user=a%2Fb+c&k=2 HTTP/1.1\r\nHost: x\r\n\r\n", &r),
                     200);
    assert_int_equal(request(s->bound_port,
                             "DELETE /v1/users/a%2Fb%20c HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
    assert_non_null(strstr(r.body, "\"user\":\"a/b c\""));
    serve_free(s);
}

static void test_garbage_on_the_wire_leaves_the_server_up(void **state)
{
    (void)state;
    serve_server *s = start(&(fixture_opts){0});
    const char *junk[] = {"\x01\x02\x03\xff\r\n\r\n", "GET\r\n\r\n", "GET / HTTP/9.9\r\n\r\n",
                          "POST /v1/events HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                          "POST /v1/events HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc",
                          "GET /healthz HTTP/1.1\r\nHost: x\r\nX: \x01\r\n\r\n"};
    for (size_t i = 0; i < EMBER_ARRAY_LEN(junk); i++) {
        int fd = dial(s->bound_port);
        send_all(fd, junk[i], strlen(junk[i]));
        shutdown(fd, SHUT_WR);
        /* an incomplete request may be held until the idle timeout: do not wait for it */
        struct timeval tv = {.tv_usec = 200000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        char buf[4096];
        while (recv(fd, buf, sizeof buf, 0) > 0) {
        }
        close(fd);
    }
    http_reply r;
    assert_int_equal(request(s->bound_port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &r), 200);
    serve_free(s);
}

typedef struct {
    uint16_t port;
    int t, failures;
} client_ctx;

static void *client(void *arg)
{
    client_ctx *c = arg;
    for (int i = 0; i < 40; i++) {
        char raw[512];
        if (i % 4 == 0) {
            char body[128];
            snprintf(body, sizeof body, "{\"events\":[{\"user\":\"c%d\",\"item\":\"%d\"}]}", c->t,
                     i % 300 + 1);
            snprintf(raw, sizeof raw,
                     "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
                     strlen(body), body);
        } else {
            snprintf(raw, sizeof raw, "GET /v1/recommend?user=%d&k=5 HTTP/1.1\r\nHost: x\r\n\r\n",
                     i % 200 + 1);
        }
        http_reply r;
        int fd = dial(c->port);
        send_all(fd, raw, strlen(raw));
        read_reply(fd, &r);
        close(fd);
        if (r.status != 200)
            c->failures++;
    }
    return NULL;
}

static void test_concurrent_clients_are_all_answered(void **state)
{
    (void)state;
    serve_server *s = start(&(fixture_opts){0});
    pthread_t t[4];
    client_ctx c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (client_ctx){s->bound_port, i, 0};
        pthread_create(&t[i], NULL, client, &c[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].failures, 0);
    }
    assert_int_equal(store_count(s->store), 40);
    serve_free(s);
}

static void test_shutdown_with_an_idle_connection_open_returns(void **state)
{
    (void)state;
    serve_server *s = start(&(fixture_opts){0});
    int fd = dial(s->bound_port);
    send_all(fd, "GET /heal", 9); /* half a request line */
    usleep(50000);
    serve_free(s); /* must not wait for the client */
    close(fd);
}

static void test_a_bad_bind_address_is_refused(void **state)
{
    (void)state;
    serve_server *s = fixture_server(&(fixture_opts){0});
    free((char *)s->cfg.bind);
    s->cfg.bind = ember_strdup("not-an-address");
    assert_int_equal(serve_http_start(s), EMBER_EINVAL);
    free((char *)s->cfg.bind);
    s->cfg.bind = ember_strdup("::1");
    s->cfg.port = 0;
    if (serve_http_start(s) == EMBER_OK) { /* IPv6 loopback, where the machine has it */
        assert_true(s->bound_port > 0);
        serve_http_stop(s);
    }
    serve_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz_over_a_socket),
        cmocka_unit_test(test_event_is_visible_in_the_next_request),
        cmocka_unit_test(test_a_declared_body_over_the_limit_is_413_before_it_is_sent),
        cmocka_unit_test(test_a_chunked_body_over_the_limit_is_413),
        cmocka_unit_test(test_keep_alive_serves_several_requests_on_one_connection),
        cmocka_unit_test(test_status_headers_reach_the_client),
        cmocka_unit_test(test_the_raw_target_reaches_the_handler),
        cmocka_unit_test(test_garbage_on_the_wire_leaves_the_server_up),
        cmocka_unit_test(test_concurrent_clients_are_all_answered),
        cmocka_unit_test(test_shutdown_with_an_idle_connection_open_returns),
        cmocka_unit_test(test_a_bad_bind_address_is_refused),
    };
    int rc = cmocka_run_group_tests(tests, fixture_setup, NULL);
    serve_response_free(&last);
    return rc;
}
