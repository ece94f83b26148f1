/*
 * test_fuzz_http_replay.c — replays fuzz/corpus/http/ (seeds and every
 * input the fuzzer kept) through the same entry point as the libFuzzer
 * target, fuzz_http_body.h, without libFuzzer, so `make check` (Release
 * and sanitizers) keeps every past finding fixed.  The seeds must still
 * get the status they were written for (a route renamed without its seed
 * fails here), and each seed is replayed with bytes changed, cut and
 * doubled at many places: a small deterministic fuzz run.
 */
#include "testutil.h"

#include "../../fuzz/fuzz_http_body.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CORPUS EMBER_SOURCE_DIR "/fuzz/corpus/http"

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    uint8_t *p = malloc(len ? (size_t)len : 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

typedef void (*corpus_fn)(const char *name, const uint8_t *data, size_t size, void *ctx);

static size_t walk_corpus(corpus_fn fn, void *ctx)
{
    struct dirent **names;
    int n = scandir(CORPUS, &names, NULL, alphasort);
    if (n < 0)
        fail_msg("cannot read %s", CORPUS);
    size_t files = 0;
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", CORPUS, names[i]->d_name);
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            size_t size;
            uint8_t *data = read_all(path, &size);
            fn(names[i]->d_name, data, size, ctx);
            free(data);
            files++;
        }
        free(names[i]);
    }
    free(names);
    return files;
}

static void replay_one(const char *name, const uint8_t *data, size_t size, void *ctx)
{
    (void)ctx;
    int status;
    int bad = fuzz_http_check(data, size, &status);
    if (bad)
        fail_msg("%s: check %d failed (status %d)", name, bad, status);
}

static void test_every_corpus_input_passes_the_fuzz_checks(void **state)
{
    (void)state;
    assert_true(walk_corpus(replay_one, NULL) >= 20);
    assert_int_equal(fuzz_http.ready, 1);
}

typedef struct {
    const char *name;
    int status;
} seed_status;

static void test_seeds_get_the_status_they_were_written_for(void **state)
{
    (void)state;
    static const seed_status want[] = {
        {"seed-healthz", 200},          {"seed-metrics", 200},
        {"seed-model", 200},            {"seed-recommend-get", 200},
        {"seed-recommend-post", 200},   {"seed-recommend-anon", 200},
        {"seed-similar", 200},          {"seed-events", 200},
        {"seed-keys-read", 200},        {"seed-keys-write", 200},
        {"seed-keys-admin", 200},       {"seed-keys-missing", 401},
        {"seed-remote-write", 403},     {"seed-405", 405},
        {"seed-404", 404},              {"seed-bad-query", 400},
        {"seed-bad-json", 400},         {"seed-raw-body", 400},
        {"seed-reload-path", 422},      {"seed-reload", 200},
    };
    for (size_t i = 0; i < EMBER_ARRAY_LEN(want); i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", CORPUS, want[i].name);
        size_t size;
        uint8_t *data = read_all(path, &size);
        int status;
        assert_int_equal(fuzz_http_check(data, size, &status), 0);
        free(data);
        if (status != want[i].status)
            fail_msg("%s: status %d, expected %d", want[i].name, status, want[i].status);
    }
}

static void mutate_seed(const char *name, const uint8_t *data, size_t size, void *ctx)
{
    if (strncmp(name, "seed-", 5) != 0)
        return;
    size_t *runs = ctx;
    uint8_t *copy = malloc(2 * size + 1);
    assert_non_null(copy);
    static const uint8_t deltas[] = {0x01, 0x20, 0x80, 0xff};
    for (size_t k = 0; k < size; k++) {
        for (size_t d = 0; d < sizeof deltas; d++) {
            memcpy(copy, data, size);
            copy[k] ^= deltas[d];
            int status, bad = fuzz_http_check(copy, size, &status);
            if (bad)
                fail_msg("%s with byte %zu ^ 0x%02x: check %d failed", name, k, deltas[d], bad);
            (*runs)++;
        }
        /* cut at k, and the first k bytes doubled */
        int status;
        assert_int_equal(fuzz_http_check(data, k, &status), 0);
        memcpy(copy, data, k);
        memcpy(copy + k, data, size);
        assert_int_equal(fuzz_http_check(copy, k + size, &status), 0);
        *runs += 2;
    }
    free(copy);
}

static void test_seeds_with_changed_bytes_pass_the_fuzz_checks(void **state)
{
    (void)state;
    size_t runs = 0;
    walk_corpus(mutate_seed, &runs);
    assert_true(runs > 5000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_corpus_input_passes_the_fuzz_checks),
        cmocka_unit_test(test_seeds_get_the_status_they_were_written_for),
        cmocka_unit_test(test_seeds_with_changed_bytes_pass_the_fuzz_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
