/*
 * knn.h — neighbourhoods shared by itemknn and userknn: for each entity a
 * (an item or a user), the k most similar entities b, found through the
 * bipartite graph a -> mid -> b (item -> users -> items, or user -> items
 * -> users) with binary weights.
 *
 * Similarities of co-occurrence count c, degrees da and db, shrinkage s:
 *   cosine      c / (sqrt(da db) + s)
 *   jaccard     c / (da + db - c + s)
 *   asymmetric  c / (da^alpha db^(1-alpha) + s)   (Aiolli 2013)
 */
#ifndef EMBER_KNN_H
#define EMBER_KNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { KNN_COSINE, KNN_JACCARD, KNN_ASYMMETRIC };
#define KNN_SIM_CHOICES "cosine|jaccard|asymmetric"

typedef struct {
    int sim;
    double shrink, alpha;
    size_t k;
    int threads;
} knn_opts;

/* A bipartite adjacency: a's neighbours in the middle layer. */
typedef struct {
    size_t n;
    const uint64_t *ptr;
    const uint32_t *idx;
} knn_adj;

/* Neighbour lists in CSR form: a's neighbours are [ptr[a], ptr[a+1]),
 * best first. */
typedef struct {
    uint64_t *ptr;
    uint32_t *idx;
    float *sim;
} knn_graph;

/* a_to_mid: for each a, its mids; mid_to_b: for each mid, its b's; the
 * degree of b is the length of b's row in b_to_mid.  When a and b are the
 * same kind, a itself is left out of its own neighbours. */
int knn_build(const knn_adj *a_to_mid, const knn_adj *mid_to_b, const knn_adj *b_to_mid,
              bool same_kind, const knn_opts *o, knn_graph *out);
/* Similarity of one query (a list of mids) to every b: out[b] (n_b slots,
 * zero where nothing is shared). */
void knn_similarity_to_all(const uint32_t *mids, size_t n_mids, const knn_adj *mid_to_b,
                           const knn_adj *b_to_mid, const knn_opts *o, float *out);
/* Transposes a graph over n_a rows into rows over n_b: b -> (a, sim). */
int knn_transpose(const knn_graph *g, size_t n_a, size_t n_b, knn_graph *out);
/* Checks a loaded graph: monotone pointers ending at nnz, indices < n_b,
 * finite similarities. */
int knn_validate(const uint64_t *ptr, const uint32_t *idx, const float *sim, size_t n_a,
                 uint64_t nnz, size_t n_b);
void knn_graph_free(knn_graph *g);

/* Builds the item -> users adjacency (CSC) of per-user item lists. */
int knn_invert(const knn_adj *user_items, size_t n_items, uint64_t **ptr, uint32_t **idx);

#endif
