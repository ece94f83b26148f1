/*
 * test_markov.c — the next-item Markov chain (src/models/markov.c): scores
 * computed by hand on a small set of sequences (transition counts,
 * normalisation, decay, the popularity tie-breaker, the history a query
 * brings); the peer figures of shared/docs/PEERS.md on the ML-100K
 * sequential split (Markov-3 NDCG@10 0.0678, Markov-1 0.0555, within
 * 0.001); save/load bit for bit; hostile transition tables refused; bad
 * parameters refused.
 */
#include "testutil.h"

#include "eval/eval.h"
#include "models/model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Sequences (time order): u0: a b c, u1: a b d, u2: b c, u3: e.  Pairs:
 * a->b 2, b->c 2, b->d 1.  Counts: a 2, b 3, c 2, d 1, e 1. */
static ember_dataset *small_dataset(void)
{
    static const struct {
        const char *u, *i;
        int64_t t;
    } ev[] = {{"u0", "a", 1}, {"u0", "b", 2}, {"u0", "c", 3}, {"u1", "b", 20}, {"u1", "a", 10},
              {"u1", "d", 30}, {"u2", "b", 5}, {"u2", "c", 6}, {"u3", "e", 1}};
    ember_idmap *us = ember_idmap_new(), *is = ember_idmap_new();
    ember_coo c = {0};
    for (size_t k = 0; k < EMBER_ARRAY_LEN(ev); k++) {
        uint32_t u, i;
        assert_int_equal(ember_idmap_intern(us, ev[k].u, 2, &u), EMBER_OK);
        assert_int_equal(ember_idmap_intern(is, ev[k].i, 1, &i), EMBER_OK);
        assert_int_equal(ember_coo_push(&c, u, i, 1, ev[k].t), EMBER_OK);
    }
    ember_dataset *d;
    assert_int_equal(ember_dataset_build(&c, us, is, &d), EMBER_OK);
    ember_coo_free(&c);
    ember_idmap_free(us);
    ember_idmap_free(is);
    return d;
}

static uint32_t item(const ember_model *m, const char *id)
{
    int64_t i = ember_idmap_find(ember_model_items(m), id, strlen(id));
    assert_true(i >= 0);
    return (uint32_t)i;
}

static ember_model *fit(const ember_dataset *d, const char *const *params)
{
    ember_model *m;
    assert_int_equal(ember_model_new("markov", params, &m), EMBER_OK);
    ember_fit_opts o = {.threads = 1, .seed = 1};
    assert_int_equal(ember_model_fit(m, d, NULL, &o), EMBER_OK);
    return m;
}

static void test_scores_are_decayed_transition_probabilities(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    const char *params[] = {"order=2", "decay=0.5", "pop_weight=0", NULL};
    ember_model *m = fit(d, params);
    uint32_t a = item(m, "a"), b = item(m, "b"), c = item(m, "c"), dd = item(m, "d"),
             e = item(m, "e");
    uint32_t hist[2] = {a, b};
    ember_query q = {.user = -1, .hist = hist, .n_hist = 2};
    float s[5];
    assert_int_equal(ember_model_score(m, &q, NULL, 0, s), EMBER_OK);
    /* last item b: c 2/3, d 1/3; the one before, a, with weight 0.5: b 1 */
    assert_float_equal(s[c], 2.0 / 3.0, 1e-6);
    assert_float_equal(s[dd], 1.0 / 3.0, 1e-6);
    assert_float_equal(s[b], 0.5, 1e-6);
    assert_true(s[a] == 0.0f && s[e] == 0.0f);
    /* order 1 ignores a */
    ember_model *m1 = fit(d, (const char *const[]){"order=1", "pop_weight=0", NULL});
    assert_int_equal(ember_model_score(m1, &q, NULL, 0, s), EMBER_OK);
    assert_true(s[b] == 0.0f);
    assert_float_equal(s[c], 2.0 / 3.0, 1e-6);
    ember_model_free(m1);
    ember_model_free(m);
    ember_dataset_free(d);
}

static void test_popularity_breaks_ties_only(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    ember_model *m = fit(d, NULL); /* order 3, decay 0.6, pop_weight 1e-6 */
    uint32_t c = item(m, "c"), e = item(m, "e"), a = item(m, "a"), b = item(m, "b");
    /* a history whose last item (c) was never followed: popularity only */
    uint32_t hist[1] = {c};
    ember_query q = {.user = -1, .hist = hist, .n_hist = 1};
    float s[5];
    assert_int_equal(ember_model_score(m, &q, NULL, 0, s), EMBER_OK);
    assert_float_equal(s[b], 3e-6, 1e-9);
    assert_float_equal(s[a], 2e-6, 1e-9);
    assert_float_equal(s[e], 1e-6, 1e-9);
    uint32_t top[2];
    float ts[2];
    size_t n;
    assert_int_equal(ember_model_recommend(m, &q, 2, 0, top, ts, &n), EMBER_OK);
    assert_int_equal(n, 2);
    assert_int_equal(top[0], b);
    ember_model_free(m);
    ember_dataset_free(d);
}

