/* test_reader.c — the interaction-file reader (src/data/reader.c): one test
 * per format and per behaviour, values checked by hand; the shared
 * ML-100K files when present; allocation failures injected one by one. */
#include "testutil.h"

#include "core/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One read with fresh maps; the test frees through rd_free. */
typedef struct {
    ember_idmap *users, *items;
    ember_coo c;
    ember_read_stats st;
    int rc;
} rd;

static void rd_init(rd *r)
{
    memset(r, 0, sizeof *r);
    r->users = ember_idmap_new();
    r->items = ember_idmap_new();
    assert_non_null(r->users);
    assert_non_null(r->items);
}

static void rd_free(rd *r)
{
    ember_coo_free(&r->c);
    ember_idmap_free(r->users);
    ember_idmap_free(r->items);
}

static ember_read_opts opts_of(ember_format f, const char *cols, ember_bad_policy pol)
{
    ember_read_opts o;
    ember_read_opts_init(&o);
    o.format = f;
    o.cols = cols;
    o.on_bad = pol;
    return o;
}

/* Writes text to a temp file called name and reads it. */
static void rd_file(rd *r, const char *name, const char *text, const ember_read_opts *o)
{
    rd_init(r);
    const char *path = test_write_file(name, text);
    r->rc = ember_coo_read(path, o, r->users, r->items, &r->c, &r->st);
}

static void rd_mem(rd *r, const char *name, const char *buf, size_t len, const ember_read_opts *o)
{
    rd_init(r);
    r->rc = ember_coo_read_mem(name, buf, len, o, r->users, r->items, &r->c, &r->st);
}

/* Row i as external ids and values. */
static void assert_row(const rd *r, size_t i, const char *user, const char *item, float rating,
                       int64_t ts)
{
    assert_true(i < r->c.n);
    assert_string_equal(ember_idmap_name(r->users, r->c.user[i]), user);
    assert_string_equal(ember_idmap_name(r->items, r->c.item[i]), item);
    assert_float_equal(r->c.rating[i], rating, 0.0f);
    assert_int_equal(r->c.ts[i], ts);
}

static void assert_error_contains(const char *part)
{
    if (!strstr(ember_last_error(), part))
        fail_msg("error '%s' does not contain '%s'", ember_last_error(), part);
}

/* ------------------------------------------------------------- formats */

static void test_tsv_header_default_columns(void **state)
{
    rd r;
    rd_file(&r, "a.tsv",
            "user\titem\trating\ttimestamp\n"
            "u1\ti1\t4\t100\n"
            "u2\ti1\t2.5\t200\n"
            "u1\ti2\t5\t300\n",
            NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 3);
    assert_int_equal(r.st.lines, 3);
    assert_int_equal(r.st.rows, 3);
    assert_row(&r, 0, "u1", "i1", 4.0f, 100);
    assert_row(&r, 1, "u2", "i1", 2.5f, 200);
    assert_row(&r, 2, "u1", "i2", 5.0f, 300);
    /* dense indices in order of first appearance */
    assert_int_equal(r.c.user[0], 0);
    assert_int_equal(r.c.user[1], 1);
    assert_int_equal(r.c.user[2], 0);
    assert_int_equal(ember_idmap_size(r.users), 2);
    assert_int_equal(ember_idmap_size(r.items), 2);
    rd_free(&r);
}

static void test_tsv_columns_found_by_name_in_any_order(void **state)
{
    rd r;
    rd_file(&r, "b.tsv", "timestamp\textra\titem\tuser\trating\n7\tzz\tI\tU\t3\n", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 1);
    assert_row(&r, 0, "U", "I", 3.0f, 7);
    rd_free(&r);
}

