/*
 * test_split.c — the splitters (ratio, leave-one-out, temporal, k-fold),
 * the TSV writer they feed, and the make_splits.py-compatible mode: CPython
 * MT19937 values, Python's user order, and byte-for-byte equality with the
 * shared ML-100K split files.
 */
#include "testutil.h"

#include "data/data.h"
#include "data/split_compat.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* user u gets counts[u] rows; ts = position, rating = position */
static void fill_users(ember_coo *c, const size_t *counts, size_t n_users)
{
    memset(c, 0, sizeof *c);
    size_t left[16], total = 0;
    for (size_t u = 0; u < n_users; u++)
        total += left[u] = counts[u];
    /* interleave users so that a user's rows are not contiguous */
    for (size_t k = 0; k < total;) {
        for (size_t u = 0; u < n_users; u++) {
            if (!left[u])
                continue;
            left[u]--;
            assert_int_equal(ember_coo_push(c, (uint32_t)u, (uint32_t)k, (float)k, (int64_t)k), 0);
            k++;
        }
    }
}

/* Every row in exactly one part; each part ascending. */
static void assert_partition(const data_split3 *s, size_t n)
{
    assert_int_equal(s->n[0] + s->n[1] + s->n[2], n);
    uint8_t *seen = calloc(n ? n : 1, 1);
    assert_non_null(seen);
    for (int p = 0; p < 3; p++)
        for (size_t k = 0; k < s->n[p]; k++) {
            assert_true(s->idx[p][k] < n);
            assert_int_equal(seen[s->idx[p][k]], 0);
            seen[s->idx[p][k]] = 1;
            if (k)
                assert_true(s->idx[p][k - 1] < s->idx[p][k]);
        }
    free(seen);
}

static size_t count_user(const ember_coo *c, const data_split3 *s, int part, uint32_t u)
{
    size_t n = 0;
    for (size_t k = 0; k < s->n[part]; k++)
        n += c->user[s->idx[part][k]] == u;
    return n;
}

static bool same_split(const data_split3 *a, const data_split3 *b)
{
    for (int p = 0; p < 3; p++)
        if (a->n[p] != b->n[p] || memcmp(a->idx[p], b->idx[p], a->n[p] * sizeof(size_t)) != 0)
            return false;
    return true;
}

/* ------------------------------------------------------------- ratio */

static void test_ratio_sizes_round_half_to_even(void **state)
{
    (void)state;
    /* 0.1 * 25 = 2.5 -> 2; 0.1 * 15 = 1.5000000000000002 -> 2; 0.1 * 5 = 0.5 -> 0 */
    const size_t counts[] = {25, 15, 5};
    ember_coo c;
    fill_users(&c, counts, 3);
    data_split3 s;
    assert_int_equal(data_split_ratio(&c, 0.1, 0.1, 2020, &s), EMBER_OK);
    const size_t want[3][3] = {{21, 2, 2}, {11, 2, 2}, {5, 0, 0}}; /* train, valid, test */
    for (uint32_t u = 0; u < 3; u++)
        for (int p = 0; p < 3; p++)
            assert_int_equal(count_user(&c, &s, p, u), want[u][p]);
    data_split3_free(&s);
    ember_coo_free(&c);
}

static void test_ratio_puts_each_interaction_in_one_part(void **state)
{
    (void)state;
    const size_t counts[] = {25, 15, 5, 1, 2, 40};
    ember_coo c;
    fill_users(&c, counts, 6);
    data_split3 s;
    assert_int_equal(data_split_ratio(&c, 0.2, 0.3, 7, &s), EMBER_OK);
    assert_partition(&s, c.n);
    data_split3_free(&s);
    ember_coo_free(&c);
}

static void test_ratio_same_seed_same_split(void **state)
{
    (void)state;
    const size_t counts[] = {30, 20, 10};
    ember_coo c;
    fill_users(&c, counts, 3);
    data_split3 a, b;
    assert_int_equal(data_split_ratio(&c, 0.1, 0.2, 99, &a), EMBER_OK);
    assert_int_equal(data_split_ratio(&c, 0.1, 0.2, 99, &b), EMBER_OK);
    assert_true(same_split(&a, &b));
    data_split3_free(&a);
    data_split3_free(&b);
    ember_coo_free(&c);
}

