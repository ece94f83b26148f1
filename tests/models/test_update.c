/*
 * test_update.c — online learning (ember_model_update, src/models/model.c
 * and the update steps of als and bpr): the stored histories grow and the
 * new items leave the user's recommendations; als re-solves touched users
 * (and items) exactly — checked by the residual of the weighted normal
 * equations, and QtQ kept consistent through a fold-in; bpr moves only the
 * touched users; a loaded (mapped) model is updated in memory and its
 * file left alone; save/load after an update; bad updates change nothing.
 * On synthetic data.
 */
#include "testutil.h"

#include "data/data.h"
#include "models/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ember_dataset *train;

static int setup(void **state)
{
    (void)state;
    train = test_synth_dataset(300, 500, 9000, 1);
    return train ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ember_dataset_free(train);
    return 0;
}

#define ALS_C 3.0   /* conf=hkv alpha=2: c = 1 + alpha */
#define ALS_REG 5.0 /* reg=5 */
static const char *const als_params[] = {"factors=8",       "iterations=4", "conf=hkv",
                                         "alpha=2",         "reg=5",        "solver=cholesky",
                                         NULL};

static ember_model *fitted(const char *name, const char *const *params)
{
    return test_fit(name, params, train, 1, 5);
}

static bool has_item(const ember_model *m, uint32_t u, uint32_t i)
{
    for (uint64_t e = m->hist.ptr[u]; e < m->hist.ptr[u + 1]; e++)
        if (m->hist.item[e] == i)
            return true;
    return false;
}

/* n items user u has not seen, the most popular first (so that they
 * would be recommended). */
static void unseen_items(const ember_model *m, uint32_t u, uint32_t *out, size_t n)
{
    size_t got = 0;
    bool *taken = calloc(m->n_items, 1);
    while (got < n) {
        uint32_t best = UINT32_MAX;
        for (uint32_t i = 0; i < m->n_items; i++)
            if (!taken[i] && !has_item(m, u, i) &&
                (best == UINT32_MAX || m->item_count[i] > m->item_count[best]))
                best = i;
        assert_true(best != UINT32_MAX);
        taken[best] = true;
        out[got++] = best;
    }
    free(taken);
}

static void user_vector(const ember_model *m, uint32_t u, float *x)
{
    ember_query q = {.user = u};
    float c;
    assert_int_equal(m->ops->dot_query(m, &q, x, &c), EMBER_OK);
}

/* |A x - b| / |b| for the ALS row equation of row x whose positives are
 * the rows idx[0..n) of Y (ny x d): A = Y^T Y + (c - 1) sum y y^T + reg I,
 * b = c sum y. */
static double als_residual(const float *Y, size_t ny, size_t d, const uint32_t *idx, size_t n,
                           const float *x)
{
    double *A = calloc(d * d, sizeof *A), *b = calloc(d, sizeof *b);
    for (size_t r = 0; r < ny; r++)
        for (size_t a = 0; a < d; a++)
            for (size_t c = 0; c < d; c++)
                A[a * d + c] += (double)Y[r * d + a] * Y[r * d + c];
    for (size_t k = 0; k < n; k++) {
        const float *y = Y + (size_t)idx[k] * d;
        for (size_t a = 0; a < d; a++) {
            b[a] += ALS_C * y[a];
            for (size_t c = 0; c < d; c++)
                A[a * d + c] += (ALS_C - 1.0) * y[a] * y[c];
        }
    }
    double num = 0, den = 0;
    for (size_t a = 0; a < d; a++) {
        double r = (A[a * d + a] + ALS_REG) * x[a] - b[a];
        for (size_t c = 0; c < d; c++)
            if (c != a)
                r += A[a * d + c] * x[c];
        num += r * r;
        den += b[a] * b[a];
    }
    free(A);
    free(b);
    return sqrt(num / (den > 0 ? den : 1));
}

/* The distinct items of u's stored history, sorted; returns how many. */
static size_t distinct_items(const ember_model *m, uint32_t u, uint32_t *out)
{
    size_t n = 0;
    for (uint32_t i = 0; i < m->n_items; i++)
        if (has_item(m, u, i))
            out[n++] = i;
    return n;
}

