/*
 * bench_mf.c — speed of the implicit factorization models (als, bpr) on
 * synthetic data (default 100,000 users x 200,000 items x 5,000,000
 * interactions from ember's seeded generator, cached under /tmp), 64
 * factors, 2 threads:
 *   - ALS: seconds per iteration and the whole 15-iteration fit;
 *   - BPR: seconds per epoch over all positives (and WARP's, --only warp
 *     or all);
 *   - top-10 for every user (score all items through the model, which is
 *     mf_score_all for a known user, seen items removed, ember_topk),
 *     timed on the first --topk-users users (default 2,000) and scaled to
 *     all (0 = all users: slow, the per-user path reads the whole item
 *     table for every user);
 *   - fold-in of one new user from a 50-item history (ALS exact least
 *     squares, BPR SGD steps), timed through score_items of one item;
 *   - peak resident memory after each job (cumulative: run one job with
 *     --only for its own figure);
 * next to the machine's own limits measured last in the same run (sgemm
 * GFLOP/s and memory read bandwidth) and the peer figures of
 * shared/docs/PEERS.md.
 *
 * Per-iteration times come from fits of different lengths, so that
 * set-up (initialisation, allocation, index building) is left out:
 *   per iteration = (T(n) - T(1)) / (n - 1), median over --repeat runs,
 * printed as wall seconds and as CPU seconds over all threads (on a
 * shared machine the CPU figure / threads estimates the quiet wall time).
 *
 *   bench_mf [--repeat 3] [--threads 2] [--synth U,I,R] [--topk-users N]
 *            [--only als|bpr|warp|topk|foldin|ref] [FILE]
 */
#include "core/core.h"
#include "core/mips.h"
#include "core/topk.h"
#include "data/data.h"
#include "models/model.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

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

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* User + system CPU seconds of this process so far (all threads). */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static void die(const char *what)
{
    fprintf(stderr, "bench_mf: %s: %s\n", what, ember_last_error());
    exit(1);
}

/* Fits model name with params plus "iterations=n" (or "epochs=n"); returns
 * the fit's wall time (and its CPU time in *cpu when not NULL); keeps the
 * model when out is not NULL. */
static double timed_fit(const char *name, const char *count_key, int n, const char *const *extra,
                        const ember_dataset *train, int threads, ember_model **out, double *cpu)
{
    char count[64];
    snprintf(count, sizeof count, "%s=%d", count_key, n);
    const char *params[8] = {"factors=64", count};
    size_t np = 2;
    for (size_t i = 0; extra && extra[i] && np < 7; i++)
        params[np++] = extra[i];
    params[np] = NULL;
    ember_model *m;
    if (ember_model_new(name, params, &m))
        die("model");
    ember_fit_opts fo = {.threads = threads, .seed = 42};
    double t = ember_now(), c = cpu_seconds();
    if (ember_model_fit(m, train, NULL, &fo))
        die("fit");
    t = ember_now() - t;
    if (cpu)
        *cpu = cpu_seconds() - c;
    if (out)
        *out = m;
    else
        ember_model_free(m);
    return t;
}

/* Median seconds per iteration/epoch (wall, and CPU over all threads),
 * and the median whole fit of n. */
static void per_iteration(const char *name, const char *key, int n, const char *const *extra,
                          const ember_dataset *train, int threads, int repeat, double *per,
                          double *per_cpu, double *whole)
{
    double *d = calloc((size_t)repeat, sizeof *d), *w = calloc((size_t)repeat, sizeof *w);
    double *c = calloc((size_t)repeat, sizeof *c);
    for (int r = 0; r < repeat; r++) {
        double c1, cn;
        double t1 = timed_fit(name, key, 1, extra, train, threads, NULL, &c1);
        double tn = timed_fit(name, key, n, extra, train, threads, NULL, &cn);
        d[r] = (tn - t1) / (double)(n - 1);
        c[r] = (cn - c1) / (double)(n - 1);
        w[r] = tn;
    }
    *per = median(d, repeat);
    *per_cpu = median(c, repeat);
    *whole = median(w, repeat);
    free(d);
    free(w);
    free(c);
}

/* The machine's references: sgemm 4096^3 fp32 and a read-only sum over
 * 512 MB, both on `threads` threads. */
