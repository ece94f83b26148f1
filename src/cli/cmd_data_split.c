/*
 * cmd_data_split.c — `ember data split`: read an interaction file, clean it
 * (dedupe, threshold, k-core, in that order), split it and write the parts
 * as TSV files into a directory.
 *
 * Methods (PROTOCOL.md "Data and splits"): ratio (per user, random),
 * loo (per user, by time), temporal (one global time cut), kfold (k random
 * folds of all rows).  `--compat python` reproduces
 * ../shared/bench/make_splits.py byte for byte (ratio, loo, kfold; see
 * src/data/split_compat.h).  Every file is written to a temporary name and
 * renamed, so an interrupted run never leaves a half file.
 */
#include "cli/cli.h"
#include "data/data.h"
#include "data/split_compat.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "ember data split --input FILE --out DIR [--method ratio|loo|temporal|kfold] [--valid 0.1]\n"
    "       [--test 0.1] [--folds 5] [--seed 2020] [--cols ...] [--dedupe] [--min-user N]\n"
    "       [--min-item N] [--threshold R] [--skip-bad] [--compat python]";

static const char summary[] =
    "Splits an interaction file into DIR/train.tsv, valid.tsv, test.tsv (ratio, loo,\n"
    "temporal) or DIR/fold{1..k}.train.tsv and fold{1..k}.test.tsv (kfold).  Each file is\n"
    "TSV with the header \"user item rating timestamp\".\n"
    "\n"
    "methods:\n"
    "  ratio     per user: shuffle, then round(test*n) to test, round(valid*n) to valid\n"
    "            (Python's round: half to even), the rest to train   [default]\n"
    "  loo       per user by time: last to test, second last to valid; users with fewer\n"
    "            than 3 interactions go wholly to train\n"
    "  temporal  one global cut by time: the latest share to test, the share before to valid\n"
    "  kfold     k random folds of all interactions\n"
    "\n"
    "cleaning, before splitting and in this order: --dedupe keeps the latest interaction of\n"
    "each (user, item) pair; --threshold R keeps ratings >= R and sets them to 1; --min-user\n"
    "and --min-item drop sparse users and items until none is left (a k-core).";

static const cli_opt opts[] = {
    {"input", 'i', false, false, "interaction file (TSV/CSV with header, u.data, ratings.dat, .inter)"},
    {"out", 'o', false, false, "output directory (created if missing)"},
    {"method", 'm', false, false, "ratio | loo | temporal | kfold (default ratio)"},
    {"valid", 0, false, false, "valid share for ratio and temporal (default 0.1)"},
    {"test", 0, false, false, "test share for ratio and temporal (default 0.1)"},
    {"folds", 'k', false, false, "number of folds for kfold (default 5)"},
    {"seed", 's', false, false, "random seed for ratio and kfold (default 2020)"},
    {"cols", 0, false, false, "columns of a headed file: user=NAME,item=NAME,rating=NAME,time=NAME"},
    {"dedupe", 0, true, false, "keep only the latest interaction of each (user, item) pair"},
    {"min-user", 0, false, false, "drop users with fewer interactions (repeated with --min-item)"},
    {"min-item", 0, false, false, "drop items with fewer interactions (repeated with --min-user)"},
    {"threshold", 0, false, false, "implicit feedback: keep ratings >= R, as 1"},
    {"skip-bad", 0, true, false, "skip malformed lines (counted) instead of stopping"},
    {"compat", 0, false, false, "python: the exact files of bench/make_splits.py (ratio, loo, kfold)"},
};

typedef enum { M_RATIO, M_LOO, M_TEMPORAL, M_KFOLD } split_method;

/* mkdir -p */
static int make_dirs(const char *path)
{
    char *p = ember_strdup(path);
    if (!p)
        return EMBER_ENOMEM;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            int st = ember_fail(EMBER_EIO, "cannot create directory %s: %s", p, strerror(e));
            free(p);
            return st;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    free(p);
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ember_fail(EMBER_EIO, "%s is not a directory", path);
    return EMBER_OK;
}

static int write_rows(const char *dir, const char *name, const ember_coo *c, const size_t *idx,
                      size_t n, const ember_idmap *users, const ember_idmap *items)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *path = ember_alloc(len, 1);
    if (!path)
        return EMBER_ENOMEM;
    snprintf(path, len, "%s/%s", dir, name);
    ember_coo part;
    int st = data_coo_select(c, idx, n, &part);
    if (st == EMBER_OK)
        st = data_write_tsv(path, &part, users, items);
    ember_coo_free(&part);
    free(path);
    return st;
}

