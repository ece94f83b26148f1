/*
 * cmd_recommend.c — `ember recommend` (top-k for a known user or for a
 * history of items, e.g. a new user or a session) and `ember similar`
 * (items like an item), as a table or JSON, with item titles when an item
 * file is given.
 */
#include "cli/cli.h"

#include "data/data.h"

#include <stdlib.h>
#include <string.h>

static const char rec_usage[] = "ember recommend --model MODEL (--user ID | --history ID,ID,... | "
                                "--all-users [--out FILE]) [-k 10] [--json]";
static const char sim_usage[] = "ember similar --model MODEL --item ID [-k 10] [--json]";

#define COMMON_OPTS                                                                          \
    {"model", 'm', false, false, "model file"}, {"k", 'k', false, false, "how many (default 10)"}, \
        {"json", 0, true, false, "print JSON"},                                              \
        {"item-features", 0, false, false, "item file (RecBole .item or TSV) to show titles"}, \
        {"title-col", 0, false, false, "title column of --item-features (default: title or movie_title)"}

static const cli_opt rec_opts[] = {
    COMMON_OPTS,
    {"user", 'u', false, false, "a user id the model was trained on"},
    {"history", 0, false, false, "item ids, oldest first (a new user or a session); with --user, "
                                 "appended to what the model knows of that user"},
    {"include-seen", 0, true, false, "do not remove items the user already has"},
    {"all-users", 0, true, false, "every user the model knows, as TSV (user, item, rank, score); "
                                  "factor models run one blocked search"},
    {"out", 'o', false, false, "with --all-users: write to this file instead of stdout"},
};

static const cli_opt sim_opts[] = {
    COMMON_OPTS,
    {"item", 'i', false, false, "item id"},
};

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

typedef struct {
    data_features feats;
    const data_feature *title;
} titles;

static int load_titles(const cli_args *a, const ember_model *m, titles *t)
{
    memset(t, 0, sizeof *t);
    const char *path = cli_get(a, "item-features");
    if (!path)
        return EMBER_OK;
    int st = data_features_load(path, NULL, ember_model_items(m), &t->feats);
    if (st)
        return st;
    const char *col = cli_get(a, "title-col");
    t->title = col ? data_features_col(&t->feats, col) : data_features_col(&t->feats, "title");
    if (!col && !t->title)
        t->title = data_features_col(&t->feats, "movie_title");
    if (!t->title || !t->title->text)
        return ember_fail(EMBER_ENOTFOUND, "%s: no text column '%s'", path,
                          col ? col : "title or movie_title");
    return EMBER_OK;
}

static const char *title_of(const titles *t, uint32_t item)
{
    if (!t->title || !t->title->text || item >= t->feats.n_entities)
        return NULL;
    return t->title->text[item];
}

static void print_list(const ember_model *m, const titles *t, bool json, const char *key,
                       const char *id, const uint32_t *items, const float *scores, size_t n)
{
    ember_idmap *im = ember_model_items(m);
    if (json) {
        printf("{\"%s\":", key);
        json_string(id);
        printf(",\"model\":\"%s\",\"items\":[", ember_model_name(m));
        for (size_t i = 0; i < n; i++) {
            printf("%s{\"item\":", i ? "," : "");
            json_string(ember_idmap_name(im, items[i]));
            printf(",\"score\":%.6g", scores[i]);
            const char *title = title_of(t, items[i]);
            if (title) {
                printf(",\"title\":");
                json_string(title);
            }
            printf("}");
        }
        printf("]}\n");
        return;
    }
    printf("%-5s %-12s %10s  %s\n", "rank", "item", "score", t->title ? "title" : "");
    for (size_t i = 0; i < n; i++) {
        const char *title = title_of(t, items[i]);
        printf("%-5zu %-12s %10.4f  %s\n", i + 1, ember_idmap_name(im, items[i]), scores[i],
               title ? title : "");
    }
}

/* Parses a history list into item indices; unknown ids are reported and
 * left out. */