static void machine_refs(int threads, double *gflops, double *gbps)
{
    const size_t n = 4096;
    float *a = ember_alloc_aligned(n * n, sizeof *a), *b = ember_alloc_aligned(n * n, sizeof *b);
    float *c = ember_alloc_aligned(n * n, sizeof *c);
    if (!a || !b || !c)
        die("alloc");
    for (size_t i = 0; i < n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
    openblas_set_num_threads(threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, a,
                (int)n, b, (int)n, 0.0f, c, (int)n); /* warm-up */
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t = ember_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)n, (int)n, 1.0f, a,
                    (int)n, b, (int)n, 0.0f, c, (int)n);
        best = EMBER_MIN(best, ember_now() - t);
    }
    *gflops = 2.0 * (double)n * (double)n * (double)n / best / 1e9;
    free(a);
    free(b);
    free(c);
    const size_t m = (size_t)128 << 20; /* floats: 512 MB */
    float *x = ember_alloc_aligned(m, sizeof *x);
    if (!x)
        die("alloc");
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < m; i++)
        x[i] = (float)(i & 1023);
    best = 1e30;
    volatile float sink = 0;
    for (int r = 0; r < 3; r++) {
        double t = ember_now();
        float s = 0;
#pragma omp parallel for simd num_threads(threads) schedule(static) reduction(+ : s)
        for (size_t i = 0; i < m; i++)
            s += x[i];
        best = EMBER_MIN(best, ember_now() - t);
        sink += (float)s;
    }
    (void)sink;
    *gbps = (double)m * sizeof *x / best / 1e9;
    free(x);
}

/* Top-10 of every user (or the first n), seen items excluded, parallel
 * over users; returns the wall time. */
static double topk_all(const ember_model *m, const ember_dataset *train, size_t n_users,
                       int threads)
{
    size_t ni = ember_model_n_items(m);
    int failed = 0;
    double t = ember_now();
#pragma omp parallel num_threads(threads)
    {
        float *scores = ember_alloc(ni, sizeof *scores);
        uint32_t top[10];
        size_t got;
#pragma omp for schedule(dynamic, 64)
        for (size_t u = 0; u < n_users; u++) {
            ember_query q = {.user = (int64_t)u};
            if (!scores || ember_model_score(m, &q, NULL, 0, scores)) {
                failed = 1;
                continue;
            }
            for (uint64_t k = train->u_ptr[u]; k < train->u_ptr[u + 1]; k++)
                scores[train->u_item[k]] = -INFINITY;
            ember_topk(scores, ni, 10, top, NULL, &got);
        }
        free(scores);
    }
    if (failed)
        die("top-k");
    return ember_now() - t;
}

/* Top-10 of every user with ember_model_recommend_users (one blocked
 * search fused with the selection, core/mips.c); median wall time of
 * repeat runs; the lists (n_users x 10) into lists. */
static double topk_batched(const ember_model *m, size_t n_users, int threads, int repeat,
                           uint32_t *lists)
{
    uint32_t *users = ember_alloc(n_users, sizeof *users);
    uint32_t *counts = ember_alloc(n_users, sizeof *counts);
    if (!users || !counts)
        die("alloc");
    for (size_t u = 0; u < n_users; u++)
        users[u] = (uint32_t)u;
    double t[50];
    for (int r = 0; r < repeat; r++) {
        double a = ember_now();
        if (ember_model_recommend_users(m, users, n_users, 10, 0, threads, lists, NULL, counts))
            die("recommend_users");
        t[r] = ember_now() - a;
    }
    free(users);
    free(counts);
    return median(t, repeat);
}

/* The same search with every tile scored (mips_opts.exhaustive: no
 * pruning, nothing left out): the kernel against the sgemm floor.  One
 * run; the user vectors and the packing are not timed. */
static double topk_exhaustive(const ember_model *m, size_t n_users, int threads)
{
    const float *Q, *bias;
    size_t dim;
    m->ops->dot_items(m, &Q, &bias, &dim);
    float *X = ember_alloc_aligned(n_users * dim, sizeof *X);
    uint32_t *idx = ember_alloc(n_users * 10, sizeof *idx);
    uint32_t *counts = ember_alloc(n_users, sizeof *counts);
    if (!X || !idx || !counts)
        die("alloc");
    for (size_t u = 0; u < n_users; u++) {
        ember_query q = {.user = (int64_t)u};
        float c;
        if (m->ops->dot_query(m, &q, X + u * dim, &c))
            die("dot_query");
    }
    mips_index ix;
    if (mips_build(&ix, Q, dim, bias, m->n_items, dim))
        die("mips_build");
    mips_opts o = {.k = 10, .threads = threads, .exhaustive = true};
    double a = ember_now();
    if (mips_topk(&ix, X, dim, n_users, &o, idx, NULL, counts))
        die("mips_topk");
    double s = ember_now() - a;
    mips_free(&ix);
    free(X);
    free(idx);
    free(counts);
    return s;
}

