/*
 * model.c — the framework around every model: creation by name with
 * "k=v" parameters, fit (which also keeps each user's training items and
 * the item counts), scoring with validation, top-k recommendation with
 * "seen" exclusion, similar items, and the model file (meta JSON, id maps,
 * history, then the model's own sections).
 *
 * A loaded model's arrays point into the mapped file (zero copy); the
 * framework validates the shared sections (monotone pointers, indices in
 * range) so that even a file with a valid checksum but hostile contents
 * cannot make scoring read out of bounds.
 */
#include "models/model.h"

#include "core/idmap.h"
#include "core/mips.h"
#include "core/topk.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define META_FORMAT "ember-model"

/* ------------------------------------------------------------ params */

static void *param_field(void *params, const model_param *p)
{
    return (char *)params + p->offset;
}

static int choice_index(const model_param *p, const char *v, size_t vlen)
{
    const char *s = p->choices;
    int idx = 0;
    while (s && *s) {
        const char *bar = strchr(s, '|');
        size_t len = bar ? (size_t)(bar - s) : strlen(s);
        if (len == vlen && strncmp(s, v, len) == 0)
            return idx;
        idx++;
        s = bar ? bar + 1 : NULL;
    }
    return -1;
}

static int set_param(const ember_model_ops *ops, void *params, const model_param *p,
                     const char *v)
{
    size_t len = strlen(v);
    switch (p->type) {
    case PARAM_INT: {
        int64_t x;
        if (!ember_parse_i64(v, len, &x) || (double)x < p->lo || (double)x > p->hi)
            return ember_fail(EMBER_EINVAL, "%s: %s=%s: expected a whole number in [%g, %g]",
                              ops->name, p->name, v, p->lo, p->hi);
        *(int64_t *)param_field(params, p) = x;
        return EMBER_OK;
    }
    case PARAM_FLOAT: {
        double x;
        if (!ember_parse_f64(v, len, &x) || x < p->lo || x > p->hi)
            return ember_fail(EMBER_EINVAL, "%s: %s=%s: expected a number in [%g, %g]", ops->name,
                              p->name, v, p->lo, p->hi);
        *(double *)param_field(params, p) = x;
        return EMBER_OK;
    }
    case PARAM_BOOL: {
        int b = -1;
        if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on"))
            b = 1;
        if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off"))
            b = 0;
        if (b < 0)
            return ember_fail(EMBER_EINVAL, "%s: %s=%s: expected true or false", ops->name,
                              p->name, v);
        *(int *)param_field(params, p) = b;
        return EMBER_OK;
    }
    case PARAM_CHOICE: {
        int c = choice_index(p, v, len);
        if (c < 0)
            return ember_fail(EMBER_EINVAL, "%s: %s=%s: expected one of %s", ops->name, p->name, v,
                              p->choices);
        *(int *)param_field(params, p) = c;
        return EMBER_OK;
    }
    }
    return ember_fail(EMBER_EINVAL, "bad parameter type");
}

static const model_param *find_param(const ember_model_ops *ops, const char *name, size_t len)
{
    for (size_t i = 0; i < ops->n_params; i++)
        if (strlen(ops->params[i].name) == len && strncmp(ops->params[i].name, name, len) == 0)
            return &ops->params[i];
    return NULL;
}

static int apply_param(const ember_model_ops *ops, void *params, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq)
        return ember_fail(EMBER_EINVAL, "parameter '%s' is not name=value", kv);
    const model_param *p = find_param(ops, kv, (size_t)(eq - kv));
    if (!p) {
        char names[512] = "";
        for (size_t i = 0; i < ops->n_params; i++) {
            size_t l = strlen(names);
            snprintf(names + l, sizeof names - l, "%s%s", i ? ", " : "", ops->params[i].name);
        }
        return ember_fail(EMBER_EINVAL, "%s has no parameter '%.*s' (it has: %s)", ops->name,
                          (int)(eq - kv), kv, *names ? names : "none");
    }
    return set_param(ops, params, p, eq + 1);
}