static void test_ratio_different_seed_different_split(void **state)
{
    (void)state;
    const size_t counts[] = {30, 20, 10};
    ember_coo c;
    fill_users(&c, counts, 3);
    data_split3 a, b;
    assert_int_equal(data_split_ratio(&c, 0.1, 0.2, 1, &a), EMBER_OK);
    assert_int_equal(data_split_ratio(&c, 0.1, 0.2, 2, &b), EMBER_OK);
    assert_false(same_split(&a, &b));
    data_split3_free(&a);
    data_split3_free(&b);
    ember_coo_free(&c);
}

static void test_ratio_clamps_when_parts_overflow(void **state)
{
    (void)state;
    /* 3 rows, 0.5 / 0.5: round(1.5) = 2 test, then only 1 left for valid */
    const size_t counts[] = {3};
    ember_coo c;
    fill_users(&c, counts, 1);
    data_split3 s;
    assert_int_equal(data_split_ratio(&c, 0.5, 0.5, 3, &s), EMBER_OK);
    assert_int_equal(s.n[2], 2);
    assert_int_equal(s.n[1], 1);
    assert_int_equal(s.n[0], 0);
    data_split3_free(&s);
    ember_coo_free(&c);
}

static void test_ratio_rejects_bad_fractions(void **state)
{
    (void)state;
    const size_t counts[] = {3};
    ember_coo c;
    fill_users(&c, counts, 1);
    data_split3 s;
    assert_int_equal(data_split_ratio(&c, 0.6, 0.5, 3, &s), EMBER_EINVAL);
    assert_int_equal(data_split_ratio(&c, -0.1, 0.1, 3, &s), EMBER_EINVAL);
    assert_int_equal(data_split_temporal(&c, 0.1, 1.5, &s), EMBER_EINVAL);
    ember_coo_free(&c);
}

/* ------------------------------------------------------ leave-one-out */

static void test_loo_takes_last_by_time_ties_in_file_order(void **state)
{
    (void)state;
    ember_coo c = {0};
    /* user 0: ts 5, 3, 5, 1 at rows 0, 1, 3, 4 -> time order rows 4, 1, 0, 3:
     * test row 3 (the later of the two ts 5), valid row 0, train rows 1, 4.
     * user 1: two rows (2 and 5) -> all train. */
    assert_int_equal(ember_coo_push(&c, 0, 0, 1, 5), 0);
    assert_int_equal(ember_coo_push(&c, 0, 1, 1, 3), 0);
    assert_int_equal(ember_coo_push(&c, 1, 0, 1, 9), 0);
    assert_int_equal(ember_coo_push(&c, 0, 2, 1, 5), 0);
    assert_int_equal(ember_coo_push(&c, 0, 3, 1, 1), 0);
    assert_int_equal(ember_coo_push(&c, 1, 1, 1, 2), 0);
    data_split3 s;
    assert_int_equal(data_split_leave_one_out(&c, &s), EMBER_OK);
    assert_partition(&s, c.n);
    assert_int_equal(s.n[2], 1);
    assert_int_equal(s.idx[2][0], 3);
    assert_int_equal(s.n[1], 1);
    assert_int_equal(s.idx[1][0], 0);
    const size_t train[] = {1, 2, 4, 5};
    assert_int_equal(s.n[0], 4);
    assert_memory_equal(s.idx[0], train, sizeof train);
    data_split3_free(&s);
    ember_coo_free(&c);
}

static void test_loo_users_with_fewer_than_three_go_to_train(void **state)
{
    (void)state;
    const size_t counts[] = {1, 2, 3};
    ember_coo c;
    fill_users(&c, counts, 3);
    data_split3 s;
    assert_int_equal(data_split_leave_one_out(&c, &s), EMBER_OK);
    assert_int_equal(count_user(&c, &s, 0, 0), 1);
    assert_int_equal(count_user(&c, &s, 0, 1), 2);
    assert_int_equal(count_user(&c, &s, 0, 2), 1);
    assert_int_equal(s.n[1], 1);
    assert_int_equal(s.n[2], 1);
    assert_int_equal(c.user[s.idx[2][0]], 2);
    data_split3_free(&s);
    ember_coo_free(&c);
}

/* ----------------------------------------------------------- temporal */

