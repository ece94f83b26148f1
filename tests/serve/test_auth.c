/*
 * test_auth.c — key files (src/serve/auth.c): what a good file gives,
 * every refusal with its line number, and key lookup that matches whole
 * keys only.
 */
#include "testutil.h"

#include "serve/serve.h"

#include <string.h>

static serve_keys *parse(const char *text)
{
    serve_keys *k = NULL;
    int st = serve_keys_parse(text, strlen(text), "keys", &k);
    if (st)
        fail_msg("refused: %s", ember_last_error());
    return k;
}

static serve_role role(const serve_keys *k, const char *key)
{
    return serve_keys_role(k, key, strlen(key));
}

static void test_a_good_file_gives_each_key_its_role(void **state)
{
    (void)state;
    serve_keys *k = parse("# keys\r\n"
                          "  reader-key-0001\tread  \r\n"
                          "\n"
                          "writer-key-0001 write\n"
                          "   # indented comment\n"
                          "admin-key-00001 admin");
    assert_int_equal(serve_keys_count(k), 3);
    assert_int_equal(role(k, "reader-key-0001"), SERVE_ROLE_READ);
    assert_int_equal(role(k, "writer-key-0001"), SERVE_ROLE_WRITE);
    assert_int_equal(role(k, "admin-key-00001"), SERVE_ROLE_ADMIN);
    serve_keys_free(k);
}

static void test_only_whole_keys_match(void **state)
{
    (void)state;
    serve_keys *k = parse("reader-key-0001 read\n");
    assert_int_equal(role(k, "reader-key-000"), SERVE_ROLE_NONE);
    assert_int_equal(role(k, "reader-key-00011"), SERVE_ROLE_NONE);
    assert_int_equal(role(k, "Reader-key-0001"), SERVE_ROLE_NONE);
    assert_int_equal(role(k, ""), SERVE_ROLE_NONE);
    char longkey[400];
    memset(longkey, 'a', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    assert_int_equal(role(k, longkey), SERVE_ROLE_NONE);
    assert_int_equal(serve_keys_role(NULL, "reader-key-0001", 15), SERVE_ROLE_NONE);
    serve_keys_free(k);
}

static void test_roles_are_ordered(void **state)
{
    (void)state;
    assert_true(SERVE_ROLE_NONE < SERVE_ROLE_READ);
    assert_true(SERVE_ROLE_READ < SERVE_ROLE_WRITE);
    assert_true(SERVE_ROLE_WRITE < SERVE_ROLE_ADMIN);
    assert_string_equal(serve_role_name(SERVE_ROLE_WRITE), "write");
}

static void refused(const char *text, const char *where)
{
    serve_keys *k = (serve_keys *)&k;
    assert_int_equal(serve_keys_parse(text, strlen(text), "keys", &k), EMBER_EFORMAT);
    assert_null(k);
    if (!strstr(ember_last_error(), where))
        fail_msg("'%s': message '%s' lacks '%s'", text, ember_last_error(), where);
}

static void test_bad_lines_are_refused_with_their_line_number(void **state)
{
    (void)state;
    refused("good-key-00001 read\nshort read\n", "keys:2:");
    refused("good-key-00001 reader\n", "keys:1: the role");
    refused("good-key-00001\n", "keys:1: expected");
    refused("good-key-00001 read extra\n", "keys:1: expected");
    refused("# c\ngood-key-00001 read\ngood-key-00001 write\n", "keys:3: key listed twice");
    refused("good-k\x01y-0001 read\n", "keys:1:");
    refused("good-k\xc3\xa9y-0001 read\n", "keys:1:");
    refused("", "no key");
    refused("# only a comment\n\n", "no key");
}

static void test_a_missing_key_file_is_an_io_error(void **state)
{
    (void)state;
    serve_keys *k;
    assert_int_equal(serve_keys_load("/nonexistent/keys.txt", &k), EMBER_EIO);
    const char *p = test_write_file("k.txt", "file-key-0001 admin\n");
    assert_int_equal(serve_keys_load(p, &k), EMBER_OK);
    assert_int_equal(role(k, "file-key-0001"), SERVE_ROLE_ADMIN);
    serve_keys_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_good_file_gives_each_key_its_role),
        cmocka_unit_test(test_only_whole_keys_match),
        cmocka_unit_test(test_roles_are_ordered),
        cmocka_unit_test(test_bad_lines_are_refused_with_their_line_number),
        cmocka_unit_test(test_a_missing_key_file_is_an_io_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
