/*
 * cmd_data_synth.c — `ember data synth`: write a seeded synthetic
 * interaction file (and optionally its item file with titles and
 * categories) from src/data/synth.c, and say what was written.
 */
#include "cli/cli.h"

#include "data/data.h"

static const char usage[] =
    "ember data synth --out FILE [--items-out FILE] [--users N] [--items N] [--interactions N] "
    "[--topics N] [--zipf X] [--seed S]";

static const cli_opt opts[] = {
    {"out", 'o', false, false, "interactions to write (TSV: user item rating timestamp)"},
    {"items-out", 0, false, false, "item file to write (item_id, title, category)"},
    {"users", 0, false, false, "number of users (default 1000)"},
    {"items", 0, false, false, "number of items (default 2000)"},
    {"interactions", 0, false, false, "number of rows (default 50000; at most users x items)"},
    {"topics", 0, false, false, "number of topics / categories (default 20)"},
    {"zipf", 0, false, false, "popularity exponent: weight of the r-th item r^-zipf (default 0.9)"},
    {"seed", 0, false, false, "random seed (default 42); same seed, same files"},
};

int cmd_data_synth(int argc, char **argv)
{
    cli_args a;
    bool help;
    if (!cli_parse(&a, opts, EMBER_ARRAY_LEN(opts), argc, argv, usage,
                   "Generates seeded synthetic interactions with popularity skew, topics and "
                   "drifting user interests.",
                   &help))
        return help ? EXIT_OK : EXIT_USAGE;
    const char *out = cli_get(&a, "out"), *items_out = cli_get(&a, "items-out");
    if (!out)
        return cli_usage_error(usage, "--out is required");
    data_synth_opts o;
    data_synth_opts_init(&o);
    size_t seed;
    if (!cli_get_size(&a, "users", o.n_users, &o.n_users) ||
        !cli_get_size(&a, "items", o.n_items, &o.n_items) ||
        !cli_get_size(&a, "interactions", o.n_interactions, &o.n_interactions) ||
        !cli_get_size(&a, "topics", o.n_topics, &o.n_topics) ||
        !cli_get_double(&a, "zipf", o.zipf, &o.zipf) ||
        !cli_get_size(&a, "seed", (size_t)o.seed, &seed))
        return EXIT_USAGE;
    o.seed = seed;
    double t0 = ember_now();
    cli_progress("generating %zu interactions", o.n_interactions);
    int st = data_synth_write(&o, out, items_out);
    cli_progress_done();
    if (st == EMBER_EINVAL || st == EMBER_ETOOBIG)
        return cli_usage_error(usage, "%s", ember_last_error());
    if (st)
        return cli_fail("data synth");
    size_t rows = o.n_interactions;
    if (o.n_items <= SIZE_MAX / o.n_users)
        rows = EMBER_MIN(rows, o.n_users * o.n_items);
    printf("wrote %zu interactions (%zu users, %zu items, %zu topics, zipf %g, seed %llu) to %s%s%s"
           " in %.2f s\n",
           rows, o.n_users, o.n_items, o.n_topics, o.zipf, (unsigned long long)o.seed, out,
           items_out ? " and items to " : "", items_out ? items_out : "", ember_now() - t0);
    return EXIT_OK;
}