/* Fold-in of a new user from 50 random items, timed through score_items
 * of one item (fold-in plus one dot product); median over 200 users. */
static double foldin_ms(const ember_model *m, uint64_t seed)
{
    size_t ni = ember_model_n_items(m);
    ember_rng r;
    ember_rng_seed(&r, seed);
    double t[200];
    uint32_t hist[50], one = 0;
    for (int k = 0; k < 200; k++) {
        for (int h = 0; h < 50; h++)
            hist[h] = (uint32_t)ember_rng_below(&r, ni);
        ember_query q = {.user = -1, .hist = hist, .n_hist = 50};
        float s;
        double a = ember_now();
        if (ember_model_score(m, &q, &one, 1, &s))
            die("fold-in");
        t[k] = (ember_now() - a) * 1e3;
    }
    return median(t, 200);
}

static bool wants(const char *only, const char *what)
{
    return !only || !strcmp(only, what);
}

/* The model jobs on the data in path (all, or only the one named). */
static void run_models(const char *path, const char *only, int threads, int repeat,
                       size_t topk_users)
{
    double t = ember_now();
    ember_dataset *train;
    if (ember_dataset_load(path, NULL, NULL, NULL, &train, NULL))
        die(path);
    printf("data: %s, %zu users x %zu items, %zu interactions, loaded in %.1f s (not timed "
           "below); %d threads, 64 factors, median of %d; peak RSS after load %.0f MB\n",
           path, train->n_users, train->n_items, train->nnz, ember_now() - t, threads, repeat,
           peak_rss_mb());
    printf("(shared machine: indicative figures; peers from shared/docs/PEERS.md)\n");
    if (wants(only, "als")) {
        double per, cpu, whole;
        per_iteration("als", "iterations", 15, NULL, train, threads, repeat, &per, &cpu, &whole);
        printf("als  per iteration %.3f s (%.2f CPU s) | 15 iterations %.2f s | peak RSS %.0f "
               "MB   [implicit 2.68 s/iteration, 40 s, 396 MB; goal 15 it. < 10 s]\n",
               per, cpu, whole, peak_rss_mb());
    }
    if (wants(only, "bpr")) {
        double per, cpu, whole;
        per_iteration("bpr", "epochs", 6, NULL, train, threads, repeat, &per, &cpu, &whole);
        printf("bpr  per epoch (%zu samples) %.3f s (%.2f CPU s; %.1f M samples/s) | peak RSS "
               "%.0f MB   [implicit 3.27 s/epoch, 396 MB; goal < 0.8 s]\n",
               train->nnz, per, cpu, (double)train->nnz / per / 1e6, peak_rss_mb());
    }
    if (wants(only, "warp")) {
        double per, cpu, whole;
        const char *warp[] = {"loss=warp", NULL};
        per_iteration("bpr", "epochs", 4, warp, train, threads, 1, &per, &cpu, &whole);
        printf("bpr  loss=warp per epoch %.3f s (%.2f CPU s; 1 run)   [LightFM WARP 18.6 "
               "s/epoch, 567 MB]\n",
               per, cpu);
    }
    if (wants(only, "topk") || wants(only, "foldin")) {
        ember_model *als = NULL, *bpr = NULL;
        timed_fit("als", "iterations", 15, NULL, train, threads, &als, NULL);
        timed_fit("bpr", "epochs", 2, NULL, train, threads, &bpr, NULL);
        if (wants(only, "foldin"))
            printf("fold-in of a new user, 50 items (median of 200): als %.3f ms (exact least "
                   "squares), bpr %.3f ms (SGD)   [goal als < 1 ms]\n",
                   foldin_ms(als, 7), foldin_ms(bpr, 7));
        if (wants(only, "topk")) {
            size_t nu = train->n_users;
            uint32_t *lists = ember_alloc(nu * 10, sizeof *lists);
            if (!lists)
                die("alloc");
            double bs = topk_batched(als, nu, threads, repeat, lists);
            double flop_all = 2.0 * (double)nu * (double)train->n_items * 64.0;
            /* agreement with the user-by-user path on the first users */
            size_t n_chk = EMBER_MIN(nu, (size_t)2000), same = 0;
            for (size_t u = 0; u < n_chk; u++) {
                ember_query q = {.user = (int64_t)u};
                uint32_t want[10];
                size_t got;
                if (ember_model_recommend(als, &q, 10, 1, want, NULL, &got))
                    die("recommend");
                for (size_t a = 0; a < got; a++)
                    for (size_t b = 0; b < 10; b++)
                        same += want[a] == lists[u * 10 + b];
            }
            free(lists);
            printf("top-10 over %zu items for all %zu users, batched "
                   "(ember_model_recommend_users: blocked 6x16 AVX2 tiles fused with the "
                   "selection, exact norm-bound pruning): %.2f s median of %d (%.0f GFLOP/s "
                   "equivalent of the full product); agrees with the user-by-user lists on "
                   "%.2f%% of entries (first %zu users); peak RSS %.0f MB   [implicit 51.6 s; "
                   "goal < 15 s]\n",
                   train->n_items, nu, bs, repeat, flop_all / bs / 1e9,
                   100.0 * (double)same / (double)(n_chk * 10), n_chk, peak_rss_mb());
            double es = topk_exhaustive(als, nu, threads);
            printf("  the same, every tile scored (no pruning, nothing left out; 1 run): %.2f s "
                   "(%.0f GFLOP/s; the sgemm floor at 207 GFLOP/s is %.1f s)\n",
                   es, flop_all / es / 1e9, flop_all / 207e9);
            size_t n = topk_users && topk_users < train->n_users ? topk_users : train->n_users;
            double s = topk_all(als, train, n, threads);
            double flop = 2.0 * (double)n * (double)train->n_items * 64.0;
            double all = s * (double)train->n_users / (double)n;
            double gb = (double)n * (double)train->n_items * 64 * sizeof(float) / 1e9;
            printf("top-10 over %zu items (score_all = mf_score_all, seen removed, "
                   "ember_topk): %zu users in %.2f s -> all %zu users %.1f s%s (%.1f GFLOP/s; "
                   "the item table read once per user: %.1f GB/s)   [implicit 51.6 s; goal < 15 "
                   "s]\n",
                   train->n_items, n, s, train->n_users, all,
                   n < train->n_users ? " (extrapolated)" : "", flop / s / 1e9, gb / s);
        }
        ember_model_free(als);
        ember_model_free(bpr);
    }
    printf("peak RSS %.0f MB\n", peak_rss_mb());
    ember_dataset_free(train);
}

