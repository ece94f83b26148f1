/* test_features.c — side features (src/data/features.c): RecBole .item and
 * .user files (ML-100K when present), plain TSV with guessed types, the
 * layout by entity, unknown ids, and every way a file can be malformed;
 * allocation failures injected one by one; random bytes never crash. */
#include "testutil.h"

#include "data/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A map with ids "1".."n" at indices 0..n-1. */
static ember_idmap *numbered_ids(size_t n)
{
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    for (size_t i = 1; i <= n; i++) {
        char id[24];
        uint32_t idx;
        int len = snprintf(id, sizeof id, "%zu", i);
        assert_int_equal(ember_idmap_intern(m, id, (size_t)len, &idx), EMBER_OK);
    }
    return m;
}

static ember_idmap *ids_of(const char *const *names, size_t n)
{
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    for (size_t i = 0; i < n; i++) {
        uint32_t idx;
        assert_int_equal(ember_idmap_intern(m, names[i], strlen(names[i]), &idx), EMBER_OK);
    }
    return m;
}

/* Number of entries of entity e in column c. */
static size_t n_entries(const data_feature *c, size_t e)
{
    return (size_t)(c->ptr[e + 1] - c->ptr[e]);
}

/* Whether entity e has token name in column c. */
static bool has_token(const data_feature *c, size_t e, const char *name)
{
    for (uint64_t k = c->ptr[e]; k < c->ptr[e + 1]; k++)
        if (strcmp(ember_idmap_name(c->vocab, c->tok[k]), name) == 0)
            return true;
    return false;
}

/* Writes len raw bytes to a temp file; returns its path (static buffer). */
static const char *write_bytes(const char *name, const char *bytes, size_t len)
{
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", test_tmpdir(), name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1, len, fp), len);
    fclose(fp);
    return path;
}

/* Loads text written to a temp file; returns the status. */
static int load_text(const char *name, const char *text, const char *id_col,
                     const ember_idmap *ids, data_features *f)
{
    return data_features_load(test_write_file(name, text), id_col, ids, f);
}

static void test_features_ml100k_items_load_with_genres_as_token_seq(void **state)
{
    TEST_REQUIRE_DATA(path, "ml-100k/ml-100k.item");
    ember_idmap *ids = numbered_ids(1682);
    data_features f;
    assert_int_equal(data_features_load(path, NULL, ids, &f), EMBER_OK);
    assert_int_equal(f.n_entities, 1682);
    assert_int_equal(f.skipped_unknown, 0);
    assert_int_equal(f.n_cols, 3);
    const data_feature *genre = data_features_col(&f, "class");
    assert_non_null(genre);
    assert_int_equal(genre->type, FEAT_TOKEN_SEQ);
    /* item "1", Toy Story: Animation Children's Comedy */
    assert_int_equal(n_entries(genre, 0), 3);
    assert_true(has_token(genre, 0, "Animation"));
    assert_true(has_token(genre, 0, "Children's"));
    assert_true(has_token(genre, 0, "Comedy"));
    assert_string_equal(genre->text[0], "Animation Children's Comedy");
    /* item "2", GoldenEye: Action Adventure Thriller */
    assert_true(has_token(genre, 1, "Thriller"));
    assert_false(has_token(genre, 1, "Comedy"));
    for (size_t e = 0; e < 1682; e++) /* every item has a genre */
        assert_true(n_entries(genre, e) >= 1);
    const data_feature *year = data_features_col(&f, "release_year");
    assert_int_equal(year->type, FEAT_TOKEN);
    assert_string_equal(ember_idmap_name(year->vocab, year->tok[year->ptr[0]]), "1995");
    data_features_free(&f);
    ember_idmap_free(ids);
}

static void test_features_ml100k_titles_are_kept_as_text(void **state)
{
    TEST_REQUIRE_DATA(path, "ml-100k/ml-100k.item");
    ember_idmap *ids = numbered_ids(1682);
    data_features f;
    assert_int_equal(data_features_load(path, NULL, ids, &f), EMBER_OK);
    const data_feature *title = data_features_col(&f, "movie_title");
    assert_non_null(title);
    assert_int_equal(title->type, FEAT_TOKEN_SEQ);
    assert_non_null(title->text);
    assert_string_equal(title->text[0], "Toy Story");
    assert_string_equal(title->text[1], "GoldenEye");
    assert_string_equal(title->text[3], "Get Shorty");
    assert_int_equal(n_entries(title, 0), 2); /* "Toy" "Story" */
    assert_true(has_token(title, 0, "Story"));
    data_features_free(&f);
    ember_idmap_free(ids);
}

