/*
 * core.h — internal helpers shared by every layer: errors, allocation with
 * overflow checks, the RNG, threads, timing, and small utilities.
 */
#ifndef EMBER_CORE_H
#define EMBER_CORE_H

#include "ember.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sets the thread-local message and returns status, so that a failure is
 * one line: `return ember_fail(EMBER_EFORMAT, "%s:%zu: ...", ...)`. */
int ember_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ember_clear_error(void);

/* malloc/calloc/realloc of n * size with overflow checks; NULL on failure
 * (and the message set). */
void *ember_alloc(size_t n, size_t size);
void *ember_calloc(size_t n, size_t size);
void *ember_realloc(void *p, size_t n, size_t size);
/* 64-byte aligned, for rows that SIMD code reads; free with free(). */
void *ember_alloc_aligned(size_t n, size_t size);
char *ember_strdup(const char *s);

/* Grows *p (an array of elem-sized items with *cap slots) to hold need. */
int ember_grow(void **p, size_t *cap, size_t need, size_t elem);

/* Test hook (SQLite's way): when set > 0, the Nth allocation from now fails. */
void ember_fault_inject_alloc(long nth);

/* xoshiro256** seeded by splitmix64: fast, good, reproducible. */
typedef struct {
    uint64_t s[4];
} ember_rng;
void ember_rng_seed(ember_rng *r, uint64_t seed);
uint64_t ember_rng_next(ember_rng *r);
/* Uniform in [0, n) without modulo bias. */
uint64_t ember_rng_below(ember_rng *r, uint64_t n);
/* Uniform in [0, 1). */
double ember_rng_uniform(ember_rng *r);
double ember_rng_normal(ember_rng *r);
void ember_rng_shuffle_u32(ember_rng *r, uint32_t *a, size_t n);

/* Monotonic seconds. */
double ember_now(void);
/* Threads to use: n > 0 as given, else the OpenMP default. */
int ember_threads(int n);

/* Parsing helpers that reject trailing garbage, overflow and NaN. */
bool ember_parse_f32(const char *s, size_t len, float *out);
bool ember_parse_i64(const char *s, size_t len, int64_t *out);
bool ember_parse_f64(const char *s, size_t len, double *out);

/* 64-bit checksum (XXH3) of a buffer, and incremental. */
uint64_t ember_hash64(const void *p, size_t n);

/* Sorted uint32 arrays (item lists): the qsort comparator (ascending);
 * the first index whose value is >= x; whether x is there; sorting with
 * repeats removed in place (returns how many remain). */
int ember_cmp_u32(const void *a, const void *b);
size_t ember_sort_unique_u32(uint32_t *v, size_t n);
static inline size_t ember_lower_bound_u32(const uint32_t *a, size_t n, uint32_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a[mid] < x)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}
/* (in sampling loops: branch-free, the compare becomes a conditional move) */
static inline bool ember_sorted_has_u32(const uint32_t *a, size_t n, uint32_t x)
{
    if (n == 0)
        return false;
    while (n > 1) {
        size_t half = n / 2;
        a = a[half] <= x ? a + half : a;
        n -= half;
    }
    return *a == x;
}

#define EMBER_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EMBER_MAX(a, b) ((a) > (b) ? (a) : (b))
#define EMBER_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