static int parse_history(const ember_model *m, const char *list, uint32_t **out, size_t *n)
{
    *n = 0;
    char *buf;
    size_t max = strlen(list) / 2 + 2;
    const char **parts = ember_alloc(max, sizeof *parts);
    *out = ember_alloc(max, sizeof **out);
    if (!parts || !*out) {
        free(parts);
        return EMBER_ENOMEM;
    }
    size_t np = cli_split_list(list, &buf, parts, max);
    if (!buf) {
        free(parts);
        return EMBER_ENOMEM;
    }
    size_t unknown = 0;
    for (size_t i = 0; i < np; i++) {
        int64_t idx = ember_idmap_find(ember_model_items(m), parts[i], strlen(parts[i]));
        if (idx < 0) {
            if (unknown++ < 5)
                fprintf(stderr, "ember: recommend: item '%s' is unknown to the model; ignored\n",
                        parts[i]);
            continue;
        }
        (*out)[(*n)++] = (uint32_t)idx;
    }
    free(buf);
    free(parts);
    return EMBER_OK;
}

/* --all-users: every known user's list as TSV lines "user item rank
 * score", users in index order. */
static int recommend_all_users(const cli_args *a, ember_model *m, size_t k)
{
    const char *out_path = cli_get(a, "out");
    ember_idmap *users = ember_model_users(m), *imap = ember_model_items(m);
    size_t nu = ember_idmap_size(users);
    k = EMBER_MIN(k, ember_model_n_items(m));
    uint32_t *ids = ember_alloc(EMBER_MAX(nu, 1), sizeof *ids);
    uint32_t *items = ember_alloc(EMBER_MAX(nu * k, 1), sizeof *items);
    float *scores = ember_alloc(EMBER_MAX(nu * k, 1), sizeof *scores);
    uint32_t *counts = ember_alloc(EMBER_MAX(nu, 1), sizeof *counts);
    FILE *f = NULL;
    int rc = EXIT_FAIL;
    if (!ids || !items || !scores || !counts) {
        cli_fail("recommend");
        goto done;
    }
    for (size_t u = 0; u < nu; u++)
        ids[u] = (uint32_t)u;
    if (ember_model_recommend_users(m, ids, nu, k, cli_flag(a, "include-seen"), 0, items, scores,
                                    counts)) {
        cli_fail("recommend");
        goto done;
    }
    f = out_path ? fopen(out_path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "ember: recommend: cannot write %s\n", out_path);
        goto done;
    }
    fprintf(f, "user\titem\trank\tscore\n");
    for (size_t u = 0; u < nu; u++)
        for (size_t r = 0; r < counts[u]; r++)
            fprintf(f, "%s\t%s\t%zu\t%.6g\n", ember_idmap_name(users, (uint32_t)u),
                    ember_idmap_name(imap, items[u * k + r]), r + 1, (double)scores[u * k + r]);
    if (fflush(f) != 0 || ferror(f)) {
        fprintf(stderr, "ember: recommend: write error%s%s\n", out_path ? " on " : "",
                out_path ? out_path : "");
        goto done;
    }
    rc = EXIT_OK;
done:
    if (f && f != stdout && fclose(f) != 0 && rc == EXIT_OK) {
        fprintf(stderr, "ember: recommend: write error on %s\n", out_path);
        rc = EXIT_FAIL;
    }
    free(ids);
    free(items);
    free(scores);
    free(counts);
    return rc;
}