static void test_known_user_history_then_brought_items(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    ember_model *m = fit(d, (const char *const[]){"order=1", "pop_weight=0", NULL});
    int64_t u2 = ember_idmap_find(ember_model_users(m), "u2", 2);
    assert_true(u2 >= 0);
    uint32_t a = item(m, "a"), b = item(m, "b"), c = item(m, "c");
    float s[5];
    /* u2's own history ends with c: nothing follows c */
    ember_query q = {.user = u2};
    assert_int_equal(ember_model_score(m, &q, NULL, 0, s), EMBER_OK);
    for (int j = 0; j < 5; j++)
        assert_true(s[j] == 0.0f);
    /* bringing a makes a the last item: b follows a */
    uint32_t hist[1] = {a};
    q.hist = hist;
    q.n_hist = 1;
    assert_int_equal(ember_model_score(m, &q, NULL, 0, s), EMBER_OK);
    assert_true(s[b] == 1.0f);
    assert_true(s[c] == 0.0f);
    ember_model_free(m);
    ember_dataset_free(d);
}

static void test_similar_items_follow_the_item(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    ember_model *m = fit(d, NULL);
    uint32_t top[4];
    float s[4];
    size_t n;
    assert_int_equal(ember_model_similar(m, item(m, "b"), 2, top, s, &n), EMBER_OK);
    assert_int_equal(n, 2);
    assert_int_equal(top[0], item(m, "c"));
    assert_int_equal(top[1], item(m, "d"));
    assert_float_equal(s[0], 2.0 / 3.0 + 2e-6, 1e-6);
    ember_model_free(m);
    ember_dataset_free(d);
}

/* ---------------------------------------------------- the peer figures */

typedef struct {
    ember_dataset *train, *valid, *test;
} split;

static bool load_sequential(split *s)
{
    const char *tr = test_data_path("ml-100k/splits/sequential/train.tsv");
    const char *va = test_data_path("ml-100k/splits/sequential/valid.tsv");
    const char *te = test_data_path("ml-100k/splits/sequential/test.tsv");
    if (!tr || !va || !te)
        return false;
    ember_idmap *u = ember_idmap_new(), *i = ember_idmap_new();
    assert_int_equal(ember_dataset_load(tr, NULL, u, i, &s->train, NULL), EMBER_OK);
    assert_int_equal(ember_dataset_load(va, NULL, u, i, &s->valid, NULL), EMBER_OK);
    assert_int_equal(ember_dataset_load(te, NULL, u, i, &s->test, NULL), EMBER_OK);
    ember_idmap_free(u);
    ember_idmap_free(i);
    return true;
}

/* PROTOCOL.md, sequential split: test scored from train + valid, nothing
 * excluded. */
static double test_ndcg(const ember_model *m, const split *s)
{
    const ember_dataset *hist[1] = {s->valid};
    eval_opts o = {.ks = {10}, .n_ks = 1, .threads = 2, .test = s->test, .history = hist,
                   .n_history = 1};
    eval_result r;
    assert_int_equal(eval_ranking(m, &o, &r), EMBER_OK);
    assert_int_equal(r.users, 943);
    return r.at[0].ndcg;
}

static void test_reproduces_the_peer_figures_on_the_sequential_split(void **state)
{
    (void)state;
    TEST_REQUIRE_DATA(p, "ml-100k/splits/sequential/train.tsv");
    (void)p;
    split s;
    assert_true(load_sequential(&s));
    ember_model *m3 = fit(s.train, NULL);
    double n3 = test_ndcg(m3, &s);
    ember_model *m1 = fit(s.train, (const char *const[]){"order=1", NULL});
    double n1 = test_ndcg(m1, &s);
    print_message("markov test NDCG@10: order 3 %.4f (PEERS 0.0678), order 1 %.4f (0.0555)\n",
                  n3, n1);
    assert_float_equal(n3, 0.0678, 0.001);
    assert_float_equal(n1, 0.0555, 0.001);
    ember_model_free(m3);
    ember_model_free(m1);
    ember_dataset_free(s.train);
    ember_dataset_free(s.valid);
    ember_dataset_free(s.test);
}

/* --------------------------------------------------------- the file */

