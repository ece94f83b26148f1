/* test_mips.c — batched exact top-k by inner product (core/mips.c): every
 * kernel variant's tile against a hand-computed one; whole searches
 * against a brute force in double on tables with flat and with very
 * uneven norms (the pruning), with biases, left-out items, ties, short
 * catalogues and k larger than what is left; bad tables refused. */
#include "testutil.h"

#include "core/core.h"
#include "core/kernels.h"
#include "core/mips.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void fill(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    ember_rng r;
    ember_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)ember_rng_uniform(&r);
}

/* ------------------------------------------------------------- tile */

static void test_tile_matches_hand_computed_scores_and_masks(void **state)
{
    (void)state;
    enum { D = 3 };
    /* panel: item j has q = (j, 1, -1); bias j / 2 */
    float *panel = aligned_alloc(64, D * EMBER_TILE_COLS * sizeof(float));
    float bias[EMBER_TILE_COLS];
    for (int j = 0; j < EMBER_TILE_COLS; j++) {
        panel[0 * EMBER_TILE_COLS + j] = (float)j;
        panel[1 * EMBER_TILE_COLS + j] = 1.0f;
        panel[2 * EMBER_TILE_COLS + j] = -1.0f;
        bias[j] = (float)j / 2.0f;
    }
    float rows[EMBER_TILE_ROWS][D];
    const float *x[EMBER_TILE_ROWS];
    float thr[EMBER_TILE_ROWS];
    for (int r = 0; r < EMBER_TILE_ROWS; r++) {
        rows[r][0] = (float)r; /* score = r j + 1 - 1 + j / 2 = (r + 0.5) j */
        rows[r][1] = 1.0f;
        rows[r][2] = 1.0f;
        x[r] = rows[r];
        thr[r] = 10.0f;
    }
    size_t nv;
    const ember_kernel_table *const *v = ember_kernel_variants(&nv);
    for (size_t t = 0; t < nv; t++) {
        float out[EMBER_TILE_ROWS * EMBER_TILE_COLS];
        uint32_t mask[EMBER_TILE_ROWS], any = v[t]->mips_tile(x, panel, bias, D, thr, out, mask);
        uint32_t want_any = 0;
        for (int r = 0; r < EMBER_TILE_ROWS; r++) {
            uint32_t want = 0;
            for (int j = 0; j < EMBER_TILE_COLS; j++) {
                float s = ((float)r + 0.5f) * (float)j;
                assert_float_equal(out[r * EMBER_TILE_COLS + j], s, 1e-6);
                if (s >= 10.0f)
                    want |= 1u << j;
            }
            assert_int_equal(mask[r], want);
            want_any |= want;
        }
        assert_int_equal(any, want_any);
    }
    /* a threshold above everything: no mask */
    for (int r = 0; r < EMBER_TILE_ROWS; r++)
        thr[r] = INFINITY;
    for (size_t t = 0; t < nv; t++) {
        float out[EMBER_TILE_ROWS * EMBER_TILE_COLS];
        uint32_t mask[EMBER_TILE_ROWS];
        assert_int_equal(v[t]->mips_tile(x, panel, bias, D, thr, out, mask), 0);
    }
    free(panel);
}

