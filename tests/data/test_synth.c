/* test_synth.c — the synthetic data generator (src/data/synth.c): seeded
 * and reproducible, exact row counts, every user present, no repeated
 * (user, item), skewed popularity, users that keep to few topics, ratings
 * that follow topic affinity, increasing timestamps, an item file that the
 * feature loader reads, clean failures. */
#include "testutil.h"

#include "data/data.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>

/* XXH3 of the files of the pinned tiny world (see the test). */
#define PIN_INTER 0x1e4fea71078ddf41ULL
#define PIN_ITEM 0xb07460c2b18be6ceULL

/* A small world that still has structure: 400 users, 1500 items, 15
 * topics, 16,000 rows (mean 40 per user). */
static data_synth_opts small_opts(uint64_t seed)
{
    data_synth_opts o;
    data_synth_opts_init(&o);
    o.n_users = 400;
    o.n_items = 1500;
    o.n_interactions = 16000;
    o.n_topics = 15;
    o.seed = seed;
    return o;
}

static const char *tmp_path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    return p;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    b[n] = '\0';
    *len = (size_t)n;
    return b;
}

static bool same_bytes(const char *a, const char *b)
{
    size_t la, lb;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    bool same = la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* Files in the temp dir whose name contains ".tmp". */
static int temp_files_left(void)
{
    DIR *d = opendir(test_tmpdir());
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp") != NULL;
    closedir(d);
    return n;
}

/* The generated interactions in file order, ids in fresh maps. */
typedef struct {
    ember_idmap *users, *items;
    ember_coo c;
} rows;

static void read_rows(const char *path, rows *r)
{
    r->users = ember_idmap_new();
    r->items = ember_idmap_new();
    memset(&r->c, 0, sizeof r->c);
    ember_read_stats st;
    assert_int_equal(ember_coo_read(path, NULL, r->users, r->items, &r->c, &st), EMBER_OK);
    assert_int_equal(st.bad, 0);
}

static void free_rows(rows *r)
{
    ember_coo_free(&r->c);
    ember_idmap_free(r->users);
    ember_idmap_free(r->items);
}

/* An item map with ids "1".."n" at indices 0..n-1. */
static ember_idmap *item_ids(size_t n)
{
    ember_idmap *m = ember_idmap_new();
    assert_non_null(m);
    for (size_t i = 1; i <= n; i++) {
        char id[24];
        uint32_t idx;
        int len = snprintf(id, sizeof id, "%zu", i);
        assert_int_equal(ember_idmap_intern(m, id, (size_t)len, &idx), EMBER_OK);
        assert_int_equal(idx, i - 1);
    }
    return m;
}

/* Category index (into the category vocabulary) of every item id 1..n. */
static uint32_t *categories(const char *item_path, size_t n, size_t *n_cats)
{
    ember_idmap *ids = item_ids(n);
    data_features f;
    assert_int_equal(data_features_load(item_path, NULL, ids, &f), EMBER_OK);
    const data_feature *cat = data_features_col(&f, "category");
    assert_non_null(cat);
    uint32_t *out = malloc(n * sizeof *out);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(cat->ptr[i + 1] - cat->ptr[i], 1);
        out[i] = cat->tok[cat->ptr[i]];
    }
    *n_cats = ember_idmap_size(cat->vocab);
    data_features_free(&f);
    ember_idmap_free(ids);
    return out;
}

/* The item number (1-based) of a dense item index of the rows. */
static size_t item_number(const rows *r, uint32_t idx)
{
    return (size_t)strtoul(ember_idmap_name(r->items, idx), NULL, 10);
}

static void test_synth_same_seed_gives_identical_files(void **state)
{
    data_synth_opts o = small_opts(7);
    assert_int_equal(data_synth_write(&o, tmp_path("a.tsv"), tmp_path("a.item")), EMBER_OK);
    assert_int_equal(data_synth_write(&o, tmp_path("b.tsv"), tmp_path("b.item")), EMBER_OK);
    assert_true(same_bytes(tmp_path("a.tsv"), tmp_path("b.tsv")));
    assert_true(same_bytes(tmp_path("a.item"), tmp_path("b.item")));
}

static void test_synth_different_seed_gives_different_files(void **state)
{
    data_synth_opts o = small_opts(7), p = small_opts(8);
    assert_int_equal(data_synth_write(&o, tmp_path("c.tsv"), tmp_path("c.item")), EMBER_OK);
    assert_int_equal(data_synth_write(&p, tmp_path("d.tsv"), tmp_path("d.item")), EMBER_OK);
    assert_false(same_bytes(tmp_path("c.tsv"), tmp_path("d.tsv")));
    assert_false(same_bytes(tmp_path("c.item"), tmp_path("d.item")));
}

