/*
 * synth.c — a seeded generator of realistic interaction data (the built-in
 * data of `make demo` and of the speed benchmarks).
 *
 * The model behind the rows:
 *  - n_topics latent topics, each named (its category: "jazz", "sci-fi",
 *    ...).  Every item has one topic (topic sizes vary by up to ~3x) and a
 *    Zipf-like popularity weight rank^-zipf, ranks shuffled so that
 *    popularity is not tied to the id.
 *  - Topics differ in appeal (Zipf over a random order of the topics).
 *    Each user has 1-3 interests (topics, chosen in proportion to the
 *    topic's popularity mass times its appeal) with affinities, and a
 *    number of interactions: a floor of min(5, n_interactions / n_users)
 *    plus a heavy-tailed share of the rest (Lomax, alpha 2, truncated at
 *    100x the mean); the lengths sum exactly to n_interactions and none
 *    exceeds n_items / 2 (n_items when the total needs it).
 *  - A user walks through time: mostly short gaps inside a session,
 *    sometimes a session break.  At each step the active interest may
 *    switch (likely at a break, rarely inside a session) and, more rarely,
 *    a new interest is taken up.  The item is drawn by popularity from the
 *    active topic, or now and then from all items (exploration); an item
 *    is never repeated for a user.
 *  - The rating (1-5) grows with the affinity of the user for the item's
 *    topic, plus a user bias, an item quality and noise.
 * Sampling by popularity uses Walker/Vose alias tables (one per topic, one
 * global) with integer thresholds: one 64-bit random number per draw.
 *
 * Reproducibility: the same options give the same bytes on every machine.
 * The generator is single-threaded, takes every decision from xoshiro256**
 * streams (per user one stream seeded from (seed, user)), and uses its own
 * log/exp made of + - * / and exact frexp/ldexp/floor only, with no fused
 * multiply-add, so no libm or FMA rounding difference can change a draw.
 *
 * Output: "user\titem\trating\ttimestamp" with users and items as decimal
 * ids from 1, grouped by user in time order; and a RecBole item file
 * "item_id:token\ttitle:token_seq\tcategory:token" whose titles are 2-4
 * words ("Midnight Jazz Sessions") from per-topic and generic word lists,
 * distinct within the file (a volume number is appended once a topic has
 * used all its 17,760 combinations).  Rows are streamed through a 1 MiB
 * buffer into a temporary file next to the target, renamed into place when
 * complete.  Memory: ~32 bytes per item and ~12 bytes per user, whatever
 * the number of interactions.
 *
 * References: A. J. Walker, "An efficient method for generating discrete
 * random variables with general distributions", ACM TOMS 1977; M. D. Vose,
 * "A linear algorithm for generating random numbers with a given
 * distribution", IEEE TSE 1991.
 */
#include "data/data.h"

/* No fused multiply-add, so that every architecture rounds alike: clang
 * needs telling; GCC does not contract in ISO C mode (-std=c11). */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------ words */

typedef struct {
    const char *name;
    const char *words[10];
} topic_words;

#define TOPIC_WORDS 10

