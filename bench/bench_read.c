/*
 * bench_read.c — reading and indexing interactions: parse a TSV into
 * coordinate form, then build the CSR/CSC/sequence indexes.  Prints the
 * time of each phase (median of --repeat runs, each in a fresh process
 * state except the page cache) and the peak resident memory.
 *
 *   bench_read [--repeat 3] [--synth USERS,ITEMS,ROWS] [FILE]
 * Without FILE it generates synthetic data (default 100000,200000,5000000)
 * with ember's own generator into /tmp first (not timed).
 */
#include "core/core.h"
#include "data/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int repeat = 3;
    const char *path = NULL;
    size_t nu = 100000, ni = 200000, nr = 5000000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--synth") && i + 1 < argc) {
            if (sscanf(argv[++i], "%zu,%zu,%zu", &nu, &ni, &nr) != 3) {
                fprintf(stderr, "--synth USERS,ITEMS,ROWS\n");
                return 2;
            }
        } else
            path = argv[i];
    }
    if (repeat < 1 || repeat > 50)
        repeat = 3;
    char tmp[256];
    if (!path) {
        snprintf(tmp, sizeof tmp, "/tmp/ember-bench-synth-%zu-%zu-%zu.tsv", nu, ni, nr);
        struct stat sb;
        if (stat(tmp, &sb) != 0) {
            data_synth_opts so;
            data_synth_opts_init(&so);
            so.n_users = nu;
            so.n_items = ni;
            so.n_interactions = nr;
            so.seed = 1;
            double t = ember_now();
            if (data_synth_write(&so, tmp, NULL)) {
                fprintf(stderr, "bench_read: %s\n", ember_last_error());
                return 1;
            }
            printf("generated %s in %.2f s\n", tmp, ember_now() - t);
        }
        path = tmp;
    }
    double *t_parse = calloc((size_t)repeat, sizeof *t_parse);
    double *t_index = calloc((size_t)repeat, sizeof *t_index);
    size_t rows = 0, users = 0, items = 0;
    for (int r = 0; r < repeat; r++) {
        ember_idmap *u = ember_idmap_new(), *it = ember_idmap_new();
        ember_coo c = {0};
        double t0 = ember_now();
        if (ember_coo_read(path, NULL, u, it, &c, NULL)) {
            fprintf(stderr, "bench_read: %s\n", ember_last_error());
            return 1;
        }
        double t1 = ember_now();
        ember_dataset *d;
        if (ember_dataset_build(&c, u, it, &d)) {
            fprintf(stderr, "bench_read: %s\n", ember_last_error());
            return 1;
        }
        double t2 = ember_now();
        t_parse[r] = t1 - t0;
        t_index[r] = t2 - t1;
        rows = c.n;
        users = ember_dataset_n_users(d);
        items = ember_dataset_n_items(d);
        ember_coo_free(&c);
        ember_dataset_free(d);
        ember_idmap_free(u);
        ember_idmap_free(it);
    }
    qsort(t_parse, (size_t)repeat, sizeof *t_parse, cmp_double);
    qsort(t_index, (size_t)repeat, sizeof *t_index, cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct stat sb;
    double mb = stat(path, &sb) == 0 ? (double)sb.st_size / 1e6 : 0;
    printf("%s: %zu rows, %zu users, %zu items, %.0f MB, %d threads\n", path, rows, users, items, mb,
           ember_threads(0));
    printf("parse median %.3f s (%.1f M rows/s) | index median %.3f s | total %.3f s | peak RSS "
           "%.0f MB  [%d runs]\n",
           t_parse[repeat / 2], (double)rows / t_parse[repeat / 2] / 1e6, t_index[repeat / 2],
           t_parse[repeat / 2] + t_index[repeat / 2], (double)ru.ru_maxrss / 1024.0, repeat);
    free(t_parse);
    free(t_index);
    return 0;
}
