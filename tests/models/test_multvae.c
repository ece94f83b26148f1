/*
 * test_multvae.c — Mult-VAE and Mult-DAE (src/models/multvae.c): the
 * accuracy floor on the ML-100K general split (RecBole's 0.3160 test
 * NDCG@10; in the sanitizer build a small network for a few epochs
 * against a sanity floor), a known user's history given as a new user's
 * scoring exactly as the known user, save/load bit for bit, bit-identical
 * fits with one thread and a fixed seed, a falling training loss, files
 * of another architecture refused before allocation, bad parameters
 * refused.
 */
#include "testutil.h"

#include "eval/eval.h"
#include "models/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ data */

/* 60 users x 40 items, 6 to 14 distinct items each, in three taste
 * groups, seeded. */
static ember_dataset *small_dataset(void)
{
    ember_idmap *us = ember_idmap_new(), *is = ember_idmap_new();
    char id[16];
    uint32_t x;
    for (int u = 0; u < 60; u++) {
        snprintf(id, sizeof id, "u%d", u);
        assert_int_equal(ember_idmap_intern(us, id, strlen(id), &x), EMBER_OK);
    }
    for (int i = 0; i < 40; i++) {
        snprintf(id, sizeof id, "i%d", i);
        assert_int_equal(ember_idmap_intern(is, id, strlen(id), &x), EMBER_OK);
    }
    ember_rng r;
    ember_rng_seed(&r, 77);
    ember_coo c = {0};
    for (uint32_t u = 0; u < 60; u++) {
        bool has[40] = {false};
        int n = 6 + (int)ember_rng_below(&r, 9);
        for (int k = 0; k < n; k++) {
            uint32_t i = (u % 3) * 12 + (uint32_t)ember_rng_below(&r, 16);
            if (has[i])
                continue;
            has[i] = true;
            assert_int_equal(ember_coo_push(&c, u, i, 1, 100 * (int64_t)k), EMBER_OK);
        }
    }
    ember_dataset *d;
    assert_int_equal(ember_dataset_build(&c, us, is, &d), EMBER_OK);
    ember_coo_free(&c);
    ember_idmap_free(us);
    ember_idmap_free(is);
    return d;
}

static const char *const SMALL[] = {"hidden=24", "latent=6", "epochs=15", "batch=16", NULL};

static ember_model *fit(const char *name, const char *const *params, const ember_dataset *d,
                        const ember_fit_opts *o)
{
    ember_model *m;
    assert_int_equal(ember_model_new(name, params, &m), EMBER_OK);
    int st = ember_model_fit(m, d, NULL, o);
    if (st)
        fail_msg("%s: %s", name, ember_last_error());
    return m;
}

/* Every user's scores (n_users x n_items). */
static float *all_scores(const ember_model *m, size_t n_users)
{
    size_t ni = ember_model_n_items(m);
    float *s = malloc(n_users * ni * sizeof *s);
    assert_non_null(s);
    for (size_t u = 0; u < n_users; u++) {
        ember_query q = {.user = (int64_t)u};
        assert_int_equal(ember_model_score(m, &q, NULL, 0, s + u * ni), EMBER_OK);
    }
    return s;
}

/* ------------------------------------------------------ accuracy floor */

static double general_test_ndcg(const char *name, const char *const *params, double *valid)
{
    const char *tr = test_data_path("ml-100k/splits/general/train.tsv");
    const char *va = test_data_path("ml-100k/splits/general/valid.tsv");
    const char *te = test_data_path("ml-100k/splits/general/test.tsv");
    ember_idmap *u = ember_idmap_new(), *i = ember_idmap_new();
    ember_dataset *dtr, *dva, *dte;
    assert_int_equal(ember_dataset_load(tr, NULL, u, i, &dtr, NULL), EMBER_OK);
    assert_int_equal(ember_dataset_load(va, NULL, u, i, &dva, NULL), EMBER_OK);
    assert_int_equal(ember_dataset_load(te, NULL, u, i, &dte, NULL), EMBER_OK);
    ember_fit_opts o = {.threads = 2, .seed = 42};
    double t0 = ember_now();
    ember_model *m = fit(name, params, dtr, &o);
    double secs = ember_now() - t0;
    const ember_dataset *ex_test[2] = {dtr, dva}, *ex_valid[1] = {dtr};
    eval_opts eo = {.ks = {10}, .n_ks = 1, .threads = 2, .test = dte, .exclude = ex_test,
                    .n_exclude = 2};
    eval_result r;
    assert_int_equal(eval_ranking(m, &eo, &r), EMBER_OK);
    eval_opts ev = {.ks = {10}, .n_ks = 1, .threads = 2, .test = dva, .exclude = ex_valid,
                    .n_exclude = 1};
    eval_result rv;
    assert_int_equal(eval_ranking(m, &ev, &rv), EMBER_OK);
    *valid = rv.at[0].ndcg;
    print_message("%s: valid NDCG@10 %.4f, test NDCG@10 %.4f (fit %.1f s)\n", name,
                  rv.at[0].ndcg, r.at[0].ndcg, secs);
    ember_model_free(m);
    ember_dataset_free(dtr);
    ember_dataset_free(dva);
    ember_dataset_free(dte);
    ember_idmap_free(u);
    ember_idmap_free(i);
    return r.at[0].ndcg;
}