/* The bytes of a tiny world are pinned: the same on every machine and
 * build (the generator uses no libm and one thread).  A deliberate change
 * of the generator changes this value; update it then. */
static void test_synth_output_is_pinned_across_machines(void **state)
{
    data_synth_opts o;
    data_synth_opts_init(&o);
    o.n_users = 30;
    o.n_items = 80;
    o.n_interactions = 600;
    o.n_topics = 5;
    o.seed = 2024;
    assert_int_equal(data_synth_write(&o, tmp_path("pin.tsv"), tmp_path("pin.item")), EMBER_OK);
    size_t n;
    char *b = slurp(tmp_path("pin.tsv"), &n);
    uint64_t h_inter = ember_hash64(b, n);
    free(b);
    b = slurp(tmp_path("pin.item"), &n);
    uint64_t h_item = ember_hash64(b, n);
    free(b);
    print_message("pinned hashes: inter %016llx item %016llx\n", (unsigned long long)h_inter,
                  (unsigned long long)h_item);
    assert_int_equal(h_inter, PIN_INTER);
    assert_int_equal(h_item, PIN_ITEM);
}

static void test_synth_writes_exactly_n_interactions_rows(void **state)
{
    data_synth_opts o = small_opts(11);
    const char *path = tmp_path("rows.tsv");
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_OK);
    size_t len;
    char *b = slurp(path, &len);
    assert_true(strncmp(b, "user\titem\trating\ttimestamp\n", 27) == 0);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += b[i] == '\n';
    free(b);
    assert_int_equal(lines, o.n_interactions + 1);
    rows r;
    read_rows(path, &r);
    assert_int_equal(r.c.n, o.n_interactions);
    for (size_t k = 0; k < r.c.n; k++) {
        float x = r.c.rating[k];
        assert_true(x == 1 || x == 2 || x == 3 || x == 4 || x == 5);
    }
    free_rows(&r);
}

static void test_synth_every_user_appears(void **state)
{
    data_synth_opts o = small_opts(12);
    const char *path = tmp_path("users.tsv");
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_OK);
    rows r;
    read_rows(path, &r);
    assert_int_equal(ember_idmap_size(r.users), o.n_users);
    for (size_t u = 1; u <= o.n_users; u++) {
        char id[24];
        int len = snprintf(id, sizeof id, "%zu", u);
        assert_true(ember_idmap_find(r.users, id, (size_t)len) >= 0);
    }
    assert_true(ember_idmap_size(r.items) <= o.n_items);
    free_rows(&r);
}

static void test_synth_never_repeats_an_item_for_a_user(void **state)
{
    data_synth_opts o = small_opts(13);
    const char *path = tmp_path("dups.tsv");
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_OK);
    rows r;
    read_rows(path, &r);
    ember_dataset *d;
    assert_int_equal(ember_dataset_build(&r.c, r.users, r.items, &d), EMBER_OK);
    for (uint32_t u = 0; u < d->n_users; u++)
        for (uint64_t k = d->u_ptr[u] + 1; k < d->u_ptr[u + 1]; k++)
            assert_true(d->u_item[k - 1] < d->u_item[k]); /* ascending and distinct */
    ember_dataset_free(d);
    free_rows(&r);
}

static void test_synth_timestamps_increase_per_user(void **state)
{
    data_synth_opts o = small_opts(14);
    const char *path = tmp_path("time.tsv");
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_OK);
    rows r;
    read_rows(path, &r);
    /* rows come grouped by user; within a user, time strictly increases */
    size_t groups = 0;
    for (size_t k = 0; k < r.c.n; k++) {
        if (k == 0 || r.c.user[k] != r.c.user[k - 1]) {
            groups++;
            continue;
        }
        assert_true(r.c.ts[k] > r.c.ts[k - 1]);
    }
    assert_int_equal(groups, o.n_users);
    for (size_t k = 0; k < r.c.n; k++) /* 2015-01-01 .. 2030-01-01 */
        assert_true(r.c.ts[k] >= 1420070400 && r.c.ts[k] < 1893456000);
    free_rows(&r);
}

static int cmp_size_desc(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x > y ? -1 : x < y;
}

