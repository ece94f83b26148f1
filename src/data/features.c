/*
 * features.c — side features of items or users (titles, genres, ages...).
 *
 * Reads a RecBole atomic file (.item / .user: tab separated, header
 * "name:type" with type token, token_seq, float or float_seq) or a plain
 * TSV with a header of names, whose column types are guessed (every
 * non-empty value a number -> float, else token).  Rows are keyed by the
 * id column and mapped through an existing idmap: rows for ids outside the
 * map are skipped and counted, an id given twice is an error.
 *
 * The file is read whole (at most 1 GiB, lines at most 1 MiB) and cut into
 * lines and tab-separated fields in place.  Values are collected per row in
 * file order, then each column is laid out by entity index (CSR: ptr, tok
 * or val).  Tokens are interned into one vocabulary per column; a token_seq
 * value is split on spaces and kept as its sorted, unique token indices,
 * and the raw text of every token / token_seq value is kept too, so that
 * "Toy Story" can be printed as written.  An empty field is a missing value
 * (no entries, text NULL).
 *
 * A malformed file (wrong field count, a bad number, a bad header) gives
 * EMBER_EFORMAT with "file:line: why"; no input makes the loader crash.
 */
#include "data/data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FEAT_MAX_COLS 256
#define FEAT_MAX_LINE ((size_t)1 << 20)
#define FEAT_MAX_FILE ((size_t)1 << 30)
#define NO_ROW UINT32_MAX

typedef struct {
    const char *p;
    size_t len;
} span;

/* Per column, while rows are read: row r's entries are [start[r],
 * start[r+1]) of the column's tok or val array. */
typedef struct {
    uint64_t *start;
    size_t start_cap;
    size_t n, cap; /* entries in tok or val */
} col_build;

typedef struct {
    const char *path;
    char *buf;
    size_t len, pos, lineno;
} line_reader;

static const char *const type_names[] = {
    [FEAT_TOKEN] = "token",
    [FEAT_TOKEN_SEQ] = "token_seq",
    [FEAT_FLOAT] = "float",
    [FEAT_FLOAT_SEQ] = "float_seq",
};

static void trim(span *s)
{
    while (s->len && (s->p[0] == ' ' || s->p[0] == '\r'))
        s->p++, s->len--;
    while (s->len && (s->p[s->len - 1] == ' ' || s->p[s->len - 1] == '\r'))
        s->len--;
}

