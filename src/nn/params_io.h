/*
 * params_io.h — the parameters of a neural model (an nn_params list) in a
 * model file (core/modelfile.h): one F32 section per parameter, named
 * "<prefix>.<name>" with the parameter's shape, and a count section
 * "<prefix>#count" (one u64), so that a load can tell a file of another
 * architecture from the model's own.
 */
#ifndef EMBER_NN_PARAMS_IO_H
#define EMBER_NN_PARAMS_IO_H

#include "core/modelfile.h"
#include "nn/nn.h"

/* A parameter a model expects: its name and shape. */
typedef struct {
    char name[48];
    int ndim;
    int shape[NN_MAX_DIMS];
    bool sparse; /* an embedding table (row-sparse gradients) */
} nn_param_spec;

/* Adds a zero parameter per spec to ps; the parameters in order into out
 * (NULL: not wanted). */
int nn_params_add_specs(nn_params *ps, const nn_param_spec *specs, size_t n, nn_param **out);
/* Checks, before anything is allocated, that r holds exactly the
 * parameters of specs under prefix with their shapes (and no other
 * count): a hostile file cannot make a load allocate more than it
 * holds.  EMBER_ECORRUPT with a message otherwise. */
int nn_params_check(const mf_reader *r, const char *prefix, const nn_param_spec *specs, size_t n);

/* Adds the sections of every parameter of ps to w.  Borrows ps (values
 * and count) until mf_writer_write returns. */
int nn_params_save(mf_writer *w, const char *prefix, const nn_params *ps);
/* Fills the values of ps, built beforehand with the expected names and
 * shapes, from the sections of r: the file must hold as many parameters
 * as ps, each of ps's names with its exact shape, every value finite.
 * EMBER_ECORRUPT with a message otherwise; nothing is copied unless every
 * check passed. */
int nn_params_load(const mf_reader *r, const char *prefix, nn_params *ps);

#endif