static void test_synth_popularity_is_skewed(void **state)
{
    data_synth_opts o = small_opts(15);
    const char *path = tmp_path("pop.tsv");
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_OK);
    rows r;
    read_rows(path, &r);
    size_t *cnt = calloc(o.n_items, sizeof *cnt);
    assert_non_null(cnt);
    for (size_t k = 0; k < r.c.n; k++)
        cnt[item_number(&r, r.c.item[k]) - 1]++;
    qsort(cnt, o.n_items, sizeof *cnt, cmp_size_desc);
    size_t top = 0;
    for (size_t i = 0; i < o.n_items / 10; i++)
        top += cnt[i];
    double share = (double)top / (double)r.c.n;
    print_message("top 10%% of items hold %.1f%% of interactions\n", 100 * share);
    assert_true(share > 0.40);
    free(cnt);
    free_rows(&r);
}

/* Under uniform sampling of items, a user with n interactions would meet
 * sum_t 1 - (1 - p_t)^n categories (p_t: the share of items in t). */
static void test_synth_users_stay_within_few_topics(void **state)
{
    data_synth_opts o = small_opts(16);
    const char *path = tmp_path("topics.tsv"), *ipath = tmp_path("topics.item");
    assert_int_equal(data_synth_write(&o, path, ipath), EMBER_OK);
    size_t n_cats;
    uint32_t *cat = categories(ipath, o.n_items, &n_cats);
    assert_int_equal(n_cats, o.n_topics);
    double *p = calloc(n_cats, sizeof *p);
    for (size_t i = 0; i < o.n_items; i++)
        p[cat[i]] += 1.0 / (double)o.n_items;
    rows r;
    read_rows(path, &r);
    bool *seen = calloc(n_cats, sizeof *seen);
    double observed = 0, uniform = 0;
    size_t start = 0;
    for (size_t k = 1; k <= r.c.n; k++) {
        if (k < r.c.n && r.c.user[k] == r.c.user[start])
            continue;
        size_t n = k - start, distinct = 0;
        memset(seen, 0, n_cats * sizeof *seen);
        for (size_t j = start; j < k; j++) {
            uint32_t c = cat[item_number(&r, r.c.item[j]) - 1];
            distinct += !seen[c];
            seen[c] = true;
        }
        observed += (double)distinct;
        for (size_t t = 0; t < n_cats; t++)
            uniform += 1.0 - pow(1.0 - p[t], (double)n);
        start = k;
    }
    observed /= (double)o.n_users;
    uniform /= (double)o.n_users;
    print_message("distinct categories per user: %.2f (uniform sampling: %.2f)\n", observed,
                  uniform);
    assert_true(observed < 0.6 * uniform);
    free(seen);
    free(p);
    free(cat);
    free_rows(&r);
}

/* Each user's most frequent category stands for an interest: ratings there
 * are higher than on the user's other items. */
static void test_synth_ratings_are_higher_on_a_users_main_topic(void **state)
{
    data_synth_opts o = small_opts(17);
    const char *path = tmp_path("rate.tsv"), *ipath = tmp_path("rate.item");
    assert_int_equal(data_synth_write(&o, path, ipath), EMBER_OK);
    size_t n_cats;
    uint32_t *cat = categories(ipath, o.n_items, &n_cats);
    rows r;
    read_rows(path, &r);
    size_t *count = calloc(n_cats, sizeof *count);
    double main_sum = 0, other_sum = 0;
    size_t main_n = 0, other_n = 0, start = 0;
    for (size_t k = 1; k <= r.c.n; k++) {
        if (k < r.c.n && r.c.user[k] == r.c.user[start])
            continue;
        memset(count, 0, n_cats * sizeof *count);
        for (size_t j = start; j < k; j++)
            count[cat[item_number(&r, r.c.item[j]) - 1]]++;
        size_t best = 0;
        for (size_t t = 1; t < n_cats; t++)
            if (count[t] > count[best])
                best = t;
        for (size_t j = start; j < k; j++) {
            if (cat[item_number(&r, r.c.item[j]) - 1] == best)
                main_sum += r.c.rating[j], main_n++;
            else
                other_sum += r.c.rating[j], other_n++;
        }
        start = k;
    }
    double main_mean = main_sum / (double)main_n, other_mean = other_sum / (double)other_n;
    print_message("mean rating: main topic %.2f, others %.2f\n", main_mean, other_mean);
    assert_true(main_mean > other_mean + 0.3);
    free(count);
    free(cat);
    free_rows(&r);
}