static void test_features_ml100k_users_load(void **state)
{
    TEST_REQUIRE_DATA(path, "ml-100k/ml-100k.user");
    ember_idmap *ids = numbered_ids(943);
    data_features f;
    assert_int_equal(data_features_load(path, NULL, ids, &f), EMBER_OK);
    assert_int_equal(f.n_entities, 943);
    assert_int_equal(f.n_cols, 4);
    const data_feature *occ = data_features_col(&f, "occupation");
    const data_feature *gender = data_features_col(&f, "gender");
    assert_non_null(occ);
    assert_non_null(gender);
    assert_string_equal(occ->text[0], "technician"); /* user 1: 24 M technician 85711 */
    assert_true(has_token(gender, 0, "M"));
    assert_true(has_token(gender, 1, "F"));
    assert_int_equal(ember_idmap_size(gender->vocab), 2);
    data_features_free(&f);
    ember_idmap_free(ids);
}

static void test_features_ml100k_unknown_ids_are_skipped_and_counted(void **state)
{
    TEST_REQUIRE_DATA(path, "ml-100k/ml-100k.item");
    ember_idmap *ids = numbered_ids(100);
    data_features f;
    assert_int_equal(data_features_load(path, NULL, ids, &f), EMBER_OK);
    assert_int_equal(f.n_entities, 100);
    assert_int_equal(f.skipped_unknown, 1682 - 100);
    const data_feature *title = data_features_col(&f, "movie_title");
    assert_string_equal(title->text[99], "Fargo"); /* item "100" */
    data_features_free(&f);
    ember_idmap_free(ids);
}

static void test_features_unknown_ids_are_skipped_and_counted(void **state)
{
    static const char *const names[] = {"b", "zz", "a"};
    ember_idmap *ids = ids_of(names, 3);
    data_features f;
    assert_int_equal(load_text("unk.item",
                               "id:token\tcolor:token\n"
                               "a\tred\n"
                               "x\tblue\n"
                               "b\tgreen\n"
                               "y\tred\n",
                               NULL, ids, &f),
                     EMBER_OK);
    assert_int_equal(f.skipped_unknown, 2);
    assert_int_equal(f.n_entities, 3);
    const data_feature *c = data_features_col(&f, "color");
    assert_string_equal(c->text[0], "green"); /* b */
    assert_null(c->text[1]);                   /* zz: no row */
    assert_int_equal(n_entries(c, 1), 0);
    assert_string_equal(c->text[2], "red"); /* a */
    assert_int_equal(ember_idmap_size(c->vocab), 2); /* skipped rows add no tokens */
    data_features_free(&f);
    ember_idmap_free(ids);
}

static void test_features_wrong_field_count_is_format_error_with_line(void **state)
{
    ember_idmap *ids = numbered_ids(3);
    data_features f;
    assert_int_equal(load_text("short.item",
                               "item_id:token\ttitle:token_seq\tyear:token\n"
                               "1\tToy Story\t1995\n"
                               "2\tGoldenEye\n"
                               "3\tFour Rooms\t1995\n",
                               NULL, ids, &f),
                     EMBER_EFORMAT);
    assert_non_null(strstr(ember_last_error(), "short.item:3:"));
    assert_non_null(strstr(ember_last_error(), "expected 3 fields, found 2"));
    assert_int_equal(f.n_cols, 0);
    assert_int_equal(load_text("long.item",
                               "item_id:token\tyear:token\n"
                               "1\t1995\n"
                               "\n"
                               "2\t1995\textra\n",
                               NULL, ids, &f),
                     EMBER_EFORMAT);
    assert_non_null(strstr(ember_last_error(), "long.item:4:"));
    ember_idmap_free(ids);
}

