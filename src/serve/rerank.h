/*
 * rerank.h — the re-ranking stage of `ember serve`: after the model has
 * scored the catalogue and the excluded, seen and filtered-out items are
 * gone, a pool of the best candidates is re-ordered for the request:
 * a popularity penalty (long-tail exposure), exposure capping and
 * category fatigue (fed by the user's impression events), and MMR
 * diversity.  Pure functions over arrays: no locks, no model.
 */
#ifndef EMBER_RERANK_H
#define EMBER_RERANK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What the stage knows of the items (all optional). */
typedef struct {
    size_t n_items;
    const uint32_t *pop;    /* training interactions per item (popularity penalty) */
    const float *Q;         /* n_items x dim item vectors (MMR similarity: cosine) */
    size_t dim;
    const uint64_t *cat_ptr; /* item categories as CSR over items: tokens */
    const uint32_t *cat_tok; /*   cat_tok[cat_ptr[i] .. cat_ptr[i+1]) */
} rerank_items;

typedef struct {
    /* MMR: each next item maximises (1 - diversity) relevance - diversity
     * max similarity to the items already picked; 0: off */
    double diversity;
    /* relevance -= popularity * log(1 + pop) / log(1 + max pop); 0: off */
    double popularity;
    /* an item shown to the user max_shown times or more (in shown[]) is
     * demoted below every item that is not; 0: off */
    size_t max_shown;
    /* likewise every item of a category shown max_category times or more */
    size_t max_category;
    const uint32_t *shown; /* the user's impressions in the window (repeats count) */
    size_t n_shown;
} rerank_opts;

/* Relevance of the pool items[0..n) with the model's scores (best first,
 * finite): min-max normalised to [0, 1], then penalised and demoted as o
 * says; MMR picks k (or n) of them in order into out/out_score (the
 * model's scores, not the adjusted ones); *n_out = how many.  Similarity
 * is the cosine of item vectors when there are any, else 1 for items
 * sharing a category and 0 otherwise (no similarity known: MMR keeps the
 * relevance order).  Returns EMBER_ENOMEM or EMBER_OK. */
int rerank_select(const rerank_items *it, const rerank_opts *o, const uint32_t *items,
                  const float *scores, size_t n, size_t k, uint32_t *out, float *out_score,
                  size_t *n_out);

/* Whether item i has category token t. */
bool rerank_has_category(const rerank_items *it, uint32_t item, uint32_t tok);

#endif
