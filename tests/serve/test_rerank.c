/*
 * test_rerank.c — the re-ranking stage (src/serve/rerank.c) on
 * hand-computed pools: the relevance order kept with everything off, the
 * popularity penalty, MMR diversity by categories and by item vectors,
 * exposure capping and category fatigue (demotion below every other
 * item, whatever the weights), and the pool shorter than k.
 */
#include "testutil.h"

#include "core/core.h"
#include "serve/rerank.h"

#include <string.h>

/* Six items: 0, 1, 2 in category 0; 3, 4 in category 1; 5 in both. */
static const uint64_t cat_ptr[] = {0, 1, 2, 3, 4, 5, 7};
static const uint32_t cat_tok[] = {0, 0, 0, 1, 1, 0, 1};
static const uint32_t pop[] = {1000, 10, 5, 100, 1, 0};

static const uint32_t pool[] = {0, 1, 2, 3, 4, 5};
static const float scores[] = {1.0f, 0.9f, 0.8f, 0.7f, 0.6f, 0.0f};

static void pick(const rerank_items *it, const rerank_opts *o, size_t k, uint32_t *out,
                 size_t *n)
{
    float s[6];
    assert_int_equal(rerank_select(it, o, pool, scores, 6, k, out, s, n), EMBER_OK);
    /* the scores returned are the model's */
    for (size_t r = 0; r < *n; r++)
        assert_true(s[r] == scores[out[r]]);
}

static void test_everything_off_keeps_the_model_order(void **state)
{
    (void)state;
    rerank_items it = {.n_items = 6, .pop = pop, .cat_ptr = cat_ptr, .cat_tok = cat_tok};
    rerank_opts o = {0};
    uint32_t out[6];
    size_t n;
    pick(&it, &o, 6, out, &n);
    assert_int_equal(n, 6);
    for (uint32_t r = 0; r < 6; r++)
        assert_int_equal(out[r], r);
}

static void test_popularity_penalty_moves_the_head_down(void **state)
{
    (void)state;
    /* relevance r = score (min 0, max 1); penalty 0.5 log(1+pop)/log(1001):
     * item 0: 1 - 0.5 = 0.5; item 1: 0.9 - 0.5 * 0.3471 = 0.7264;
     * item 2: 0.8 - 0.5 * 0.2594 = 0.6703; item 3: 0.7 - 0.5 * 0.6681 =
     * 0.3660; item 4: 0.6 - 0.5 * 0.1003 = 0.5498; item 5: 0 */
    rerank_items it = {.n_items = 6, .pop = pop};
    rerank_opts o = {.popularity = 0.5};
    uint32_t out[6];
    size_t n;
    pick(&it, &o, 6, out, &n);
    static const uint32_t want[] = {1, 2, 4, 0, 3, 5};
    assert_memory_equal(out, want, sizeof want);
}

static void test_mmr_by_categories_alternates(void **state)
{
    (void)state;
    /* diversity 0.5: first item 0 (relevance 1); then item 3 (0.5 * 0.7 -
     * 0 = 0.35) beats item 1 (0.5 * 0.9 - 0.5 * 1 = -0.05); then item 1
     * (-0.05) beats item 4 (0.3 - 0.5 = -0.2) and item 5 (0 - 0.5) */
    rerank_items it = {.n_items = 6, .cat_ptr = cat_ptr, .cat_tok = cat_tok};
    rerank_opts o = {.diversity = 0.5};
    uint32_t out[3];
    size_t n;
    pick(&it, &o, 3, out, &n);
    static const uint32_t want[] = {0, 3, 1};
    assert_memory_equal(out, want, sizeof want);
    /* diversity 1: relevance no longer counts after the first pick, only
     * dissimilarity: nothing is dissimilar to both categories but 5 is
     * similar to everything, so after 0 and 3 come the rest in pool
     * order of ties */
    o.diversity = 1.0;
    pick(&it, &o, 2, out, &n);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 3);
}

