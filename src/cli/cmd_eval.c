/*
 * cmd_eval.c — `ember eval`: the full-ranking protocol of PROTOCOL.md on a
 * test file, as a table or one JSON object.
 *
 * The model's id maps are cloned and extended by the files read here, so
 * test users and items the model never saw keep their place in the
 * denominators (a test item the model cannot rank still counts in Recall
 * and NDCG) without touching the model.
 */
#include "cli/cli.h"

#include "core/idmap.h"
#include "eval/eval.h"
#include "models/model.h"

#include <stdlib.h>
#include <string.h>

static const char usage[] = "ember eval --model MODEL --test FILE [--exclude FILE,...] "
                            "[--history FILE,...] [-k 10] [--json]";

static const cli_opt opts[] = {
    {"model", 'm', false, false, "model file"},
    {"test", 0, false, false, "test interactions"},
    {"exclude", 0, false, false,
     "files whose items are removed from each user's ranking (e.g. train,valid)"},
    {"history", 0, false, false,
     "files whose interactions are appended to each user's history before scoring"},
    {"k", 'k', false, false, "cut-offs, comma separated (default 10,20)"},
    {"json", 0, true, false, "print one JSON object"},
    {"threads", 't', false, false, "threads (default: all cores)"},
    {"item-features", 0, false, false, "item file with a token set per item, for diversity"},
    {"diversity-col", 0, false, false,
     "token column of --item-features used for intra-list diversity (default class)"},
    CLI_READ_OPTS,
};

static void print_json(const ember_model *m, const eval_result *r, const eval_rating_result *rr)
{
    printf("{\"model\":\"%s\",\"params\":%s", ember_model_name(m), ember_model_params_json(m));
    for (size_t j = 0; j < r->n_ks; j++) {
        const eval_at_k *e = &r->at[j];
        size_t k = e->k;
        printf(",\"ndcg@%zu\":%.6f,\"recall@%zu\":%.6f,\"precision@%zu\":%.6f,\"hit@%zu\":%.6f,"
               "\"mrr@%zu\":%.6f,\"map@%zu\":%.6f,\"coverage@%zu\":%.6f,"
               "\"avg_popularity@%zu\":%.4f,\"novelty@%zu\":%.4f,\"gini@%zu\":%.6f",
               k, e->ndcg, k, e->recall, k, e->precision, k, e->hit, k, e->mrr, k, e->map, k,
               e->coverage, k, e->avg_popularity, k, e->novelty, k, e->gini);
        if (r->has_ild)
            printf(",\"ild@%zu\":%.6f", k, e->ild);
    }
    if (rr)
        printf(",\"rmse\":%.6f,\"mae\":%.6f,\"rating_rows\":%zu", rr->rmse, rr->mae, rr->rows);
    printf(",\"users\":%zu,\"cold_users\":%zu,\"test_interactions\":%zu,\"unknown_items\":%zu,"
           "\"seconds\":%.4f}\n",
           r->users, r->cold_users, r->test_items, r->unknown_items, r->seconds);
}

static void print_table(const ember_model *m, const char *test, const eval_result *r,
                        const eval_rating_result *rr)
{
    printf("%s %s on %s: %zu users (%zu unknown to the model), %zu test interactions (%zu on "
           "items it cannot rank), %.3f s\n\n",
           ember_model_name(m), ember_model_params_json(m), test, r->users, r->cold_users,
           r->test_items, r->unknown_items, r->seconds);
    printf("%-16s", "metric");
    for (size_t j = 0; j < r->n_ks; j++)
        printf("  %8s@%-3zu", "", r->at[j].k);
    printf("\n");
#define ROW(label, field, fmt)                        \
    do {                                              \
        printf("%-16s", label);                       \
        for (size_t j = 0; j < r->n_ks; j++)          \
            printf("  " fmt, r->at[j].field);         \
        printf("\n");                                 \
    } while (0)
    ROW("ndcg", ndcg, "%12.4f");
    ROW("recall", recall, "%12.4f");
    ROW("precision", precision, "%12.4f");
    ROW("hit", hit, "%12.4f");
    ROW("mrr", mrr, "%12.4f");
    ROW("map", map, "%12.4f");
    ROW("coverage", coverage, "%12.4f");
    ROW("avg_popularity", avg_popularity, "%12.2f");
    ROW("novelty", novelty, "%12.4f");
    ROW("gini", gini, "%12.4f");
    if (r->has_ild)
        ROW("ild", ild, "%12.4f");
#undef ROW
    if (rr)
        printf("\nratings: rmse %.4f  mae %.4f  over %zu test rows (%zu predicted by the mean: "
               "unknown user or item), predictions clipped to the training range\n",
               rr->rmse, rr->mae, rr->rows, rr->unknown);
}

