/* idmap.h — internal access to an idmap's packed strings, for model files. */
#ifndef EMBER_IDMAP_H
#define EMBER_IDMAP_H

#include "ember.h"

/* All ids back to back, each NUL-terminated, in index order. */
const char *idmap_chars(const ember_idmap *m, size_t *len);
/* Rebuilds a map from such a buffer; refuses duplicates and a count that
 * differs from expect_n. */
int idmap_from_chars(const char *chars, size_t len, size_t expect_n, ember_idmap **out);

/* A new map holding the first n ids of m, with the same indices. */
ember_idmap *idmap_clone(const ember_idmap *m, size_t n);

#endif
