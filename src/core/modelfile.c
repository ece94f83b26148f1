/*
 * modelfile.c — writer and validating reader of the model file container
 * described in modelfile.h.
 *
 * The writer streams header, aligned sections, table and trailer while it
 * hashes them (XXH3 streaming), into a temporary file that is fsync'ed and
 * renamed over the target: a crash mid-write never leaves a half model at
 * the path a server reloads from.  The reader maps the file read-only and
 * validates everything before any model sees a byte of it ("validate sizes
 * before allocating": a hostile file cannot make us allocate or read past
 * its end).
 */
#include "core/modelfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "model files are little-endian");

static const char MAGIC[8] = {'E', 'M', 'B', 'E', 'R', 'M', 'F', '\0'};
static const char END_MAGIC[8] = {'E', 'M', 'B', 'E', 'R', 'E', 'N', 'D'};

#define HEADER_SIZE 64
#define ENTRY_SIZE 128
#define TRAILER_SIZE 16
#define NAME_MAX_LEN 56

typedef struct {
    char name[NAME_MAX_LEN];
    uint32_t dtype, ndim;
    uint64_t shape[4];
    uint64_t offset, nbytes;
    uint64_t reserved[2];
} mf_entry;
_Static_assert(sizeof(mf_entry) == ENTRY_SIZE, "table entry is 128 bytes");

typedef struct {
    char magic[8];
    uint32_t version, n_sections;
    uint64_t file_size, table_offset;
    uint8_t pad[32];
} mf_header;
_Static_assert(sizeof(mf_header) == HEADER_SIZE, "header is 64 bytes");

struct mf_writer {
    mf_entry *e;
    const void **data;
    size_t n, cap;
};

struct mf_reader {
    const uint8_t *base;
    size_t size;
    bool mapped;
    const mf_entry *e;
    size_t n;
    char *path;
};

static size_t dtype_size(uint32_t t)
{
    switch (t) {
    case MF_U8:
        return 1;
    case MF_U32:
    case MF_F32:
        return 4;
    case MF_U64:
    case MF_I64:
    case MF_F64:
        return 8;
    }
    return 0;
}

static const char *dtype_name(uint32_t t)
{
    static const char *const names[] = {"?", "u8", "u32", "u64", "i64", "f32", "f64"};
    return t < EMBER_ARRAY_LEN(names) ? names[t] : "?";
}

/* bytes of a tensor, or false on overflow */
static bool tensor_bytes(uint32_t dtype, uint32_t ndim, const uint64_t *shape, uint64_t *out)
{
    uint64_t b = dtype_size(dtype);
    if (!b || ndim < 1 || ndim > 4)
        return false;
    for (uint32_t k = 0; k < ndim; k++) {
        if (shape[k] && b > UINT64_MAX / shape[k])
            return false;
        b *= shape[k];
    }
    *out = b;
    return true;
}

mf_writer *mf_writer_new(void)
{
    return ember_calloc(1, sizeof(mf_writer));
}

void mf_writer_free(mf_writer *w)
{
    if (!w)
        return;
    free(w->e);
    free(w->data);
    free(w);
}

int mf_add(mf_writer *w, const char *name, mf_dtype dtype, size_t ndim, const uint64_t *shape,
           const void *data)
{
    size_t len = strlen(name);
    if (len == 0 || len >= NAME_MAX_LEN)
        return ember_fail(EMBER_EINVAL, "section name '%s' is empty or too long", name);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0)
            return ember_fail(EMBER_EINVAL, "section '%s' added twice", name);
    if (w->n >= MF_MAX_SECTIONS)
        return ember_fail(EMBER_ETOOBIG, "too many sections");
    mf_entry e = {0};
    memcpy(e.name, name, len);
    e.dtype = dtype;
    e.ndim = (uint32_t)ndim;
    for (size_t k = 0; k < ndim && k < 4; k++)
        e.shape[k] = shape[k];
    if (!tensor_bytes(e.dtype, e.ndim, e.shape, &e.nbytes))
        return ember_fail(EMBER_EINVAL, "section '%s': bad dtype or shape", name);
    if (e.nbytes && !data)
        return ember_fail(EMBER_EINVAL, "section '%s': no data", name);
    size_t cap = w->cap, cap2 = w->cap;
    if (ember_grow((void **)&w->e, &cap, w->n + 1, sizeof *w->e) ||
        ember_grow((void **)&w->data, &cap2, w->n + 1, sizeof *w->data))
        return EMBER_ENOMEM;
    w->cap = EMBER_MIN(cap, cap2);
    w->e[w->n] = e;
    w->data[w->n] = data;
    w->n++;
    return EMBER_OK;
}

int mf_add_1d(mf_writer *w, const char *name, mf_dtype dtype, uint64_t n, const void *data)
{
    return mf_add(w, name, dtype, 1, &n, data);
}

typedef struct {
    FILE *f;
    XXH3_state_t *h;
    uint64_t pos;
    bool failed;
} out_stream;

