/*
 * kernels.h — the few float kernels hot loops share (dot, axpy, scale, and
 * "add weighted rows"), with a plain C reference and an AVX2+FMA variant
 * chosen once at first use.
 *
 * Use the ember_k_* wrappers; in a loop that calls a kernel per row, hoist
 * the table instead: `const ember_kernel_table *K = ember_kernels();` then
 * `K->dot(a, b, n)`.  Pointers need no alignment.  The reference versions
 * (ember_kernels_generic) are the truth the tests hold the others to; a
 * SIMD variant may differ from them by rounding only (other summation
 * order, fused multiply-add).
 *
 * The choice: EMBER_KERNELS=generic in the environment forces the
 * reference versions; otherwise AVX2+FMA when the CPU has both
 * (__builtin_cpu_supports), else the reference.  Made once, thread-safely,
 * on the first call of ember_kernels().
 */
#ifndef EMBER_KERNELS_H
#define EMBER_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *name; /* "generic", "avx2" */
    /* sum over i < n of a[i] * b[i] */
    float (*dot)(const float *a, const float *b, size_t n);
    /* y[i] += alpha * x[i] for i < n; x and y must not overlap */
    void (*axpy)(float alpha, const float *x, float *y, size_t n);
    /* x[i] *= alpha for i < n */
    void (*scale)(float *x, float alpha, size_t n);
    /* y[i] += sum over j < m of w[j] * rows[idx[j] * stride + i], for
     * i < n: the scores of all items from a user's history in item-KNN or
     * EASE (rows of the similarity matrix).  w NULL means every weight is
     * 1.  Rows are added in order j = 0, 1, ... (the reference adds one
     * row at a time); y must not overlap rows. */
    void (*add_rows)(float *y, size_t n, const float *rows, size_t stride, const uint32_t *idx,
                     const float *w, size_t m);
    /* One tile of a batched inner-product search (core/mips.c): the
     * scores of EMBER_TILE_ROWS queries x[r] (dim floats each) against a
     * packed panel of EMBER_TILE_COLS items (dim x EMBER_TILE_COLS floats,
     * item j of step k at panel[k * EMBER_TILE_COLS + j], 32-byte
     * aligned), plus bias[j]:
     *   out[r * EMBER_TILE_COLS + j] = bias[j] + sum_k x[r][k] panel[k][j]
     * with the products summed in order of k.  mask[r] gets bit j set
     * when out[r][j] >= thr[r]; the return value is the OR of the masks. */
    uint32_t (*mips_tile)(const float *const *x, const float *panel, const float *bias,
                          size_t dim, const float *thr, float *out, uint32_t *mask);
} ember_kernel_table;

#define EMBER_TILE_ROWS 6
#define EMBER_TILE_COLS 16

/* The reference versions (kernels.c). */
extern const ember_kernel_table ember_kernels_generic;
/* AVX2+FMA versions (kernels_avx2.c): call only when
 * ember_kernels_have_avx2() is true. */
extern const ember_kernel_table ember_kernels_avx2;

/* Whether this CPU runs the AVX2+FMA variant. */
bool ember_kernels_have_avx2(void);
/* The table chosen for a value of EMBER_KERNELS (NULL = unset): "generic"
 * gives the reference, anything else the best this CPU runs. */
const ember_kernel_table *ember_kernels_select(const char *env);
/* The table in use: ember_kernels_select(getenv("EMBER_KERNELS")), made
 * on the first call (thread-safe) and the same ever after. */
const ember_kernel_table *ember_kernels(void);
/* Every variant this CPU runs, reference first (for tests and benches). */
const ember_kernel_table *const *ember_kernel_variants(size_t *n);

static inline float ember_k_dot(const float *a, const float *b, size_t n)
{
    return ember_kernels()->dot(a, b, n);
}

static inline void ember_k_axpy(float alpha, const float *x, float *y, size_t n)
{
    ember_kernels()->axpy(alpha, x, y, n);
}

static inline void ember_k_scale(float *x, float alpha, size_t n)
{
    ember_kernels()->scale(x, alpha, n);
}

static inline void ember_k_add_rows(float *y, size_t n, const float *rows, size_t stride,
                                    const uint32_t *idx, const float *w, size_t m)
{
    ember_kernels()->add_rows(y, n, rows, stride, idx, w, m);
}

#endif
