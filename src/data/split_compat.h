/*
 * split_compat.h — splits that reproduce ../shared/bench/make_splits.py
 * byte for byte (`ember data split --compat python`), and the CPython
 * random number generator they need.
 *
 * make_splits.py uses one random.Random(seed) (MT19937) for everything:
 * first a shuffle of each user's interactions (users sorted numerically
 * when every id is all digits, else as strings; each user's rows in file
 * order before the shuffle), then a shuffle of all row indices for the
 * 5 folds.  Its output files list the general and sequential splits user by
 * user in that sorted order (shuffled order, resp. time order, inside a
 * user), not in file order; the index lists below follow that order.
 */
#ifndef EMBER_SPLIT_COMPAT_H
#define EMBER_SPLIT_COMPAT_H

#include "data/data.h"

/* CPython's random.Random: MT19937 seeded by init_by_array with the 32-bit
 * words of the seed (least significant first; one word 0 for seed 0). */
typedef struct {
    uint32_t mt[624];
    int mti;
} data_pyrandom;

void data_pyrandom_seed(data_pyrandom *r, uint64_t seed);
/* random.getrandbits(k), 1 <= k <= 64. */
uint64_t data_pyrandom_getrandbits(data_pyrandom *r, int k);
/* random._randbelow(n) for n >= 1: getrandbits(bit_length(n)) with
 * rejection of values >= n (so n = 1 still draws); 0 for n = 0. */
uint64_t data_pyrandom_below(data_pyrandom *r, uint64_t n);

/* Python's order of the users present in c (see above); *order gets
 * *n_order user indices (caller frees).  Ids that mix all-digit and other
 * strings cannot be sorted by make_splits.py (a TypeError there):
 * EMBER_EUNSUPPORTED. */
int data_py_user_order(const ember_coo *c, const ember_idmap *users, uint32_t **order,
                       size_t *n_order);

/* make_splits.py "general" (with its 0.1 / 0.1 as valid_frac / test_frac);
 * lists in its output order. */
int data_split_ratio_py(const ember_coo *c, const ember_idmap *users, double valid_frac,
                        double test_frac, uint64_t seed, data_split3 *out);
/* make_splits.py "sequential"; lists in its output order (users sorted,
 * time order inside a user, ties in file order). */
int data_split_leave_one_out_py(const ember_coo *c, const ember_idmap *users, data_split3 *out);
/* make_splits.py "rating" folds (k = 5 there): the generator first replays
 * the general split's per-user shuffles, then shuffles all row indices;
 * fold f takes shuffled positions f, f+k, ...  Both fold files are in file
 * order, as data_split_kfold's are. */
int data_split_kfold_py(const ember_coo *c, const ember_idmap *users, size_t k, uint64_t seed,
                        uint32_t **fold_of);

#endif
