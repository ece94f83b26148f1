/*
 * metrics.c — what the server counts, and the text buffer its answers are
 * built in.
 *
 * Per route: requests by status code and a latency histogram (fixed
 * buckets from 100 us to 1 s), all relaxed atomic counters that any
 * thread bumps without a lock.  metrics_write prints them in the
 * Prometheus text exposition format (version 0.0.4): counters as
 * ember_http_requests_total{route,code}, histograms as
 * ember_http_request_duration_seconds_{bucket,sum,count} with cumulative
 * buckets.  Events, deletions and reloads are plain counters.
 */
#include "serve/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const route_names[] = {
    [ROUTE_RECOMMEND] = "recommend", [ROUTE_SIMILAR] = "similar", [ROUTE_EVENTS] = "events",
    [ROUTE_USERS] = "users",         [ROUTE_HEALTHZ] = "healthz", [ROUTE_METRICS] = "metrics",
    [ROUTE_MODEL] = "model",         [ROUTE_RELOAD] = "reload",   [ROUTE_EXPLAIN] = "explain",
    [ROUTE_DASHBOARD] = "dashboard", [ROUTE_ITEMS] = "items",     [ROUTE_OTHER] = "other",
};
_Static_assert(sizeof route_names / sizeof route_names[0] == ROUTE_COUNT, "route names");

/* Upper bounds of the histogram buckets, seconds; the last is +Inf. */
static const double bucket_le[METRICS_BUCKETS - 1] = {0.0001, 0.00025, 0.0005, 0.001,
                                                      0.0025, 0.005,   0.01,   0.025,
                                                      0.05,   0.1,     0.25,   1.0};

const char *route_name(serve_route r)
{
    return (unsigned)r < ROUTE_COUNT ? route_names[r] : "other";
}

void buf_put(serve_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void buf_printf(serve_buf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        buf_put(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_put(b, big, (size_t)n);
    free(big);
}

void metrics_label(serve_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            buf_printf(b, "\\%c", *s);
        else if (*s == '\n')
            buf_put(b, "\\n", 2);
        else
            buf_put(b, s, 1);
    }
}

void metrics_observe(serve_metrics *m, serve_route r, int status, double seconds)
{
    if ((unsigned)r >= ROUTE_COUNT)
        r = ROUTE_OTHER;
    if (status >= 100 && status < 600)
        atomic_fetch_add_explicit(&m->status[r][status - 100], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < METRICS_BUCKETS - 1 && seconds > bucket_le[b])
        b++;
    atomic_fetch_add_explicit(&m->bucket[r][b], 1, memory_order_relaxed);
    double ns = seconds > 0 ? seconds * 1e9 : 0;
    atomic_fetch_add_explicit(&m->sum_ns[r], (uint_fast64_t)ns, memory_order_relaxed);
}

static uint64_t load(const atomic_uint_fast64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

void metrics_write(const serve_metrics *m, serve_buf *b)
{
    buf_printf(b, "# HELP ember_http_requests_total HTTP requests by route and status code.\n"
                  "# TYPE ember_http_requests_total counter\n");
    for (int r = 0; r < ROUTE_COUNT; r++)
        for (int c = 0; c < 500; c++) {
            uint64_t v = load(&m->status[r][c]);
            if (v)
                buf_printf(b, "ember_http_requests_total{route=\"%s\",code=\"%d\"} %llu\n",
                           route_names[r], c + 100, (unsigned long long)v);
        }
    buf_printf(b, "# HELP ember_http_request_duration_seconds Time to answer a request, "
                  "by route.\n# TYPE ember_http_request_duration_seconds histogram\n");
    for (int r = 0; r < ROUTE_COUNT; r++) {
        uint64_t cum = 0;
        for (int k = 0; k < METRICS_BUCKETS; k++) {
            cum += load(&m->bucket[r][k]);
            if (k < METRICS_BUCKETS - 1)
                buf_printf(b, "ember_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
                              "%llu\n", route_names[r], bucket_le[k], (unsigned long long)cum);
            else
                buf_printf(b, "ember_http_request_duration_seconds_bucket{route=\"%s\","
                              "le=\"+Inf\"} %llu\n", route_names[r], (unsigned long long)cum);
        }
        buf_printf(b, "ember_http_request_duration_seconds_sum{route=\"%s\"} %.9f\n",
                   route_names[r], (double)load(&m->sum_ns[r]) * 1e-9);
        buf_printf(b, "ember_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                   route_names[r], (unsigned long long)cum);
    }
    buf_printf(b,
               "# HELP ember_events_ingested_total Events committed through POST /v1/events.\n"
               "# TYPE ember_events_ingested_total counter\n"
               "ember_events_ingested_total %llu\n"
               "# HELP ember_events_unknown_item_total Ingested events whose item the model "
               "does not know (stored, not scored).\n"
               "# TYPE ember_events_unknown_item_total counter\n"
               "ember_events_unknown_item_total %llu\n"
               "# HELP ember_events_unknown_user_total Ingested events whose user the model "
               "does not know.\n"
               "# TYPE ember_events_unknown_user_total counter\n"
               "ember_events_unknown_user_total %llu\n"
               "# HELP ember_users_deleted_total Users erased through DELETE /v1/users.\n"
               "# TYPE ember_users_deleted_total counter\n"
               "ember_users_deleted_total %llu\n"
               "# HELP ember_model_reloads_total Model reloads by result.\n"
               "# TYPE ember_model_reloads_total counter\n"
               "ember_model_reloads_total{result=\"ok\"} %llu\n"
               "ember_model_reloads_total{result=\"error\"} %llu\n",
               (unsigned long long)load(&m->events_ingested),
               (unsigned long long)load(&m->events_unknown_item),
               (unsigned long long)load(&m->events_unknown_user),
               (unsigned long long)load(&m->users_deleted),
               (unsigned long long)load(&m->reloads_ok),
               (unsigned long long)load(&m->reloads_failed));
}
