/*
 * test_modelfile.c — the model file container (src/core/modelfile.c) at
 * the byte level: round trips of every dtype with exact bytes and 64-byte
 * aligned pointers, the on-disk layout of modelfile.h, refusal of what
 * mf_add must not accept, and a reader that refuses every damaged, foreign
 * or hostile file with EMBER_ECORRUPT and a message: truncation at every
 * length, every single-bit flip, newer versions, and forged files whose
 * checksum is valid but whose table lies (offsets, alignment, shapes that
 * overflow).  Writes that fail (missing directory, rename over a
 * directory, a file size limit, injected allocation failures) return an
 * error, leave no temporary file and leave the previous file intact.
 *
 * Forged files are made by editing a good file's bytes and recomputing
 * the trailer: XXH3_64bits over bytes [0, size-16), stored at size-16.
 */
#include "testutil.h"

#include "core/modelfile.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <xxhash.h>

/* Byte offsets of the layout described in modelfile.h. */
#define H_VERSION 8
#define H_NSECT 12
#define H_FSIZE 16
#define H_TABLE 24
#define E_SIZE 128
#define E_DTYPE 56
#define E_NDIM 60
#define E_SHAPE 64
#define E_OFFSET 96
#define E_NBYTES 104

/* ------------------------------------------------------------ helpers */

static const char *tmp_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    return p;
}

