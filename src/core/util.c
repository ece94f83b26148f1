/*
 * util.c — allocation with overflow checks (and a fault-injection hook for
 * tests), the RNG, timing, thread counts, strict number parsing, hashing.
 *
 * RNG: xoshiro256** (Blackman & Vigna 2018) seeded through splitmix64.
 */
#include "core/core.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

static long fault_countdown; /* 0 = off; tests only, single-threaded */

void ember_fault_inject_alloc(long nth)
{
    fault_countdown = nth;
}

static bool fault_hit(void)
{
    if (fault_countdown > 0 && --fault_countdown == 0) {
        ember_fail(EMBER_ENOMEM, "out of memory (injected)");
        return true;
    }
    return false;
}

static bool mul_overflows(size_t n, size_t size, size_t *bytes)
{
    if (size && n > SIZE_MAX / size) {
        ember_fail(EMBER_ENOMEM, "allocation of %zu x %zu bytes overflows", n, size);
        return true;
    }
    *bytes = n * size;
    return false;
}

void *ember_alloc(size_t n, size_t size)
{
    size_t bytes;
    if (mul_overflows(n, size, &bytes) || fault_hit())
        return NULL;
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        ember_fail(EMBER_ENOMEM, "out of memory (%zu bytes)", bytes);
    return p;
}

void *ember_calloc(size_t n, size_t size)
{
    size_t bytes;
    if (mul_overflows(n, size, &bytes) || fault_hit())
        return NULL;
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p)
        ember_fail(EMBER_ENOMEM, "out of memory (%zu bytes)", bytes);
    return p;
}

void *ember_realloc(void *old, size_t n, size_t size)
{
    size_t bytes;
    if (mul_overflows(n, size, &bytes) || fault_hit())
        return NULL;
    void *p = realloc(old, bytes ? bytes : 1);
    if (!p)
        ember_fail(EMBER_ENOMEM, "out of memory (%zu bytes)", bytes);
    return p;
}

void *ember_alloc_aligned(size_t n, size_t size)
{
    size_t bytes;
    if (mul_overflows(n, size, &bytes) || fault_hit())
        return NULL;
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        ember_fail(EMBER_ENOMEM, "out of memory (%zu bytes aligned)", bytes);
        return NULL;
    }
    return p;
}

char *ember_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = ember_alloc(n, 1);
    if (p)
        memcpy(p, s, n);
    return p;
}

int ember_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return EMBER_OK;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2)
            return ember_fail(EMBER_ENOMEM, "array too large");
        c *= 2;
    }
    void *q = ember_realloc(*p, c, elem);
    if (!q)
        return EMBER_ENOMEM;
    *p = q;
    *cap = c;
    return EMBER_OK;
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ember_rng_seed(ember_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t ember_rng_next(ember_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint64_t ember_rng_below(ember_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
        x = ember_rng_next(r);
    while (x >= limit);
    return x % n;
}

double ember_rng_uniform(ember_rng *r)
{
    return (double)(ember_rng_next(r) >> 11) * 0x1.0p-53;
}

double ember_rng_normal(ember_rng *r)
{
    double u1 = ember_rng_uniform(r), u2 = ember_rng_uniform(r);
    if (u1 < 1e-300)
        u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void ember_rng_shuffle_u32(ember_rng *r, uint32_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)ember_rng_below(r, i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

double ember_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int ember_threads(int n)
{
    return n > 0 ? n : omp_get_max_threads();
}

bool ember_parse_i64(const char *s, size_t len, int64_t *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (errno || end != buf + len)
        return false;
    *out = v;
    return true;
}

bool ember_parse_f64(const char *s, size_t len, double *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (errno == ERANGE || end != buf + len || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool ember_parse_f32(const char *s, size_t len, float *out)
{
    double v;
    if (!ember_parse_f64(s, len, &v) || fabs(v) > 3.0e38)
        return false;
    *out = (float)v;
    return true;
}

uint64_t ember_hash64(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

int ember_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

size_t ember_sort_unique_u32(uint32_t *v, size_t n)
{
    qsort(v, n, sizeof *v, ember_cmp_u32);
    size_t w = 0;
    for (size_t k = 0; k < n; k++)
        if (w == 0 || v[k] != v[w - 1])
            v[w++] = v[k];
    return w;
}
