/*
 * test_fuzz_modelfile_replay.c — replays fuzz/corpus/modelfile/ (seeds and
 * every input the fuzzer kept, crashes included) through the same entry
 * point as the libFuzzer target, fuzz_modelfile_body.h, without libFuzzer:
 * so `make check` (Release and sanitizers) keeps every past finding fixed.
 * The seeds named <model>*.model must still load as that model: a change
 * of the file format that leaves the seeds stale fails here, with a note
 * to regenerate them.  Each seed is also replayed with a byte changed at
 * about 64 places (every 16th byte at least), a small deterministic fuzz
 * of the checks behind the checksum.
 */
#include "testutil.h"

#include "../../fuzz/fuzz_modelfile_body.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CORPUS EMBER_SOURCE_DIR "/fuzz/corpus/modelfile"

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

/* Calls fn for every regular file of the corpus, in name order; returns
 * how many. */
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
    fuzz_mf_report rep;
    int bad = fuzz_modelfile_check(data, size, &rep);
    if (bad)
        fail_msg("%s: check %d failed (last error: %s)", name, bad, ember_last_error());
}

static void test_every_corpus_input_passes_the_fuzz_checks(void **state)
{
    (void)state;
    size_t n = walk_corpus(replay_one, NULL);
    assert_true(n >= 4);
}

/* Seeds are named "<model>.model" or "<model>-<variant>.model". */
static void check_seed(const char *name, const uint8_t *data, size_t size, void *ctx)
{
    size_t len = strlen(name);
    if (len < 6 || strcmp(name + len - 6, ".model") != 0)
        return;
    size_t *seen = ctx;
    size_t model_len = strcspn(name, "-.");
    fuzz_mf_report rep;
    assert_int_equal(fuzz_modelfile_check(data, size, &rep), 0);
    if (!rep.model_ok || !rep.container_ok)
        fail_msg("%s no longer loads (%s): regenerate the seeds with "
                 "EMBER_SEED_DIR=fuzz/corpus/modelfile ./build/models_test_model_files",
                 name, ember_last_error());
    assert_int_equal(strlen(rep.model), model_len);
    assert_memory_equal(rep.model, name, model_len);
    const char *const *models = ember_model_names();
    for (size_t i = 0; models[i]; i++)
        if (strcmp(models[i], rep.model) == 0)
            seen[i]++;
}

static void test_seeds_load_as_the_model_they_are_named_for(void **state)
{
    (void)state;
    size_t seen[32] = {0};
    walk_corpus(check_seed, seen);
    const char *const *models = ember_model_names();
    for (size_t i = 0; models[i]; i++)
        if (!seen[i])
            fail_msg("no seed in %s loads as '%s'", CORPUS, models[i]);
}

static void mutate_seed(const char *name, const uint8_t *data, size_t size, void *ctx)
{
    size_t len = strlen(name);
    if (len < 6 || strcmp(name + len - 6, ".model") != 0)
        return;
    size_t *runs = ctx;
    uint8_t *copy = malloc(size);
    assert_non_null(copy);
    static const uint8_t deltas[] = {0x01, 0x80, 0xff};
    size_t stride = size / 64 > 16 ? size / 64 : 16; /* about 64 places per seed */
    for (size_t k = 0; k < size; k += stride) {
        for (size_t d = 0; d < sizeof deltas; d++) {
            memcpy(copy, data, size);
            copy[k] ^= deltas[d];
            fuzz_mf_report rep;
            int bad = fuzz_modelfile_check(copy, size, &rep);
            if (bad)
                fail_msg("%s with byte %zu ^ 0x%02x: check %d failed (last error: %s)", name, k,
                         deltas[d], bad, ember_last_error());
            (*runs)++;
        }
    }
    free(copy);
}

static void test_seeds_with_a_changed_byte_pass_the_fuzz_checks(void **state)
{
    (void)state;
    size_t runs = 0;
    walk_corpus(mutate_seed, &runs);
    assert_true(runs > 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_corpus_input_passes_the_fuzz_checks),
        cmocka_unit_test(test_seeds_load_as_the_model_they_are_named_for),
        cmocka_unit_test(test_seeds_with_a_changed_byte_pass_the_fuzz_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
