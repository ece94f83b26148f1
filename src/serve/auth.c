/*
 * auth.c — API keys and roles for the server.
 *
 * A key file lists one `KEY ROLE` per line (roles read < write < admin; a
 * higher role includes the lower ones); '#' starts a comment line.  A bad
 * line refuses the whole file with its line number, so a typo never
 * silently drops a key.  Looking a key up compares it with every listed
 * key in full, without an early exit, so the time taken does not tell a
 * client how much of a guess was right.
 */
#include "serve/serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_MIN 8
#define KEY_MAX 256

typedef struct {
    char key[KEY_MAX];
    size_t len;
    serve_role role;
} key_entry;

struct serve_keys {
    key_entry *e;
    size_t n;
};

static const char *const role_names[] = {
    [SERVE_ROLE_NONE] = "none",
    [SERVE_ROLE_READ] = "read",
    [SERVE_ROLE_WRITE] = "write",
    [SERVE_ROLE_ADMIN] = "admin",
};
_Static_assert(sizeof role_names / sizeof role_names[0] == SERVE_ROLE_ADMIN + 1, "role names");

const char *serve_role_name(serve_role r)
{
    return (unsigned)r <= SERVE_ROLE_ADMIN ? role_names[r] : "?";
}

static bool is_key_char(char c)
{
    return c > 0x20 && c < 0x7f;
}

static serve_role role_of(const char *s, size_t n)
{
    for (int r = SERVE_ROLE_READ; r <= SERVE_ROLE_ADMIN; r++)
        if (strlen(role_names[r]) == n && memcmp(role_names[r], s, n) == 0)
            return (serve_role)r;
    return SERVE_ROLE_NONE;
}

/* Splits one line into key and role; returns a message on error. */
static const char *parse_line(const char *p, size_t n, key_entry *e)
{
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    size_t k0 = i;
    while (i < n && is_key_char(p[i]))
        i++;
    size_t klen = i - k0;
    if (i < n && p[i] != ' ' && p[i] != '\t')
        return "a key may hold only printable ASCII characters";
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    size_t r0 = i;
    while (i < n && is_key_char(p[i]))
        i++;
    size_t rlen = i - r0;
    while (i < n && (p[i] == ' ' || p[i] == '\t'))
        i++;
    if (rlen == 0 || i != n)
        return "expected `KEY ROLE`";
    if (klen < KEY_MIN || klen >= KEY_MAX)
        return "a key must have 8 to 255 characters";
    e->role = role_of(p + r0, rlen);
    if (e->role == SERVE_ROLE_NONE)
        return "the role must be read, write or admin";
    memcpy(e->key, p + k0, klen);
    e->len = klen;
    return NULL;
}

int serve_keys_parse(const char *text, size_t len, const char *name, serve_keys **out)
{
    *out = NULL;
    serve_keys *k = ember_calloc(1, sizeof *k);
    if (!k)
        return EMBER_ENOMEM;
    size_t cap = 0, line = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line++;
        const char *next = p + n + (nl ? 1 : 0);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        size_t i = 0;
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        if (i == n || p[i] == '#') {
            p = next;
            continue;
        }
        if (memchr(p, '\0', n)) {
            serve_keys_free(k);
            return ember_fail(EMBER_EFORMAT, "%s:%zu: NUL byte", name, line);
        }
        if (ember_grow((void **)&k->e, &cap, k->n + 1, sizeof *k->e)) {
            serve_keys_free(k);
            return EMBER_ENOMEM;
        }
        key_entry *e = &k->e[k->n];
        memset(e, 0, sizeof *e);
        const char *why = parse_line(p, n, e);
        if (why) {
            serve_keys_free(k);
            return ember_fail(EMBER_EFORMAT, "%s:%zu: %s", name, line, why);
        }
        for (size_t j = 0; j < k->n; j++)
            if (k->e[j].len == e->len && memcmp(k->e[j].key, e->key, e->len) == 0) {
                serve_keys_free(k);
                return ember_fail(EMBER_EFORMAT, "%s:%zu: key listed twice", name, line);
            }
        k->n++;
        p = next;
    }
    if (k->n == 0) {
        serve_keys_free(k);
        return ember_fail(EMBER_EFORMAT, "%s: no key in the file", name);
    }
    *out = k;
    return EMBER_OK;
}

int serve_keys_load(const char *path, serve_keys **out)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ember_fail(EMBER_EIO, "%s: cannot open key file", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int st = EMBER_OK;
    for (;;) {
        if (ember_grow((void **)&buf, &cap, len + 4096, 1)) {
            st = EMBER_ENOMEM;
            break;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                st = ember_fail(EMBER_EIO, "%s: read error", path);
            break;
        }
        if (len > (1u << 20)) {
            st = ember_fail(EMBER_ETOOBIG, "%s: key file over 1 MB", path);
            break;
        }
    }
    fclose(f);
    if (st == EMBER_OK)
        st = serve_keys_parse(buf, len, path, out);
    free(buf);
    return st;
}

void serve_keys_free(serve_keys *k)
{
    if (!k)
        return;
    free(k->e);
    free(k);
}

size_t serve_keys_count(const serve_keys *k)
{
    return k ? k->n : 0;
}

serve_role serve_keys_role(const serve_keys *k, const char *key, size_t len)
{
    if (!k || len == 0 || len >= KEY_MAX)
        return SERVE_ROLE_NONE;
    serve_role found = SERVE_ROLE_NONE;
    for (size_t j = 0; j < k->n; j++) {
        const key_entry *e = &k->e[j];
        /* compare all KEY_MAX bytes (zero padded) whatever the lengths */
        unsigned diff = (unsigned)(e->len ^ len);
        for (size_t i = 0; i < KEY_MAX; i++) {
            unsigned char a = (unsigned char)e->key[i];
            unsigned char b = i < len ? (unsigned char)key[i] : 0;
            diff |= (unsigned)(a ^ b);
        }
        if (diff == 0)
            found = e->role;
    }
    return found;
}