/* The parameters as a JSON object of their text values. */
static char *params_to_json(const ember_model_ops *ops, const void *params)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    for (size_t i = 0; i < ops->n_params; i++) {
        const model_param *p = &ops->params[i];
        const void *f = (const char *)params + p->offset;
        char buf[64];
        switch (p->type) {
        case PARAM_INT:
            snprintf(buf, sizeof buf, "%lld", (long long)*(const int64_t *)f);
            break;
        case PARAM_FLOAT: {
            /* the shortest text that reads back as the same double */
            double v = *(const double *)f;
            for (int prec = 6; prec <= 17; prec++) {
                snprintf(buf, sizeof buf, "%.*g", prec, v);
                if (strtod(buf, NULL) == v)
                    break;
            }
            break;
        }
        case PARAM_BOOL:
            snprintf(buf, sizeof buf, "%s", *(const int *)f ? "true" : "false");
            break;
        case PARAM_CHOICE: {
            const char *s = p->choices;
            for (int k = 0; k < *(const int *)f && s; k++) {
                s = strchr(s, '|');
                s = s ? s + 1 : NULL;
            }
            size_t len = s ? strcspn(s, "|") : 0;
            snprintf(buf, sizeof buf, "%.*s", (int)len, s ? s : "");
            break;
        }
        }
        if (!cJSON_AddStringToObject(o, p->name, buf)) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static int refresh_params_json(ember_model *m)
{
    char *j = params_to_json(m->ops, m->params);
    if (!j)
        return ember_fail(EMBER_ENOMEM, "out of memory writing parameters");
    /* cJSON allocates with malloc; keep our own copy to free with free() */
    char *copy = ember_strdup(j);
    cJSON_free(j);
    if (!copy)
        return EMBER_ENOMEM;
    free(m->params_json);
    m->params_json = copy;
    return EMBER_OK;
}

/* ------------------------------------------------------- life cycle */

static int model_alloc(const ember_model_ops *ops, ember_model **out)
{
    ember_model *m = ember_calloc(1, sizeof *m);
    if (!m)
        return EMBER_ENOMEM;
    m->ops = ops;
    m->params = ember_calloc(1, ops->params_size ? ops->params_size : 1);
    if (!m->params) {
        free(m);
        return EMBER_ENOMEM;
    }
    for (size_t i = 0; i < ops->n_params; i++) {
        int st = set_param(ops, m->params, &ops->params[i], ops->params[i].def);
        if (st) {
            free(m->params);
            free(m);
            return st;
        }
    }
    *out = m;
    return EMBER_OK;
}

int ember_model_new(const char *name, const char *const *params, ember_model **out)
{
    *out = NULL;
    const ember_model_ops *ops = model_find(name);
    if (!ops) {
        char names[256] = "";
        for (size_t i = 0; i < model_count(); i++) {
            size_t l = strlen(names);
            snprintf(names + l, sizeof names - l, "%s%s", i ? ", " : "", model_at(i)->name);
        }
        return ember_fail(EMBER_ENOTFOUND, "unknown model '%s' (models: %s)", name, names);
    }
    ember_model *m;
    int st = model_alloc(ops, &m);
    if (st)
        return st;
    for (size_t i = 0; params && params[i]; i++) {
        st = apply_param(ops, m->params, params[i]);
        if (st) {
            ember_model_free(m);
            return st;
        }
    }
    st = refresh_params_json(m);
    if (st) {
        ember_model_free(m);
        return st;
    }
    *out = m;
    return EMBER_OK;
}

void ember_model_free(ember_model *m)
{
    if (!m)
        return;
    if (m->ops->destroy)
        m->ops->destroy(m);
    ember_idmap_free(m->users);
    ember_idmap_free(m->items);
    for (size_t i = 0; i < EMBER_ARRAY_LEN(m->owned); i++)
        free(m->owned[i]);
    mf_close(m->file);
    free(m->params);
    free(m->params_json);
    free(m);
}

int model_threads(const ember_fit_opts *o)
{
    return ember_threads(o ? o->threads : 0);
}

int ember_model_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                    const ember_fit_opts *opts)
{
    if (m->users || m->file)
        return ember_fail(EMBER_EINVAL, "model is already trained");
    if (!train || train->nnz == 0)
        return ember_fail(EMBER_EINVAL, "the training set is empty");
    ember_fit_opts defaults = {.seed = 42};
    if (!opts)
        opts = &defaults;
    size_t nu = train->n_users, ni = train->n_items, nnz = train->nnz;
    uint64_t *ptr = ember_alloc(nu + 1, sizeof *ptr);
    uint32_t *item = ember_alloc(nnz, sizeof *item);
    int64_t *ts = ember_alloc(nnz, sizeof *ts);
    uint32_t *count = ember_calloc(ni ? ni : 1, sizeof *count);
    if (!ptr || !item || !ts || !count) {
        free(ptr);
        free(item);
        free(ts);
        free(count);
        return EMBER_ENOMEM;
    }
    memcpy(ptr, train->u_ptr, (nu + 1) * sizeof *ptr);
    memcpy(item, train->u_seq, nnz * sizeof *item);
    memcpy(ts, train->u_seq_ts, nnz * sizeof *ts);
    for (size_t i = 0; i < ni; i++)
        count[i] = (uint32_t)data_item_len(train, (uint32_t)i);
    m->owned[0] = ptr;
    m->owned[1] = item;
    m->owned[2] = ts;
    m->owned[3] = count;
    m->hist = (model_hist){ptr, item, ts, nnz};
    m->item_count = count;
    m->t_max = train->t_max;
    double rsum = 0;
    m->rating_min = m->rating_max = train->u_rating[0];
    for (size_t k = 0; k < nnz; k++) {
        rsum += train->u_rating[k];
        m->rating_min = EMBER_MIN(m->rating_min, train->u_rating[k]);
        m->rating_max = EMBER_MAX(m->rating_max, train->u_rating[k]);
    }
    m->rating_mean = (float)(rsum / (double)nnz);
    /* The maps may have grown past the training set (a valid file read
     * after it): the model keeps exactly the ids it was trained on. */
    m->users = ember_idmap_size(train->users) == nu ? ember_idmap_ref(train->users)
                                                     : idmap_clone(train->users, nu);
    m->items = ember_idmap_size(train->items) == ni ? ember_idmap_ref(train->items)
                                                     : idmap_clone(train->items, ni);
    if (!m->users || !m->items)
        return EMBER_ENOMEM;
    m->n_users = nu;
    m->n_items = ni;
    int st = m->ops->fit(m, train, valid, opts);
    if (st == EMBER_OK)
        st = refresh_params_json(m);
    return st;
}

