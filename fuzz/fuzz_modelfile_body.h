/*
 * fuzz_modelfile_body.h — one fuzz input through the model file reader at
 * both levels, shared by the libFuzzer target (fuzz_modelfile.c) and the
 * corpus replay test (tests/core/test_fuzz_modelfile_replay.c), so both
 * run the same code.
 *
 * The input is tried twice: as given, and "resealed" (header file size,
 * end marker and XXH3 trailer rewritten to match the bytes), since a
 * mutated file almost never keeps a valid checksum and the interesting
 * checks sit behind it.  Each version goes through
 *   - the container: mf_open_mem; a refusal is EMBER_ECORRUPT with a
 *     message; for every section in an accepted file's table, mf_get
 *     answers for exactly that entry's dtype/ndim, with its shape and a
 *     64-byte aligned pointer whose bytes can all be read;
 *   - the model: the bytes in a memfd, ember_model_load on its
 *     /proc/self/fd path; a refusal is EMBER_ECORRUPT (or ENOMEM) with a
 *     message; a model that loads is asked for user 0's scores, a short
 *     history's scores, a recommendation and similar items, must refuse
 *     an out-of-range item, and must save and load back to the same
 *     answers, bit for bit.
 * Returns 0, or the number of the first check that failed.
 */
#ifndef EMBER_FUZZ_MODELFILE_BODY_H
#define EMBER_FUZZ_MODELFILE_BODY_H

#include "core/modelfile.h"
#include "ember.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

/* What an input did, for the replay test. */
typedef struct {
    int container_ok; /* the resealed bytes open as a container */
    int model_ok;     /* the bytes (as given or resealed) load as a model */
    char model[32];   /* its name */
} fuzz_mf_report;

static inline size_t fuzz_mf_dtype_size(int t)
{
    return t == MF_U8 ? 1 : (t == MF_U32 || t == MF_F32) ? 4 : 8;
}

/* A section name through mf_get: exactly one dtype/ndim answers, with a
 * 64-byte aligned pointer whose bytes can all be read and the shape of
 * the table entry (e, the first entry of that name). */
static inline int fuzz_mf_section(const mf_reader *r, const uint8_t *e, size_t size)
{
    char name[56];
    memcpy(name, e, sizeof name); /* NUL-terminated: the reader checked */
    uint32_t et, en;
    uint64_t eshape[4];
    memcpy(&et, e + 56, 4);
    memcpy(&en, e + 60, 4);
    memcpy(eshape, e + 64, sizeof eshape);
    if (!mf_has(r, name))
        return 4;
    int found = 0;
    for (int t = MF_U8; t <= MF_F64; t++)
        for (uint32_t nd = 1; nd <= 4; nd++) {
            uint64_t shape[4];
            ember_clear_error();
            const uint8_t *p = mf_get(r, name, (mf_dtype)t, nd, shape);
            if (!p) {
                if (ember_last_error()[0] == '\0')
                    return 5;
                continue;
            }
            found++;
            if ((uint32_t)t != et || nd != en)
                return 6;
            if ((uintptr_t)p % 64 != 0)
                return 7;
            uint64_t nb = fuzz_mf_dtype_size(t);
            for (uint32_t k = 0; k < nd; k++) {
                if (shape[k] != eshape[k])
                    return 8;
                nb *= shape[k];
            }
            if (nb > size)
                return 9;
            /* read every byte: the sanitizer sees a section past the copy */
            volatile uint8_t sink = 0;
            for (uint64_t k = 0; k < nb; k++)
                sink ^= p[k];
            (void)sink;
        }
    return found == 1 ? 0 : 10;
}