static const topic_words topics[] = {
    {"jazz",
     {"Jazz", "Swing", "Bebop", "Saxophone", "Trumpet", "Blues", "Harlem", "Groove", "Lounge",
      "Improvisation"}},
    {"sci-fi",
     {"Galaxy", "Android", "Starship", "Nebula", "Quantum", "Orbit", "Cyborg", "Asteroid", "Colony",
      "Warp"}},
    {"garden",
     {"Garden", "Roses", "Orchard", "Seedling", "Meadow", "Compost", "Tulip", "Greenhouse", "Hedge",
      "Blossom"}},
    {"cooking",
     {"Kitchen", "Spice", "Supper", "Skillet", "Pasta", "Broth", "Feast", "Recipe", "Harvest",
      "Saffron"}},
    {"travel",
     {"Voyage", "Passport", "Harbor", "Caravan", "Compass", "Railway", "Suitcase", "Lagoon",
      "Border", "Wanderer"}},
    {"history",
     {"Empire", "Dynasty", "Crusade", "Pharaoh", "Republic", "Revolution", "Castle", "Legion",
      "Monarch", "Archive"}},
    {"rock",
     {"Guitar", "Amplifier", "Riff", "Rebel", "Thunder", "Stadium", "Rockers", "Drums", "Anthem",
      "Feedback"}},
    {"poetry",
     {"Verse", "Sonnet", "Stanza", "Rhyme", "Ode", "Haiku", "Ballad", "Elegy", "Muse", "Quill"}},
    {"fantasy",
     {"Dragon", "Wizard", "Sorcery", "Elven", "Kingdom", "Enchanted", "Goblin", "Rune", "Prophecy",
      "Sword"}},
    {"mystery",
     {"Detective", "Alibi", "Clue", "Suspect", "Cipher", "Riddle", "Inspector", "Manor", "Witness",
      "Enigma"}},
    {"horror",
     {"Haunted", "Ghost", "Crypt", "Vampire", "Nightmare", "Phantom", "Graveyard", "Curse",
      "Shadow", "Zombie"}},
    {"romance",
     {"Love", "Kiss", "Heart", "Wedding", "Sweetheart", "Promise", "Valentine", "Desire", "Bride",
      "Embrace"}},
    {"comedy",
     {"Laugh", "Jester", "Prank", "Giggle", "Farce", "Clown", "Sitcom", "Punchline", "Blunder",
      "Caper"}},
    {"documentary",
     {"Truth", "Interview", "Investigation", "Frontline", "Evidence", "Portrait", "Reality",
      "Inside", "Planet", "Expedition"}},
    {"classical",
     {"Symphony", "Sonata", "Concerto", "Orchestra", "Violin", "Cello", "Fugue", "Overture",
      "Quartet", "Maestro"}},
    {"hip-hop",
     {"Breakbeat", "Mixtape", "Flow", "Block", "Hustle", "Freestyle", "Boombox", "Graffiti",
      "Street", "Microphone"}},
    {"photography",
     {"Lens", "Shutter", "Exposure", "Darkroom", "Aperture", "Snapshot", "Tripod", "Focus",
      "Negative", "Polaroid"}},
    {"fitness",
     {"Workout", "Cardio", "Muscle", "Sprint", "Stamina", "Marathon", "Kettlebell", "Strength",
      "Training", "Pulse"}},
    {"chess",
     {"Gambit", "Checkmate", "Bishop", "Knight", "Rook", "Pawn", "Endgame", "Opening", "Queen",
      "Stalemate"}},
    {"astronomy",
     {"Telescope", "Comet", "Eclipse", "Cosmos", "Constellation", "Supernova", "Meteor", "Pulsar",
      "Moon", "Stars"}},
    {"cycling",
     {"Bicycle", "Pedal", "Peloton", "Saddle", "Spokes", "Tandem", "Velodrome", "Climb",
      "Breakaway", "Gears"}},
    {"baking",
     {"Bread", "Sourdough", "Pastry", "Oven", "Dough", "Croissant", "Muffin", "Crust", "Flour",
      "Cake"}},
    {"woodwork",
     {"Timber", "Chisel", "Lathe", "Oak", "Workshop", "Carpentry", "Joinery", "Plank", "Sawdust",
      "Cabinet"}},
    {"sailing",
     {"Sail", "Regatta", "Mast", "Anchor", "Tide", "Schooner", "Keel", "Mariner", "Lighthouse",
      "Helm"}},
    {"wildlife",
     {"Wolves", "Savanna", "Eagle", "Safari", "Herd", "Tiger", "Burrow", "Jungle", "Predator",
      "Migration"}},
    {"architecture",
     {"Tower", "Bridge", "Cathedral", "Facade", "Concrete", "Skyline", "Arch", "Villa", "Blueprint",
      "Atrium"}},
    {"anime",
     {"Mecha", "Ninja", "Samurai", "Shonen", "Spirit", "Academy", "Titan", "Sakura", "Ronin",
      "Chibi"}},
    {"folk",
     {"Fiddle", "Banjo", "Hearth", "Village", "Lullaby", "Prairie", "Homestead", "Troubadour",
      "Mountain", "Dulcimer"}},
    {"opera",
     {"Opera", "Aria", "Diva", "Libretto", "Tenor", "Soprano", "Encore", "Curtain", "Chorus",
      "Baritone"}},
    {"electronic",
     {"Synth", "Techno", "Bass", "Circuit", "Rave", "Neon", "Pixel", "Voltage", "Loop", "Signal"}},
    {"crime",
     {"Heist", "Gangster", "Mobster", "Cartel", "Robbery", "Verdict", "Smuggler", "Vendetta",
      "Racket", "Precinct"}},
    {"western",
     {"Cowboy", "Saloon", "Outlaw", "Sheriff", "Frontier", "Stagecoach", "Rodeo", "Canyon", "Ranch",
      "Gunslinger"}},
};
#define N_NAMED_TOPICS EMBER_ARRAY_LEN(topics)

static const char *const adjectives[] = {
    "Golden", "Silent",  "Lost",   "Little",   "Last",     "Hidden",    "Endless", "Wild",
    "Secret", "Midnight", "Broken", "Bright",  "Distant",  "Quiet",     "Electric", "Northern",
    "Forgotten", "Crimson", "Gentle", "Infinite", "Velvet", "Winter",  "Summer",  "Hollow",
};
static const char *const nouns[] = {
    "Sessions", "Stories", "Nights", "Dreams", "Road",   "Chronicles", "Days",   "Letters",
    "Echoes",   "Lessons", "Journeys", "Legends", "Hours", "Notes",     "Tales",  "Voices",
    "Maps",     "Seasons", "Rooms",  "Lights", "Diaries", "Songs",     "Roots",  "Horizons",
};
#define N_ADJ EMBER_ARRAY_LEN(adjectives)
#define N_NOUN EMBER_ARRAY_LEN(nouns)

