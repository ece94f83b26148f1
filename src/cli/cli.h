/*
 * cli.h — what the sub-commands of `ember` share: a small option parser,
 * exit codes, progress lines and output helpers.
 *
 * Exit codes (documented in `ember --help` and docs/cli.md):
 *   0 ok, 1 runtime failure (bad data, bad model file, I/O), 2 usage error.
 */
#ifndef EMBER_CLI_H
#define EMBER_CLI_H

#include "core/core.h"

#include <stdbool.h>
#include <stdio.h>

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* Option table for one sub-command.  Long names only ("--train"), plus an
 * optional one-letter alias ('k' for -k).  A flag takes no value. */
typedef struct {
    const char *name;
    char alias;
    bool is_flag;
    bool repeat;      /* may be given several times (--param) */
    const char *help;
} cli_opt;

#define CLI_MAX_REPEAT 64

typedef struct {
    const cli_opt *opts;
    size_t n_opts;
    const char *value[32];                  /* last value of each option */
    const char *values[32][CLI_MAX_REPEAT]; /* all values of repeatable ones */
    size_t n_values[32];
    bool seen[32];
} cli_args;

/* Parses argv (after the sub-command words).  On error prints the message
 * and the usage line to stderr and returns false; `--help` prints help to
 * stdout and sets *help_shown. */
bool cli_parse(cli_args *a, const cli_opt *opts, size_t n_opts, int argc, char **argv,
               const char *usage, const char *summary, bool *help_shown);
const char *cli_get(const cli_args *a, const char *name);
bool cli_flag(const cli_args *a, const char *name);
/* Number options; a bad number is a usage error (message printed, false). */
bool cli_get_size(const cli_args *a, const char *name, size_t def, size_t *out);
bool cli_get_double(const cli_args *a, const char *name, double def, double *out);

/* Prints "ember: <what>: <last error>" to stderr and returns EXIT_FAIL. */
int cli_fail(const char *what);
int cli_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A progress line on stderr, only when stderr is a terminal. */
void cli_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_progress_done(void);

/* Splits "a,b,c" into at most max pieces (pointers into a copy the caller
 * frees with free(*buf)). */
size_t cli_split_list(const char *s, char **buf, const char **out, size_t max);

/* Options every command that reads interaction files shares: --cols,
 * --format (auto|tsv|csv|udata|dat|inter), --skip-bad.  Fills o; prints a
 * usage error and returns false on a bad --format. */
#define CLI_READ_OPTS                                                                   \
    {"cols", 0, false, false, "columns: user=NAME,item=NAME,rating=NAME,time=NAME"},    \
        {"format", 0, false, false, "auto|tsv|csv|udata|dat|inter (default auto)"},      \
        {"skip-bad", 0, true, false, "skip malformed lines (counted) instead of stopping"}
bool cli_read_opts(const cli_args *a, ember_read_opts *o);
/* Reads path into a dataset with the given maps (grown with new ids);
 * reports skipped lines on stderr.  Returns an ember status. */
int cli_load(const char *path, const ember_read_opts *o, ember_idmap *users, ember_idmap *items,
             ember_dataset **out);

/* Sub-commands. */
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_recommend(int argc, char **argv);
int cmd_similar(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_data_synth(int argc, char **argv);
int cmd_data_stats(int argc, char **argv);
int cmd_data_split(int argc, char **argv);

#endif