static uint8_t *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    uint8_t *p = malloc(len ? (size_t)len : 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

static void write_all(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n)
        assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

/* Recomputes the trailer checksum after an edit. */
static void reseal(uint8_t *buf, size_t n)
{
    put_u64(buf + n - 16, XXH3_64bits(buf, n - 16));
}

static uint8_t *entry_at(uint8_t *buf, size_t i)
{
    return buf + get_u64(buf + H_TABLE) + i * E_SIZE;
}

/* Whether a directory holds an entry whose name contains ".tmp.". */
static bool dir_has_temp(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    bool found = false;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp."))
            found = true;
    closedir(d);
    return found;
}

static const char *make_dir(const char *name)
{
    const char *p = tmp_path(name);
    assert_int_equal(mkdir(p, 0700), 0);
    return p;
}

static const uint32_t SMALL_A[3] = {1, 2, 3};
static const float SMALL_B[4] = {0.5f, -1.0f, 2.25f, 1e-30f};

/* The small file of most tests: "a" u32 [3], "b" f32 [2, 2].  Layout:
 * header [0, 64), a at 64 (12 bytes), b at 128 (16 bytes), table at 192
 * (2 x 128), trailer at 448: 464 bytes. */
#define SMALL_SIZE 464

static void write_small(const char *path)
{
    mf_writer *w = mf_writer_new();
    assert_non_null(w);
    uint64_t shape[2] = {2, 2};
    assert_int_equal(mf_add_1d(w, "a", MF_U32, 3, SMALL_A), EMBER_OK);
    assert_int_equal(mf_add(w, "b", MF_F32, 2, shape, SMALL_B), EMBER_OK);
    assert_int_equal(mf_writer_write(w, path), EMBER_OK);
    mf_writer_free(w);
}

static uint8_t *small_bytes(size_t *n)
{
    const char *path = tmp_path("small.mf");
    write_small(path);
    uint8_t *buf = read_all(path, n);
    assert_int_equal(*n, SMALL_SIZE);
    return buf;
}

/* The buffer is refused, with EMBER_ECORRUPT and a message containing
 * `why` (when not NULL). */
static void assert_mem_refused(const uint8_t *buf, size_t n, const char *why)
{
    mf_reader *r = (mf_reader *)0x1;
    ember_clear_error();
    int st = mf_open_mem(buf, n, &r);
    if (st != EMBER_ECORRUPT)
        print_message("expected ECORRUPT, got %d (%s)\n", st, ember_last_error());
    assert_int_equal(st, EMBER_ECORRUPT);
    assert_null(r);
    assert_string_not_equal(ember_last_error(), "");
    if (why && !strstr(ember_last_error(), why)) {
        print_message("message '%s' lacks '%s'\n", ember_last_error(), why);
        fail();
    }
}

static void assert_file_refused(const char *path, const char *why)
{
    mf_reader *r = (mf_reader *)0x1;
    ember_clear_error();
    int st = mf_open(path, &r);
    if (st != EMBER_ECORRUPT)
        print_message("%s: expected ECORRUPT, got %d (%s)\n", path, st, ember_last_error());
    assert_int_equal(st, EMBER_ECORRUPT);
    assert_null(r);
    assert_non_null(strstr(ember_last_error(), path));
    if (why && !strstr(ember_last_error(), why)) {
        print_message("message '%s' lacks '%s'\n", ember_last_error(), why);
        fail();
    }
}

/* ------------------------------------------------------- round trips */

static const uint8_t RT_U8[13] = {0, 1, 2, 0xff, 0x80, 7, 0, 0, 9, 10, 11, 12, 13};
static const uint32_t RT_U32[7] = {0, 1, 0xffffffffu, 123456789, 42, 7, 0x80000000u};
static const uint64_t RT_U64[3] = {0, UINT64_MAX, 0x0123456789abcdefULL};
static const int64_t RT_I64[5] = {-1, INT64_MIN, INT64_MAX, 0, -1234567890123LL};
static const float RT_F32[15] = {0.0f, -0.0f, 1.0f, -2.5f, 3.25e-38f, 1e38f, 0.1f, 0.2f,
                                 0.3f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f, 9.0f};
static const double RT_F64[12] = {0.0, -1.0, 1e-300, 1e300, 3.141592653589793, 2.0,
                                  -0.0, 7.5, 8.5, 9.5, 10.5, 11.5};

static void write_every_dtype(const char *path)
{
    mf_writer *w = mf_writer_new();
    assert_non_null(w);
    uint64_t s_f32[2] = {3, 5}, s_f64[4] = {2, 1, 3, 2};
    assert_int_equal(mf_add_1d(w, "u8 odd length", MF_U8, 13, RT_U8), EMBER_OK);
    assert_int_equal(mf_add_1d(w, "u32", MF_U32, 7, RT_U32), EMBER_OK);
    assert_int_equal(mf_add_1d(w, "u64", MF_U64, 3, RT_U64), EMBER_OK);
    assert_int_equal(mf_add_1d(w, "i64", MF_I64, 5, RT_I64), EMBER_OK);
    assert_int_equal(mf_add(w, "f32.matrix", MF_F32, 2, s_f32, RT_F32), EMBER_OK);
    assert_int_equal(mf_add(w, "f64.4d", MF_F64, 4, s_f64, RT_F64), EMBER_OK);
    assert_int_equal(mf_writer_write(w, path), EMBER_OK);
    mf_writer_free(w);
}

static void check_section(const mf_reader *r, const char *name, mf_dtype t, size_t ndim,
                          const uint64_t *shape, const void *data, size_t nbytes)
{
    uint64_t got[4] = {9, 9, 9, 9};
    const void *p = mf_get(r, name, t, ndim, got);
    if (!p)
        print_message("%s: %s\n", name, ember_last_error());
    assert_non_null(p);
    assert_int_equal((uintptr_t)p % 64, 0);
    for (size_t k = 0; k < 4; k++)
        assert_int_equal(got[k], k < ndim ? shape[k] : 0);
    assert_memory_equal(p, data, nbytes);
}

static void check_every_dtype(const mf_reader *r)
{
    uint64_t s1;
    s1 = 13;
    check_section(r, "u8 odd length", MF_U8, 1, &s1, RT_U8, sizeof RT_U8);
    s1 = 7;
    check_section(r, "u32", MF_U32, 1, &s1, RT_U32, sizeof RT_U32);
    s1 = 3;
    check_section(r, "u64", MF_U64, 1, &s1, RT_U64, sizeof RT_U64);
    s1 = 5;
    check_section(r, "i64", MF_I64, 1, &s1, RT_I64, sizeof RT_I64);
    uint64_t s_f32[2] = {3, 5}, s_f64[4] = {2, 1, 3, 2};
    check_section(r, "f32.matrix", MF_F32, 2, s_f32, RT_F32, sizeof RT_F32);
    check_section(r, "f64.4d", MF_F64, 4, s_f64, RT_F64, sizeof RT_F64);
}

static void test_round_trip_every_dtype_exact_bytes_aligned(void **state)
{
    (void)state;
    const char *path = tmp_path("dtypes.mf");
    write_every_dtype(path);
    mf_reader *r;
    assert_int_equal(mf_open(path, &r), EMBER_OK);
    check_every_dtype(r);
    assert_string_equal(mf_path(r), path);
    assert_true(mf_has(r, "u32"));
    assert_false(mf_has(r, "u3"));
    assert_false(mf_has(r, "u32x"));
    mf_close(r);
}

static void test_open_mem_gives_the_same_sections_aligned(void **state)
{
    (void)state;
    const char *path = tmp_path("dtypes-mem.mf");
    write_every_dtype(path);
    size_t n;
    uint8_t *buf = read_all(path, &n);
    /* from a deliberately misaligned source buffer */
    uint8_t *shifted = malloc(n + 3);
    assert_non_null(shifted);
    memcpy(shifted + 3, buf, n);
    mf_reader *r;
    assert_int_equal(mf_open_mem(shifted + 3, n, &r), EMBER_OK);
    free(shifted);
    free(buf);
    check_every_dtype(r);
    assert_string_equal(mf_path(r), "<memory>");
    mf_close(r);
}

static void test_empty_sections_round_trip(void **state)
{
    (void)state;
    const char *path = tmp_path("empty.mf");
    mf_writer *w = mf_writer_new();
    assert_non_null(w);
    uint64_t s2[2] = {3, 0};
    uint32_t one = 77;
    assert_int_equal(mf_add_1d(w, "none", MF_U32, 0, NULL), EMBER_OK);
    assert_int_equal(mf_add(w, "rows of nothing", MF_F32, 2, s2, NULL), EMBER_OK);
    assert_int_equal(mf_add_1d(w, "after", MF_U32, 1, &one), EMBER_OK);
    assert_int_equal(mf_writer_write(w, path), EMBER_OK);
    mf_writer_free(w);
    mf_reader *r;
    assert_int_equal(mf_open(path, &r), EMBER_OK);
    uint64_t n = 99;
    assert_non_null(mf_get_1d(r, "none", MF_U32, 0, &n));
    assert_int_equal(n, 0);
    uint64_t shape[4];
    assert_non_null(mf_get(r, "rows of nothing", MF_F32, 2, shape));
    assert_int_equal(shape[0], 3);
    assert_int_equal(shape[1], 0);
    const uint32_t *after = mf_get_1d(r, "after", MF_U32, 1, NULL);
    assert_non_null(after);
    assert_int_equal((uintptr_t)after % 64, 0);
    assert_int_equal(after[0], 77);
    mf_close(r);
}

static void test_file_with_no_sections_round_trips(void **state)
{
    (void)state;
    const char *path = tmp_path("nothing.mf");
    mf_writer *w = mf_writer_new();
    assert_non_null(w);
    assert_int_equal(mf_writer_write(w, path), EMBER_OK);
    mf_writer_free(w);
    size_t n;
    uint8_t *buf = read_all(path, &n);
    assert_int_equal(n, 64 + 16); /* header and trailer only */
    free(buf);
    mf_reader *r;
    assert_int_equal(mf_open(path, &r), EMBER_OK);
    assert_false(mf_has(r, "a"));
    mf_close(r);
}

static void test_layout_matches_the_documented_format(void **state)
{
    (void)state;
    size_t n;
    uint8_t *buf = small_bytes(&n);
    assert_memory_equal(buf, "EMBERMF\0", 8);
    uint32_t version, nsect;
    memcpy(&version, buf + H_VERSION, 4);
    memcpy(&nsect, buf + H_NSECT, 4);
    assert_int_equal(version, MF_VERSION);
    assert_int_equal(nsect, 2);
    assert_int_equal(get_u64(buf + H_FSIZE), SMALL_SIZE);
    assert_int_equal(get_u64(buf + H_TABLE), 192);
    for (size_t i = 32; i < 64; i++)
        assert_int_equal(buf[i], 0);
    /* sections at 64 and 128, zero padding between */
    assert_memory_equal(buf + 64, SMALL_A, sizeof SMALL_A);
    for (size_t i = 64 + 12; i < 128; i++)
        assert_int_equal(buf[i], 0);
    assert_memory_equal(buf + 128, SMALL_B, sizeof SMALL_B);
    const uint8_t *e0 = buf + 192, *e1 = buf + 192 + 128;
    assert_string_equal((const char *)e0, "a");
    assert_string_equal((const char *)e1, "b");
    uint32_t dtype, ndim;
    memcpy(&dtype, e1 + E_DTYPE, 4);
    memcpy(&ndim, e1 + E_NDIM, 4);
    assert_int_equal(dtype, MF_F32);
    assert_int_equal(ndim, 2);
    assert_int_equal(get_u64(e1 + E_SHAPE), 2);
    assert_int_equal(get_u64(e1 + E_SHAPE + 8), 2);
    assert_int_equal(get_u64(e0 + E_OFFSET), 64);
    assert_int_equal(get_u64(e0 + E_NBYTES), 12);
    assert_int_equal(get_u64(e1 + E_OFFSET), 128);
    assert_int_equal(get_u64(e1 + E_NBYTES), 16);
    /* trailer: XXH3 of everything before it, then the end magic */
    assert_int_equal(get_u64(buf + n - 16), XXH3_64bits(buf, n - 16));
    assert_memory_equal(buf + n - 8, "EMBEREND", 8);
    free(buf);
}

/* ----------------------------------------------------------- mf_add */

static void test_add_refuses_a_duplicate_name(void **state)
{
    (void)state;
    mf_writer *w = mf_writer_new();
    assert_non_null(w);
    uint32_t x = 1;
    assert_int_equal(mf_add_1d(w, "dup", MF_U32, 1, &x), EMBER_OK);
    ember_clear_error();
    assert_int_equal(mf_add_1d(w, "dup", MF_F32, 1, &x), EMBER_EINVAL);
    assert_non_null(strstr(ember_last_error(), "dup"));
    /* the writer still writes the one section it holds */
    const char *path = tmp_path("dup.mf");
    assert_int_equal(mf_writer_write(w, path), EMBER_OK);
    mf_writer_free(w);
    mf_reader *r;
    assert_int_equal(mf_open(path, &r), EMBER_OK);
    assert_non_null(mf_get_1d(r, "dup", MF_U32, 1, NULL));
    mf_close(r);
}

static void test_add_refuses_empty_and_too_long_names(void **state)
{
    (void)state;
    mf_writer *w = mf_writer_new();
    assert_non_null(w);
    uint32_t x = 1;
    char name[64];
    memset(name, 'n', sizeof name);
    name[55] = '\0'; /* 55 bytes: the longest allowed */
    assert_int_equal(mf_add_1d(w, name, MF_U32, 1, &x), EMBER_OK);
    name[55] = 'n';
    name[56] = '\0'; /* 56 bytes: one too many */
    ember_clear_error();
    assert_int_equal(mf_add_1d(w, name, MF_U32, 1, &x), EMBER_EINVAL);
    assert_string_not_equal(ember_last_error(), "");
    ember_clear_error();
    assert_int_equal(mf_add_1d(w, "", MF_U32, 1, &x), EMBER_EINVAL);
    assert_string_not_equal(ember_last_error(), "");
    mf_writer_free(w);
}

static void test_add_refuses_bad_dtype_ndim_or_missing_data(void **state)
{
    (void)state;
    mf_writer *w = mf_writer_new();
    assert_non_null(w);
    uint64_t shape[5] = {1, 1, 1, 1, 1};
    uint32_t x = 1;
    assert_int_equal(mf_add(w, "ndim0", MF_U32, 0, shape, &x), EMBER_EINVAL);
    assert_int_equal(mf_add(w, "ndim5", MF_U32, 5, shape, &x), EMBER_EINVAL);
    assert_int_equal(mf_add(w, "dtype0", (mf_dtype)0, 1, shape, &x), EMBER_EINVAL);
    assert_int_equal(mf_add(w, "dtype7", (mf_dtype)7, 1, shape, &x), EMBER_EINVAL);
    assert_int_equal(mf_add_1d(w, "no data", MF_U32, 2, NULL), EMBER_EINVAL);
    uint64_t huge[2] = {UINT64_MAX / 2, 3};
    assert_int_equal(mf_add(w, "overflow", MF_U8, 2, huge, &x), EMBER_EINVAL);
    mf_writer_free(w);
}

/* ------------------------------------------------------ damaged files */

static void test_truncated_file_refused_at_every_length(void **state)
{
    (void)state;
    size_t n;
    uint8_t *buf = small_bytes(&n);
    const char *path = tmp_path("truncated.mf");
    for (size_t len = 0; len < n; len++) {
        write_all(path, buf, len);
        assert_file_refused(path, NULL);
        assert_mem_refused(buf, len, NULL);
    }
    /* and one byte longer than written */
    uint8_t *longer = calloc(n + 1, 1);
    assert_non_null(longer);
    memcpy(longer, buf, n);
    write_all(path, longer, n + 1);
    assert_file_refused(path, NULL);
    free(longer);
    free(buf);
}

static void test_every_single_bit_flip_is_refused(void **state)
{
    (void)state;
    size_t n;
    uint8_t *buf = small_bytes(&n);
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 8; b++) {
            buf[i] ^= (uint8_t)(1u << b);
            assert_mem_refused(buf, n, NULL);
            buf[i] ^= (uint8_t)(1u << b);
        }
    mf_reader *r;
    assert_int_equal(mf_open_mem(buf, n, &r), EMBER_OK);
    mf_close(r);
    free(buf);
}

