/*
 * test_metrics.c — every metric of src/eval/metrics.c against values worked
 * out by hand (the arithmetic is in the comment above each expectation),
 * plus AUC against a brute-force pair count and on 100,000 rows.
 */
#include "testutil.h"

#include "core/core.h"
#include "eval/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define TOL 1e-12

/* cmocka 1.1.5 only compares floats; this compares doubles. */
static void check_near(double actual, double expected, double tol, const char *what,
                       const char *file, int line)
{
    if (!(fabs(actual - expected) <= tol)) {
        print_error("%s = %.17g, expected %.17g (tolerance %g)\n", what, actual, expected, tol);
        _fail(file, line);
    }
}
#define assert_near(actual, expected, tol) \
    check_near((actual), (expected), (tol), #actual, __FILE__, __LINE__)

/* ------------------------------------------------------------ ranking */

static void test_ndcg_hits_at_first_and_third_of_five(void **state)
{
    (void)state;
    /* hits: 42 at rank 1, 17 at rank 3 */
    const uint32_t ranked[] = {42, 5, 17, 3, 99};
    const uint32_t truth[] = {17, 42};
    eval_rank r;
    eval_rank_user(ranked, 5, 5, truth, 2, 2, &r);
    /* DCG  = 1/log2(2) + 1/log2(4) = 1 + 0.5 = 1.5
     * IDCG = 1/log2(2) + 1/log2(3) = 1 + 0.6309297535714575 = 1.6309297535714575
     * NDCG = 1.5 / 1.6309297535714575 = 0.9197207891481876 */
    assert_near(r.ndcg, 0.9197207891481876, TOL);
    assert_near(r.hit, 1.0, TOL);
    /* 2 hits / K 5 */
    assert_near(r.precision, 0.4, TOL);
    /* 2 hits / |T| 2 */
    assert_near(r.recall, 1.0, TOL);
    /* first hit at rank 1 */
    assert_near(r.mrr, 1.0, TOL);
    /* (1/min(5,2)) * (P@1 + P@3) = (1/2) * (1/1 + 2/3) = 5/6 */
    assert_near(r.map, 5.0 / 6.0, TOL);
}

static void test_ndcg_counts_only_first_k(void **state)
{
    (void)state;
    /* hits at rank 2 (item 8) and rank 5 (item 1); K = 3 cuts the second off */
    const uint32_t ranked[] = {4, 8, 6, 2, 1, 9};
    const uint32_t truth[] = {1, 8};
    eval_rank r;
    eval_rank_user(ranked, 6, 3, truth, 2, 2, &r);
    /* DCG  = 1/log2(3) = 0.6309297535714575
     * IDCG = 1 + 1/log2(3) = 1.6309297535714575   (min(K 3, |T| 2) = 2 terms)
     * NDCG = 0.6309297535714575 / 1.6309297535714575 = 0.38685280723454163 */
    assert_near(r.ndcg, 0.38685280723454163, TOL);
    /* 1 hit / K 3 */
    assert_near(r.precision, 1.0 / 3.0, TOL);
    /* 1 hit / |T| 2 */
    assert_near(r.recall, 0.5, TOL);
    assert_near(r.mrr, 0.5, TOL);
    /* (1/2) * P@2 = (1/2) * (1/2) = 0.25 */
    assert_near(r.map, 0.25, TOL);
}

static void test_rank_metrics_zero_when_only_hit_is_past_k(void **state)
{
    (void)state;
    const uint32_t ranked[] = {1, 2, 3, 4, 5, 6};
    const uint32_t truth[] = {4};
    eval_rank r;
    eval_rank_user(ranked, 6, 3, truth, 1, 1, &r);
    assert_near(r.hit, 0.0, 0.0);
    assert_near(r.precision, 0.0, 0.0);
    assert_near(r.recall, 0.0, 0.0);
    assert_near(r.ndcg, 0.0, 0.0);
    assert_near(r.mrr, 0.0, 0.0);
    assert_near(r.map, 0.0, 0.0);
}

static void test_precision_divides_by_k_when_list_is_short(void **state)
{
    (void)state;
    /* only 2 items could be ranked, both hits, K = 10 */
    const uint32_t ranked[] = {7, 3};
    const uint32_t truth[] = {3, 7};
    eval_rank r;
    eval_rank_user(ranked, 2, 10, truth, 2, 2, &r);
    /* 2 hits / K 10 (not / 2) */
    assert_near(r.precision, 0.2, TOL);
    assert_near(r.recall, 1.0, TOL);
    /* DCG = IDCG = 1 + 1/log2(3) */
    assert_near(r.ndcg, 1.0, TOL);
    /* (1/min(10,2)) * (1/1 + 2/2) = 1 */
    assert_near(r.map, 1.0, TOL);
}

static void test_recall_counts_unrankable_truth_items(void **state)
{
    (void)state;
    /* |T| = 4, but only items 2 and 5 are known to the model */
    const uint32_t ranked[] = {1, 2, 3, 4, 5};
    const uint32_t truth[] = {2, 5};
    eval_rank r;
    eval_rank_user(ranked, 5, 5, truth, 2, 4, &r);
    /* 2 hits / |T| 4 */
    assert_near(r.recall, 0.5, TOL);
    /* 2 hits / K 5 */
    assert_near(r.precision, 0.4, TOL);
    /* DCG  = 1/log2(3) + 1/log2(6) = 0.63092975 + 0.38685281 = 1.0177825608059992
     * IDCG = min(5,4) = 4 terms = 1 + 1/log2(3) + 1/log2(4) + 1/log2(5)
     *      = 1 + 0.63092975 + 0.5 + 0.43067656 = 2.5616063116448506
     * NDCG = 1.0177825608059992 / 2.5616063116448506 = 0.3973220069685352 */
    assert_near(r.ndcg, 0.3973220069685352, TOL);
    /* (1/min(5,4)) * (P@2 + P@5) = (1/4) * (1/2 + 2/5) = 0.225 */
    assert_near(r.map, 0.225, TOL);
    /* first hit at rank 2 */
    assert_near(r.mrr, 0.5, TOL);
}

static void test_idcg_and_map_cap_truth_at_k(void **state)
{
    (void)state;
    /* K = 2 but |T| = 4: the ideal list and the MAP normaliser have
     * min(K, |T|) = 2 entries, not 4.  One hit, at rank 1. */
    const uint32_t ranked[] = {6, 9, 1};
    const uint32_t truth[] = {1, 2, 3, 6};
    eval_rank r;
    eval_rank_user(ranked, 3, 2, truth, 4, 4, &r);
    /* DCG = 1;  IDCG = 1 + 1/log2(3) = 1.6309297535714575
     * NDCG = 1 / 1.6309297535714575 = 0.6131471927654584 */
    assert_near(r.ndcg, 0.6131471927654584, TOL);
    /* (1/min(2,4)) * P@1 = (1/2) * 1 = 0.5 */
    assert_near(r.map, 0.5, TOL);
    /* 1 hit / |T| 4 */
    assert_near(r.recall, 0.25, TOL);
}

static void test_mrr_is_inverse_rank_of_first_hit(void **state)
{
    (void)state;
    /* first hit (30) at rank 4; a later hit (10) at rank 6 does not change it */
    const uint32_t ranked[] = {11, 12, 13, 30, 14, 10};
    const uint32_t truth[] = {10, 30};
    eval_rank r;
    eval_rank_user(ranked, 6, 10, truth, 2, 2, &r);
    /* 1 / 4 */
    assert_near(r.mrr, 0.25, TOL);
    assert_near(r.hit, 1.0, TOL);
}

static void test_map_by_hand(void **state)
{
    (void)state;
    /* K = 6, hits at ranks 2, 3 and 6, |T| = 5 (two test items never ranked) */
    const uint32_t ranked[] = {100, 1, 2, 101, 102, 3};
    const uint32_t truth[] = {1, 2, 3, 4, 5};
    eval_rank r;
    eval_rank_user(ranked, 6, 6, truth, 5, 5, &r);
    /* P@2 = 1/2, P@3 = 2/3, P@6 = 3/6
     * sum = 0.5 + 0.6666... + 0.5 = 5/3
     * MAP = (1/min(6,5)) * 5/3 = 1/3 */
    assert_near(r.map, 1.0 / 3.0, TOL);
    /* 3 hits / K 6 and / |T| 5 */
    assert_near(r.precision, 0.5, TOL);
    assert_near(r.recall, 0.6, TOL);
}

static void test_rank_metrics_all_zero_without_truth(void **state)
{
    (void)state;
    const uint32_t ranked[] = {1, 2, 3};
    eval_rank r = {1, 1, 1, 1, 1, 1};
    eval_rank_user(ranked, 3, 3, NULL, 0, 0, &r);
    assert_near(r.hit, 0.0, 0.0);
    assert_near(r.precision, 0.0, 0.0);
    assert_near(r.recall, 0.0, 0.0);
    assert_near(r.ndcg, 0.0, 0.0);
    assert_near(r.mrr, 0.0, 0.0);
    assert_near(r.map, 0.0, 0.0);
}

static void test_rank_metrics_zero_when_nothing_ranked(void **state)
{
    (void)state;
    const uint32_t truth[] = {5};
    eval_rank r = {1, 1, 1, 1, 1, 1};
    eval_rank_user(NULL, 0, 10, truth, 1, 1, &r);
    assert_near(r.hit, 0.0, 0.0);
    assert_near(r.precision, 0.0, 0.0);
    assert_near(r.recall, 0.0, 0.0);
    assert_near(r.ndcg, 0.0, 0.0);
    assert_near(r.mrr, 0.0, 0.0);
    assert_near(r.map, 0.0, 0.0);
}

/* ---------------------------------------------------- beyond accuracy */

static void test_gini_is_zero_when_counts_are_equal(void **state)
{
    (void)state;
    const uint64_t counts[] = {7, 7, 7, 7};
    assert_near(eval_gini(counts, 4), 0.0, TOL);
}

static void test_gini_is_zero_when_all_counts_are_zero(void **state)
{
    (void)state;
    const uint64_t counts[] = {0, 0, 0};
    assert_near(eval_gini(counts, 3), 0.0, 0.0);
    assert_near(eval_gini(NULL, 0), 0.0, 0.0);
}

static void test_gini_by_hand(void **state)
{
    (void)state;
    /* given unsorted; sorted ascending: {0, 1, 3}, n = 3, sum = 4
     * i=1: (2-3-1) * 0 = 0;  i=2: (4-3-1) * 1 = 0;  i=3: (6-3-1) * 3 = 6
     * G = 6 / (3 * 4) = 0.5 */
    const uint64_t counts[] = {3, 0, 1};
    assert_near(eval_gini(counts, 3), 0.5, TOL);
    /* one item takes everything: sorted {0,0,0,5}; only i=4: (8-4-1)*5 = 15
     * G = 15 / (4 * 5) = 0.75 = (n-1)/n */
    const uint64_t one[] = {0, 5, 0, 0};
    assert_near(eval_gini(one, 4), 0.75, TOL);
}

static void test_gini_reports_allocation_failure(void **state)
{
    (void)state;
    const uint64_t counts[] = {1, 2, 3};
    ember_clear_error();
    ember_fault_inject_alloc(1);
    double g = eval_gini(counts, 3);
    ember_fault_inject_alloc(0);
    assert_true(isnan(g));
    assert_true(ember_last_error()[0] != '\0');
}

static void test_novelty_by_hand(void **state)
{
    (void)state;
    /* -log2(10 / 40) = -log2(1/4) = 2 */
    assert_near(eval_novelty(10, 40), 2.0, TOL);
    /* item seen by every user: -log2(1) = 0 */
    assert_near(eval_novelty(40, 40), 0.0, TOL);
}

static void test_novelty_counts_unseen_item_as_one(void **state)
{
    (void)state;
    /* count 0 -> 1: -log2(1/8) = 3, the same as a count of 1 */
    assert_near(eval_novelty(0, 8), 3.0, TOL);
    assert_near(eval_novelty(1, 8), 3.0, TOL);
}

static void test_jaccard_distance_by_hand(void **state)
{
    (void)state;
    /* {1,2,3} vs {2,3,4,5}: |A∩B| = 2, |A∪B| = 5, 1 - 2/5 = 0.6 */
    const uint32_t a[] = {1, 2, 3};
    const uint32_t b[] = {2, 3, 4, 5};
    assert_near(eval_jaccard_distance(a, 3, b, 4), 0.6, TOL);
    assert_near(eval_jaccard_distance(b, 4, a, 3), 0.6, TOL);
    /* identical sets: 1 - 3/3 = 0 */
    assert_near(eval_jaccard_distance(a, 3, a, 3), 0.0, TOL);
    /* disjoint: 1 - 0/5 = 1 */
    const uint32_t c[] = {7, 8};
    assert_near(eval_jaccard_distance(a, 3, c, 2), 1.0, TOL);
}

static void test_jaccard_distance_of_empty_sets(void **state)
{
    (void)state;
    const uint32_t a[] = {4};
    /* both empty: nothing tells them apart */
    assert_near(eval_jaccard_distance(NULL, 0, NULL, 0), 0.0, 0.0);
    /* one empty: 1 - 0/1 = 1 */
    assert_near(eval_jaccard_distance(a, 1, NULL, 0), 1.0, TOL);
}

static void test_intra_list_diversity_by_hand(void **state)
{
    (void)state;
    /* A = {1,2}, B = {2,3}, C = {4}
     * d(A,B) = 1 - 1/3 = 2/3;  d(A,C) = 1 - 0/3 = 1;  d(B,C) = 1
     * mean over 3 pairs = (2/3 + 1 + 1) / 3 = 8/9 */
    const uint32_t a[] = {1, 2}, b[] = {2, 3}, c[] = {4};
    const uint32_t *const sets[] = {a, b, c};
    const size_t len[] = {2, 2, 1};
    assert_near(eval_intra_list_diversity(sets, len, 3), 8.0 / 9.0, TOL);
}

static void test_intra_list_diversity_zero_below_two_items(void **state)
{
    (void)state;
    const uint32_t a[] = {1, 2};
    const uint32_t *const sets[] = {a};
    const size_t len[] = {2};
    assert_near(eval_intra_list_diversity(sets, len, 1), 0.0, 0.0);
    assert_near(eval_intra_list_diversity(NULL, NULL, 0), 0.0, 0.0);
}

/* ------------------------------------------------------------ ratings */

static void test_rmse_and_mae_clip_predictions(void **state)
{
    (void)state;
    /* clipped to [1,5]: {0, 6, 3.5} -> {1, 5, 3.5}; errors vs {1,5,3}: 0, 0, 0.5
     * RMSE = sqrt(0.25 / 3) = 0.28867513459481287;  MAE = 0.5 / 3
     * (unclipped the errors would be 1, 1, 0.5) */
    const float pred[] = {0.0f, 6.0f, 3.5f};
    const float truth[] = {1.0f, 5.0f, 3.0f};
    assert_near(eval_rmse(pred, truth, 3, 1.0f, 5.0f), 0.28867513459481287, TOL);
    assert_near(eval_mae(pred, truth, 3, 1.0f, 5.0f), 0.5 / 3.0, TOL);
}

static void test_rmse_and_mae_by_hand(void **state)
{
    (void)state;
    /* errors {2-4, 5-5, 1.5-1} = {-2, 0, 0.5}
     * RMSE = sqrt((4 + 0 + 0.25) / 3) = sqrt(1.41666...) = 1.1902380714238083
     * MAE  = (2 + 0 + 0.5) / 3 = 0.8333... */
    const float pred[] = {2.0f, 5.0f, 1.5f};
    const float truth[] = {4.0f, 5.0f, 1.0f};
    assert_near(eval_rmse(pred, truth, 3, 1.0f, 5.0f), 1.1902380714238083, TOL);
    assert_near(eval_mae(pred, truth, 3, 1.0f, 5.0f), 2.5 / 3.0, TOL);
}

static void test_rmse_and_mae_zero_for_no_rows(void **state)
{
    (void)state;
    assert_near(eval_rmse(NULL, NULL, 0, 1.0f, 5.0f), 0.0, 0.0);
    assert_near(eval_mae(NULL, NULL, 0, 1.0f, 5.0f), 0.0, 0.0);
}

/* ---------------------------------------------------------------- CTR */

static void test_auc_perfect_ranking_is_one(void **state)
{
    (void)state;
    const float pred[] = {0.9f, 0.1f, 0.8f, 0.2f, 0.7f};
    const float label[] = {1, 0, 1, 0, 1};
    assert_near(eval_auc(pred, label, 5), 1.0, TOL);
}

static void test_auc_reversed_ranking_is_zero(void **state)
{
    (void)state;
    const float pred[] = {0.1f, 0.9f, 0.2f, 0.8f, 0.3f};
    const float label[] = {1, 0, 1, 0, 1};
    assert_near(eval_auc(pred, label, 5), 0.0, TOL);
}

static void test_auc_all_ties_is_half(void **state)
{
    (void)state;
    const float pred[] = {0.4f, 0.4f, 0.4f, 0.4f, 0.4f};
    const float label[] = {1, 0, 0, 1, 0};
    /* every (pos, neg) pair ties: 6 pairs x 1/2 / 6 = 0.5 */
    assert_near(eval_auc(pred, label, 5), 0.5, TOL);
}

static void test_auc_ties_count_half(void **state)
{
    (void)state;
    /* positives: 0.4, 0.8, 0.3;  negatives: 0.1, 0.4, 0.8
     * pos 0.4 vs {0.1, 0.4, 0.8} = 1 + 0.5 + 0   = 1.5
     * pos 0.8 vs {0.1, 0.4, 0.8} = 1 + 1   + 0.5 = 2.5
     * pos 0.3 vs {0.1, 0.4, 0.8} = 1 + 0   + 0   = 1
     * AUC = (1.5 + 2.5 + 1) / (3 * 3) = 5/9 */
    const float pred[] = {0.1f, 0.4f, 0.4f, 0.8f, 0.8f, 0.3f};
    const float label[] = {0, 1, 0, 1, 0, 1};
    assert_near(eval_auc(pred, label, 6), 5.0 / 9.0, TOL);
}

static void test_auc_is_half_when_a_class_is_missing(void **state)
{
    (void)state;
    const float pred[] = {0.2f, 0.7f, 0.5f};
    const float ones[] = {1, 1, 1};
    const float zeros[] = {0, 0, 0};
    assert_near(eval_auc(pred, ones, 3), 0.5, 0.0);
    assert_near(eval_auc(pred, zeros, 3), 0.5, 0.0);
    assert_near(eval_auc(NULL, NULL, 0), 0.5, 0.0);
}

static void test_auc_treats_labels_above_half_as_positive(void **state)
{
    (void)state;
    /* 0.9 and 0.6 are positives, 0.4 and 0.0 negatives: perfectly ordered */
    const float pred[] = {0.9f, 0.3f, 0.8f, 0.1f};
    const float label[] = {0.9f, 0.4f, 0.6f, 0.0f};
    assert_near(eval_auc(pred, label, 4), 1.0, TOL);
}

static void test_auc_ties_negative_and_positive_zero(void **state)
{
    (void)state;
    /* -0 and +0 are the same prediction: one pair, tied -> 0.5 */
    const float pred[] = {-0.0f, 0.0f};
    const float label[] = {1, 0};
    assert_near(eval_auc(pred, label, 2), 0.5, TOL);
}

static double auc_brute_force(const float *pred, const float *label, size_t n)
{
    double u = 0.0, pairs = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!(label[i] > 0.5f))
            continue;
        for (size_t j = 0; j < n; j++) {
            if (label[j] > 0.5f)
                continue;
            pairs += 1.0;
            if (pred[i] > pred[j])
                u += 1.0;
            else if (pred[i] == pred[j])
                u += 0.5;
        }
    }
    return u / pairs;
}