/* ---------------------------------------------------------- scoring */

model_hist_view model_query_history(const ember_model *m, const ember_query *q)
{
    /* never NULL, so callers may memcpy or loop without checks */
    static const uint32_t none[1];
    model_hist_view v = {.a = none, .b = none};
    if (q->user >= 0 && (uint64_t)q->user < m->n_users) {
        uint64_t a = m->hist.ptr[q->user], b = m->hist.ptr[q->user + 1];
        v.a = m->hist.item + a;
        v.na = (size_t)(b - a);
    }
    if (q->hist) {
        v.b = q->hist;
        v.nb = q->n_hist;
    }
    return v;
}

static int check_query(const ember_model *m, const ember_query *q)
{
    if (!m->users)
        return ember_fail(EMBER_EINVAL, "model is not trained");
    if (q->user >= 0 && (uint64_t)q->user >= m->n_users)
        return ember_fail(EMBER_EINVAL, "user index %lld out of range", (long long)q->user);
    for (size_t i = 0; q->hist && i < q->n_hist; i++)
        if (q->hist[i] >= m->n_items)
            return ember_fail(EMBER_EINVAL, "history item index %u out of range", q->hist[i]);
    return EMBER_OK;
}

int ember_model_score(const ember_model *m, const ember_query *q, const uint32_t *items, size_t n,
                      float *out)
{
    int st = check_query(m, q);
    if (st)
        return st;
    if (!items)
        return m->ops->score_all(m, q, out);
    for (size_t i = 0; i < n; i++)
        if (items[i] >= m->n_items)
            return ember_fail(EMBER_EINVAL, "item index %u out of range", items[i]);
    if (m->ops->score_items)
        return m->ops->score_items(m, q, items, n, out);
    float *all = ember_alloc(m->n_items ? m->n_items : 1, sizeof *all);
    if (!all)
        return EMBER_ENOMEM;
    st = m->ops->score_all(m, q, all);
    if (st == EMBER_OK)
        for (size_t i = 0; i < n; i++)
            out[i] = all[items[i]];
    free(all);
    return st;
}

int ember_model_recommend(const ember_model *m, const ember_query *q, size_t k, int exclude_seen,
                          uint32_t *items, float *scores, size_t *n_out)
{
    *n_out = 0;
    int st = check_query(m, q);
    if (st)
        return st;
    float *all = ember_alloc(m->n_items ? m->n_items : 1, sizeof *all);
    if (!all)
        return EMBER_ENOMEM;
    st = m->ops->score_all(m, q, all);
    if (st == EMBER_OK) {
        if (exclude_seen) {
            model_hist_view v = model_query_history(m, q);
            for (size_t i = 0; i < v.na; i++)
                all[v.a[i]] = -INFINITY;
            for (size_t i = 0; i < v.nb; i++)
                all[v.b[i]] = -INFINITY;
        }
        ember_topk(all, m->n_items, k, items, scores, n_out);
    }
    free(all);
    return st;
}

#define EXPLAIN_LOO_MAX 50

