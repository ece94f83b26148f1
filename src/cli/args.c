/*
 * args.c — the option parser and output helpers every sub-command uses.
 *
 * Accepts "--name value", "--name=value", "-k value" and flags; an unknown
 * option, a missing value or a repeated non-repeatable option is a usage
 * error (exit 2) with the usage line, never a crash.
 */
#include "cli/cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void print_help(FILE *f, const cli_opt *opts, size_t n, const char *usage,
                       const char *summary)
{
    fprintf(f, "usage: %s\n\n%s\n\noptions:\n", usage, summary);
    for (size_t i = 0; i < n; i++) {
        char left[64];
        if (opts[i].alias)
            snprintf(left, sizeof left, "-%c, --%s%s", opts[i].alias, opts[i].name,
                     opts[i].is_flag ? "" : " V");
        else
            snprintf(left, sizeof left, "    --%s%s", opts[i].name, opts[i].is_flag ? "" : " V");
        fprintf(f, "  %-24s %s\n", left, opts[i].help);
    }
    fprintf(f, "  %-24s %s\n", "-h, --help", "show this help");
    fprintf(f, "\nexit codes: 0 ok, 1 failure (bad data, bad model file, i/o), 2 usage error\n");
}

bool cli_parse(cli_args *a, const cli_opt *opts, size_t n_opts, int argc, char **argv,
               const char *usage, const char *summary, bool *help_shown)
{
    memset(a, 0, sizeof *a);
    a->opts = opts;
    a->n_opts = n_opts;
    *help_shown = false;
    if (n_opts > 32) {
        fprintf(stderr, "ember: internal error: too many options\n");
        return false;
    }
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            print_help(stdout, opts, n_opts, usage, summary);
            *help_shown = true;
            return false;
        }
        size_t which = n_opts;
        const char *inline_val = NULL;
        if (arg[0] == '-' && arg[1] == '-' && arg[2]) {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            for (size_t k = 0; k < n_opts; k++)
                if (strlen(opts[k].name) == len && strncmp(opts[k].name, name, len) == 0)
                    which = k;
            if (eq)
                inline_val = eq + 1;
        } else if (arg[0] == '-' && arg[1] && !arg[2]) {
            for (size_t k = 0; k < n_opts; k++)
                if (opts[k].alias == arg[1])
                    which = k;
        } else {
            cli_usage_error(usage, "unexpected argument '%s'", arg);
            return false;
        }
        if (which == n_opts) {
            cli_usage_error(usage, "unknown option '%s'", arg);
            return false;
        }
        const cli_opt *o = &opts[which];
        const char *val = "1";
        if (o->is_flag) {
            if (inline_val) {
                cli_usage_error(usage, "option --%s takes no value", o->name);
                return false;
            }
        } else if (inline_val) {
            val = inline_val;
        } else {
            if (i + 1 >= argc) {
                cli_usage_error(usage, "option --%s needs a value", o->name);
                return false;
            }
            val = argv[++i];
        }
        if (a->seen[which] && !o->repeat) {
            cli_usage_error(usage, "option --%s given twice", o->name);
            return false;
        }
        if (o->repeat) {
            if (a->n_values[which] >= CLI_MAX_REPEAT) {
                cli_usage_error(usage, "option --%s given too often", o->name);
                return false;
            }
            a->values[which][a->n_values[which]++] = val;
        }
        a->seen[which] = true;
        a->value[which] = val;
    }
    return true;
}

static size_t find(const cli_args *a, const char *name)
{
    for (size_t k = 0; k < a->n_opts; k++)
        if (strcmp(a->opts[k].name, name) == 0)
            return k;
    return a->n_opts;
}

const char *cli_get(const cli_args *a, const char *name)
{
    size_t k = find(a, name);
    return k < a->n_opts ? a->value[k] : NULL;
}

bool cli_flag(const cli_args *a, const char *name)
{
    size_t k = find(a, name);
    return k < a->n_opts && a->seen[k];
}

bool cli_get_size(const cli_args *a, const char *name, size_t def, size_t *out)
{
    const char *v = cli_get(a, name);
    if (!v) {
        *out = def;
        return true;
    }
    int64_t x;
    if (!ember_parse_i64(v, strlen(v), &x) || x < 0) {
        fprintf(stderr, "ember: --%s: '%s' is not a non-negative whole number\n", name, v);
        return false;
    }
    *out = (size_t)x;
    return true;
}

bool cli_get_double(const cli_args *a, const char *name, double def, double *out)
{
    const char *v = cli_get(a, name);
    if (!v) {
        *out = def;
        return true;
    }
    if (!ember_parse_f64(v, strlen(v), out)) {
        fprintf(stderr, "ember: --%s: '%s' is not a number\n", name, v);
        return false;
    }
    return true;
}

int cli_fail(const char *what)
{
    cli_progress_done();
    const char *msg = ember_last_error();
    fprintf(stderr, "ember: %s: %s\n", what, *msg ? msg : "failed");
    return EXIT_FAIL;
}

int cli_usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ember: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: %s\n(try --help)\n", usage);
    return EXIT_USAGE;
}

static bool progress_shown;

void cli_progress(const char *fmt, ...)
{
    if (!isatty(STDERR_FILENO))
        return;
    va_list ap;
    fprintf(stderr, "\r\033[K");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
    progress_shown = true;
}

void cli_progress_done(void)
{
    if (progress_shown) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
        progress_shown = false;
    }
}

size_t cli_split_list(const char *s, char **buf, const char **out, size_t max)
{
    *buf = ember_strdup(s ? s : "");
    if (!*buf)
        return 0;
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(*buf, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save))
        out[n++] = tok;
    return n;
}

bool cli_read_opts(const cli_args *a, ember_read_opts *o)
{
    ember_read_opts_init(o);
    o->cols = cli_get(a, "cols");
    o->on_bad = cli_flag(a, "skip-bad") ? EMBER_BAD_SKIP : EMBER_BAD_STOP;
    const char *f = cli_get(a, "format");
    if (!f || !strcmp(f, "auto"))
        o->format = EMBER_FMT_AUTO;
    else if (!strcmp(f, "tsv"))
        o->format = EMBER_FMT_TSV;
    else if (!strcmp(f, "csv"))
        o->format = EMBER_FMT_CSV;
    else if (!strcmp(f, "udata"))
        o->format = EMBER_FMT_UDATA;
    else if (!strcmp(f, "dat"))
        o->format = EMBER_FMT_ML_DAT;
    else if (!strcmp(f, "inter"))
        o->format = EMBER_FMT_ATOMIC;
    else {
        fprintf(stderr, "ember: --format: '%s' is not one of auto, tsv, csv, udata, dat, inter\n",
                f);
        return false;
    }
    return true;
}

int cli_load(const char *path, const ember_read_opts *o, ember_idmap *users, ember_idmap *items,
             ember_dataset **out)
{
    ember_read_stats st;
    cli_progress("reading %s", path);
    int rc = ember_dataset_load(path, o, users, items, out, &st);
    cli_progress_done();
    if (rc == EMBER_OK && st.bad)
        fprintf(stderr, "ember: %s: skipped %zu malformed line%s (first: line %zu: %s)\n", path,
                st.bad, st.bad == 1 ? "" : "s", st.first_bad_line, st.first_bad);
    return rc;
}