static int read_whole(const char *path, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ember_fail(EMBER_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ember_fail(EMBER_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > FEAT_MAX_FILE) {
        close(fd);
        return ember_fail(EMBER_ETOOBIG, "%s: feature files are limited to 1 GiB", path);
    }
    size_t size = (size_t)sb.st_size;
    char *buf = ember_alloc(size + 1, 1);
    if (!buf) {
        close(fd);
        return EMBER_ENOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return ember_fail(EMBER_EIO, "%s: read failed: %s", path, strerror(e));
        }
        if (r == 0)
            break; /* the file shrank: use what is there */
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *out_len = got;
    return EMBER_OK;
}

/* The next line (without "\n" / "\r\n"); false at the end.  Errors (line
 * too long, NUL byte) come back through *st. */
static bool next_line(line_reader *r, span *line, int *st)
{
    *st = EMBER_OK;
    if (r->pos >= r->len)
        return false;
    const char *p = r->buf + r->pos;
    const char *nl = memchr(p, '\n', r->len - r->pos);
    size_t l = nl ? (size_t)(nl - p) : r->len - r->pos;
    r->pos += l + 1;
    r->lineno++;
    if (l && p[l - 1] == '\r')
        l--;
    if (l > FEAT_MAX_LINE) {
        *st = ember_fail(EMBER_EFORMAT, "%s:%zu: line longer than %zu bytes", r->path, r->lineno,
                         FEAT_MAX_LINE);
        return false;
    }
    if (memchr(p, '\0', l)) {
        *st = ember_fail(EMBER_EFORMAT, "%s:%zu: NUL byte in line", r->path, r->lineno);
        return false;
    }
    line->p = p;
    line->len = l;
    return true;
}

/* Cuts a line at tabs into at most max fields; returns the field count
 * (max + 1 means "more than max"). */
static size_t split_tabs(span line, span *f, size_t max)
{
    size_t n = 0, i = 0;
    for (;;) {
        if (n == max)
            return max + 1;
        const char *t = memchr(line.p + i, '\t', line.len - i);
        size_t j = t ? (size_t)(t - line.p) : line.len;
        f[n].p = line.p + i;
        f[n].len = j - i;
        n++;
        if (!t)
            return n;
        i = j + 1;
    }
}

/* The next space-separated word of s from *i, or false. */
static bool next_word(span s, size_t *i, span *w)
{
    while (*i < s.len && s.p[*i] == ' ')
        (*i)++;
    if (*i >= s.len)
        return false;
    size_t j = *i;
    while (j < s.len && s.p[j] != ' ')
        j++;
    w->p = s.p + *i;
    w->len = j - *i;
    *i = j;
    return true;
}

static bool is_number(span v)
{
    float x;
    return ember_parse_f32(v.p, v.len, &x);
}

void data_features_free(data_features *f)
{
    if (!f)
        return;
    for (size_t c = 0; c < f->n_cols; c++) {
        data_feature *col = &f->cols[c];
        free(col->name);
        free(col->ptr);
        free(col->tok);
        free(col->val);
        ember_idmap_free(col->vocab);
        if (col->text)
            for (size_t e = 0; e < f->n_entities; e++)
                free(col->text[e]);
        free(col->text);
    }
    free(f->cols);
    memset(f, 0, sizeof *f);
}

const data_feature *data_features_col(const data_features *f, const char *name)
{
    if (!f || !name)
        return NULL;
    for (size_t c = 0; c < f->n_cols; c++)
        if (strcmp(f->cols[c].name, name) == 0)
            return &f->cols[c];
    return NULL;
}

/* Header: names (and types when every column is typed "name:type"). */
static int parse_header(const line_reader *r, span *hdr, size_t n, data_feat_type *type,
                        bool *typed)
{
    size_t n_typed = 0;
    for (size_t k = 0; k < n; k++) {
        trim(&hdr[k]);
        const char *colon = memchr(hdr[k].p, ':', hdr[k].len);
        type[k] = FEAT_TOKEN;
        if (!colon)
            continue;
        span t = {colon + 1, hdr[k].len - (size_t)(colon + 1 - hdr[k].p)};
        for (size_t ty = 0; ty < EMBER_ARRAY_LEN(type_names); ty++) {
            if (t.len == strlen(type_names[ty]) && memcmp(t.p, type_names[ty], t.len) == 0) {
                type[k] = (data_feat_type)ty;
                n_typed++;
                break;
            }
        }
    }
    *typed = n_typed == n;
    if (n_typed > 0 && !*typed)
        return ember_fail(EMBER_EFORMAT,
                          "%s:1: header mixes typed (name:type) and untyped column names", r->path);
    for (size_t k = 0; k < n; k++) {
        if (*typed)
            hdr[k].len = (size_t)((const char *)memchr(hdr[k].p, ':', hdr[k].len) - hdr[k].p);
        if (hdr[k].len == 0)
            return ember_fail(EMBER_EFORMAT, "%s:1: column %zu has no name", r->path, k + 1);
        for (size_t j = 0; j < k; j++)
            if (hdr[j].len == hdr[k].len && memcmp(hdr[j].p, hdr[k].p, hdr[k].len) == 0)
                return ember_fail(EMBER_EFORMAT, "%s:1: column '%.*s' appears twice", r->path,
                                  (int)hdr[k].len, hdr[k].p);
    }
    return EMBER_OK;
}

static int field_count_error(const line_reader *r, size_t want, size_t got)
{
    if (got > FEAT_MAX_COLS)
        return ember_fail(EMBER_EFORMAT, "%s:%zu: expected %zu fields, found more than %d",
                          r->path, r->lineno, want, FEAT_MAX_COLS);
    return ember_fail(EMBER_EFORMAT, "%s:%zu: expected %zu fields, found %zu", r->path, r->lineno,
                      want, got);
}

/* Untyped header: a column is float when it has a value and every
 * non-empty value is a number.  Checks field counts on the way. */
static int guess_types(line_reader r, span *f, size_t n, size_t id_k, data_feat_type *type)
{
    bool *numeric = ember_alloc(n, sizeof *numeric);
    bool *seen = ember_calloc(n, sizeof *seen);
    if (!numeric || !seen) {
        free(numeric);
        free(seen);
        return EMBER_ENOMEM;
    }
    for (size_t k = 0; k < n; k++)
        numeric[k] = true;
    span line;
    int st;
    while (next_line(&r, &line, &st)) {
        if (line.len == 0)
            continue;
        size_t nf = split_tabs(line, f, FEAT_MAX_COLS);
        if (nf != n) {
            st = field_count_error(&r, n, nf);
            break;
        }
        for (size_t k = 0; k < n; k++) {
            trim(&f[k]);
            if (k == id_k || f[k].len == 0 || !numeric[k])
                continue;
            seen[k] = true;
            numeric[k] = is_number(f[k]);
        }
    }
    for (size_t k = 0; k < n; k++)
        type[k] = numeric[k] && seen[k] ? FEAT_FLOAT : FEAT_TOKEN;
    free(numeric);
    free(seen);
    return st;
}

/* Appends row's value v of column col (entries go to col's tok / val). */
static int add_value(const line_reader *r, data_feature *col, col_build *b, uint32_t e, span v)
{
    trim(&v);
    if (v.len == 0)
        return EMBER_OK;
    size_t first = b->n;
    if (col->type == FEAT_TOKEN || col->type == FEAT_TOKEN_SEQ) {
        span w = v; /* a token is the whole value, a token_seq one word at a time */
        size_t i = 0;
        while (col->type == FEAT_TOKEN ? i++ == 0 : next_word(v, &i, &w)) {
            uint32_t idx;
            if (ember_grow((void **)&col->tok, &b->cap, b->n + 1, sizeof *col->tok))
                return EMBER_ENOMEM;
            int st = ember_idmap_intern(col->vocab, w.p, w.len, &idx);
            if (st)
                return st;
            col->tok[b->n++] = idx;
        }
        if (col->type == FEAT_TOKEN_SEQ && b->n - first > 1) {
            qsort(col->tok + first, b->n - first, sizeof *col->tok, ember_cmp_u32);
            size_t o = first + 1;
            for (size_t k = first + 1; k < b->n; k++)
                if (col->tok[k] != col->tok[o - 1])
                    col->tok[o++] = col->tok[k];
            b->n = o;
        }
        char *text = ember_alloc(v.len + 1, 1);
        if (!text)
            return EMBER_ENOMEM;
        memcpy(text, v.p, v.len);
        text[v.len] = '\0';
        col->text[e] = text;
        return EMBER_OK;
    }
    span w = v;
    size_t i = 0;
    while (col->type == FEAT_FLOAT ? i++ == 0 : next_word(v, &i, &w)) {
        float x;
        if (!ember_parse_f32(w.p, w.len, &x))
            return ember_fail(EMBER_EFORMAT, "%s:%zu: column '%s': '%.*s' is not a number",
                              r->path, r->lineno, col->name, (int)EMBER_MIN(w.len, (size_t)40),
                              w.p);
        if (ember_grow((void **)&col->val, &b->cap, b->n + 1, sizeof *col->val))
            return EMBER_ENOMEM;
        col->val[b->n++] = x;
    }
    return EMBER_OK;
}

/* Lays a column out by entity: ptr over n_ent entities from the per-row
 * starts and row_of. */
static int layout_by_entity(data_feature *col, const col_build *b, const uint32_t *row_of,
                            size_t n_ent)
{
    bool is_tok = col->type == FEAT_TOKEN || col->type == FEAT_TOKEN_SEQ;
    col->ptr = ember_alloc(n_ent + 1, sizeof *col->ptr);
    uint32_t *tok = is_tok ? ember_alloc(b->n, sizeof *tok) : NULL;
    float *val = is_tok ? NULL : ember_alloc(b->n, sizeof *val);
    if (!col->ptr || (is_tok ? !tok : !val)) {
        free(tok);
        free(val);
        return EMBER_ENOMEM;
    }
    uint64_t o = 0;
    col->ptr[0] = 0;
    for (size_t e = 0; e < n_ent; e++) {
        uint32_t r = row_of[e];
        if (r != NO_ROW) {
            for (uint64_t k = b->start[r]; k < b->start[r + 1]; k++, o++) {
                if (is_tok)
                    tok[o] = col->tok[k];
                else
                    val[o] = col->val[k];
            }
        }
        col->ptr[e + 1] = o;
    }
    if (is_tok) {
        free(col->tok);
        col->tok = tok;
    } else {
        free(col->val);
        col->val = val;
    }
    return EMBER_OK;
}

/* Reads the data lines into f's columns (row order), then lays them out. */
static int read_rows(line_reader *r, span *fld, size_t n, size_t id_k, const ember_idmap *ids,
                     data_features *f, col_build *b)
{
    size_t n_ent = f->n_entities;
    uint32_t *row_of = ember_alloc(n_ent, sizeof *row_of);
    if (!row_of)
        return EMBER_ENOMEM;
    for (size_t e = 0; e < n_ent; e++)
        row_of[e] = NO_ROW;
    size_t n_rows = 0;
    span line;
    int st = EMBER_OK;
    while (st == EMBER_OK && next_line(r, &line, &st)) {
        if (line.len == 0)
            continue;
        size_t nf = split_tabs(line, fld, FEAT_MAX_COLS);
        if (nf != n) {
            st = field_count_error(r, n, nf);
            break;
        }
        span id = fld[id_k];
        trim(&id);
        if (id.len == 0) {
            st = ember_fail(EMBER_EFORMAT, "%s:%zu: empty id", r->path, r->lineno);
            break;
        }
        int64_t e = ember_idmap_find(ids, id.p, id.len);
        if (e < 0) {
            f->skipped_unknown++;
            continue;
        }
        if (row_of[e] != NO_ROW) {
            st = ember_fail(EMBER_EFORMAT, "%s:%zu: id '%.*s' appears a second time", r->path,
                            r->lineno, (int)EMBER_MIN(id.len, (size_t)64), id.p);
            break;
        }
        row_of[e] = (uint32_t)n_rows;
        for (size_t k = 0, c = 0; k < n && st == EMBER_OK; k++) {
            if (k == id_k)
                continue;
            col_build *cb = &b[c];
            if (ember_grow((void **)&cb->start, &cb->start_cap, n_rows + 2, sizeof *cb->start)) {
                st = EMBER_ENOMEM;
                break;
            }
            cb->start[n_rows] = cb->n;
            st = add_value(r, &f->cols[c], cb, (uint32_t)e, fld[k]);
            cb->start[n_rows + 1] = cb->n;
            c++;
        }
        n_rows++;
    }
    for (size_t c = 0; c < f->n_cols && st == EMBER_OK; c++) {
        if (n_rows == 0 &&
            ember_grow((void **)&b[c].start, &b[c].start_cap, 1, sizeof *b[c].start)) {
            st = EMBER_ENOMEM;
            break;
        }
        if (n_rows == 0)
            b[c].start[0] = 0;
        st = layout_by_entity(&f->cols[c], &b[c], row_of, n_ent);
    }
    free(row_of);
    return st;
}

int data_features_load(const char *path, const char *id_col, const ember_idmap *ids,
                       data_features *out)
{
    memset(out, 0, sizeof *out);
    if (!path || !ids)
        return ember_fail(EMBER_EINVAL, "features: a path and an id map are required");
    line_reader r = {.path = path};
    int st = read_whole(path, &r.buf, &r.len);
    if (st)
        return st;
    if (r.len >= 3 && memcmp(r.buf, "\xEF\xBB\xBF", 3) == 0)
        r.pos = 3;
    span *fld = ember_alloc(FEAT_MAX_COLS + 1, sizeof *fld);
    span *hdr = ember_alloc(FEAT_MAX_COLS + 1, sizeof *hdr);
    data_feat_type *type = ember_alloc(FEAT_MAX_COLS + 1, sizeof *type);
    col_build *b = NULL;
    data_features f = {.n_entities = ember_idmap_size(ids)};
    span line;
    size_t n = 0, id_k = 0;
    bool typed = false;
    if (!fld || !hdr || !type) {
        st = EMBER_ENOMEM;
        goto done;
    }
    if (!next_line(&r, &line, &st)) {
        if (st == EMBER_OK)
            st = ember_fail(EMBER_EFORMAT, "%s: empty file (a header line is expected)", path);
        goto done;
    }
    n = split_tabs(line, hdr, FEAT_MAX_COLS);
    if (n > FEAT_MAX_COLS) {
        st = ember_fail(EMBER_EFORMAT, "%s:1: more than %d columns", path, FEAT_MAX_COLS);
        goto done;
    }
    if ((st = parse_header(&r, hdr, n, type, &typed)))
        goto done;
    if (id_col) {
        id_k = n;
        for (size_t k = 0; k < n; k++)
            if (hdr[k].len == strlen(id_col) && memcmp(hdr[k].p, id_col, hdr[k].len) == 0)
                id_k = k;
        if (id_k == n) {
            st = ember_fail(EMBER_EFORMAT, "%s: no column '%s' in the header", path, id_col);
            goto done;
        }
    }
    if (!typed && (st = guess_types(r, fld, n, id_k, type)))
        goto done;

    f.n_cols = n - 1;
    f.cols = ember_calloc(n, sizeof *f.cols);
    b = ember_calloc(n, sizeof *b);
    if (!f.cols || !b) {
        f.n_cols = 0;
        st = EMBER_ENOMEM;
        goto done;
    }
    for (size_t k = 0, c = 0; k < n; k++) {
        if (k == id_k)
            continue;
        data_feature *col = &f.cols[c++];
        col->type = type[k];
        col->name = ember_alloc(hdr[k].len + 1, 1);
        if (!col->name) {
            st = EMBER_ENOMEM;
            goto done;
        }
        memcpy(col->name, hdr[k].p, hdr[k].len);
        col->name[hdr[k].len] = '\0';
        if (col->type == FEAT_TOKEN || col->type == FEAT_TOKEN_SEQ) {
            col->vocab = ember_idmap_new();
            col->text = ember_calloc(f.n_entities + 1, sizeof *col->text);
            if (!col->vocab || !col->text) {
                st = EMBER_ENOMEM;
                goto done;
            }
        }
    }
    st = read_rows(&r, fld, n, id_k, ids, &f, b);
done:
    if (b)
        for (size_t c = 0; c < n; c++)
            free(b[c].start);
    free(b);
    free(fld);
    free(hdr);
    free(type);
    free(r.buf);
    if (st) {
        data_features_free(&f);
        return st;
    }
    *out = f;
    return EMBER_OK;
}
