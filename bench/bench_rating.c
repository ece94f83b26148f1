/*
 * bench_rating.c — explicit rating prediction (svd, svdpp): accuracy on
 * the ML-100K rating folds and the speed of one SGD epoch at scale.
 *
 *   bench_rating [--threads 2] [--mode folds|select|speed] [--epochs-speed 5]
 *                [--slices 3] [--synth USERS,ITEMS,ROWS] [--data DIR] MODEL [k=v ...]
 *
 * folds (default): fit on fold{1..5}.train.tsv, predict fold{1..5}.test.tsv
 *   (PROTOCOL.md: predictions clipped to the training rating range, unknown
 *   users or items get the training mean), per fold and the mean RMSE/MAE,
 *   with fit and prediction times.  These are the published figures.
 * select: the held-out slices used to choose the defaults, never a test
 *   file: fold1.train.tsv cut into 10 slices by a seeded assignment
 *   (data_split_kfold, seed 2020); for slice s = 0..--slices-1, fit on the
 *   other nine and measure RMSE/MAE on slice s; prints the mean.
 * speed: synthetic 100,000 users x 200,000 items x 5,000,000 ratings
 *   (ember's generator, written to /tmp once), the given model and
 *   parameters with --epochs-speed epochs; prints each epoch's seconds
 *   (from the training log, so initialisation is not counted), the
 *   median, the peak RSS, and this machine's references measured in the
 *   same run: sequential memory read bandwidth and the rate of reading
 *   random 256-byte rows from a table the size of the factor tables (what
 *   an SGD step waits on), next to the peer figures of PEERS.md.
 */
#include "core/core.h"
#include "data/data.h"
#include "eval/eval.h"
#include "models/model.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(const char *what)
{
    fprintf(stderr, "bench_rating: %s: %s\n", what, ember_last_error());
    exit(1);
}

/* Fits name(params) on train and predicts test; returns the fit seconds. */
static double fit_and_predict(const char *name, const char *const *params, int threads,
                              const ember_dataset *train, const ember_dataset *test,
                              eval_rating_result *r, char *params_json, size_t pj_len)
{
    ember_model *m;
    if (ember_model_new(name, params, &m))
        die("model");
    if (!ember_model_predicts_ratings(m)) {
        fprintf(stderr, "bench_rating: model %s does not predict ratings\n", name);
        exit(2);
    }
    ember_fit_opts fo = {.threads = threads, .seed = 42};
    double t0 = ember_now();
    if (ember_model_fit(m, train, NULL, &fo))
        die("fit");
    double t_fit = ember_now() - t0;
    if (eval_ratings(m, test, threads, m->rating_min, m->rating_max, r))
        die("eval");
    snprintf(params_json, pj_len, "%s", ember_model_params_json(m));
    ember_model_free(m);
    return t_fit;
}

static int run_folds(const char *dir, const char *name, const char *const *params, int threads)
{
    double rmse = 0, mae = 0, t_fit = 0, t_pred = 0;
    char pj[1024] = "";
    for (int f = 1; f <= 5; f++) {
        char ptr[1024], pte[1024];
        snprintf(ptr, sizeof ptr, "%s/fold%d.train.tsv", dir, f);
        snprintf(pte, sizeof pte, "%s/fold%d.test.tsv", dir, f);
        ember_idmap *u = ember_idmap_new(), *it = ember_idmap_new();
        ember_dataset *tr, *te;
        if (!u || !it || ember_dataset_load(ptr, NULL, u, it, &tr, NULL) ||
            ember_dataset_load(pte, NULL, u, it, &te, NULL))
            die("load");
        eval_rating_result r;
        double tf = fit_and_predict(name, params, threads, tr, te, &r, pj, sizeof pj);
        printf("fold%d  rmse %.4f  mae %.4f  (%zu test ratings, %zu unknown)  fit %.3f s  "
               "predict %.3f s\n",
               f, r.rmse, r.mae, r.rows, r.unknown, tf, r.seconds);
        rmse += r.rmse / 5;
        mae += r.mae / 5;
        t_fit += tf / 5;
        t_pred += r.seconds / 5;
        ember_dataset_free(tr);
        ember_dataset_free(te);
        ember_idmap_free(u);
        ember_idmap_free(it);
    }
    printf("model %s %s, %d threads\n", name, pj, threads);
    printf("mean of 5 folds: rmse %.4f  mae %.4f  | fit %.3f s  predict %.3f s (means)\n", rmse,
           mae, t_fit, t_pred);
    printf("peers (PEERS.md, same folds): libmf 64 factors 0.9102 / 0.7219; Surprise SVD++ "
           "0.9204 / 0.7220; Surprise SVD 0.9353 / 0.7372\n");
    return 0;
}