static int by_weight_desc(const void *a, const void *b)
{
    const ember_reason *x = a, *y = b;
    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

int ember_model_explain(const ember_model *m, const ember_query *q, uint32_t item,
                        ember_reason *out, size_t cap, size_t *n_out, float *score, int *method)
{
    *n_out = 0;
    *method = EMBER_EXPLAIN_NONE;
    int st = check_query(m, q);
    if (st)
        return st;
    if (item >= m->n_items)
        return ember_fail(EMBER_EINVAL, "item index %u out of range", item);
    if ((st = m->ops->score_items ? m->ops->score_items(m, q, &item, 1, score)
                                  : ember_model_score(m, q, &item, 1, score)))
        return st;
    /* the distinct history items, most recent last */
    model_hist_view v = model_query_history(m, q);
    size_t n = v.na + v.nb, w = 0;
    uint32_t *h = ember_alloc(EMBER_MAX(n, 1), sizeof *h);
    if (!h)
        return EMBER_ENOMEM;
    for (size_t k = n; k-- > 0;) { /* newest first: keep the last occurrence */
        uint32_t it = k >= v.na ? v.b[k - v.na] : v.a[k];
        bool dup = false;
        for (size_t t = 0; t < w && !dup; t++)
            dup = h[t] == it;
        if (!dup)
            h[w++] = it;
    }
    float *wt = ember_alloc(EMBER_MAX(w, 1), sizeof *wt);
    ember_reason *r = ember_alloc(EMBER_MAX(w, 1), sizeof *r);
    uint32_t *rest = ember_alloc(EMBER_MAX(w, 1), sizeof *rest);
    if (!wt || !r || !rest) {
        st = EMBER_ENOMEM;
        goto done;
    }
    size_t used = w;
    if (m->ops->explain) {
        st = m->ops->explain(m, h, w, item, wt);
        *method = EMBER_EXPLAIN_EXACT;
    } else if (m->ops->additive) {
        /* a repeated item adds its term each time */
        for (size_t k = 0; k < w && st == EMBER_OK; k++) {
            ember_query one = {.user = -1, .hist = &h[k], .n_hist = 1};
            st = ember_model_score(m, &one, &item, 1, &wt[k]);
            size_t times = 0;
            for (size_t t = 0; t < n; t++)
                times += (t >= v.na ? v.b[t - v.na] : v.a[t]) == h[k];
            wt[k] *= (float)times;
        }
        *method = EMBER_EXPLAIN_EXACT;
    } else {
        /* leave-one-out over the newest distinct items, against the score
         * of the history as a new user's (the same kind of query) */
        used = EMBER_MIN(w, (size_t)EXPLAIN_LOO_MAX);
        float base;
        ember_query all = {.user = -1, .hist = h, .n_hist = w};
        st = ember_model_score(m, &all, &item, 1, &base);
        for (size_t k = 0; k < used && st == EMBER_OK; k++) {
            size_t nr = 0;
            for (size_t t = 0; t < w; t++)
                if (t != k)
                    rest[nr++] = h[t];
            ember_query loo = {.user = -1, .hist = nr ? rest : NULL, .n_hist = nr};
            float s;
            st = ember_model_score(m, &loo, &item, 1, &s);
            wt[k] = base - s;
        }
        *method = EMBER_EXPLAIN_LEAVE_ONE_OUT;
    }
    if (st)
        goto done;
    size_t nz = 0;
    for (size_t k = 0; k < used; k++)
        if (wt[k] != 0.0f && isfinite(wt[k]))
            r[nz++] = (ember_reason){h[k], wt[k]};
    if (nz == 0 && w > 0 && !m->ops->explain && !m->ops->additive) {
        /* the history changes nothing (pop): no reasons */
        *method = EMBER_EXPLAIN_NONE;
    }
    qsort(r, nz, sizeof *r, by_weight_desc);
    *n_out = EMBER_MIN(nz, cap);
    memcpy(out, r, *n_out * sizeof *out);
done:
    free(h);
    free(wt);
    free(r);
    free(rest);
    return st;
}

/* The distinct values of v[0..n) sorted, into a new array (*out, *n_out). */
static int distinct_sorted(const uint32_t *v, size_t n, uint32_t **out, size_t *n_out)
{
    uint32_t *d = ember_alloc(EMBER_MAX(n, 1), sizeof *d);
    if (!d)
        return EMBER_ENOMEM;
    memcpy(d, v, n * sizeof *d);
    *out = d;
    *n_out = ember_sort_unique_u32(d, n);
    return EMBER_OK;
}

int ember_model_update(ember_model *m, const uint32_t *users, const uint32_t *items,
                       const int64_t *ts, size_t n, unsigned flags)
{
    if (!m->users)
        return ember_fail(EMBER_EINVAL, "model is not trained");
    if (flags & ~EMBER_UPDATE_ITEMS)
        return ember_fail(EMBER_EINVAL, "update: unknown flags %#x", flags);
    for (size_t j = 0; j < n; j++) {
        if (users[j] >= m->n_users)
            return ember_fail(EMBER_EINVAL, "update: user index %u out of range", users[j]);
        if (items[j] >= m->n_items)
            return ember_fail(EMBER_EINVAL, "update: item index %u out of range", items[j]);
    }
    if (n == 0)
        return EMBER_OK;
    size_t nu = m->n_users, ni = m->n_items, nnz = m->hist.nnz + n;
    /* the new history: each user's stored rows, then the user's new ones
     * in the order given */
    uint64_t *ptr = ember_calloc(nu + 1, sizeof *ptr);
    uint32_t *item = ember_alloc(nnz, sizeof *item);
    int64_t *tss = ember_alloc(nnz, sizeof *tss);
    uint32_t *count = ember_alloc(EMBER_MAX(ni, 1), sizeof *count);
    uint64_t *fill = ember_alloc(nu, sizeof *fill);
    uint32_t *tu = NULL, *ti = NULL;
    size_t ntu = 0, nti = 0;
    int st = EMBER_OK;
    if (!ptr || !item || !tss || !count || !fill || distinct_sorted(users, n, &tu, &ntu) ||
        distinct_sorted(items, n, &ti, &nti)) {
        st = EMBER_ENOMEM;
        goto fail;
    }
    for (size_t j = 0; j < n; j++)
        ptr[users[j] + 1]++;
    for (size_t u = 0; u < nu; u++)
        ptr[u + 1] += ptr[u] + (m->hist.ptr[u + 1] - m->hist.ptr[u]);
    int64_t t_max = m->t_max;
    for (size_t u = 0; u < nu; u++) {
        uint64_t a = m->hist.ptr[u], len = m->hist.ptr[u + 1] - a;
        memcpy(item + ptr[u], m->hist.item + a, len * sizeof *item);
        memcpy(tss + ptr[u], m->hist.ts + a, len * sizeof *tss);
        fill[u] = ptr[u] + len;
    }
    for (size_t j = 0; j < n; j++) {
        uint64_t at = fill[users[j]]++;
        item[at] = items[j];
        tss[at] = ts ? ts[j] : m->t_max;
        if (ts && ts[j] > t_max)
            t_max = ts[j];
    }
    memcpy(count, m->item_count, ni * sizeof *count);
    for (size_t j = 0; j < n; j++)
        if (count[items[j]] < UINT32_MAX)
            count[items[j]]++;
    /* swap in, let the model move, and swap back if it fails */
    model_hist old_hist = m->hist;
    const uint32_t *old_count = m->item_count;
    int64_t old_t = m->t_max;
    m->hist = (model_hist){ptr, item, tss, nnz};
    m->item_count = count;
    m->t_max = t_max;
    if (m->ops->update)
        st = m->ops->update(m, users, items, n, tu, ntu, ti, nti, flags);
    if (st) {
        m->hist = old_hist;
        m->item_count = old_count;
        m->t_max = old_t;
        goto fail;
    }
    free(m->owned[0]);
    free(m->owned[1]);
    free(m->owned[2]);
    free(m->owned[3]);
    m->owned[0] = ptr;
    m->owned[1] = item;
    m->owned[2] = tss;
    m->owned[3] = count;
    free(fill);
    free(tu);
    free(ti);
    return EMBER_OK;
fail:
    free(ptr);
    free(item);
    free(tss);
    free(count);
    free(fill);
    free(tu);
    free(ti);
    return st;
}

/* The factor-model path of ember_model_recommend_users: the users'
 * vectors, their training items sorted (left out), one mips search. */
static int recommend_users_dot(const ember_model *m, const uint32_t *users, size_t n, size_t k,
                               int include_seen, int threads, uint32_t *items, float *scores,
                               uint32_t *counts)
{
    const float *Q, *bias;
    size_t dim;
    m->ops->dot_items(m, &Q, &bias, &dim);
    float *X = ember_alloc_aligned(n * dim, sizeof *X);
    float *c = ember_alloc(n, sizeof *c);
    uint64_t *eptr = include_seen ? NULL : ember_alloc(n + 1, sizeof *eptr);
    if (!X || !c || (!include_seen && !eptr)) {
        free(X);
        free(c);
        free(eptr);
        return EMBER_ENOMEM;
    }
    uint32_t *excl = NULL;
    int st = EMBER_OK;
    if (!include_seen) {
        eptr[0] = 0;
        for (size_t j = 0; j < n; j++)
            eptr[j + 1] = eptr[j] + (m->hist.ptr[users[j] + 1] - m->hist.ptr[users[j]]);
        excl = ember_alloc(EMBER_MAX(eptr[n], 1), sizeof *excl);
        if (!excl)
            st = EMBER_ENOMEM;
    }
    int failed = st;
#pragma omp parallel for schedule(dynamic, 256) num_threads(threads > 0 ? threads : omp_get_max_threads())
    for (size_t j = 0; j < n; j++) {
        if (failed)
            continue;
        ember_query q = {.user = (int64_t)users[j]};
        int r = m->ops->dot_query(m, &q, X + j * dim, &c[j]);
        if (r) {
#pragma omp atomic write
            failed = r;
        }
        if (excl) {
            const uint32_t *h = m->hist.item + m->hist.ptr[users[j]];
            size_t len = (size_t)(eptr[j + 1] - eptr[j]);
            memcpy(excl + eptr[j], h, len * sizeof *excl);
            qsort(excl + eptr[j], len, sizeof *excl, ember_cmp_u32);
        }
    }
    st = failed;
    mips_index ix;
    if (st == EMBER_OK && (st = mips_build(&ix, Q, dim, bias, m->n_items, dim)) == EMBER_OK) {
        mips_opts o = {.k = k, .threads = threads, .excl_ptr = eptr, .excl = excl};
        st = mips_topk(&ix, X, dim, n, &o, items, scores, counts);
        mips_free(&ix);
        if (st == EMBER_OK && scores)
            for (size_t j = 0; j < n; j++)
                for (size_t r = 0; r < counts[j]; r++)
                    scores[j * k + r] += c[j];
    }
    free(X);
    free(c);
    free(eptr);
    free(excl);
    return st;
}

int ember_model_recommend_users(const ember_model *m, const uint32_t *users, size_t n, size_t k,
                                int include_seen, int threads, uint32_t *items, float *scores,
                                uint32_t *counts)
{
    if (!m->users)
        return ember_fail(EMBER_EINVAL, "model is not trained");
    for (size_t j = 0; j < n; j++)
        if (users[j] >= m->n_users)
            return ember_fail(EMBER_EINVAL, "user index %u out of range", users[j]);
    if (n == 0)
        return EMBER_OK;
    if (k == 0 || m->n_items == 0) {
        memset(counts, 0, n * sizeof *counts);
        return EMBER_OK;
    }
    if (m->ops->dot_items && m->ops->dot_query)
        return recommend_users_dot(m, users, n, k, include_seen, threads, items, scores, counts);
    int failed = 0;
#pragma omp parallel num_threads(threads > 0 ? threads : omp_get_max_threads())
    {
        float *all = ember_alloc(m->n_items, sizeof *all);
        if (!all) {
#pragma omp atomic write
            failed = EMBER_ENOMEM;
        }
#pragma omp for schedule(dynamic, 16)
        for (size_t j = 0; j < n; j++) {
            if (!all || failed)
                continue;
            size_t got = 0;
            ember_query q = {.user = (int64_t)users[j]};
            int r = m->ops->score_all(m, &q, all);
            if (r == EMBER_OK) {
                if (!include_seen)
                    for (uint64_t e = m->hist.ptr[users[j]]; e < m->hist.ptr[users[j] + 1]; e++)
                        all[m->hist.item[e]] = -INFINITY;
                ember_topk(all, m->n_items, k, items + j * k, scores ? scores + j * k : NULL,
                           &got);
            } else {
#pragma omp atomic write
                failed = r;
            }
            counts[j] = (uint32_t)got;
        }
        free(all);
    }
    return failed;
}

int ember_model_similar(const ember_model *m, uint32_t item, size_t k, uint32_t *items,
                        float *scores, size_t *n_out)
{
    *n_out = 0;
    if (!m->users)
        return ember_fail(EMBER_EINVAL, "model is not trained");
    if (item >= m->n_items)
        return ember_fail(EMBER_EINVAL, "item index %u out of range", item);
    if (!m->ops->similar)
        return ember_fail(EMBER_EUNSUPPORTED, "model '%s' has no notion of similar items",
                          m->ops->name);
    float *all = ember_alloc(m->n_items, sizeof *all);
    if (!all)
        return EMBER_ENOMEM;
    int st = m->ops->similar(m, item, all);
    if (st == EMBER_OK) {
        all[item] = -INFINITY;
        ember_topk(all, m->n_items, k, items, scores, n_out);
    }
    free(all);
    return st;
}

/* ------------------------------------------------------------ access */

const char *ember_model_name(const ember_model *m)
{
    return m->ops->name;
}

int ember_model_predicts_ratings(const ember_model *m)
{
    return m->ops->predicts_ratings;
}

const char *ember_model_params_json(const ember_model *m)
{
    return m->params_json ? m->params_json : "{}";
}

ember_idmap *ember_model_users(const ember_model *m)
{
    return m->users;
}

ember_idmap *ember_model_items(const ember_model *m)
{
    return m->items;
}

size_t ember_model_n_items(const ember_model *m)
{
    return m->n_items;
}

const char *const *ember_model_names(void)
{
    static const char *names[32];
    size_t n = EMBER_MIN(model_count(), EMBER_ARRAY_LEN(names) - 1);
    for (size_t i = 0; i < n; i++)
        names[i] = model_at(i)->name;
    names[n] = NULL;
    return names;
}

/* ------------------------------------------------------- model files */

int ember_model_save(const ember_model *m, const char *path)
{
    if (!m->users)
        return ember_fail(EMBER_EINVAL, "model is not trained");
    mf_writer *w = mf_writer_new();
    cJSON *meta = cJSON_CreateObject();
    cJSON *params = m->params_json ? cJSON_Parse(m->params_json) : cJSON_CreateObject();
    char *meta_text = NULL;
    int st = EMBER_ENOMEM;
    if (!w || !meta || !params)
        goto done;
    cJSON_AddStringToObject(meta, "format", META_FORMAT);
    cJSON_AddStringToObject(meta, "model", m->ops->name);
    cJSON_AddStringToObject(meta, "ember", EMBER_VERSION_STRING);
    cJSON_AddNumberToObject(meta, "n_users", (double)m->n_users);
    cJSON_AddNumberToObject(meta, "n_items", (double)m->n_items);
    cJSON_AddNumberToObject(meta, "nnz", (double)m->hist.nnz);
    cJSON_AddNumberToObject(meta, "t_max", (double)m->t_max);
    cJSON_AddNumberToObject(meta, "rating_mean", (double)m->rating_mean);
    cJSON_AddNumberToObject(meta, "rating_min", (double)m->rating_min);
    cJSON_AddNumberToObject(meta, "rating_max", (double)m->rating_max);
    cJSON_AddItemToObject(meta, "params", params);
    params = NULL;
    meta_text = cJSON_PrintUnformatted(meta);
    if (!meta_text)
        goto done;
    size_t ulen, ilen;
    const char *uchars = idmap_chars(m->users, &ulen);
    const char *ichars = idmap_chars(m->items, &ilen);
    if ((st = mf_add_1d(w, "meta", MF_U8, strlen(meta_text), meta_text)) ||
        (st = mf_add_1d(w, "users.ids", MF_U8, ulen, uchars)) ||
        (st = mf_add_1d(w, "items.ids", MF_U8, ilen, ichars)) ||
        (st = mf_add_1d(w, "hist.ptr", MF_U64, m->n_users + 1, m->hist.ptr)) ||
        (st = mf_add_1d(w, "hist.item", MF_U32, m->hist.nnz, m->hist.item)) ||
        (st = mf_add_1d(w, "hist.ts", MF_I64, m->hist.nnz, m->hist.ts)) ||
        (st = mf_add_1d(w, "item_count", MF_U32, m->n_items, m->item_count)) ||
        (st = m->ops->save(m, w)))
        goto done;
    st = mf_writer_write(w, path);
done:
    if (st == EMBER_ENOMEM && !*ember_last_error())
        ember_fail(EMBER_ENOMEM, "out of memory saving the model");
    cJSON_free(meta_text);
    cJSON_Delete(meta);
    cJSON_Delete(params);
    mf_writer_free(w);
    return st;
}

static int json_size(const cJSON *meta, const char *key, size_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 4.0e9 ||
        v->valuedouble != floor(v->valuedouble))
        return ember_fail(EMBER_ECORRUPT, "model meta: '%s' missing or invalid", key);
    *out = (size_t)v->valuedouble;
    return EMBER_OK;
}