/* Title patterns, in this order: "Topic Noun", "Adj Topic Noun", "Adj
 * Topic", "The Adj Topic Noun", "Adj Noun of Topic": 17,760 titles per
 * topic. */
#define TITLE_P0 (TOPIC_WORDS * N_NOUN)
#define TITLE_P1 (N_ADJ * TOPIC_WORDS * N_NOUN)
#define TITLE_P2 (N_ADJ * TOPIC_WORDS)
#define TITLE_P3 (N_ADJ * TOPIC_WORDS * N_NOUN)
#define TITLE_P4 (N_ADJ * TOPIC_WORDS * N_NOUN)
#define TITLE_SPACE (TITLE_P0 + TITLE_P1 + TITLE_P2 + TITLE_P3 + TITLE_P4)

/* ------------------------------------------------------ behaviour knobs */

#define MAX_INTERESTS 8       /* interests a user can gather by drifting */
#define PARETO_ALPHA 2.0      /* Lomax shape: mean 1, median 0.41 */
#define PARETO_CAP 100.0      /* truncation: no user above 100x the mean share */
#define TOPIC_APPEAL_ZIPF 1.5 /* fans per item of the k-th most appealing topic ~ k^-1.5 */
#define P_EXPLORE 0.15        /* draw from all items instead of the active topic */
#define P_SWITCH_SESSION 0.03 /* switch the active interest inside a session */
#define P_SWITCH_BREAK 0.30   /* ... after a session break */
#define P_NEW_INTEREST 0.008  /* take up a new topic */
#define P_BREAK_PCT 15        /* % of gaps that are session breaks */
#define T_START 1420070400    /* 2015-01-01T00:00:00Z: users start in 4 years from it */
#define T_START_SPREAD (4 * 365 * 86400LL)

/* ---------------------------------------------- deterministic log / exp */

static const double LN2 = 0x1.62e42fefa39efp-1;

/* Natural log of x > 0 from 2*atanh((m-1)/(m+1)) on the mantissa. */
static double det_log(double x)
{
    int e;
    double m = frexp(x, &e);
    if (m < 0x1.6a09e667f3bcdp-1) {
        m *= 2.0;
        e--;
    }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s, term = s, sum = 0.0;
    for (int k = 1; k <= 31; k += 2) {
        sum += term / k;
        term *= s2;
    }
    return 2.0 * sum + (double)e * LN2;
}

/* e^x by x = k ln2 + r, |r| <= ln2/2, and a Taylor polynomial for e^r. */
static double det_exp(double x)
{
    if (x < -740.0)
        return 0.0;
    if (x > 700.0)
        x = 700.0;
    double k = floor(x / LN2 + 0.5);
    double r = x - k * LN2;
    double p = 1.0;
    for (int n = 18; n >= 1; n--)
        p = 1.0 + p * r / n;
    return ldexp(p, (int)k);
}

static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* An approximately standard normal draw (sum of four uniforms, scaled):
 * arithmetic only, bounded by +-3.5. */
static double det_normal(ember_rng *r)
{
    double s = ember_rng_uniform(r) + ember_rng_uniform(r) + ember_rng_uniform(r) +
               ember_rng_uniform(r);
    return (s - 2.0) * 1.7320508075688772;
}

/* ---------------------------------------------------------- alias tables */

/* One column of an alias table: draw a column uniformly, keep its item
 * when the low 32 bits of the draw are below thr, else take alias.  The
 * three fields sit together so that a draw costs one cache miss. */
typedef struct {
    uint32_t thr, item, alias;
} alias_col;

static inline uint32_t alias_draw(const alias_col *tab, size_t n, uint64_t x)
{
    const alias_col *c = &tab[((x >> 32) * (uint64_t)n) >> 32];
    return (uint32_t)x < c->thr ? c->item : c->alias;
}

/* Vose's method over weights w[0..n) (all > 0) into tab[0..n); col_item
 * maps a column to its item id (NULL: the column is the id).  scaled and
 * stack are work arrays of n. */
static void alias_build(const double *w, size_t n, const uint32_t *col_item, alias_col *tab,
                        double *scaled, uint32_t *stack)
{
    double total = 0.0;
    for (size_t i = 0; i < n; i++)
        total += w[i];
    size_t n_small = 0, n_large = 0; /* small from the front, large from the back */
    for (size_t i = 0; i < n; i++) {
        tab[i].item = col_item ? col_item[i] : (uint32_t)i;
        scaled[i] = w[i] * (double)n / total;
        if (scaled[i] < 1.0)
            stack[n_small++] = (uint32_t)i;
        else
            stack[n - 1 - n_large++] = (uint32_t)i;
    }
    while (n_small > 0 && n_large > 0) {
        uint32_t s = stack[--n_small];
        uint32_t l = stack[n - n_large];
        tab[s].thr = (uint32_t)(scaled[s] * 4294967296.0);
        tab[s].alias = tab[l].item;
        scaled[l] = (scaled[l] + scaled[s]) - 1.0;
        if (scaled[l] < 1.0) {
            n_large--;
            stack[n_small++] = l;
        }
    }
    /* what is left is full up to rounding: the column keeps its item */
    for (size_t k = 0; k < n_small; k++) {
        alias_col *c = &tab[stack[k]];
        c->thr = UINT32_MAX;
        c->alias = c->item;
    }
    for (size_t k = 0; k < n_large; k++) {
        alias_col *c = &tab[stack[n - 1 - k]];
        c->thr = UINT32_MAX;
        c->alias = c->item;
    }
}