static void put(out_stream *o, const void *p, size_t n)
{
    if (o->failed || n == 0)
        return;
    if (fwrite(p, 1, n, o->f) != n) {
        o->failed = true;
        return;
    }
    XXH3_64bits_update(o->h, p, n);
    o->pos += n;
}

static void pad_to(out_stream *o, uint64_t align)
{
    static const uint8_t zeros[64];
    uint64_t r = o->pos % align;
    if (r)
        put(o, zeros, (size_t)(align - r));
}

int mf_writer_write(mf_writer *w, const char *path)
{
    size_t plen = strlen(path);
    char *tmp = ember_alloc(plen + 16, 1);
    if (!tmp)
        return EMBER_ENOMEM;
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int st = ember_fail(EMBER_EIO, "%s: cannot create: %s", path, strerror(errno));
        free(tmp);
        return st;
    }
    /* mkstemp makes the file 0600; a model file is shared like any other
     * (umask is not consulted: reading it is not thread-safe) */
    if (fchmod(fd, 0644) != 0) {
        int st = ember_fail(EMBER_EIO, "%s: cannot set permissions: %s", path, strerror(errno));
        close(fd);
        unlink(tmp);
        free(tmp);
        return st;
    }
    out_stream o = {.f = fdopen(fd, "wb"), .h = XXH3_createState()};
    if (!o.f || !o.h || XXH3_64bits_reset(o.h) == XXH_ERROR) {
        if (o.f)
            fclose(o.f);
        else
            close(fd);
        XXH3_freeState(o.h);
        unlink(tmp);
        free(tmp);
        return ember_fail(EMBER_ENOMEM, "cannot start writing %s", path);
    }
    /* offsets first, so the header can be written in order */
    uint64_t pos = HEADER_SIZE;
    for (size_t i = 0; i < w->n; i++) {
        pos = (pos + 63) & ~(uint64_t)63;
        w->e[i].offset = pos;
        pos += w->e[i].nbytes;
    }
    pos = (pos + 63) & ~(uint64_t)63;
    mf_header h = {0};
    memcpy(h.magic, MAGIC, 8);
    h.version = MF_VERSION;
    h.n_sections = (uint32_t)w->n;
    h.table_offset = pos;
    h.file_size = pos + (uint64_t)w->n * ENTRY_SIZE + TRAILER_SIZE;
    put(&o, &h, sizeof h);
    for (size_t i = 0; i < w->n; i++) {
        pad_to(&o, 64);
        put(&o, w->data[i], (size_t)w->e[i].nbytes);
    }
    pad_to(&o, 64);
    put(&o, w->e, w->n * sizeof *w->e);
    uint64_t sum = XXH3_64bits_digest(o.h);
    if (!o.failed && (fwrite(&sum, 8, 1, o.f) != 1 || fwrite(END_MAGIC, 8, 1, o.f) != 1))
        o.failed = true;
    XXH3_freeState(o.h);
    if (fflush(o.f) != 0 || fsync(fileno(o.f)) != 0)
        o.failed = true;
    if (fclose(o.f) != 0)
        o.failed = true;
    int st = EMBER_OK;
    if (o.failed) {
        st = ember_fail(EMBER_EIO, "%s: write failed: %s", path, strerror(errno));
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        st = ember_fail(EMBER_EIO, "%s: cannot rename into place: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return st;
}

static int validate(mf_reader *r, const char *what)
{
    if (r->size < HEADER_SIZE + TRAILER_SIZE)
        return ember_fail(EMBER_ECORRUPT, "%s: not an ember model file (too short: %zu bytes)", what,
                          r->size);
    mf_header h;
    memcpy(&h, r->base, sizeof h);
    if (memcmp(h.magic, MAGIC, 8) != 0)
        return ember_fail(EMBER_ECORRUPT, "%s: not an ember model file (bad magic)", what);
    if (h.version > MF_VERSION || h.version == 0)
        return ember_fail(EMBER_ECORRUPT,
                          "%s: model file format version %u; this ember reads up to %u", what,
                          h.version, MF_VERSION);
    if (h.file_size != r->size)
        return ember_fail(EMBER_ECORRUPT, "%s: truncated or extended: %zu bytes, header says %llu",
                          what, r->size, (unsigned long long)h.file_size);
    if (memcmp(r->base + r->size - 8, END_MAGIC, 8) != 0)
        return ember_fail(EMBER_ECORRUPT, "%s: bad end marker (truncated?)", what);
    uint64_t sum;
    memcpy(&sum, r->base + r->size - TRAILER_SIZE, 8);
    if (XXH3_64bits(r->base, r->size - TRAILER_SIZE) != sum)
        return ember_fail(EMBER_ECORRUPT, "%s: checksum mismatch (file is corrupt)", what);
    if (h.n_sections > MF_MAX_SECTIONS)
        return ember_fail(EMBER_ECORRUPT, "%s: too many sections", what);
    uint64_t table_end = h.table_offset + (uint64_t)h.n_sections * ENTRY_SIZE;
    if (h.table_offset < HEADER_SIZE || h.table_offset % 64 || table_end < h.table_offset ||
        table_end != r->size - TRAILER_SIZE)
        return ember_fail(EMBER_ECORRUPT, "%s: section table out of bounds", what);
    r->e = (const mf_entry *)(r->base + h.table_offset);
    r->n = h.n_sections;
    for (size_t i = 0; i < r->n; i++) {
        const mf_entry *e = &r->e[i];
        uint64_t nb;
        if (!memchr(e->name, '\0', NAME_MAX_LEN) || e->name[0] == '\0')
            return ember_fail(EMBER_ECORRUPT, "%s: section %zu has a bad name", what, i);
        if (!tensor_bytes(e->dtype, e->ndim, e->shape, &nb) || nb != e->nbytes)
            return ember_fail(EMBER_ECORRUPT, "%s: section '%s' has a bad shape", what, e->name);
        if (e->offset % 64 || e->offset < HEADER_SIZE || e->offset > h.table_offset ||
            e->nbytes > h.table_offset - e->offset)
            return ember_fail(EMBER_ECORRUPT, "%s: section '%s' out of bounds", what, e->name);
    }
    return EMBER_OK;
}

int mf_open(const char *path, mf_reader **out)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ember_fail(EMBER_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ember_fail(EMBER_EIO, "%s: not a regular file", path);
    }
    mf_reader *r = ember_calloc(1, sizeof *r);
    if (!r) {
        close(fd);
        return EMBER_ENOMEM;
    }
    r->size = (size_t)sb.st_size;
    r->path = ember_strdup(path);
    if (!r->path) {
        close(fd);
        free(r);
        return EMBER_ENOMEM;
    }
    if (r->size > 0) {
        void *m = mmap(NULL, r->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            free(r->path);
            free(r);
            return ember_fail(EMBER_EIO, "%s: cannot map: %s", path, strerror(errno));
        }
        r->base = m;
        r->mapped = true;
    }
    close(fd);
    int st = validate(r, path);
    if (st) {
        mf_close(r);
        return st;
    }
    *out = r;
    return EMBER_OK;
}

