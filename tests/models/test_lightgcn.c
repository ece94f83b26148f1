/*
 * test_lightgcn.c — LightGCN (src/models/lightgcn.c): the propagation
 * against hand-computed values and a dense reference (D^-1/2 A D^-1/2 as
 * a full matrix, in double), the hand-written gradient of a training
 * batch (BPR, L2, back through the layers) against finite differences,
 * the accuracy floor on the ML-100K general split (RecBole's 0.3079 test
 * NDCG@10; a reduced configuration against a sanity floor under
 * sanitizers), a known user's history folded in as a new user's
 * recommending what the trained user gets, scores of chosen items equal
 * to the same items among all, similar items by cosine, save/load bit for
 * bit, a file of another architecture refused, bit-identical fits with
 * one thread and a fixed seed, a falling training loss, bad parameters
 * refused.
 */
#include "testutil.h"

#include "core/modelfile.h"
#include "core/topk.h"
#include "eval/eval.h"
#include "models/lightgcn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ data */

/* A dataset of n_users x n_items from (user, item) pairs. */
static ember_dataset *pairs_dataset(size_t n_users, size_t n_items, const uint32_t (*pairs)[2],
                                    size_t n)
{
    ember_idmap *us = ember_idmap_new(), *is = ember_idmap_new();
    char id[32];
    uint32_t x;
    for (size_t u = 0; u < n_users; u++) {
        snprintf(id, sizeof id, "u%zu", u);
        assert_int_equal(ember_idmap_intern(us, id, strlen(id), &x), EMBER_OK);
    }
    for (size_t i = 0; i < n_items; i++) {
        snprintf(id, sizeof id, "i%zu", i);
        assert_int_equal(ember_idmap_intern(is, id, strlen(id), &x), EMBER_OK);
    }
    ember_coo c = {0};
    for (size_t k = 0; k < n; k++)
        assert_int_equal(ember_coo_push(&c, pairs[k][0], pairs[k][1], 1, 10 * (int64_t)k),
                         EMBER_OK);
    ember_dataset *d;
    assert_int_equal(ember_dataset_build(&c, us, is, &d), EMBER_OK);
    ember_coo_free(&c);
    ember_idmap_free(us);
    ember_idmap_free(is);
    return d;
}

enum { NU = 60, NI = 70 };

/* 60 users x 70 items, 8 to 20 distinct items each, in three taste
 * groups, seeded. */
static ember_dataset *small_dataset(void)
{
    ember_rng r;
    ember_rng_seed(&r, 78);
    uint32_t(*pairs)[2] = malloc(NU * 20 * sizeof *pairs);
    assert_non_null(pairs);
    size_t n = 0;
    for (uint32_t u = 0; u < NU; u++) {
        bool has[NI] = {false};
        int len = 8 + (int)ember_rng_below(&r, 13);
        for (int k = 0; k < len; k++) {
            uint32_t i = (u % 3) * 20 + (uint32_t)ember_rng_below(&r, 30);
            if (has[i])
                continue;
            has[i] = true;
            pairs[n][0] = u;
            pairs[n++][1] = i;
        }
    }
    ember_dataset *d = pairs_dataset(NU, NI, (const uint32_t(*)[2])pairs, n);
    free(pairs);
    return d;
}

static const char *const SMALL[] = {"dim=8", "epochs=30", "batch=64", "lr=0.01", NULL};

static ember_model *fit(const char *const *params, const ember_dataset *d,
                        const ember_fit_opts *o)
{
    ember_model *m;
    assert_int_equal(ember_model_new("lightgcn", params, &m), EMBER_OK);
    int st = ember_model_fit(m, d, NULL, o);
    if (st)
        fail_msg("lightgcn: %s", ember_last_error());
    return m;
}

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

/* ------------------------------------------------------- propagation */

/* One user and one item joined by one edge: Â swaps them (both degrees
 * 1), so with K = 1 both become (e_u + e_i) / 2, with K = 2 the user
 * becomes (e_u + e_i + e_u) / 3 and the item (e_i + e_u + e_i) / 3. */
