/*
 * test_rating_stop.c — early stopping of the rating models (svd, svdpp)
 * on the RMSE of a valid set (src/models/svd.c, svdpp.c, mf_valid_rmse):
 * the log carries valid_rmse every epoch, the fit stops `patience`
 * epochs after the best and keeps the best epoch's model (its valid RMSE
 * is the best logged one), patience=0 runs every epoch, and without a
 * valid set nothing changes.  ML-100K rating fold 1 (train, and its test
 * file as the valid set of this mechanism test).
 */
#include "testutil.h"

#include "models/mf.h"
#include "models/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static ember_dataset *train, *valid;

static int setup(void **state)
{
    (void)state;
    const char *tr = test_data_path("ml-100k/splits/rating/fold1.train.tsv");
    const char *va = test_data_path("ml-100k/splits/rating/fold1.test.tsv");
    if (!tr || !va)
        return 0;
    ember_idmap *u = ember_idmap_new(), *i = ember_idmap_new();
    ember_read_opts ro;
    ember_read_opts_init(&ro);
    int st = ember_dataset_load(tr, &ro, u, i, &train, NULL);
    ro.fixed_ids = 1;
    if (st == EMBER_OK)
        st = ember_dataset_load(va, &ro, u, i, &valid, NULL);
    ember_idmap_free(u);
    ember_idmap_free(i);
    return st ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    ember_dataset_free(train);
    ember_dataset_free(valid);
    return 0;
}

/* Fits name with params and a valid set, logging; returns the number of
 * epochs logged and the best logged valid_rmse. */
static size_t fit_logged(const char *name, const char *const *params, const ember_dataset *va,
                         ember_model **out, double *best, size_t *best_epoch)
{
    const char *log = test_write_file("stop.log", "");
    assert_int_equal(ember_model_new(name, params, out), EMBER_OK);
    ember_fit_opts fo = {.threads = 2, .seed = 1, .log_path = log};
    assert_int_equal(ember_model_fit(*out, train, va, &fo), EMBER_OK);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char line[512];
    size_t n = 0;
    *best = INFINITY;
    *best_epoch = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        const char *v = strstr(line, "\"valid_rmse\":");
        if (va)
            assert_non_null(v);
        else
            assert_null(v);
        if (v && strtod(v + 13, NULL) < *best) {
            *best = strtod(v + 13, NULL);
            *best_epoch = n;
        }
    }
    fclose(f);
    return n;
}

static void check_model(const char *name, const char *lr)
{
    if (!train) {
        print_message("skipped: ../shared/data absent\n");
        skip();
    }
    /* a learning rate that overfits soon, so the valid RMSE turns up */
    const char *params[] = {"epochs=60", lr, "lr_decay=1", "factors=32", NULL};
    ember_model *m;
    double best;
    size_t best_epoch;
    size_t n = fit_logged(name, params, valid, &m, &best, &best_epoch);
    print_message("%s: %zu epochs, best valid RMSE %.4f at epoch %zu\n", name, n, best,
                  best_epoch);
    assert_true(n < 60);                /* it stopped */
    assert_int_equal(n, best_epoch + 3); /* patience 3 */
    double now;
    assert_int_equal(mf_valid_rmse(m, valid, &now), EMBER_OK);
    assert_float_equal(now, best, 1e-5); /* the best epoch's model was kept */
    ember_model_free(m);
    /* patience 0: every epoch */
    const char *all[] = {"epochs=12", lr, "lr_decay=1", "factors=32", "patience=0", NULL};
    assert_int_equal(fit_logged(name, all, valid, &m, &best, &best_epoch), 12);
    ember_model_free(m);
    /* no valid set: every epoch, no valid_rmse */
    const char *plain[] = {"epochs=5", lr, "factors=32", NULL};
    assert_int_equal(fit_logged(name, plain, NULL, &m, &best, &best_epoch), 5);
    ember_model_free(m);
}

static void test_svd_stops_on_valid_rmse(void **state)
{
    (void)state;
    check_model("svd", "lr=0.05");
}

static void test_svdpp_stops_on_valid_rmse(void **state)
{
    (void)state;
    check_model("svdpp", "lr=0.04");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_svd_stops_on_valid_rmse),
        cmocka_unit_test(test_svdpp_stops_on_valid_rmse),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