static void test_temporal_cuts_latest_for_test(void **state)
{
    (void)state;
    /* 10 rows, times out of order, with a tie (ts 80 at rows 2 and 6) at
     * the valid/test border; 0.2 / 0.2 -> 2 test, 2 valid, 6 train.
     * Time order: rows 9(10) 1(20) 4(30) 7(40) 0(50) 8(60) 3(70) 2(80) 6(80) 5(90) */
    const int64_t ts[] = {50, 20, 80, 70, 30, 90, 80, 40, 60, 10};
    ember_coo c = {0};
    for (size_t k = 0; k < 10; k++)
        assert_int_equal(ember_coo_push(&c, (uint32_t)(k % 3), (uint32_t)k, 1, ts[k]), 0);
    data_split3 s;
    assert_int_equal(data_split_temporal(&c, 0.2, 0.2, &s), EMBER_OK);
    assert_partition(&s, c.n);
    const size_t test[] = {5, 6}, valid[] = {2, 3}, train[] = {0, 1, 4, 7, 8, 9};
    assert_int_equal(s.n[2], 2);
    assert_memory_equal(s.idx[2], test, sizeof test);
    assert_int_equal(s.n[1], 2);
    assert_memory_equal(s.idx[1], valid, sizeof valid);
    assert_int_equal(s.n[0], 6);
    assert_memory_equal(s.idx[0], train, sizeof train);
    data_split3_free(&s);
    ember_coo_free(&c);
}

static void test_temporal_orders_a_wide_range_of_times(void **state)
{
    (void)state;
    /* times across 64 bits (all four radix passes), negatives included */
    const int64_t ts[] = {INT64_MAX, -5, INT64_MIN, 1LL << 40, 0, -(1LL << 50), 65536, 65535};
    ember_coo c = {0};
    for (size_t k = 0; k < 8; k++)
        assert_int_equal(ember_coo_push(&c, 0, (uint32_t)k, 1, ts[k]), 0);
    data_split3 s;
    /* test = the 2 latest: INT64_MAX (row 0), 1<<40 (row 3); valid = 65536
     * (row 6), 65535 (row 7) */
    assert_int_equal(data_split_temporal(&c, 0.25, 0.25, &s), EMBER_OK);
    const size_t test[] = {0, 3}, valid[] = {6, 7};
    assert_memory_equal(s.idx[2], test, sizeof test);
    assert_memory_equal(s.idx[1], valid, sizeof valid);
    assert_int_equal(s.n[0], 4);
    data_split3_free(&s);
    ember_coo_free(&c);
}

/* -------------------------------------------------------------- kfold */

static void test_kfold_partitions_into_balanced_folds(void **state)
{
    (void)state;
    const size_t counts[] = {50, 30, 23};
    ember_coo c;
    fill_users(&c, counts, 3);
    uint32_t *fold;
    assert_int_equal(data_split_kfold(&c, 5, 2020, &fold), EMBER_OK);
    size_t size[5] = {0};
    for (size_t k = 0; k < c.n; k++) {
        assert_true(fold[k] < 5);
        size[fold[k]]++;
    }
    /* 103 = 21 + 21 + 21 + 20 + 20: positions f, f+5, ... */
    const size_t want[5] = {21, 21, 21, 20, 20};
    assert_memory_equal(size, want, sizeof want);
    free(fold);
    ember_coo_free(&c);
}

static void test_kfold_same_seed_same_folds_other_seed_other(void **state)
{
    (void)state;
    const size_t counts[] = {40, 40};
    ember_coo c;
    fill_users(&c, counts, 2);
    uint32_t *a, *b, *d;
    assert_int_equal(data_split_kfold(&c, 4, 5, &a), EMBER_OK);
    assert_int_equal(data_split_kfold(&c, 4, 5, &b), EMBER_OK);
    assert_int_equal(data_split_kfold(&c, 4, 6, &d), EMBER_OK);
    assert_memory_equal(a, b, c.n * sizeof *a);
    assert_true(memcmp(a, d, c.n * sizeof *a) != 0);
    free(a);
    free(b);
    free(d);
    ember_coo_free(&c);
}

static void test_kfold_rejects_bad_fold_counts(void **state)
{
    (void)state;
    const size_t counts[] = {3};
    ember_coo c;
    fill_users(&c, counts, 1);
    uint32_t *f;
    assert_int_equal(data_split_kfold(&c, 1, 5, &f), EMBER_EINVAL);
    assert_null(f);
    assert_int_equal(data_split_kfold(&c, 4, 5, &f), EMBER_EINVAL);
    ember_coo_free(&c);
}