static void test_auc_matches_brute_force_with_ties(void **state)
{
    (void)state;
    enum { N = 500 };
    float pred[N], label[N];
    ember_rng rng;
    ember_rng_seed(&rng, 12345);
    for (size_t i = 0; i < N; i++) {
        /* 17 levels -> about 30 rows per tie group */
        pred[i] = (float)ember_rng_below(&rng, 17) / 16.0f;
        /* positives more likely at high predictions, so AUC is not 0.5 */
        label[i] = ember_rng_uniform(&rng) < 0.2 + 0.6 * pred[i] ? 1.0f : 0.0f;
    }
    double brute = auc_brute_force(pred, label, N);
    assert_true(brute > 0.6 && brute < 0.95);
    assert_near(eval_auc(pred, label, N), brute, 1e-12);
}

static void test_auc_on_100k_rows_is_fast(void **state)
{
    (void)state;
    /* pred[i] = i / 2^17 for i < 100,000 (exact in float), positives at odd i,
     * rows shuffled.  The positive at i = 2m+1 beats the m+1 negatives
     * 0, 2, ..., 2m:  U = sum_{m=0}^{49999} (m+1) = 50000 * 50001 / 2,
     * P = N = 50000, AUC = 50001 / 100000 = 0.50001. */
    enum { N = 100000 };
    float *pred = malloc(N * sizeof *pred);
    float *label = malloc(N * sizeof *label);
    uint32_t *perm = malloc(N * sizeof *perm);
    assert_non_null(pred);
    assert_non_null(label);
    assert_non_null(perm);
    for (uint32_t i = 0; i < N; i++)
        perm[i] = i;
    ember_rng rng;
    ember_rng_seed(&rng, 7);
    ember_rng_shuffle_u32(&rng, perm, N);
    for (size_t r = 0; r < N; r++) {
        pred[r] = (float)perm[r] / 131072.0f;
        label[r] = (float)(perm[r] % 2);
    }
    double t0 = ember_now();
    double auc = eval_auc(pred, label, N);
    double dt = ember_now() - t0;
    free(pred);
    free(label);
    free(perm);
    assert_near(auc, 0.50001, 1e-12);
    /* O(n log n) takes ~10 ms; an O(n^2) pair count would take seconds. */
    if (!test_is_sanitized()) {
        if (dt >= 0.25)
            print_error("eval_auc on %d rows took %.3f s\n", N, dt);
        assert_true(dt < 0.25);
    }
}

