/*
 * cmd_serve.c — `ember serve`: the HTTP JSON API over one model, with the
 * event store (src/serve/).  Loads the model (mmapped), opens the event
 * database and replays it into memory, listens, and runs until SIGINT or
 * SIGTERM, then stops taking requests, lets those in flight finish,
 * commits what is queued and exits 0.
 *
 * The signals are blocked in every thread (the mask is set before any
 * thread starts, and threads inherit it) and taken by sigwait() in the
 * main thread, so no handler runs inside library code.
 */
#include "cli/cli.h"

#include "serve/serve.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] = "ember serve --model MODEL --db EVENTS.sqlite [--port 8080] "
                            "[--threads 2] [--keys FILE] [--bind 127.0.0.1] [--items FILE]";

static const cli_opt opts[] = {
    {"model", 'm', false, false, "model file to serve"},
    {"db", 0, false, false, "SQLite event database (created when absent; WAL mode)"},
    {"port", 'p', false, false, "TCP port (default 8080; 0 picks a free one)"},
    {"threads", 't', false, false, "HTTP worker threads (default 2)"},
    {"keys", 0, false, false, "API key file: one `KEY ROLE` per line, roles read|write|admin"},
    {"bind", 0, false, false, "address to listen on (default 127.0.0.1)"},
    {"max-body", 0, false, false, "request body limit in bytes (default 1048576)"},
    {"history", 0, false, false, "recent items kept in memory per user (default 200)"},
    {"items", 0, false, false, "item features (RecBole .item or TSV keyed by item id): titles in "
                               "answers, categories for filters, diversity and fatigue"},
    {"category-col", 0, false, false, "category column of --items (default: category, genre "
                                      "or class)"},
    {"title-col", 0, false, false, "title column of --items (default: title or movie_title)"},
};

int cmd_serve(int argc, char **argv)
{
    cli_args a;
    bool help;
    if (!cli_parse(&a, opts, EMBER_ARRAY_LEN(opts), argc, argv, usage,
                   "Serves recommendations over HTTP (JSON API under /v1, see docs/api.md), "
                   "stores events durably and applies them at once.",
                   &help))
        return help ? EXIT_OK : EXIT_USAGE;
    serve_config c;
    serve_config_init(&c);
    c.model_path = cli_get(&a, "model");
    c.db_path = cli_get(&a, "db");
    if (!c.model_path || !c.db_path)
        return cli_usage_error(usage, "--model and --db are required");
    size_t port, threads, max_body, history;
    if (!cli_get_size(&a, "port", 8080, &port) || !cli_get_size(&a, "threads", 2, &threads) ||
        !cli_get_size(&a, "max-body", c.max_body, &max_body) ||
        !cli_get_size(&a, "history", c.history_len, &history))
        return EXIT_USAGE;
    if (port > 65535)
        return cli_usage_error(usage, "--port must be in 0..65535");
    if (threads < 1 || threads > 256)
        return cli_usage_error(usage, "--threads must be in 1..256");
    if (max_body < 1024 || max_body > ((size_t)1 << 30))
        return cli_usage_error(usage, "--max-body must be in 1024..1073741824");
    if (history < 1 || history > 100000)
        return cli_usage_error(usage, "--history must be in 1..100000");
    c.port = (uint16_t)port;
    c.threads = (int)threads;
    c.max_body = max_body;
    c.history_len = history;
    c.keys_path = cli_get(&a, "keys");
    c.items_path = cli_get(&a, "items");
    c.category_col = cli_get(&a, "category-col");
    c.title_col = cli_get(&a, "title-col");
    if ((c.category_col || c.title_col) && !c.items_path)
        return cli_usage_error(usage, "--category-col and --title-col go with --items");
    if (cli_get(&a, "bind"))
        c.bind = cli_get(&a, "bind");

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    double t0 = ember_now();
    serve_server *s;
    if (serve_new(&c, &s))
        return cli_fail("serve");
    if (serve_http_start(s)) {
        serve_free(s);
        return cli_fail("serve");
    }
    serve_model *sm = serve_model_acquire(s);
    fprintf(stderr,
            "ember serve: model %s (%s, %zu items, %zu users), %zu events replayed from %s, "
            "%s; started in %.3f s\n",
            ember_model_name(sm->m), sm->version, ember_model_n_items(sm->m),
            ember_idmap_size(ember_model_users(sm->m)), s->replayed, c.db_path,
            s->keys ? "API keys required" : "no key file: writes only from 127.0.0.1",
            ember_now() - t0);
    serve_model_release(sm);
    fprintf(stderr, "ember serve: listening on http://%s:%u (%d threads)\n", c.bind,
            (unsigned)s->bound_port, c.threads);
    fflush(stderr);

    int sig = 0;
    sigwait(&stop, &sig);
    fprintf(stderr, "ember serve: %s, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    serve_free(s);
    fprintf(stderr, "ember serve: stopped\n");
    return EXIT_OK;
}