/* Release: the defaults for about the epoch count at which early stopping
 * on valid keeps them (85 for the VAE, 55 for the DAE with seed 42), so
 * the test needs no validation passes.  Measured (seed 42, 2 threads):
 * multvae 0.3301 after 80 epochs, multdae 0.3234 after 60; RecBole's
 * Mult-VAE 0.3160.  Under
 * sanitizers hidden 100 for 40 epochs: measured 0.2753 and 0.2960. */
static void test_multvae_reaches_the_floor(void **state)
{
    (void)state;
    TEST_REQUIRE_DATA(p, "ml-100k/splits/general/train.tsv");
    (void)p;
    double valid;
    if (test_is_sanitized()) {
        const char *params[] = {"hidden=100", "epochs=40", NULL};
        assert_true(general_test_ndcg("multvae", params, &valid) >= 0.26);
        return;
    }
    const char *params[] = {"epochs=80", NULL};
    assert_true(general_test_ndcg("multvae", params, &valid) >= 0.3160);
    assert_true(valid >= 0.245);
}

static void test_multdae_reaches_the_floor(void **state)
{
    (void)state;
    TEST_REQUIRE_DATA(p, "ml-100k/splits/general/train.tsv");
    (void)p;
    double valid;
    if (test_is_sanitized()) {
        const char *params[] = {"hidden=100", "epochs=40", NULL};
        assert_true(general_test_ndcg("multdae", params, &valid) >= 0.28);
        return;
    }
    const char *params[] = {"epochs=60", NULL};
    assert_true(general_test_ndcg("multdae", params, &valid) >= 0.3160);
    assert_true(valid >= 0.245);
}

/* ----------------------------------------------------------- queries */

static void test_history_query_scores_as_the_known_user(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    const char *names[2] = {"multvae", "multdae"};
    for (int k = 0; k < 2; k++) {
        ember_fit_opts o = {.threads = 1, .seed = 5};
        ember_model *m = fit(names[k], SMALL, d, &o);
        size_t ni = ember_model_n_items(m);
        float *a = malloc(ni * sizeof *a), *b = malloc(ni * sizeof *b);
        for (uint32_t u = 0; u < 60; u += 7) {
            /* the user's items in time order, as a new user would bring them */
            size_t n = (size_t)(d->u_ptr[u + 1] - d->u_ptr[u]);
            ember_query known = {.user = u}, fresh = {.user = -1, .hist = d->u_seq + d->u_ptr[u],
                                                      .n_hist = n};
            assert_int_equal(ember_model_score(m, &known, NULL, 0, a), EMBER_OK);
            assert_int_equal(ember_model_score(m, &fresh, NULL, 0, b), EMBER_OK);
            assert_memory_equal(a, b, ni * sizeof *a);
            /* a known user bringing an item they already have: the same */
            ember_query again = {.user = u, .hist = d->u_seq + d->u_ptr[u], .n_hist = 1};
            assert_int_equal(ember_model_score(m, &again, NULL, 0, b), EMBER_OK);
            assert_memory_equal(a, b, ni * sizeof *a);
        }
        /* an empty history still scores (the decoder's prior), finitely */
        ember_query none = {.user = -1};
        assert_int_equal(ember_model_score(m, &none, NULL, 0, a), EMBER_OK);
        for (size_t i = 0; i < ni; i++)
            assert_true(isfinite(a[i]));
        free(a);
        free(b);
        ember_model_free(m);
    }
    ember_dataset_free(d);
}