static void test_features_plain_tsv_guesses_float_and_token(void **state)
{
    ember_idmap *ids = numbered_ids(3);
    data_features f;
    assert_int_equal(load_text("plain.tsv",
                               "id\tprice\tcolor\tcode\n"
                               "1\t2.5\tred\t7\n"
                               "2\t\tblue\tA7\n"
                               "3\t-4\tgreen\t8\n",
                               NULL, ids, &f),
                     EMBER_OK);
    const data_feature *price = data_features_col(&f, "price");
    const data_feature *color = data_features_col(&f, "color");
    const data_feature *code = data_features_col(&f, "code");
    assert_int_equal(price->type, FEAT_FLOAT);
    assert_int_equal(color->type, FEAT_TOKEN);
    assert_int_equal(code->type, FEAT_TOKEN); /* one value is not a number */
    assert_null(price->text);
    assert_int_equal(n_entries(price, 0), 1);
    assert_true(price->val[price->ptr[0]] == 2.5f);
    assert_int_equal(n_entries(price, 1), 0); /* empty field: missing */
    assert_true(price->val[price->ptr[2]] == -4.0f);
    assert_string_equal(code->text[2], "8");
    data_features_free(&f);
    ember_idmap_free(ids);
}

static void test_features_token_seq_is_sorted_and_unique(void **state)
{
    ember_idmap *ids = numbered_ids(2);
    data_features f;
    assert_int_equal(load_text("tags.item",
                               "id:token\ttags:token_seq\n"
                               "2\tc a\n"
                               "1\tb a b  c \n",
                               NULL, ids, &f),
                     EMBER_OK);
    const data_feature *t = data_features_col(&f, "tags");
    /* vocabulary in order of first appearance: c 0, a 1, b 2 */
    assert_int_equal(n_entries(t, 0), 3);
    assert_int_equal(t->tok[t->ptr[0] + 0], 0);
    assert_int_equal(t->tok[t->ptr[0] + 1], 1);
    assert_int_equal(t->tok[t->ptr[0] + 2], 2);
    assert_string_equal(t->text[0], "b a b  c"); /* raw text, trimmed */
    assert_int_equal(n_entries(t, 1), 2);
    data_features_free(&f);
    ember_idmap_free(ids);
}

static void test_features_float_seq_keeps_values_in_order(void **state)
{
    ember_idmap *ids = numbered_ids(1);
    data_features f;
    assert_int_equal(
        load_text("emb.item", "id:token\temb:float_seq\tw:float\n1\t0.5 -1  2e1\t3\n", NULL, ids,
                  &f),
        EMBER_OK);
    const data_feature *e = data_features_col(&f, "emb");
    assert_int_equal(e->type, FEAT_FLOAT_SEQ);
    assert_int_equal(n_entries(e, 0), 3);
    assert_true(e->val[0] == 0.5f && e->val[1] == -1.0f && e->val[2] == 20.0f);
    const data_feature *w = data_features_col(&f, "w");
    assert_true(w->val[w->ptr[0]] == 3.0f);
    data_features_free(&f);
    ember_idmap_free(ids);
}

static void test_features_id_column_is_chosen_by_name(void **state)
{
    ember_idmap *ids = numbered_ids(2);
    data_features f;
    assert_int_equal(load_text("byname.tsv", "name\tid\nAlpha\t2\nBeta\t1\n", "id", ids, &f),
                     EMBER_OK);
    assert_int_equal(f.n_cols, 1);
    const data_feature *n = data_features_col(&f, "name");
    assert_string_equal(n->text[0], "Beta");
    assert_string_equal(n->text[1], "Alpha");
    assert_null(data_features_col(&f, "id"));
    data_features_free(&f);
    assert_int_equal(load_text("noid.tsv", "name\tid\nAlpha\t2\n", "item_id", ids, &f),
                     EMBER_EFORMAT);
    assert_non_null(strstr(ember_last_error(), "item_id"));
    ember_idmap_free(ids);
}

static void test_features_bad_number_is_format_error_with_line(void **state)
{
    ember_idmap *ids = numbered_ids(2);
    data_features f;
    assert_int_equal(
        load_text("num.item", "id:token\tprice:float\n1\t2.5\n2\tcheap\n", NULL, ids, &f),
        EMBER_EFORMAT);
    assert_non_null(strstr(ember_last_error(), "num.item:3:"));
    assert_non_null(strstr(ember_last_error(), "cheap"));
    assert_int_equal(
        load_text("nan.item", "id:token\tv:float_seq\n1\t1 nan\n", NULL, ids, &f),
        EMBER_EFORMAT);
    ember_idmap_free(ids);
}

