/*
 * bench_ml100k.c — accuracy and speed of a model on the ML-100K general
 * split (shared/docs/PROTOCOL.md): load, fit, full-ranking evaluation of
 * all test users with train+valid excluded; also the valid-set score
 * (train excluded) used to choose defaults.  Reports the median of
 * --repeat runs of fit and of evaluation.
 *
 *   bench_ml100k [--data DIR] [--threads 2] [--repeat 5] MODEL [k=v ...]
 */
#include "core/core.h"
#include "eval/eval.h"
#include "models/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv)
{
    const char *dir = EMBER_DATA_DIR "/ml-100k/splits/general";
    int threads = 2, repeat = 5, i = 1;
    for (; i < argc && argv[i][0] == '-'; i += 2) {
        if (i + 1 >= argc)
            break;
        if (!strcmp(argv[i], "--data"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--repeat"))
            repeat = atoi(argv[i + 1]);
    }
    if (i >= argc || repeat < 1 || repeat > 100) {
        fprintf(stderr, "usage: bench_ml100k [--data DIR] [--threads N] [--repeat N] MODEL [k=v ...]\n");
        return 2;
    }
    const char *name = argv[i];
    const char *const *params = (const char *const *)(argv + i + 1);
    char p_tr[1024], p_va[1024], p_te[1024];
    snprintf(p_tr, sizeof p_tr, "%s/train.tsv", dir);
    snprintf(p_va, sizeof p_va, "%s/valid.tsv", dir);
    snprintf(p_te, sizeof p_te, "%s/test.tsv", dir);
    double t0 = ember_now();
    ember_idmap *u = ember_idmap_new(), *it = ember_idmap_new();
    ember_dataset *tr, *va, *te;
    if (ember_dataset_load(p_tr, NULL, u, it, &tr, NULL) ||
        ember_dataset_load(p_va, NULL, u, it, &va, NULL) ||
        ember_dataset_load(p_te, NULL, u, it, &te, NULL)) {
        fprintf(stderr, "bench_ml100k: %s\n", ember_last_error());
        return 1;
    }
    double t_load = ember_now() - t0;
    double *t_fit = calloc((size_t)repeat, sizeof *t_fit);
    double *t_eval = calloc((size_t)repeat, sizeof *t_eval);
    eval_result rt = {0}, rv = {0};
    for (int r = 0; r < repeat; r++) {
        ember_model *m;
        if (ember_model_new(name, params, &m)) {
            fprintf(stderr, "bench_ml100k: %s\n", ember_last_error());
            return 2;
        }
        /* validation as `ember train --valid` does it: NDCG@10 on valid
         * (train excluded) for the models that early-stop */
        ember_valid_ctx vc = {.valid = va, .exclude = tr, .k = 10, .threads = threads};
        ember_fit_opts fo = {.threads = threads, .seed = 42, .valid_fn = ember_valid_ndcg,
                             .valid_ctx = &vc};
        double a = ember_now();
        if (ember_model_fit(m, tr, va, &fo)) {
            fprintf(stderr, "bench_ml100k: %s\n", ember_last_error());
            return 1;
        }
        t_fit[r] = ember_now() - a;
        const ember_dataset *ex_test[2] = {tr, va}, *ex_valid[1] = {tr};
        eval_opts eo = {.ks = {10, 20}, .n_ks = 2, .threads = threads, .test = te,
                        .exclude = ex_test, .n_exclude = 2};
        a = ember_now();
        if (eval_ranking(m, &eo, &rt)) {
            fprintf(stderr, "bench_ml100k: %s\n", ember_last_error());
            return 1;
        }
        t_eval[r] = ember_now() - a;
        if (r == 0) {
            eval_opts ev = {.ks = {10}, .n_ks = 1, .threads = threads, .test = va,
                            .exclude = ex_valid, .n_exclude = 1};
            if (eval_ranking(m, &ev, &rv)) {
                fprintf(stderr, "bench_ml100k: %s\n", ember_last_error());
                return 1;
            }
            printf("model %s %s, %d threads\n", name, ember_model_params_json(m), threads);
        }
        ember_model_free(m);
    }
    const eval_at_k *e = &rt.at[0], *e20 = &rt.at[1];
    printf("valid ndcg@10 %.4f\n", rv.at[0].ndcg);
    printf("test  ndcg@10 %.4f recall@10 %.4f precision@10 %.4f hit@10 %.4f mrr@10 %.4f "
           "map@10 %.4f coverage@10 %.4f | ndcg@20 %.4f recall@20 %.4f\n",
           e->ndcg, e->recall, e->precision, e->hit, e->mrr, e->map, e->coverage, e20->ndcg,
           e20->recall);
    double mf = median(t_fit, repeat), me = median(t_eval, repeat);
    printf("time  load %.3f s (3 files) | fit median %.3f s | eval (943 users, full ranking) "
           "median %.3f s | fit+eval %.3f s  [%d runs]\n",
           t_load, mf, me, mf + me, repeat);
    free(t_fit);
    free(t_eval);
    ember_dataset_free(tr);
    ember_dataset_free(va);
    ember_dataset_free(te);
    ember_idmap_free(u);
    ember_idmap_free(it);
    return 0;
}