static void test_save_load_is_bit_for_bit(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    const char *names[2] = {"multvae", "multdae"};
    for (int k = 0; k < 2; k++) {
        ember_fit_opts o = {.threads = 2, .seed = 5};
        ember_model *m = fit(names[k], SMALL, d, &o);
        char file[64];
        snprintf(file, sizeof file, "%s.model", names[k]);
        const char *path = test_write_file(file, "");
        assert_int_equal(ember_model_save(m, path), EMBER_OK);
        ember_model *l;
        assert_int_equal(ember_model_load(path, &l), EMBER_OK);
        assert_string_equal(ember_model_name(l), names[k]);
        assert_string_equal(ember_model_params_json(m), ember_model_params_json(l));
        float *a = all_scores(m, 60), *b = all_scores(l, 60);
        assert_memory_equal(a, b, 60 * 40 * sizeof *a);
        uint32_t hist[3] = {3, 17, 30};
        ember_query q = {.user = -1, .hist = hist, .n_hist = 3};
        assert_int_equal(ember_model_score(m, &q, NULL, 0, a), EMBER_OK);
        assert_int_equal(ember_model_score(l, &q, NULL, 0, b), EMBER_OK);
        assert_memory_equal(a, b, 40 * sizeof *a);
        uint32_t ta[5], tb[5];
        size_t na, nb;
        assert_int_equal(ember_model_similar(m, 4, 5, ta, a, &na), EMBER_OK);
        assert_int_equal(ember_model_similar(l, 4, 5, tb, b, &nb), EMBER_OK);
        assert_int_equal(na, 5);
        assert_memory_equal(ta, tb, sizeof ta);
        free(a);
        free(b);
        ember_model_free(l);
        ember_model_free(m);
    }
    ember_dataset_free(d);
}

static void test_one_thread_and_a_seed_give_the_same_model(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    ember_fit_opts o = {.threads = 1, .seed = 9}, other = {.threads = 1, .seed = 10};
    ember_model *a = fit("multvae", SMALL, d, &o), *b = fit("multvae", SMALL, d, &o);
    ember_model *c = fit("multvae", SMALL, d, &other);
    float *sa = all_scores(a, 60), *sb = all_scores(b, 60), *sc = all_scores(c, 60);
    assert_memory_equal(sa, sb, 60 * 40 * sizeof *sa);
    assert_memory_not_equal(sa, sc, 60 * 40 * sizeof *sa);
    free(sa);
    free(sb);
    free(sc);
    ember_model_free(a);
    ember_model_free(b);
    ember_model_free(c);
    ember_dataset_free(d);
}

/* The mean loss of the first and last lines of a training log. */
static void log_losses(const char *path, double *first, double *last, int *lines)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[512];
    *lines = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"loss\":");
        assert_non_null(p);
        double v = strtod(p + 7, NULL);
        if (++*lines == 1)
            *first = v;
        *last = v;
    }
    fclose(f);
}

static void test_training_loss_falls(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    const char *names[2] = {"multvae", "multdae"};
    for (int k = 0; k < 2; k++) {
        const char *log = test_write_file("vae.log", "");
        ember_fit_opts o = {.threads = 1, .seed = 5, .log_path = log};
        const char *params[] = {"hidden=24", "latent=6", "epochs=40", "batch=16", "lr=0.01",
                                NULL};
        ember_model *m = fit(names[k], params, d, &o);
        double first = 0, last = 0;
        int lines;
        log_losses(log, &first, &last, &lines);
        assert_int_equal(lines, 40);
        print_message("%s: loss %.3f -> %.3f over 40 epochs\n", names[k], first, last);
        assert_true(last < 0.9 * first);
        ember_model_free(m);
    }
    ember_dataset_free(d);
}

/* ------------------------------------------------------ bad inputs */

/* Copies a saved multvae file section by section, with the meta text's
 * `from` replaced by `to`. */
