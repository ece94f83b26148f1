/*
 * loadgen.c — a fixed-rate HTTP load generator for bench/bench_serve.sh:
 * the p50/p99 latency of `ember serve` at a given request rate (Debian's
 * wrk only measures at saturation; wrk2's -R is not packaged).
 *
 *   loadgen HOST PORT RATE SECONDS CONNS USERS PATH
 *
 * Request i is due at t0 + i / RATE; PATH may hold one %u, replaced by
 * 1 + (i mod USERS) (users in rotation).  CONNS keep-alive connections
 * each carry one request at a time; a request that finds no free
 * connection waits, and its latency is counted from when it was due, not
 * from when it was sent (no coordinated omission, as wrk2).  One thread,
 * poll(); responses are read to the end of their Content-Length body.
 * Prints the requests sent and answered, non-200 answers, the achieved
 * rate and the latency percentiles in milliseconds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256

typedef struct {
    int fd;
    bool busy;
    double due; /* the request's due time */
    char buf[65536];
    size_t have;
} conn;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int dial(const char *host, const char *port)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, port, &hints, &res) != 0)
        return -1;
    int fd = socket(res->ai_family, res->ai_socktype, 0);
    if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Whether buf[0..n) holds a whole response; its status into *status. */
static bool complete(const char *buf, size_t n, int *status)
{
    const char *end = memmem(buf, n, "\r\n\r\n", 4);
    if (!end)
        return false;
    size_t head = (size_t)(end - buf) + 4, len = 0;
    const char *cl = memmem(buf, head, "Content-Length:", 15);
    if (!cl)
        cl = memmem(buf, head, "content-length:", 15);
    if (cl)
        len = strtoul(cl + 15, NULL, 10);
    if (n < head + len)
        return false;
    *status = atoi(buf + 9);
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: loadgen HOST PORT RATE SECONDS CONNS USERS PATH\n");
        return 2;
    }
    const char *host = argv[1], *port = argv[2], *path = argv[7];
    double rate = atof(argv[3]), seconds = atof(argv[4]);
    int nc = atoi(argv[5]);
    unsigned users = (unsigned)atoi(argv[6]);
    if (rate <= 0 || seconds <= 0 || nc < 1 || nc > MAX_CONNS || users < 1) {
        fprintf(stderr, "loadgen: bad arguments\n");
        return 2;
    }
    size_t total = (size_t)(rate * seconds);
    double *lat = calloc(total ? total : 1, sizeof *lat);
    conn *c = calloc((size_t)nc, sizeof *c);
    if (!lat || !c)
        return 1;
    for (int k = 0; k < nc; k++) {
        c[k].fd = dial(host, port);
        if (c[k].fd < 0) {
            fprintf(stderr, "loadgen: cannot connect to %s:%s\n", host, port);
            return 1;
        }
    }
    size_t next = 0, done = 0, errors = 0, bad_status = 0;
    double t0 = now() + 0.01;
    struct pollfd pf[MAX_CONNS];
    while (done + errors < total) {
        double t = now();
        /* send what is due on free connections */
        while (next < total && t0 + (double)next / rate <= t) {
            int k = 0;
            while (k < nc && c[k].busy)
                k++;
            if (k == nc)
                break; /* it waits; its latency keeps counting */
            char req[1024], p[768];
            snprintf(p, sizeof p, path, 1 + (unsigned)(next % users));
            int len = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", p, host);
            if (write(c[k].fd, req, (size_t)len) != len) {
                errors++;
                next++;
                continue;
            }
            c[k].busy = true;
            c[k].due = t0 + (double)next / rate;
            c[k].have = 0;
            next++;
        }
        /* wait for answers, or until the next request is due */
        double wait = next < total ? t0 + (double)next / rate - now() : 0.1;
        int ms = wait > 0 ? (int)(wait * 1000) : 0;
        for (int k = 0; k < nc; k++)
            pf[k] = (struct pollfd){.fd = c[k].fd, .events = c[k].busy ? POLLIN : 0};
        int r = poll(pf, (nfds_t)nc, ms);
        if (r < 0 && errno != EINTR)
            return 1;
        for (int k = 0; r > 0 && k < nc; k++) {
            if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t got = read(c[k].fd, c[k].buf + c[k].have, sizeof c[k].buf - c[k].have);
            if (got <= 0) {
                errors++;
                c[k].busy = false;
                close(c[k].fd);
                c[k].fd = dial(host, port);
                if (c[k].fd < 0)
                    return 1;
                continue;
            }
            c[k].have += (size_t)got;
            int status;
            if (complete(c[k].buf, c[k].have, &status)) {
                lat[done++] = (now() - c[k].due) * 1e3;
                bad_status += status != 200;
                c[k].busy = false;
            }
        }
    }
    double span = now() - t0;
    qsort(lat, done, sizeof *lat, cmp_double);
#define PCT(p) (done ? lat[(size_t)((double)(done - 1) * (p))] : 0.0)
    printf("rate %.0f req/s for %.0f s over %d connections: %zu answered (%zu non-200), %zu "
           "errors, achieved %.0f req/s | latency ms p50 %.3f p90 %.3f p99 %.3f p99.9 %.3f max "
           "%.3f\n",
           rate, seconds, nc, done, bad_status, errors, (double)done / span, PCT(0.5), PCT(0.9),
           PCT(0.99), PCT(0.999), done ? lat[done - 1] : 0.0);
    for (int k = 0; k < nc; k++)
        close(c[k].fd);
    free(lat);
    free(c);
    return bad_status || errors ? 1 : 0;
}