/* Reads each file of a comma list with the extended maps. */
static int load_list(const char *list, const ember_read_opts *ro, ember_idmap *users,
                     ember_idmap *items, ember_dataset **out, size_t *n)
{
    *n = 0;
    if (!list)
        return EMBER_OK;
    char *buf;
    const char *paths[16];
    size_t np = cli_split_list(list, &buf, paths, 16);
    if (!buf)
        return EMBER_ENOMEM;
    int st = EMBER_OK;
    for (size_t i = 0; i < np && st == EMBER_OK; i++) {
        st = cli_load(paths[i], ro, users, items, &out[i]);
        if (st == EMBER_OK)
            (*n)++;
    }
    free(buf);
    return st;
}

int cmd_eval(int argc, char **argv)
{
    cli_args a;
    bool help;
    if (!cli_parse(&a, opts, EMBER_ARRAY_LEN(opts), argc, argv, usage,
                   "Evaluates a model on a test file with full ranking (shared/docs/PROTOCOL.md).",
                   &help))
        return help ? EXIT_OK : EXIT_USAGE;
    const char *model_path = cli_get(&a, "model"), *test_path = cli_get(&a, "test");
    if (!model_path || !test_path)
        return cli_usage_error(usage, "--model and --test are required");
    ember_read_opts ro;
    size_t threads;
    if (!cli_read_opts(&a, &ro) || !cli_get_size(&a, "threads", 0, &threads))
        return EXIT_USAGE;
    eval_opts eo = {.threads = (int)threads};
    const char *ks = cli_get(&a, "k");
    if (!ks)
        ks = "10,20";
    {
        char *buf;
        const char *parts[EVAL_MAX_KS + 1];
        size_t n = cli_split_list(ks, &buf, parts, EVAL_MAX_KS + 1);
        if (!buf)
            return cli_fail("eval");
        bool ok = n >= 1 && n <= EVAL_MAX_KS;
        for (size_t i = 0; ok && i < n; i++) {
            int64_t v;
            ok = ember_parse_i64(parts[i], strlen(parts[i]), &v) && v >= 1 && v <= 100000;
            if (ok)
                eo.ks[eo.n_ks++] = (size_t)v;
        }
        free(buf);
        if (!ok)
            return cli_usage_error(usage, "-k: '%s' is not a list of 1 to %d cut-offs in 1..100000",
                                   ks, EVAL_MAX_KS);
    }

    int rc = EXIT_FAIL;
    ember_model *m = NULL;
    ember_idmap *users = NULL, *items = NULL;
    ember_dataset *test = NULL, *excl[16] = {0}, *hist[16] = {0};
    size_t n_excl = 0, n_hist = 0;
    data_features feats = {0};
    cli_progress("loading %s", model_path);
    if (ember_model_load(model_path, &m)) {
        cli_fail("eval");
        goto done;
    }
    users = idmap_clone(ember_model_users(m), ember_idmap_size(ember_model_users(m)));
    items = idmap_clone(ember_model_items(m), ember_idmap_size(ember_model_items(m)));
    if (!users || !items || cli_load(test_path, &ro, users, items, &test) ||
        load_list(cli_get(&a, "exclude"), &ro, users, items, excl, &n_excl) ||
        load_list(cli_get(&a, "history"), &ro, users, items, hist, &n_hist)) {
        cli_fail("eval");
        goto done;
    }
    const char *feat_path = cli_get(&a, "item-features");
    if (feat_path) {
        const char *col = cli_get(&a, "diversity-col");
        if (!col)
            col = "class";
        if (data_features_load(feat_path, NULL, ember_model_items(m), &feats)) {
            cli_fail("eval");
            goto done;
        }
        const data_feature *f = data_features_col(&feats, col);
        if (!f || (f->type != FEAT_TOKEN_SEQ && f->type != FEAT_TOKEN)) {
            fprintf(stderr, "ember: eval: %s has no token column '%s'\n", feat_path, col);
            goto done;
        }
        eo.tok_ptr = f->ptr;
        eo.tok = f->tok;
    }
    eo.test = test;
    eo.exclude = (const ember_dataset *const *)excl;
    eo.n_exclude = n_excl;
    eo.history = (const ember_dataset *const *)hist;
    eo.n_history = n_hist;
    cli_progress("evaluating");
    eval_result r;
    if (eval_ranking(m, &eo, &r)) {
        cli_fail("eval");
        goto done;
    }
    eval_rating_result rr;
    bool ratings = ember_model_predicts_ratings(m);
    if (ratings && eval_ratings(m, test, (int)threads, m->rating_min, m->rating_max, &rr)) {
        cli_fail("eval");
        goto done;
    }
    cli_progress_done();
    if (cli_flag(&a, "json"))
        print_json(m, &r, ratings ? &rr : NULL);
    else
        print_table(m, test_path, &r, ratings ? &rr : NULL);
    rc = EXIT_OK;
done:
    cli_progress_done();
    data_features_free(&feats);
    ember_dataset_free(test);
    for (size_t i = 0; i < 16; i++) {
        ember_dataset_free(excl[i]);
        ember_dataset_free(hist[i]);
    }
    ember_idmap_free(users);
    ember_idmap_free(items);
    ember_model_free(m);
    return rc;
}