static int write_split3(const char *dir, const ember_coo *c, const data_split3 *s,
                        const ember_idmap *users, const ember_idmap *items)
{
    static const char *const names[3] = {"train.tsv", "valid.tsv", "test.tsv"};
    for (int p = 0; p < 3; p++) {
        int st = write_rows(dir, names[p], c, s->idx[p], s->n[p], users, items);
        if (st)
            return st;
    }
    return EMBER_OK;
}

/* fold{f}.train.tsv and fold{f}.test.tsv for f = 1..k, both in file order;
 * the smallest and largest test fold sizes go to *min_test / *max_test. */
static int write_folds(const char *dir, const ember_coo *c, const uint32_t *fold, size_t k,
                       const ember_idmap *users, const ember_idmap *items, size_t *min_test,
                       size_t *max_test)
{
    size_t *tr = ember_alloc(c->n, sizeof *tr), *te = ember_alloc(c->n, sizeof *te);
    int st = (!tr || !te) ? EMBER_ENOMEM : EMBER_OK;
    *min_test = SIZE_MAX;
    *max_test = 0;
    for (size_t f = 0; f < k && st == EMBER_OK; f++) {
        size_t ntr = 0, nte = 0;
        for (size_t r = 0; r < c->n; r++) {
            if (fold[r] == f)
                te[nte++] = r;
            else
                tr[ntr++] = r;
        }
        *min_test = EMBER_MIN(*min_test, nte);
        *max_test = EMBER_MAX(*max_test, nte);
        char name[64];
        snprintf(name, sizeof name, "fold%zu.train.tsv", f + 1);
        st = write_rows(dir, name, c, tr, ntr, users, items);
        if (st == EMBER_OK) {
            snprintf(name, sizeof name, "fold%zu.test.tsv", f + 1);
            st = write_rows(dir, name, c, te, nte, users, items);
        }
    }
    free(tr);
    free(te);
    return st;
}

/* Users and items that still have interactions (after cleaning). */
static int count_present(const ember_coo *c, size_t n_users, size_t n_items, size_t *users,
                         size_t *items)
{
    uint8_t *su = ember_calloc(n_users + 1, 1), *si = ember_calloc(n_items + 1, 1);
    if (!su || !si) {
        free(su);
        free(si);
        return EMBER_ENOMEM;
    }
    *users = *items = 0;
    for (size_t k = 0; k < c->n; k++) {
        *users += !su[c->user[k]];
        su[c->user[k]] = 1;
        *items += !si[c->item[k]];
        si[c->item[k]] = 1;
    }
    free(su);
    free(si);
    return EMBER_OK;
}