/* ------------------------------------------------------------- output */

#define OUT_BUF (1u << 20)

typedef struct {
    int fd;
    char *buf;
    size_t len;
    const char *path; /* final path, for messages */
    char tmp[4096];
} out_file;

static int out_open(out_file *o, const char *path)
{
    o->fd = -1;
    o->len = 0;
    o->path = path;
    o->buf = ember_alloc(OUT_BUF, 1);
    if (!o->buf)
        return EMBER_ENOMEM;
    for (int attempt = 0; attempt < 100; attempt++) {
        int n = snprintf(o->tmp, sizeof o->tmp, "%s.tmp%ld.%d", path, (long)getpid(), attempt);
        if (n < 0 || (size_t)n >= sizeof o->tmp) {
            free(o->buf);
            o->buf = NULL;
            o->tmp[0] = '\0';
            return ember_fail(EMBER_EINVAL, "%s: path too long", path);
        }
        o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (o->fd >= 0)
            return EMBER_OK;
        if (errno != EEXIST)
            break;
    }
    int e = errno;
    free(o->buf);
    o->buf = NULL;
    o->tmp[0] = '\0'; /* not ours: never to be removed */
    return ember_fail(EMBER_EIO, "%s: cannot create: %s", path, strerror(e));
}

static int out_flush(out_file *o)
{
    size_t off = 0;
    while (off < o->len) {
        ssize_t w = write(o->fd, o->buf + off, o->len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return ember_fail(EMBER_EIO, "%s: write failed: %s", o->path, strerror(errno));
        }
        off += (size_t)w;
    }
    o->len = 0;
    return EMBER_OK;
}

/* Room for at least need more bytes (need <= OUT_BUF). */
static inline int out_reserve(out_file *o, size_t need)
{
    return o->len + need > OUT_BUF ? out_flush(o) : EMBER_OK;
}