static void test_corrupt_payload_named_as_checksum_mismatch(void **state)
{
    (void)state;
    size_t n;
    uint8_t *buf = small_bytes(&n);
    buf[64] ^= 1; /* inside section "a" */
    const char *path = tmp_path("flipped.mf");
    write_all(path, buf, n);
    assert_file_refused(path, "checksum");
    free(buf);
}

static void test_foreign_files_refused(void **state)
{
    (void)state;
    const char *text = test_write_file("notes.txt", "user\titem\n1\t2\n3\t4\n"
                                                     "this is a text file, not a model at all\n"
                                                     "padding padding padding padding padding\n");
    assert_file_refused(text, "not an ember model file");
    const char *empty = test_write_file("empty.mf", "");
    assert_file_refused(empty, "too short");
    struct stat sb;
    if (stat("/bin/true", &sb) == 0)
        assert_file_refused("/bin/true", "not an ember model file");
    uint8_t zeros[4096] = {0};
    const char *zpath = tmp_path("zeros.mf");
    write_all(zpath, zeros, sizeof zeros);
    assert_file_refused(zpath, "bad magic");
    /* the right magic and nothing sensible after it */
    uint8_t fake[100];
    memset(fake, 0xab, sizeof fake);
    memcpy(fake, "EMBERMF\0", 8);
    assert_mem_refused(fake, sizeof fake, NULL);
    assert_mem_refused(NULL, 0, "too short");
}

