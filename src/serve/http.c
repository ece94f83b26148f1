/*
 * http.c — libmicrohttpd glue: listen, collect each request (raw target,
 * Authorization header, client address, body), hand it to serve_handle()
 * and send what it answers.
 *
 * libmicrohttpd runs a pool of cfg.threads threads, each with its own
 * epoll loop over its connections (MHD_USE_INTERNAL_POLLING_THREAD |
 * MHD_USE_EPOLL with MHD_OPTION_THREAD_POOL_SIZE).  The raw request
 * target comes from the URI log callback, which sees the target before
 * libmicrohttpd decodes it; the handler does its own decoding, the same
 * for HTTP, tests and fuzzing.  Bodies are limited twice: a Content-Length
 * over the limit is answered 413 before any byte of the body is read, and
 * a chunked body that grows past it is drained and answered 413.
 */
#include "serve/serve.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

typedef struct {
    char *target;
    char *body;
    size_t len, cap;
    bool started, too_big;
} conn_ctx;

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
    (void)cls;
    (void)con;
    conn_ctx *c = calloc(1, sizeof *c);
    if (c)
        c->target = strdup(uri ? uri : "");
    if (c && !c->target) {
        free(c);
        c = NULL;
    }
    return c;
}

static void on_done(void *cls, struct MHD_Connection *con, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)con;
    (void)toe;
    conn_ctx *c = *con_cls;
    if (c) {
        free(c->target);
        free(c->body);
        free(c);
        *con_cls = NULL;
    }
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

static enum MHD_Result send_response(struct MHD_Connection *con, serve_response *r)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        serve_response_free(r);
        return MHD_NO;
    }
    r->body = NULL; /* the response owns it now */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    if (r->allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->challenge)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"ember\"");
    enum MHD_Result ok = MHD_queue_response(con, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result send_too_big(serve_server *s, struct MHD_Connection *con)
{
    serve_response r = {.status = 413, .content_type = "application/json"};
    char msg[96];
    int n = snprintf(msg, sizeof msg, "{\"error\":\"the body is over the %zu-byte limit\"}",
                     s->cfg.max_body);
    r.body = strdup(msg);
    if (!r.body)
        return MHD_NO;
    r.len = (size_t)n;
    metrics_observe(s->metrics, ROUTE_OTHER, 413, 0.0);
    return send_response(con, &r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)url;
    (void)version;
    serve_server *s = cls;
    conn_ctx *c = *con_cls;
    if (!c)
        return MHD_NO; /* out of memory in on_uri: drop the connection */
    if (!c->started) {
        c->started = true;
        const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_LENGTH);
        int64_t n;
        if (cl && ember_parse_i64(cl, strlen(cl), &n) && n > 0 && (uint64_t)n > s->cfg.max_body)
            return send_too_big(s, con);
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (c->too_big || c->len + n > s->cfg.max_body) {
            c->too_big = true;
            return MHD_YES; /* drain, answer at the end */
        }
        if (c->len + n > c->cap) {
            size_t cap = c->cap ? c->cap : 4096;
            while (cap < c->len + n)
                cap *= 2;
            char *p = realloc(c->body, cap);
            if (!p)
                return MHD_NO;
            c->body = p;
            c->cap = cap;
        }
        memcpy(c->body + c->len, upload_data, n);
        c->len += n;
        return MHD_YES;
    }
    if (c->too_big)
        return send_too_big(s, con);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    serve_request rq = {
        .method = method,
        .target = c->target,
        .authorization = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_AUTHORIZATION),
        .local = ci && is_loopback(ci->client_addr),
        .body = c->body ? c->body : "",
        .len = c->len,
    };
    serve_response r;
    serve_handle(s, &rq, &r);
    return send_response(con, &r);
}

int serve_http_start(serve_server *s)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, s->cfg.bind, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(s->cfg.port);
    } else if (inet_pton(AF_INET6, s->cfg.bind, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(s->cfg.port);
        flags |= MHD_USE_IPv6;
    } else {
        return ember_fail(EMBER_EINVAL, "bind address '%s' is not an IPv4 or IPv6 address",
                          s->cfg.bind);
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->cfg.threads, MHD_OPTION_URI_LOG_CALLBACK,
        on_uri, NULL, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)30, MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096, MHD_OPTION_END);
    if (!d)
        return ember_fail(EMBER_EIO, "cannot listen on %s:%u (address in use, or not allowed)",
                          s->cfg.bind, (unsigned)s->cfg.port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    s->bound_port = info ? info->port : s->cfg.port;
    s->http = d;
    return EMBER_OK;
}

void serve_http_stop(serve_server *s)
{
    if (s && s->http) {
        MHD_stop_daemon(s->http);
        s->http = NULL;
    }
}