static inline void out_str(out_file *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static inline void out_char(out_file *o, char c)
{
    o->buf[o->len++] = c;
}

static inline void out_u64(out_file *o, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        o->buf[o->len++] = tmp[--n];
}

/* Flushes and closes; on success the file is complete under its temporary
 * name (out_commit renames it). */
static int out_finish(out_file *o)
{
    int st = out_flush(o);
    if (close(o->fd) != 0 && st == EMBER_OK)
        st = ember_fail(EMBER_EIO, "%s: close failed: %s", o->path, strerror(errno));
    o->fd = -1;
    free(o->buf);
    o->buf = NULL;
    return st;
}

static int out_commit(out_file *o)
{
    if (rename(o->tmp, o->path) != 0) {
        int e = errno;
        unlink(o->tmp);
        return ember_fail(EMBER_EIO, "%s: cannot rename into place: %s", o->path, strerror(e));
    }
    o->tmp[0] = '\0';
    return EMBER_OK;
}

/* Closes (if open) and removes the temporary file after a failure. */
static void out_abandon(out_file *o)
{
    if (o->fd >= 0)
        close(o->fd);
    o->fd = -1;
    free(o->buf);
    o->buf = NULL;
    if (o->tmp[0])
        unlink(o->tmp);
    o->tmp[0] = '\0';
}

/* ---------------------------------------------------------- generator */

typedef struct {
    const data_synth_opts *o;
    size_t n_users, n_items, n_topics;
    uint32_t *item_topic;  /* n_items */
    uint64_t *topic_start; /* n_topics + 1: topic t's table is topic_tab[start[t]..] */
    alias_col *topic_tab;  /* per-topic alias tables over the topic's items */
    alias_col *global_tab; /* alias table over all items */
    double *topic_cum;     /* cumulative interest weight (mass x appeal), n_topics */
    uint32_t *lens;        /* interactions per user */
    uint32_t *stamp;       /* stamp[i] == u + 1: user u already has item i */
} gen;

static void gen_free(gen *g)
{
    free(g->item_topic);
    free(g->topic_start);
    free(g->topic_tab);
    free(g->global_tab);
    free(g->topic_cum);
    free(g->lens);
    free(g->stamp);
}

/* Topics, popularity and alias tables. */
static int build_items(gen *g)
{
    size_t I = g->n_items, T = g->n_topics;
    ember_rng r;
    ember_rng_seed(&r, g->o->seed ^ 0x6a09e667f3bcc908ULL);
    double *w = ember_alloc(I, sizeof *w);        /* popularity of each item */
    double *slice = ember_alloc(I, sizeof *slice); /* weights of one topic's items */
    double *scaled = ember_alloc(I, sizeof *scaled);
    uint32_t *perm = ember_alloc(I, sizeof *perm);
    double *size_cum = ember_alloc(T, sizeof *size_cum);
    g->item_topic = ember_alloc(I, sizeof *g->item_topic);
    g->topic_start = ember_calloc(T + 1, sizeof *g->topic_start);
    uint32_t *topic_items = ember_alloc(I, sizeof *topic_items); /* grouped by topic */
    g->topic_tab = ember_alloc(I, sizeof *g->topic_tab);
    g->global_tab = ember_alloc(I, sizeof *g->global_tab);
    g->topic_cum = ember_alloc(T, sizeof *g->topic_cum);
    int st = EMBER_OK;
    if (!w || !slice || !scaled || !perm || !size_cum || !g->item_topic || !g->topic_start ||
        !topic_items || !g->topic_tab || !g->global_tab || !g->topic_cum) {
        st = EMBER_ENOMEM;
        goto done;
    }
    /* topic sizes: relative weights in [0.4, 1.4); the first T items of a
     * random order take one topic each, so that no topic is empty */
    double size_total = 0.0;
    for (size_t t = 0; t < T; t++) {
        size_total += 0.4 + ember_rng_uniform(&r);
        size_cum[t] = size_total;
    }
    for (size_t i = 0; i < I; i++)
        perm[i] = (uint32_t)i;
    ember_rng_shuffle_u32(&r, perm, I);
    for (size_t k = 0; k < I; k++) {
        size_t t = k;
        if (k >= T) {
            double x = ember_rng_uniform(&r) * size_total;
            size_t lo = 0, hi = T - 1;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (size_cum[mid] > x)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            t = lo;
        }
        g->item_topic[perm[k]] = (uint32_t)t;
    }
    /* popularity: after a fresh shuffle, item perm[k] has rank k + 1 */
    ember_rng_shuffle_u32(&r, perm, I);
    for (size_t k = 0; k < I; k++)
        w[perm[k]] = det_exp(-g->o->zipf * det_log((double)(k + 1)));
    /* items grouped by topic, ids ascending (perm[0..T) are fill cursors) */
    for (size_t i = 0; i < I; i++)
        g->topic_start[g->item_topic[i] + 1]++;
    for (size_t t = 0; t < T; t++) {
        g->topic_start[t + 1] += g->topic_start[t];
        perm[t] = 0;
    }
    for (size_t i = 0; i < I; i++) {
        uint32_t t = g->item_topic[i];
        topic_items[g->topic_start[t] + perm[t]++] = (uint32_t)i;
    }
    /* how much a topic appeals to users: Zipf over a random order of the
     * topics (some categories draw far more fans per item than others) */
    double *appeal = size_cum; /* the topic sizes are no longer needed */
    for (size_t t = 0; t < T; t++)
        perm[t] = (uint32_t)t;
    ember_rng_shuffle_u32(&r, perm, T);
    for (size_t t = 0; t < T; t++)
        appeal[perm[t]] = det_exp(-TOPIC_APPEAL_ZIPF * det_log((double)(t + 1)));
    /* one alias table per topic slice; a topic's chance to be an interest
     * is its popularity mass times its appeal */
    double cum = 0.0;
    for (size_t t = 0; t < T; t++) {
        size_t a = (size_t)g->topic_start[t], n = (size_t)(g->topic_start[t + 1] - a);
        double mass = 0.0;
        for (size_t k = 0; k < n; k++) {
            slice[k] = w[topic_items[a + k]];
            mass += slice[k];
        }
        alias_build(slice, n, topic_items + a, g->topic_tab + a, scaled, perm);
        cum += mass * appeal[t];
        g->topic_cum[t] = cum;
    }
    alias_build(w, I, NULL, g->global_tab, scaled, perm);
done:
    free(topic_items);
    free(w);
    free(slice);
    free(scaled);
    free(perm);
    free(size_cum);
    return st;
}

/* Interactions per user: a floor of min(5, total / U) each, the rest in
 * proportion to truncated Lomax (Pareto II) weights (1-u)^(-1/alpha) - 1,
 * capped at n_items / 2, or n_items when the total needs it (water-filling:
 * what a capped user cannot take is shared again among the others), the
 * last units handed out one by one from a random user on. */
static int allocate_lengths(gen *g, size_t total)
{
    size_t U = g->n_users, I = g->n_items;
    /* nobody takes more than half of the items, unless the total needs it */
    size_t cap = I / 2 <= SIZE_MAX / U && total <= U * (I / 2) ? I / 2 : I;
    ember_rng r;
    ember_rng_seed(&r, g->o->seed ^ 0xbb67ae8584caa73bULL);
    double *w = ember_alloc(U, sizeof *w);
    g->lens = ember_alloc(U, sizeof *g->lens);
    if (!w || !g->lens) {
        free(w);
        return EMBER_ENOMEM;
    }
    size_t floor_len = EMBER_MIN((size_t)5, total / U);
    for (size_t u = 0; u < U; u++) {
        double x = det_exp(-det_log(1.0 - ember_rng_uniform(&r)) / PARETO_ALPHA) - 1.0;
        w[u] = EMBER_MIN(x, PARETO_CAP);
        g->lens[u] = (uint32_t)floor_len;
    }
    size_t left = total - floor_len * U;
    for (int round = 0; round < 64 && left > 0; round++) {
        double wsum = 0.0;
        for (size_t u = 0; u < U; u++)
            if (g->lens[u] < cap)
                wsum += w[u];
        if (wsum <= 0.0)
            break;
        size_t given = 0;
        double share = (double)left / wsum;
        for (size_t u = 0; u < U && given < left; u++) {
            if (g->lens[u] >= cap)
                continue;
            double want = share * w[u];
            size_t add = want >= (double)(cap - g->lens[u]) ? cap - g->lens[u] : (size_t)want;
            add = EMBER_MIN(add, left - given);
            g->lens[u] += (uint32_t)add;
            given += add;
        }
        left -= given;
        if (given == 0)
            break;
    }
    size_t u = (size_t)ember_rng_below(&r, U);
    while (left > 0) {
        if (g->lens[u] < cap) {
            g->lens[u]++;
            left--;
        }
        u = u + 1 == U ? 0 : u + 1;
    }
    free(w);
    return EMBER_OK;
}

/* ---------------------------------------------------------------- users */

typedef struct {
    uint32_t topic[MAX_INTERESTS];
    double aff[MAX_INTERESTS]; /* affinity in (0, 1]; the first interest has 1 */
    int n, active;
} interests;

/* A topic drawn in proportion to its popularity mass times its appeal. */
static uint32_t draw_topic(const gen *g, ember_rng *r)
{
    size_t T = g->n_topics;
    double x = ember_rng_uniform(r) * g->topic_cum[T - 1];
    size_t lo = 0, hi = T - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->topic_cum[mid] > x)
            hi = mid;
        else
            lo = mid + 1;
    }
    return (uint32_t)lo;
}

