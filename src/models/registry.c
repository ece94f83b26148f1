/*
 * registry.c — model name -> ops table.  Adding a model is one line here
 * and one file beside it.
 */
#include "models/model.h"

#include <string.h>

extern const ember_model_ops model_pop, model_itemknn, model_userknn, model_ease;
extern const ember_model_ops model_als, model_bpr;
extern const ember_model_ops model_svd, model_svdpp;
extern const ember_model_ops model_markov, model_multvae, model_multdae, model_neumf;
extern const ember_model_ops model_lightgcn;

static const ember_model_ops *const registry[] = {
    &model_pop,
    &model_markov,
    &model_multvae,
    &model_multdae,
    &model_neumf,
    &model_lightgcn,
    &model_itemknn,
    &model_userknn,
    &model_svd,
    &model_svdpp,
    &model_ease,
    &model_als,
    &model_bpr,
};

const ember_model_ops *model_find(const char *name)
{
    for (size_t i = 0; i < EMBER_ARRAY_LEN(registry); i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

size_t model_count(void)
{
    return EMBER_ARRAY_LEN(registry);
}

const ember_model_ops *model_at(size_t i)
{
    return i < EMBER_ARRAY_LEN(registry) ? registry[i] : NULL;
}