static void test_propagation_of_one_edge_by_hand(void **state)
{
    (void)state;
    const uint32_t pairs[1][2] = {{0, 0}};
    ember_dataset *d = pairs_dataset(1, 1, pairs, 1);
    const float u0[2] = {3.0f, -6.0f}, i0[2] = {0.0f, 12.0f};
    float out[4];
    assert_int_equal(lightgcn_propagate(d, 2, 0, u0, i0, out), EMBER_OK);
    const float k0[4] = {3.0f, -6.0f, 0.0f, 12.0f};
    assert_memory_equal(out, k0, sizeof out);
    assert_int_equal(lightgcn_propagate(d, 2, 1, u0, i0, out), EMBER_OK);
    const float k1[4] = {1.5f, 3.0f, 1.5f, 3.0f};
    for (int k = 0; k < 4; k++)
        assert_float_equal(out[k], k1[k], 1e-6);
    assert_int_equal(lightgcn_propagate(d, 2, 2, u0, i0, out), EMBER_OK);
    const float k2[4] = {2.0f, 0.0f, 1.0f, 6.0f};
    for (int k = 0; k < 4; k++)
        assert_float_equal(out[k], k2[k], 1e-6);
    ember_dataset_free(d);
}

/* 4 users x 5 items (one pair given twice, which counts once; item 4
 * and user 3 without edges), propagated with K = 0..3 against the dense
 * (1/(K+1)) sum_k Â^k E0 in double. */
static void test_propagation_matches_a_dense_reference(void **state)
{
    (void)state;
    enum { U = 4, I = 5, N = U + I, D = 3 };
    const uint32_t pairs[][2] = {{0, 0}, {0, 1}, {1, 1}, {1, 2}, {1, 3}, {2, 3}, {1, 2}, {2, 0}};
    ember_dataset *d = pairs_dataset(U, I, pairs, EMBER_ARRAY_LEN(pairs));
    double A[N][N] = {{0}};
    for (size_t k = 0; k < EMBER_ARRAY_LEN(pairs); k++) {
        A[pairs[k][0]][U + pairs[k][1]] = 1;
        A[U + pairs[k][1]][pairs[k][0]] = 1;
    }
    double deg[N] = {0};
    for (int r = 0; r < N; r++)
        for (int c = 0; c < N; c++)
            deg[r] += A[r][c];
    for (int r = 0; r < N; r++)
        for (int c = 0; c < N; c++)
            if (A[r][c] != 0)
                A[r][c] /= sqrt(deg[r] * deg[c]);
    float e0[N * D];
    for (int k = 0; k < N * D; k++)
        e0[k] = (float)((k * 37 % 23) - 11) / 7.0f;
    for (size_t K = 0; K <= 3; K++) {
        double cur[N][D], sum[N][D];
        for (int r = 0; r < N; r++)
            for (int c = 0; c < D; c++)
                sum[r][c] = cur[r][c] = e0[r * D + c];
        for (size_t k = 1; k <= K; k++) {
            double next[N][D] = {{0}};
            for (int r = 0; r < N; r++)
                for (int j = 0; j < N; j++)
                    for (int c = 0; c < D; c++)
                        next[r][c] += A[r][j] * cur[j][c];
            memcpy(cur, next, sizeof cur);
            for (int r = 0; r < N; r++)
                for (int c = 0; c < D; c++)
                    sum[r][c] += cur[r][c];
        }
        float out[N * D];
        assert_int_equal(lightgcn_propagate(d, D, K, e0, e0 + U * D, out), EMBER_OK);
        for (int r = 0; r < N; r++)
            for (int c = 0; c < D; c++)
                assert_float_equal(out[r * D + c], sum[r][c] / (double)(K + 1), 1e-5);
    }
    /* a node without edges keeps E0 / (K + 1) */
    float out[N * D];
    assert_int_equal(lightgcn_propagate(d, D, 2, e0, e0 + U * D, out), EMBER_OK);
    assert_float_equal(out[3 * D], e0[3 * D] / 3.0f, 1e-6);
    assert_float_equal(out[(U + 4) * D + 1], e0[(U + 4) * D + 1] / 3.0f, 1e-6);
    ember_dataset_free(d);
}

/* The gradient of a batch's loss (BPR through K layers, plus L2) against
 * central differences, for every layer-0 value and K = 0..3. */
