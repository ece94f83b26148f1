/*
 * gemm.c — the matrix products of src/nn, split over the OpenMP threads.
 *
 * OpenBLAS's pthread build keeps its own thread pool; run beside OpenMP
 * on the same cores, OpenMP's workers spin between regions while
 * OpenBLAS's threads wait for a core (on 2 cores a Mult-VAE epoch took
 * 0.17 s that way against 0.14 s with OpenBLAS on one thread).  So the
 * trainer keeps OpenBLAS at one thread and nn_gemm cuts the product
 * itself: each OpenMP thread computes a band of rows (or of columns, when
 * the product is wide and short) of C with a single-threaded sgemm.  The
 * bands are contiguous and fixed by the thread count, so a product is the
 * same bit for bit run to run.
 */
#include "nn/nn_internal.h"

#include <cblas.h>
#include <omp.h>

/* Below this many multiply-adds a product runs on the calling thread. */
#define GEMM_SPLIT_MIN (1L << 18)

void nn_gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float *a,
             int lda, const float *b, int ldb, float beta, float *c, int ldc) {
  /* OpenBLAS on several threads (outside the trainer) splits it itself */
  int nt = omp_in_parallel() || openblas_get_num_threads() > 1
               ? 1
               : omp_get_max_threads();
  long work = (long)m * n * k;
  CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans,
                  TB = tb ? CblasTrans : CblasNoTrans;
  if (nt <= 1 || work < GEMM_SPLIT_MIN || (m < 2 * 16 && n < 2 * 16)) {
    cblas_sgemm(CblasRowMajor, TA, TB, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
    return;
  }
  /* split the longer side of C; bands a multiple of 16 wide (whole
   * kernel tiles) except the last */
  bool by_rows = m >= n;
  int len = by_rows ? m : n;
  int parts = nt;
  if (parts > len / 16)
    parts = len / 16 > 0 ? len / 16 : 1;
#pragma omp parallel for num_threads(parts) schedule(static, 1)
  for (int p = 0; p < parts; p++) {
    int band = (len / parts + 15) / 16 * 16;
    int lo = p * band, hi = p == parts - 1 ? len : lo + band;
    if (hi > len)
      hi = len;
    if (lo >= hi)
      continue;
    if (by_rows) {
      /* rows lo..hi of op(A) and of C */
      const float *ap = ta ? a + lo : a + (size_t)lo * (size_t)lda;
      cblas_sgemm(CblasRowMajor, TA, TB, hi - lo, n, k, alpha, ap, lda, b, ldb,
                  beta, c + (size_t)lo * (size_t)ldc, ldc);
    } else {
      /* columns lo..hi of op(B) and of C */
      const float *bp = tb ? b + (size_t)lo * (size_t)ldb : b + lo;
      cblas_sgemm(CblasRowMajor, TA, TB, m, hi - lo, k, alpha, a, lda, bp, ldb,
                  beta, c + lo, ldc);
    }
  }
}