static void test_features_duplicate_id_is_format_error(void **state)
{
    ember_idmap *ids = numbered_ids(2);
    data_features f;
    assert_int_equal(load_text("dup.item", "id:token\tc:token\n1\ta\n2\tb\n1\tc\n", NULL, ids, &f),
                     EMBER_EFORMAT);
    assert_non_null(strstr(ember_last_error(), "dup.item:4:"));
    ember_idmap_free(ids);
}

static void test_features_header_problems_are_format_errors(void **state)
{
    ember_idmap *ids = numbered_ids(2);
    data_features f;
    assert_int_equal(load_text("mixed.item", "id:token\tcolor\n1\tred\n", NULL, ids, &f),
                     EMBER_EFORMAT);
    assert_non_null(strstr(ember_last_error(), "mixed.item:1:"));
    assert_int_equal(load_text("twice.tsv", "id\tc\tc\n1\ta\tb\n", NULL, ids, &f),
                     EMBER_EFORMAT);
    assert_int_equal(load_text("noname.tsv", "id\t\n1\ta\n", NULL, ids, &f), EMBER_EFORMAT);
    assert_int_equal(load_text("empty.tsv", "", NULL, ids, &f), EMBER_EFORMAT);
    assert_non_null(strstr(ember_last_error(), "empty"));
    ember_idmap_free(ids);
}

static void test_features_header_only_file_has_no_values(void **state)
{
    ember_idmap *ids = numbered_ids(2);
    data_features f;
    assert_int_equal(load_text("hdr.item", "id:token\tc:token\n", NULL, ids, &f), EMBER_OK);
    assert_int_equal(f.n_cols, 1);
    assert_int_equal(n_entries(&f.cols[0], 0), 0);
    assert_int_equal(n_entries(&f.cols[0], 1), 0);
    data_features_free(&f);
    ember_idmap_free(ids);
}

static void test_features_crlf_and_bom_are_accepted(void **state)
{
    ember_idmap *ids = numbered_ids(2);
    data_features f;
    assert_int_equal(
        load_text("crlf.item", "\xEF\xBB\xBFid:token\tc:token\r\n1\tred\r\n2\tblue\r\n", NULL,
                  ids, &f),
        EMBER_OK);
    const data_feature *c = data_features_col(&f, "c");
    assert_non_null(c);
    assert_string_equal(c->text[0], "red");
    assert_string_equal(c->text[1], "blue");
    data_features_free(&f);
    ember_idmap_free(ids);
}

static void test_features_overlong_line_is_format_error(void **state)
{
    size_t n = (1u << 20) + 100;
    char *text = malloc(n + 64);
    assert_non_null(text);
    int h = sprintf(text, "id:token\tc:token\n1\t");
    memset(text + h, 'x', n);
    strcpy(text + h + n, "\n");
    ember_idmap *ids = numbered_ids(1);
    data_features f;
    assert_int_equal(load_text("overlong.item", text, NULL, ids, &f), EMBER_EFORMAT);
    assert_non_null(strstr(ember_last_error(), "overlong.item:2:"));
    free(text);
    ember_idmap_free(ids);
}

static void test_features_nul_byte_is_format_error(void **state)
{
    static const char bytes[] = "id:token\tc:token\n1\tre\0d\n";
    ember_idmap *ids = numbered_ids(1);
    data_features f;
    assert_int_equal(data_features_load(write_bytes("nul.item", bytes, sizeof bytes - 1), NULL,
                                        ids, &f),
                     EMBER_EFORMAT);
    assert_non_null(strstr(ember_last_error(), "nul.item:2:"));
    ember_idmap_free(ids);
}

static void test_features_missing_file_is_io_error(void **state)
{
    ember_idmap *ids = numbered_ids(1);
    data_features f;
    assert_int_equal(data_features_load("/nonexistent/x.item", NULL, ids, &f), EMBER_EIO);
    assert_int_equal(data_features_load(test_tmpdir(), NULL, ids, &f), EMBER_EIO); /* a dir */
    assert_int_equal(data_features_load(NULL, NULL, ids, &f), EMBER_EINVAL);
    ember_idmap_free(ids);
}

static void test_features_col_lookup_by_name(void **state)
{
    ember_idmap *ids = numbered_ids(1);
    data_features f;
    assert_int_equal(load_text("cols.item", "id:token\ta:token\tb:float\n1\tx\t1\n", NULL, ids, &f),
                     EMBER_OK);
    assert_ptr_equal(data_features_col(&f, "a"), &f.cols[0]);
    assert_ptr_equal(data_features_col(&f, "b"), &f.cols[1]);
    assert_null(data_features_col(&f, "c"));
    assert_null(data_features_col(&f, NULL));
    data_features_free(&f);
    data_features_free(&f); /* a freed set is empty and can be freed again */
    data_features_free(NULL);
    ember_idmap_free(ids);
}