static void test_batch_gradient_matches_finite_differences(void **state)
{
    (void)state;
    enum { U = 4, I = 5, D = 3 };
    const uint32_t pairs[][2] = {{0, 0}, {0, 1}, {1, 1}, {1, 2}, {1, 3}, {2, 3}, {2, 0}, {3, 4}};
    ember_dataset *d = pairs_dataset(U, I, pairs, EMBER_ARRAY_LEN(pairs));
    /* a repeated user, an item positive in one triple and negative in another */
    const uint32_t us[] = {0, 1, 1, 2, 3, 0}, ps[] = {0, 2, 3, 3, 4, 1}, ns[] = {3, 0, 4, 1, 2, 2};
    const size_t n = EMBER_ARRAY_LEN(us);
    float u0[U * D], i0[I * D], du[U * D], di[I * D], ddu[U * D], ddi[I * D];
    ember_rng r;
    ember_rng_seed(&r, 3);
    for (int k = 0; k < U * D; k++)
        u0[k] = (float)(ember_rng_uniform(&r) * 2 - 1);
    for (int k = 0; k < I * D; k++)
        i0[k] = (float)(ember_rng_uniform(&r) * 2 - 1);
    const double reg = 0.05, eps = 1e-2;
    size_t checked = 0;
    for (size_t K = 0; K <= 3; K++) {
        double loss;
        assert_int_equal(
            lightgcn_batch_loss(d, D, K, reg, u0, i0, us, ps, ns, n, &loss, du, di), EMBER_OK);
        assert_true(loss > 0 && isfinite(loss));
        for (int side = 0; side < 2; side++) {
            float *x = side ? i0 : u0;
            const float *g = side ? di : du;
            for (int k = 0; k < (side ? I : U) * D; k++) {
                float keep = x[k];
                double lp, lm;
                x[k] = keep + (float)eps;
                assert_int_equal(lightgcn_batch_loss(d, D, K, reg, u0, i0, us, ps, ns, n, &lp,
                                                     ddu, ddi),
                                 EMBER_OK);
                x[k] = keep - (float)eps;
                assert_int_equal(lightgcn_batch_loss(d, D, K, reg, u0, i0, us, ps, ns, n, &lm,
                                                     ddu, ddi),
                                 EMBER_OK);
                x[k] = keep;
                double num = (lp - lm) / (2 * eps);
                if (fabs(num - g[k]) > 1e-4 + 1e-2 * fmax(fabs(num), fabs(g[k])))
                    fail_msg("K=%zu %s[%d]: analytic %.6g, numeric %.6g", K,
                             side ? "item" : "user", k, (double)g[k], num);
                checked++;
            }
        }
    }
    assert_int_equal(checked, 4 * (U + I) * D);
    ember_dataset_free(d);
}

/* ------------------------------------------------------ accuracy floor */

/* Top-10 of scores with the user's own items left out. */
static void top10(float *s, size_t ni, const ember_dataset *d, uint32_t u, uint32_t *top)
{
    for (uint64_t p = d->u_ptr[u]; p < d->u_ptr[u + 1]; p++)
        s[d->u_item[p]] = -INFINITY;
    float ts[10];
    size_t n;
    ember_topk(s, ni, 10, top, ts, &n);
    assert_int_equal(n, 10);
}

/* Mean over users (every step-th) of |top-10 of the trained user ∩
 * top-10 of the user's history folded in as a new user|. */
static double foldin_overlap(const ember_model *m, const ember_dataset *d, uint32_t step)
{
    size_t ni = ember_model_n_items(m);
    float *a = malloc(ni * sizeof *a), *b = malloc(ni * sizeof *b);
    double sum = 0;
    int users = 0;
    for (uint32_t u = 0; u < d->n_users; u += step) {
        size_t n = (size_t)(d->u_ptr[u + 1] - d->u_ptr[u]);
        ember_query known = {.user = u}, fresh = {.user = -1, .hist = d->u_seq + d->u_ptr[u],
                                                  .n_hist = n};
        assert_int_equal(ember_model_score(m, &known, NULL, 0, a), EMBER_OK);
        assert_int_equal(ember_model_score(m, &fresh, NULL, 0, b), EMBER_OK);
        uint32_t ta[10], tb[10];
        top10(a, ni, d, u, ta);
        top10(b, ni, d, u, tb);
        for (int i = 0; i < 10; i++)
            for (int j = 0; j < 10; j++)
                sum += ta[i] == tb[j];
        users++;
    }
    free(a);
    free(b);
    return sum / users;
}