static void test_tile_variants_agree_on_random_panels(void **state)
{
    (void)state;
    size_t nv;
    const ember_kernel_table *const *v = ember_kernel_variants(&nv);
    static const size_t dims[] = {1, 7, 64, 129};
    for (size_t d = 0; d < EMBER_ARRAY_LEN(dims); d++) {
        size_t dim = dims[d];
        float *panel = aligned_alloc(64, (dim * EMBER_TILE_COLS * sizeof(float) + 63) / 64 * 64);
        float *xs = malloc(EMBER_TILE_ROWS * dim * sizeof(float));
        float bias[EMBER_TILE_COLS], thr[EMBER_TILE_ROWS] = {0, -1, 1, -INFINITY, 0.5f, 2};
        fill(panel, dim * EMBER_TILE_COLS, 10 + d, -1, 1);
        fill(xs, EMBER_TILE_ROWS * dim, 20 + d, -1, 1);
        fill(bias, EMBER_TILE_COLS, 30 + d, -1, 1);
        const float *x[EMBER_TILE_ROWS];
        for (int r = 0; r < EMBER_TILE_ROWS; r++)
            x[r] = xs + r * dim;
        float ref[EMBER_TILE_ROWS * EMBER_TILE_COLS];
        uint32_t ref_mask[EMBER_TILE_ROWS];
        ember_kernels_generic.mips_tile(x, panel, bias, dim, thr, ref, ref_mask);
        for (size_t t = 0; t < nv; t++) {
            float out[EMBER_TILE_ROWS * EMBER_TILE_COLS];
            uint32_t mask[EMBER_TILE_ROWS];
            v[t]->mips_tile(x, panel, bias, dim, thr, out, mask);
            /* the same FMA order: the same bits */
            assert_memory_equal(out, ref, sizeof out);
            assert_memory_equal(mask, ref_mask, sizeof mask);
        }
        free(panel);
        free(xs);
    }
}

/* ------------------------------------------------------ whole search */

typedef struct {
    double s;
    uint32_t i;
} scored;

