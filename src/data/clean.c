/*
 * clean.c — cleaning interactions in place: duplicates, sparse users and
 * items (k-core), explicit ratings to implicit feedback.
 *
 * Each function marks the rows to keep and then compacts the four columns
 * of the coo in one pass, so the survivors stay in file order and c->n
 * shrinks (capacity is kept).
 *
 * Dedupe scatters (time, row, item) into user order with a stable counting
 * sort (O(n + users)), then walks each user's rows in file order with a
 * per-item "best row so far" table stamped by user: a later row with a
 * timestamp >= the best one replaces it, so the survivor of a pair is the
 * latest by time and, among equal times, the latest in the file.
 *
 * filter_min computes the (min_user, min_item)-core by peeling (Batagelj &
 * Zaversnik, "An O(m) algorithm for cores decomposition of networks",
 * 2003): every user or item under its threshold goes on a stack; removing
 * one takes its remaining rows away and may push the items (users) whose
 * count then falls under theirs.  Each row is removed at most once, so the
 * fixed point is reached in O(n) instead of repeated full passes.
 *
 * Counting needs arrays indexed by user and item index.  Indices from an
 * idmap are dense; indices that are not (max > 4n + 1024, possible when a
 * caller fills a coo by hand) are first replaced by their rank among the
 * distinct values.
 */
#include "data/data.h"

#include <stdlib.h>
#include <string.h>

/* Counting keys for v[0..n): v itself when dense, else ranks (owned). */
typedef struct {
    const uint32_t *key;
    uint32_t *owned;
    size_t n_keys;
} dense_keys;

static int dense_keys_make(const uint32_t *v, size_t n, dense_keys *out)
{
    memset(out, 0, sizeof *out);
    uint32_t max = 0;
    for (size_t k = 0; k < n; k++)
        max = EMBER_MAX(max, v[k]);
    if (n == 0 || (uint64_t)max < 4 * (uint64_t)n + 1024) {
        out->key = v;
        out->n_keys = n ? (size_t)max + 1 : 0;
        return EMBER_OK;
    }
    uint32_t *sorted = ember_alloc(n, sizeof *sorted);
    uint32_t *rank = ember_alloc(n, sizeof *rank);
    if (!sorted || !rank) {
        free(sorted);
        free(rank);
        return EMBER_ENOMEM;
    }
    memcpy(sorted, v, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, ember_cmp_u32);
    size_t m = 0;
    for (size_t k = 0; k < n; k++)
        if (m == 0 || sorted[m - 1] != sorted[k])
            sorted[m++] = sorted[k];
    for (size_t k = 0; k < n; k++) {
        const uint32_t *hit = bsearch(&v[k], sorted, m, sizeof *sorted, ember_cmp_u32);
        rank[k] = (uint32_t)(hit - sorted);
    }
    free(sorted);
    out->key = rank;
    out->owned = rank;
    out->n_keys = m;
    return EMBER_OK;
}

/* Rows grouped by key, file order inside a group (stable counting sort):
 * group g is rows[ptr[g] .. ptr[g+1]). */
static int group_rows(const uint32_t *key, size_t n_keys, size_t n, size_t **ptr_out,
                      size_t **rows_out)
{
    size_t *ptr = ember_calloc(n_keys + 1, sizeof *ptr);
    size_t *rows = ember_alloc(n ? n : 1, sizeof *rows);
    if (!ptr || !rows) {
        free(ptr);
        free(rows);
        return EMBER_ENOMEM;
    }
    for (size_t k = 0; k < n; k++)
        ptr[key[k] + 1]++;
    for (size_t g = 0; g < n_keys; g++)
        ptr[g + 1] += ptr[g];
    for (size_t k = 0; k < n; k++)
        rows[ptr[key[k]]++] = k;
    /* the fill advanced each start to the next group's start: shift back */
    memmove(ptr + 1, ptr, n_keys * sizeof *ptr);
    ptr[0] = 0;
    *ptr_out = ptr;
    *rows_out = rows;
    return EMBER_OK;
}

/* Keeps the rows with keep[k] set, in order, and shrinks c->n. */
static void coo_compact(ember_coo *c, const uint8_t *keep)
{
    size_t w = 0;
    for (size_t k = 0; k < c->n; k++) {
        if (!keep[k])
            continue;
        if (w != k) {
            c->user[w] = c->user[k];
            c->item[w] = c->item[k];
            c->rating[w] = c->rating[k];
            c->ts[w] = c->ts[k];
        }
        w++;
    }
    c->n = w;
}

/* A row as dedupe reads it, scattered into user order so that the pass
 * over a user's rows reads memory in sequence (row numbers are 32-bit: a
 * coo of 2^32 rows or more is refused with EMBER_ETOOBIG). */
typedef struct {
    int64_t ts;
    uint32_t row, item;
} dedupe_row;

/* Per item: the best row so far of the current user (stamp = user + 1). */
typedef struct {
    uint64_t stamp;
    int64_t ts;
    uint32_t row;
} dedupe_best;