int cmd_recommend(int argc, char **argv)
{
    cli_args a;
    bool help;
    if (!cli_parse(&a, rec_opts, EMBER_ARRAY_LEN(rec_opts), argc, argv, rec_usage,
                   "Recommends items for a known user, or for a history of items.", &help))
        return help ? EXIT_OK : EXIT_USAGE;
    const char *model_path = cli_get(&a, "model"), *user = cli_get(&a, "user"),
               *history = cli_get(&a, "history");
    bool all_users = cli_flag(&a, "all-users");
    if (!model_path || (!user && !history && !all_users))
        return cli_usage_error(rec_usage,
                               "--model and one of --user, --history or --all-users are required");
    if (all_users && (user || history || cli_flag(&a, "json")))
        return cli_usage_error(rec_usage, "--all-users takes no --user, --history or --json");
    if (cli_get(&a, "out") && !all_users)
        return cli_usage_error(rec_usage, "--out goes with --all-users");
    size_t k;
    if (!cli_get_size(&a, "k", 10, &k))
        return EXIT_USAGE;
    if (k == 0 || k > 100000)
        return cli_usage_error(rec_usage, "-k must be in 1..100000");
    ember_model *m;
    if (ember_model_load(model_path, &m))
        return cli_fail("recommend");
    if (all_users) {
        int r = recommend_all_users(&a, m, k);
        ember_model_free(m);
        return r;
    }
    int rc = EXIT_FAIL;
    titles t = {0};
    uint32_t *hist = NULL, *items = NULL;
    float *scores = NULL;
    size_t nh = 0, n = 0;
    ember_query q = {.user = -1};
    if (user) {
        q.user = ember_idmap_find(ember_model_users(m), user, strlen(user));
        if (q.user < 0) {
            fprintf(stderr, "ember: recommend: user '%s' is unknown to the model (give the "
                            "user's items with --history)\n", user);
            goto done;
        }
    }
    if (history) {
        if (parse_history(m, history, &hist, &nh)) {
            cli_fail("recommend");
            goto done;
        }
        if (nh == 0 && q.user < 0) {
            fprintf(stderr, "ember: recommend: no item of --history is known to the model\n");
            goto done;
        }
        q.hist = hist;
        q.n_hist = nh;
    }
    if (load_titles(&a, m, &t)) {
        cli_fail("recommend");
        goto done;
    }
    k = EMBER_MIN(k, ember_model_n_items(m));
    items = ember_alloc(k ? k : 1, sizeof *items);
    scores = ember_alloc(k ? k : 1, sizeof *scores);
    if (!items || !scores ||
        ember_model_recommend(m, &q, k, !cli_flag(&a, "include-seen"), items, scores, &n)) {
        cli_fail("recommend");
        goto done;
    }
    print_list(m, &t, cli_flag(&a, "json"), user ? "user" : "history", user ? user : history,
               items, scores, n);
    rc = EXIT_OK;
done:
    data_features_free(&t.feats);
    free(hist);
    free(items);
    free(scores);
    ember_model_free(m);
    return rc;
}

int cmd_similar(int argc, char **argv)
{
    cli_args a;
    bool help;
    if (!cli_parse(&a, sim_opts, EMBER_ARRAY_LEN(sim_opts), argc, argv, sim_usage,
                   "Lists the items most similar to an item, by the model's own similarity.",
                   &help))
        return help ? EXIT_OK : EXIT_USAGE;
    const char *model_path = cli_get(&a, "model"), *item = cli_get(&a, "item");
    if (!model_path || !item)
        return cli_usage_error(sim_usage, "--model and --item are required");
    size_t k;
    if (!cli_get_size(&a, "k", 10, &k))
        return EXIT_USAGE;
    if (k == 0 || k > 100000)
        return cli_usage_error(sim_usage, "-k must be in 1..100000");
    ember_model *m;
    if (ember_model_load(model_path, &m))
        return cli_fail("similar");
    int rc = EXIT_FAIL;
    titles t = {0};
    uint32_t *items = NULL;
    float *scores = NULL;
    size_t n = 0;
    int64_t idx = ember_idmap_find(ember_model_items(m), item, strlen(item));
    if (idx < 0) {
        fprintf(stderr, "ember: similar: item '%s' is unknown to the model\n", item);
        goto done;
    }
    if (load_titles(&a, m, &t)) {
        cli_fail("similar");
        goto done;
    }
    k = EMBER_MIN(k, ember_model_n_items(m));
    items = ember_alloc(k ? k : 1, sizeof *items);
    scores = ember_alloc(k ? k : 1, sizeof *scores);
    if (!items || !scores || ember_model_similar(m, (uint32_t)idx, k, items, scores, &n)) {
        cli_fail("similar");
        goto done;
    }
    if (!cli_flag(&a, "json")) {
        const char *title = title_of(&t, (uint32_t)idx);
        printf("items like %s%s%s%s:\n", item, title ? " (" : "", title ? title : "",
               title ? ")" : "");
    }
    print_list(m, &t, cli_flag(&a, "json"), "item", item, items, scores, n);
    rc = EXIT_OK;
done:
    data_features_free(&t.feats);
    free(items);
    free(scores);
    ember_model_free(m);
    return rc;
}