static int by_score(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/* Checks mips_topk against a brute force in double: the same number of
 * items; the k-th scores agree; each returned item's true score is at
 * least the true k-th best (within rounding), and no left-out item. */
static void check_search(const float *Q, const float *bias, size_t ni, size_t dim,
                         const float *X, size_t n, size_t k, const uint64_t *eptr,
                         const uint32_t *excl, int threads)
{
    mips_index ix;
    assert_int_equal(mips_build(&ix, Q, dim, bias, ni, dim), EMBER_OK);
    uint32_t *idx = malloc(EMBER_MAX(n * k, 1) * sizeof *idx);
    float *val = malloc(EMBER_MAX(n * k, 1) * sizeof *val);
    uint32_t *count = malloc(EMBER_MAX(n, 1) * sizeof *count);
    mips_opts o = {.k = k, .threads = threads, .excl_ptr = eptr, .excl = excl};
    assert_int_equal(mips_topk(&ix, X, dim, n, &o, idx, val, count), EMBER_OK);
    /* scoring every tile gives the very same lists */
    uint32_t *idx2 = malloc(EMBER_MAX(n * k, 1) * sizeof *idx2);
    float *val2 = malloc(EMBER_MAX(n * k, 1) * sizeof *val2);
    uint32_t *count2 = malloc(EMBER_MAX(n, 1) * sizeof *count2);
    o.exhaustive = true;
    assert_int_equal(mips_topk(&ix, X, dim, n, &o, idx2, val2, count2), EMBER_OK);
    assert_memory_equal(count, count2, n * sizeof *count);
    for (size_t q = 0; q < n; q++) {
        assert_memory_equal(idx + q * k, idx2 + q * k, count[q] * sizeof *idx);
        assert_memory_equal(val + q * k, val2 + q * k, count[q] * sizeof *val);
    }
    free(idx2);
    free(val2);
    free(count2);
    scored *all = malloc(ni * sizeof *all);
    for (size_t q = 0; q < n; q++) {
        size_t m = 0;
        for (size_t i = 0; i < ni; i++) {
            bool out = false;
            if (excl)
                for (uint64_t e = eptr[q]; e < eptr[q + 1]; e++)
                    out |= excl[e] == i;
            if (out)
                continue;
            double s = bias ? bias[i] : 0.0;
            for (size_t d = 0; d < dim; d++)
                s += (double)X[q * dim + d] * Q[i * dim + d];
            all[m++] = (scored){s, (uint32_t)i};
        }
        qsort(all, m, sizeof *all, by_score);
        size_t want = EMBER_MIN(k, m);
        assert_int_equal(count[q], want);
        for (size_t j = 0; j < want; j++) {
            uint32_t it = idx[q * k + j];
            assert_true(it < ni);
            double s = bias ? bias[it] : 0.0;
            for (size_t d = 0; d < dim; d++)
                s += (double)X[q * dim + d] * Q[it * dim + d];
            /* the returned score is the item's, and it belongs in the top */
            assert_float_equal(val[q * k + j], s, 1e-4 * (1 + fabs(s)));
            assert_true(s >= all[want - 1].s - 1e-4 * (1 + fabs(s)));
            assert_float_equal(val[q * k + j], all[j].s, 1e-4 * (1 + fabs(s)));
            if (j > 0) /* best first */
                assert_true(val[q * k + j] <= val[q * k + j - 1]);
            for (uint64_t e = excl ? eptr[q] : 0; excl && e < eptr[q + 1]; e++)
                assert_true(excl[e] != it);
            for (size_t j2 = 0; j2 < j; j2++)
                assert_true(idx[q * k + j2] != it);
        }
    }
    free(all);
    free(idx);
    free(val);
    free(count);
    mips_free(&ix);
}

static void test_search_matches_brute_force_flat_norms(void **state)
{
    (void)state;
    size_t ni = 1003, dim = 37, n = 50;
    float *Q = malloc(ni * dim * sizeof *Q), *X = malloc(n * dim * sizeof *X);
    fill(Q, ni * dim, 1, -1, 1);
    fill(X, n * dim, 2, -1, 1);
    check_search(Q, NULL, ni, dim, X, n, 10, NULL, NULL, 1);
    check_search(Q, NULL, ni, dim, X, n, 10, NULL, NULL, 2);
    check_search(Q, NULL, ni, dim, X, n, 1, NULL, NULL, 2);
    free(Q);
    free(X);
}

static void test_search_matches_brute_force_with_uneven_norms_and_biases(void **state)
{
    (void)state;
    /* item i scaled by 1 / (1 + i / 10): a few long vectors, a long tail
     * of short ones, as popularity gives; the pruning skips the tail */
    size_t ni = 2000, dim = 16, n = 1700; /* more than one block of queries */
    float *Q = malloc(ni * dim * sizeof *Q), *X = malloc(n * dim * sizeof *X);
    float *bias = malloc(ni * sizeof *bias);
    fill(Q, ni * dim, 3, -1, 1);
    fill(X, n * dim, 4, -1, 1);
    fill(bias, ni, 5, -0.5f, 0.5f);
    for (size_t i = 0; i < ni; i++)
        for (size_t d = 0; d < dim; d++)
            Q[i * dim + d] /= 1.0f + (float)((i * 7919) % ni) / 10.0f;
    check_search(Q, bias, ni, dim, X, n, 10, NULL, NULL, 2);
    check_search(Q, NULL, ni, dim, X, n, 5, NULL, NULL, 1);
    free(Q);
    free(X);
    free(bias);
}

static void test_left_out_items_never_returned(void **state)
{
    (void)state;
    size_t ni = 300, dim = 8, n = 20;
    float *Q = malloc(ni * dim * sizeof *Q), *X = malloc(n * dim * sizeof *X);
    fill(Q, ni * dim, 6, -1, 1);
    fill(X, n * dim, 7, -1, 1);
    /* query q leaves out a third of the items (i = q mod 3) */
    uint64_t eptr[21];
    uint32_t *excl = malloc(n * ni * sizeof *excl);
    size_t m = 0;
    for (size_t q = 0; q < n; q++) {
        eptr[q] = m;
        for (size_t i = 0; i < ni; i++)
            if (i % 3 == q % 3)
                excl[m++] = (uint32_t)i;
    }
    eptr[n] = m;
    check_search(Q, NULL, ni, dim, X, n, 10, eptr, excl, 2);
    free(Q);
    free(X);
    free(excl);
}

static void test_k_beyond_what_is_left_and_short_catalogues(void **state)
{
    (void)state;
    size_t dim = 5, n = 7;
    float Q[9 * 5], X[7 * 5];
    fill(Q, sizeof Q / sizeof *Q, 8, -1, 1);
    fill(X, sizeof X / sizeof *X, 9, -1, 1);
    check_search(Q, NULL, 9, dim, X, n, 20, NULL, NULL, 2); /* 9 < 20 */
    check_search(Q, NULL, 1, dim, X, n, 3, NULL, NULL, 1);  /* one item */
    /* everything left out: nothing */
    uint64_t eptr[8];
    uint32_t excl[7 * 9];
    for (size_t q = 0; q <= n; q++)
        eptr[q] = q * 9;
    for (size_t e = 0; e < 7 * 9; e++)
        excl[e] = (uint32_t)(e % 9);
    check_search(Q, NULL, 9, dim, X, n, 4, eptr, excl, 2);
}

static void test_equal_scores_list_the_smaller_item_first(void **state)
{
    (void)state;
    /* items 5, 17 and 40 are the same long vector (the best for x), so
     * they tie; the norm order packs them apart from their index order */
    size_t ni = 64, dim = 4;
    float Q[64 * 4], X[4] = {1, 1, 1, 1};
    fill(Q, sizeof Q / sizeof *Q, 10, -0.1f, 0.1f);
    static const uint32_t same[] = {40, 17, 5};
    for (size_t s = 0; s < 3; s++)
        for (size_t d = 0; d < dim; d++)
            Q[same[s] * dim + d] = 2.0f;
    mips_index ix;
    assert_int_equal(mips_build(&ix, Q, dim, NULL, ni, dim), EMBER_OK);
    uint32_t idx[3], count;
    float val[3];
    mips_opts o = {.k = 3, .threads = 1};
    assert_int_equal(mips_topk(&ix, X, dim, 1, &o, idx, val, &count), EMBER_OK);
    assert_int_equal(count, 3);
    assert_int_equal(idx[0], 5);
    assert_int_equal(idx[1], 17);
    assert_int_equal(idx[2], 40);
    /* k = 2 keeps the two smallest of the tie */
    o.k = 2;
    assert_int_equal(mips_topk(&ix, X, dim, 1, &o, idx, val, &count), EMBER_OK);
    assert_int_equal(idx[0], 5);
    assert_int_equal(idx[1], 17);
    mips_free(&ix);
}

static void test_non_finite_tables_refused(void **state)
{
    (void)state;
    float Q[4 * 2] = {1, 2, 3, 4, NAN, 0, 1, 1};
    mips_index ix;
    assert_int_equal(mips_build(&ix, Q, 2, NULL, 4, 2), EMBER_EINVAL);
    Q[4] = 0;
    float bias[4] = {0, INFINITY, 0, 0};
    assert_int_equal(mips_build(&ix, Q, 2, bias, 4, 2), EMBER_EINVAL);
    assert_int_equal(mips_build(&ix, Q, 2, NULL, 4, 0), EMBER_EINVAL);
    assert_int_equal(mips_build(&ix, Q, 1, NULL, 4, 2), EMBER_EINVAL); /* stride < dim */
    assert_int_equal(mips_build(&ix, Q, 2, NULL, 4, 2), EMBER_OK);
    mips_free(&ix);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tile_matches_hand_computed_scores_and_masks),
        cmocka_unit_test(test_tile_variants_agree_on_random_panels),
        cmocka_unit_test(test_search_matches_brute_force_flat_norms),
        cmocka_unit_test(test_search_matches_brute_force_with_uneven_norms_and_biases),
        cmocka_unit_test(test_left_out_items_never_returned),
        cmocka_unit_test(test_k_beyond_what_is_left_and_short_catalogues),
        cmocka_unit_test(test_equal_scores_list_the_smaller_item_first),
        cmocka_unit_test(test_non_finite_tables_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