static void test_als_update_resolves_touched_users_exactly(void **state)
{
    (void)state;
    ember_model *m = fitted("als", als_params);
    size_t d = 8, nu = m->n_users;
    const float *Q, *bias;
    size_t dim;
    m->ops->dot_items(m, &Q, &bias, &dim);
    assert_int_equal(dim, d);
    float *before = malloc(nu * d * sizeof *before);
    for (uint32_t u = 0; u < nu; u++)
        user_vector(m, u, before + u * d);
    uint32_t users[3] = {7, 7, 42}, items[3];
    unseen_items(m, 7, items, 2);
    unseen_items(m, 42, items + 2, 1);
    uint64_t len7 = m->hist.ptr[8] - m->hist.ptr[7], nnz = m->hist.nnz;
    uint32_t count0 = m->item_count[items[0]];
    assert_int_equal(ember_model_update(m, users, items, NULL, 3, 0), EMBER_OK);
    /* the history grew, at the end of the user's rows */
    assert_int_equal(m->hist.nnz, nnz + 3);
    assert_int_equal(m->hist.ptr[8] - m->hist.ptr[7], len7 + 2);
    assert_int_equal(m->hist.item[m->hist.ptr[8] - 2], items[0]);
    assert_int_equal(m->hist.item[m->hist.ptr[8] - 1], items[1]);
    /* (user 42's new item may be user 7's too) */
    assert_int_equal(m->item_count[items[0]], count0 + 1 + (items[2] == items[0]));
    /* touched users solve their equations with the new history */
    uint32_t *buf = malloc(m->n_items * sizeof *buf);
    float x[8];
    for (int t = 0; t < 2; t++) {
        uint32_t u = t ? 42 : 7;
        user_vector(m, u, x);
        size_t n = distinct_items(m, u, buf);
        assert_true(als_residual(Q, m->n_items, d, buf, n, x) < 1e-4);
        assert_true(memcmp(x, before + u * d, sizeof x) != 0);
    }
    /* and nobody else moved */
    for (uint32_t u = 0; u < nu; u++) {
        if (u == 7 || u == 42)
            continue;
        user_vector(m, u, x);
        assert_memory_equal(x, before + u * d, sizeof x);
    }
    /* the new items leave user 7's recommendations */
    ember_query q = {.user = 7};
    uint32_t top[50];
    size_t got;
    assert_int_equal(ember_model_recommend(m, &q, 50, 1, top, NULL, &got), EMBER_OK);
    for (size_t r = 0; r < got; r++)
        assert_true(top[r] != items[0] && top[r] != items[1]);
    free(buf);
    free(before);
    ember_model_free(m);
}

static void test_als_update_of_items_resolves_them_and_keeps_the_gram(void **state)
{
    (void)state;
    ember_model *m = fitted("als", als_params);
    size_t d = 8;
    uint32_t users[4] = {3, 3, 150, 299}, items[4];
    unseen_items(m, 3, items, 2);
    unseen_items(m, 150, items + 2, 1);
    unseen_items(m, 299, items + 3, 1);
    assert_int_equal(ember_model_update(m, users, items, NULL, 4, EMBER_UPDATE_ITEMS), EMBER_OK);
    const float *Q, *bias;
    size_t dim;
    m->ops->dot_items(m, &Q, &bias, &dim);
    /* (each item's own equation: the next test) */
    /* a fold-in of a new history uses Q^T Q: it must be the one of the
     * current table (corrected for the changed rows) */
    uint32_t hist[5] = {items[0], items[1]};
    for (uint32_t i = 0, n = 2; n < 5; i++)
        if (i != items[0] && i != items[1] && i != items[2] && i != items[3])
            hist[n++] = i;
    ember_query q = {.user = -1, .hist = hist, .n_hist = 5};
    float x[8], c;
    assert_int_equal(m->ops->dot_query(m, &q, x, &c), EMBER_OK);
    uint32_t sorted[5];
    memcpy(sorted, hist, sizeof sorted);
    for (int a = 0; a < 5; a++)
        for (int b = a + 1; b < 5; b++)
            if (sorted[b] < sorted[a]) {
                uint32_t t = sorted[a];
                sorted[a] = sorted[b];
                sorted[b] = t;
            }
    assert_true(als_residual(Q, m->n_items, d, sorted, 5, x) < 1e-4);
    ember_model_free(m);
}

