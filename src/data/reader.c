/*
 * reader.c — interaction files into coordinate form (ember_coo).
 *
 * Formats: delimited text with a header (TSV, CSV with RFC 4180 quotes;
 * columns chosen by name), MovieLens u.data (tabs, no header, four fields)
 * and ratings.dat ("::", no header, four fields), RecBole atomic .inter
 * files (tabs, header "name:type").  The file is mapped (or given as a
 * buffer) and cut into lines and fields without copying; ids go straight
 * into the id maps (only a quoted CSV id with doubled quotes is copied, to
 * undo the doubling).
 *
 * Lines: "\n" or "\r\n"; a UTF-8 byte order mark is skipped; lines of
 * blanks only (spaces, tabs, CR) are ignored everywhere, also before the
 * header.  A CSV quoted field may hold commas and doubled quotes but not a
 * line break (interaction files never need one).  Unquoted fields lose
 * surrounding spaces.  A headed file without a rating column gives rating
 * 1, without a time column timestamp 0.
 *
 * A malformed line is reported as "file:line: why".  With EMBER_BAD_STOP
 * the first one ends the read with EMBER_EFORMAT; with EMBER_BAD_SKIP it is
 * counted (stats->bad, and the first one's line and reason) and the read
 * goes on.  A line is checked whole before any of its ids enters a map, so
 * a skipped line leaves no trace.  On failure out->n is restored to its
 * value at entry (the maps may keep ids of the lines read before it).
 * No input makes the reader crash or read outside its buffer
 * (fuzz/fuzz_reader.c, corpus replayed by tests/data/test_fuzz_replay.c).
 */
#include "data/data.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { COL_USER, COL_ITEM, COL_RATING, COL_TIME, N_ROLES };
static const char *const role_names[N_ROLES] = {"user", "item", "rating", "time"};

#define MAX_FIELDS 256
#define MAX_ID_LEN 256

/* split_line results below zero */
enum { SPLIT_UNTERMINATED = -1, SPLIT_AFTER_QUOTE = -2 };

typedef struct {
    const char *p;
    size_t len;
    bool escaped; /* quoted field holding doubled quotes: p..len still has them */
} field;

typedef struct {
    const char *name; /* file name for messages */
    const ember_read_opts *opts;
    ember_read_stats *st;
    ember_format fmt;
    char delim;       /* '\t', ',', or ':' for "::" */
    int col[N_ROLES]; /* field index of each role, -1 = absent */
    int n_needed;     /* fields a line must have: max col + 1 */
    char scratch[2][MAX_ID_LEN]; /* un-doubled user and item ids */
} reader;

void ember_read_opts_init(ember_read_opts *o)
{
    memset(o, 0, sizeof *o);
}

void ember_coo_free(ember_coo *c)
{
    if (!c)
        return;
    free(c->user);
    free(c->item);
    free(c->rating);
    free(c->ts);
    memset(c, 0, sizeof *c);
}

/* Grows all four arrays to hold need rows.  Each array that grows is kept
 * (so nothing leaks when a later one fails); cap moves only when all did. */
static int coo_reserve(ember_coo *c, size_t need)
{
    if (need <= c->cap)
        return EMBER_OK;
    size_t cap = c->cap ? c->cap : 1024;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return ember_fail(EMBER_ENOMEM, "interaction array too large");
        cap *= 2;
    }
    uint32_t *u = ember_realloc(c->user, cap, sizeof *u);
    if (!u)
        return EMBER_ENOMEM;
    c->user = u;
    uint32_t *i = ember_realloc(c->item, cap, sizeof *i);
    if (!i)
        return EMBER_ENOMEM;
    c->item = i;
    float *r = ember_realloc(c->rating, cap, sizeof *r);
    if (!r)
        return EMBER_ENOMEM;
    c->rating = r;
    int64_t *t = ember_realloc(c->ts, cap, sizeof *t);
    if (!t)
        return EMBER_ENOMEM;
    c->ts = t;
    c->cap = cap;
    return EMBER_OK;
}

int ember_coo_push(ember_coo *c, uint32_t user, uint32_t item, float rating, int64_t ts)
{
    if (c->n == c->cap && coo_reserve(c, c->n + 1))
        return EMBER_ENOMEM;
    c->user[c->n] = user;
    c->item[c->n] = item;
    c->rating[c->n] = rating;
    c->ts[c->n] = ts;
    c->n++;
    return EMBER_OK;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static bool line_is_blank(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!is_blank(p[i]))
            return false;
    return true;
}

