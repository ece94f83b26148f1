/* testutil.c — shared test helpers: data paths, temp files, synthetic
 * data and fitted models. */
#include "testutil.h"

#include "data/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *test_data_path(const char *rel)
{
    static char buf[8][1024];
    static int next;
    char *p = buf[next++ % 8];
    const char *env = getenv("EMBER_DATA_DIR");
    snprintf(p, 1024, "%s/%s", env ? env : EMBER_DATA_DIR, rel);
    struct stat st;
    return stat(p, &st) == 0 ? p : NULL;
}

static char tmpdir[256];

static void cleanup(void)
{
    if (tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmpdir);
    }
}

const char *test_tmpdir(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/ember-test-XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(cleanup);
    }
    return tmpdir;
}

const char *test_write_file(const char *name, const char *text)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return p;
}

bool test_is_sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return true;
#else
    return false;
#endif
#else
    return false;
#endif
}

ember_dataset *test_synth_dataset(size_t users, size_t items, size_t rows, uint64_t seed)
{
    data_synth_opts o;
    data_synth_opts_init(&o);
    o.n_users = users;
    o.n_items = items;
    o.n_interactions = rows;
    o.seed = seed;
    char name[96];
    snprintf(name, sizeof name, "synth-%zu-%zu-%zu-%llu.tsv", users, items, rows,
             (unsigned long long)seed);
    const char *path = test_write_file(name, "");
    ember_dataset *d = NULL;
    if (data_synth_write(&o, path, NULL) || ember_dataset_load(path, NULL, NULL, NULL, &d, NULL))
        return NULL;
    return d;
}

ember_model *test_fit(const char *name, const char *const *params, const ember_dataset *d,
                      int threads, uint64_t seed)
{
    ember_model *m;
    assert_int_equal(ember_model_new(name, params, &m), EMBER_OK);
    ember_fit_opts fo = {.threads = threads, .seed = seed};
    int st = ember_model_fit(m, d, NULL, &fo);
    if (st)
        print_message("%s: %s\n", name, ember_last_error());
    assert_int_equal(st, EMBER_OK);
    return m;
}
