/*
 * pop.c — popularity: every user gets the items with the most training
 * interactions.  With half_life > 0 (days), each interaction weighs
 * 2^(-(t_max - t) / half_life), so recent popularity counts more
 * ("trending").  The baseline every model must beat, and the fallback for
 * a user with no history.
 */
#include "models/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    double half_life_days;
} pop_params;

static const model_param pop_param_table[] = {
    {"half_life", PARAM_FLOAT, offsetof(pop_params, half_life_days), "0", 0, 1e7, NULL,
     "time decay half-life in days (timestamps in seconds); 0 = plain counts"},
};

typedef struct {
    const float *score;
    float *owned;
} pop_state;

static void pop_destroy(ember_model *m)
{
    pop_state *s = m->state;
    if (!s)
        return;
    free(s->owned);
    free(s);
    m->state = NULL;
}

static int pop_fit(ember_model *m, const ember_dataset *train, const ember_dataset *valid,
                   const ember_fit_opts *o)
{
    const pop_params *p = m->params;
    pop_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    s->owned = ember_calloc(m->n_items ? m->n_items : 1, sizeof *s->owned);
    if (!s->owned)
        return EMBER_ENOMEM;
    s->score = s->owned;
    if (p->half_life_days <= 0) {
        for (size_t i = 0; i < m->n_items; i++)
            s->owned[i] = (float)m->item_count[i];
        return EMBER_OK;
    }
    double hl = p->half_life_days * 86400.0;
    double *acc = ember_calloc(m->n_items ? m->n_items : 1, sizeof *acc);
    if (!acc)
        return EMBER_ENOMEM;
    for (size_t k = 0; k < m->hist.nnz; k++)
        acc[m->hist.item[k]] += exp2(-(double)(m->t_max - m->hist.ts[k]) / hl);
    for (size_t i = 0; i < m->n_items; i++)
        s->owned[i] = (float)acc[i];
    free(acc);
    return EMBER_OK;
}

static int pop_score_all(const ember_model *m, const ember_query *q, float *out)
{
    const pop_state *s = m->state;
    memcpy(out, s->score, m->n_items * sizeof *out);
    return EMBER_OK;
}

static int pop_save(const ember_model *m, mf_writer *w)
{
    const pop_state *s = m->state;
    return mf_add_1d(w, "pop.score", MF_F32, m->n_items, s->score);
}

static int pop_load(ember_model *m, const mf_reader *r)
{
    pop_state *s = ember_calloc(1, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    m->state = s;
    s->score = mf_get_1d(r, "pop.score", MF_F32, m->n_items, NULL);
    if (!s->score)
        return EMBER_ECORRUPT;
    for (size_t i = 0; i < m->n_items; i++)
        if (!isfinite(s->score[i]))
            return ember_fail(EMBER_ECORRUPT, "pop.score holds a non-finite value");
    return EMBER_OK;
}

const ember_model_ops model_pop = {
    .name = "pop",
    .summary = "most popular items, optionally time-decayed",
    .params = pop_param_table,
    .n_params = EMBER_ARRAY_LEN(pop_param_table),
    .params_size = sizeof(pop_params),
    .fit = pop_fit,
    .score_all = pop_score_all,
    .save = pop_save,
    .load = pop_load,
    .destroy = pop_destroy,
};