static void trim(field *f)
{
    while (f->len && f->p[0] == ' ')
        f->p++, f->len--;
    while (f->len && (f->p[f->len - 1] == ' ' || f->p[f->len - 1] == '\r'))
        f->len--;
}

/* CSV: a field whose first non-space byte is '"' runs to the matching
 * closing quote ("" inside stands for one quote); only spaces may follow
 * it before the comma.  Sets *f to the text between the quotes. */
static int split_quoted(const char *p, size_t len, size_t *pos, field *f)
{
    size_t j = *pos + 1;
    bool escaped = false;
    for (;;) {
        if (j >= len)
            return SPLIT_UNTERMINATED;
        if (p[j] == '"') {
            if (j + 1 < len && p[j + 1] == '"') {
                escaped = true;
                j += 2;
                continue;
            }
            break;
        }
        j++;
    }
    f->p = p + *pos + 1;
    f->len = j - *pos - 1;
    f->escaped = escaped;
    j++;
    while (j < len && p[j] == ' ')
        j++;
    if (j < len && p[j] != ',')
        return SPLIT_AFTER_QUOTE;
    *pos = j;
    return 0;
}

/* Splits one line into fields (at most max + 1 are reported: a count of
 * max + 1 means "more than max").  Returns the field count or SPLIT_*. */
static int split_line(const reader *r, const char *p, size_t len, field *f, int max)
{
    int n = 0;
    size_t i = 0;
    for (;;) {
        if (n > max)
            return n;
        size_t j = i;
        while (r->delim == ',' && j < len && p[j] == ' ')
            j++;
        if (r->delim == ',' && j < len && p[j] == '"') {
            int st = split_quoted(p, len, &j, &f[n]);
            if (st)
                return st;
        } else {
            j = i;
            if (r->delim == ':') {
                while (j < len && !(p[j] == ':' && j + 1 < len && p[j + 1] == ':'))
                    j++;
            } else {
                const char *q = memchr(p + i, r->delim, len - i);
                j = q ? (size_t)(q - p) : len;
            }
            f[n].p = p + i;
            f[n].len = j - i;
            f[n].escaped = false;
            trim(&f[n]);
        }
        n++;
        if (j >= len)
            return n;
        i = j + (r->delim == ':' ? 2 : 1);
    }
}

/* An id field as bytes: doubled quotes un-doubled into scratch slot. */
static bool id_bytes(reader *r, int slot, field *f)
{
    if (!f->escaped)
        return f->len <= MAX_ID_LEN;
    size_t o = 0;
    for (size_t i = 0; i < f->len; i++) {
        if (o >= MAX_ID_LEN)
            return false;
        r->scratch[slot][o++] = f->p[i];
        if (f->p[i] == '"')
            i++; /* split_quoted guarantees the pair */
    }
    f->p = r->scratch[slot];
    f->len = o;
    f->escaped = false;
    return true;
}

/* Copies up to 40 bytes of a field for a message, non-printables as '?'. */
static void show(char *dst, size_t cap, const field *f)
{
    size_t n = EMBER_MIN(f->len, EMBER_MIN(cap - 1, (size_t)40));
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)f->p[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[n] = '\0';
}