static void test_features_survive_allocation_failures(void **state)
{
    const char *path = test_write_file("oom.item",
                                       "id:token\ttitle:token_seq\tc:token\tv:float_seq\n"
                                       "1\tToy Story\tx\t1 2\n"
                                       "3\tHeat\ty\t\n"
                                       "2\tThe Big Sleep\tx\t3\n");
    ember_idmap *ids = numbered_ids(3);
    data_features f;
    int st = EMBER_ENOMEM;
    long n;
    for (n = 1; n < 500 && st == EMBER_ENOMEM; n++) {
        ember_fault_inject_alloc(n);
        st = data_features_load(path, NULL, ids, &f);
        ember_fault_inject_alloc(0);
        if (st == EMBER_ENOMEM)
            assert_int_equal(f.n_cols, 0);
    }
    assert_int_equal(st, EMBER_OK);
    assert_true(n > 10);
    assert_string_equal(data_features_col(&f, "title")->text[1], "The Big Sleep");
    data_features_free(&f);
    ember_idmap_free(ids);
}

/* Random bytes, with tabs, newlines and header words made common; half
 * the files start with a valid typed header.  Any status but a crash (the
 * sanitizer build checks every memory access). */
static void test_features_random_bytes_never_crash(void **state)
{
    static const char header[] = "id:token\ta:token_seq\tb:float_seq\n";
    static const char alphabet[] = "\t\t\n\n 123:tokenfloat_seq.e-\r\"\xEF\xBB\xBF";
    ember_idmap *ids = numbered_ids(20);
    ember_rng r;
    ember_rng_seed(&r, 99);
    char buf[600];
    for (int round = 0; round < 300; round++) {
        size_t start = 0;
        if (round % 2 == 0) {
            memcpy(buf, header, sizeof header - 1);
            start = sizeof header - 1;
        }
        size_t len = start + (size_t)ember_rng_below(&r, sizeof buf - start);
        for (size_t i = start; i < len; i++) {
            bool any_byte = ember_rng_below(&r, 4) == 0;
            buf[i] = any_byte ? (char)ember_rng_next(&r)
                              : alphabet[ember_rng_below(&r, sizeof alphabet - 1)];
        }
        data_features f;
        int st = data_features_load(write_bytes("random.item", buf, len), NULL, ids, &f);
        assert_true(st == EMBER_OK || st == EMBER_EFORMAT);
        if (st == EMBER_OK)
            data_features_free(&f);
    }
    ember_idmap_free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_features_ml100k_items_load_with_genres_as_token_seq),
        cmocka_unit_test(test_features_ml100k_titles_are_kept_as_text),
        cmocka_unit_test(test_features_ml100k_users_load),
        cmocka_unit_test(test_features_ml100k_unknown_ids_are_skipped_and_counted),
        cmocka_unit_test(test_features_unknown_ids_are_skipped_and_counted),
        cmocka_unit_test(test_features_wrong_field_count_is_format_error_with_line),
        cmocka_unit_test(test_features_plain_tsv_guesses_float_and_token),
        cmocka_unit_test(test_features_token_seq_is_sorted_and_unique),
        cmocka_unit_test(test_features_float_seq_keeps_values_in_order),
        cmocka_unit_test(test_features_id_column_is_chosen_by_name),
        cmocka_unit_test(test_features_bad_number_is_format_error_with_line),
        cmocka_unit_test(test_features_duplicate_id_is_format_error),
        cmocka_unit_test(test_features_header_problems_are_format_errors),
        cmocka_unit_test(test_features_header_only_file_has_no_values),
        cmocka_unit_test(test_features_crlf_and_bom_are_accepted),
        cmocka_unit_test(test_features_overlong_line_is_format_error),
        cmocka_unit_test(test_features_nul_byte_is_format_error),
        cmocka_unit_test(test_features_missing_file_is_io_error),
        cmocka_unit_test(test_features_col_lookup_by_name),
        cmocka_unit_test(test_features_survive_allocation_failures),
        cmocka_unit_test(test_features_random_bytes_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
