/*
 * itemknn.c — item-based collaborative filtering (Sarwar et al. 2001;
 * Deshpande & Karypis 2004).
 *
 * fit: for every target item j, its k most similar items N(j) by cosine,
 * Jaccard or asymmetric cosine over the users who interacted (binary),
 * with shrinkage.  score(u, j) = sum over i in history(u) and i in N(j) of
 * sim(i, j), as RecBole's ItemKNN does (top-k kept per target item).  For
 * that sum the graph is stored transposed too (i -> targets j), so scoring
 * a history of h items costs h times the average in-degree and works the
 * same for a known user, a new user or a session.
 */
#include "models/knn.h"
#include "models/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t k;
    int sim;
    double shrink, alpha;
} itemknn_params;

static const model_param itemknn_param_table[] = {
    {"k", PARAM_INT, offsetof(itemknn_params, k), "100", 1, 100000, NULL,
     "neighbours kept per item"},
    {"similarity", PARAM_CHOICE, offsetof(itemknn_params, sim), "asymmetric", 0, 0, KNN_SIM_CHOICES,
     "similarity measure"},
    {"shrink", PARAM_FLOAT, offsetof(itemknn_params, shrink), "0", 0, 1e9, NULL,
     "shrinkage added to the denominator"},
    {"alpha", PARAM_FLOAT, offsetof(itemknn_params, alpha), "0.3", 0, 1, NULL,
     "exponent of asymmetric cosine"},
};

typedef struct {
    /* N(j): neighbours of each target item, best first */
    const uint64_t *nb_ptr;
    const uint32_t *nb_idx;
    const float *nb_sim;
    /* transposed: for each history item i, the targets j with i in N(j) */
    const uint64_t *tr_ptr;
    const uint32_t *tr_idx;
    const float *tr_sim;
    knn_graph owned_nb, owned_tr;
} itemknn_state;

static knn_opts opts_of(const itemknn_params *p, int threads)
{
    return (knn_opts){.sim = p->sim, .shrink = p->shrink, .alpha = p->alpha, .k = (size_t)p->k,
                      .threads = threads};
}

static void itemknn_destroy(ember_model *m)
{
    itemknn_state *s = m->state;
    if (!s)
        return;
    knn_graph_free(&s->owned_nb);
    knn_graph_free(&s->owned_tr);
    free(s);
    m->state = NULL;
}

static int itemknn_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                       const ember_fit_opts *o)
{
    const itemknn_params *p = m->params;
    itemknn_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    knn_adj item_users = {train->n_items, train->i_ptr, train->i_user};
    knn_adj user_items = {train->n_users, train->u_ptr, train->u_item};
    knn_opts ko = opts_of(p, model_threads(o));
    int st = knn_build(&item_users, &user_items, &item_users, true, &ko, &s->owned_nb);
    if (st == EMBER_OK)
        st = knn_transpose(&s->owned_nb, m->n_items, m->n_items, &s->owned_tr);
    if (st)
        return st;
    s->nb_ptr = s->owned_nb.ptr;
    s->nb_idx = s->owned_nb.idx;
    s->nb_sim = s->owned_nb.sim;
    s->tr_ptr = s->owned_tr.ptr;
    s->tr_idx = s->owned_tr.idx;
    s->tr_sim = s->owned_tr.sim;
    return EMBER_OK;
}

static void add_targets(const itemknn_state *s, uint32_t i, float *out)
{
    for (uint64_t q = s->tr_ptr[i]; q < s->tr_ptr[i + 1]; q++)
        out[s->tr_idx[q]] += s->tr_sim[q];
}

static int itemknn_score_all(const ember_model *m, const ember_query *q, float *out)
{
    const itemknn_state *s = m->state;
    memset(out, 0, m->n_items * sizeof *out);
    model_hist_view v = model_query_history(m, q);
    for (size_t k = 0; k < v.na; k++)
        add_targets(s, v.a[k], out);
    for (size_t k = 0; k < v.nb; k++)
        add_targets(s, v.b[k], out);
    return EMBER_OK;
}

static int itemknn_similar(const ember_model *m, uint32_t item, float *out)
{
    const itemknn_state *s = m->state;
    for (size_t j = 0; j < m->n_items; j++)
        out[j] = -INFINITY;
    for (uint64_t q = s->nb_ptr[item]; q < s->nb_ptr[item + 1]; q++)
        out[s->nb_idx[q]] = s->nb_sim[q];
    return EMBER_OK;
}

static int itemknn_save(const ember_model *m, mf_writer *w)
{
    const itemknn_state *s = m->state;
    uint64_t nnz = s->nb_ptr[m->n_items];
    int st;
    if ((st = mf_add_1d(w, "knn.ptr", MF_U64, m->n_items + 1, s->nb_ptr)) ||
        (st = mf_add_1d(w, "knn.idx", MF_U32, nnz, s->nb_idx)) ||
        (st = mf_add_1d(w, "knn.sim", MF_F32, nnz, s->nb_sim)) ||
        (st = mf_add_1d(w, "knn.tr_ptr", MF_U64, m->n_items + 1, s->tr_ptr)) ||
        (st = mf_add_1d(w, "knn.tr_idx", MF_U32, nnz, s->tr_idx)) ||
        (st = mf_add_1d(w, "knn.tr_sim", MF_F32, nnz, s->tr_sim)))
        return st;
    return EMBER_OK;
}

static int itemknn_load(ember_model *m, const mf_reader *r)
{
    itemknn_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    uint64_t nnz = 0;
    s->nb_ptr = mf_get_1d(r, "knn.ptr", MF_U64, m->n_items + 1, NULL);
    s->tr_ptr = mf_get_1d(r, "knn.tr_ptr", MF_U64, m->n_items + 1, NULL);
    s->nb_idx = mf_get_1d(r, "knn.idx", MF_U32, UINT64_MAX, &nnz);
    if (!s->nb_ptr || !s->tr_ptr || !s->nb_idx)
        return EMBER_ECORRUPT;
    /* the transpose holds the same entries: the same count */
    s->nb_sim = mf_get_1d(r, "knn.sim", MF_F32, nnz, NULL);
    s->tr_idx = mf_get_1d(r, "knn.tr_idx", MF_U32, nnz, NULL);
    s->tr_sim = mf_get_1d(r, "knn.tr_sim", MF_F32, nnz, NULL);
    if (!s->nb_sim || !s->tr_idx || !s->tr_sim)
        return EMBER_ECORRUPT;
    int st;
    if ((st = knn_validate(s->nb_ptr, s->nb_idx, s->nb_sim, m->n_items, nnz, m->n_items)) ||
        (st = knn_validate(s->tr_ptr, s->tr_idx, s->tr_sim, m->n_items, nnz, m->n_items)))
        return st;
    return EMBER_OK;
}

const ember_model_ops model_itemknn = {
    .name = "itemknn",
    .summary = "item-based k-nearest neighbours (cosine / Jaccard / asymmetric cosine)",
    .params = itemknn_param_table,
    .n_params = EMBER_ARRAY_LEN(itemknn_param_table),
    .params_size = sizeof(itemknn_params),
    .fit = itemknn_fit,
    .score_all = itemknn_score_all,
    .similar = itemknn_similar,
    .additive = true,
    .save = itemknn_save,
    .load = itemknn_load,
    .destroy = itemknn_destroy,
};