/* Adds a topic the user does not hold yet (a few tries; none when all
 * drawn topics are held).  Returns its slot or -1. */
static int add_interest(const gen *g, interests *in, ember_rng *r, double aff)
{
    if (in->n >= MAX_INTERESTS)
        return -1;
    for (int tries = 0; tries < 16; tries++) {
        uint32_t t = draw_topic(g, r);
        bool held = false;
        for (int k = 0; k < in->n; k++)
            held |= in->topic[k] == t;
        if (!held) {
            in->topic[in->n] = t;
            in->aff[in->n] = aff;
            return in->n++;
        }
    }
    return -1;
}

/* Moves the active interest to another one, chosen by affinity. */
static void switch_interest(interests *in, ember_rng *r)
{
    if (in->n < 2)
        return;
    double sum = 0.0;
    for (int k = 0; k < in->n; k++)
        if (k != in->active)
            sum += in->aff[k];
    double x = ember_rng_uniform(r) * sum;
    int last = -1;
    for (int k = 0; k < in->n; k++) {
        if (k == in->active)
            continue;
        last = k;
        x -= in->aff[k];
        if (x < 0.0)
            break;
    }
    in->active = last;
}

/* An item user u (stamp us) does not have yet: by popularity from topic t,
 * or from all items when exploring or when the topic keeps giving known
 * items; as a last resort the next unknown item after a cursor. */
static uint32_t pick_item(gen *g, ember_rng *r, uint32_t t, uint32_t us, uint32_t *cursor)
{
    if (ember_rng_uniform(r) >= P_EXPLORE) {
        size_t a = (size_t)g->topic_start[t], n = (size_t)(g->topic_start[t + 1] - a);
        for (int tries = 0; tries < 12; tries++) {
            uint32_t it = alias_draw(g->topic_tab + a, n, ember_rng_next(r));
            if (g->stamp[it] != us)
                return it;
        }
    }
    for (int tries = 0; tries < 16; tries++) {
        uint32_t it = alias_draw(g->global_tab, g->n_items, ember_rng_next(r));
        if (g->stamp[it] != us)
            return it;
    }
    if (*cursor == UINT32_MAX)
        *cursor = (uint32_t)ember_rng_below(r, g->n_items);
    while (g->stamp[*cursor] == us)
        *cursor = *cursor + 1 == g->n_items ? 0 : *cursor + 1;
    return *cursor;
}

