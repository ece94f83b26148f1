/*
 * evaluate.c — the full-ranking protocol (shared/docs/PROTOCOL.md, "Top-N"):
 * for each user with test items, score all of the model's items with the
 * user's history (stored + --history), set excluded items to -inf, take
 * the K best (ties to the smaller index), and average the per-user
 * metrics of metrics.c.  Beyond-accuracy figures come from how often each
 * item is recommended over all users.
 *
 * Users run in parallel; each thread owns a score buffer and its own sums
 * and item counts, merged at the end, so results do not depend on the
 * thread count except for floating-point summation order of the means
 * (sums are double).
 */
#include "eval/eval.h"

#include "core/topk.h"
#include "models/model.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double hit, precision, recall, ndcg, mrr, map, pop, novelty, ild;
    size_t rec_items;
} sums;

static size_t row_len(const ember_dataset *d, size_t u)
{
    return u < d->n_users ? (size_t)(d->u_ptr[u + 1] - d->u_ptr[u]) : 0;
}

int eval_ranking(const ember_model *m, const eval_opts *o, eval_result *out)
{
    memset(out, 0, sizeof *out);
    double t0 = ember_now();
    size_t n_items = m->n_items, n_ks = o->n_ks;
    if (n_ks == 0 || n_ks > EVAL_MAX_KS)
        return ember_fail(EMBER_EINVAL, "eval: between 1 and %d cut-offs", EVAL_MAX_KS);
    size_t kmax = 0;
    for (size_t j = 0; j < n_ks; j++) {
        if (o->ks[j] == 0)
            return ember_fail(EMBER_EINVAL, "eval: a cut-off must be at least 1");
        kmax = EMBER_MAX(kmax, o->ks[j]);
    }
    const ember_dataset *test = o->test;
    size_t n_users = test->n_users;
    size_t nthreads = (size_t)ember_threads(o->threads);
    sums *acc = ember_calloc(nthreads * n_ks, sizeof *acc);
    uint64_t *rec_count = ember_calloc(nthreads * n_ks * (n_items ? n_items : 1), sizeof *rec_count);
    size_t *t_users = ember_calloc(nthreads, sizeof *t_users);
    size_t *t_cold = ember_calloc(nthreads, sizeof *t_cold);
    size_t *t_items = ember_calloc(nthreads, sizeof *t_items);
    size_t *t_unknown = ember_calloc(nthreads, sizeof *t_unknown);
    if (!acc || !rec_count || !t_users || !t_cold || !t_items || !t_unknown) {
        free(acc);
        free(rec_count);
        free(t_users);
        free(t_cold);
        free(t_items);
        free(t_unknown);
        return EMBER_ENOMEM;
    }
    int status = EMBER_OK;
    char first_error[256] = "";
#pragma omp parallel num_threads((int)nthreads)
    {
        size_t tid = (size_t)omp_get_thread_num();
        float *scores = malloc((n_items ? n_items : 1) * sizeof *scores);
        uint32_t *top = malloc(kmax * sizeof *top);
        float *top_s = malloc(kmax * sizeof *top_s);
        uint32_t *truth = NULL, *hist = NULL;
        size_t truth_cap = 0, hist_cap = 0;
        const uint32_t **sets = malloc(kmax * sizeof *sets);
        size_t *set_len = malloc(kmax * sizeof *set_len);
        bool ok = scores && top && top_s && sets && set_len;
        if (!ok) {
#pragma omp atomic write
            status = EMBER_ENOMEM;
        }
#pragma omp for schedule(dynamic, 16)
        for (size_t u = 0; u < n_users; u++) {
            int seen_status;
#pragma omp atomic read
            seen_status = status;
            if (!ok || seen_status != EMBER_OK)
                continue;
            size_t nt = row_len(test, u);
            if (nt == 0)
                continue;
            /* truth: known items ascending, unique; unknown ones counted */
            if (ember_grow((void **)&truth, &truth_cap, nt, sizeof *truth)) {
                ok = false;
#pragma omp atomic write
                status = EMBER_ENOMEM;
                continue;
            }
            size_t n_truth = 0, n_total = 0;
            for (uint64_t p = test->u_ptr[u]; p < test->u_ptr[u + 1]; p++) {
                uint32_t it = test->u_item[p];
                bool dup = p > test->u_ptr[u] && test->u_item[p - 1] == it;
                if (dup)
                    continue;
                n_total++;
                if (it < n_items)
                    truth[n_truth++] = it;
                else
                    t_unknown[tid]++;
            }
            t_items[tid] += n_total;
            /* history brought by --history files, in time order per file */
            size_t nh = 0;
            for (size_t h = 0; h < o->n_history; h++) {
                const ember_dataset *hd = o->history[h];
                size_t len = row_len(hd, u);
                if (len == 0)
                    continue;
                if (ember_grow((void **)&hist, &hist_cap, nh + len, sizeof *hist)) {
                    ok = false;
                    break;
                }
                for (uint64_t p = hd->u_ptr[u]; p < hd->u_ptr[u + 1]; p++)
                    if (hd->u_seq[p] < n_items)
                        hist[nh++] = hd->u_seq[p];
            }
            if (!ok) {
#pragma omp atomic write
                status = EMBER_ENOMEM;
                continue;
            }
            bool known = u < m->n_users;
            ember_query q = {.user = known ? (int64_t)u : -1, .hist = nh ? hist : NULL,
                             .n_hist = nh};
            int st = ember_model_score(m, &q, NULL, 0, scores);
            if (st) {
#pragma omp critical(eval_err)
                {
                    if (status == EMBER_OK) {
                        status = st;
                        snprintf(first_error, sizeof first_error, "%s", ember_last_error());
                    }
                }
                continue;
            }
            for (size_t e = 0; e < o->n_exclude; e++) {
                const ember_dataset *ed = o->exclude[e];
                if (u >= ed->n_users)
                    continue;
                for (uint64_t p = ed->u_ptr[u]; p < ed->u_ptr[u + 1]; p++)
                    if (ed->u_item[p] < n_items)
                        scores[ed->u_item[p]] = -INFINITY;
            }
            size_t n_top;
            ember_topk(scores, n_items, kmax, top, top_s, &n_top);
            t_users[tid]++;
            if (!known)
                t_cold[tid]++;
            for (size_t j = 0; j < n_ks; j++) {
                size_t k = o->ks[j];
                size_t nk = EMBER_MIN(k, n_top);
                eval_rank r;
                eval_rank_user(top, nk, k, truth, n_truth, n_total, &r);
                sums *a = &acc[tid * n_ks + j];
                a->hit += r.hit;
                a->precision += r.precision;
                a->recall += r.recall;
                a->ndcg += r.ndcg;
                a->mrr += r.mrr;
                a->map += r.map;
                uint64_t *rc = rec_count + (tid * n_ks + j) * n_items;
                for (size_t t = 0; t < nk; t++) {
                    uint32_t it = top[t];
                    rc[it]++;
                    a->pop += m->item_count[it];
                    a->novelty += eval_novelty(m->item_count[it], m->n_users);
                }
                a->rec_items += nk;
                if (o->tok_ptr) {
                    for (size_t t = 0; t < nk; t++) {
                        sets[t] = o->tok + o->tok_ptr[top[t]];
                        set_len[t] = (size_t)(o->tok_ptr[top[t] + 1] - o->tok_ptr[top[t]]);
                    }
                    a->ild += eval_intra_list_diversity(sets, set_len, nk);
                }
            }
        }
        free(scores);
        free(top);
        free(top_s);
        free(truth);
        free(hist);
        free(sets);
        free(set_len);
    }
    if (status != EMBER_OK) {
        if (first_error[0])
            ember_fail(status, "%s", first_error);
        else if (status == EMBER_ENOMEM)
            ember_fail(status, "out of memory during evaluation");
        goto done;
    }
    for (size_t t = 0; t < nthreads; t++) {
        out->users += t_users[t];
        out->cold_users += t_cold[t];
        out->test_items += t_items[t];
        out->unknown_items += t_unknown[t];
    }
    out->n_ks = n_ks;
    out->has_ild = o->tok_ptr != NULL;
    for (size_t j = 0; j < n_ks; j++) {
        sums s = {0};
        uint64_t *rc = rec_count + j * n_items; /* merge into thread 0's slot */
        for (size_t t = 0; t < nthreads; t++) {
            const sums *a = &acc[t * n_ks + j];
            s.hit += a->hit;
            s.precision += a->precision;
            s.recall += a->recall;
            s.ndcg += a->ndcg;
            s.mrr += a->mrr;
            s.map += a->map;
            s.pop += a->pop;
            s.novelty += a->novelty;
            s.ild += a->ild;
            s.rec_items += a->rec_items;
            if (t > 0) {
                const uint64_t *rt = rec_count + (t * n_ks + j) * n_items;
                for (size_t i = 0; i < n_items; i++)
                    rc[i] += rt[i];
            }
        }
        eval_at_k *r = &out->at[j];
        double nu = out->users ? (double)out->users : 1.0;
        double nr = s.rec_items ? (double)s.rec_items : 1.0;
        size_t covered = 0;
        for (size_t i = 0; i < n_items; i++)
            covered += rc[i] > 0;
        *r = (eval_at_k){
            .k = o->ks[j],
            .hit = s.hit / nu,
            .precision = s.precision / nu,
            .recall = s.recall / nu,
            .ndcg = s.ndcg / nu,
            .mrr = s.mrr / nu,
            .map = s.map / nu,
            .coverage = n_items ? (double)covered / (double)n_items : 0,
            .avg_popularity = s.pop / nr,
            .novelty = s.novelty / nr,
            .gini = eval_gini(rc, n_items),
            .ild = s.ild / nu,
        };
    }
done:
    free(acc);
    free(rec_count);
    free(t_users);
    free(t_cold);
    free(t_items);
    free(t_unknown);
    out->seconds = ember_now() - t0;
    return status;
}

