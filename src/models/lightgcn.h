/*
 * lightgcn.h — what lightgcn.c shows besides its model: the propagation
 * and the batch loss on a dataset's graph, the very code a fit runs, for
 * tests/models/test_lightgcn.c (checked against a dense reference and
 * finite differences).
 */
#ifndef EMBER_LIGHTGCN_H
#define EMBER_LIGHTGCN_H

#include "models/model.h"

/* out ((n_users + n_items) x dim, users first) = the mean of layers 0..K
 * of the propagation of (user0, item0) over data's graph. */
int lightgcn_propagate(const ember_dataset *data, size_t dim, size_t layers, const float *user0,
                       const float *item0, float *out);
/* The BPR + L2 loss of the n triples (users, pos, neg) and its gradient
 * with respect to the layer-0 tables (d_user0, d_item0, accumulated). */
int lightgcn_batch_loss(const ember_dataset *data, size_t dim, size_t layers, double reg,
                        const float *user0, const float *item0, const uint32_t *users,
                        const uint32_t *pos, const uint32_t *neg, size_t n, double *loss,
                        float *d_user0, float *d_item0);

#endif
