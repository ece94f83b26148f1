/*
 * params_io.c — saving and loading an nn_params list through the model
 * file container (params_io.h).
 *
 * A parameter is one F32 section "<prefix>.<name>" of its own shape, and
 * "<prefix>#count" holds how many there are.  A model describes its
 * parameters as specs (name, shape) derived from its hyper-parameters, so
 * that a load can check the file against them before allocating anything
 * (nn_params_check), then build them (nn_params_add_specs) and fill them
 * (nn_params_load).  A load looks up every
 * parameter the model built for its hyper-parameters, checks the count
 * (names are unique, so equal counts and every name present mean the same
 * set), each section's dtype and shape, and that every value is finite,
 * and only then copies: a file whose checksum is valid but whose contents
 * disagree with the model is refused, never half trusted.
 */
#include "nn/params_io.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

_Static_assert(sizeof(size_t) == sizeof(uint64_t), "the count section borrows nn_params.n");

/* "<prefix><sep><name>" into buf (the container allows 55 bytes). */
static int section_name(char *buf, size_t cap, const char *prefix, char sep, const char *name)
{
    int n = snprintf(buf, cap, "%s%c%s", prefix, sep, name);
    if (n < 0 || (size_t)n >= cap || n > 55)
        return ember_fail(EMBER_EINVAL, "nn params: section name '%s%c%s' is too long", prefix,
                          sep, name);
    return EMBER_OK;
}

int nn_params_save(mf_writer *w, const char *prefix, const nn_params *ps)
{
    char name[64];
    int st;
    for (size_t i = 0; i < ps->n; i++) {
        const nn_param *p = ps->p[i];
        uint64_t shape[NN_MAX_DIMS];
        for (int d = 0; d < p->ndim; d++)
            shape[d] = (uint64_t)p->shape[d];
        if ((st = section_name(name, sizeof name, prefix, '.', p->name)) ||
            (st = mf_add(w, name, MF_F32, (size_t)p->ndim, shape, p->value)))
            return st;
    }
    if ((st = section_name(name, sizeof name, prefix, '#', "count")))
        return st;
    return mf_add_1d(w, name, MF_U64, 1, &ps->n);
}

int nn_params_add_specs(nn_params *ps, const nn_param_spec *specs, size_t n, nn_param **out)
{
    for (size_t i = 0; i < n; i++) {
        const nn_param_spec *sp = &specs[i];
        size_t total = 1;
        bool ok = sp->ndim >= 1 && sp->ndim <= NN_MAX_DIMS;
        for (int d = 0; ok && d < sp->ndim; d++) {
            ok = sp->shape[d] >= 1 && total <= (SIZE_MAX / sizeof(float)) / (size_t)sp->shape[d];
            total *= ok ? (size_t)sp->shape[d] : 1;
        }
        if (!ok || nn_params_find(ps, sp->name))
            return ember_fail(EMBER_EINVAL, "nn params: parameter '%s': bad or duplicate spec",
                              sp->name);
        nn_param *p = nn_params_add(ps, sp->name, sp->ndim, sp->shape, sp->sparse);
        if (!p)
            return EMBER_ENOMEM;
        if (out)
            out[i] = p;
    }
    return EMBER_OK;
}

/* The count section, checked against n. */
static int check_count(const mf_reader *r, const char *prefix, size_t n)
{
    char name[64];
    int st = section_name(name, sizeof name, prefix, '#', "count");
    if (st)
        return st;
    const uint64_t *count = mf_get_1d(r, name, MF_U64, 1, NULL);
    if (!count)
        return EMBER_ECORRUPT;
    if (*count != (uint64_t)n)
        return ember_fail(EMBER_ECORRUPT, "%s: %s: %llu parameters, the model has %zu",
                          mf_path(r), prefix, (unsigned long long)*count, n);
    return EMBER_OK;
}

/* Section name/ndim/shape against one expected parameter; the data. */
static const float *check_one(const mf_reader *r, const char *prefix, const char *pname,
                              int ndim, const int *want, int *st)
{
    char name[64];
    if ((*st = section_name(name, sizeof name, prefix, '.', pname)))
        return NULL;
    uint64_t shape[4];
    const float *v = mf_get(r, name, MF_F32, (size_t)ndim, shape);
    if (!v) {
        *st = EMBER_ECORRUPT;
        return NULL;
    }
    for (int d = 0; d < ndim; d++)
        if (shape[d] != (uint64_t)want[d]) {
            *st = ember_fail(EMBER_ECORRUPT, "%s: parameter '%s' has %llu in dim %d, the model "
                                             "expects %d",
                             mf_path(r), name, (unsigned long long)shape[d], d, want[d]);
            return NULL;
        }
    *st = EMBER_OK;
    return v;
}

int nn_params_check(const mf_reader *r, const char *prefix, const nn_param_spec *specs, size_t n)
{
    int st = check_count(r, prefix, n);
    for (size_t i = 0; st == EMBER_OK && i < n; i++)
        check_one(r, prefix, specs[i].name, specs[i].ndim, specs[i].shape, &st);
    return st;
}

static bool all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return false;
    return true;
}

int nn_params_load(const mf_reader *r, const char *prefix, nn_params *ps)
{
    int st = check_count(r, prefix, ps->n);
    if (st)
        return st;
    /* check everything first, copy after */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < ps->n; i++) {
            nn_param *p = ps->p[i];
            const float *v = check_one(r, prefix, p->name, p->ndim, p->shape, &st);
            if (!v)
                return st;
            if (pass == 1)
                memcpy(p->value, v, p->n * sizeof *v);
            else if (!all_finite(v, p->n))
                return ember_fail(EMBER_ECORRUPT, "%s: parameter '%s.%s' holds non-finite values",
                                  mf_path(r), prefix, p->name);
        }
    }
    return EMBER_OK;
}