int cmd_data_split(int argc, char **argv)
{
    cli_args a;
    bool help;
    if (!cli_parse(&a, opts, EMBER_ARRAY_LEN(opts), argc, argv, usage, summary, &help))
        return help ? EXIT_OK : EXIT_USAGE;
    const char *input = cli_get(&a, "input"), *out = cli_get(&a, "out");
    if (!input)
        return cli_usage_error(usage, "--input is required");
    if (!out)
        return cli_usage_error(usage, "--out is required");
    const char *mname = cli_get(&a, "method");
    split_method method;
    if (!mname || strcmp(mname, "ratio") == 0)
        method = M_RATIO;
    else if (strcmp(mname, "loo") == 0)
        method = M_LOO;
    else if (strcmp(mname, "temporal") == 0)
        method = M_TEMPORAL;
    else if (strcmp(mname, "kfold") == 0)
        method = M_KFOLD;
    else
        return cli_usage_error(usage, "unknown --method '%s' (ratio, loo, temporal, kfold)", mname);
    if (!mname)
        mname = "ratio";
    const char *compat = cli_get(&a, "compat");
    bool python = false;
    if (compat) {
        if (strcmp(compat, "python") != 0)
            return cli_usage_error(usage, "unknown --compat '%s' (python)", compat);
        if (method == M_TEMPORAL)
            return cli_usage_error(usage, "--compat python has no temporal split");
        python = true;
    }
    /* options that do not apply to the method are mistakes, not no-ops */
    bool uses_fracs = method == M_RATIO || method == M_TEMPORAL;
    bool uses_seed = method == M_RATIO || method == M_KFOLD;
    if (!uses_fracs && (cli_flag(&a, "valid") || cli_flag(&a, "test")))
        return cli_usage_error(usage, "--valid/--test do not apply to --method %s", mname);
    if (!uses_seed && cli_flag(&a, "seed"))
        return cli_usage_error(usage, "--seed does not apply to --method %s", mname);
    if (method != M_KFOLD && cli_flag(&a, "folds"))
        return cli_usage_error(usage, "--folds applies to --method kfold only");
    double vf, tf, threshold;
    size_t folds, seed, min_user, min_item;
    if (!cli_get_double(&a, "valid", 0.1, &vf) || !cli_get_double(&a, "test", 0.1, &tf) ||
        !cli_get_size(&a, "folds", 5, &folds) || !cli_get_size(&a, "seed", 2020, &seed) ||
        !cli_get_size(&a, "min-user", 0, &min_user) || !cli_get_size(&a, "min-item", 0, &min_item) ||
        !cli_get_double(&a, "threshold", 0, &threshold))
        return EXIT_USAGE;
    if (vf < 0 || vf > 1 || tf < 0 || tf > 1 || vf + tf > 1)
        return cli_usage_error(usage, "--valid and --test must be in [0, 1] with a sum <= 1");
    if (folds < 2 || folds > UINT32_MAX)
        return cli_usage_error(usage, "--folds must be at least 2");

    int st;
    ember_idmap *users = ember_idmap_new(), *items = ember_idmap_new();
    ember_coo c = {0};
    ember_read_stats rs;
    ember_read_opts ro;
    ember_read_opts_init(&ro);
    ro.cols = cli_get(&a, "cols");
    ro.on_bad = cli_flag(&a, "skip-bad") ? EMBER_BAD_SKIP : EMBER_BAD_STOP;
    data_split3 s = {0};
    uint32_t *fold = NULL;
    int rc = EXIT_FAIL;
    if (!users || !items) {
        cli_fail("data split");
        goto out;
    }
    if ((st = ember_coo_read(input, &ro, users, items, &c, &rs))) {
        cli_fail("data split");
        goto out;
    }
    if (rs.bad)
        fprintf(stderr, "ember: %s: skipped %zu malformed line%s (first: line %zu: %s)\n", input,
                rs.bad, rs.bad == 1 ? "" : "s", rs.first_bad_line, rs.first_bad);
    size_t n_read = c.n;
    if (cli_flag(&a, "dedupe") && (st = ember_coo_dedupe(&c))) {
        cli_fail("data split: dedupe");
        goto out;
    }
    if (cli_flag(&a, "threshold"))
        ember_coo_threshold(&c, (float)threshold);
    if ((min_user > 1 || min_item > 1) && (st = ember_coo_filter_min(&c, min_user, min_item))) {
        cli_fail("data split: min-user/min-item");
        goto out;
    }
    if (c.n == 0) {
        fprintf(stderr, "ember: data split: %s: no interactions %s\n", input,
                n_read ? "left after cleaning" : "in the file");
        goto out;
    }
    size_t n_users, n_items;
    if ((st = count_present(&c, ember_idmap_size(users), ember_idmap_size(items), &n_users,
                            &n_items))) {
        cli_fail("data split");
        goto out;
    }
    switch (method) {
    case M_RATIO:
        st = python ? data_split_ratio_py(&c, users, vf, tf, seed, &s)
                    : data_split_ratio(&c, vf, tf, seed, &s);
        break;
    case M_LOO:
        st = python ? data_split_leave_one_out_py(&c, users, &s) : data_split_leave_one_out(&c, &s);
        break;
    case M_TEMPORAL:
        st = data_split_temporal(&c, vf, tf, &s);
        break;
    case M_KFOLD:
        st = python ? data_split_kfold_py(&c, users, folds, seed, &fold)
                    : data_split_kfold(&c, folds, seed, &fold);
        break;
    }
    if (st) {
        cli_fail("data split");
        goto out;
    }
    size_t tmin = 0, tmax = 0;
    if ((st = make_dirs(out))) {
        cli_fail("data split");
        goto out;
    }
    st = method == M_KFOLD ? write_folds(out, &c, fold, folds, users, items, &tmin, &tmax)
                           : write_split3(out, &c, &s, users, items);
    if (st) {
        cli_fail("data split");
        goto out;
    }
    printf("%s: %zu interactions (%zu users, %zu items", input, c.n, n_users, n_items);
    if (c.n != n_read)
        printf(", %zu before cleaning", n_read);
    if (method == M_KFOLD)
        printf(") -> %zu folds, test %zu..%zu each", folds, tmin, tmax);
    else
        printf(") -> train %zu, valid %zu, test %zu", s.n[0], s.n[1], s.n[2]);
    printf(" [%s%s", mname, python ? ", python compat" : "");
    if (uses_seed)
        printf(", seed %zu", seed);
    printf("] in %s\n", out);
    rc = EXIT_OK;
out:
    free(fold);
    data_split3_free(&s);
    ember_coo_free(&c);
    ember_idmap_free(users);
    ember_idmap_free(items);
    return rc;
}