static inline int fuzz_mf_container(const uint8_t *data, size_t size, int *opened)
{
    mf_reader *r = (mf_reader *)&r; /* must be cleared on failure */
    ember_clear_error();
    int rc = mf_open_mem(data, size, &r);
    if (rc != EMBER_OK) {
        if (r != NULL)
            return 1;
        if (rc != EMBER_ECORRUPT && rc != EMBER_ENOMEM)
            return 2;
        if (ember_last_error()[0] == '\0')
            return 3;
        return 0;
    }
    *opened = 1;
    /* the table as modelfile.h lays it out: u32 count at 12, u64 offset
     * at 24, 128-byte entries; the reader has checked its bounds */
    uint32_t n;
    uint64_t table;
    memcpy(&n, data + 12, 4);
    memcpy(&table, data + 24, 8);
    int bad = 0;
    for (uint32_t i = 0; i < n && !bad; i++) {
        const uint8_t *e = data + table + (size_t)i * 128, *first = e;
        for (uint32_t j = 0; j < i; j++) {
            const uint8_t *o = data + table + (size_t)j * 128;
            if (strncmp((const char *)o, (const char *)e, 56) == 0) {
                first = o;
                break;
            }
        }
        bad = fuzz_mf_section(r, first, size);
    }
    uint64_t shape[4];
    ember_clear_error();
    if (!bad && (mf_get(r, "no such section", MF_U8, 1, shape) != NULL ||
                 ember_last_error()[0] == '\0'))
        bad = 11;
    mf_close(r);
    return bad;
}

/* Everything a caller may ask of a loaded model, into out (3 n_items +
 * 20 slots): user 0's scores, a history's scores for a new user and for
 * user 0, the top 5 for user 0 and similar items of the first and last
 * item.  Returns 0 or a check number. */
static inline int fuzz_mf_answers(const ember_model *m, float *out, size_t *n_out)
{
    size_t ni = ember_model_n_items(m), nu = ember_idmap_size(ember_model_users(m));
    size_t pos = 0;
    if (ember_idmap_size(ember_model_items(m)) != ni)
        return 20;
    for (size_t i = 0; i < 3 * ni + 20; i++)
        out[i] = 0.0f;
    int rc;
    if (nu > 0) {
        ember_query q = {.user = 0};
        if ((rc = ember_model_score(m, &q, NULL, 0, out + pos)) != EMBER_OK)
            return rc == EMBER_ENOMEM ? 0 : 21;
        pos += ni;
        uint32_t top[5];
        size_t n = 99;
        if ((rc = ember_model_recommend(m, &q, 5, 1, top, out + pos, &n)) != EMBER_OK)
            return rc == EMBER_ENOMEM ? 0 : 22;
        if (n > 5 || n > ni)
            return 23;
        for (size_t k = 0; k < n; k++)
            if (top[k] >= ni)
                return 24;
        pos += 5;
    }
    if (ni > 0) {
        uint32_t hist[3] = {0, (uint32_t)(ni - 1), 0};
        ember_query q = {.user = -1, .hist = hist, .n_hist = 3};
        if ((rc = ember_model_score(m, &q, NULL, 0, out + pos)) != EMBER_OK)
            return rc == EMBER_ENOMEM ? 0 : 25;
        pos += ni;
        if (nu > 0) {
            q.user = 0;
            if ((rc = ember_model_score(m, &q, NULL, 0, out + pos)) != EMBER_OK)
                return rc == EMBER_ENOMEM ? 0 : 26;
            pos += ni;
        }
        uint32_t items[2] = {0, (uint32_t)ni}; /* the second is out of range */
        float two[2];
        q.user = -1;
        if (ember_model_score(m, &q, items, 2, two) != EMBER_EINVAL)
            return 27;
        uint32_t sim[5];
        for (int k = 0; k < 2; k++) {
            uint32_t item = k ? (uint32_t)(ni - 1) : 0;
            size_t n = 99;
            rc = ember_model_similar(m, item, 5, sim, out + pos, &n);
            if (rc == EMBER_OK) {
                if (n > 5)
                    return 28;
                for (size_t j = 0; j < n; j++)
                    if (sim[j] >= ni || sim[j] == item)
                        return 29;
            } else if (rc != EMBER_EUNSUPPORTED && rc != EMBER_ENOMEM) {
                return 30;
            }
            pos += 5;
        }
    }
    *n_out = pos;
    return 0;
}

