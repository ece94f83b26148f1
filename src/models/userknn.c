/*
 * userknn.c — user-based collaborative filtering (Resnick et al. 1994;
 * Herlocker et al. 1999), binary interactions.
 *
 * fit: each user's k most similar users N(u) (cosine / Jaccard / asymmetric
 * cosine over shared items, with shrinkage).  score(u, j) = sum over v in
 * N(u) who have j of sim(u, v).  A query that brings a history (a new user,
 * or a known user with new events) gets its neighbours computed on the fly
 * from the item -> users index, so it needs no retraining.
 */
#include "core/topk.h"
#include "models/knn.h"
#include "models/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t k;
    int sim;
    double shrink, alpha;
} userknn_params;

static const model_param userknn_param_table[] = {
    {"k", PARAM_INT, offsetof(userknn_params, k), "50", 1, 100000, NULL,
     "neighbours kept per user"},
    {"similarity", PARAM_CHOICE, offsetof(userknn_params, sim), "asymmetric", 0, 0, KNN_SIM_CHOICES,
     "similarity measure"},
    {"shrink", PARAM_FLOAT, offsetof(userknn_params, shrink), "0", 0, 1e9, NULL,
     "shrinkage added to the denominator"},
    {"alpha", PARAM_FLOAT, offsetof(userknn_params, alpha), "0.3", 0, 1, NULL,
     "exponent of asymmetric cosine"},
};

typedef struct {
    const uint64_t *nb_ptr; /* N(u), best first */
    const uint32_t *nb_idx;
    const float *nb_sim;
    uint64_t *iu_ptr; /* item -> users (rebuilt from the history on load) */
    uint32_t *iu_idx;
    knn_graph owned_nb;
} userknn_state;

static knn_opts opts_of(const ember_model *m, int threads)
{
    const userknn_params *p = m->params;
    return (knn_opts){.sim = p->sim, .shrink = p->shrink, .alpha = p->alpha, .k = (size_t)p->k,
                      .threads = threads};
}

static void userknn_destroy(ember_model *m)
{
    userknn_state *s = m->state;
    if (!s)
        return;
    knn_graph_free(&s->owned_nb);
    free(s->iu_ptr);
    free(s->iu_idx);
    free(s);
    m->state = NULL;
}

static int build_inverse(ember_model *m, userknn_state *s)
{
    knn_adj user_items = {m->n_users, m->hist.ptr, m->hist.item};
    return knn_invert(&user_items, m->n_items, &s->iu_ptr, &s->iu_idx);
}

static int userknn_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                       const ember_fit_opts *o)
{
    userknn_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    int st = build_inverse(m, s);
    if (st)
        return st;
    knn_adj user_items = {m->n_users, m->hist.ptr, m->hist.item};
    knn_adj item_users = {m->n_items, s->iu_ptr, s->iu_idx};
    knn_opts ko = opts_of(m, model_threads(o));
    st = knn_build(&user_items, &item_users, &user_items, true, &ko, &s->owned_nb);
    if (st)
        return st;
    s->nb_ptr = s->owned_nb.ptr;
    s->nb_idx = s->owned_nb.idx;
    s->nb_sim = s->owned_nb.sim;
    return EMBER_OK;
}

static void add_neighbour(const ember_model *m, uint32_t v, float w, float *out)
{
    for (uint64_t p = m->hist.ptr[v]; p < m->hist.ptr[v + 1]; p++)
        out[m->hist.item[p]] += w;
}

