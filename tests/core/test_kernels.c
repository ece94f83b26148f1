/* test_kernels.c — every kernel variant against the reference (kernels.c),
 * on hand-computed cases and on odd sizes with unaligned pointers; and the
 * run-time choice (EMBER_KERNELS). */
#include "testutil.h"

#include "core/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

static const size_t sizes[] = {0, 1, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 1000};
static const size_t offsets[] = {0, 1, 3}; /* floats: 0 keeps 64-byte alignment */

static const ember_kernel_table *const *variants(size_t *n)
{
    return ember_kernel_variants(n);
}

/* Deterministic values in [-1, 1). */
static void fill(float *x, size_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((double)(s >> 11) * 0x1.0p-52 - 1.0);
    }
}

static float *buffer(size_t n)
{
    float *p = aligned_alloc(64, ((n + 16) * sizeof(float) + 63) / 64 * 64);
    assert_non_null(p);
    return p;
}

static void test_variant_list_starts_with_reference(void **state)
{
    size_t n;
    const ember_kernel_table *const *v = variants(&n);
    assert_true(n >= 1);
    assert_ptr_equal(v[0], &ember_kernels_generic);
    assert_string_equal(v[0]->name, "generic");
    assert_int_equal(n, ember_kernels_have_avx2() ? 2 : 1);
    if (n == 2)
        assert_string_equal(v[1]->name, "avx2");
}

static void test_select_generic_forces_reference(void **state)
{
    assert_ptr_equal(ember_kernels_select("generic"), &ember_kernels_generic);
}

static void test_select_default_is_best_for_cpu(void **state)
{
    const ember_kernel_table *best =
        ember_kernels_have_avx2() ? &ember_kernels_avx2 : &ember_kernels_generic;
    assert_ptr_equal(ember_kernels_select(NULL), best);
    assert_ptr_equal(ember_kernels_select("something-else"), best);
}

static void test_choice_is_made_once(void **state)
{
    const ember_kernel_table *t = ember_kernels();
    assert_non_null(t);
    assert_ptr_equal(ember_kernels(), t);
    assert_ptr_equal(t, ember_kernels_select(getenv("EMBER_KERNELS")));
}

/* Runs this program again with EMBER_KERNELS set and reads the name of the
 * table it chose (main prints it for "--print-kernels"). */
static void run_self(const char *env, char *out, size_t cap)
{
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        if (env)
            setenv("EMBER_KERNELS", env, 1);
        else
            unsetenv("EMBER_KERNELS");
        execl("/proc/self/exe", "test_kernels", "--print-kernels", (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], out, cap - 1);
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_true(got > 0);
    out[got] = '\0';
}

static void test_env_generic_forces_reference_at_first_use(void **state)
{
    char name[64];
    run_self("generic", name, sizeof name);
    assert_string_equal(name, "generic");
    run_self(NULL, name, sizeof name);
    assert_string_equal(name, ember_kernels_have_avx2() ? "avx2" : "generic");
}

static void test_dot_hand_example(void **state)
{
    size_t nv;
    const ember_kernel_table *const *v = variants(&nv);
    /* 1*4 + 2*5 + 3*6 = 32; 40 ones dot 40 halves = 20 */
    float a[40], b[40];
    for (size_t i = 0; i < 40; i++)
        a[i] = 1.0f, b[i] = 0.5f;
    const float x[3] = {1, 2, 3}, y[3] = {4, 5, 6};
    for (size_t k = 0; k < nv; k++) {
        assert_float_equal(v[k]->dot(x, y, 3), 32.0f, 0.0f);
        assert_float_equal(v[k]->dot(a, b, 40), 20.0f, 0.0f);
        assert_float_equal(v[k]->dot(a, b, 0), 0.0f, 0.0f);
    }
}