static const char *forge_meta(const char *good, const char *from, const char *to)
{
    static const struct {
        const char *name;
        mf_dtype t;
        size_t ndim;
    } sec[] = {{"meta", MF_U8, 1},          {"users.ids", MF_U8, 1},
               {"items.ids", MF_U8, 1},     {"hist.ptr", MF_U64, 1},
               {"hist.item", MF_U32, 1},    {"hist.ts", MF_I64, 1},
               {"item_count", MF_U32, 1},   {"multvae.enc.w1", MF_F32, 2},
               {"multvae.enc.b1", MF_F32, 1}, {"multvae.enc.w2", MF_F32, 2},
               {"multvae.enc.b2", MF_F32, 1}, {"multvae.dec.w1", MF_F32, 2},
               {"multvae.dec.b1", MF_F32, 1}, {"multvae.dec.w2", MF_F32, 2},
               {"multvae.dec.b2", MF_F32, 1}, {"multvae#count", MF_U64, 1}};
    mf_reader *r;
    assert_int_equal(mf_open(good, &r), EMBER_OK);
    mf_writer *w = mf_writer_new();
    static char meta[4096];
    for (size_t s = 0; s < EMBER_ARRAY_LEN(sec); s++) {
        uint64_t shape[4];
        const void *p = mf_get(r, sec[s].name, sec[s].t, sec[s].ndim, shape);
        assert_non_null(p);
        if (s == 0) {
            assert_true(shape[0] < sizeof meta);
            memcpy(meta, p, shape[0]);
            meta[shape[0]] = '\0';
            char *at = strstr(meta, from);
            assert_non_null(at);
            assert_int_equal(strlen(from), strlen(to));
            memcpy(at, to, strlen(to));
            p = meta;
        }
        assert_int_equal(mf_add(w, sec[s].name, sec[s].t, sec[s].ndim, shape, p), EMBER_OK);
    }
    const char *path = test_write_file("forged.model", "");
    assert_int_equal(mf_writer_write(w, path), EMBER_OK);
    mf_writer_free(w);
    mf_close(r);
    return path;
}

static void test_file_of_another_architecture_refused(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    ember_fit_opts o = {.threads = 1, .seed = 5};
    ember_model *m = fit("multvae", SMALL, d, &o);
    const char *good = test_write_file("arch.model", "");
    assert_int_equal(ember_model_save(m, good), EMBER_OK);
    ember_model *l;
    /* the honest copy loads */
    assert_int_equal(ember_model_load(forge_meta(good, "\"hidden\":\"24\"", "\"hidden\":\"24\""),
                                      &l),
                     EMBER_OK);
    ember_model_free(l);
    const char *from[] = {"\"hidden\":\"24\"", "\"latent\":\"6\""};
    const char *to[] = {"\"hidden\":\"99\"", "\"latent\":\"9\""};
    for (int k = 0; k < 2; k++) {
        ember_clear_error();
        assert_int_equal(ember_model_load(forge_meta(good, from[k], to[k]), &l), EMBER_ECORRUPT);
        assert_non_null(strstr(ember_last_error(), "multvae."));
    }
    ember_model_free(m);
    ember_dataset_free(d);
}

static void test_bad_parameters_refused(void **state)
{
    (void)state;
    const char *bad[] = {"hidden=0", "latent=0", "dropout=1", "dropout=-0.1", "lr=0",
                         "batch=0", "epochs=0", "anneal_cap=-1", "noise=-1", "average=1",
                         "lr_decay=0", "patience=-1", "hidden=many"};
    for (size_t k = 0; k < EMBER_ARRAY_LEN(bad); k++) {
        const char *params[2] = {bad[k], NULL};
        ember_model *m = (ember_model *)&m;
        assert_int_equal(ember_model_new("multvae", params, &m), EMBER_EINVAL);
        assert_null(m);
    }
    /* the DAE has no KL term to anneal */
    ember_model *m;
    const char *kl[] = {"anneal_cap=0.2", NULL};
    assert_int_equal(ember_model_new("multdae", kl, &m), EMBER_EINVAL);
    assert_non_null(strstr(ember_last_error(), "anneal_cap"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multvae_reaches_the_floor),
        cmocka_unit_test(test_multdae_reaches_the_floor),
        cmocka_unit_test(test_history_query_scores_as_the_known_user),
        cmocka_unit_test(test_save_load_is_bit_for_bit),
        cmocka_unit_test(test_one_thread_and_a_seed_give_the_same_model),
        cmocka_unit_test(test_training_loss_falls),
        cmocka_unit_test(test_file_of_another_architecture_refused),
        cmocka_unit_test(test_bad_parameters_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