int ember_coo_dedupe(ember_coo *c)
{
    if (!c)
        return ember_fail(EMBER_EINVAL, "ember_coo_dedupe: no coo");
    size_t n = c->n;
    if (n < 2)
        return EMBER_OK;
    if (n > UINT32_MAX)
        return ember_fail(EMBER_ETOOBIG, "ember_coo_dedupe: %zu rows (at most 2^32 - 1)", n);
    dense_keys uk, ik;
    int st = dense_keys_make(c->user, n, &uk);
    if (st)
        return st;
    if ((st = dense_keys_make(c->item, n, &ik))) {
        free(uk.owned);
        return st;
    }
    size_t *ptr = ember_calloc(uk.n_keys + 1, sizeof *ptr);
    dedupe_row *rows = ember_alloc(n, sizeof *rows);
    dedupe_best *best = ember_calloc(ik.n_keys, sizeof *best);
    uint8_t *keep = ember_calloc(n, 1);
    if (!ptr || !rows || !best || !keep) {
        st = EMBER_ENOMEM;
        goto out;
    }
    /* stable counting sort by user: ptr[u] ends as the end of user u */
    for (size_t k = 0; k < n; k++)
        ptr[uk.key[k] + 1]++;
    for (size_t g = 0; g < uk.n_keys; g++)
        ptr[g + 1] += ptr[g];
    for (size_t k = 0; k < n; k++)
        rows[ptr[uk.key[k]]++] = (dedupe_row){c->ts[k], (uint32_t)k, ik.key[k]};
    size_t start = 0;
    for (size_t g = 0; g < uk.n_keys; g++) {
        size_t end = ptr[g];
        for (size_t p = start; p < end; p++) {
            const dedupe_row *r = &rows[p];
            dedupe_best *b = &best[r->item];
            if (b->stamp != g + 1) {
                *b = (dedupe_best){g + 1, r->ts, r->row};
                keep[r->row] = 1;
            } else if (r->ts >= b->ts) { /* later in time, or equal and later in the file */
                keep[b->row] = 0;
                keep[r->row] = 1;
                b->ts = r->ts;
                b->row = r->row;
            }
        }
        start = end;
    }
    coo_compact(c, keep);
out:
    free(uk.owned);
    free(ik.owned);
    free(ptr);
    free(rows);
    free(best);
    free(keep);
    return st;
}

int ember_coo_filter_min(ember_coo *c, size_t min_user, size_t min_item)
{
    if (!c)
        return ember_fail(EMBER_EINVAL, "ember_coo_filter_min: no coo");
    size_t n = c->n;
    if (n == 0 || (min_user <= 1 && min_item <= 1))
        return EMBER_OK; /* every present user and item has >= 1 row */
    dense_keys uk, ik;
    int st = dense_keys_make(c->user, n, &uk);
    if (st)
        return st;
    if ((st = dense_keys_make(c->item, n, &ik))) {
        free(uk.owned);
        return st;
    }
    size_t nu = uk.n_keys, ni = ik.n_keys;
    size_t *uptr = NULL, *urows = NULL, *iptr = NULL, *irows = NULL;
    uint8_t *alive = ember_alloc(n, 1);
    uint8_t *gone = ember_calloc(nu + ni, 1);              /* users, then items */
    size_t *stack = ember_alloc(nu + ni, sizeof *stack);   /* items offset by nu */
    size_t *ucnt = ember_alloc(nu, sizeof *ucnt);          /* live rows per user */
    size_t *icnt = ember_alloc(ni, sizeof *icnt);          /* live rows per item */
    if (!alive || !gone || !stack || !ucnt || !icnt || group_rows(uk.key, nu, n, &uptr, &urows) ||
        group_rows(ik.key, ni, n, &iptr, &irows)) {
        st = EMBER_ENOMEM;
        goto out;
    }
    memset(alive, 1, n);
    size_t top = 0;
    for (size_t u = 0; u < nu; u++) {
        ucnt[u] = uptr[u + 1] - uptr[u];
        if (ucnt[u] > 0 && ucnt[u] < min_user) {
            gone[u] = 1;
            stack[top++] = u;
        }
    }
    for (size_t i = 0; i < ni; i++) {
        icnt[i] = iptr[i + 1] - iptr[i];
        if (icnt[i] > 0 && icnt[i] < min_item) {
            gone[nu + i] = 1;
            stack[top++] = nu + i;
        }
    }
    while (top > 0) {
        size_t node = stack[--top];
        if (node < nu) {
            for (size_t p = uptr[node]; p < uptr[node + 1]; p++) {
                size_t r = urows[p];
                if (!alive[r])
                    continue;
                alive[r] = 0;
                uint32_t i = ik.key[r];
                if (--icnt[i] < min_item && !gone[nu + i]) {
                    gone[nu + i] = 1;
                    stack[top++] = nu + i;
                }
            }
        } else {
            size_t item = node - nu;
            for (size_t p = iptr[item]; p < iptr[item + 1]; p++) {
                size_t r = irows[p];
                if (!alive[r])
                    continue;
                alive[r] = 0;
                uint32_t u = uk.key[r];
                if (--ucnt[u] < min_user && !gone[u]) {
                    gone[u] = 1;
                    stack[top++] = u;
                }
            }
        }
    }
    coo_compact(c, alive);
out:
    free(uk.owned);
    free(ik.owned);
    free(alive);
    free(gone);
    free(stack);
    free(ucnt);
    free(icnt);
    free(uptr);
    free(urows);
    free(iptr);
    free(irows);
    return st;
}

void ember_coo_threshold(ember_coo *c, float threshold)
{
    if (!c)
        return;
    size_t w = 0;
    for (size_t k = 0; k < c->n; k++) {
        if (!(c->rating[k] >= threshold))
            continue;
        c->user[w] = c->user[k];
        c->item[w] = c->item[k];
        c->rating[w] = 1.0f;
        c->ts[w] = c->ts[k];
        w++;
    }
    c->n = w;
}