static void test_auc_reports_allocation_failure(void **state)
{
    (void)state;
    const float pred[] = {0.1f, 0.9f};
    const float label[] = {0, 1};
    ember_clear_error();
    ember_fault_inject_alloc(1);
    double auc = eval_auc(pred, label, 2);
    ember_fault_inject_alloc(0);
    assert_true(isnan(auc));
    assert_true(ember_last_error()[0] != '\0');
}

static void test_logloss_clips_zero_probability(void **state)
{
    (void)state;
    /* p = 0 with label 1 -> p clipped to 1e-7 -> -ln(1e-7) = 16.11809565095832 */
    const float pred[] = {0.0f};
    const float label[] = {1.0f};
    assert_near(eval_logloss(pred, label, 1), 16.11809565095832, 1e-9);
}

static void test_logloss_clips_one_probability(void **state)
{
    (void)state;
    /* p = 1 with label 0 -> p clipped to 1 - 1e-7 -> -ln(1e-7) = 16.118... (to the
     * rounding of 1 - 1e-7 in double, relative ~1e-9) */
    const float pred[] = {1.0f};
    const float label[] = {0.0f};
    assert_near(eval_logloss(pred, label, 1), 16.11809565095832, 1e-7);
}

static void test_logloss_by_hand(void **state)
{
    (void)state;
    /* -(ln 0.8 + ln(1 - 0.3)) / 2 = (0.22314355131420976 + 0.35667494393873245) / 2
     *                             = 0.2899092476264711
     * (0.8f and 0.3f are floats: off by ~1e-8 from the decimals) */
    const float pred[] = {0.8f, 0.3f};
    const float label[] = {1.0f, 0.0f};
    assert_near(eval_logloss(pred, label, 2), 0.2899092476264711, 1e-7);
}

