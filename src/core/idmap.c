/*
 * idmap.c — external string ids <-> dense indices 0..n-1.
 *
 * Strings live back to back (NUL-terminated) in one growing buffer; an
 * open-addressing table with linear probing holds index+1 per slot (0 =
 * empty) and is kept at most half full.  Each entry's hash is stored, so a
 * probe compares strings only on a full hash match and growth never
 * rehashes a string.  Maps are reference counted because a train set, its
 * valid/test sets and the model trained on them share one.
 */
#include "core/core.h"
#include "core/idmap.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

struct ember_idmap {
    int refs;
    char *chars;       /* all ids, each NUL-terminated */
    size_t chars_len, chars_cap;
    uint64_t *offset;  /* offset[i]: start of id i in chars */
    uint64_t *hash;    /* hash[i]: hash of id i */
    size_t n, cap;
    uint32_t *slots;   /* index+1, 0 = empty; size mask+1 (power of two) */
    size_t mask;
};

ember_idmap *ember_idmap_new(void)
{
    ember_idmap *m = ember_calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->refs = 1;
    m->mask = 63;
    m->slots = ember_calloc(m->mask + 1, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

ember_idmap *ember_idmap_ref(ember_idmap *m)
{
    if (m)
        __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
    return m;
}

void ember_idmap_free(ember_idmap *m)
{
    if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    free(m->chars);
    free(m->offset);
    free(m->hash);
    free(m->slots);
    free(m);
}

size_t ember_idmap_size(const ember_idmap *m)
{
    return m ? m->n : 0;
}

static inline uint64_t id_hash(const char *s, size_t len)
{
    return XXH3_64bits(s, len);
}

static int64_t lookup(const ember_idmap *m, const char *id, size_t len, uint64_t h, size_t *slot)
{
    size_t i = (size_t)h & m->mask;
    for (;;) {
        uint32_t v = m->slots[i];
        if (v == 0) {
            *slot = i;
            return -1;
        }
        uint32_t idx = v - 1;
        if (m->hash[idx] == h) {
            const char *s = m->chars + m->offset[idx];
            if (strncmp(s, id, len) == 0 && s[len] == '\0')
                return idx;
        }
        i = (i + 1) & m->mask;
    }
}

int64_t ember_idmap_find(const ember_idmap *m, const char *id, size_t len)
{
    size_t slot;
    return lookup(m, id, len, id_hash(id, len), &slot);
}

static int rehash(ember_idmap *m, size_t new_size)
{
    uint32_t *s = ember_calloc(new_size, sizeof *s);
    if (!s)
        return EMBER_ENOMEM;
    size_t mask = new_size - 1;
    for (size_t idx = 0; idx < m->n; idx++) {
        size_t i = (size_t)m->hash[idx] & mask;
        while (s[i])
            i = (i + 1) & mask;
        s[i] = (uint32_t)idx + 1;
    }
    free(m->slots);
    m->slots = s;
    m->mask = mask;
    return EMBER_OK;
}

int ember_idmap_intern(ember_idmap *m, const char *id, size_t len, uint32_t *index)
{
    uint64_t h = id_hash(id, len);
    size_t slot;
    int64_t found = lookup(m, id, len, h, &slot);
    if (found >= 0) {
        *index = (uint32_t)found;
        return EMBER_OK;
    }
    if (memchr(id, '\0', len))
        return ember_fail(EMBER_EFORMAT, "id contains a NUL byte");
    if (m->n >= UINT32_MAX - 1)
        return ember_fail(EMBER_ETOOBIG, "more than 2^32-2 distinct ids");
    size_t n = m->n;
    if (n + 1 > m->cap) {
        size_t cap = m->cap;
        size_t cap2 = m->cap;
        if (ember_grow((void **)&m->offset, &cap, n + 1, sizeof *m->offset) ||
            ember_grow((void **)&m->hash, &cap2, n + 1, sizeof *m->hash))
            return EMBER_ENOMEM;
        m->cap = EMBER_MIN(cap, cap2);
    }
    if (ember_grow((void **)&m->chars, &m->chars_cap, m->chars_len + len + 1, 1))
        return EMBER_ENOMEM;
    if ((n + 1) * 2 > m->mask + 1) {
        int st = rehash(m, (m->mask + 1) * 2);
        if (st)
            return st;
        lookup(m, id, len, h, &slot); /* the free slot moved */
    }
    memcpy(m->chars + m->chars_len, id, len);
    m->chars[m->chars_len + len] = '\0';
    m->offset[n] = m->chars_len;
    m->hash[n] = h;
    m->chars_len += len + 1;
    m->n = n + 1;
    m->slots[slot] = (uint32_t)n + 1;
    *index = (uint32_t)n;
    return EMBER_OK;
}

const char *ember_idmap_name(const ember_idmap *m, uint32_t index)
{
    if (!m || index >= m->n)
        return NULL;
    return m->chars + m->offset[index];
}

const char *idmap_chars(const ember_idmap *m, size_t *len)
{
    *len = m->chars_len;
    return m->chars;
}

int idmap_from_chars(const char *chars, size_t len, size_t expect_n, ember_idmap **out)
{
    ember_idmap *m = ember_idmap_new();
    if (!m)
        return EMBER_ENOMEM;
    size_t pos = 0;
    while (pos < len) {
        const char *end = memchr(chars + pos, '\0', len - pos);
        if (!end) {
            ember_idmap_free(m);
            return ember_fail(EMBER_ECORRUPT, "id table is not NUL-terminated");
        }
        size_t l = (size_t)(end - (chars + pos));
        uint32_t idx;
        size_t before = m->n;
        int st = ember_idmap_intern(m, chars + pos, l, &idx);
        if (st) {
            ember_idmap_free(m);
            return st;
        }
        if (m->n == before) {
            ember_idmap_free(m);
            return ember_fail(EMBER_ECORRUPT, "id table holds a duplicate id");
        }
        pos += l + 1;
    }
    if (m->n != expect_n) {
        size_t got = m->n;
        ember_idmap_free(m);
        return ember_fail(EMBER_ECORRUPT, "id table holds %zu ids, header says %zu", got, expect_n);
    }
    *out = m;
    return EMBER_OK;
}

ember_idmap *idmap_clone(const ember_idmap *m, size_t n)
{
    if (n > m->n) {
        ember_fail(EMBER_EINVAL, "idmap_clone: %zu ids asked, map has %zu", n, m->n);
        return NULL;
    }
    ember_idmap *c = ember_idmap_new();
    if (!c)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const char *s = m->chars + m->offset[i];
        uint32_t idx;
        if (ember_idmap_intern(c, s, strlen(s), &idx)) {
            ember_idmap_free(c);
            return NULL;
        }
    }
    return c;
}
