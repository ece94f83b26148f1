/*
 * kernels_avx2.c — AVX2+FMA versions of the kernels in kernels.h.
 *
 * This file alone is compiled with -mavx2 -mfma (CMakeLists.txt); nothing
 * here runs unless ember_kernels_have_avx2() said yes, and it exports only
 * a table of function pointers (data, no code that runs on its own).
 *
 * Eight floats a vector.  The dot product keeps four independent
 * accumulators (32 floats an iteration) so that FMA latency (4-5 cycles)
 * does not serialise the loop; tails are scalar.  add_rows adds four rows
 * per pass over y, so y is loaded and stored once per four rows instead of
 * once per row — the loop is bound by memory traffic when y is a full
 * item-score vector.
 */
#include "core/kernels.h"

#include <immintrin.h>

static inline float hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float dot_avx2(const float *a, const float *b, size_t n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void axpy_avx2(float alpha, const float *restrict x, float *restrict y, size_t n)
{
    __m256 va = _mm256_set1_ps(alpha);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256 y0 = _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
        __m256 y1 = _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8));
        _mm256_storeu_ps(y + i, y0);
        _mm256_storeu_ps(y + i + 8, y1);
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++)
        y[i] += alpha * x[i];
}

static void scale_avx2(float *x, float alpha, size_t n)
{
    __m256 va = _mm256_set1_ps(alpha);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(x + i, _mm256_mul_ps(va, _mm256_loadu_ps(x + i)));
        _mm256_storeu_ps(x + i + 8, _mm256_mul_ps(va, _mm256_loadu_ps(x + i + 8)));
    }
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_mul_ps(va, _mm256_loadu_ps(x + i)));
    for (; i < n; i++)
        x[i] *= alpha;
}

/* y += w0 r0 + w1 r1 + w2 r2 + w3 r3, added in that order. */
static void add4_avx2(float *restrict y, size_t n, const float *restrict r0,
                      const float *restrict r1, const float *restrict r2,
                      const float *restrict r3, const float w[4])
{
    __m256 w0 = _mm256_set1_ps(w[0]), w1 = _mm256_set1_ps(w[1]);
    __m256 w2 = _mm256_set1_ps(w[2]), w3 = _mm256_set1_ps(w[3]);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 acc = _mm256_loadu_ps(y + i);
        acc = _mm256_fmadd_ps(w0, _mm256_loadu_ps(r0 + i), acc);
        acc = _mm256_fmadd_ps(w1, _mm256_loadu_ps(r1 + i), acc);
        acc = _mm256_fmadd_ps(w2, _mm256_loadu_ps(r2 + i), acc);
        acc = _mm256_fmadd_ps(w3, _mm256_loadu_ps(r3 + i), acc);
        _mm256_storeu_ps(y + i, acc);
    }
    for (; i < n; i++) {
        float acc = y[i];
        acc += w[0] * r0[i];
        acc += w[1] * r1[i];
        acc += w[2] * r2[i];
        acc += w[3] * r3[i];
        y[i] = acc;
    }
}

static void add_rows_avx2(float *restrict y, size_t n, const float *restrict rows, size_t stride,
                          const uint32_t *idx, const float *w, size_t m)
{
    size_t j = 0;
    for (; j + 4 <= m; j += 4) {
        float wj[4];
        for (int k = 0; k < 4; k++)
            wj[k] = w ? w[j + k] : 1.0f;
        add4_avx2(y, n, rows + (size_t)idx[j] * stride, rows + (size_t)idx[j + 1] * stride,
                  rows + (size_t)idx[j + 2] * stride, rows + (size_t)idx[j + 3] * stride, wj);
    }
    for (; j < m; j++)
        axpy_avx2(w ? w[j] : 1.0f, rows + (size_t)idx[j] * stride, y, n);
}

/* 6 rows x 16 columns: 12 accumulators, two panel vectors and a
 * broadcast in 15 of the 16 registers; per step of k, 2 loads, 6
 * broadcasts and 12 FMAs (FMA-bound, as an sgemm micro-kernel).  Each
 * accumulator sums in order of k with FMA, as the reference. */
static uint32_t mips_tile_avx2(const float *const *x, const float *panel, const float *bias,
                               size_t dim, const float *thr, float *out, uint32_t *mask)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    const float *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3], *x4 = x[4], *x5 = x[5];
    for (size_t k = 0; k < dim; k++) {
        __m256 q0 = _mm256_load_ps(panel + k * 16), q1 = _mm256_load_ps(panel + k * 16 + 8);
        __m256 b = _mm256_broadcast_ss(x0 + k);
        c00 = _mm256_fmadd_ps(b, q0, c00);
        c01 = _mm256_fmadd_ps(b, q1, c01);
        b = _mm256_broadcast_ss(x1 + k);
        c10 = _mm256_fmadd_ps(b, q0, c10);
        c11 = _mm256_fmadd_ps(b, q1, c11);
        b = _mm256_broadcast_ss(x2 + k);
        c20 = _mm256_fmadd_ps(b, q0, c20);
        c21 = _mm256_fmadd_ps(b, q1, c21);
        b = _mm256_broadcast_ss(x3 + k);
        c30 = _mm256_fmadd_ps(b, q0, c30);
        c31 = _mm256_fmadd_ps(b, q1, c31);
        b = _mm256_broadcast_ss(x4 + k);
        c40 = _mm256_fmadd_ps(b, q0, c40);
        c41 = _mm256_fmadd_ps(b, q1, c41);
        b = _mm256_broadcast_ss(x5 + k);
        c50 = _mm256_fmadd_ps(b, q0, c50);
        c51 = _mm256_fmadd_ps(b, q1, c51);
    }
    __m256 b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
    __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    uint32_t any = 0;
    for (int r = 0; r < 6; r++) {
        __m256 s0 = _mm256_add_ps(acc[2 * r], b0), s1 = _mm256_add_ps(acc[2 * r + 1], b1);
        _mm256_storeu_ps(out + r * 16, s0);
        _mm256_storeu_ps(out + r * 16 + 8, s1);
        __m256 t = _mm256_broadcast_ss(thr + r);
        uint32_t m0 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(s0, t, _CMP_GE_OQ));
        uint32_t m1 = (uint32_t)_mm256_movemask_ps(_mm256_cmp_ps(s1, t, _CMP_GE_OQ));
        mask[r] = m0 | m1 << 8;
        any |= mask[r];
    }
    return any;
}

const ember_kernel_table ember_kernels_avx2 = {
    .name = "avx2",
    .dot = dot_avx2,
    .axpy = axpy_avx2,
    .scale = scale_avx2,
    .add_rows = add_rows_avx2,
    .mips_tile = mips_tile_avx2,
};
