/*
 * dataset.c — interactions indexed both ways.
 *
 * Built from coordinate form with two stable counting sorts (by the minor
 * key, then by the major key), so the CSR by user has items ascending and
 * the CSC by item has users ascending, each with ties in file order, in
 * O(nnz) time.  Each user's sequence (items in time order) is a per-row
 * sort by (timestamp, file position), done in parallel over users.
 */
#include "data/data.h"

#include <stdlib.h>
#include <string.h>

/* Stable counting sort of perm (indices into keys) by keys[perm[i]]. */
static int counting_sort(const uint32_t *keys, size_t n_keys, size_t *perm, size_t n,
                         uint64_t *ptr_out)
{
    uint64_t *cnt = ember_calloc(n_keys + 1, sizeof *cnt);
    size_t *tmp = ember_alloc(n ? n : 1, sizeof *tmp);
    if (!cnt || !tmp) {
        free(cnt);
        free(tmp);
        return EMBER_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        cnt[keys[perm[i]] + 1]++;
    for (size_t k = 0; k < n_keys; k++)
        cnt[k + 1] += cnt[k];
    if (ptr_out)
        memcpy(ptr_out, cnt, (n_keys + 1) * sizeof *cnt);
    for (size_t i = 0; i < n; i++)
        tmp[cnt[keys[perm[i]]]++] = perm[i];
    memcpy(perm, tmp, n * sizeof *perm);
    free(cnt);
    free(tmp);
    return EMBER_OK;
}

typedef struct {
    int64_t ts;
    size_t pos;
    uint32_t item;
} seq_entry;

static int cmp_seq(const void *a, const void *b)
{
    const seq_entry *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

void ember_dataset_free(ember_dataset *d)
{
    if (!d)
        return;
    ember_idmap_free(d->users);
    ember_idmap_free(d->items);
    free(d->u_ptr);
    free(d->u_item);
    free(d->u_rating);
    free(d->u_ts);
    free(d->u_seq);
    free(d->u_seq_ts);
    free(d->i_ptr);
    free(d->i_user);
    free(d->i_rating);
    free(d);
}

static int build_sequences(ember_dataset *d, const size_t *perm)
{
    int st = EMBER_OK;
    size_t max_len = 0;
    for (size_t u = 0; u < d->n_users; u++)
        max_len = EMBER_MAX(max_len, data_user_len(d, (uint32_t)u));
#pragma omp parallel
    {
        seq_entry *buf = malloc((max_len ? max_len : 1) * sizeof *buf);
        if (!buf) {
#pragma omp atomic write
            st = EMBER_ENOMEM;
        }
#pragma omp for schedule(dynamic, 256)
        for (size_t u = 0; u < d->n_users; u++) {
            if (!buf)
                continue;
            uint64_t a = d->u_ptr[u], b = d->u_ptr[u + 1];
            for (uint64_t k = a; k < b; k++) {
                buf[k - a].ts = d->u_ts[k];
                buf[k - a].pos = perm[k];
                buf[k - a].item = d->u_item[k];
            }
            qsort(buf, (size_t)(b - a), sizeof *buf, cmp_seq);
            for (uint64_t k = a; k < b; k++) {
                d->u_seq[k] = buf[k - a].item;
                d->u_seq_ts[k] = buf[k - a].ts;
            }
        }
        free(buf);
    }
    return st ? ember_fail(EMBER_ENOMEM, "out of memory sorting sequences") : EMBER_OK;
}

int ember_dataset_build(const ember_coo *c, ember_idmap *users, ember_idmap *items,
                        ember_dataset **out)
{
    *out = NULL;
    ember_dataset *d = ember_calloc(1, sizeof *d);
    if (!d)
        return EMBER_ENOMEM;
    d->users = ember_idmap_ref(users);
    d->items = ember_idmap_ref(items);
    d->n_users = ember_idmap_size(users);
    d->n_items = ember_idmap_size(items);
    size_t n = c->n;
    d->nnz = n;
    for (size_t k = 0; k < n; k++) {
        if (c->user[k] >= d->n_users || c->item[k] >= d->n_items) {
            ember_dataset_free(d);
            return ember_fail(EMBER_EINVAL, "interaction %zu has an index outside the id maps", k);
        }
    }
    size_t *perm = ember_alloc(n ? n : 1, sizeof *perm);
    d->u_ptr = ember_alloc(d->n_users + 1, sizeof *d->u_ptr);
    d->i_ptr = ember_alloc(d->n_items + 1, sizeof *d->i_ptr);
    size_t nn = n ? n : 1;
    d->u_item = ember_alloc(nn, sizeof *d->u_item);
    d->u_rating = ember_alloc(nn, sizeof *d->u_rating);
    d->u_ts = ember_alloc(nn, sizeof *d->u_ts);
    d->u_seq = ember_alloc(nn, sizeof *d->u_seq);
    d->u_seq_ts = ember_alloc(nn, sizeof *d->u_seq_ts);
    d->i_user = ember_alloc(nn, sizeof *d->i_user);
    d->i_rating = ember_alloc(nn, sizeof *d->i_rating);
    if (!perm || !d->u_ptr || !d->i_ptr || !d->u_item || !d->u_rating || !d->u_ts || !d->u_seq ||
        !d->u_seq_ts || !d->i_user || !d->i_rating) {
        free(perm);
        ember_dataset_free(d);
        return EMBER_ENOMEM;
    }
    int st;
    /* CSR: by item, then by user (stable) */
    for (size_t k = 0; k < n; k++)
        perm[k] = k;
    if ((st = counting_sort(c->item, d->n_items, perm, n, NULL)) ||
        (st = counting_sort(c->user, d->n_users, perm, n, d->u_ptr))) {
        free(perm);
        ember_dataset_free(d);
        return st;
    }
    d->t_min = n ? c->ts[0] : 0;
    d->t_max = d->t_min;
    for (size_t k = 0; k < n; k++) {
        size_t p = perm[k];
        d->u_item[k] = c->item[p];
        d->u_rating[k] = c->rating[p];
        d->u_ts[k] = c->ts[p];
        d->t_min = EMBER_MIN(d->t_min, c->ts[p]);
        d->t_max = EMBER_MAX(d->t_max, c->ts[p]);
    }
    if ((st = build_sequences(d, perm))) {
        free(perm);
        ember_dataset_free(d);
        return st;
    }
    /* CSC: by user, then by item */
    for (size_t k = 0; k < n; k++)
        perm[k] = k;
    if ((st = counting_sort(c->user, d->n_users, perm, n, NULL)) ||
        (st = counting_sort(c->item, d->n_items, perm, n, d->i_ptr))) {
        free(perm);
        ember_dataset_free(d);
        return st;
    }
    for (size_t k = 0; k < n; k++) {
        d->i_user[k] = c->user[perm[k]];
        d->i_rating[k] = c->rating[perm[k]];
    }
    free(perm);
    *out = d;
    return EMBER_OK;
}

int ember_dataset_load(const char *path, const ember_read_opts *opts, ember_idmap *users,
                       ember_idmap *items, ember_dataset **out, ember_read_stats *stats)
{
    *out = NULL;
    ember_idmap *u = users ? ember_idmap_ref(users) : ember_idmap_new();
    ember_idmap *i = items ? ember_idmap_ref(items) : ember_idmap_new();
    ember_coo c = {0};
    int st = (!u || !i) ? EMBER_ENOMEM : ember_coo_read(path, opts, u, i, &c, stats);
    if (st == EMBER_OK)
        st = ember_dataset_build(&c, u, i, out);
    ember_coo_free(&c);
    ember_idmap_free(u);
    ember_idmap_free(i);
    return st;
}

size_t ember_dataset_n_users(const ember_dataset *d)
{
    return d->n_users;
}

size_t ember_dataset_n_items(const ember_dataset *d)
{
    return d->n_items;
}

size_t ember_dataset_nnz(const ember_dataset *d)
{
    return d->nnz;
}

ember_idmap *ember_dataset_users(const ember_dataset *d)
{
    return d->users;
}

ember_idmap *ember_dataset_items(const ember_dataset *d)
{
    return d->items;
}

int data_to_coo(const ember_dataset *d, ember_coo *out)
{
    memset(out, 0, sizeof *out);
    for (size_t u = 0; u < d->n_users; u++)
        for (uint64_t k = d->u_ptr[u]; k < d->u_ptr[u + 1]; k++)
            if (ember_coo_push(out, (uint32_t)u, d->u_item[k], d->u_rating[k], d->u_ts[k])) {
                ember_coo_free(out);
                return EMBER_ENOMEM;
            }
    return EMBER_OK;
}

int data_coo_select(const ember_coo *c, const size_t *idx, size_t n, ember_coo *out)
{
    memset(out, 0, sizeof *out);
    for (size_t k = 0; k < n; k++) {
        size_t p = idx[k];
        if (ember_coo_push(out, c->user[p], c->item[p], c->rating[p], c->ts[p])) {
            ember_coo_free(out);
            return EMBER_ENOMEM;
        }
    }
    return EMBER_OK;
}
