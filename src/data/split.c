/*
 * split.c — train / valid / test splits and k folds of a coo, seeded and
 * reproducible (PROTOCOL.md "Data and splits").
 *
 * Every splitter works on row indices.  Rows are grouped by user with a
 * stable counting sort (so a user's rows keep file order), and put in time
 * order with a stable LSD radix sort on the timestamp (so equal times keep
 * file order); both are O(n).  A splitter marks each row's part and then
 * lists the parts in file order.
 *
 * Shuffles are Fisher-Yates in CPython's form (for i = n-1 .. 1, j =
 * below(i + 1), swap), driven either by ember's xoshiro256** or, for
 * --compat python, by CPython's MT19937 (Matsumoto & Nishimura 1998,
 * mt19937ar.c init_by_array; CPython Modules/_randommodule.c and
 * Lib/random.py _randbelow_with_getrandbits), which reproduces
 * ../shared/bench/make_splits.py exactly.  Part sizes use round half to
 * even, as Python's round().
 */
#include "data/data.h"
#include "data/split_compat.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { PART_TRAIN = 0, PART_VALID = 1, PART_TEST = 2 };

/* ------------------------------------------------------ CPython MT19937 */

#define MT_N 624
#define MT_M 397

static void mt_init_genrand(data_pyrandom *r, uint32_t s)
{
    r->mt[0] = s;
    for (int i = 1; i < MT_N; i++)
        r->mt[i] = 1812433253u * (r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) + (uint32_t)i;
    r->mti = MT_N;
}