static void test_cols_option_chooses_columns(void **state)
{
    const char *text = "userId,movieId,rating,timestamp\n"
                       "1,31,2.5,1260759144\n"
                       "1,1029,3.0,1260759179\n";
    rd r;
    ember_read_opts o = opts_of(EMBER_FMT_AUTO, "user=userId,item=movieId,rating=rating,time=timestamp",
                                EMBER_BAD_STOP);
    rd_file(&r, "ratings.csv", text, &o);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 2);
    assert_row(&r, 0, "1", "31", 2.5f, 1260759144);
    assert_row(&r, 1, "1", "1029", 3.0f, 1260759179);
    rd_free(&r);
    /* MovieLens' ratings.csv header needs no --cols */
    rd_file(&r, "ratings.csv", text, NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_row(&r, 1, "1", "1029", 3.0f, 1260759179);
    rd_free(&r);
    /* a header with no known item name is an error that says so */
    rd_file(&r, "ratings.csv", "userId,product,rating\n1,31,2.5\n", NULL);
    assert_int_equal(r.rc, EMBER_EFORMAT);
    assert_error_contains("no item column");
    rd_free(&r);
}

static void test_cols_accepts_timestamp_role_and_spaces(void **state)
{
    rd r;
    ember_read_opts o = opts_of(EMBER_FMT_CSV, " item = b , user=a,timestamp= c ", EMBER_BAD_STOP);
    rd_file(&r, "c.csv", "a,b,c\nx,y,42\n", &o);
    assert_int_equal(r.rc, EMBER_OK);
    assert_row(&r, 0, "x", "y", 1.0f, 42);
    rd_free(&r);
}

static void test_cols_empty_name_drops_a_column(void **state)
{
    rd r;
    ember_read_opts o = opts_of(EMBER_FMT_TSV, "rating=", EMBER_BAD_STOP);
    rd_file(&r, "d.tsv", "user\titem\trating\ttimestamp\nu\ti\tnot-a-number\t5\n", &o);
    assert_int_equal(r.rc, EMBER_OK);
    assert_row(&r, 0, "u", "i", 1.0f, 5);
    rd_free(&r);
}

static void test_cols_errors(void **state)
{
    const char *text = "user\titem\n1\t2\n";
    rd r;
    ember_read_opts o = opts_of(EMBER_FMT_TSV, "who=user", EMBER_BAD_STOP);
    rd_file(&r, "e.tsv", text, &o);
    assert_int_equal(r.rc, EMBER_EINVAL);
    assert_error_contains("unknown role 'who'");
    rd_free(&r);

    o.cols = "user";
    rd_file(&r, "e.tsv", text, &o);
    assert_int_equal(r.rc, EMBER_EINVAL);
    assert_error_contains("not role=column");
    rd_free(&r);

    o.cols = "rating=stars";
    rd_file(&r, "e.tsv", text, &o);
    assert_int_equal(r.rc, EMBER_EFORMAT);
    assert_error_contains("no column 'stars'");
    rd_free(&r);

    o.cols = "item=user";
    rd_file(&r, "e.tsv", text, &o);
    assert_int_equal(r.rc, EMBER_EINVAL);
    assert_error_contains("same column");
    rd_free(&r);

    o.cols = "user=";
    rd_file(&r, "e.tsv", text, &o);
    assert_int_equal(r.rc, EMBER_EINVAL);
    assert_error_contains("cannot be dropped");
    rd_free(&r);
}

static void test_cols_on_headerless_format_is_einval(void **state)
{
    rd r;
    ember_read_opts o = opts_of(EMBER_FMT_UDATA, "user=a", EMBER_BAD_STOP);
    rd_file(&r, "u.data", "1\t2\t3\t4\n", &o);
    assert_int_equal(r.rc, EMBER_EINVAL);
    assert_error_contains("needs a file with a header");
    rd_free(&r);
    o.cols = ""; /* an empty string asks for nothing */
    rd_file(&r, "u.data", "1\t2\t3\t4\n", &o);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 1);
    rd_free(&r);
}

