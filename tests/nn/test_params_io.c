/*
 * test_params_io.c — nn parameters through the model file container
 * (src/nn/params_io.c): a round trip is bit for bit; a file whose
 * parameters have another count, name, shape or a non-finite value is
 * refused with EMBER_ECORRUPT and a message, before any value is copied;
 * specs are checked against a file before anything is allocated; bad
 * specs are refused.
 */
#include "testutil.h"

#include "nn/params_io.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const nn_param_spec SPECS[3] = {
    {"emb", 2, {5, 3}, true},
    {"w", 2, {3, 2}, false},
    {"b", 1, {2}, false},
};

static void build(nn_params *ps, uint64_t seed)
{
    nn_params_init(ps);
    assert_int_equal(nn_params_add_specs(ps, SPECS, 3, NULL), EMBER_OK);
    ember_rng r;
    ember_rng_seed(&r, seed);
    for (size_t i = 0; i < ps->n; i++)
        nn_init_normal(ps->p[i], &r, 0.0f, 1.0f);
}

/* Writes ps under prefix "m" (plus a marker section) to a temp file. */
static const char *save(const char *name, const nn_params *ps)
{
    const char *path = test_write_file(name, "");
    mf_writer *w = mf_writer_new();
    assert_non_null(w);
    static const uint8_t marker[1] = {1};
    assert_int_equal(mf_add_1d(w, "marker", MF_U8, 1, marker), EMBER_OK);
    assert_int_equal(nn_params_save(w, "m", ps), EMBER_OK);
    assert_int_equal(mf_writer_write(w, path), EMBER_OK);
    mf_writer_free(w);
    return path;
}

static void assert_load_refused(const char *path, nn_params *into, const char *why)
{
    mf_reader *r;
    assert_int_equal(mf_open(path, &r), EMBER_OK);
    ember_clear_error();
    assert_int_equal(nn_params_load(r, "m", into), EMBER_ECORRUPT);
    if (!strstr(ember_last_error(), why))
        fail_msg("message '%s' does not mention '%s'", ember_last_error(), why);
    mf_close(r);
}

static void test_round_trip_is_bit_for_bit(void **state)
{
    (void)state;
    nn_params a, b;
    build(&a, 1);
    build(&b, 2);
    const char *path = save("rt.model", &a);
    mf_reader *r;
    assert_int_equal(mf_open(path, &r), EMBER_OK);
    assert_int_equal(nn_params_check(r, "m", SPECS, 3), EMBER_OK);
    assert_int_equal(nn_params_load(r, "m", &b), EMBER_OK);
    mf_close(r);
    for (size_t i = 0; i < a.n; i++)
        assert_memory_equal(a.p[i]->value, b.p[i]->value, a.p[i]->n * sizeof(float));
    nn_params_free(&a);
    nn_params_free(&b);
}

static void test_other_count_refused(void **state)
{
    (void)state;
    nn_params a, b;
    build(&a, 1);
    nn_params_init(&b);
    assert_int_equal(nn_params_add_specs(&b, SPECS, 2, NULL), EMBER_OK);
    const char *path = save("count.model", &a);
    assert_load_refused(path, &b, "parameters");
    mf_reader *r;
    assert_int_equal(mf_open(path, &r), EMBER_OK);
    assert_int_equal(nn_params_check(r, "m", SPECS, 2), EMBER_ECORRUPT);
    mf_close(r);
    nn_params_free(&a);
    nn_params_free(&b);
}

static void test_other_name_refused(void **state)
{
    (void)state;
    nn_params a, b;
    build(&a, 1);
    nn_param_spec other[3];
    memcpy(other, SPECS, sizeof other);
    snprintf(other[1].name, sizeof other[1].name, "w2");
    nn_params_init(&b);
    assert_int_equal(nn_params_add_specs(&b, other, 3, NULL), EMBER_OK);
    assert_load_refused(save("name.model", &a), &b, "m.w2");
    nn_params_free(&a);
    nn_params_free(&b);
}

static void test_other_shape_refused_before_allocation(void **state)
{
    (void)state;
    nn_params a, b;
    build(&a, 1);
    nn_param_spec other[3];
    memcpy(other, SPECS, sizeof other);
    other[0].shape[0] = 1 << 30; /* what a hostile meta might ask for */
    const char *path = save("shape.model", &a);
    mf_reader *r;
    assert_int_equal(mf_open(path, &r), EMBER_OK);
    assert_int_equal(nn_params_check(r, "m", other, 3), EMBER_ECORRUPT);
    assert_non_null(strstr(ember_last_error(), "m.emb"));
    mf_close(r);
    other[0].shape[0] = 5;
    other[2].shape[0] = 3;
    nn_params_init(&b);
    assert_int_equal(nn_params_add_specs(&b, other, 3, NULL), EMBER_OK);
    assert_load_refused(path, &b, "m.b");
    nn_params_free(&a);
    nn_params_free(&b);
}

static void test_non_finite_value_refused_and_nothing_copied(void **state)
{
    (void)state;
    nn_params a, b;
    build(&a, 1);
    build(&b, 2);
    a.p[2]->value[1] = NAN;
    float before = b.p[0]->value[0];
    assert_load_refused(save("nan.model", &a), &b, "non-finite");
    assert_true(b.p[0]->value[0] == before); /* the first parameter was not copied */
    a.p[2]->value[1] = INFINITY;
    assert_load_refused(save("inf.model", &a), &b, "non-finite");
    nn_params_free(&a);
    nn_params_free(&b);
}

static void test_missing_prefix_refused(void **state)
{
    (void)state;
    nn_params a;
    build(&a, 1);
    const char *path = save("prefix.model", &a);
    mf_reader *r;
    assert_int_equal(mf_open(path, &r), EMBER_OK);
    assert_int_equal(nn_params_load(r, "other", &a), EMBER_ECORRUPT);
    assert_int_equal(nn_params_check(r, "other", SPECS, 3), EMBER_ECORRUPT);
    mf_close(r);
    nn_params_free(&a);
}

static void test_bad_specs_and_long_names_refused(void **state)
{
    (void)state;
    nn_params ps;
    nn_params_init(&ps);
    nn_param_spec bad[2] = {{"x", 2, {0, 3}, false}, {"x", 1, {2}, false}};
    assert_int_equal(nn_params_add_specs(&ps, bad, 1, NULL), EMBER_EINVAL);
    bad[0].shape[0] = 1;
    assert_int_equal(nn_params_add_specs(&ps, bad, 2, NULL), EMBER_EINVAL); /* duplicate */
    nn_params_free(&ps);
    /* a prefix that makes section names longer than the container allows */
    nn_params a;
    build(&a, 1);
    mf_writer *w = mf_writer_new();
    char prefix[60];
    memset(prefix, 'p', sizeof prefix - 1);
    prefix[sizeof prefix - 1] = '\0';
    assert_int_equal(nn_params_save(w, prefix, &a), EMBER_EINVAL);
    mf_writer_free(w);
    nn_params_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_is_bit_for_bit),
        cmocka_unit_test(test_other_count_refused),
        cmocka_unit_test(test_other_name_refused),
        cmocka_unit_test(test_other_shape_refused_before_allocation),
        cmocka_unit_test(test_non_finite_value_refused_and_nothing_copied),
        cmocka_unit_test(test_missing_prefix_refused),
        cmocka_unit_test(test_bad_specs_and_long_names_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
