/* test_fuzz_replay.c — every input kept in fuzz/corpus/reader/ (seeds and
 * inputs that once crashed the reader) run again through the fuzz target's
 * own body (fuzz/fuzz_reader_body.h), without libFuzzer, so that the
 * sanitizer build of `make check` replays them. */
#include "testutil.h"

#include "../../fuzz/fuzz_reader_body.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CORPUS EMBER_SOURCE_DIR "/fuzz/corpus/reader"

/* The whole file, or NULL (size 0 gives a valid 1-byte buffer). */
static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        fclose(f);
        return NULL;
    }
    *size = (size_t)sb.st_size;
    uint8_t *buf = malloc(*size + 1);
    if (buf && fread(buf, 1, *size, f) != *size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    return buf;
}

static void test_corpus_inputs_pass_the_fuzz_checks(void **state)
{
    DIR *d = opendir(CORPUS);
    if (!d)
        fail_msg("cannot open %s", CORPUS);
    size_t files = 0, failed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", CORPUS, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
            continue;
        size_t size = 0;
        uint8_t *buf = slurp(path, &size);
        if (!buf)
            fail_msg("cannot read %s", path);
        int bad = fuzz_reader_one(buf, size);
        free(buf);
        files++;
        if (bad) {
            print_error("%s: fuzz check %d failed\n", e->d_name, bad);
            failed++;
        }
    }
    closedir(d);
    assert_true(files >= 10); /* the seeds alone are a dozen */
    assert_int_equal(failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_inputs_pass_the_fuzz_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
