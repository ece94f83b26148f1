/*
 * kernels.c — reference float kernels and the run-time choice of variant.
 *
 * The reference versions are plain loops, written for clarity: they are
 * the truth the SIMD variants (kernels_avx2.c) are tested against, and what
 * runs on a CPU without AVX2+FMA or under EMBER_KERNELS=generic.  The dot
 * product sums in double, so it is the accurate one.
 *
 * The choice is made once (pthread_once) and kept in a pointer to a table
 * of function pointers, as ggml and OpenBLAS do; only the table is
 * referenced from here, so no AVX2 instruction runs on a CPU without it.
 */
#include "core/kernels.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static float dot_ref(const float *a, const float *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return (float)s;
}

static void axpy_ref(float alpha, const float *restrict x, float *restrict y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

static void scale_ref(float *x, float alpha, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] *= alpha;
}

static void add_rows_ref(float *restrict y, size_t n, const float *restrict rows, size_t stride,
                         const uint32_t *idx, const float *w, size_t m)
{
    for (size_t j = 0; j < m; j++)
        axpy_ref(w ? w[j] : 1.0f, rows + (size_t)idx[j] * stride, y, n);
}

static uint32_t mips_tile_ref(const float *const *x, const float *panel, const float *bias,
                              size_t dim, const float *thr, float *out, uint32_t *mask)
{
    uint32_t any = 0;
    for (size_t r = 0; r < EMBER_TILE_ROWS; r++) {
        float acc[EMBER_TILE_COLS];
        for (size_t j = 0; j < EMBER_TILE_COLS; j++)
            acc[j] = 0.0f;
        for (size_t k = 0; k < dim; k++)
            for (size_t j = 0; j < EMBER_TILE_COLS; j++)
                acc[j] = fmaf(x[r][k], panel[k * EMBER_TILE_COLS + j], acc[j]);
        uint32_t mk = 0;
        for (size_t j = 0; j < EMBER_TILE_COLS; j++) {
            float v = acc[j] + bias[j];
            out[r * EMBER_TILE_COLS + j] = v;
            if (v >= thr[r])
                mk |= 1u << j;
        }
        mask[r] = mk;
        any |= mk;
    }
    return any;
}

const ember_kernel_table ember_kernels_generic = {
    .name = "generic",
    .dot = dot_ref,
    .axpy = axpy_ref,
    .scale = scale_ref,
    .add_rows = add_rows_ref,
    .mips_tile = mips_tile_ref,
};

bool ember_kernels_have_avx2(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

const ember_kernel_table *ember_kernels_select(const char *env)
{
    if (env && strcmp(env, "generic") == 0)
        return &ember_kernels_generic;
    return ember_kernels_have_avx2() ? &ember_kernels_avx2 : &ember_kernels_generic;
}

static const ember_kernel_table *chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    __atomic_store_n(&chosen, ember_kernels_select(getenv("EMBER_KERNELS")), __ATOMIC_RELEASE);
}

const ember_kernel_table *ember_kernels(void)
{
    const ember_kernel_table *t = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (t)
        return t;
    pthread_once(&chosen_once, choose);
    return __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
}

const ember_kernel_table *const *ember_kernel_variants(size_t *n)
{
    static const ember_kernel_table *const all[] = {&ember_kernels_generic, &ember_kernels_avx2};
    *n = ember_kernels_have_avx2() ? 2 : 1;
    return all;
}