static void test_udata_has_no_header_and_tabs(void **state)
{
    rd r;
    rd_file(&r, "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 2);
    assert_row(&r, 0, "196", "242", 3.0f, 881250949);
    assert_row(&r, 1, "186", "302", 3.0f, 891717742);
    rd_free(&r);
}

static void test_udata_needs_four_fields(void **state)
{
    rd r;
    rd_file(&r, "u.data", "1\t2\t3\t4\n5\t6\t7\n", NULL);
    assert_int_equal(r.rc, EMBER_EFORMAT);
    assert_error_contains(":2: expected 4 fields, found 3");
    rd_free(&r);
}

static void test_ml_dat_double_colon(void **state)
{
    rd r;
    rd_file(&r, "ratings.dat", "1::1193::5::978300760\n2::661::3::978302109\n", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 2);
    assert_row(&r, 0, "1", "1193", 5.0f, 978300760);
    assert_row(&r, 1, "2", "661", 3.0f, 978302109);
    rd_free(&r);
}

static void test_ml_dat_single_colon_is_part_of_a_field(void **state)
{
    rd r;
    ember_read_opts o = opts_of(EMBER_FMT_ML_DAT, NULL, EMBER_BAD_STOP);
    rd_file(&r, "x", "a:b::c:d::4::10\n", &o);
    assert_int_equal(r.rc, EMBER_OK);
    assert_row(&r, 0, "a:b", "c:d", 4.0f, 10);
    rd_free(&r);
}

static void test_ml_dat_empty_fields_are_bad(void **state)
{
    rd r;
    ember_read_opts o = opts_of(EMBER_FMT_ML_DAT, NULL, EMBER_BAD_SKIP);
    /* line 1: empty item; line 2: trailing "::" makes an empty 5th field
     * (fine, extra); line 3: three fields; line 4: empty time */
    rd_file(&r, "x", "1::::5::9\n1::2::5::9::\n1::2::5\n1::2::5::\n", &o);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 1);
    assert_row(&r, 0, "1", "2", 5.0f, 9);
    assert_int_equal(r.st.bad, 3);
    assert_int_equal(r.st.first_bad_line, 1);
    assert_string_equal(r.st.first_bad, "empty item id");
    rd_free(&r);
}

static void test_atomic_typed_header(void **state)
{
    rd r;
    rd_file(&r, "x.inter",
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
            "196\t242\t3\t881250949\n",
            NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 1);
    assert_row(&r, 0, "196", "242", 3.0f, 881250949);
    rd_free(&r);
}

static void test_atomic_found_by_header_without_extension(void **state)
{
    rd r;
    rd_file(&r, "noext", "user_id:token\titem_id:token\nu\ti\n", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_row(&r, 0, "u", "i", 1.0f, 0);
    rd_free(&r);
}

static void test_ml100k_inter_reads_all_rows(void **state)
{
    TEST_REQUIRE_DATA(path, "ml-100k/ml-100k.inter");
    rd r;
    rd_init(&r);
    r.rc = ember_coo_read(path, NULL, r.users, r.items, &r.c, &r.st);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 100000);
    assert_int_equal(r.st.bad, 0);
    assert_int_equal(ember_idmap_size(r.users), 943);
    assert_int_equal(ember_idmap_size(r.items), 1682);
    /* first line of the file: 196 242 3 881250949 */
    assert_row(&r, 0, "196", "242", 3.0f, 881250949);
    rd_free(&r);
}

static void test_general_train_split_reads_80024_rows(void **state)
{
    TEST_REQUIRE_DATA(path, "ml-100k/splits/general/train.tsv");
    rd r;
    rd_init(&r);
    r.rc = ember_coo_read(path, NULL, r.users, r.items, &r.c, &r.st);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 80024);
    assert_int_equal(r.st.lines, 80024);
    assert_int_equal(r.st.bad, 0);
    assert_row(&r, 0, "1", "149", 2.0f, 878542791);
    rd_free(&r);
}

/* ---------------------------------------------------------------- CSV */

static void test_csv_quoted_fields(void **state)
{
    rd r;
    rd_file(&r, "q.csv",
            "\"user\",\"item\",rating\n"
            "\"u \"\"one\"\"\",\"i,1\",4\n"
            "  \"u2\" , i2 ,\"3\"\n",
            NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 2);
    assert_row(&r, 0, "u \"one\"", "i,1", 4.0f, 0);
    assert_row(&r, 1, "u2", "i2", 3.0f, 0);
    rd_free(&r);
}

static void test_csv_unterminated_quote_is_bad(void **state)
{
    rd r;
    rd_file(&r, "q.csv", "user,item\na,b\n\"a,b\n", NULL);
    assert_int_equal(r.rc, EMBER_EFORMAT);
    assert_error_contains("q.csv:3: unterminated quote");
    rd_free(&r);
}