static int bad_line(reader *r, size_t lineno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad_line(reader *r, size_t lineno, const char *fmt, ...)
{
    char why[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (r->opts->on_bad == EMBER_BAD_STOP)
        return ember_fail(EMBER_EFORMAT, "%s:%zu: %s", r->name, lineno, why);
    if (r->st->bad++ == 0) {
        r->st->first_bad_line = lineno;
        snprintf(r->st->first_bad, sizeof r->st->first_bad, "%s", why);
    }
    return EMBER_OK;
}

/* Integer fast path; falls back to the strict parser for anything else
 * (a timestamp written as 8.8e8 or 881250949.0 is accepted too, truncated
 * toward zero). */
static bool parse_time(const char *s, size_t len, int64_t *out)
{
    if (len > 0 && len < 19) {
        int64_t v = 0;
        size_t i = s[0] == '-' ? 1 : 0;
        if (i < len) {
            size_t start = i;
            for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
                v = v * 10 + (s[i] - '0');
            if (i == len && i > start) {
                *out = s[0] == '-' ? -v : v;
                return true;
            }
        }
    }
    if (ember_parse_i64(s, len, out))
        return true;
    double d;
    if (ember_parse_f64(s, len, &d) && d > -9.2e18 && d < 9.2e18) {
        *out = (int64_t)d;
        return true;
    }
    return false;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Fast paths "d" and "d.d" give exactly what strtod then (float) would. */
static bool parse_rating(const char *s, size_t len, float *out)
{
    if (len == 1 && is_digit(s[0])) {
        *out = (float)(s[0] - '0');
        return true;
    }
    if (len == 3 && is_digit(s[0]) && s[1] == '.' && is_digit(s[2])) {
        *out = (float)((double)((s[0] - '0') * 10 + (s[2] - '0')) / 10.0);
        return true;
    }
    return ember_parse_f32(s, len, out);
}

static int find_col(const field *hdr, int n, const char *name, size_t name_len)
{
    for (int i = 0; i < n; i++)
        if (hdr[i].len == name_len && memcmp(hdr[i].p, name, name_len) == 0)
            return i;
    return -1;
}

/* Header names without RecBole's ":type" suffix (quotes and spaces are
 * already gone: split_line). */
static void header_names(reader *r, field *hdr, int n)
{
    if (r->fmt != EMBER_FMT_ATOMIC)
        return;
    for (int i = 0; i < n; i++) {
        const char *c = hdr[i].len ? memchr(hdr[i].p, ':', hdr[i].len) : NULL;
        if (c)
            hdr[i].len = (size_t)(c - hdr[i].p);
    }
}

static void trim_span(const char **s, size_t *len)
{
    while (*len && **s == ' ')
        (*s)++, (*len)--;
    while (*len && (*s)[*len - 1] == ' ')
        (*len)--;
}

/* Columns from the header: the defaults (user|user_id|userId,
 * item|item_id|itemId|movieId, rating|label, timestamp|time), then "--cols" entries
 * "role=column" separated by commas (roles user, item, rating, time or
 * timestamp; spaces around names ignored; "rating=" or "time=" drops that
 * column, so rating 1 / timestamp 0 are used). */
static int map_columns(reader *r, const field *hdr, int n)
{
    static const char *const defaults[N_ROLES][5] = {
        {"user", "user_id", "userId", NULL},
        {"item", "item_id", "itemId", "movieId", NULL},
        {"rating", "label", NULL, NULL},
        {"timestamp", "time", NULL, NULL},
    };
    for (int k = 0; k < N_ROLES; k++) {
        r->col[k] = -1;
        for (int d = 0; defaults[k][d] && r->col[k] < 0; d++)
            r->col[k] = find_col(hdr, n, defaults[k][d], strlen(defaults[k][d]));
    }
    const char *s = r->opts->cols;
    while (s && *s) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        if (!eq)
            return ember_fail(EMBER_EINVAL, "--cols: '%.*s' is not role=column", (int)len, s);
        const char *rname = s, *cname = eq + 1;
        size_t rl = (size_t)(eq - s), cl = len - rl - 1;
        trim_span(&rname, &rl);
        trim_span(&cname, &cl);
        int role = -1;
        for (int k = 0; k < N_ROLES; k++)
            if (strlen(role_names[k]) == rl && memcmp(role_names[k], rname, rl) == 0)
                role = k;
        if (rl == 9 && memcmp(rname, "timestamp", 9) == 0)
            role = COL_TIME;
        if (role < 0)
            return ember_fail(EMBER_EINVAL,
                              "--cols: unknown role '%.*s' (user, item, rating, time)", (int)rl,
                              rname);
        if (cl == 0) {
            if (role == COL_USER || role == COL_ITEM)
                return ember_fail(EMBER_EINVAL, "--cols: the %s column cannot be dropped",
                                  role_names[role]);
            r->col[role] = -1;
        } else {
            r->col[role] = find_col(hdr, n, cname, cl);
            if (r->col[role] < 0)
                return ember_fail(EMBER_EFORMAT, "%s: no column '%.*s' in the header", r->name,
                                  (int)cl, cname);
        }
        s = comma ? comma + 1 : NULL;
    }
    if (r->col[COL_USER] < 0 || r->col[COL_ITEM] < 0) {
        const char *what = r->col[COL_USER] < 0 ? "user" : "item";
        return ember_fail(EMBER_EFORMAT,
                          "%s: the header names no %s column (choose one with --cols %s=NAME)",
                          r->name, what, what);
    }
    if (r->col[COL_USER] == r->col[COL_ITEM])
        return ember_fail(EMBER_EINVAL, "%s: user and item are the same column", r->name);
    return EMBER_OK;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The format of a file from its name and its first non-blank line. */
static ember_format guess_format(const char *name, const char *first, size_t len)
{
    if (ends_with(name, ".inter"))
        return EMBER_FMT_ATOMIC;
    if (len >= 2 && memmem(first, len, "::", 2))
        return EMBER_FMT_ML_DAT;
    if (ends_with(name, ".csv"))
        return EMBER_FMT_CSV;
    const char *tab = len ? memchr(first, '\t', len) : NULL;
    if (tab) {
        /* u.data: a first line that starts with a number before its tab */
        bool all_digits = tab > first;
        for (const char *q = first; q < tab; q++)
            all_digits &= is_digit(*q);
        if (all_digits)
            return EMBER_FMT_UDATA;
        /* "user_id:token\titem_id:token..." */
        const char *c = memchr(first, ':', len);
        if (c && c < tab)
            return EMBER_FMT_ATOMIC;
        return EMBER_FMT_TSV;
    }
    if (len && memchr(first, ',', len))
        return EMBER_FMT_CSV;
    return EMBER_FMT_TSV;
}

/* One data line: every field is checked before the ids are looked up or
 * interned, so a bad line adds nothing to the maps. */
static int parse_row(reader *r, field *f, int nf, size_t lineno, ember_idmap *users,
                     ember_idmap *items, ember_coo *out)
{
    if (nf == SPLIT_UNTERMINATED)
        return bad_line(r, lineno, "unterminated quote");
    if (nf == SPLIT_AFTER_QUOTE)
        return bad_line(r, lineno, "text after a closing quote");
    if (nf < r->n_needed)
        return bad_line(r, lineno, "expected %d fields, found %d", r->n_needed, nf);
    char shown[48];
    field fid[2] = {f[r->col[COL_USER]], f[r->col[COL_ITEM]]};
    for (int k = 0; k < 2; k++) {
        const char *what = role_names[k];
        if (!id_bytes(r, k, &fid[k]))
            return bad_line(r, lineno, "%s id longer than %d bytes", what, MAX_ID_LEN);
        if (fid[k].len == 0)
            return bad_line(r, lineno, "empty %s id", what);
        if (memchr(fid[k].p, '\0', fid[k].len))
            return bad_line(r, lineno, "NUL byte in %s id", what);
    }
    float rating = 1.0f;
    int64_t ts = 0;
    if (r->col[COL_RATING] >= 0) {
        const field *fr = &f[r->col[COL_RATING]];
        if (fr->escaped || !parse_rating(fr->p, fr->len, &rating)) {
            show(shown, sizeof shown, fr);
            return bad_line(r, lineno, "rating '%s' is not a number", shown);
        }
    }
    if (r->col[COL_TIME] >= 0) {
        const field *ft = &f[r->col[COL_TIME]];
        if (ft->escaped || !parse_time(ft->p, ft->len, &ts)) {
            show(shown, sizeof shown, ft);
            return bad_line(r, lineno, "timestamp '%s' is not a number", shown);
        }
    }
    uint32_t u, it;
    if (r->opts->fixed_ids) {
        int64_t x = ember_idmap_find(users, fid[0].p, fid[0].len);
        int64_t y = ember_idmap_find(items, fid[1].p, fid[1].len);
        if (x < 0 || y < 0) {
            r->st->unknown++;
            return EMBER_OK;
        }
        u = (uint32_t)x;
        it = (uint32_t)y;
    } else {
        int st = ember_idmap_intern(users, fid[0].p, fid[0].len, &u);
        if (st == EMBER_OK)
            st = ember_idmap_intern(items, fid[1].p, fid[1].len, &it);
        if (st)
            return st;
    }
    if (ember_coo_push(out, u, it, rating, ts))
        return EMBER_ENOMEM;
    r->st->rows++;
    return EMBER_OK;
}

/* The line starting at pos: its length without "\r" and the start of the
 * next one. */
static size_t line_at(const char *buf, size_t len, size_t pos, size_t *next)
{
    const char *nl = memchr(buf + pos, '\n', len - pos);
    size_t end = nl ? (size_t)(nl - buf) : len;
    *next = nl ? end + 1 : len;
    size_t l = end - pos;
    if (l && buf[pos + l - 1] == '\r')
        l--;
    return l;
}

static int read_lines(reader *r, const char *buf, size_t len, field *f, ember_idmap *users,
                      ember_idmap *items, ember_coo *out)
{
    /* first non-blank line: it decides the format and may be the header */
    size_t pos = 0, next = 0, lineno = 0, first_len = 0;
    bool found = false;
    while (pos < len) {
        first_len = line_at(buf, len, pos, &next);
        lineno++;
        if (!line_is_blank(buf + pos, first_len)) {
            found = true;
            break;
        }
        pos = next;
    }
    const ember_read_opts *opts = r->opts;
    r->fmt = opts->format != EMBER_FMT_AUTO
                 ? opts->format
                 : guess_format(r->name, found ? buf + pos : "", found ? first_len : 0);
    r->delim = r->fmt == EMBER_FMT_CSV ? ',' : r->fmt == EMBER_FMT_ML_DAT ? ':' : '\t';
    bool has_header =
        r->fmt == EMBER_FMT_TSV || r->fmt == EMBER_FMT_CSV || r->fmt == EMBER_FMT_ATOMIC;

    if (has_header) {
        if (!found)
            return ember_fail(EMBER_EFORMAT, "%s: empty file (a header line is expected)",
                              r->name);
        int nh = split_line(r, buf + pos, first_len, f, MAX_FIELDS);
        if (nh == SPLIT_UNTERMINATED || nh == SPLIT_AFTER_QUOTE)
            return ember_fail(EMBER_EFORMAT, "%s:%zu: header: %s", r->name, lineno,
                              nh == SPLIT_UNTERMINATED ? "unterminated quote"
                                                       : "text after a closing quote");
        if (nh > MAX_FIELDS)
            return ember_fail(EMBER_EFORMAT, "%s:%zu: header has more than %d columns",
                              r->name, lineno, MAX_FIELDS);
        header_names(r, f, nh);
        int st = map_columns(r, f, nh);
        if (st)
            return st;
        pos = next;
    } else {
        if (opts->cols && opts->cols[0])
            return ember_fail(EMBER_EINVAL, "%s: --cols needs a file with a header line",
                              r->name);
        r->col[COL_USER] = 0;
        r->col[COL_ITEM] = 1;
        r->col[COL_RATING] = 2;
        r->col[COL_TIME] = 3;
        lineno = 0;
        pos = 0;
    }
    r->n_needed = 0;
    for (int k = 0; k < N_ROLES; k++)
        r->n_needed = EMBER_MAX(r->n_needed, r->col[k] + 1);

    /* rough pre-size: one row per ~24 bytes */
    if (coo_reserve(out, out->n + (len - pos) / 24 + 16))
        return EMBER_ENOMEM;
    while (pos < len) {
        size_t l = line_at(buf, len, pos, &next);
        lineno++;
        if (!line_is_blank(buf + pos, l)) {
            r->st->lines++;
            int nf = split_line(r, buf + pos, l, f, MAX_FIELDS);
            int st = parse_row(r, f, nf, lineno, users, items, out);
            if (st)
                return st;
        }
        pos = next;
    }
    return EMBER_OK;
}

int ember_coo_read_mem(const char *name, const char *buf, size_t len, const ember_read_opts *opts,
                       ember_idmap *users, ember_idmap *items, ember_coo *out,
                       ember_read_stats *stats)
{
    ember_read_opts defaults;
    ember_read_stats local;
    if (!opts) {
        ember_read_opts_init(&defaults);
        opts = &defaults;
    }
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (!users || !items || !out)
        return ember_fail(EMBER_EINVAL, "ember_coo_read: maps and output are required");
    if (!buf && len)
        return ember_fail(EMBER_EINVAL, "ember_coo_read: no buffer");
    if ((unsigned)opts->format > EMBER_FMT_ATOMIC)
        return ember_fail(EMBER_EINVAL, "ember_coo_read: unknown format %d", (int)opts->format);
    if (opts->on_bad != EMBER_BAD_STOP && opts->on_bad != EMBER_BAD_SKIP)
        return ember_fail(EMBER_EINVAL, "ember_coo_read: unknown bad-line policy %d",
                          (int)opts->on_bad);
    if (!buf)
        buf = "";
    reader r = {.name = name ? name : "<buffer>", .opts = opts, .st = stats};
    /* a UTF-8 byte order mark is not part of the first line */
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        buf += 3, len -= 3;
    field *f = ember_alloc(MAX_FIELDS + 1, sizeof *f);
    if (!f)
        return EMBER_ENOMEM;
    size_t n0 = out->n;
    int st = read_lines(&r, buf, len, f, users, items, out);
    free(f);
    if (st)
        out->n = n0;
    return st;
}

int ember_coo_read(const char *path, const ember_read_opts *opts, ember_idmap *users,
                   ember_idmap *items, ember_coo *out, ember_read_stats *stats)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ember_fail(EMBER_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ember_fail(EMBER_EIO, "%s: not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    const char *buf = "";
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return ember_fail(EMBER_EIO, "%s: cannot map: %s", path, strerror(e));
        }
        madvise(map, len, MADV_SEQUENTIAL);
        buf = map;
    }
    close(fd);
    int st = ember_coo_read_mem(path, buf, len, opts, users, items, out, stats);
    if (map)
        munmap(map, len);
    return st;
}
