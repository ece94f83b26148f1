/*
 * rerank.c — the re-ranking stage (rerank.h).
 *
 * Relevance r is the model's score min-max normalised over the pool, so
 * that the weights mean the same whatever the model's scale.  The
 * popularity penalty subtracts popularity * log(1 + pop_i) / log(1 +
 * max pop), pushing the head of the catalogue down for long-tail
 * exposure.  Exposure capping and category fatigue do not weigh: they
 * demote, and the selection is lexicographic — first the fewest
 * demotions (0, 1 or 2), then the MMR value (Carbonell & Goldstein 1998)
 *   (1 - diversity) r_i - diversity max_{j picked} sim(i, j)
 * so a demoted item comes after every other one whatever the weights.
 * The maximal similarity to the picked items is kept per candidate and
 * updated after each pick: O(pool x k x dim).
 */
#include "serve/rerank.h"

#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool rerank_has_category(const rerank_items *it, uint32_t item, uint32_t tok)
{
    if (!it->cat_ptr || item >= it->n_items)
        return false;
    for (uint64_t e = it->cat_ptr[item]; e < it->cat_ptr[item + 1]; e++)
        if (it->cat_tok[e] == tok)
            return true;
    return false;
}

static bool share_category(const rerank_items *it, uint32_t a, uint32_t b)
{
    for (uint64_t e = it->cat_ptr[a]; e < it->cat_ptr[a + 1]; e++)
        if (rerank_has_category(it, b, it->cat_tok[e]))
            return true;
    return false;
}

/* How many times x occurs in the sorted a[0..n). */
static size_t count_in(const uint32_t *a, size_t n, uint32_t x)
{
    size_t lo = ember_lower_bound_u32(a, n, x), c = 0;
    while (lo + c < n && a[lo + c] == x)
        c++;
    return c;
}

int rerank_select(const rerank_items *it, const rerank_opts *o, const uint32_t *items,
                  const float *scores, size_t n, size_t k, uint32_t *out, float *out_score,
                  size_t *n_out)
{
    *n_out = 0;
    k = EMBER_MIN(k, n);
    if (k == 0)
        return EMBER_OK;
    double *rel = ember_alloc(n, sizeof *rel), *maxsim = ember_calloc(n, sizeof *maxsim);
    double *inv_norm = it->Q ? ember_alloc(n, sizeof *inv_norm) : NULL;
    int *level = ember_calloc(n, sizeof *level);
    bool *taken = ember_calloc(n, sizeof *taken);
    uint32_t *shown = o->n_shown ? ember_alloc(o->n_shown, sizeof *shown) : NULL;
    uint32_t *cat_seen = NULL;
    size_t n_cat_seen = 0;
    int st = EMBER_OK;
    if (!rel || !maxsim || !level || !taken || (it->Q && !inv_norm) || (o->n_shown && !shown)) {
        st = EMBER_ENOMEM;
        goto done;
    }
    /* relevance */
    float lo = scores[0], hi = scores[0];
    for (size_t c = 1; c < n; c++) {
        lo = EMBER_MIN(lo, scores[c]);
        hi = EMBER_MAX(hi, scores[c]);
    }
    for (size_t c = 0; c < n; c++)
        rel[c] = hi > lo ? ((double)scores[c] - lo) / ((double)hi - lo) : 1.0;
    if (o->popularity > 0 && it->pop) {
        uint32_t top = 0;
        for (size_t i = 0; i < it->n_items; i++)
            top = EMBER_MAX(top, it->pop[i]);
        double den = log1p((double)top);
        for (size_t c = 0; c < n && den > 0; c++)
            rel[c] -= o->popularity * log1p((double)it->pop[items[c]]) / den;
    }
    /* demotions from the impressions */
    if (o->n_shown) {
        memcpy(shown, o->shown, o->n_shown * sizeof *shown);
        qsort(shown, o->n_shown, sizeof *shown, ember_cmp_u32);
        if (o->max_shown)
            for (size_t c = 0; c < n; c++)
                if (count_in(shown, o->n_shown, items[c]) >= o->max_shown)
                    level[c]++;
        if (o->max_category && it->cat_ptr) {
            /* every category token of every shown item, sorted: counts */
            size_t total = 0;
            for (size_t s = 0; s < o->n_shown; s++)
                if (shown[s] < it->n_items)
                    total += (size_t)(it->cat_ptr[shown[s] + 1] - it->cat_ptr[shown[s]]);
            cat_seen = ember_alloc(EMBER_MAX(total, 1), sizeof *cat_seen);
            if (!cat_seen) {
                st = EMBER_ENOMEM;
                goto done;
            }
            for (size_t s = 0; s < o->n_shown; s++)
                if (shown[s] < it->n_items)
                    for (uint64_t e = it->cat_ptr[shown[s]]; e < it->cat_ptr[shown[s] + 1]; e++)
                        cat_seen[n_cat_seen++] = it->cat_tok[e];
            qsort(cat_seen, n_cat_seen, sizeof *cat_seen, ember_cmp_u32);
            for (size_t c = 0; c < n; c++)
                for (uint64_t e = it->cat_ptr[items[c]]; e < it->cat_ptr[items[c] + 1]; e++)
                    if (count_in(cat_seen, n_cat_seen, it->cat_tok[e]) >= o->max_category) {
                        level[c]++;
                        break;
                    }
        }
    }
    if (inv_norm)
        for (size_t c = 0; c < n; c++) {
            const float *q = it->Q + (size_t)items[c] * it->dim;
            double s = 0;
            for (size_t d = 0; d < it->dim; d++)
                s += (double)q[d] * q[d];
            inv_norm[c] = s > 0 ? 1.0 / sqrt(s) : 0.0;
        }
    double lambda = o->diversity;
    bool have_sim = it->Q || it->cat_ptr;
    for (size_t r = 0; r < k; r++) {
        size_t best = n;
        double best_v = 0;
        for (size_t c = 0; c < n; c++) {
            if (taken[c])
                continue;
            double v = (1.0 - lambda) * rel[c] - (r > 0 ? lambda * maxsim[c] : 0.0);
            if (best == n || level[c] < level[best] ||
                (level[c] == level[best] && v > best_v)) {
                best = c;
                best_v = v;
            }
        }
        taken[best] = true;
        out[r] = items[best];
        out_score[r] = scores[best];
        *n_out = r + 1;
        if (lambda <= 0 || !have_sim)
            continue;
        for (size_t c = 0; c < n; c++) {
            if (taken[c])
                continue;
            double s;
            if (it->Q) {
                const float *a = it->Q + (size_t)items[c] * it->dim;
                const float *b = it->Q + (size_t)items[best] * it->dim;
                double dot = 0;
                for (size_t d = 0; d < it->dim; d++)
                    dot += (double)a[d] * b[d];
                s = dot * inv_norm[c] * inv_norm[best];
            } else {
                s = share_category(it, items[c], items[best]) ? 1.0 : 0.0;
            }
            maxsim[c] = EMBER_MAX(maxsim[c], s);
        }
    }
done:
    free(rel);
    free(maxsim);
    free(inv_norm);
    free(level);
    free(taken);
    free(shown);
    free(cat_seen);
    return st;
}