static void test_mmr_by_item_vectors(void **state)
{
    (void)state;
    /* items 0 and 1 point the same way, item 2 orthogonal */
    static const float Q[] = {1, 0, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    rerank_items it = {.n_items = 6, .Q = Q, .dim = 2};
    rerank_opts o = {.diversity = 0.3};
    uint32_t out[3];
    size_t n;
    pick(&it, &o, 3, out, &n);
    /* after 0: item 1 0.7 * 0.9 - 0.3 * 1 = 0.33, item 2 0.7 * 0.8 - 0 =
     * 0.56, item 3 (zero vector) 0.7 * 0.7 = 0.49 */
    static const uint32_t want[] = {0, 2, 3};
    assert_memory_equal(out, want, sizeof want);
}

static void test_exposure_capping_demotes_below_everything(void **state)
{
    (void)state;
    rerank_items it = {.n_items = 6, .cat_ptr = cat_ptr, .cat_tok = cat_tok};
    static const uint32_t shown[] = {0, 2, 0, 0, 2};
    rerank_opts o = {.max_shown = 3, .shown = shown, .n_shown = 5};
    uint32_t out[6];
    size_t n;
    pick(&it, &o, 6, out, &n);
    static const uint32_t want[] = {1, 2, 3, 4, 5, 0}; /* 0 shown 3 times */
    assert_memory_equal(out, want, sizeof want);
    /* whatever the diversity weight */
    o.diversity = 0.9;
    pick(&it, &o, 6, out, &n);
    assert_int_equal(out[5], 0);
    /* a cap of 4 leaves it */
    o.max_shown = 4;
    o.diversity = 0;
    pick(&it, &o, 1, out, &n);
    assert_int_equal(out[0], 0);
}

static void test_category_fatigue_demotes_the_category(void **state)
{
    (void)state;
    rerank_items it = {.n_items = 6, .cat_ptr = cat_ptr, .cat_tok = cat_tok};
    /* category 1 shown twice (items 3 and 4): items 3, 4 and 5 demoted */
    static const uint32_t shown[] = {3, 4};
    rerank_opts o = {.max_category = 2, .shown = shown, .n_shown = 2};
    uint32_t out[6];
    size_t n;
    pick(&it, &o, 6, out, &n);
    static const uint32_t want[] = {0, 1, 2, 3, 4, 5};
    assert_memory_equal(out, want, sizeof want);
    /* category 0 shown twice (item 5 counts for both) */
    static const uint32_t shown0[] = {5, 1};
    o.shown = shown0;
    pick(&it, &o, 6, out, &n);
    static const uint32_t want0[] = {3, 4, 0, 1, 2, 5};
    /* 5 has both categories: demoted once (a category demotion counts
     * once), after 3 and 4; items 0..2 demoted too */
    assert_int_equal(out[0], 3);
    assert_int_equal(out[1], 4);
    assert_memory_equal(out, want0, sizeof want0);
    /* with exposure capping as well, an item demoted twice goes last */
    static const uint32_t shown2[] = {5, 1, 0};
    o.shown = shown2;
    o.n_shown = 3;
    o.max_shown = 1;
    pick(&it, &o, 6, out, &n);
    static const uint32_t want2[] = {3, 4, 2, 0, 1, 5};
    assert_memory_equal(out, want2, sizeof want2);
}

static void test_k_beyond_the_pool(void **state)
{
    (void)state;
    rerank_items it = {.n_items = 6};
    rerank_opts o = {.diversity = 0.5, .popularity = 0.5};
    uint32_t out[6];
    size_t n;
    float s[6];
    assert_int_equal(rerank_select(&it, &o, pool, scores, 2, 10, out, s, &n), EMBER_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rerank_select(&it, &o, pool, scores, 6, 0, out, s, &n), EMBER_OK);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_everything_off_keeps_the_model_order),
        cmocka_unit_test(test_popularity_penalty_moves_the_head_down),
        cmocka_unit_test(test_mmr_by_categories_alternates),
        cmocka_unit_test(test_mmr_by_item_vectors),
        cmocka_unit_test(test_exposure_capping_demotes_below_everything),
        cmocka_unit_test(test_category_fatigue_demotes_the_category),
        cmocka_unit_test(test_k_beyond_the_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
