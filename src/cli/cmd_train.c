/*
 * cmd_train.c — `ember train`: read a training file (and optionally a
 * validation file), clean it if asked, fit a model by name with --param
 * k=v settings, and write one self-contained model file.
 */
#include "cli/cli.h"

#include "data/data.h"
#include "serve/serve.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "ember train (--train FILE | --db EVENTS.sqlite | both) [--valid FILE] --model NAME "
    "[--param k=v ...] --out MODEL";

static const cli_opt opts[] = {
    {"train", 0, false, false, "training interactions (TSV/CSV/u.data/ratings.dat/.inter)"},
    {"db", 0, false, false, "also train on the events `ember serve` stored in this SQLite "
                            "database (impressions left out; read-only, a server may be running)"},
    {"valid", 0, false, false, "validation interactions (early stopping, for models that use it)"},
    {"model", 'm', false, false, "model name (ember models lists them)"},
    {"param", 'p', false, true, "model parameter name=value (repeatable)"},
    {"out", 'o', false, false, "model file to write"},
    {"threads", 't', false, false, "threads (default: all cores)"},
    {"seed", 0, false, false, "random seed (default 42)"},
    {"dedupe", 0, true, false, "keep only the last interaction of each (user, item) pair"},
    {"min-user", 0, false, false, "drop users with fewer interactions (iterated with --min-item)"},
    {"min-item", 0, false, false, "drop items with fewer interactions"},
    {"threshold", 0, false, false, "keep ratings >= this as implicit positives"},
    {"quiet", 'q', true, false, "print nothing on success"},
    {"log", 0, false, false, "write a JSON line per epoch (loss, valid metric, seconds) to this file"},
    CLI_READ_OPTS,
};

int cmd_train(int argc, char **argv)
{
    cli_args a;
    bool help;
    if (!cli_parse(&a, opts, EMBER_ARRAY_LEN(opts), argc, argv, usage,
                   "Fits a model on interactions and writes a model file.", &help))
        return help ? EXIT_OK : EXIT_USAGE;
    const char *train_path = cli_get(&a, "train"), *model_name = cli_get(&a, "model"),
               *out_path = cli_get(&a, "out"), *valid_path = cli_get(&a, "valid"),
               *db_path = cli_get(&a, "db");
    if ((!train_path && !db_path) || !model_name || !out_path)
        return cli_usage_error(usage, "--train or --db (or both), --model and --out are required");
    ember_read_opts ro;
    size_t threads, seed, min_user, min_item;
    double threshold;
    if (!cli_read_opts(&a, &ro) || !cli_get_size(&a, "threads", 0, &threads) ||
        !cli_get_size(&a, "seed", 42, &seed) || !cli_get_size(&a, "min-user", 0, &min_user) ||
        !cli_get_size(&a, "min-item", 0, &min_item) ||
        !cli_get_double(&a, "threshold", -INFINITY, &threshold))
        return EXIT_USAGE;

    /* the model is created first, so a bad name or parameter fails fast */
    size_t np = 0;
    for (size_t i = 0; i < a.n_opts; i++)
        if (strcmp(opts[i].name, "param") == 0)
            np = a.n_values[i];
    const char *params[CLI_MAX_REPEAT + 1];
    for (size_t i = 0; i < a.n_opts; i++)
        if (strcmp(opts[i].name, "param") == 0)
            for (size_t k = 0; k < np; k++)
                params[k] = a.values[i][k];
    params[np] = NULL;
    ember_model *m;
    if (ember_model_new(model_name, params, &m))
        return cli_fail("train");

    int rc = EXIT_FAIL;
    ember_idmap *users = ember_idmap_new(), *items = ember_idmap_new();
    ember_coo c = {0};
    ember_dataset *train = NULL, *valid = NULL;
    ember_read_stats rs;
    double t0 = ember_now();
    if (!users || !items) {
        cli_fail("train");
        goto done;
    }
    if (train_path) {
        cli_progress("reading %s", train_path);
        if (ember_coo_read(train_path, &ro, users, items, &c, &rs)) {
            cli_fail("train");
            goto done;
        }
        if (rs.bad)
            fprintf(stderr, "ember: %s: skipped %zu malformed line%s (first: line %zu: %s)\n",
                    train_path, rs.bad, rs.bad == 1 ? "" : "s", rs.first_bad_line, rs.first_bad);
    }
    if (db_path) {
        cli_progress("reading %s", db_path);
        size_t n_db, n_skip;
        if (store_read_interactions(db_path, ro.fixed_ids, users, items, &c, &n_db, &n_skip)) {
            cli_fail("train");
            goto done;
        }
        if (!cli_flag(&a, "quiet"))
            fprintf(stderr, "ember: %s: %zu events (%zu impressions or unknown ids left out)\n",
                    db_path, n_db, n_skip);
    }
    if (cli_flag(&a, "dedupe") && ember_coo_dedupe(&c)) {
        cli_fail("train");
        goto done;
    }
    if (threshold > -INFINITY)
        ember_coo_threshold(&c, (float)threshold);
    if ((min_user || min_item) && ember_coo_filter_min(&c, min_user, min_item)) {
        cli_fail("train");
        goto done;
    }
    if (ember_dataset_build(&c, users, items, &train)) {
        cli_fail("train");
        goto done;
    }
    ember_coo_free(&c);
    double t_read = ember_now() - t0;
    if (valid_path) {
        ember_read_opts vo = ro;
        vo.fixed_ids = 1; /* the model can only learn about ids it has seen */
        if (cli_load(valid_path, &vo, users, items, &valid)) {
            cli_fail("train");
            goto done;
        }
    }
    ember_valid_ctx vc = {.valid = valid, .exclude = train, .k = 10, .threads = (int)threads};
    ember_fit_opts fo = {.threads = (int)threads,
                         .seed = seed,
                         .verbose = !cli_flag(&a, "quiet"),
                         .valid_fn = valid ? ember_valid_ndcg : NULL,
                         .valid_ctx = &vc,
                         .log_path = cli_get(&a, "log")};
    cli_progress("fitting %s on %zu interactions", model_name, ember_dataset_nnz(train));
    double t1 = ember_now();
    if (ember_model_fit(m, train, valid, &fo)) {
        cli_fail("train");
        goto done;
    }
    double t_fit = ember_now() - t1;
    cli_progress_done();
    if (ember_model_save(m, out_path)) {
        cli_fail("train");
        goto done;
    }
    if (!cli_flag(&a, "quiet")) {
        struct stat sb;
        double mb = stat(out_path, &sb) == 0 ? (double)sb.st_size / 1e6 : 0;
        printf("trained %s %s on %zu interactions (%zu users, %zu items): read %.2f s, fit %.2f "
               "s -> %s (%.1f MB)\n",
               model_name, ember_model_params_json(m), ember_dataset_nnz(train),
               ember_dataset_n_users(train), ember_dataset_n_items(train), t_read, t_fit,
               out_path, mb);
    }
    rc = EXIT_OK;
done:
    ember_coo_free(&c);
    ember_dataset_free(train);
    ember_dataset_free(valid);
    ember_idmap_free(users);
    ember_idmap_free(items);
    ember_model_free(m);
    return rc;
}