static void mt_init_by_array(data_pyrandom *r, const uint32_t *key, int len)
{
    mt_init_genrand(r, 19650218u);
    int i = 1, j = 0;
    for (int k = MT_N > len ? MT_N : len; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1664525u)) + key[j] +
                   (uint32_t)j;
        i++;
        j++;
        if (i >= MT_N) {
            r->mt[0] = r->mt[MT_N - 1];
            i = 1;
        }
        if (j >= len)
            j = 0;
    }
    for (int k = MT_N - 1; k; k--) {
        r->mt[i] = (r->mt[i] ^ ((r->mt[i - 1] ^ (r->mt[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
        i++;
        if (i >= MT_N) {
            r->mt[0] = r->mt[MT_N - 1];
            i = 1;
        }
    }
    r->mt[0] = 0x80000000u;
}

static uint32_t mt_next(data_pyrandom *r)
{
    static const uint32_t mag01[2] = {0u, 0x9908b0dfu};
    uint32_t y;
    if (r->mti >= MT_N) {
        int kk;
        for (kk = 0; kk < MT_N - MT_M; kk++) {
            y = (r->mt[kk] & 0x80000000u) | (r->mt[kk + 1] & 0x7fffffffu);
            r->mt[kk] = r->mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 1u];
        }
        for (; kk < MT_N - 1; kk++) {
            y = (r->mt[kk] & 0x80000000u) | (r->mt[kk + 1] & 0x7fffffffu);
            r->mt[kk] = r->mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 1u];
        }
        y = (r->mt[MT_N - 1] & 0x80000000u) | (r->mt[0] & 0x7fffffffu);
        r->mt[MT_N - 1] = r->mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 1u];
        r->mti = 0;
    }
    y = r->mt[r->mti++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= (y >> 18);
    return y;
}

void data_pyrandom_seed(data_pyrandom *r, uint64_t seed)
{
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    mt_init_by_array(r, key, key[1] ? 2 : 1);
}

uint64_t data_pyrandom_getrandbits(data_pyrandom *r, int k)
{
    if (k <= 0)
        return 0;
    if (k <= 32)
        return mt_next(r) >> (32 - k);
    if (k > 64)
        k = 64;
    /* words least significant first; the last one keeps its top bits */
    uint64_t lo = mt_next(r);
    uint64_t hi = mt_next(r) >> (64 - k);
    return lo | hi << 32;
}

uint64_t data_pyrandom_below(data_pyrandom *r, uint64_t n)
{
    if (n == 0)
        return 0;
    int k = 64 - __builtin_clzll(n); /* n.bit_length(): n = 1 draws too, as in CPython */
    uint64_t x;
    do
        x = data_pyrandom_getrandbits(r, k);
    while (x >= n);
    return x;
}

/* ---------------------------------------------------------- shuffling */

typedef struct {
    bool python;
    ember_rng x;
    data_pyrandom mt;
} split_rng;

static void split_rng_seed(split_rng *r, bool python, uint64_t seed)
{
    r->python = python;
    if (python)
        data_pyrandom_seed(&r->mt, seed);
    else
        ember_rng_seed(&r->x, seed);
}

static size_t split_rng_below(split_rng *r, size_t n)
{
    return (size_t)(r->python ? data_pyrandom_below(&r->mt, n) : ember_rng_below(&r->x, n));
}

/* random.shuffle: for i in reversed(range(1, n)): j = below(i + 1). */
static void shuffle_rows(split_rng *r, size_t *a, size_t n)
{
    for (size_t i = n; i-- > 1;) {
        size_t j = split_rng_below(r, i + 1);
        size_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* What shuffle_rows draws from the generator for n elements, without an
 * array (to replay make_splits.py's earlier shuffles). */
static void shuffle_skip(split_rng *r, size_t n)
{
    for (size_t i = n; i-- > 1;)
        (void)split_rng_below(r, i + 1);
}

/* ------------------------------------------------------ row orderings */

/* Stable counting sort of rows (in the order of `in`, identity when NULL)
 * by user: user u's rows are rows[ptr[u] .. ptr[u+1]).  User indices must
 * be dense (they come from an idmap). */
static int group_by_user(const ember_coo *c, const size_t *in, size_t **ptr_out, size_t **rows_out,
                         size_t *n_users_out)
{
    size_t n = c->n;
    uint32_t max = 0;
    for (size_t k = 0; k < n; k++)
        max = EMBER_MAX(max, c->user[k]);
    if (n && (uint64_t)max >= 4 * (uint64_t)n + 1024)
        return ember_fail(EMBER_EINVAL,
                          "split: user indices are not dense (max %u for %zu rows); read the "
                          "interactions through an idmap",
                          max, n);
    size_t nu = n ? (size_t)max + 1 : 0;
    size_t *ptr = ember_calloc(nu + 2, sizeof *ptr);
    size_t *rows = ember_alloc(n ? n : 1, sizeof *rows);
    if (!ptr || !rows) {
        free(ptr);
        free(rows);
        return EMBER_ENOMEM;
    }
    for (size_t k = 0; k < n; k++)
        ptr[c->user[k] + 2]++;
    for (size_t u = 0; u < nu; u++)
        ptr[u + 2] += ptr[u + 1];
    for (size_t k = 0; k < n; k++) {
        size_t r = in ? in[k] : k;
        rows[ptr[c->user[r] + 1]++] = r;
    }
    *ptr_out = ptr;
    *rows_out = rows;
    *n_users_out = nu;
    return EMBER_OK;
}

/* Row indices in time order, ties in file order: a stable LSD radix sort
 * on (ts - min ts), 11 bits a pass (a histogram that stays in L1 and a
 * scatter to 2048 streams), only as many passes as the time range needs.
 * The keys travel with the indices so that each pass reads in sequence. */
#define RADIX_BITS 11
#define RADIX_SIZE (1u << RADIX_BITS)

static int sort_by_time(const ember_coo *c, size_t **out)
{
    size_t n = c->n, nn = n ? n : 1;
    size_t *perm = ember_alloc(nn, sizeof *perm), *perm2 = ember_alloc(nn, sizeof *perm2);
    uint64_t *key = ember_alloc(nn, sizeof *key), *key2 = ember_alloc(nn, sizeof *key2);
    size_t *cnt = ember_alloc(RADIX_SIZE, sizeof *cnt);
    if (!perm || !perm2 || !key || !key2 || !cnt) {
        free(perm);
        free(perm2);
        free(key);
        free(key2);
        free(cnt);
        return EMBER_ENOMEM;
    }
    int64_t tmin = n ? c->ts[0] : 0;
    for (size_t k = 0; k < n; k++)
        tmin = EMBER_MIN(tmin, c->ts[k]);
    uint64_t range = 0;
    for (size_t k = 0; k < n; k++) {
        perm[k] = k;
        key[k] = (uint64_t)c->ts[k] - (uint64_t)tmin;
        range |= key[k];
    }
    for (int shift = 0; shift < 64 && (range >> shift) != 0; shift += RADIX_BITS) {
        memset(cnt, 0, RADIX_SIZE * sizeof *cnt);
        for (size_t k = 0; k < n; k++)
            cnt[(key[k] >> shift) & (RADIX_SIZE - 1)]++;
        size_t sum = 0;
        for (size_t d = 0; d < RADIX_SIZE; d++) {
            size_t x = cnt[d];
            cnt[d] = sum;
            sum += x;
        }
        for (size_t k = 0; k < n; k++) {
            size_t to = cnt[(key[k] >> shift) & (RADIX_SIZE - 1)]++;
            perm2[to] = perm[k];
            key2[to] = key[k];
        }
        size_t *tp = perm;
        perm = perm2;
        perm2 = tp;
        uint64_t *tk = key;
        key = key2;
        key2 = tk;
    }
    free(perm2);
    free(key);
    free(key2);
    free(cnt);
    *out = perm;
    return EMBER_OK;
}

static size_t round_half_even(double x)
{
    return (size_t)nearbyint(x);
}

static int check_fracs(double valid_frac, double test_frac)
{
    if (!(valid_frac >= 0 && valid_frac <= 1 && test_frac >= 0 && test_frac <= 1 &&
          valid_frac + test_frac <= 1))
        return ember_fail(EMBER_EINVAL,
                          "split: fractions must lie in [0, 1] with valid + test <= 1 (got valid "
                          "%g, test %g)",
                          valid_frac, test_frac);
    return EMBER_OK;
}

void data_split3_free(data_split3 *s)
{
    if (!s)
        return;
    for (int p = 0; p < 3; p++)
        free(s->idx[p]);
    memset(s, 0, sizeof *s);
}

/* Fills out from part[]: in file order when rows is NULL, else in the
 * order rows[0..n) lists them. */
static int split3_fill(const uint8_t *part, size_t n, const size_t *rows, data_split3 *out)
{
    memset(out, 0, sizeof *out);
    for (size_t k = 0; k < n; k++)
        out->n[part[k]]++;
    for (int p = 0; p < 3; p++) {
        out->idx[p] = ember_alloc(out->n[p] ? out->n[p] : 1, sizeof *out->idx[p]);
        if (!out->idx[p]) {
            data_split3_free(out);
            return EMBER_ENOMEM;
        }
    }
    size_t w[3] = {0, 0, 0};
    for (size_t k = 0; k < n; k++) {
        size_t r = rows ? rows[k] : k;
        out->idx[part[r]][w[part[r]]++] = r;
    }
    return EMBER_OK;
}

/* The users to walk: `order` when given, else 0..nu-1. */
static size_t user_at(const uint32_t *order, size_t k)
{
    return order ? order[k] : k;
}

/* ------------------------------------------------------- the splitters */

/* Per user (in `order`, or index order): shuffle, then test, valid, train.
 * python_order lists the parts user by user in shuffled order. */
static int ratio_core(const ember_coo *c, const uint32_t *order, size_t n_order, split_rng *rng,
                      double vf, double tf, bool python_order, data_split3 *out)
{
    memset(out, 0, sizeof *out);
    int st = check_fracs(vf, tf);
    if (st)
        return st;
    size_t *ptr = NULL, *rows = NULL, nu = 0;
    if ((st = group_by_user(c, NULL, &ptr, &rows, &nu)))
        return st;
    uint8_t *part = ember_alloc(c->n ? c->n : 1, 1);
    size_t *seq = python_order ? ember_alloc(c->n ? c->n : 1, sizeof *seq) : NULL;
    if (!part || (python_order && !seq)) {
        st = EMBER_ENOMEM;
        goto out;
    }
    size_t walk = order ? n_order : nu, w = 0;
    for (size_t k = 0; k < walk; k++) {
        size_t u = user_at(order, k);
        size_t *lst = rows + ptr[u], len = ptr[u + 1] - ptr[u];
        shuffle_rows(rng, lst, len);
        size_t nt = EMBER_MIN(round_half_even(tf * (double)len), len);
        size_t nv = EMBER_MIN(round_half_even(vf * (double)len), len - nt);
        for (size_t p = 0; p < len; p++) {
            part[lst[p]] = p < nt ? PART_TEST : p < nt + nv ? PART_VALID : PART_TRAIN;
            if (seq)
                seq[w++] = lst[p];
        }
    }
    if (seq && w != c->n) {
        st = ember_fail(EMBER_EINVAL, "split: the user order misses some users' rows");
        goto out;
    }
    st = split3_fill(part, c->n, seq, out);
out:
    free(ptr);
    free(rows);
    free(part);
    free(seq);
    return st;
}

int data_split_ratio(const ember_coo *c, double valid_frac, double test_frac, uint64_t seed,
                     data_split3 *out)
{
    split_rng rng;
    split_rng_seed(&rng, false, seed);
    return ratio_core(c, NULL, 0, &rng, valid_frac, test_frac, false, out);
}

static int loo_core(const ember_coo *c, const uint32_t *order, size_t n_order, data_split3 *out)
{
    memset(out, 0, sizeof *out);
    size_t *by_time = NULL, *ptr = NULL, *rows = NULL, nu = 0;
    int st = sort_by_time(c, &by_time);
    if (st)
        return st;
    if ((st = group_by_user(c, by_time, &ptr, &rows, &nu))) {
        free(by_time);
        return st;
    }
    uint8_t *part = ember_alloc(c->n ? c->n : 1, 1);
    size_t *seq = order ? ember_alloc(c->n ? c->n : 1, sizeof *seq) : NULL;
    if (!part || (order && !seq)) {
        st = EMBER_ENOMEM;
        goto out;
    }
    size_t walk = order ? n_order : nu, w = 0;
    for (size_t k = 0; k < walk; k++) {
        size_t u = user_at(order, k);
        const size_t *lst = rows + ptr[u];
        size_t len = ptr[u + 1] - ptr[u];
        for (size_t p = 0; p < len; p++) {
            part[lst[p]] = len < 3 || p + 2 < len ? PART_TRAIN : p + 2 == len ? PART_VALID : PART_TEST;
            if (seq)
                seq[w++] = lst[p];
        }
    }
    if (seq && w != c->n) {
        st = ember_fail(EMBER_EINVAL, "split: the user order misses some users' rows");
        goto out;
    }
    st = split3_fill(part, c->n, seq, out);
out:
    free(by_time);
    free(ptr);
    free(rows);
    free(part);
    free(seq);
    return st;
}

int data_split_leave_one_out(const ember_coo *c, data_split3 *out)
{
    return loo_core(c, NULL, 0, out);
}

int data_split_temporal(const ember_coo *c, double valid_frac, double test_frac, data_split3 *out)
{
    memset(out, 0, sizeof *out);
    int st = check_fracs(valid_frac, test_frac);
    if (st)
        return st;
    size_t n = c->n, *by_time = NULL;
    if ((st = sort_by_time(c, &by_time)))
        return st;
    uint8_t *part = ember_alloc(n ? n : 1, 1);
    if (!part) {
        free(by_time);
        return EMBER_ENOMEM;
    }
    size_t nt = EMBER_MIN(round_half_even(test_frac * (double)n), n);
    size_t nv = EMBER_MIN(round_half_even(valid_frac * (double)n), n - nt);
    for (size_t p = 0; p < n; p++)
        part[by_time[p]] = p >= n - nt ? PART_TEST : p >= n - nt - nv ? PART_VALID : PART_TRAIN;
    st = split3_fill(part, n, NULL, out);
    free(by_time);
    free(part);
    return st;
}

static int kfold_core(size_t n, size_t k, split_rng *rng, uint32_t **fold_of)
{
    *fold_of = NULL;
    if (k < 2 || k > n || k > UINT32_MAX)
        return ember_fail(EMBER_EINVAL, "split: %zu folds of %zu interactions (need 2 <= k <= n)",
                          k, n);
    size_t *perm = ember_alloc(n, sizeof *perm);
    uint32_t *f = ember_alloc(n, sizeof *f);
    if (!perm || !f) {
        free(perm);
        free(f);
        return EMBER_ENOMEM;
    }
    for (size_t p = 0; p < n; p++)
        perm[p] = p;
    shuffle_rows(rng, perm, n);
    for (size_t p = 0; p < n; p++)
        f[perm[p]] = (uint32_t)(p % k);
    free(perm);
    *fold_of = f;
    return EMBER_OK;
}

int data_split_kfold(const ember_coo *c, size_t k, uint64_t seed, uint32_t **fold_of)
{
    split_rng rng;
    split_rng_seed(&rng, false, seed);
    return kfold_core(c->n, k, &rng, fold_of);
}

/* ------------------------------------------------ make_splits.py order */

typedef struct {
    const char *name;
    size_t len;      /* digits: without leading zeros */
    size_t first;    /* first row of the user: Python's dict order */
    uint32_t user;
} py_user;

static int cmp_py_numeric(const void *a, const void *b)
{
    const py_user *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    int d = memcmp(x->name, y->name, x->len);
    if (d)
        return d;
    return x->first < y->first ? -1 : x->first > y->first;
}

static int cmp_py_string(const void *a, const void *b)
{
    const py_user *x = a, *y = b;
    int d = strcmp(x->name, y->name); /* bytes of UTF-8 sort as code points */
    if (d)
        return d;
    return x->first < y->first ? -1 : x->first > y->first;
}

static bool is_all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

int data_py_user_order(const ember_coo *c, const ember_idmap *users, uint32_t **order,
                       size_t *n_order)
{
    *order = NULL;
    *n_order = 0;
    size_t nu = ember_idmap_size(users);
    size_t *first = ember_alloc(nu ? nu : 1, sizeof *first);
    if (!first)
        return EMBER_ENOMEM;
    for (size_t u = 0; u < nu; u++)
        first[u] = SIZE_MAX;
    size_t present = 0;
    for (size_t k = 0; k < c->n; k++) {
        if (c->user[k] >= nu) {
            free(first);
            return ember_fail(EMBER_EINVAL, "split: row %zu has a user outside the id map", k);
        }
        if (first[c->user[k]] == SIZE_MAX) {
            first[c->user[k]] = k;
            present++;
        }
    }
    py_user *pu = ember_alloc(present ? present : 1, sizeof *pu);
    uint32_t *o = ember_alloc(present ? present : 1, sizeof *o);
    if (!pu || !o) {
        free(first);
        free(pu);
        free(o);
        return EMBER_ENOMEM;
    }
    size_t m = 0, digits = 0;
    for (size_t u = 0; u < nu; u++) {
        if (first[u] == SIZE_MAX)
            continue;
        const char *s = ember_idmap_name(users, (uint32_t)u);
        pu[m] = (py_user){.name = s, .len = strlen(s), .first = first[u], .user = (uint32_t)u};
        if (is_all_digits(s)) {
            digits++;
            while (pu[m].len > 1 && pu[m].name[0] == '0')
                pu[m].name++, pu[m].len--;
        }
        m++;
    }
    free(first);
    if (digits != 0 && digits != m) {
        free(pu);
        free(o);
        return ember_fail(EMBER_EUNSUPPORTED,
                          "--compat python: user ids mix digits-only and other ids, which "
                          "make_splits.py cannot sort (int and str)");
    }
    qsort(pu, m, sizeof *pu, digits ? cmp_py_numeric : cmp_py_string);
    for (size_t k = 0; k < m; k++)
        o[k] = pu[k].user;
    free(pu);
    *order = o;
    *n_order = m;
    return EMBER_OK;
}

int data_split_ratio_py(const ember_coo *c, const ember_idmap *users, double valid_frac,
                        double test_frac, uint64_t seed, data_split3 *out)
{
    memset(out, 0, sizeof *out);
    uint32_t *order;
    size_t n_order;
    int st = data_py_user_order(c, users, &order, &n_order);
    if (st)
        return st;
    split_rng rng;
    split_rng_seed(&rng, true, seed);
    st = ratio_core(c, order, n_order, &rng, valid_frac, test_frac, true, out);
    free(order);
    return st;
}

int data_split_leave_one_out_py(const ember_coo *c, const ember_idmap *users, data_split3 *out)
{
    memset(out, 0, sizeof *out);
    uint32_t *order;
    size_t n_order;
    int st = data_py_user_order(c, users, &order, &n_order);
    if (st)
        return st;
    st = loo_core(c, order, n_order, out);
    free(order);
    return st;
}

int data_split_kfold_py(const ember_coo *c, const ember_idmap *users, size_t k, uint64_t seed,
                        uint32_t **fold_of)
{
    *fold_of = NULL;
    uint32_t *order;
    size_t n_order;
    int st = data_py_user_order(c, users, &order, &n_order);
    if (st)
        return st;
    size_t *count = ember_calloc(ember_idmap_size(users) + 1, sizeof *count);
    if (!count) {
        free(order);
        return EMBER_ENOMEM;
    }
    for (size_t r = 0; r < c->n; r++)
        count[c->user[r]]++;
    split_rng rng;
    split_rng_seed(&rng, true, seed);
    for (size_t j = 0; j < n_order; j++)
        shuffle_skip(&rng, count[order[j]]);
    free(count);
    free(order);
    return kfold_core(c->n, k, &rng, fold_of);
}