static int load_meta(ember_model **out, const mf_reader *r, cJSON **meta_out)
{
    uint64_t mlen;
    const char *text = mf_get_1d(r, "meta", MF_U8, UINT64_MAX, &mlen);
    if (!text)
        return EMBER_ECORRUPT;
    cJSON *meta = cJSON_ParseWithLength(text, (size_t)mlen);
    if (!meta)
        return ember_fail(EMBER_ECORRUPT, "%s: model meta is not JSON", mf_path(r));
    *meta_out = meta;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(meta, "format");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(meta, "model");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, META_FORMAT) != 0 ||
        !cJSON_IsString(name))
        return ember_fail(EMBER_ECORRUPT, "%s: not an ember model (meta)", mf_path(r));
    const ember_model_ops *ops = model_find(name->valuestring);
    if (!ops)
        return ember_fail(EMBER_ECORRUPT, "%s: model '%s' is unknown to this ember %s",
                          mf_path(r), name->valuestring, EMBER_VERSION_STRING);
    ember_model *m;
    int st = model_alloc(ops, &m);
    if (st)
        return st;
    *out = m;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(meta, "params");
    const cJSON *p;
    cJSON_ArrayForEach(p, params)
    {
        if (!cJSON_IsString(p) || !p->string)
            return ember_fail(EMBER_ECORRUPT, "%s: parameter is not text", mf_path(r));
        const model_param *mp = find_param(ops, p->string, strlen(p->string));
        if (!mp)
            return ember_fail(EMBER_ECORRUPT, "%s: unknown parameter '%s' for %s", mf_path(r),
                              p->string, ops->name);
        if ((st = set_param(ops, m->params, mp, p->valuestring))) {
            char why[256];
            snprintf(why, sizeof why, "%s", ember_last_error());
            return ember_fail(EMBER_ECORRUPT, "%s: %s", mf_path(r), why);
        }
    }
    return refresh_params_json(m);
}