/* Release: the defaults for 80 epochs (early stopping on valid keeps
 * epoch 82 with seed 42), so the test needs no validation passes:
 * measured 0.3268 (seed 42, 2 threads; RecBole's LightGCN 0.3079), and
 * a known user's history folded in shares 8.56 of the trained user's
 * top-10 on average (1 user in 10).  Under sanitizers embeddings of 16
 * for 20 epochs: measured 0.2429 and 9.60 (1 user in 100). */
static void test_reaches_the_floor_and_folds_in(void **state)
{
    (void)state;
    TEST_REQUIRE_DATA(p, "ml-100k/splits/general/train.tsv");
    (void)p;
    const char *tr = test_data_path("ml-100k/splits/general/train.tsv");
    const char *va = test_data_path("ml-100k/splits/general/valid.tsv");
    const char *te = test_data_path("ml-100k/splits/general/test.tsv");
    ember_idmap *u = ember_idmap_new(), *i = ember_idmap_new();
    ember_dataset *dtr, *dva, *dte;
    assert_int_equal(ember_dataset_load(tr, NULL, u, i, &dtr, NULL), EMBER_OK);
    assert_int_equal(ember_dataset_load(va, NULL, u, i, &dva, NULL), EMBER_OK);
    assert_int_equal(ember_dataset_load(te, NULL, u, i, &dte, NULL), EMBER_OK);
    bool san = test_is_sanitized();
    const char *full[] = {"epochs=80", NULL};
    const char *small[] = {"dim=16", "epochs=20", NULL};
    ember_fit_opts o = {.threads = 2, .seed = 42};
    double t0 = ember_now();
    ember_model *m = fit(san ? small : full, dtr, &o);
    double secs = ember_now() - t0;
    const ember_dataset *ex[2] = {dtr, dva};
    eval_opts eo = {.ks = {10}, .n_ks = 1, .threads = 2, .test = dte, .exclude = ex,
                    .n_exclude = 2};
    eval_result r;
    assert_int_equal(eval_ranking(m, &eo, &r), EMBER_OK);
    double overlap = foldin_overlap(m, dtr, san ? 100 : 10);
    print_message("lightgcn: test NDCG@10 %.4f (fit %.1f s), fold-in top-10 overlap %.2f\n",
                  r.at[0].ndcg, secs, overlap);
    assert_true(r.at[0].ndcg >= (san ? 0.22 : 0.3079));
    assert_true(overlap >= (san ? 5.0 : 6.5));
    ember_model_free(m);
    ember_dataset_free(dtr);
    ember_dataset_free(dva);
    ember_dataset_free(dte);
    ember_idmap_free(u);
    ember_idmap_free(i);
}

/* ----------------------------------------------------------- queries */

static void test_foldin_is_close_and_deterministic(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    ember_fit_opts o = {.threads = 1, .seed = 5};
    ember_model *m = fit(SMALL, d, &o);
    double overlap = foldin_overlap(m, d, 3);
    print_message("small data: fold-in top-10 overlap %.2f\n", overlap);
    assert_true(overlap >= 5.0);
    /* the same history twice, in any order and with repeats: the same scores */
    uint32_t hist[4] = {2, 5, 11, 5}, again[3] = {11, 2, 5};
    ember_query q = {.user = -1, .hist = hist, .n_hist = 4};
    ember_query q2 = {.user = -1, .hist = again, .n_hist = 3};
    float a[NI], b[NI];
    assert_int_equal(ember_model_score(m, &q, NULL, 0, a), EMBER_OK);
    assert_int_equal(ember_model_score(m, &q2, NULL, 0, b), EMBER_OK);
    assert_memory_equal(a, b, sizeof a);
    /* a known user bringing a new item is folded in with the stored ones */
    ember_query kq = {.user = 0}, kb = {.user = 0, .hist = hist, .n_hist = 1};
    assert_int_equal(ember_model_score(m, &kq, NULL, 0, a), EMBER_OK);
    assert_int_equal(ember_model_score(m, &kb, NULL, 0, b), EMBER_OK);
    assert_memory_not_equal(a, b, sizeof a);
    /* an empty history scores every item 0 */
    ember_query none = {.user = -1};
    assert_int_equal(ember_model_score(m, &none, NULL, 0, a), EMBER_OK);
    for (size_t i = 0; i < NI; i++)
        assert_true(a[i] == 0.0f);
    ember_model_free(m);
    ember_dataset_free(d);
}