static int cmp_u64_asc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_synth_user_lengths_are_heavy_tailed_with_a_floor(void **state)
{
    data_synth_opts o = small_opts(18);
    const char *path = tmp_path("len.tsv");
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_OK);
    rows r;
    read_rows(path, &r);
    uint64_t *len = calloc(o.n_users, sizeof *len);
    for (size_t k = 0; k < r.c.n; k++)
        len[r.c.user[k]]++;
    qsort(len, o.n_users, sizeof *len, cmp_u64_asc);
    double mean = (double)o.n_interactions / (double)o.n_users;
    print_message("lengths: min %llu, median %llu, max %llu, mean %.1f\n",
                  (unsigned long long)len[0], (unsigned long long)len[o.n_users / 2],
                  (unsigned long long)len[o.n_users - 1], mean);
    assert_true(len[0] >= 5);                         /* every user at least 5 */
    assert_true((double)len[o.n_users / 2] < mean);   /* most users below the mean */
    assert_true((double)len[o.n_users - 1] > 5 * mean); /* and a few very active ones */
    assert_true(len[o.n_users - 1] <= o.n_items / 2);
    free(len);
    free_rows(&r);
}

static void test_synth_caps_rows_at_users_times_items(void **state)
{
    data_synth_opts o;
    data_synth_opts_init(&o);
    o.n_users = 3;
    o.n_items = 4;
    o.n_topics = 2;
    o.n_interactions = 100;
    const char *path = tmp_path("cap.tsv");
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_OK);
    rows r;
    read_rows(path, &r);
    assert_int_equal(r.c.n, 12);
    assert_int_equal(ember_idmap_size(r.users), 3);
    assert_int_equal(ember_idmap_size(r.items), 4);
    free_rows(&r);
}

static void test_synth_one_interaction_per_user_when_rows_equal_users(void **state)
{
    data_synth_opts o = small_opts(19);
    o.n_interactions = o.n_users;
    const char *path = tmp_path("one.tsv");
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_OK);
    rows r;
    read_rows(path, &r);
    assert_int_equal(r.c.n, o.n_users);
    assert_int_equal(ember_idmap_size(r.users), o.n_users);
    free_rows(&r);
}

static void test_synth_item_file_parses_with_features_load(void **state)
{
    data_synth_opts o = small_opts(20);
    const char *ipath = tmp_path("titles.item");
    assert_int_equal(data_synth_write(&o, tmp_path("titles.tsv"), ipath), EMBER_OK);
    size_t len;
    char *b = slurp(ipath, &len);
    assert_true(strncmp(b, "item_id:token\ttitle:token_seq\tcategory:token\n", 45) == 0);
    free(b);
    ember_idmap *ids = item_ids(o.n_items);
    data_features f;
    assert_int_equal(data_features_load(ipath, NULL, ids, &f), EMBER_OK);
    assert_int_equal(f.n_entities, o.n_items);
    assert_int_equal(f.n_cols, 2);
    assert_int_equal(f.skipped_unknown, 0);
    const data_feature *title = data_features_col(&f, "title");
    const data_feature *cat = data_features_col(&f, "category");
    assert_non_null(title);
    assert_non_null(cat);
    assert_int_equal(title->type, FEAT_TOKEN_SEQ);
    assert_int_equal(cat->type, FEAT_TOKEN);
    assert_int_equal(ember_idmap_size(cat->vocab), o.n_topics);
    for (size_t i = 0; i < o.n_items; i++) {
        const char *t = title->text[i];
        assert_non_null(t);
        size_t words = 1;
        for (const char *c = t; *c; c++)
            words += *c == ' ';
        assert_true(words >= 2 && words <= 4);
        assert_true(title->ptr[i + 1] - title->ptr[i] >= 2);
        assert_non_null(cat->text[i]);
    }
    /* titles are distinct */
    ember_idmap *seen = ember_idmap_new();
    for (size_t i = 0; i < o.n_items; i++) {
        uint32_t idx;
        assert_int_equal(ember_idmap_intern(seen, title->text[i], strlen(title->text[i]), &idx),
                         EMBER_OK);
    }
    assert_int_equal(ember_idmap_size(seen), o.n_items);
    ember_idmap_free(seen);
    data_features_free(&f);
    ember_idmap_free(ids);
}