static void test_axpy_scale_add_rows_hand_example(void **state)
{
    size_t nv;
    const ember_kernel_table *const *v = variants(&nv);
    for (size_t k = 0; k < nv; k++) {
        float y[3] = {1, 1, 1};
        const float x[3] = {1, 2, 3};
        v[k]->axpy(2.0f, x, y, 3); /* 3 5 7 */
        assert_float_equal(y[0], 3.0f, 0.0f);
        assert_float_equal(y[1], 5.0f, 0.0f);
        assert_float_equal(y[2], 7.0f, 0.0f);
        v[k]->scale(y, -0.5f, 3); /* -1.5 -2.5 -3.5 */
        assert_float_equal(y[0], -1.5f, 0.0f);
        assert_float_equal(y[2], -3.5f, 0.0f);
        /* rows (stride 3, n 2): r0 = 1 2, r1 = 10 20, r2 = 100 200;
         * y = 0 + 2 r2 - 1 r0 + 1 r1 (idx 2 0 1) = 209 418 */
        const float rows[9] = {1, 2, -9, 10, 20, -9, 100, 200, -9};
        const uint32_t idx[3] = {2, 0, 1};
        const float w[3] = {2, -1, 1};
        float z[3] = {0, 0, 42};
        v[k]->add_rows(z, 2, rows, 3, idx, w, 3);
        assert_float_equal(z[0], 209.0f, 0.0f);
        assert_float_equal(z[1], 418.0f, 0.0f);
        assert_float_equal(z[2], 42.0f, 0.0f); /* past n: untouched */
        /* w NULL: every weight 1 -> 111 222 */
        float u[2] = {0, 0};
        v[k]->add_rows(u, 2, rows, 3, idx, NULL, 3);
        assert_float_equal(u[0], 111.0f, 0.0f);
        assert_float_equal(u[1], 222.0f, 0.0f);
    }
}

static void test_dot_matches_reference_on_odd_sizes_unaligned(void **state)
{
    size_t nv;
    const ember_kernel_table *const *v = variants(&nv);
    float *a = buffer(1004), *b = buffer(1004);
    fill(a, 1004, 1);
    fill(b, 1004, 2);
    for (size_t s = 0; s < LEN(sizes); s++)
        for (size_t o = 0; o < LEN(offsets); o++) {
            size_t n = sizes[s];
            const float *x = a + offsets[o], *y = b + (offsets[o] * 2) % 5;
            float ref = ember_kernels_generic.dot(x, y, n);
            double mag = 0;
            for (size_t i = 0; i < n; i++)
                mag += fabs((double)x[i] * y[i]);
            for (size_t k = 1; k < nv; k++) {
                float got = v[k]->dot(x, y, n);
                if (fabs((double)got - ref) > 1e-5 * mag + 1e-30)
                    fail_msg("%s dot n=%zu off=%zu: %.9g vs %.9g", v[k]->name, n, offsets[o],
                             got, ref);
            }
        }
    free(a);
    free(b);
}

static void test_axpy_matches_reference_and_keeps_tail(void **state)
{
    size_t nv;
    const ember_kernel_table *const *v = variants(&nv);
    float *x = buffer(1004), *y0 = buffer(1016), *yr = buffer(1016), *yk = buffer(1016);
    fill(x, 1004, 3);
    fill(y0, 1016, 4);
    for (size_t s = 0; s < LEN(sizes); s++)
        for (size_t o = 0; o < LEN(offsets); o++) {
            size_t n = sizes[s], off = offsets[o];
            memcpy(yr, y0, 1016 * sizeof *yr);
            ember_kernels_generic.axpy(-1.75f, x + off, yr + 2 * off, n);
            for (size_t k = 1; k < nv; k++) {
                memcpy(yk, y0, 1016 * sizeof *yk);
                v[k]->axpy(-1.75f, x + off, yk + 2 * off, n);
                for (size_t i = 0; i < 1016; i++) {
                    bool inside = i >= 2 * off && i < 2 * off + n;
                    double tol = inside ? 1e-6 * (fabs(y0[i]) + 1.75 * fabs(x[i - off])) : 0;
                    if (fabs((double)yk[i] - yr[i]) > tol)
                        fail_msg("%s axpy n=%zu off=%zu at %zu: %.9g vs %.9g", v[k]->name, n,
                                 off, i, yk[i], yr[i]);
                }
            }
        }
    free(x);
    free(y0);
    free(yr);
    free(yk);
}

static void test_scale_matches_reference_exactly(void **state)
{
    size_t nv;
    const ember_kernel_table *const *v = variants(&nv);
    float *x0 = buffer(1016), *xr = buffer(1016), *xk = buffer(1016);
    fill(x0, 1016, 5);
    for (size_t s = 0; s < LEN(sizes); s++)
        for (size_t o = 0; o < LEN(offsets); o++) {
            size_t n = sizes[s], off = offsets[o];
            memcpy(xr, x0, 1016 * sizeof *xr);
            ember_kernels_generic.scale(xr + off, 0.3f, n);
            for (size_t k = 1; k < nv; k++) {
                memcpy(xk, x0, 1016 * sizeof *xk);
                v[k]->scale(xk + off, 0.3f, n);
                /* one multiply per element either way: bit-identical */
                if (memcmp(xk, xr, 1016 * sizeof *xk) != 0)
                    fail_msg("%s scale n=%zu off=%zu differs", v[k]->name, n, off);
            }
        }
    free(x0);
    free(xr);
    free(xk);
}