static void test_chosen_items_score_as_among_all(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    ember_fit_opts o = {.threads = 1, .seed = 5};
    ember_model *m = fit(SMALL, d, &o);
    float all[NI], some[NI];
    uint32_t items[NI];
    for (uint32_t k = 0; k < NI; k++)
        items[k] = (k * 37 + 11) % NI;
    uint32_t hist[2] = {4, 9};
    for (int64_t u = -1; u < 5; u++) {
        ember_query q = {.user = u, .hist = u < 0 ? hist : NULL, .n_hist = u < 0 ? 2 : 0};
        assert_int_equal(ember_model_score(m, &q, NULL, 0, all), EMBER_OK);
        for (size_t n = 1; n <= NI; n += 13) {
            assert_int_equal(ember_model_score(m, &q, items, n, some), EMBER_OK);
            for (size_t k = 0; k < n; k++)
                assert_true(some[k] == all[items[k]]);
        }
    }
    ember_model_free(m);
    ember_dataset_free(d);
}

static void test_similar_items_by_cosine(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    ember_fit_opts o = {.threads = 1, .seed = 5};
    ember_model *m = fit(SMALL, d, &o);
    uint32_t top[5];
    float s[5];
    size_t n;
    assert_int_equal(ember_model_similar(m, 3, 5, top, s, &n), EMBER_OK);
    assert_int_equal(n, 5);
    for (size_t k = 0; k < n; k++) {
        assert_true(top[k] != 3);
        assert_true(s[k] <= 1.0001f && s[k] >= -1.0001f);
        assert_true(k == 0 || s[k] <= s[k - 1]);
    }
    /* item 3 is in the first taste group (items 0..29): so are its nearest */
    for (size_t k = 0; k < n; k++)
        assert_true(top[k] < 30);
    ember_model_free(m);
    ember_dataset_free(d);
}

/* ------------------------------------------------------- the file */

static void test_save_load_is_bit_for_bit(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    ember_fit_opts o = {.threads = 2, .seed = 5};
    ember_model *m = fit(SMALL, d, &o);
    const char *path = test_write_file("lightgcn.model", "");
    assert_int_equal(ember_model_save(m, path), EMBER_OK);
    ember_model *l;
    assert_int_equal(ember_model_load(path, &l), EMBER_OK);
    assert_string_equal(ember_model_params_json(m), ember_model_params_json(l));
    float *a = all_scores(m, NU), *b = all_scores(l, NU);
    assert_memory_equal(a, b, NU * NI * sizeof *a);
    uint32_t hist[3] = {1, 40, 66};
    ember_query q = {.user = -1, .hist = hist, .n_hist = 3};
    assert_int_equal(ember_model_score(m, &q, NULL, 0, a), EMBER_OK);
    assert_int_equal(ember_model_score(l, &q, NULL, 0, b), EMBER_OK);
    assert_memory_equal(a, b, NI * sizeof *a);
    uint32_t ta[5], tb[5];
    size_t na, nb;
    assert_int_equal(ember_model_similar(m, 7, 5, ta, a, &na), EMBER_OK);
    assert_int_equal(ember_model_similar(l, 7, 5, tb, b, &nb), EMBER_OK);
    assert_memory_equal(ta, tb, sizeof ta);
    assert_memory_equal(a, b, 5 * sizeof *a);
    free(a);
    free(b);
    ember_model_free(l);
    ember_model_free(m);
    ember_dataset_free(d);
}

/* Copies a saved lightgcn file section by section, with the meta text's
 * `from` replaced by `to` (of the same length). */
static const char *forge_meta(const char *good, const char *from, const char *to)
{
    static const struct {
        const char *name;
        mf_dtype t;
        size_t ndim;
    } sec[] = {{"meta", MF_U8, 1},           {"users.ids", MF_U8, 1},
               {"items.ids", MF_U8, 1},      {"hist.ptr", MF_U64, 1},
               {"hist.item", MF_U32, 1},     {"hist.ts", MF_I64, 1},
               {"item_count", MF_U32, 1},    {"lightgcn.user", MF_F32, 2},
               {"lightgcn.item", MF_F32, 2}, {"lightgcn#count", MF_U64, 1}};
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
    ember_model *m = fit(SMALL, d, &o);
    const char *good = test_write_file("arch.model", "");
    assert_int_equal(ember_model_save(m, good), EMBER_OK);
    ember_model *l;
    /* the honest copy loads */
    assert_int_equal(ember_model_load(forge_meta(good, "\"dim\":\"8\"", "\"dim\":\"8\""), &l),
                     EMBER_OK);
    ember_model_free(l);
    ember_clear_error();
    assert_int_equal(ember_model_load(forge_meta(good, "\"dim\":\"8\"", "\"dim\":\"9\""), &l),
                     EMBER_ECORRUPT);
    assert_non_null(strstr(ember_last_error(), "lightgcn."));
    ember_model_free(m);
    ember_dataset_free(d);
}