static void test_missing_file_and_directory_are_io_errors(void **state)
{
    (void)state;
    mf_reader *r = (mf_reader *)0x1;
    ember_clear_error();
    assert_int_equal(mf_open(tmp_path("does-not-exist.mf"), &r), EMBER_EIO);
    assert_null(r);
    assert_non_null(strstr(ember_last_error(), "does-not-exist.mf"));
    r = (mf_reader *)0x1;
    ember_clear_error();
    assert_int_equal(mf_open(test_tmpdir(), &r), EMBER_EIO);
    assert_null(r);
    assert_string_not_equal(ember_last_error(), "");
}

static void test_newer_version_refused_naming_the_version(void **state)
{
    (void)state;
    size_t n;
    uint8_t *buf = small_bytes(&n);
    put_u32(buf + H_VERSION, MF_VERSION + 1);
    reseal(buf, n);
    const char *path = tmp_path("v2.mf");
    write_all(path, buf, n);
    char want[64];
    snprintf(want, sizeof want, "version %d", MF_VERSION + 1);
    assert_file_refused(path, want);
    put_u32(buf + H_VERSION, 0);
    reseal(buf, n);
    assert_mem_refused(buf, n, "version 0");
    free(buf);
}

/* ----------------------------------- forged files with valid checksums */

