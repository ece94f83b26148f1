/*
 * markov.c — the next-item Markov chain over the last few items of a
 * history, with decay: the baseline every sequence model is held against
 * (shared/docs/PEERS.md, "Markov-3") and a cheap session recommender.
 *
 *   score(j) = sum_{t=0..order-1} decay^t C(h[-1-t] -> j) / C(h[-1-t] -> .)
 *              + pop_weight * pop(j)
 *
 * C(a -> b) counts the consecutive pairs (a, b) of the training sequences
 * (each user's items in time order), C(a -> .) = sum_b C(a -> b); h is the
 * query's history in time order (the user's training items, then what the
 * query brings: the valid item when scoring test on the sequential split,
 * or a new session); pop(j) is j's number of training interactions and
 * only breaks ties.  A step from an item that was never followed by
 * anything adds nothing.  Defaults order 3, decay 0.6, pop_weight 1e-6
 * (PEERS.md: NDCG@10 0.0678 on the ML-100K sequential split; order 1 is
 * the plain first-order chain, 0.0555 there).
 *
 * The counts are a sparse item x item matrix in CSR form (rows by the
 * preceding item, next items ascending), built by a counting sort of the
 * pairs by their first item and a sort of each row; scoring one query
 * walks `order` rows.  similar(i) is the transition row of i: the items
 * that most often come right after it.
 */
#include "models/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t order;
    double decay;
    double pop_weight;
} markov_params;

static const model_param markov_param_table[] = {
    {"order", PARAM_INT, offsetof(markov_params, order), "3", 1, 100, NULL,
     "how many of the last history items vote for the next one"},
    {"decay", PARAM_FLOAT, offsetof(markov_params, decay), "0.6", 1e-6, 1, NULL,
     "weight of the t-th last item is decay^t (t = 0 for the last)"},
    {"pop_weight", PARAM_FLOAT, offsetof(markov_params, pop_weight), "1e-6", 0, 1, NULL,
     "weight of the item's training count (a tie-breaker at the default)"},
};

typedef struct {
    const uint64_t *ptr;  /* n_items + 1 */
    const uint32_t *next; /* nnz: the following items of each row, ascending */
    const uint32_t *count; /* nnz: how often */
    size_t nnz;
    float *inv_total; /* 1 / C(a -> .), 0 for an item never followed */
    void *owned[3];   /* ptr, next, count of a fitted model */
} markov_state;

static void markov_destroy(ember_model *m)
{
    markov_state *s = m->state;
    if (!s)
        return;
    for (size_t k = 0; k < EMBER_ARRAY_LEN(s->owned); k++)
        free(s->owned[k]);
    free(s->inv_total);
    free(s);
    m->state = NULL;
}

/* 1 / row sums of the counts. */
static int compute_totals(markov_state *s, size_t n_items)
{
    s->inv_total = ember_alloc(n_items ? n_items : 1, sizeof *s->inv_total);
    if (!s->inv_total)
        return EMBER_ENOMEM;
    for (size_t a = 0; a < n_items; a++) {
        uint64_t tot = 0;
        for (uint64_t p = s->ptr[a]; p < s->ptr[a + 1]; p++)
            tot += s->count[p];
        s->inv_total[a] = tot ? (float)(1.0 / (double)tot) : 0.0f;
    }
    return EMBER_OK;
}

/* ---------------------------------------------------------------- fit */

static int markov_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                      const ember_fit_opts *o)
{
    (void)train;
    (void)valid;
    (void)o;
    size_t ni = m->n_items, nu = m->n_users;
    const uint64_t *hp = m->hist.ptr;
    const uint32_t *hi = m->hist.item;
    markov_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    size_t n_pairs = 0;
    for (size_t u = 0; u < nu; u++)
        if (hp[u + 1] - hp[u] > 1)
            n_pairs += (size_t)(hp[u + 1] - hp[u] - 1);
    uint64_t *ptr = ember_calloc(ni + 1, sizeof *ptr);
    uint32_t *next = ember_alloc(n_pairs ? n_pairs : 1, sizeof *next);
    uint32_t *count = ember_alloc(n_pairs ? n_pairs : 1, sizeof *count);
    uint64_t *fill = ember_alloc(ni + 1, sizeof *fill);
    s->owned[0] = ptr;
    s->owned[1] = next;
    s->owned[2] = count;
    if (!ptr || !next || !count || !fill) {
        free(fill);
        return EMBER_ENOMEM;
    }
    /* counting sort of the pairs by their first item */
    for (size_t u = 0; u < nu; u++)
        for (uint64_t k = hp[u]; k + 1 < hp[u + 1]; k++)
            ptr[hi[k] + 1]++;
    for (size_t a = 0; a < ni; a++)
        ptr[a + 1] += ptr[a];
    memcpy(fill, ptr, (ni + 1) * sizeof *fill);
    for (size_t u = 0; u < nu; u++)
        for (uint64_t k = hp[u]; k + 1 < hp[u + 1]; k++)
            next[fill[hi[k]]++] = hi[k + 1];
    /* each row sorted, equal next items merged into counts, rows packed */
    uint64_t w = 0;
    for (size_t a = 0; a < ni; a++) {
        uint64_t b = ptr[a], e = ptr[a + 1];
        qsort(next + b, (size_t)(e - b), sizeof *next, ember_cmp_u32);
        ptr[a] = w;
        for (uint64_t p = b; p < e; p++) {
            if (p > b && next[p] == next[p - 1]) {
                count[w - 1]++;
            } else {
                next[w] = next[p];
                count[w++] = 1;
            }
        }
    }
    ptr[ni] = w;
    free(fill);
    s->ptr = ptr;
    s->next = next;
    s->count = count;
    s->nnz = (size_t)w;
    return compute_totals(s, ni);
}