/* ------------------------------------------------------------- writer */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static void two_maps(ember_idmap **u, ember_idmap **i)
{
    *u = ember_idmap_new();
    *i = ember_idmap_new();
    assert_non_null(*u);
    assert_non_null(*i);
    uint32_t x;
    assert_int_equal(ember_idmap_intern(*u, "alice", 5, &x), 0);
    assert_int_equal(ember_idmap_intern(*u, "42", 2, &x), 0);
    assert_int_equal(ember_idmap_intern(*i, "m7", 2, &x), 0);
    assert_int_equal(ember_idmap_intern(*i, "m8", 2, &x), 0);
}

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_writer_prints_ids_ratings_with_g_and_integer_times(void **state)
{
    (void)state;
    ember_idmap *u, *i;
    two_maps(&u, &i);
    ember_coo c = {0};
    assert_int_equal(ember_coo_push(&c, 1, 0, 4.0f, 881250949), 0);
    assert_int_equal(ember_coo_push(&c, 0, 1, 3.5f, -7), 0);
    assert_int_equal(ember_coo_push(&c, 0, 0, 0.1f, 0), 0);
    assert_int_equal(ember_coo_push(&c, 1, 1, 2500000.0f, 12), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/w1.tsv", test_tmpdir());
    assert_int_equal(data_write_tsv(path, &c, u, i), EMBER_OK);
    size_t len;
    char *text = slurp(path, &len);
    assert_non_null(text);
    assert_string_equal(text, "user\titem\trating\ttimestamp\n"
                              "42\tm7\t4\t881250949\n"
                              "alice\tm8\t3.5\t-7\n"
                              "alice\tm7\t0.1\t0\n"
                              "42\tm8\t2.5e+06\t12\n");
    free(text);
    ember_coo_free(&c);
    ember_idmap_free(u);
    ember_idmap_free(i);
}

static void test_writer_failure_leaves_old_file_and_no_temp(void **state)
{
    (void)state;
    ember_idmap *u, *i;
    two_maps(&u, &i);
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/wfail", test_tmpdir());
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/out.tsv", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("old\n", f);
    fclose(f);
    ember_coo c = {0};
    assert_int_equal(ember_coo_push(&c, 0, 0, 1, 1), 0);
    assert_int_equal(ember_coo_push(&c, 0, 9, 1, 1), 0); /* item 9 is not in the map */
    assert_int_equal(data_write_tsv(path, &c, u, i), EMBER_EINVAL);
    assert_non_null(strstr(ember_last_error(), "row 1"));
    size_t len;
    char *text = slurp(path, &len);
    assert_string_equal(text, "old\n");
    free(text);
    assert_int_equal(count_files(dir), 1);
    ember_coo_free(&c);
    ember_idmap_free(u);
    ember_idmap_free(i);
}

static void test_writer_reports_a_missing_directory(void **state)
{
    (void)state;
    ember_idmap *u, *i;
    two_maps(&u, &i);
    ember_coo c = {0};
    char path[600];
    snprintf(path, sizeof path, "%s/no/such/dir/x.tsv", test_tmpdir());
    assert_int_equal(data_write_tsv(path, &c, u, i), EMBER_EIO);
    assert_non_null(strstr(ember_last_error(), "x.tsv"));
    ember_idmap_free(u);
    ember_idmap_free(i);
}

static void test_writer_failed_rename_leaves_no_temp(void **state)
{
    (void)state;
    ember_idmap *u, *i;
    two_maps(&u, &i);
    ember_coo c = {0};
    assert_int_equal(ember_coo_push(&c, 0, 0, 1, 1), 0);
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/wrename", test_tmpdir());
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/dir-not-file", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    /* the path is a directory: rename fails after a complete write */
    assert_int_equal(data_write_tsv(path, &c, u, i), EMBER_EIO);
    assert_non_null(strstr(ember_last_error(), "rename"));
    assert_int_equal(count_files(dir), 1); /* only the directory */
    assert_int_equal(count_files(path), 0);
    ember_coo_free(&c);
    ember_idmap_free(u);
    ember_idmap_free(i);
}

static void test_writer_write_error_leaves_no_file(void **state)
{
    (void)state;
    /* a file size limit makes the writes fail with EFBIG part way */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 4096;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ember_idmap *u, *i;
    two_maps(&u, &i);
    ember_coo c = {0};
    for (int k = 0; k < 20000; k++)
        assert_int_equal(ember_coo_push(&c, 0, 0, 1, 881250949 + k), 0);
    char dir[600], path[700];
    snprintf(dir, sizeof dir, "%s/wbig", test_tmpdir());
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/big.tsv", dir);
    int st = data_write_tsv(path, &c, u, i);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(st, EMBER_EIO);
    assert_non_null(strstr(ember_last_error(), "big.tsv"));
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(count_files(dir), 0);
    ember_coo_free(&c);
    ember_idmap_free(u);
    ember_idmap_free(i);
}

/* ---------------------------------------------------- CPython MT19937 */

static void test_pyrandom_matches_cpython_getrandbits(void **state)
{
    (void)state;
    /* python3: random.Random(2020).getrandbits(32) x3, (5) x3, (40) */
    data_pyrandom r;
    data_pyrandom_seed(&r, 2020);
    assert_int_equal(data_pyrandom_getrandbits(&r, 32), 2661459254u);
    assert_int_equal(data_pyrandom_getrandbits(&r, 32), 2660693840u);
    assert_int_equal(data_pyrandom_getrandbits(&r, 32), 749574286u);
    data_pyrandom_seed(&r, 2020);
    assert_int_equal(data_pyrandom_getrandbits(&r, 5), 19);
    assert_int_equal(data_pyrandom_getrandbits(&r, 5), 19);
    assert_int_equal(data_pyrandom_getrandbits(&r, 5), 5);
    data_pyrandom_seed(&r, 2020);
    assert_int_equal(data_pyrandom_getrandbits(&r, 40), 681266292022ULL);
    /* seeds 0 and 2**40 + 7 (two key words) */
    data_pyrandom_seed(&r, 0);
    assert_int_equal(data_pyrandom_getrandbits(&r, 32), 3626764237u);
    assert_int_equal(data_pyrandom_getrandbits(&r, 32), 1654615998u);
    data_pyrandom_seed(&r, (1ULL << 40) + 7);
    assert_int_equal(data_pyrandom_getrandbits(&r, 32), 2635837658u);
    assert_int_equal(data_pyrandom_getrandbits(&r, 32), 3209733218u);
}

static void test_pyrandom_below_matches_cpython_randbelow(void **state)
{
    (void)state;
    /* python3: r = random.Random(2020); [r._randbelow(10) for _ in range(8)] */
    const uint64_t want[] = {9, 9, 2, 7, 7, 7, 5, 6};
    data_pyrandom r;
    data_pyrandom_seed(&r, 2020);
    for (size_t k = 0; k < 8; k++)
        assert_int_equal(data_pyrandom_below(&r, 10), want[k]);
    /* _randbelow(1) still draws: two of them, then getrandbits(32) */
    data_pyrandom_seed(&r, 2020);
    assert_int_equal(data_pyrandom_below(&r, 1), 0);
    assert_int_equal(data_pyrandom_below(&r, 1), 0);
    assert_int_equal(data_pyrandom_getrandbits(&r, 32), 4061722466u);
}

static void read_mem(const char *text, ember_idmap **u, ember_idmap **i, ember_coo *c)
{
    *u = ember_idmap_new();
    *i = ember_idmap_new();
    memset(c, 0, sizeof *c);
    ember_read_opts o;
    ember_read_opts_init(&o);
    o.format = EMBER_FMT_TSV;
    assert_int_equal(ember_coo_read_mem("t.tsv", text, strlen(text), &o, *u, *i, c, NULL), 0);
}

static void test_py_ratio_shuffles_like_random_shuffle(void **state)
{
    (void)state;
    /* one user with 10 rows (items a0..a9): python3 r = random.Random(2020);
     * l = list(range(10)); r.shuffle(l) -> [1, 0, 4, 5, 8, 6, 3, 7, 2, 9];
     * round(1.0) = 1 test, 1 valid, in that order */
    char text[512] = "user\titem\trating\ttimestamp\n";
    for (int k = 0; k < 10; k++) {
        char line[64];
        snprintf(line, sizeof line, "u\ta%d\t1\t%d\n", k, k);
        strcat(text, line);
    }
    ember_idmap *u, *i;
    ember_coo c;
    read_mem(text, &u, &i, &c);
    data_split3 s;
    assert_int_equal(data_split_ratio_py(&c, u, 0.1, 0.1, 2020, &s), EMBER_OK);
    const size_t test[] = {1}, valid[] = {0}, train[] = {4, 5, 8, 6, 3, 7, 2, 9};
    assert_memory_equal(s.idx[2], test, sizeof test);
    assert_memory_equal(s.idx[1], valid, sizeof valid);
    assert_int_equal(s.n[0], 8);
    assert_memory_equal(s.idx[0], train, sizeof train);
    data_split3_free(&s);
    ember_coo_free(&c);
    ember_idmap_free(u);
    ember_idmap_free(i);
}

static void test_py_user_order_numeric_then_strings(void **state)
{
    (void)state;
    ember_idmap *u, *i;
    ember_coo c;
    uint32_t *order;
    size_t n;
    /* numeric: 9 < 10 < 010 (= 10, later in the file) < 100 */
    read_mem("user\titem\n100\tx\n010\tx\n9\tx\n10\tx\n", &u, &i, &c);
    assert_int_equal(data_py_user_order(&c, u, &order, &n), EMBER_OK);
    const uint32_t want_num[] = {2, 1, 3, 0};
    assert_int_equal(n, 4);
    assert_memory_equal(order, want_num, sizeof want_num);
    free(order);
    ember_coo_free(&c);
    ember_idmap_free(u);
    ember_idmap_free(i);
    /* strings: code point order ("B" < "a" < "ab") */
    read_mem("user\titem\nab\tx\na\tx\nB\tx\n", &u, &i, &c);
    assert_int_equal(data_py_user_order(&c, u, &order, &n), EMBER_OK);
    const uint32_t want_str[] = {2, 1, 0};
    assert_memory_equal(order, want_str, sizeof want_str);
    free(order);
    ember_coo_free(&c);
    ember_idmap_free(u);
    ember_idmap_free(i);
    /* mixed ids cannot be sorted by make_splits.py */
    read_mem("user\titem\n7\tx\nbob\tx\n", &u, &i, &c);
    assert_int_equal(data_py_user_order(&c, u, &order, &n), EMBER_EUNSUPPORTED);
    ember_coo_free(&c);
    ember_idmap_free(u);
    ember_idmap_free(i);
}

/* ------------------------------------- ML-100K against make_splits.py */

typedef struct {
    ember_idmap *u, *i;
    ember_coo c;
} ml100k;

static void ml100k_load(ml100k *m, const char *path)
{
    m->u = ember_idmap_new();
    m->i = ember_idmap_new();
    memset(&m->c, 0, sizeof m->c);
    assert_int_equal(ember_coo_read(path, NULL, m->u, m->i, &m->c, NULL), EMBER_OK);
    assert_int_equal(m->c.n, 100000);
}

static void ml100k_free(ml100k *m)
{
    ember_coo_free(&m->c);
    ember_idmap_free(m->u);
    ember_idmap_free(m->i);
}

/* Writes rows idx of m to tmpdir/name and compares with the shared file. */
static void assert_written_equals(const ml100k *m, const size_t *idx, size_t n, const char *name,
                                  const char *shared_rel)
{
    TEST_REQUIRE_DATA(want_path, shared_rel);
    ember_coo part;
    assert_int_equal(data_coo_select(&m->c, idx, n, &part), EMBER_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    assert_int_equal(data_write_tsv(path, &part, m->u, m->i), EMBER_OK);
    ember_coo_free(&part);
    size_t got_len, want_len;
    char *got = slurp(path, &got_len), *want = slurp(want_path, &want_len);
    assert_non_null(got);
    assert_non_null(want);
    if (got_len != want_len || memcmp(got, want, got_len) != 0) {
        size_t k = 0;
        while (k < got_len && k < want_len && got[k] == want[k])
            k++;
        print_message("%s differs from %s at byte %zu\n", path, want_path, k);
        fail();
    }
    free(got);
    free(want);
    remove(path);
}

static void test_py_general_split_reproduces_ml100k_files(void **state)
{
    (void)state;
    TEST_REQUIRE_DATA(inter, "ml-100k/ml-100k.inter");
    ml100k m;
    ml100k_load(&m, inter);
    data_split3 s;
    assert_int_equal(data_split_ratio_py(&m.c, m.u, 0.1, 0.1, 2020, &s), EMBER_OK);
    assert_written_equals(&m, s.idx[0], s.n[0], "g_train.tsv", "ml-100k/splits/general/train.tsv");
    assert_written_equals(&m, s.idx[1], s.n[1], "g_valid.tsv", "ml-100k/splits/general/valid.tsv");
    assert_written_equals(&m, s.idx[2], s.n[2], "g_test.tsv", "ml-100k/splits/general/test.tsv");
    data_split3_free(&s);
    ml100k_free(&m);
}

static void test_py_sequential_split_reproduces_ml100k_files(void **state)
{
    (void)state;
    TEST_REQUIRE_DATA(inter, "ml-100k/ml-100k.inter");
    ml100k m;
    ml100k_load(&m, inter);
    data_split3 s;
    assert_int_equal(data_split_leave_one_out_py(&m.c, m.u, &s), EMBER_OK);
    assert_written_equals(&m, s.idx[0], s.n[0], "s_train.tsv", "ml-100k/splits/sequential/train.tsv");
    assert_written_equals(&m, s.idx[1], s.n[1], "s_valid.tsv", "ml-100k/splits/sequential/valid.tsv");
    assert_written_equals(&m, s.idx[2], s.n[2], "s_test.tsv", "ml-100k/splits/sequential/test.tsv");
    data_split3_free(&s);
    ml100k_free(&m);
}

static void test_py_rating_folds_reproduce_ml100k_files(void **state)
{
    (void)state;
    TEST_REQUIRE_DATA(inter, "ml-100k/ml-100k.inter");
    ml100k m;
    ml100k_load(&m, inter);
    uint32_t *fold;
    assert_int_equal(data_split_kfold_py(&m.c, m.u, 5, 2020, &fold), EMBER_OK);
    size_t *tr = malloc(m.c.n * sizeof *tr), *te = malloc(m.c.n * sizeof *te);
    assert_non_null(tr);
    assert_non_null(te);
    for (uint32_t f = 0; f < 5; f++) {
        size_t ntr = 0, nte = 0;
        for (size_t k = 0; k < m.c.n; k++) {
            if (fold[k] == f)
                te[nte++] = k;
            else
                tr[ntr++] = k;
        }
        char rel[128], name[64];
        snprintf(rel, sizeof rel, "ml-100k/splits/rating/fold%u.train.tsv", f + 1);
        snprintf(name, sizeof name, "fold%u.train.tsv", f + 1);
        assert_written_equals(&m, tr, ntr, name, rel);
        snprintf(rel, sizeof rel, "ml-100k/splits/rating/fold%u.test.tsv", f + 1);
        snprintf(name, sizeof name, "fold%u.test.tsv", f + 1);
        assert_written_equals(&m, te, nte, name, rel);
    }
    free(tr);
    free(te);
    free(fold);
    ml100k_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ratio_sizes_round_half_to_even),
        cmocka_unit_test(test_ratio_puts_each_interaction_in_one_part),
        cmocka_unit_test(test_ratio_same_seed_same_split),
        cmocka_unit_test(test_ratio_different_seed_different_split),
        cmocka_unit_test(test_ratio_clamps_when_parts_overflow),
        cmocka_unit_test(test_ratio_rejects_bad_fractions),
        cmocka_unit_test(test_loo_takes_last_by_time_ties_in_file_order),
        cmocka_unit_test(test_loo_users_with_fewer_than_three_go_to_train),
        cmocka_unit_test(test_temporal_cuts_latest_for_test),
        cmocka_unit_test(test_temporal_orders_a_wide_range_of_times),
        cmocka_unit_test(test_kfold_partitions_into_balanced_folds),
        cmocka_unit_test(test_kfold_same_seed_same_folds_other_seed_other),
        cmocka_unit_test(test_kfold_rejects_bad_fold_counts),
        cmocka_unit_test(test_writer_prints_ids_ratings_with_g_and_integer_times),
        cmocka_unit_test(test_writer_failure_leaves_old_file_and_no_temp),
        cmocka_unit_test(test_writer_reports_a_missing_directory),
        cmocka_unit_test(test_writer_failed_rename_leaves_no_temp),
        cmocka_unit_test(test_writer_write_error_leaves_no_file),
        cmocka_unit_test(test_pyrandom_matches_cpython_getrandbits),
        cmocka_unit_test(test_pyrandom_below_matches_cpython_randbelow),
        cmocka_unit_test(test_py_ratio_shuffles_like_random_shuffle),
        cmocka_unit_test(test_py_user_order_numeric_then_strings),
        cmocka_unit_test(test_py_general_split_reproduces_ml100k_files),
        cmocka_unit_test(test_py_sequential_split_reproduces_ml100k_files),
        cmocka_unit_test(test_py_rating_folds_reproduce_ml100k_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