/* Applies an edit to a fresh copy of the small file, reseals it and
 * requires refusal with `why` in the message. */
typedef void (*edit_fn)(uint8_t *buf);

static void assert_forgery_refused(edit_fn edit, const char *why)
{
    size_t n;
    uint8_t *buf = small_bytes(&n);
    edit(buf);
    reseal(buf, n);
    assert_mem_refused(buf, n, why);
    free(buf);
}

static void forge_offset_at_table(uint8_t *b)
{
    put_u64(entry_at(b, 0) + E_OFFSET, 192);
}
static void forge_offset_far_past_end(uint8_t *b)
{
    put_u64(entry_at(b, 0) + E_OFFSET, 1ULL << 40);
}
static void forge_offset_wraps(uint8_t *b)
{
    put_u64(entry_at(b, 1) + E_OFFSET, UINT64_MAX - 63); /* 64-aligned, offset + nbytes wraps */
}
static void forge_offset_in_header(uint8_t *b)
{
    put_u64(entry_at(b, 0) + E_OFFSET, 0);
}
static void forge_offset_misaligned(uint8_t *b)
{
    put_u64(entry_at(b, 1) + E_OFFSET, 132);
}
static void forge_section_runs_into_table(uint8_t *b)
{
    uint8_t *e = entry_at(b, 1); /* b: f32 [2, 18] = 144 bytes from 128 > 192 */
    put_u64(e + E_SHAPE + 8, 18);
    put_u64(e + E_NBYTES, 144);
}

static void test_forged_section_out_of_bounds_refused(void **state)
{
    (void)state;
    assert_forgery_refused(forge_offset_at_table, "out of bounds");
    assert_forgery_refused(forge_offset_far_past_end, "out of bounds");
    assert_forgery_refused(forge_offset_wraps, "out of bounds");
    assert_forgery_refused(forge_offset_in_header, "out of bounds");
    assert_forgery_refused(forge_section_runs_into_table, "out of bounds");
}

static void test_forged_misaligned_section_refused(void **state)
{
    (void)state;
    assert_forgery_refused(forge_offset_misaligned, "out of bounds");
}