static int write_user(gen *g, out_file *o, uint32_t u)
{
    const uint64_t seed = g->o->seed;
    ember_rng r;
    ember_rng_seed(&r, seed ^ ((uint64_t)(u + 1) * 0xd1b54a32d192ed03ULL));
    uint32_t len = g->lens[u], us = u + 1, cursor = UINT32_MAX;

    interests in = {.n = 0, .active = 0};
    double x = ember_rng_uniform(&r);
    int want = x < 0.35 ? 1 : x < 0.75 ? 2 : 3;
    add_interest(g, &in, &r, 1.0);
    for (int k = 1; k < want; k++)
        add_interest(g, &in, &r, 0.3 + 0.6 * ember_rng_uniform(&r));
    double ubias = 0.35 * det_normal(&r);

    /* active period and gaps: short gaps inside sessions (mean ~8 min),
     * breaks sized so that the user's interactions span about the period */
    int64_t ts = T_START + (int64_t)ember_rng_below(&r, (uint64_t)T_START_SPREAD);
    uint64_t period = 7 * 86400 + ember_rng_below(&r, 2 * 365 * 86400ULL);
    uint64_t mean_gap = period / len;
    uint64_t brk = mean_gap * 100 > 85 * 480 ? (mean_gap * 100 - 85 * 480) / P_BREAK_PCT : 0;
    brk = EMBER_MIN(brk, period / 4); /* few interactions: a few breaks, none huge */
    brk = EMBER_MAX(brk, (uint64_t)3600);

    for (uint32_t j = 0; j < len; j++) {
        bool is_break = false;
        if (j > 0) {
            is_break = ember_rng_below(&r, 100) < P_BREAK_PCT;
            ts += is_break ? (int64_t)(brk / 2 + ember_rng_below(&r, brk))
                           : (int64_t)(30 + ember_rng_below(&r, 900));
            double y = ember_rng_uniform(&r);
            double p_switch = is_break ? P_SWITCH_BREAK : P_SWITCH_SESSION;
            int k;
            if (y < P_NEW_INTEREST &&
                (k = add_interest(g, &in, &r, 0.3 + 0.5 * ember_rng_uniform(&r))) >= 0)
                in.active = k;
            else if (y < P_NEW_INTEREST + p_switch)
                switch_interest(&in, &r);
        }
        uint32_t it = pick_item(g, &r, in.topic[in.active], us, &cursor);
        g->stamp[it] = us;

        double aff = 0.0;
        for (int k = 0; k < in.n; k++)
            if (in.topic[k] == g->item_topic[it])
                aff = in.aff[k];
        double quality = ((double)(mix64(seed ^ 0x3c6ef372fe94f82bULL ^ it) >> 11) * 0x1.0p-53 -
                          0.5) * 0.8;
        double v = 2.5 + 1.5 * aff + ubias + quality + 0.7 * det_normal(&r);
        int rating = v < 1.5 ? 1 : v >= 4.5 ? 5 : (int)(v + 0.5);

        int st = out_reserve(o, 64);
        if (st)
            return st;
        out_u64(o, (uint64_t)u + 1);
        out_char(o, '\t');
        out_u64(o, (uint64_t)it + 1);
        out_char(o, '\t');
        out_char(o, (char)('0' + rating));
        out_char(o, '\t');
        out_u64(o, (uint64_t)ts);
        out_char(o, '\n');
    }
    return EMBER_OK;
}

/* ---------------------------------------------------------- item file */

#define TITLE_MULT 7919 /* a prime: coprime with TITLE_SPACE */
_Static_assert(TITLE_SPACE % TITLE_MULT != 0, "the title scramble needs a coprime multiplier");

/* Title j (0-based, within its topic) of topic t: the j-th code of a
 * scrambled enumeration of the patterns, so that neighbours differ and no
 * two items of a topic share a title; past the space, a volume number. */
static void write_title(out_file *o, const gen *g, uint32_t t, uint64_t j, uint64_t vol_block)
{
    const topic_words *tw = &topics[t % N_NAMED_TOPICS];
    uint64_t round = t / N_NAMED_TOPICS;
    uint64_t off = mix64(g->o->seed ^ 0xa54ff53a5f1d36f1ULL ^ t) % TITLE_SPACE;
    uint64_t c = ((j % TITLE_SPACE) * TITLE_MULT + off) % TITLE_SPACE;
    uint64_t vol = round * vol_block + j / TITLE_SPACE + 1;
    if (c < TITLE_P0) {
        out_str(o, tw->words[c % TOPIC_WORDS]);
        out_char(o, ' ');
        out_str(o, nouns[c / TOPIC_WORDS]);
    } else if ((c -= TITLE_P0) < TITLE_P1) {
        out_str(o, adjectives[(c / TOPIC_WORDS) % N_ADJ]);
        out_char(o, ' ');
        out_str(o, tw->words[c % TOPIC_WORDS]);
        out_char(o, ' ');
        out_str(o, nouns[c / TOPIC_WORDS / N_ADJ]);
    } else if ((c -= TITLE_P1) < TITLE_P2) {
        out_str(o, adjectives[c / TOPIC_WORDS]);
        out_char(o, ' ');
        out_str(o, tw->words[c % TOPIC_WORDS]);
    } else if ((c -= TITLE_P2) < TITLE_P3) {
        out_str(o, "The ");
        out_str(o, adjectives[(c / TOPIC_WORDS) % N_ADJ]);
        out_char(o, ' ');
        out_str(o, tw->words[c % TOPIC_WORDS]);
        out_char(o, ' ');
        out_str(o, nouns[c / TOPIC_WORDS / N_ADJ]);
    } else {
        c -= TITLE_P3;
        out_str(o, adjectives[(c / TOPIC_WORDS) % N_ADJ]);
        out_char(o, ' ');
        out_str(o, nouns[c / TOPIC_WORDS / N_ADJ]);
        out_str(o, " of ");
        out_str(o, tw->words[c % TOPIC_WORDS]);
    }
    if (vol > 1) {
        out_char(o, ' ');
        out_u64(o, vol);
    }
}