static void test_save_load_is_bit_for_bit(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    ember_model *m = fit(d, (const char *const[]){"order=2", "decay=0.3", NULL});
    const char *path = test_write_file("markov.model", "");
    assert_int_equal(ember_model_save(m, path), EMBER_OK);
    ember_model *l;
    assert_int_equal(ember_model_load(path, &l), EMBER_OK);
    assert_string_equal(ember_model_params_json(m), ember_model_params_json(l));
    float a[5], b[5];
    for (int64_t u = -1; u < 4; u++) {
        uint32_t hist[2] = {item(m, "a"), item(m, "e")};
        ember_query q = {.user = u, .hist = u < 1 ? hist : NULL, .n_hist = u < 1 ? 2 : 0};
        assert_int_equal(ember_model_score(m, &q, NULL, 0, a), EMBER_OK);
        assert_int_equal(ember_model_score(l, &q, NULL, 0, b), EMBER_OK);
        assert_memory_equal(a, b, sizeof a);
    }
    assert_int_equal(ember_model_similar(m, 1, 3, (uint32_t[3]){0}, a, &(size_t){0}), EMBER_OK);
    ember_model_free(l);
    ember_model_free(m);
    ember_dataset_free(d);
}

/* Rewrites every section of a saved model into a new file, with the
 * named u32 section's element k replaced by value. */
static const char *forge(const char *good, const char *section, size_t k, uint32_t value)
{
    static const char *const names[] = {"meta",      "users.ids",  "items.ids",
                                        "hist.ptr",  "hist.item",  "hist.ts",
                                        "item_count", "markov.ptr", "markov.next",
                                        "markov.count"};
    static const mf_dtype types[] = {MF_U8, MF_U8, MF_U8, MF_U64, MF_U32,
                                     MF_I64, MF_U32, MF_U64, MF_U32, MF_U32};
    mf_reader *r;
    assert_int_equal(mf_open(good, &r), EMBER_OK);
    mf_writer *w = mf_writer_new();
    static uint32_t copy[256];
    for (size_t s = 0; s < EMBER_ARRAY_LEN(names); s++) {
        uint64_t n;
        const void *p = mf_get_1d(r, names[s], types[s], UINT64_MAX, &n);
        assert_non_null(p);
        if (strcmp(names[s], section) == 0) {
            assert_true(n <= 256 && k < n);
            memcpy(copy, p, n * sizeof *copy);
            copy[k] = value;
            p = copy;
        }
        assert_int_equal(mf_add_1d(w, names[s], types[s], n, p), EMBER_OK);
    }
    const char *path = test_write_file("forged.model", "");
    assert_int_equal(mf_writer_write(w, path), EMBER_OK);
    mf_writer_free(w);
    mf_close(r);
    return path;
}

static void test_hostile_transition_tables_refused(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    ember_model *m = fit(d, NULL);
    const char *good = test_write_file("good.model", "");
    assert_int_equal(ember_model_save(m, good), EMBER_OK);
    ember_model *l;
    /* an unchanged forgery loads (the forger is honest) */
    assert_int_equal(ember_model_load(forge(good, "markov.count", 0, 2), &l), EMBER_OK);
    ember_model_free(l);
    const struct {
        const char *section;
        size_t k;
        uint32_t value;
    } bad[] = {{"markov.next", 0, 5}, {"markov.next", 0, UINT32_MAX}, {"markov.count", 1, 0},
               {"markov.next", 2, 2}};
    for (size_t t = 0; t < EMBER_ARRAY_LEN(bad); t++) {
        l = (ember_model *)&l;
        ember_clear_error();
        assert_int_equal(ember_model_load(forge(good, bad[t].section, bad[t].k, bad[t].value), &l),
                         EMBER_ECORRUPT);
        assert_null(l);
        assert_non_null(strstr(ember_last_error(), "markov"));
    }
    ember_model_free(m);
    ember_dataset_free(d);
}

static void test_bad_parameters_refused(void **state)
{
    (void)state;
    const char *bad[] = {"order=0", "order=101", "order=two", "decay=0", "decay=1.5",
                         "decay=-1", "pop_weight=-1", "pop_weight=2", "window=3"};
    for (size_t k = 0; k < EMBER_ARRAY_LEN(bad); k++) {
        const char *params[2] = {bad[k], NULL};
        ember_model *m = (ember_model *)&m;
        assert_int_equal(ember_model_new("markov", params, &m), EMBER_EINVAL);
        assert_null(m);
        assert_non_null(strstr(ember_last_error(), "markov"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scores_are_decayed_transition_probabilities),
        cmocka_unit_test(test_popularity_breaks_ties_only),
        cmocka_unit_test(test_known_user_history_then_brought_items),
        cmocka_unit_test(test_similar_items_follow_the_item),
        cmocka_unit_test(test_reproduces_the_peer_figures_on_the_sequential_split),
        cmocka_unit_test(test_save_load_is_bit_for_bit),
        cmocka_unit_test(test_hostile_transition_tables_refused),
        cmocka_unit_test(test_bad_parameters_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