int mf_open_mem(const void *data, size_t len, mf_reader **out)
{
    *out = NULL;
    mf_reader *r = ember_calloc(1, sizeof *r);
    if (!r)
        return EMBER_ENOMEM;
    /* 64-byte aligned copy, so section pointers are aligned as in a map */
    uint8_t *copy = ember_alloc_aligned(len ? len : 1, 1);
    r->path = ember_strdup("<memory>");
    if (!copy || !r->path) {
        free(copy);
        free(r->path);
        free(r);
        return EMBER_ENOMEM;
    }
    if (len)
        memcpy(copy, data, len);
    r->base = copy;
    r->size = len;
    int st = validate(r, "<memory>");
    if (st) {
        mf_close(r);
        return st;
    }
    *out = r;
    return EMBER_OK;
}

void mf_close(mf_reader *r)
{
    if (!r)
        return;
    if (r->mapped)
        munmap((void *)r->base, r->size);
    else
        free((void *)r->base);
    free(r->path);
    free(r);
}

static const mf_entry *find(const mf_reader *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strncmp(r->e[i].name, name, NAME_MAX_LEN) == 0)
            return &r->e[i];
    return NULL;
}

bool mf_has(const mf_reader *r, const char *name)
{
    return find(r, name) != NULL;
}

const char *mf_path(const mf_reader *r)
{
    return r->path;
}

const void *mf_get(const mf_reader *r, const char *name, mf_dtype dtype, size_t ndim,
                   uint64_t *shape)
{
    const mf_entry *e = find(r, name);
    if (!e) {
        ember_fail(EMBER_ECORRUPT, "%s: no section '%s'", r->path, name);
        return NULL;
    }
    if (e->dtype != (uint32_t)dtype || e->ndim != ndim) {
        ember_fail(EMBER_ECORRUPT, "%s: section '%s' is %s/%ud, expected %s/%zud", r->path, name,
                   dtype_name(e->dtype), e->ndim, dtype_name(dtype), ndim);
        return NULL;
    }
    for (size_t k = 0; k < 4; k++)
        shape[k] = k < ndim ? e->shape[k] : 0;
    /* a non-NULL pointer even for empty sections */
    return r->base + (e->nbytes ? e->offset : 0);
}

const void *mf_get_1d(const mf_reader *r, const char *name, mf_dtype dtype, uint64_t n,
                      uint64_t *n_out)
{
    uint64_t shape[4];
    const void *p = mf_get(r, name, dtype, 1, shape);
    if (!p)
        return NULL;
    if (n != UINT64_MAX && shape[0] != n) {
        ember_fail(EMBER_ECORRUPT, "%s: section '%s' holds %llu values, expected %llu", r->path,
                   name, (unsigned long long)shape[0], (unsigned long long)n);
        return NULL;
    }
    if (n_out)
        *n_out = shape[0];
    return p;
}