static void test_csv_text_after_closing_quote_is_bad(void **state)
{
    rd r;
    rd_file(&r, "q.csv", "user,item\n\"a\"x,b\n", NULL);
    assert_int_equal(r.rc, EMBER_EFORMAT);
    assert_error_contains(":2: text after a closing quote");
    rd_free(&r);
}

static void test_csv_quote_inside_unquoted_field_is_kept(void **state)
{
    rd r;
    rd_file(&r, "q.csv", "user,item\na\"b,c\n", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_row(&r, 0, "a\"b", "c", 1.0f, 0);
    rd_free(&r);
}

/* ------------------------------------------------------ lines and files */

static void test_missing_rating_and_time_give_defaults(void **state)
{
    rd r;
    rd_file(&r, "m.tsv", "user\titem\nu\ti\n", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_row(&r, 0, "u", "i", 1.0f, 0);
    rd_free(&r);
}

static void test_crlf_line_endings(void **state)
{
    rd r;
    rd_file(&r, "crlf.tsv", "user\titem\trating\r\nu\ti\t2\r\nv\tj\t3\r\n", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 2);
    assert_row(&r, 0, "u", "i", 2.0f, 0);
    assert_row(&r, 1, "v", "j", 3.0f, 0);
    rd_free(&r);
}

static void test_byte_order_mark_is_skipped(void **state)
{
    rd r;
    rd_file(&r, "bom.csv", "\xEF\xBB\xBFuser,item\nu,i\n", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_row(&r, 0, "u", "i", 1.0f, 0);
    rd_free(&r);
    /* u.data detection sees the digits after the mark */
    rd_file(&r, "bom", "\xEF\xBB\xBF" "1\t2\t3\t4\n", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_row(&r, 0, "1", "2", 3.0f, 4);
    rd_free(&r);
}

static void test_blank_lines_are_ignored_but_numbered(void **state)
{
    rd r;
    rd_file(&r, "blank.tsv", "\n\r\nuser\titem\trating\n\nu\ti\t1\n  \t\nu\ti\tx\n", NULL);
    assert_int_equal(r.rc, EMBER_EFORMAT);
    assert_error_contains("blank.tsv:7: rating 'x' is not a number");
    rd_free(&r);
    rd_file(&r, "blank.tsv", "\nuser\titem\n\nu\ti\n\n", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.st.lines, 1);
    assert_int_equal(r.c.n, 1);
    rd_free(&r);
}

static void test_last_line_without_newline(void **state)
{
    rd r;
    rd_file(&r, "nonl.tsv", "user\titem\nu\ti\n v \t j ", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 2);
    assert_row(&r, 1, "v", "j", 1.0f, 0); /* spaces around fields are trimmed */
    rd_free(&r);
}

static void test_empty_file_with_header_format_is_eformat(void **state)
{
    rd r;
    rd_file(&r, "empty.tsv", "", NULL);
    assert_int_equal(r.rc, EMBER_EFORMAT);
    assert_error_contains("empty file");
    rd_free(&r);
    rd_file(&r, "blank.csv", "\n \r\n", NULL);
    assert_int_equal(r.rc, EMBER_EFORMAT);
    assert_error_contains("empty file");
    rd_free(&r);
}

static void test_empty_file_without_header_format_has_no_rows(void **state)
{
    rd r;
    ember_read_opts o = opts_of(EMBER_FMT_UDATA, NULL, EMBER_BAD_STOP);
    rd_file(&r, "u.data", "", &o);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 0);
    rd_free(&r);
}

static void test_header_only_file_has_no_rows(void **state)
{
    rd r;
    rd_file(&r, "h.tsv", "user\titem\trating\ttimestamp\n", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 0);
    assert_int_equal(r.st.lines, 0);
    rd_free(&r);
    rd_file(&r, "h2.tsv", "user\titem", NULL); /* no newline at all */
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.n, 0);
    rd_free(&r);
}

static void test_header_without_user_column_is_eformat(void **state)
{
    rd r;
    rd_file(&r, "nouser.tsv", "uid\titem\n1\t2\n", NULL);
    assert_int_equal(r.rc, EMBER_EFORMAT);
    assert_error_contains("no user column (choose one with --cols user=NAME)");
    rd_free(&r);
}

static void test_timestamps_in_float_form(void **state)
{
    rd r;
    rd_file(&r, "t.tsv", "user\titem\ttimestamp\na\tb\t881250949.0\na\tc\t8.8e8\na\td\t-5\n", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.c.ts[0], 881250949);
    assert_int_equal(r.c.ts[1], 880000000);
    assert_int_equal(r.c.ts[2], -5);
    rd_free(&r);
}

static void test_ratings_equal_strtof(void **state)
{
    rd r;
    rd_file(&r, "r.tsv", "user\titem\trating\na\tb\t3.7\na\tc\t0.1\na\td\t4.25\na\te\t-2\n", NULL);
    assert_int_equal(r.rc, EMBER_OK);
    assert_float_equal(r.c.rating[0], strtof("3.7", NULL), 0.0f);
    assert_float_equal(r.c.rating[1], strtof("0.1", NULL), 0.0f);
    assert_float_equal(r.c.rating[2], 4.25f, 0.0f);
    assert_float_equal(r.c.rating[3], -2.0f, 0.0f);
    rd_free(&r);
}

static void test_read_appends_to_existing_rows(void **state)
{
    rd r;
    rd_init(&r);
    const char *path = test_write_file("app.tsv", "user\titem\nu\ti\n");
    assert_int_equal(ember_coo_read(path, NULL, r.users, r.items, &r.c, NULL), EMBER_OK);
    assert_int_equal(ember_coo_read(path, NULL, r.users, r.items, &r.c, NULL), EMBER_OK);
    assert_int_equal(r.c.n, 2);
    assert_int_equal(r.c.user[1], 0);
    assert_int_equal(ember_idmap_size(r.users), 1);
    rd_free(&r);
}

static void test_missing_file_and_directory_are_eio(void **state)
{
    rd r;
    rd_init(&r);
    assert_int_equal(ember_coo_read("/nonexistent/x.tsv", NULL, r.users, r.items, &r.c, NULL),
                     EMBER_EIO);
    assert_error_contains("/nonexistent/x.tsv");
    assert_int_equal(ember_coo_read(test_tmpdir(), NULL, r.users, r.items, &r.c, NULL),
                     EMBER_EIO);
    assert_error_contains("not a regular file");
    rd_free(&r);
}

static void test_invalid_options_are_einval(void **state)
{
    rd r;
    ember_read_opts o = opts_of((ember_format)17, NULL, EMBER_BAD_STOP);
    rd_mem(&r, "x", "a", 1, &o);
    assert_int_equal(r.rc, EMBER_EINVAL);
    rd_free(&r);
    o = opts_of(EMBER_FMT_TSV, NULL, (ember_bad_policy)5);
    rd_mem(&r, "x", "a", 1, &o);
    assert_int_equal(r.rc, EMBER_EINVAL);
    rd_free(&r);
    rd_init(&r);
    assert_int_equal(ember_coo_read_mem("x", "a", 1, NULL, NULL, r.items, &r.c, NULL),
                     EMBER_EINVAL);
    rd_free(&r);
}

static void test_header_with_too_many_columns_is_eformat(void **state)
{
    char *text = malloc(300 * 8 + 16);
    assert_non_null(text);
    size_t o = 0;
    for (int i = 0; i < 300; i++)
        o += (size_t)sprintf(text + o, "c%d\t", i);
    strcpy(text + o, "\n");
    rd r;
    rd_file(&r, "wide.tsv", text, NULL);
    free(text);
    assert_int_equal(r.rc, EMBER_EFORMAT);
    assert_error_contains(":1: header has more than 256 columns");
    rd_free(&r);
}

/* --------------------------------------------------------- bad lines */

static void test_malformed_line_stops_with_line_number(void **state)
{
    rd r;
    rd_file(&r, "stop.tsv", "user\titem\trating\nu\ti\t1\nv\tj\tbad\nw\tk\t2\n", NULL);
    assert_int_equal(r.rc, EMBER_EFORMAT);
    assert_string_equal(strstr(ember_last_error(), "stop.tsv:"),
                        "stop.tsv:3: rating 'bad' is not a number");
    assert_int_equal(r.c.n, 0); /* rows read before the failure are not kept */
    /* the bad line's ids never reached the maps */
    assert_int_equal(ember_idmap_find(r.users, "v", 1), -1);
    assert_int_equal(ember_idmap_find(r.items, "j", 1), -1);
    rd_free(&r);
}

static void test_skip_policy_counts_bad_lines(void **state)
{
    rd r;
    ember_read_opts o = opts_of(EMBER_FMT_AUTO, NULL, EMBER_BAD_SKIP);
    rd_file(&r, "skip.tsv",
            "user\titem\trating\ttimestamp\n"
            "u\ti\t1\t10\n"
            "v\tj\n"         /* 3: too few fields */
            "w\tk\tx\t10\n"  /* 4: rating */
            "u\tk\t2\tsoon\n" /* 5: time */
            "\ti\t1\t1\n"    /* 6: empty user */
            "u\tl\t3\t30\n",
            &o);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.st.lines, 6);
    assert_int_equal(r.st.rows, 2);
    assert_int_equal(r.st.bad, 4);
    assert_int_equal(r.st.first_bad_line, 3);
    assert_string_equal(r.st.first_bad, "expected 4 fields, found 2");
    assert_row(&r, 0, "u", "i", 1.0f, 10);
    assert_row(&r, 1, "u", "l", 3.0f, 30);
    /* skipped lines add no ids */
    assert_int_equal(ember_idmap_size(r.users), 1);
    assert_int_equal(ember_idmap_size(r.items), 2);
    rd_free(&r);
}

static void test_nul_byte_in_id_is_a_bad_line(void **state)
{
    static const char text[] = "user\titem\nu\0x\ti\nu\ti\n";
    rd r;
    ember_read_opts o = opts_of(EMBER_FMT_TSV, NULL, EMBER_BAD_SKIP);
    rd_mem(&r, "nul", text, sizeof text - 1, &o);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.st.bad, 1);
    assert_string_equal(r.st.first_bad, "NUL byte in user id");
    assert_int_equal(r.c.n, 1);
    rd_free(&r);
}