static void test_logloss_zero_for_no_rows(void **state)
{
    (void)state;
    assert_near(eval_logloss(NULL, NULL, 0), 0.0, 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ndcg_hits_at_first_and_third_of_five),
        cmocka_unit_test(test_ndcg_counts_only_first_k),
        cmocka_unit_test(test_rank_metrics_zero_when_only_hit_is_past_k),
        cmocka_unit_test(test_precision_divides_by_k_when_list_is_short),
        cmocka_unit_test(test_recall_counts_unrankable_truth_items),
        cmocka_unit_test(test_idcg_and_map_cap_truth_at_k),
        cmocka_unit_test(test_mrr_is_inverse_rank_of_first_hit),
        cmocka_unit_test(test_map_by_hand),
        cmocka_unit_test(test_rank_metrics_all_zero_without_truth),
        cmocka_unit_test(test_rank_metrics_zero_when_nothing_ranked),
        cmocka_unit_test(test_gini_is_zero_when_counts_are_equal),
        cmocka_unit_test(test_gini_is_zero_when_all_counts_are_zero),
        cmocka_unit_test(test_gini_by_hand),
        cmocka_unit_test(test_gini_reports_allocation_failure),
        cmocka_unit_test(test_novelty_by_hand),
        cmocka_unit_test(test_novelty_counts_unseen_item_as_one),
        cmocka_unit_test(test_jaccard_distance_by_hand),
        cmocka_unit_test(test_jaccard_distance_of_empty_sets),
        cmocka_unit_test(test_intra_list_diversity_by_hand),
        cmocka_unit_test(test_intra_list_diversity_zero_below_two_items),
        cmocka_unit_test(test_rmse_and_mae_clip_predictions),
        cmocka_unit_test(test_rmse_and_mae_by_hand),
        cmocka_unit_test(test_rmse_and_mae_zero_for_no_rows),
        cmocka_unit_test(test_auc_perfect_ranking_is_one),
        cmocka_unit_test(test_auc_reversed_ranking_is_zero),
        cmocka_unit_test(test_auc_all_ties_is_half),
        cmocka_unit_test(test_auc_ties_count_half),
        cmocka_unit_test(test_auc_is_half_when_a_class_is_missing),
        cmocka_unit_test(test_auc_treats_labels_above_half_as_positive),
        cmocka_unit_test(test_auc_ties_negative_and_positive_zero),
        cmocka_unit_test(test_auc_matches_brute_force_with_ties),
        cmocka_unit_test(test_auc_on_100k_rows_is_fast),
        cmocka_unit_test(test_auc_reports_allocation_failure),
        cmocka_unit_test(test_logloss_clips_zero_probability),
        cmocka_unit_test(test_logloss_clips_one_probability),
        cmocka_unit_test(test_logloss_by_hand),
        cmocka_unit_test(test_logloss_zero_for_no_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
