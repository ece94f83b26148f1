/* testutil.h — helpers every cmocka test program shares. */
#ifndef EMBER_TESTUTIL_H
#define EMBER_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>

/* Path of a file under ../shared/data (e.g. "ml-100k/splits/general/train.tsv"),
 * or NULL when the data is absent; the caller then skips with a message. */
const char *test_data_path(const char *rel);
/* Skips the current test with a message when the ML-100K data is absent. */
#define TEST_REQUIRE_DATA(var, rel)                                              \
    const char *var = test_data_path(rel);                                       \
    if (!var) {                                                                  \
        print_message("skipped: %s not found (../shared/data absent)\n", rel); \
        skip();                                                                  \
    }

/* A fresh temporary directory for this test program (removed at exit). */
const char *test_tmpdir(void);
/* Writes text to tmpdir/name and returns the full path (static buffer ring). */
const char *test_write_file(const char *name, const char *text);
/* Whether the build has sanitizers (accuracy floors stay, timings do not). */
bool test_is_sanitized(void);

/* A synthetic interaction set (data_synth: users x items, rows, seed; the
 * generator's other defaults) loaded with fresh id maps; NULL on failure. */
struct ember_dataset *test_synth_dataset(size_t users, size_t items, size_t rows, uint64_t seed);
/* A model of that name and parameters fitted on d (the test fails on an
 * error). */
struct ember_model *test_fit(const char *name, const char *const *params,
                             const struct ember_dataset *d, int threads, uint64_t seed);

#endif