static void test_synth_names_topics_beyond_the_word_lists(void **state)
{
    data_synth_opts o = small_opts(21);
    o.n_topics = 40; /* more than there are named topics */
    const char *ipath = tmp_path("many.item");
    assert_int_equal(data_synth_write(&o, tmp_path("many.tsv"), ipath), EMBER_OK);
    ember_idmap *ids = item_ids(o.n_items);
    data_features f;
    assert_int_equal(data_features_load(ipath, NULL, ids, &f), EMBER_OK);
    const data_feature *cat = data_features_col(&f, "category");
    assert_int_equal(ember_idmap_size(cat->vocab), 40);
    assert_true(ember_idmap_find(cat->vocab, "jazz-2", 6) >= 0);
    data_features_free(&f);
    ember_idmap_free(ids);
}

static void test_synth_rejects_invalid_options(void **state)
{
    const char *path = tmp_path("bad.tsv");
    data_synth_opts o = small_opts(1);
    o.n_users = 0;
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_EINVAL);
    o = small_opts(1);
    o.n_items = 0;
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_EINVAL);
    o = small_opts(1);
    o.n_topics = 0;
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_EINVAL);
    o = small_opts(1);
    o.n_topics = o.n_items + 1;
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_EINVAL);
    o = small_opts(1);
    o.n_interactions = o.n_users - 1;
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_EINVAL);
    assert_non_null(strstr(ember_last_error(), "at least one"));
    o = small_opts(1);
    o.zipf = -0.5;
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_EINVAL);
    o.zipf = NAN;
    assert_int_equal(data_synth_write(&o, path, NULL), EMBER_EINVAL);
    assert_int_equal(data_synth_write(NULL, path, NULL), EMBER_EINVAL);
    assert_false(exists(path));
}

static void test_synth_unwritable_path_is_io_error_and_leaves_nothing(void **state)
{
    data_synth_opts o = small_opts(2);
    const char *inter = tmp_path("io.tsv");
    assert_int_equal(data_synth_write(&o, inter, tmp_path("no-such-dir/io.item")), EMBER_EIO);
    assert_non_null(strstr(ember_last_error(), "no-such-dir"));
    assert_false(exists(inter));
    assert_int_equal(data_synth_write(&o, tmp_path("no-such-dir/io.tsv"), NULL), EMBER_EIO);
    assert_int_equal(temp_files_left(), 0);
}

static void test_synth_survives_allocation_failures(void **state)
{
    data_synth_opts o = small_opts(3);
    o.n_users = 50;
    o.n_interactions = 800;
    const char *inter = tmp_path("oom.tsv"), *item = tmp_path("oom.item");
    int st = EMBER_ENOMEM;
    long n;
    for (n = 1; n < 200 && st == EMBER_ENOMEM; n++) {
        ember_fault_inject_alloc(n);
        st = data_synth_write(&o, inter, item);
        ember_fault_inject_alloc(0);
        if (st == EMBER_ENOMEM) {
            assert_false(exists(inter));
            assert_int_equal(temp_files_left(), 0);
        }
    }
    assert_int_equal(st, EMBER_OK);
    assert_true(n > 5); /* the injection did hit allocations before success */
    assert_true(exists(inter));
    assert_true(exists(item));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synth_same_seed_gives_identical_files),
        cmocka_unit_test(test_synth_different_seed_gives_different_files),
        cmocka_unit_test(test_synth_output_is_pinned_across_machines),
        cmocka_unit_test(test_synth_writes_exactly_n_interactions_rows),
        cmocka_unit_test(test_synth_every_user_appears),
        cmocka_unit_test(test_synth_never_repeats_an_item_for_a_user),
        cmocka_unit_test(test_synth_timestamps_increase_per_user),
        cmocka_unit_test(test_synth_popularity_is_skewed),
        cmocka_unit_test(test_synth_users_stay_within_few_topics),
        cmocka_unit_test(test_synth_ratings_are_higher_on_a_users_main_topic),
        cmocka_unit_test(test_synth_user_lengths_are_heavy_tailed_with_a_floor),
        cmocka_unit_test(test_synth_caps_rows_at_users_times_items),
        cmocka_unit_test(test_synth_one_interaction_per_user_when_rows_equal_users),
        cmocka_unit_test(test_synth_item_file_parses_with_features_load),
        cmocka_unit_test(test_synth_names_topics_beyond_the_word_lists),
        cmocka_unit_test(test_synth_rejects_invalid_options),
        cmocka_unit_test(test_synth_unwritable_path_is_io_error_and_leaves_nothing),
        cmocka_unit_test(test_synth_survives_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