static void test_id_longer_than_256_bytes_is_a_bad_line(void **state)
{
    char text[600];
    int o = sprintf(text, "user\titem\n");
    memset(text + o, 'x', 257);
    strcpy(text + o + 257, "\ti\n");
    rd r;
    rd_file(&r, "long.tsv", text, NULL);
    assert_int_equal(r.rc, EMBER_EFORMAT);
    assert_error_contains(":2: user id longer than 256 bytes");
    rd_free(&r);
}

static void test_fixed_ids_counts_unknown(void **state)
{
    rd r;
    rd_init(&r);
    uint32_t x;
    assert_int_equal(ember_idmap_intern(r.users, "u", 1, &x), EMBER_OK);
    assert_int_equal(ember_idmap_intern(r.items, "i", 1, &x), EMBER_OK);
    assert_int_equal(ember_idmap_intern(r.items, "j", 1, &x), EMBER_OK);
    ember_read_opts o = opts_of(EMBER_FMT_AUTO, NULL, EMBER_BAD_STOP);
    o.fixed_ids = 1;
    const char *path = test_write_file("fixed.tsv", "user\titem\nu\tj\nnew\ti\nu\tnew\nu\ti\n");
    r.rc = ember_coo_read(path, &o, r.users, r.items, &r.c, &r.st);
    assert_int_equal(r.rc, EMBER_OK);
    assert_int_equal(r.st.lines, 4);
    assert_int_equal(r.st.unknown, 2);
    assert_int_equal(r.st.rows, 2);
    assert_row(&r, 0, "u", "j", 1.0f, 0);
    assert_row(&r, 1, "u", "i", 1.0f, 0);
    assert_int_equal(ember_idmap_size(r.users), 1);
    assert_int_equal(ember_idmap_size(r.items), 2);
    rd_free(&r);
}

