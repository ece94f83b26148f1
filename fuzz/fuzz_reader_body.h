/*
 * fuzz_reader_body.h — one fuzz input through every way of reading it:
 * shared by the libFuzzer target (fuzz_reader.c) and the corpus replay
 * test (tests/data/test_fuzz_replay.c), so both run the same code.
 *
 * The input is read as each format (auto under three file names, TSV,
 * CSV, u.data, ratings.dat, RecBole atomic), under both bad-line policies,
 * without and with three --cols strings.  Besides "no crash, no leak" it
 * checks what must hold whatever the input:
 *   - a failed read leaves the output empty and a message set;
 *   - a successful one accounts for every data line
 *     (lines = rows + bad + unknown), never skips under EMBER_BAD_STOP,
 *     and yields indices inside the maps;
 *   - reading the same input again with fixed_ids into the filled maps
 *     gives the same rows and no unknown id, and adds no id.
 * Returns 0, or the number of the first check that failed.
 */
#ifndef EMBER_FUZZ_READER_BODY_H
#define EMBER_FUZZ_READER_BODY_H

#include "ember.h"

#include <stdint.h>
#include <string.h>

static inline int fuzz_reader_check(const char *name, const uint8_t *data, size_t size,
                             const ember_read_opts *o)
{
    int bad = 0;
    ember_idmap *users = ember_idmap_new(), *items = ember_idmap_new();
    ember_coo c = {0}, again = {0};
    ember_read_stats st, st2;
    if (!users || !items) {
        ember_idmap_free(users);
        ember_idmap_free(items);
        return 0; /* out of memory is not a finding */
    }
    int rc = ember_coo_read_mem(name, (const char *)data, size, o, users, items, &c, &st);
    if (rc != EMBER_OK) {
        if (c.n != 0)
            bad = 1;
        else if (ember_last_error()[0] == '\0')
            bad = 2;
        else if (rc != EMBER_EFORMAT && rc != EMBER_EINVAL && rc != EMBER_ENOMEM)
            bad = 3;
        goto done;
    }
    if (c.n != st.rows || st.rows + st.bad + st.unknown != st.lines)
        bad = 4;
    else if (o->on_bad == EMBER_BAD_STOP && st.bad != 0)
        bad = 5;
    else if ((st.bad == 0) != (st.first_bad_line == 0))
        bad = 6;
    for (size_t i = 0; i < c.n && !bad; i++)
        if (c.user[i] >= ember_idmap_size(users) || c.item[i] >= ember_idmap_size(items))
            bad = 7;
    if (bad)
        goto done;
    size_t nu = ember_idmap_size(users), ni = ember_idmap_size(items);
    ember_read_opts fixed = *o;
    fixed.fixed_ids = 1;
    rc = ember_coo_read_mem(name, (const char *)data, size, &fixed, users, items, &again, &st2);
    if (rc == EMBER_ENOMEM)
        goto done;
    if (rc != EMBER_OK || st2.unknown != 0 || st2.rows != st.rows || again.n != c.n)
        bad = 8;
    else if (ember_idmap_size(users) != nu || ember_idmap_size(items) != ni)
        bad = 9;
    else if (c.n && (memcmp(c.user, again.user, c.n * sizeof *c.user) ||
                     memcmp(c.item, again.item, c.n * sizeof *c.item) ||
                     memcmp(c.rating, again.rating, c.n * sizeof *c.rating) ||
                     memcmp(c.ts, again.ts, c.n * sizeof *c.ts)))
        bad = 10;
done:
    ember_coo_free(&c);
    ember_coo_free(&again);
    ember_idmap_free(users);
    ember_idmap_free(items);
    return bad;
}

static inline int fuzz_reader_one(const uint8_t *data, size_t size)
{
    static const struct {
        ember_format format;
        const char *name;
    } ways[] = {
        {EMBER_FMT_AUTO, "fuzz.tsv"},  {EMBER_FMT_AUTO, "fuzz.csv"},
        {EMBER_FMT_AUTO, "fuzz.inter"}, {EMBER_FMT_TSV, "fuzz"},
        {EMBER_FMT_CSV, "fuzz"},       {EMBER_FMT_UDATA, "fuzz"},
        {EMBER_FMT_ML_DAT, "fuzz"},    {EMBER_FMT_ATOMIC, "fuzz"},
    };
    static const char *const cols[] = {
        NULL,
        "user=userId,item=movieId,rating=rating,time=timestamp",
        " item = b ,user=a,rating=,timestamp=c",
        "user=user_id,item=item_id,time=",
    };
    for (size_t w = 0; w < sizeof ways / sizeof ways[0]; w++)
        for (int policy = 0; policy < 2; policy++)
            for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
                ember_read_opts o;
                ember_read_opts_init(&o);
                o.format = ways[w].format;
                o.on_bad = policy ? EMBER_BAD_SKIP : EMBER_BAD_STOP;
                o.cols = cols[k];
                int bad = fuzz_reader_check(ways[w].name, data, size, &o);
                if (bad)
                    return bad;
            }
    return 0;
}

#endif