static void forge_shape_overflow_2d(uint8_t *b)
{
    uint8_t *e = entry_at(b, 1); /* f32 [2^40, 2^40]: 2^82 bytes */
    put_u64(e + E_SHAPE, 1ULL << 40);
    put_u64(e + E_SHAPE + 8, 1ULL << 40);
    put_u64(e + E_NBYTES, 0);
}
static void forge_shape_overflow_dtype(uint8_t *b)
{
    uint8_t *e = entry_at(b, 0); /* u32 [2^62]: 2^64 bytes, wraps to 0 */
    put_u64(e + E_SHAPE, 1ULL << 62);
    put_u64(e + E_NBYTES, 0);
}
static void forge_shape_overflow_4d(uint8_t *b)
{
    uint8_t *e = entry_at(b, 1); /* f32 [2^16, 2^16, 2^16, 2^16]: 2^66 bytes */
    put_u32(e + E_NDIM, 4);
    for (int k = 0; k < 4; k++)
        put_u64(e + E_SHAPE + 8 * k, 1ULL << 16);
    put_u64(e + E_NBYTES, 0);
}
static void forge_nbytes_disagrees(uint8_t *b)
{
    put_u64(entry_at(b, 0) + E_NBYTES, 16);
}
static void forge_dtype_zero(uint8_t *b)
{
    put_u32(entry_at(b, 0) + E_DTYPE, 0);
}
static void forge_dtype_seven(uint8_t *b)
{
    put_u32(entry_at(b, 0) + E_DTYPE, 7);
}
static void forge_ndim_zero(uint8_t *b)
{
    put_u32(entry_at(b, 0) + E_NDIM, 0);
}
static void forge_ndim_five(uint8_t *b)
{
    put_u32(entry_at(b, 0) + E_NDIM, 5);
}

static void test_forged_shape_overflow_or_mismatch_refused(void **state)
{
    (void)state;
    assert_forgery_refused(forge_shape_overflow_2d, "bad shape");
    assert_forgery_refused(forge_shape_overflow_dtype, "bad shape");
    assert_forgery_refused(forge_shape_overflow_4d, "bad shape");
    assert_forgery_refused(forge_nbytes_disagrees, "bad shape");
    assert_forgery_refused(forge_dtype_zero, "bad shape");
    assert_forgery_refused(forge_dtype_seven, "bad shape");
    assert_forgery_refused(forge_ndim_zero, "bad shape");
    assert_forgery_refused(forge_ndim_five, "bad shape");
}

static void forge_table_past_end(uint8_t *b)
{
    put_u64(b + H_TABLE, 256);
}
static void forge_table_far_past_end(uint8_t *b)
{
    put_u64(b + H_TABLE, 1ULL << 50);
}
static void forge_table_wraps(uint8_t *b)
{
    put_u64(b + H_TABLE, UINT64_MAX - 63);
}
static void forge_table_in_header(uint8_t *b)
{
    put_u64(b + H_TABLE, 0);
}
static void forge_table_misaligned(uint8_t *b)
{
    put_u64(b + H_TABLE, 200);
}
static void forge_one_section_too_many(uint8_t *b)
{
    put_u32(b + H_NSECT, 3);
}
static void forge_too_many_sections(uint8_t *b)
{
    put_u32(b + H_NSECT, MF_MAX_SECTIONS + 1);
}

static void test_forged_table_out_of_bounds_refused(void **state)
{
    (void)state;
    assert_forgery_refused(forge_table_past_end, "section table");
    assert_forgery_refused(forge_table_far_past_end, "section table");
    assert_forgery_refused(forge_table_wraps, "section table");
    assert_forgery_refused(forge_table_in_header, "section table");
    assert_forgery_refused(forge_table_misaligned, "section table");
    assert_forgery_refused(forge_one_section_too_many, "section table");
    assert_forgery_refused(forge_too_many_sections, "too many sections");
}

static void forge_name_without_nul(uint8_t *b)
{
    memset(entry_at(b, 0), 'A', 56);
}
static void forge_empty_name(uint8_t *b)
{
    memset(entry_at(b, 1), 0, 56);
}
static void forge_file_size_field(uint8_t *b)
{
    put_u64(b + H_FSIZE, SMALL_SIZE + 64);
}
static void forge_end_magic(uint8_t *b)
{
    memcpy(b + SMALL_SIZE - 8, "EMBEREN!", 8);
}

static void test_forged_names_sizes_and_end_marker_refused(void **state)
{
    (void)state;
    assert_forgery_refused(forge_name_without_nul, "bad name");
    assert_forgery_refused(forge_empty_name, "bad name");
    assert_forgery_refused(forge_file_size_field, "truncated or extended");
    assert_forgery_refused(forge_end_magic, "end marker");
}

static void test_resealing_an_unchanged_file_keeps_it_valid(void **state)
{
    (void)state;
    /* the forging helper itself does not break a file: refusals above are
     * due to the edits */
    size_t n;
    uint8_t *buf = small_bytes(&n);
    reseal(buf, n);
    mf_reader *r;
    assert_int_equal(mf_open_mem(buf, n, &r), EMBER_OK);
    assert_non_null(mf_get_1d(r, "a", MF_U32, 3, NULL));
    mf_close(r);
    free(buf);
}

/* ------------------------------------------------------------ mf_get */

