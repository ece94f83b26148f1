/*
 * metrics.h — the metrics of shared/docs/PROTOCOL.md as pure functions on
 * arrays, so each can be tested against hand-computed cases.  The driver
 * that scores users and averages these lives in evaluate.c.
 */
#ifndef EMBER_METRICS_H
#define EMBER_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* Per-user ranking metrics at one cut-off K. */
typedef struct {
    double hit, precision, recall, ndcg, mrr, map;
} eval_rank;

/* ranked[0..n_ranked): the user's recommended items, best first (n_ranked
 * may be < k when fewer items could be ranked; Precision still divides by
 * k).  truth[0..n_truth): the user's test items, sorted ascending, without
 * duplicates.  n_truth_total >= n_truth counts test items too, including
 * ones the model cannot rank (unknown to it); it is |T_u| in Recall, IDCG
 * and MAP.  Fills out; all zero when n_truth_total is 0. */
void eval_rank_user(const uint32_t *ranked, size_t n_ranked, size_t k, const uint32_t *truth,
                    size_t n_truth, size_t n_truth_total, eval_rank *out);

/* Gini index of counts[0..n) (how unequally items are recommended):
 * sorted ascending, G = sum_i (2i - n - 1) c_i / (n sum c), i from 1;
 * 0 when all counts are equal or all zero. */
double eval_gini(const uint64_t *counts, size_t n);

/* Novelty of one item recommended: -log2(train_count / n_users); an item
 * with no train count counts as 1 (so the value stays finite). */
double eval_novelty(uint64_t train_count, size_t n_users);

/* 1 - Jaccard of two sorted, duplicate-free token sets; 0 when both are
 * empty (nothing tells them apart). */
double eval_jaccard_distance(const uint32_t *a, size_t na, const uint32_t *b, size_t nb);

/* Mean pairwise (1 - Jaccard) inside one list; sets[i] / set_len[i] give
 * the sorted token set of list item i.  0 for lists shorter than 2. */
double eval_intra_list_diversity(const uint32_t *const *sets, const size_t *set_len, size_t n);

/* Explicit ratings: predictions clipped to [lo, hi] first. */
double eval_rmse(const float *pred, const float *truth, size_t n, float lo, float hi);
double eval_mae(const float *pred, const float *truth, size_t n, float lo, float hi);

/* CTR: AUC over all rows with ties counted half (labels 0/1; 0.5 when one
 * class is missing); LogLoss in nats with p clipped to [1e-7, 1 - 1e-7].
 * pred are probabilities. */
double eval_auc(const float *pred, const float *label, size_t n);
double eval_logloss(const float *pred, const float *label, size_t n);

#endif
