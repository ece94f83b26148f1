/*
 * metrics.c — the metrics of shared/docs/PROTOCOL.md as pure functions on
 * arrays: per-user ranking metrics at K, the beyond-accuracy measures
 * (Gini, novelty, Jaccard-based diversity), rating errors and CTR scores.
 *
 * Ranking: one pass over the first min(K, |R_u|) recommended items; each is
 * looked up in the user's sorted test items by binary search, and the hit
 * count, DCG, first-hit rank and the running sum of Precision@i are updated
 * together.  |T_u| (n_truth_total, which counts test items the model cannot
 * rank) is the denominator of Recall, the length of the ideal list in IDCG
 * and the normaliser min(K, |T_u|) of MAP.
 *
 * AUC: the rank-sum (Mann-Whitney U) form.  Rows are sorted by prediction
 * once (O(n log n)); walking the tie groups from low to high, a positive
 * scores 1 for every negative in an earlier group and 1/2 for every negative
 * in its own group.  AUC = U / (P N).  Predictions become order-preserving
 * 32-bit keys (-0 folded into +0, every NaN one group below -inf) so the
 * sort compares integers under a total order.
 *
 * Labels are binary: a label > 0.5 is a positive, anything else a negative,
 * in both AUC and LogLoss.
 *
 * The functions return a double and cannot report a status; the two that
 * allocate (eval_gini, eval_auc) return NaN when the allocation fails, with
 * the message set through ember_fail().
 *
 * References: Järvelin & Kekäläinen 2002 (NDCG); Hanley & McNeil 1982 (AUC
 * as the Mann-Whitney statistic); RecBole's metric definitions, which
 * PROTOCOL.md follows.
 */
#include "eval/metrics.h"

#include "core/core.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void eval_rank_user(const uint32_t *ranked, size_t n_ranked, size_t k, const uint32_t *truth,
                    size_t n_truth, size_t n_truth_total, eval_rank *out)
{
    memset(out, 0, sizeof *out);
    if (n_truth_total == 0 || k == 0)
        return;
    size_t n = EMBER_MIN(k, n_ranked);
    size_t hits = 0;
    double dcg = 0.0, sum_prec = 0.0, mrr = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!ember_sorted_has_u32(truth, n_truth, ranked[i]))
            continue;
        hits++;
        dcg += 1.0 / log2((double)i + 2.0);
        sum_prec += (double)hits / (double)(i + 1);
        if (hits == 1)
            mrr = 1.0 / (double)(i + 1);
    }
    size_t n_ideal = EMBER_MIN(k, n_truth_total);
    double idcg = 0.0;
    for (size_t i = 0; i < n_ideal; i++)
        idcg += 1.0 / log2((double)i + 2.0);

    out->hit = hits > 0 ? 1.0 : 0.0;
    out->precision = (double)hits / (double)k;
    out->recall = (double)hits / (double)n_truth_total;
    out->ndcg = dcg / idcg;
    out->mrr = mrr;
    out->map = sum_prec / (double)n_ideal;
}

static int compare_u64(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return (a > b) - (a < b);
}

double eval_gini(const uint64_t *counts, size_t n)
{
    if (n == 0)
        return 0.0;
    uint64_t *c = ember_alloc(n, sizeof *c);
    if (!c)
        return NAN;
    memcpy(c, counts, n * sizeof *c);
    qsort(c, n, sizeof *c, compare_u64);
    double sum = 0.0, weighted = 0.0;
    for (size_t i = 0; i < n; i++) {
        double ci = (double)c[i];
        sum += ci;
        /* (2i - n - 1) with i counted from 1 is 2(i0 + 1) - n - 1 = 2 i0 + 1 - n. */
        weighted += (2.0 * (double)i + 1.0 - (double)n) * ci;
    }
    free(c);
    if (sum == 0.0)
        return 0.0;
    return weighted / ((double)n * sum);
}

double eval_novelty(uint64_t train_count, size_t n_users)
{
    if (n_users == 0)
        return 0.0;
    uint64_t c = train_count ? train_count : 1;
    return -log2((double)c / (double)n_users);
}

double eval_jaccard_distance(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    size_t i = 0, j = 0, inter = 0;
    while (i < na && j < nb) {
        if (a[i] < b[j]) {
            i++;
        } else if (b[j] < a[i]) {
            j++;
        } else {
            inter++;
            i++;
            j++;
        }
    }
    size_t uni = na + nb - inter;
    if (uni == 0)
        return 0.0;
    return 1.0 - (double)inter / (double)uni;
}

double eval_intra_list_diversity(const uint32_t *const *sets, const size_t *set_len, size_t n)
{
    if (n < 2)
        return 0.0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            sum += eval_jaccard_distance(sets[i], set_len[i], sets[j], set_len[j]);
    double pairs = (double)n * (double)(n - 1) / 2.0;
    return sum / pairs;
}

static double clip(double x, double lo, double hi)
{
    if (x < lo)
        return lo;
    if (x > hi)
        return hi;
    return x;
}

double eval_rmse(const float *pred, const float *truth, size_t n, float lo, float hi)
{
    if (n == 0)
        return 0.0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double e = clip(pred[i], lo, hi) - (double)truth[i];
        sum += e * e;
    }
    return sqrt(sum / (double)n);
}

double eval_mae(const float *pred, const float *truth, size_t n, float lo, float hi)
{
    if (n == 0)
        return 0.0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += fabs(clip(pred[i], lo, hi) - (double)truth[i]);
    return sum / (double)n;
}

static bool is_positive(float label)
{
    return label > 0.5f;
}

/* A key whose unsigned order is the numeric order of p: flip every bit of
 * negatives, set the sign bit of non-negatives.  -0 is folded into +0 so the
 * two tie; every NaN maps to 0, below -inf (0x007fffff). */
static uint32_t order_key(float p)
{
    if (isnan(p))
        return 0;
    if (p == 0.0f)
        p = 0.0f;
    uint32_t u;
    memcpy(&u, &p, sizeof u);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

double eval_auc(const float *pred, const float *label, size_t n)
{
    if (n == 0)
        return 0.5;
    /* key << 1 | is_positive: sorting these sorts by prediction, and a tie
     * group is a run with the same key (v >> 1). */
    uint64_t *v = ember_alloc(n, sizeof *v);
    if (!v)
        return NAN;
    for (size_t i = 0; i < n; i++)
        v[i] = ((uint64_t)order_key(pred[i]) << 1) | (is_positive(label[i]) ? 1u : 0u);
    qsort(v, n, sizeof *v, compare_u64);

    double u = 0.0, neg_below = 0.0, n_pos = 0.0;
    size_t i = 0;
    while (i < n) {
        uint64_t key = v[i] >> 1;
        double pos = 0.0, neg = 0.0;
        for (; i < n && (v[i] >> 1) == key; i++) {
            if (v[i] & 1u)
                pos += 1.0;
            else
                neg += 1.0;
        }
        u += pos * (neg_below + 0.5 * neg);
        neg_below += neg;
        n_pos += pos;
    }
    free(v);
    if (n_pos == 0.0 || neg_below == 0.0)
        return 0.5;
    return u / (n_pos * neg_below);
}

double eval_logloss(const float *pred, const float *label, size_t n)
{
    if (n == 0)
        return 0.0;
    const double eps = 1e-7;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double p = clip(pred[i], eps, 1.0 - eps);
        sum -= is_positive(label[i]) ? log(p) : log(1.0 - p);
    }
    return sum / (double)n;
}