static void test_get_with_wrong_dtype_ndim_or_count_fails_cleanly(void **state)
{
    (void)state;
    const char *path = tmp_path("get.mf");
    write_small(path);
    mf_reader *r;
    assert_int_equal(mf_open(path, &r), EMBER_OK);
    uint64_t shape[4];
    ember_clear_error();
    assert_null(mf_get(r, "a", MF_F32, 1, shape));
    assert_non_null(strstr(ember_last_error(), "'a'"));
    ember_clear_error();
    assert_null(mf_get(r, "a", MF_U32, 2, shape));
    assert_non_null(strstr(ember_last_error(), "'a'"));
    ember_clear_error();
    assert_null(mf_get(r, "b", MF_F32, 1, shape));
    assert_string_not_equal(ember_last_error(), "");
    ember_clear_error();
    assert_null(mf_get(r, "missing", MF_U32, 1, shape));
    assert_non_null(strstr(ember_last_error(), "no section 'missing'"));
    ember_clear_error();
    assert_null(mf_get_1d(r, "a", MF_U32, 4, NULL));
    assert_non_null(strstr(ember_last_error(), "holds 3 values"));
    /* and the right questions still get answers */
    const uint32_t *a = mf_get_1d(r, "a", MF_U32, 3, NULL);
    assert_non_null(a);
    assert_memory_equal(a, SMALL_A, sizeof SMALL_A);
    mf_close(r);
}

/* ------------------------------------------------------ failed writes */

static void check_small_at(const char *path)
{
    mf_reader *r;
    assert_int_equal(mf_open(path, &r), EMBER_OK);
    const uint32_t *a = mf_get_1d(r, "a", MF_U32, 3, NULL);
    assert_non_null(a);
    assert_memory_equal(a, SMALL_A, sizeof SMALL_A);
    mf_close(r);
}

static void test_write_into_missing_directory_is_eio_without_temp(void **state)
{
    (void)state;
    const char *dir = make_dir("wdir-missing");
    char path[600];
    snprintf(path, sizeof path, "%s/no/such/dir/model.mf", dir);
    mf_writer *w = mf_writer_new();
    assert_non_null(w);
    assert_int_equal(mf_add_1d(w, "a", MF_U32, 3, SMALL_A), EMBER_OK);
    ember_clear_error();
    assert_int_equal(mf_writer_write(w, path), EMBER_EIO);
    assert_non_null(strstr(ember_last_error(), "model.mf"));
    mf_writer_free(w);
    assert_false(dir_has_temp(dir));
}