/* A float from meta, 0 when absent or out of float range. */
static float json_float(const cJSON *meta, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(meta, key);
    return cJSON_IsNumber(v) && fabs(v->valuedouble) < 3.0e38 ? (float)v->valuedouble : 0.0f;
}

static int load_shared(ember_model *m, const mf_reader *r, const cJSON *meta)
{
    size_t nu, ni, nnz;
    int st;
    if ((st = json_size(meta, "n_users", &nu)) || (st = json_size(meta, "n_items", &ni)) ||
        (st = json_size(meta, "nnz", &nnz)))
        return st;
    const cJSON *tmax = cJSON_GetObjectItemCaseSensitive(meta, "t_max");
    m->t_max = cJSON_IsNumber(tmax) && fabs(tmax->valuedouble) < 9.0e18
                   ? (int64_t)tmax->valuedouble
                   : 0;
    m->rating_mean = json_float(meta, "rating_mean");
    m->rating_min = json_float(meta, "rating_min");
    m->rating_max = json_float(meta, "rating_max");
    uint64_t len;
    const char *u = mf_get_1d(r, "users.ids", MF_U8, UINT64_MAX, &len);
    if (!u || (st = idmap_from_chars(u, (size_t)len, nu, &m->users)))
        return st ? st : EMBER_ECORRUPT;
    const char *i = mf_get_1d(r, "items.ids", MF_U8, UINT64_MAX, &len);
    if (!i || (st = idmap_from_chars(i, (size_t)len, ni, &m->items)))
        return st ? st : EMBER_ECORRUPT;
    m->n_users = nu;
    m->n_items = ni;
    const uint64_t *ptr = mf_get_1d(r, "hist.ptr", MF_U64, nu + 1, NULL);
    const uint32_t *item = mf_get_1d(r, "hist.item", MF_U32, nnz, NULL);
    const int64_t *ts = mf_get_1d(r, "hist.ts", MF_I64, nnz, NULL);
    const uint32_t *count = mf_get_1d(r, "item_count", MF_U32, ni, NULL);
    if (!ptr || !item || !ts || !count)
        return EMBER_ECORRUPT;
    if (ptr[0] != 0 || ptr[nu] != nnz)
        return ember_fail(EMBER_ECORRUPT, "%s: history pointers are inconsistent", mf_path(r));
    for (size_t k = 0; k < nu; k++)
        if (ptr[k + 1] < ptr[k])
            return ember_fail(EMBER_ECORRUPT, "%s: history pointers decrease", mf_path(r));
    for (size_t k = 0; k < nnz; k++)
        if (item[k] >= ni)
            return ember_fail(EMBER_ECORRUPT, "%s: history item out of range", mf_path(r));
    m->hist = (model_hist){ptr, item, ts, nnz};
    m->item_count = count;
    return EMBER_OK;
}

int ember_model_load(const char *path, ember_model **out)
{
    *out = NULL;
    mf_reader *r;
    int st = mf_open(path, &r);
    if (st)
        return st;
    ember_model *m = NULL;
    cJSON *meta = NULL;
    st = load_meta(&m, r, &meta);
    if (m)
        m->file = r; /* from here on, freeing m closes r */
    if (st == EMBER_OK)
        st = load_shared(m, r, meta);
    if (st == EMBER_OK)
        st = m->ops->load(m, r);
    cJSON_Delete(meta);
    if (st) {
        if (m)
            ember_model_free(m);
        else
            mf_close(r);
        if (st == EMBER_ENOMEM)
            return st;
        return EMBER_ECORRUPT; /* the message says why */
    }
    *out = m;
    return EMBER_OK;
}