static void test_als_item_update_solves_exactly_when_no_user_moves_with_it(void **state)
{
    (void)state;
    /* an item whose new user is then re-solved moves that user; with the
     * user vectors read before and after, the item equation holds exactly
     * for the table the item was solved against: the pre-update users */
    ember_model *m = fitted("als", als_params);
    size_t d = 8, nu = m->n_users;
    float *P0 = malloc(nu * d * sizeof *P0);
    for (uint32_t u = 0; u < nu; u++)
        user_vector(m, u, P0 + u * d);
    uint32_t users[1] = {11}, items[1];
    unseen_items(m, 11, items, 1);
    assert_int_equal(ember_model_update(m, users, items, NULL, 1, EMBER_UPDATE_ITEMS), EMBER_OK);
    const float *Q, *bias;
    size_t dim;
    m->ops->dot_items(m, &Q, &bias, &dim);
    uint32_t *who = malloc(nu * sizeof *who);
    size_t n = 0;
    for (uint32_t u = 0; u < nu; u++)
        if (has_item(m, u, items[0]))
            who[n++] = u;
    assert_true(als_residual(P0, nu, d, who, n, Q + (size_t)items[0] * d) < 1e-4);
    /* and user 11 then solved against the new item table */
    uint32_t *buf = malloc(m->n_items * sizeof *buf);
    float x[8];
    user_vector(m, 11, x);
    size_t ni = distinct_items(m, 11, buf);
    assert_true(als_residual(Q, m->n_items, d, buf, ni, x) < 1e-4);
    free(buf);
    free(who);
    free(P0);
    ember_model_free(m);
}

static void test_bpr_update_moves_only_the_touched_users(void **state)
{
    (void)state;
    static const char *const p[] = {"factors=8", "epochs=5", NULL};
    ember_model *m = fitted("bpr", p);
    size_t d = 8, nu = m->n_users;
    float *before = malloc(nu * d * sizeof *before);
    for (uint32_t u = 0; u < nu; u++)
        user_vector(m, u, before + u * d);
    uint32_t users[2] = {5, 6}, items[2];
    unseen_items(m, 5, items, 1);
    unseen_items(m, 6, items + 1, 1);
    /* the new item's score for user 5 rises */
    ember_query q = {.user = 5};
    float s0, s1;
    assert_int_equal(ember_model_score(m, &q, items, 1, &s0), EMBER_OK);
    assert_int_equal(ember_model_update(m, users, items, NULL, 2, 0), EMBER_OK);
    assert_int_equal(ember_model_score(m, &q, items, 1, &s1), EMBER_OK);
    assert_true(s1 > s0);
    float x[8];
    for (uint32_t u = 0; u < nu; u++) {
        user_vector(m, u, x);
        if (u == 5 || u == 6)
            assert_true(memcmp(x, before + u * d, sizeof x) != 0);
        else
            assert_memory_equal(x, before + u * d, sizeof x);
    }
    /* with EMBER_UPDATE_ITEMS the new items move too (and nobody else) */
    const float *Q, *bias;
    size_t dim;
    m->ops->dot_items(m, &Q, &bias, &dim);
    float q0[8], q1[8];
    memcpy(q0, Q + (size_t)items[0] * d, sizeof q0);
    uint32_t again_u[1] = {5}, again_i[1] = {items[0]};
    assert_int_equal(ember_model_update(m, again_u, again_i, NULL, 1, EMBER_UPDATE_ITEMS),
                     EMBER_OK);
    m->ops->dot_items(m, &Q, &bias, &dim);
    memcpy(q1, Q + (size_t)items[0] * d, sizeof q1);
    assert_true(memcmp(q0, q1, sizeof q0) != 0);
    free(before);
    ember_model_free(m);
}