static int write_items(const gen *g, out_file *o)
{
    size_t T = g->n_topics;
    uint64_t *seen = ember_calloc(T, sizeof *seen); /* items of each topic written so far */
    if (!seen)
        return EMBER_ENOMEM;
    uint64_t biggest = 0;
    for (size_t t = 0; t < T; t++)
        biggest = EMBER_MAX(biggest, g->topic_start[t + 1] - g->topic_start[t]);
    uint64_t vol_block = (biggest + TITLE_SPACE - 1) / TITLE_SPACE;
    int st = out_reserve(o, 64);
    if (st == EMBER_OK)
        out_str(o, "item_id:token\ttitle:token_seq\tcategory:token\n");
    for (size_t i = 0; i < g->n_items && st == EMBER_OK; i++) {
        if ((st = out_reserve(o, 256)))
            break;
        uint32_t t = g->item_topic[i];
        out_u64(o, (uint64_t)i + 1);
        out_char(o, '\t');
        write_title(o, g, t, seen[t]++, vol_block);
        out_char(o, '\t');
        out_str(o, topics[t % N_NAMED_TOPICS].name);
        if (t >= N_NAMED_TOPICS) {
            out_char(o, '-');
            out_u64(o, t / N_NAMED_TOPICS + 1);
        }
        out_char(o, '\n');
    }
    free(seen);
    return st;
}

/* ------------------------------------------------------------- public */

void data_synth_opts_init(data_synth_opts *o)
{
    o->n_users = 1000;
    o->n_items = 2000;
    o->n_interactions = 50000;
    o->n_topics = 20;
    o->zipf = 0.9;
    o->seed = 42;
}

static int check_opts(const data_synth_opts *o)
{
    if (o->n_users == 0 || o->n_items == 0 || o->n_topics == 0)
        return ember_fail(EMBER_EINVAL, "synth: users, items and topics must be at least 1");
    if (o->n_users > UINT32_MAX - 2 || o->n_items > UINT32_MAX - 2)
        return ember_fail(EMBER_ETOOBIG, "synth: at most %u users and items",
                          (unsigned)(UINT32_MAX - 2));
    if (o->n_topics > o->n_items)
        return ember_fail(EMBER_EINVAL, "synth: %zu topics for %zu items (a topic needs an item)",
                          o->n_topics, o->n_items);
    if (o->n_interactions < o->n_users)
        return ember_fail(EMBER_EINVAL,
                          "synth: %zu interactions for %zu users (every user needs at least one)",
                          o->n_interactions, o->n_users);
    if (!(o->zipf >= 0.0 && o->zipf <= 5.0))
        return ember_fail(EMBER_EINVAL, "synth: zipf exponent must be in [0, 5]");
    return EMBER_OK;
}

int data_synth_write(const data_synth_opts *o, const char *inter_path, const char *item_path)
{
    if (!o || !inter_path)
        return ember_fail(EMBER_EINVAL, "synth: options and an output path are required");
    int st = check_opts(o);
    if (st)
        return st;
    gen g = {.o = o, .n_users = o->n_users, .n_items = o->n_items, .n_topics = o->n_topics};
    size_t total = o->n_interactions;
    if (o->n_items <= SIZE_MAX / o->n_users)
        total = EMBER_MIN(total, o->n_users * o->n_items);

    out_file fi = {.fd = -1}, fu = {.fd = -1};
    if ((st = build_items(&g)) || (st = allocate_lengths(&g, total)))
        goto fail;
    if (!(g.stamp = ember_calloc(g.n_items, sizeof *g.stamp))) {
        st = EMBER_ENOMEM;
        goto fail;
    }
    if (item_path) {
        if ((st = out_open(&fi, item_path)) || (st = write_items(&g, &fi)))
            goto fail;
        if ((st = out_finish(&fi)))
            goto fail;
    }
    if ((st = out_open(&fu, inter_path)))
        goto fail;
    if ((st = out_reserve(&fu, 64)))
        goto fail;
    out_str(&fu, "user\titem\trating\ttimestamp\n");
    for (size_t u = 0; u < g.n_users; u++)
        if ((st = write_user(&g, &fu, (uint32_t)u)))
            goto fail;
    if ((st = out_finish(&fu)))
        goto fail;
    if ((item_path && (st = out_commit(&fi))) || (st = out_commit(&fu)))
        goto fail;
    gen_free(&g);
    return EMBER_OK;
fail:
    out_abandon(&fi);
    out_abandon(&fu);
    gen_free(&g);
    return st;
}