/* -------------------------------------------------- fault injection */

static void test_each_failed_allocation_returns_enomem(void **state)
{
    const char *path = test_write_file("fault.tsv", "user\titem\trating\n"
                                                    "u1\ti1\t1\nu2\ti2\t2\nu3\ti1\t3\n");
    long n;
    for (n = 1; n < 1000; n++) {
        ember_idmap *users = ember_idmap_new(), *items = ember_idmap_new();
        assert_true(users && items);
        ember_coo c = {0};
        ember_fault_inject_alloc(n);
        int rc = ember_coo_read(path, NULL, users, items, &c, NULL);
        ember_fault_inject_alloc(0);
        if (rc == EMBER_OK) {
            assert_int_equal(c.n, 3);
            ember_coo_free(&c);
            ember_idmap_free(users);
            ember_idmap_free(items);
            break;
        }
        assert_int_equal(rc, EMBER_ENOMEM);
        assert_int_equal(c.n, 0);
        assert_error_contains("out of memory");
        ember_coo_free(&c);
        ember_idmap_free(users);
        ember_idmap_free(items);
    }
    assert_true(n > 4); /* the field array, the row arrays, the maps all allocate */
    assert_true(n < 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tsv_header_default_columns),
        cmocka_unit_test(test_tsv_columns_found_by_name_in_any_order),
        cmocka_unit_test(test_cols_option_chooses_columns),
        cmocka_unit_test(test_cols_accepts_timestamp_role_and_spaces),
        cmocka_unit_test(test_cols_empty_name_drops_a_column),
        cmocka_unit_test(test_cols_errors),
        cmocka_unit_test(test_cols_on_headerless_format_is_einval),
        cmocka_unit_test(test_udata_has_no_header_and_tabs),
        cmocka_unit_test(test_udata_needs_four_fields),
        cmocka_unit_test(test_ml_dat_double_colon),
        cmocka_unit_test(test_ml_dat_single_colon_is_part_of_a_field),
        cmocka_unit_test(test_ml_dat_empty_fields_are_bad),
        cmocka_unit_test(test_atomic_typed_header),
        cmocka_unit_test(test_atomic_found_by_header_without_extension),
        cmocka_unit_test(test_ml100k_inter_reads_all_rows),
        cmocka_unit_test(test_general_train_split_reads_80024_rows),
        cmocka_unit_test(test_csv_quoted_fields),
        cmocka_unit_test(test_csv_unterminated_quote_is_bad),
        cmocka_unit_test(test_csv_text_after_closing_quote_is_bad),
        cmocka_unit_test(test_csv_quote_inside_unquoted_field_is_kept),
        cmocka_unit_test(test_missing_rating_and_time_give_defaults),
        cmocka_unit_test(test_crlf_line_endings),
        cmocka_unit_test(test_byte_order_mark_is_skipped),
        cmocka_unit_test(test_blank_lines_are_ignored_but_numbered),
        cmocka_unit_test(test_last_line_without_newline),
        cmocka_unit_test(test_empty_file_with_header_format_is_eformat),
        cmocka_unit_test(test_empty_file_without_header_format_has_no_rows),
        cmocka_unit_test(test_header_only_file_has_no_rows),
        cmocka_unit_test(test_header_without_user_column_is_eformat),
        cmocka_unit_test(test_timestamps_in_float_form),
        cmocka_unit_test(test_ratings_equal_strtof),
        cmocka_unit_test(test_read_appends_to_existing_rows),
        cmocka_unit_test(test_missing_file_and_directory_are_eio),
        cmocka_unit_test(test_invalid_options_are_einval),
        cmocka_unit_test(test_header_with_too_many_columns_is_eformat),
        cmocka_unit_test(test_malformed_line_stops_with_line_number),
        cmocka_unit_test(test_skip_policy_counts_bad_lines),
        cmocka_unit_test(test_nul_byte_in_id_is_a_bad_line),
        cmocka_unit_test(test_id_longer_than_256_bytes_is_a_bad_line),
        cmocka_unit_test(test_fixed_ids_counts_unknown),
        cmocka_unit_test(test_each_failed_allocation_returns_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
