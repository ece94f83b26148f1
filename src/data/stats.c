/*
 * stats.c — the numbers that describe a dataset (`ember data stats`).
 *
 * Everything is computed from the CSR/CSC index lengths and one pass over
 * the ratings; users and items in the maps that have no interaction count
 * (with length 0).
 *
 * Definitions:
 *  - density = nnz / (n_users * n_items).
 *  - headP = share of all interactions that fall on the ceil(P% * n_items)
 *    most popular items (at least one item).
 *  - item_gini = Gini index of the item counts x sorted ascending,
 *    G = sum_i (2i - n - 1) x_i / (n sum_i x_i), i = 1..n: 0 when every
 *    item is equally popular, (n-1)/n when one item has everything.
 *  - percentiles of the user lengths by linear interpolation between order
 *    statistics (position p * (n - 1), as NumPy's default).
 */
#include "data/data.h"

#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Percentile p in [0, 1] of sorted v[0..n), n >= 1. */
static double percentile(const uint64_t *v, size_t n, double p)
{
    double pos = p * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo + 1 >= n)
        return (double)v[n - 1];
    double frac = pos - (double)lo;
    return (double)v[lo] + frac * ((double)v[lo + 1] - (double)v[lo]);
}

/* Share of total held by the top ceil(pct% * n) entries of asc[0..n)
 * (in integers, so that 10% of 10 items is exactly 1). */
static double head_share(const uint64_t *asc, size_t n, size_t pct, uint64_t total)
{
    if (n == 0 || total == 0)
        return 0.0;
    size_t k = n / 100 * pct + (n % 100 * pct + 99) / 100;
    k = EMBER_MAX(k, (size_t)1);
    k = EMBER_MIN(k, n);
    uint64_t s = 0;
    for (size_t i = n - k; i < n; i++)
        s += asc[i];
    return (double)s / (double)total;
}

int data_stats_compute(const ember_dataset *d, data_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!d)
        return ember_fail(EMBER_EINVAL, "stats: no dataset");
    size_t U = d->n_users, I = d->n_items, nnz = d->nnz;
    out->n_users = U;
    out->n_items = I;
    out->nnz = nnz;
    if (U > 0 && I > 0)
        out->density = (double)nnz / ((double)U * (double)I);
    out->t_min = d->t_min;
    out->t_max = d->t_max;
    if (nnz > 0) {
        double lo = d->u_rating[0], hi = d->u_rating[0], sum = 0.0;
        for (size_t k = 0; k < nnz; k++) {
            double r = d->u_rating[k];
            lo = r < lo ? r : lo;
            hi = r > hi ? r : hi;
            sum += r;
        }
        out->rating_min = lo;
        out->rating_max = hi;
        out->rating_mean = sum / (double)nnz;
    }

    uint64_t *len = ember_alloc(EMBER_MAX(U, I) + 1, sizeof *len);
    if (!len)
        return EMBER_ENOMEM;
    if (I > 0) {
        for (size_t i = 0; i < I; i++)
            len[i] = d->i_ptr[i + 1] - d->i_ptr[i];
        qsort(len, I, sizeof *len, cmp_u64);
        out->head1 = head_share(len, I, 1, nnz);
        out->head10 = head_share(len, I, 10, nnz);
        out->head20 = head_share(len, I, 20, nnz);
        double weighted = 0.0;
        for (size_t i = 0; i < I; i++) {
            out->items_once += len[i] == 1;
            weighted += (2.0 * (double)(i + 1) - (double)I - 1.0) * (double)len[i];
        }
        if (nnz > 0)
            out->item_gini = weighted / ((double)I * (double)nnz);
        out->ilen_mean = (double)nnz / (double)I;
        out->ilen_max = (double)len[I - 1];
    }
    if (U > 0) {
        for (size_t u = 0; u < U; u++)
            len[u] = d->u_ptr[u + 1] - d->u_ptr[u];
        qsort(len, U, sizeof *len, cmp_u64);
        out->ulen_min = (double)len[0];
        out->ulen_p25 = percentile(len, U, 0.25);
        out->ulen_p50 = percentile(len, U, 0.50);
        out->ulen_p75 = percentile(len, U, 0.75);
        out->ulen_p90 = percentile(len, U, 0.90);
        out->ulen_max = (double)len[U - 1];
        out->ulen_mean = (double)nnz / (double)U;
    }
    free(len);
    return EMBER_OK;
}