/* A path for the re-saved model: tmpfs when there is one (the writer
 * fsyncs), one per process. */
static inline void fuzz_mf_save_path(char *buf, size_t len)
{
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(buf, len, "%s/ember-fuzz-modelfile-%ld.model", dir ? dir : "/tmp", (long)getpid());
}

static inline int fuzz_mf_model(const uint8_t *data, size_t size, fuzz_mf_report *rep)
{
    int fd = memfd_create("ember-fuzz-model", MFD_CLOEXEC);
    if (fd < 0)
        return 0; /* no memfd here: not a finding */
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) {
            close(fd);
            return 0;
        }
        done += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    ember_model *m = (ember_model *)&m;
    ember_clear_error();
    int rc = ember_model_load(path, &m);
    close(fd);
    if (rc != EMBER_OK) {
        if (m != NULL)
            return 40;
        if (rc != EMBER_ECORRUPT && rc != EMBER_ENOMEM)
            return 41;
        if (ember_last_error()[0] == '\0')
            return 42;
        return 0;
    }
    rep->model_ok = 1;
    snprintf(rep->model, sizeof rep->model, "%s", ember_model_name(m));
    size_t ni = ember_model_n_items(m);
    float *a = malloc((3 * ni + 20) * sizeof *a), *b = malloc((3 * ni + 20) * sizeof *b);
    int bad = 0;
    size_t na = 0, nb = 0;
    if (a && b)
        bad = fuzz_mf_answers(m, a, &na);
    if (a && b && !bad) {
        char again[256];
        fuzz_mf_save_path(again, sizeof again);
        rc = ember_model_save(m, again);
        if (rc == EMBER_OK) {
            ember_model *m2 = NULL;
            rc = ember_model_load(again, &m2);
            if (rc == EMBER_OK) {
                bad = fuzz_mf_answers(m2, b, &nb);
                if (!bad && (nb != na || memcmp(a, b, na * sizeof *a) != 0 ||
                             strcmp(ember_model_params_json(m), ember_model_params_json(m2))))
                    bad = 43;
                ember_model_free(m2);
            } else if (rc != EMBER_ENOMEM) {
                bad = 44; /* what loaded once must load again after a save */
            }
            unlink(again);
        } else if (rc != EMBER_ENOMEM && rc != EMBER_EIO) {
            bad = 45;
        }
    }
    free(a);
    free(b);
    ember_model_free(m);
    return bad;
}

/* The bytes with header size, end marker and checksum made to match. */
static inline void fuzz_mf_reseal(uint8_t *p, size_t size)
{
    uint64_t fsize = size;
    memcpy(p + 16, &fsize, 8);
    memcpy(p + size - 8, "EMBEREND", 8);
    uint64_t sum = XXH3_64bits(p, size - 16);
    memcpy(p + size - 16, &sum, 8);
}

static inline int fuzz_modelfile_check(const uint8_t *data, size_t size, fuzz_mf_report *rep)
{
    memset(rep, 0, sizeof *rep);
    int opened = 0, bad;
    if ((bad = fuzz_mf_container(data, size, &opened)) != 0)
        return bad;
    if ((bad = fuzz_mf_model(data, size, rep)) != 0)
        return bad;
    if (size < 80)
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fuzz_mf_reseal(copy, size);
    if (memcmp(copy, data, size) == 0) { /* already sealed: done above */
        free(copy);
        rep->container_ok = opened;
        return 0;
    }
    opened = 0;
    bad = fuzz_mf_container(copy, size, &opened);
    rep->container_ok = opened;
    if (!bad)
        bad = fuzz_mf_model(copy, size, rep);
    free(copy);
    return bad;
}

static inline int fuzz_modelfile_one(const uint8_t *data, size_t size)
{
    fuzz_mf_report rep;
    return fuzz_modelfile_check(data, size, &rep);
}

#endif