static void test_history_models_use_the_new_events_at_once(void **state)
{
    (void)state;
    /* itemknn has no update step: the grown history is what it scores */
    static const char *const p[] = {"k=50", NULL};
    ember_model *m = fitted("itemknn", p);
    uint32_t u = 9, items[3];
    unseen_items(m, u, items, 3);
    ember_query known = {.user = u};
    size_t ni = m->n_items;
    float *want = malloc(ni * sizeof *want), *got = malloc(ni * sizeof *got);
    ember_query as_history = {.user = u, .hist = items, .n_hist = 3};
    assert_int_equal(ember_model_score(m, &as_history, NULL, 0, want), EMBER_OK);
    uint32_t users[3] = {u, u, u};
    assert_int_equal(ember_model_update(m, users, items, NULL, 3, 0), EMBER_OK);
    assert_int_equal(ember_model_score(m, &known, NULL, 0, got), EMBER_OK);
    assert_memory_equal(got, want, ni * sizeof *got);
    free(want);
    free(got);
    ember_model_free(m);
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void test_loaded_model_updates_in_memory_and_saves(void **state)
{
    (void)state;
    ember_model *m = fitted("als", als_params);
    const char *path = test_write_file("als.model", "");
    assert_int_equal(ember_model_save(m, path), EMBER_OK);
    ember_model_free(m);
    size_t n0;
    unsigned char *bytes0 = read_all(path, &n0);
    ember_model *l;
    assert_int_equal(ember_model_load(path, &l), EMBER_OK);
    uint32_t users[2] = {1, 2}, items[2];
    unseen_items(l, 1, items, 1);
    unseen_items(l, 2, items + 1, 1);
    int64_t ts[2] = {4000000000LL, 4000000001LL};
    assert_int_equal(ember_model_update(l, users, items, ts, 2, EMBER_UPDATE_ITEMS), EMBER_OK);
    /* the file is untouched */
    size_t n1;
    unsigned char *bytes1 = read_all(path, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(bytes0, bytes1, n0);
    /* the updated model saves and loads to the same answers */
    const char *again = test_write_file("als-updated.model", "");
    assert_int_equal(ember_model_save(l, again), EMBER_OK);
    ember_model *r;
    assert_int_equal(ember_model_load(again, &r), EMBER_OK);
    assert_int_equal(r->hist.nnz, l->hist.nnz);
    assert_int_equal(r->t_max, 4000000001LL);
    for (uint32_t u = 0; u < 5; u++) {
        ember_query q = {.user = u};
        float a[600], b[600];
        assert_true(l->n_items <= 600);
        assert_int_equal(ember_model_score(l, &q, NULL, 0, a), EMBER_OK);
        assert_int_equal(ember_model_score(r, &q, NULL, 0, b), EMBER_OK);
        assert_memory_equal(a, b, l->n_items * sizeof *a);
    }
    free(bytes0);
    free(bytes1);
    ember_model_free(l);
    ember_model_free(r);
}

static void test_bad_updates_change_nothing(void **state)
{
    (void)state;
    ember_model *m = fitted("als", als_params);
    uint64_t nnz = m->hist.nnz;
    uint32_t users[2] = {0, (uint32_t)m->n_users}, items[2] = {0, 1};
    assert_int_equal(ember_model_update(m, users, items, NULL, 2, 0), EMBER_EINVAL);
    users[1] = 1;
    items[1] = (uint32_t)m->n_items;
    assert_int_equal(ember_model_update(m, users, items, NULL, 2, 0), EMBER_EINVAL);
    items[1] = 1;
    assert_int_equal(ember_model_update(m, users, items, NULL, 2, 0x80), EMBER_EINVAL);
    assert_int_equal(m->hist.nnz, nnz);
    assert_int_equal(ember_model_update(m, users, items, NULL, 0, 0), EMBER_OK);
    assert_int_equal(m->hist.nnz, nnz);
    ember_model_free(m);
    ember_model *fresh;
    assert_int_equal(ember_model_new("als", NULL, &fresh), EMBER_OK);
    assert_int_equal(ember_model_update(fresh, users, items, NULL, 1, 0), EMBER_EINVAL);
    ember_model_free(fresh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_als_update_resolves_touched_users_exactly),
        cmocka_unit_test(test_als_update_of_items_resolves_them_and_keeps_the_gram),
        cmocka_unit_test(test_als_item_update_solves_exactly_when_no_user_moves_with_it),
        cmocka_unit_test(test_bpr_update_moves_only_the_touched_users),
        cmocka_unit_test(test_history_models_use_the_new_events_at_once),
        cmocka_unit_test(test_loaded_model_updates_in_memory_and_saves),
        cmocka_unit_test(test_bad_updates_change_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