int main(int argc, char **argv)
{
    int repeat = 3, threads = 2;
    size_t nu = 100000, ni = 200000, nr = 5000000, topk_users = 2000;
    const char *path = NULL, *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--repeat") && i + 1 < argc)
            repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--topk-users") && i + 1 < argc)
            topk_users = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--only") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--synth") && i + 1 < argc) {
            if (sscanf(argv[++i], "%zu,%zu,%zu", &nu, &ni, &nr) != 3) {
                fprintf(stderr, "--synth USERS,ITEMS,ROWS\n");
                return 2;
            }
        } else if (argv[i][0] != '-')
            path = argv[i];
        else {
            fprintf(stderr, "usage: bench_mf [--repeat N] [--threads N] [--synth U,I,R] "
                            "[--topk-users N] [--only als|bpr|warp|topk|foldin|ref] [FILE]\n");
            return 2;
        }
    }
    if (repeat < 1 || repeat > 50 || threads < 1)
        return 2;
    char tmp[256];
    if (!path) {
        snprintf(tmp, sizeof tmp, "/tmp/ember-bench-synth-%zu-%zu-%zu.tsv", nu, ni, nr);
        struct stat sb;
        if (stat(tmp, &sb) != 0) {
            data_synth_opts so;
            data_synth_opts_init(&so);
            so.n_users = nu;
            so.n_items = ni;
            so.n_interactions = nr;
            so.seed = 1;
            double t = ember_now();
            if (data_synth_write(&so, tmp, NULL))
                die("synth");
            printf("generated %s in %.2f s\n", tmp, ember_now() - t);
        }
        path = tmp;
    }
    if (!only || strcmp(only, "ref") != 0)
        run_models(path, only, threads, repeat, topk_users);
    /* last: its 512 MB buffer would hide the models' peak memory */
    if (wants(only, "ref")) {
        double gf, bw;
        machine_refs(threads, &gf, &bw);
        printf("machine: sgemm 4096^3 fp32 %.0f GFLOP/s, memory read %.1f GB/s (%d threads)   "
               "[quiet machine: about 207 GFLOP/s, 10-15 GB/s]\n",
               gf, bw, threads);
    }
    return 0;
}