static int run_select(const char *dir, const char *name, const char *const *params, int threads,
                      int slices)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/fold1.train.tsv", dir);
    ember_idmap *u = ember_idmap_new(), *it = ember_idmap_new();
    ember_coo c = {0};
    if (!u || !it || ember_coo_read(path, NULL, u, it, &c, NULL))
        die("load");
    uint32_t *fold;
    if (data_split_kfold(&c, 10, 2020, &fold))
        die("split");
    size_t *idx = malloc(c.n * sizeof *idx);
    if (!idx)
        return 1;
    double rmse = 0, mae = 0, t_fit = 0;
    char pj[1024] = "";
    for (int sl = 0; sl < slices; sl++) {
        size_t n_in = 0, n_out = 0;
        for (size_t k = 0; k < c.n; k++)
            if (fold[k] != (uint32_t)sl)
                idx[n_in++] = k;
        size_t *out_idx = idx + n_in;
        for (size_t k = 0; k < c.n; k++)
            if (fold[k] == (uint32_t)sl)
                out_idx[n_out++] = k;
        ember_coo ci = {0}, co = {0};
        ember_dataset *tr, *ho;
        if (data_coo_select(&c, idx, n_in, &ci) || data_coo_select(&c, out_idx, n_out, &co) ||
            ember_dataset_build(&ci, u, it, &tr) || ember_dataset_build(&co, u, it, &ho))
            die("build");
        eval_rating_result r;
        double tf = fit_and_predict(name, params, threads, tr, ho, &r, pj, sizeof pj);
        printf("slice %d: %zu train, %zu held out  rmse %.4f  mae %.4f  fit %.3f s\n", sl, n_in,
               n_out, r.rmse, r.mae, tf);
        rmse += r.rmse / slices;
        mae += r.mae / slices;
        t_fit += tf / slices;
        ember_coo_free(&ci);
        ember_coo_free(&co);
        ember_dataset_free(tr);
        ember_dataset_free(ho);
    }
    printf("model %s %s, %d threads\n", name, pj, threads);
    printf("select (fold1.train, 10 slices by seed 2020, mean over slices 0..%d held out): rmse "
           "%.4f  mae %.4f  fit %.3f s\n",
           slices - 1, rmse, mae, t_fit);
    ember_coo_free(&c);
    ember_idmap_free(u);
    ember_idmap_free(it);
    free(fold);
    free(idx);
    return 0;
}

/* Transparent huge pages in use by this process (MB; 0 if unknown). */
static double huge_pages_mb(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "AnonHugePages:", 14))
            kb = atof(line + 14);
    if (f)
        fclose(f);
    return kb / 1024.0;
}

/* Sequential read bandwidth (GB/s) over a 512 MB buffer, threads wide. */
static double read_bandwidth(int threads)
{
    size_t n = (size_t)64 << 20; /* doubles */
    double *a = malloc(n * sizeof *a);
    if (!a)
        return 0;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t k = 0; k < n; k++)
        a[k] = (double)(k & 1023);
    double best = 0, sink = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = ember_now(), s = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : s)
        for (size_t k = 0; k < n; k++)
            s += a[k];
        double t = ember_now() - t0;
        sink += s;
        best = EMBER_MAX(best, (double)(n * sizeof *a) / t / 1e9);
    }
    free(a);
    return sink > 0 ? best : best; /* sink keeps the sum alive */
}

/* Random 256-byte rows read per second (millions) from a table of rows
 * rows: the memory access pattern of an SGD step, without the arithmetic. */