static int userknn_score_all(const ember_model *m, const ember_query *q, float *out)
{
    const userknn_state *s = m->state;
    memset(out, 0, m->n_items * sizeof *out);
    if (q->user >= 0 && (!q->hist || q->n_hist == 0)) {
        for (uint64_t p = s->nb_ptr[q->user]; p < s->nb_ptr[q->user + 1]; p++)
            add_neighbour(m, s->nb_idx[p], s->nb_sim[p], out);
        return EMBER_OK;
    }
    /* neighbours of the whole history, found now */
    model_hist_view v = model_query_history(m, q);
    size_t nh = v.na + v.nb;
    if (nh == 0)
        return EMBER_OK;
    size_t k = EMBER_MIN((size_t)((const userknn_params *)m->params)->k, m->n_users);
    uint32_t *h = ember_alloc(nh, sizeof *h);
    float *sim = ember_alloc(m->n_users ? m->n_users : 1, sizeof *sim);
    uint32_t *nb = ember_alloc(k ? k : 1, sizeof *nb);
    float *nbs = ember_alloc(k ? k : 1, sizeof *nbs);
    int st = EMBER_OK;
    if (!h || !sim || !nb || !nbs) {
        st = EMBER_ENOMEM;
        goto done;
    }
    memcpy(h, v.a, v.na * sizeof *h);
    if (v.nb)
        memcpy(h + v.na, v.b, v.nb * sizeof *h);
    knn_adj item_users = {m->n_items, s->iu_ptr, s->iu_idx};
    knn_adj user_items = {m->n_users, m->hist.ptr, m->hist.item};
    knn_opts ko = opts_of(m, 1);
    knn_similarity_to_all(h, nh, &item_users, &user_items, &ko, sim);
    if (q->user >= 0)
        sim[q->user] = -INFINITY;
    for (size_t u = 0; u < m->n_users; u++)
        if (!(sim[u] > 0))
            sim[u] = -INFINITY;
    size_t n;
    ember_topk(sim, m->n_users, k, nb, nbs, &n);
    for (size_t t = 0; t < n; t++)
        add_neighbour(m, nb[t], nbs[t], out);
done:
    free(h);
    free(sim);
    free(nb);
    free(nbs);
    return st;
}

/* Items liked by the same users: cosine over their user sets, on the fly. */
static int userknn_similar(const ember_model *m, uint32_t item, float *out)
{
    const userknn_state *s = m->state;
    knn_adj user_items = {m->n_users, m->hist.ptr, m->hist.item};
    knn_adj item_users = {m->n_items, s->iu_ptr, s->iu_idx};
    knn_opts ko = opts_of(m, 1);
    knn_similarity_to_all(s->iu_idx + s->iu_ptr[item], (size_t)(s->iu_ptr[item + 1] - s->iu_ptr[item]),
                          &user_items, &item_users, &ko, out);
    for (size_t j = 0; j < m->n_items; j++)
        if (!(out[j] > 0))
            out[j] = -INFINITY;
    return EMBER_OK;
}

static int userknn_save(const ember_model *m, mf_writer *w)
{
    const userknn_state *s = m->state;
    uint64_t nnz = s->nb_ptr[m->n_users];
    int st;
    if ((st = mf_add_1d(w, "knn.ptr", MF_U64, m->n_users + 1, s->nb_ptr)) ||
        (st = mf_add_1d(w, "knn.idx", MF_U32, nnz, s->nb_idx)) ||
        (st = mf_add_1d(w, "knn.sim", MF_F32, nnz, s->nb_sim)))
        return st;
    return EMBER_OK;
}

static int userknn_load(ember_model *m, const mf_reader *r)
{
    userknn_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    uint64_t nnz = 0;
    s->nb_ptr = mf_get_1d(r, "knn.ptr", MF_U64, m->n_users + 1, NULL);
    s->nb_idx = mf_get_1d(r, "knn.idx", MF_U32, UINT64_MAX, &nnz);
    s->nb_sim = mf_get_1d(r, "knn.sim", MF_F32, nnz, NULL);
    if (!s->nb_ptr || !s->nb_idx || !s->nb_sim)
        return EMBER_ECORRUPT;
    int st = knn_validate(s->nb_ptr, s->nb_idx, s->nb_sim, m->n_users, nnz, m->n_users);
    if (st)
        return st;
    return build_inverse(m, s);
}

const ember_model_ops model_userknn = {
    .name = "userknn",
    .summary = "user-based k-nearest neighbours (cosine / Jaccard / asymmetric cosine)",
    .params = userknn_param_table,
    .n_params = EMBER_ARRAY_LEN(userknn_param_table),
    .params_size = sizeof(userknn_params),
    .fit = userknn_fit,
    .score_all = userknn_score_all,
    .similar = userknn_similar,
    .save = userknn_save,
    .load = userknn_load,
    .destroy = userknn_destroy,
};