int eval_ratings(const ember_model *m, const ember_dataset *test, int threads, float lo, float hi,
                 eval_rating_result *out)
{
    memset(out, 0, sizeof *out);
    double t0 = ember_now();
    size_t n = test->nnz;
    float *pred = ember_alloc(n ? n : 1, sizeof *pred);
    float *truth = ember_alloc(n ? n : 1, sizeof *truth);
    uint32_t *items = ember_alloc(n ? n : 1, sizeof *items);
    if (!pred || !truth || !items) {
        free(pred);
        free(truth);
        free(items);
        return EMBER_ENOMEM;
    }
    int status = EMBER_OK;
    size_t unknown = 0;
    float mean = m->rating_mean;
#pragma omp parallel for schedule(dynamic, 16) num_threads(ember_threads(threads)) reduction(+ : unknown)
    for (size_t u = 0; u < test->n_users; u++) {
        uint64_t a = test->u_ptr[u], b = test->u_ptr[u + 1];
        size_t nk = 0;
        for (uint64_t p = a; p < b; p++) {
            truth[p] = test->u_rating[p];
            pred[p] = mean;
            if (test->u_item[p] < m->n_items && u < m->n_users)
                items[a + nk++] = test->u_item[p];
            else
                unknown++;
        }
        if (nk == 0)
            continue;
        ember_query q = {.user = (int64_t)u};
        int st = ember_model_score(m, &q, items + a, nk, pred + a);
        if (st) {
#pragma omp atomic write
            status = st;
            continue;
        }
        /* scores came back in the order of the known rows: spread them */
        size_t k = nk;
        for (uint64_t p = b; p-- > a;) {
            if (test->u_item[p] < m->n_items)
                pred[p] = pred[a + --k];
            else
                pred[p] = mean;
        }
    }
    if (status == EMBER_OK) {
        out->rows = n;
        out->unknown = unknown;
        out->rmse = eval_rmse(pred, truth, n, lo, hi);
        out->mae = eval_mae(pred, truth, n, lo, hi);
    }
    free(pred);
    free(truth);
    free(items);
    out->seconds = ember_now() - t0;
    return status;
}

int ember_valid_ndcg(const ember_model *m, void *ctx, double *score)
{
    const ember_valid_ctx *c = ctx;
    const ember_dataset *excl[1] = {c->exclude};
    eval_opts o = {.ks = {c->k ? c->k : 10}, .n_ks = 1, .threads = c->threads, .test = c->valid,
                   .exclude = excl, .n_exclude = c->exclude ? 1 : 0};
    eval_result r;
    int st = eval_ranking(m, &o, &r);
    if (st == EMBER_OK)
        *score = r.at[0].ndcg;
    return st;
}