/* ------------------------------------------------------------ scoring */

static int markov_score_all(const ember_model *m, const ember_query *q, float *out)
{
    const markov_params *p = m->params;
    const markov_state *s = m->state;
    const float pw = (float)p->pop_weight;
    for (size_t j = 0; j < m->n_items; j++)
        out[j] = pw * (float)m->item_count[j];
    model_hist_view v = model_query_history(m, q);
    size_t n = v.na + v.nb;
    double wt = 1.0;
    for (size_t t = 0; t < (size_t)p->order && t < n; t++, wt *= p->decay) {
        size_t k = n - 1 - t;
        uint32_t a = k < v.na ? v.a[k] : v.b[k - v.na];
        float w = (float)wt * s->inv_total[a];
        for (uint64_t e = s->ptr[a]; e < s->ptr[a + 1]; e++)
            out[s->next[e]] += w * (float)s->count[e];
    }
    return EMBER_OK;
}

/* The transition row of item (the probability of each next item), with
 * the same popularity tie-breaker as scoring. */
static int markov_similar(const ember_model *m, uint32_t item, float *out)
{
    const markov_params *p = m->params;
    const markov_state *s = m->state;
    const float pw = (float)p->pop_weight;
    for (size_t j = 0; j < m->n_items; j++)
        out[j] = pw * (float)m->item_count[j];
    for (uint64_t e = s->ptr[item]; e < s->ptr[item + 1]; e++)
        out[s->next[e]] += s->inv_total[item] * (float)s->count[e];
    return EMBER_OK;
}

/* ---------------------------------------------------------- the file */

static int markov_save(const ember_model *m, mf_writer *w)
{
    const markov_state *s = m->state;
    int st;
    if ((st = mf_add_1d(w, "markov.ptr", MF_U64, m->n_items + 1, s->ptr)) ||
        (st = mf_add_1d(w, "markov.next", MF_U32, s->nnz, s->next)) ||
        (st = mf_add_1d(w, "markov.count", MF_U32, s->nnz, s->count)))
        return st;
    return EMBER_OK;
}

static int markov_load(ember_model *m, const mf_reader *r)
{
    size_t ni = m->n_items;
    markov_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    uint64_t nnz;
    s->ptr = mf_get_1d(r, "markov.ptr", MF_U64, ni + 1, NULL);
    s->next = mf_get_1d(r, "markov.next", MF_U32, UINT64_MAX, &nnz);
    if (!s->ptr || !s->next)
        return EMBER_ECORRUPT;
    s->count = mf_get_1d(r, "markov.count", MF_U32, nnz, NULL);
    if (!s->count)
        return EMBER_ECORRUPT;
    s->nnz = (size_t)nnz;
    if (s->ptr[0] != 0 || s->ptr[ni] != nnz)
        return ember_fail(EMBER_ECORRUPT, "%s: markov: transition pointers are inconsistent",
                          mf_path(r));
    for (size_t a = 0; a < ni; a++) {
        if (s->ptr[a + 1] < s->ptr[a])
            return ember_fail(EMBER_ECORRUPT, "%s: markov: transition pointers decrease",
                              mf_path(r));
        for (uint64_t e = s->ptr[a]; e < s->ptr[a + 1]; e++)
            if (s->next[e] >= ni || s->count[e] == 0 ||
                (e > s->ptr[a] && s->next[e] <= s->next[e - 1]))
                return ember_fail(EMBER_ECORRUPT,
                                  "%s: markov: transition row %zu is out of range, unsorted or "
                                  "has a zero count",
                                  mf_path(r), a);
    }
    return compute_totals(s, ni);
}

const ember_model_ops model_markov = {
    .name = "markov",
    .summary = "next-item Markov chain over the last items with decay (session baseline)",
    .params = markov_param_table,
    .n_params = EMBER_ARRAY_LEN(markov_param_table),
    .params_size = sizeof(markov_params),
    .fit = markov_fit,
    .score_all = markov_score_all,
    .similar = markov_similar,
    .save = markov_save,
    .load = markov_load,
    .destroy = markov_destroy,
};