static void test_write_over_a_directory_is_eio_without_temp(void **state)
{
    (void)state;
    const char *dir = make_dir("wdir-rename");
    char target[600];
    snprintf(target, sizeof target, "%s/model.mf", dir);
    assert_int_equal(mkdir(target, 0700), 0); /* rename(tmp, target) fails */
    mf_writer *w = mf_writer_new();
    assert_non_null(w);
    assert_int_equal(mf_add_1d(w, "a", MF_U32, 3, SMALL_A), EMBER_OK);
    ember_clear_error();
    assert_int_equal(mf_writer_write(w, target), EMBER_EIO);
    assert_string_not_equal(ember_last_error(), "");
    mf_writer_free(w);
    assert_false(dir_has_temp(dir));
    struct stat sb;
    assert_int_equal(stat(target, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
}

static void test_write_failing_midway_keeps_the_old_file(void **state)
{
    (void)state;
    const char *dir = make_dir("wdir-fsize");
    char path[600];
    snprintf(path, sizeof path, "%s/model.mf", dir);
    write_small(path);
    static float big[16384];
    for (size_t i = 0; i < EMBER_ARRAY_LEN(big); i++)
        big[i] = (float)i;
    mf_writer *w = mf_writer_new();
    assert_non_null(w);
    assert_int_equal(mf_add_1d(w, "big", MF_F32, EMBER_ARRAY_LEN(big), big), EMBER_OK);
    /* files may not grow past 4 KB: the write fails with EFBIG */
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 4096;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    ember_clear_error();
    int st = mf_writer_write(w, path);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    mf_writer_free(w);
    assert_int_equal(st, EMBER_EIO);
    assert_non_null(strstr(ember_last_error(), "write failed"));
    assert_false(dir_has_temp(dir));
    check_small_at(path); /* the previous model is still there, intact */
}

/* --------------------------------------------------- fault injection */

#define FI_SECTIONS 20 /* more than the writer's first capacity of 16 */

static void test_allocation_failures_in_write_and_open_fail_cleanly(void **state)
{
    (void)state;
    const char *dir = make_dir("fault");
    char path[600];
    snprintf(path, sizeof path, "%s/model.mf", dir);
    uint32_t vals[FI_SECTIONS];
    for (uint32_t i = 0; i < FI_SECTIONS; i++)
        vals[i] = 1000 + i;
    bool done = false;
    long failures = 0;
    for (long nth = 1; nth <= 1000 && !done; nth++) {
        write_small(path); /* the previous model, before each attempt */
        size_t n_old;
        uint8_t *old_bytes = read_all(path, &n_old);
        int st = EMBER_OK, stage = 0;
        mf_reader *r = NULL, *rm = NULL;
        ember_clear_error();
        ember_fault_inject_alloc(nth);
        mf_writer *w = mf_writer_new();
        if (!w)
            st = EMBER_ENOMEM;
        for (uint32_t i = 0; i < FI_SECTIONS && st == EMBER_OK; i++) {
            char name[16];
            snprintf(name, sizeof name, "s%u", i);
            st = mf_add_1d(w, name, MF_U32, 1, &vals[i]);
        }
        if (st == EMBER_OK) {
            stage = 1;
            st = mf_writer_write(w, path);
        }
        if (st == EMBER_OK) {
            stage = 2;
            st = mf_open(path, &r);
        }
        size_t n_new = 0;
        uint8_t *new_bytes = NULL;
        if (st == EMBER_OK) {
            stage = 3;
            new_bytes = read_all(path, &n_new); /* plain malloc: not counted */
            st = mf_open_mem(new_bytes, n_new, &rm);
        }
        ember_fault_inject_alloc(0);
        mf_writer_free(w);
        if (st == EMBER_OK) {
            done = true;
            for (uint32_t i = 0; i < FI_SECTIONS; i++) {
                char name[16];
                snprintf(name, sizeof name, "s%u", i);
                const uint32_t *v = mf_get_1d(r, name, MF_U32, 1, NULL);
                const uint32_t *vm = mf_get_1d(rm, name, MF_U32, 1, NULL);
                assert_non_null(v);
                assert_non_null(vm);
                assert_int_equal(*v, 1000 + i);
                assert_int_equal(*vm, 1000 + i);
            }
        } else {
            failures++;
            assert_int_equal(st, EMBER_ENOMEM);
            assert_string_not_equal(ember_last_error(), "");
            assert_null(rm);
            if (stage <= 2)
                assert_null(r);
            if (stage <= 1) {
                /* the write never happened: the old file is untouched */
                size_t n_now;
                uint8_t *now = read_all(path, &n_now);
                assert_int_equal(n_now, n_old);
                assert_memory_equal(now, old_bytes, n_old);
                free(now);
            }
        }
        assert_false(dir_has_temp(dir));
        mf_close(r);
        mf_close(rm);
        free(old_bytes);
        free(new_bytes);
    }
    assert_true(done);
    /* at least: the writer, two growths of its two arrays, the temporary
     * name, the reader and its path in mf_open, and the reader, its copy
     * and its name in mf_open_mem */
    assert_true(failures >= 11);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_dtype_exact_bytes_aligned),
        cmocka_unit_test(test_open_mem_gives_the_same_sections_aligned),
        cmocka_unit_test(test_empty_sections_round_trip),
        cmocka_unit_test(test_file_with_no_sections_round_trips),
        cmocka_unit_test(test_layout_matches_the_documented_format),
        cmocka_unit_test(test_add_refuses_a_duplicate_name),
        cmocka_unit_test(test_add_refuses_empty_and_too_long_names),
        cmocka_unit_test(test_add_refuses_bad_dtype_ndim_or_missing_data),
        cmocka_unit_test(test_truncated_file_refused_at_every_length),
        cmocka_unit_test(test_every_single_bit_flip_is_refused),
        cmocka_unit_test(test_corrupt_payload_named_as_checksum_mismatch),
        cmocka_unit_test(test_foreign_files_refused),
        cmocka_unit_test(test_missing_file_and_directory_are_io_errors),
        cmocka_unit_test(test_newer_version_refused_naming_the_version),
        cmocka_unit_test(test_forged_section_out_of_bounds_refused),
        cmocka_unit_test(test_forged_misaligned_section_refused),
        cmocka_unit_test(test_forged_shape_overflow_or_mismatch_refused),
        cmocka_unit_test(test_forged_table_out_of_bounds_refused),
        cmocka_unit_test(test_forged_names_sizes_and_end_marker_refused),
        cmocka_unit_test(test_resealing_an_unchanged_file_keeps_it_valid),
        cmocka_unit_test(test_get_with_wrong_dtype_ndim_or_count_fails_cleanly),
        cmocka_unit_test(test_write_into_missing_directory_is_eio_without_temp),
        cmocka_unit_test(test_write_over_a_directory_is_eio_without_temp),
        cmocka_unit_test(test_write_failing_midway_keeps_the_old_file),
        cmocka_unit_test(test_allocation_failures_in_write_and_open_fail_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