/* ------------------------------------------------------- training */

static void test_one_thread_and_a_seed_give_the_same_model(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    ember_fit_opts o = {.threads = 1, .seed = 9}, other = {.threads = 1, .seed = 10};
    ember_model *a = fit(SMALL, d, &o), *b = fit(SMALL, d, &o), *c = fit(SMALL, d, &other);
    float *sa = all_scores(a, NU), *sb = all_scores(b, NU), *sc = all_scores(c, NU);
    assert_memory_equal(sa, sb, NU * NI * sizeof *sa);
    assert_memory_not_equal(sa, sc, NU * NI * sizeof *sa);
    free(sa);
    free(sb);
    free(sc);
    ember_model_free(a);
    ember_model_free(b);
    ember_model_free(c);
    ember_dataset_free(d);
}

static void test_training_loss_falls(void **state)
{
    (void)state;
    ember_dataset *d = small_dataset();
    const char *log = test_write_file("lightgcn.log", "");
    ember_fit_opts o = {.threads = 1, .seed = 5, .log_path = log};
    ember_model *m = fit(SMALL, d, &o);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char line[512];
    double first = 0, last = 0;
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"loss\":");
        assert_non_null(p);
        last = strtod(p + 7, NULL);
        if (++lines == 1)
            first = last;
    }
    fclose(f);
    print_message("lightgcn: BPR %.4f -> %.4f over %d epochs\n", first, last, lines);
    assert_int_equal(lines, 30);
    /* BPR starts at ln 2 (all scores about equal) */
    assert_true(first > 0.6 && first < 0.7);
    assert_true(last < 0.5 * first);
    ember_model_free(m);
    ember_dataset_free(d);
}

static void test_bad_parameters_refused(void **state)
{
    (void)state;
    const char *bad[] = {"dim=0",   "layers=-1", "layers=9",  "reg=-1",     "neg=random",
                         "lr=0",    "batch=0",   "epochs=0",  "average=1",  "patience=-1",
                         "dim=big", "reg=x",     "lr_decay=0", "eval_every=0"};
    for (size_t k = 0; k < EMBER_ARRAY_LEN(bad); k++) {
        const char *params[2] = {bad[k], NULL};
        ember_model *m = (ember_model *)&m;
        assert_int_equal(ember_model_new("lightgcn", params, &m), EMBER_EINVAL);
        assert_null(m);
    }
    /* a catalogue of one item leaves nothing to sample as a negative */
    const uint32_t pairs[2][2] = {{0, 0}, {1, 0}};
    ember_dataset *d = pairs_dataset(2, 1, pairs, 2);
    ember_model *m;
    assert_int_equal(ember_model_new("lightgcn", NULL, &m), EMBER_OK);
    ember_fit_opts o = {.threads = 1, .seed = 1};
    assert_int_equal(ember_model_fit(m, d, NULL, &o), EMBER_EINVAL);
    assert_non_null(strstr(ember_last_error(), "two items"));
    ember_model_free(m);
    ember_dataset_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_propagation_of_one_edge_by_hand),
        cmocka_unit_test(test_propagation_matches_a_dense_reference),
        cmocka_unit_test(test_batch_gradient_matches_finite_differences),
        cmocka_unit_test(test_reaches_the_floor_and_folds_in),
        cmocka_unit_test(test_foldin_is_close_and_deterministic),
        cmocka_unit_test(test_chosen_items_score_as_among_all),
        cmocka_unit_test(test_similar_items_by_cosine),
        cmocka_unit_test(test_save_load_is_bit_for_bit),
        cmocka_unit_test(test_file_of_another_architecture_refused),
        cmocka_unit_test(test_one_thread_and_a_seed_give_the_same_model),
        cmocka_unit_test(test_training_loss_falls),
        cmocka_unit_test(test_bad_parameters_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