static double random_rows_rate(size_t rows, int threads)
{
    size_t d = 64, n_reads = 5000000;
    float *t = malloc(rows * d * sizeof *t);
    if (!t)
        return 0;
    for (size_t k = 0; k < rows * d; k++)
        t[k] = 1.0f;
    double t0 = ember_now(), sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
    {
        ember_rng r;
        ember_rng_seed(&r, 99 + (uint64_t)omp_get_thread_num());
        float s = 0;
#pragma omp for schedule(static)
        for (size_t k = 0; k < n_reads; k++) {
            const float *row = t + ember_rng_below(&r, rows) * d;
            for (size_t j = 0; j < d; j++)
                s += row[j];
        }
        sink += s;
    }
    double secs = ember_now() - t0;
    free(t);
    return sink > 0 ? (double)n_reads / secs / 1e6 : 0;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

/* Fits name(params, epochs=epochs) on d; the process CPU seconds and the
 * wall seconds the fit took. */
static void fit_timed(const char *name, const char *const *params, int epochs, int threads,
                      const ember_dataset *d, const char *logp, double *cpu, double *wall,
                      ember_model **out)
{
    size_t np = 0;
    while (params[np])
        np++;
    const char **all = calloc(np + 2, sizeof *all);
    char ep[32];
    if (!all)
        exit(1);
    for (size_t k = 0; k < np; k++)
        all[k] = params[k];
    snprintf(ep, sizeof ep, "epochs=%d", epochs);
    all[np] = ep; /* the last of a name wins */
    if (ember_model_new(name, all, out))
        die("model");
    free(all);
    ember_fit_opts fo = {.threads = threads, .seed = 42, .log_path = logp};
    double c0 = cpu_seconds(), t0 = ember_now();
    if (ember_model_fit(*out, d, NULL, &fo))
        die("fit");
    *wall = ember_now() - t0;
    *cpu = cpu_seconds() - c0;
}

static int run_speed(const char *name, const char *const *params, int threads, int epochs,
                     size_t nu, size_t ni, size_t nr)
{
    char path[256], logp[256];
    snprintf(path, sizeof path, "/tmp/ember-bench-synth-%zu-%zu-%zu.tsv", nu, ni, nr);
    struct stat sb;
    if (stat(path, &sb) != 0) {
        data_synth_opts so;
        data_synth_opts_init(&so);
        so.n_users = nu;
        so.n_items = ni;
        so.n_interactions = nr;
        so.seed = 1;
        double t = ember_now();
        if (data_synth_write(&so, path, NULL))
            die("synth");
        printf("generated %s in %.2f s\n", path, ember_now() - t);
    }
    ember_dataset *d;
    double t0 = ember_now();
    if (ember_dataset_load(path, NULL, NULL, NULL, &d, NULL))
        die("load");
    printf("%s: %zu users, %zu items, %zu ratings (loaded in %.2f s)\n", path,
           ember_dataset_n_users(d), ember_dataset_n_items(d), ember_dataset_nnz(d),
           ember_now() - t0);
    ember_model *m = NULL;
    double cpu1, cpu_n, t_fit;
    snprintf(logp, sizeof logp, "/tmp/ember-bench-rating-%d.log", (int)getpid());
    /* a 1-epoch fit first: the difference of CPU times is the epochs' alone */
    fit_timed(name, params, 1, threads, d, NULL, &cpu1, &t_fit, &m);
    ember_model_free(m);
    fit_timed(name, params, epochs, threads, d, logp, &cpu_n, &t_fit, &m);
    double thp = huge_pages_mb();
    FILE *f = fopen(logp, "r");
    if (!f) {
        perror(logp);
        return 1;
    }
    double secs[1024];
    size_t n = 0;
    char line[512];
    printf("model %s %s, %d threads\n", name, ember_model_params_json(m), threads);
    printf("epoch seconds:");
    while (n < 1024 && fgets(line, sizeof line, f)) {
        const char *s = strstr(line, "\"seconds\":");
        const char *l = strstr(line, "\"loss\":");
        if (!s)
            continue;
        secs[n] = atof(s + 10);
        printf(" %.3f", secs[n]);
        if (l && n + 1 == (size_t)epochs)
            printf(" (last train mse %.4f)", atof(l + 7));
        n++;
    }
    printf("\n");
    fclose(f);
    remove(logp);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double med = n ? median(secs, n) : 0;
    printf("median %.3f s/epoch (%.1f M ratings/s) | fit total %.2f s incl. setup | peak RSS "
           "%.0f MB (%.0f MB on huge pages)\n",
           med, med > 0 ? (double)ember_dataset_nnz(d) / med / 1e6 : 0, t_fit,
           (double)ru.ru_maxrss / 1024.0, thp);
    if (epochs > 1)
        printf("CPU time per epoch: %.3f s per thread (the process's CPU seconds over %d epochs / "
               "%d threads: what a quiet machine's wall time would be)\n",
               (cpu_n - cpu1) / (epochs - 1) / threads, epochs - 1, threads);
    ember_model_free(m);
    ember_dataset_free(d);
    printf("machine: read bandwidth %.1f GB/s (%d threads); random 256-byte rows from a 77 MB "
           "table: %.1f M/s (an epoch reads 2 rows per rating)\n",
           read_bandwidth(threads), threads, random_rows_rate(300000, threads));
    printf("peers (PEERS.md, shared machine): libmf SGD 0.43 s/iteration (SSE) / 0.24 s (AVX), "
           "143 MB; Surprise SVD 2.26 s/epoch (1 thread), 2.06 GB\n");
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = EMBER_DATA_DIR "/ml-100k/splits/rating", *mode = "folds";
    int threads = 2, epochs = 5, slices = 3, i = 1;
    size_t nu = 100000, ni = 200000, nr = 5000000;
    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (!strcmp(argv[i], "--data"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--mode"))
            mode = argv[i + 1];
        else if (!strcmp(argv[i], "--slices"))
            slices = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--epochs-speed"))
            epochs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--synth")) {
            if (sscanf(argv[i + 1], "%zu,%zu,%zu", &nu, &ni, &nr) != 3)
                i = argc; /* usage below */
        } else
            break;
    }
    if (i >= argc || threads < 1 || epochs < 1 || epochs > 1000 || slices < 1 || slices > 10) {
        fprintf(stderr, "usage: bench_rating [--threads N] [--mode folds|select|speed] "
                        "[--epochs-speed N] [--slices N] [--synth U,I,R] [--data DIR] "
                        "MODEL [k=v ...]\n");
        return 2;
    }
    const char *name = argv[i];
    const char *const *params = (const char *const *)(argv + i + 1);
    if (!strcmp(mode, "folds"))
        return run_folds(dir, name, params, threads);
    if (!strcmp(mode, "select"))
        return run_select(dir, name, params, threads, slices);
    if (!strcmp(mode, "speed"))
        return run_speed(name, params, threads, epochs, nu, ni, nr);
    fprintf(stderr, "bench_rating: unknown mode %s\n", mode);
    return 2;
}