static void test_add_rows_matches_reference_on_odd_sizes_unaligned(void **state)
{
    size_t nv;
    const ember_kernel_table *const *v = variants(&nv);
    enum { N_ROWS = 12, STRIDE = 1011 };
    float *rows = buffer(N_ROWS * STRIDE + 8);
    fill(rows, N_ROWS * STRIDE + 8, 6);
    /* repeated rows, and m not a multiple of 4 */
    const uint32_t idx[11] = {3, 0, 11, 3, 7, 1, 2, 9, 10, 5, 3};
    float w[11];
    fill(w, 11, 7);
    const size_t ms[] = {0, 1, 3, 4, 5, 8, 11};
    float *y0 = buffer(1016), *yr = buffer(1016), *yk = buffer(1016);
    fill(y0, 1016, 8);
    for (size_t s = 0; s < LEN(sizes); s++)
        for (size_t o = 0; o < LEN(offsets); o++)
            for (size_t mi = 0; mi < LEN(ms); mi++)
                for (int unit = 0; unit < 2; unit++) {
                    size_t n = sizes[s], off = offsets[o], m = ms[mi];
                    const float *rw = rows + off, *ww = unit ? NULL : w;
                    memcpy(yr, y0, 1016 * sizeof *yr);
                    ember_kernels_generic.add_rows(yr + off, n, rw, STRIDE, idx, ww, m);
                    for (size_t k = 1; k < nv; k++) {
                        memcpy(yk, y0, 1016 * sizeof *yk);
                        v[k]->add_rows(yk + off, n, rw, STRIDE, idx, ww, m);
                        for (size_t i = 0; i < 1016; i++) {
                            double tol = 0;
                            if (i >= off && i < off + n) {
                                double mag = fabs(y0[i]);
                                for (size_t j = 0; j < m; j++)
                                    mag += fabs((ww ? ww[j] : 1.0) *
                                                rw[(size_t)idx[j] * STRIDE + i - off]);
                                tol = 1e-5 * mag;
                            }
                            if (fabs((double)yk[i] - yr[i]) > tol)
                                fail_msg("%s add_rows n=%zu off=%zu m=%zu w=%s at %zu: %.9g vs "
                                         "%.9g",
                                         v[k]->name, n, off, m, unit ? "NULL" : "w", i, yk[i],
                                         yr[i]);
                        }
                    }
                }
    free(rows);
    free(y0);
    free(yr);
    free(yk);
}

static void test_wrappers_use_the_chosen_table(void **state)
{
    const float a[5] = {1, 2, 3, 4, 5};
    float y[5] = {0};
    assert_float_equal(ember_k_dot(a, a, 5), 55.0f, 0.0f);
    ember_k_axpy(1.0f, a, y, 5);
    ember_k_scale(y, 2.0f, 5);
    assert_float_equal(y[4], 10.0f, 0.0f);
    const uint32_t idx[2] = {0, 0};
    float z[2] = {0, 0};
    ember_k_add_rows(z, 2, a, 5, idx, NULL, 2);
    assert_float_equal(z[1], 4.0f, 0.0f);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--print-kernels") == 0) {
        fputs(ember_kernels()->name, stdout);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variant_list_starts_with_reference),
        cmocka_unit_test(test_select_generic_forces_reference),
        cmocka_unit_test(test_select_default_is_best_for_cpu),
        cmocka_unit_test(test_choice_is_made_once),
        cmocka_unit_test(test_env_generic_forces_reference_at_first_use),
        cmocka_unit_test(test_dot_hand_example),
        cmocka_unit_test(test_axpy_scale_add_rows_hand_example),
        cmocka_unit_test(test_dot_matches_reference_on_odd_sizes_unaligned),
        cmocka_unit_test(test_axpy_matches_reference_and_keeps_tail),
        cmocka_unit_test(test_scale_matches_reference_exactly),
        cmocka_unit_test(test_add_rows_matches_reference_on_odd_sizes_unaligned),
        cmocka_unit_test(test_wrappers_use_the_chosen_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
