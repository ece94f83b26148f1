/*
 * cmd_data_stats.c — `ember data stats FILE`: read an interaction file and
 * describe it (counts, density, ratings, time range, popularity skew, user
 * and item lengths) as a short report or one JSON object.  The numbers come
 * from data_stats_compute (src/data/stats.c, where they are defined).
 */
#include "cli/cli.h"

#include "data/data.h"

#include <string.h>
#include <time.h>

static const char usage[] = "ember data stats FILE [--cols ...] [--format F] [--skip-bad] [--json]";

static const cli_opt opts[] = {
    {"input", 'i', false, false, "interaction file (or give it as the first argument)"},
    {"json", 0, true, false, "print one JSON object"},
    CLI_READ_OPTS,
};

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

/* "YYYY-MM-DD" (UTC) of a Unix time, or "?" when out of range. */
static const char *date_of(int64_t t, char *buf, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if ((int64_t)tt != t || !gmtime_r(&tt, &tm) || strftime(buf, n, "%Y-%m-%d", &tm) == 0)
        snprintf(buf, n, "?");
    return buf;
}

static void print_json(const char *path, const data_stats *s, const ember_read_stats *rs)
{
    char d0[32], d1[32];
    printf("{\"file\":");
    json_string(path);
    printf(",\"users\":%zu,\"items\":%zu,\"interactions\":%zu,\"density\":%.10g", s->n_users,
           s->n_items, s->nnz, s->density);
    printf(",\"rating_min\":%.10g,\"rating_max\":%.10g,\"rating_mean\":%.10g", s->rating_min,
           s->rating_max, s->rating_mean);
    printf(",\"time_min\":%lld,\"time_max\":%lld,\"date_min\":\"%s\",\"date_max\":\"%s\"",
           (long long)s->t_min, (long long)s->t_max, date_of(s->t_min, d0, sizeof d0),
           date_of(s->t_max, d1, sizeof d1));
    printf(",\"head1\":%.10g,\"head10\":%.10g,\"head20\":%.10g,\"tail80\":%.10g", s->head1,
           s->head10, s->head20, s->nnz ? 1.0 - s->head20 : 0.0);
    printf(",\"item_gini\":%.10g,\"items_once\":%zu", s->item_gini, s->items_once);
    printf(",\"user_len\":{\"min\":%.10g,\"p25\":%.10g,\"p50\":%.10g,\"p75\":%.10g,\"p90\":%.10g,"
           "\"max\":%.10g,\"mean\":%.10g}",
           s->ulen_min, s->ulen_p25, s->ulen_p50, s->ulen_p75, s->ulen_p90, s->ulen_max,
           s->ulen_mean);
    printf(",\"item_len\":{\"mean\":%.10g,\"max\":%.10g}", s->ilen_mean, s->ilen_max);
    printf(",\"lines\":%zu,\"skipped_bad\":%zu}\n", rs->lines, rs->bad);
}

static void print_report(const char *path, const data_stats *s, const ember_read_stats *rs)
{
    char d0[32], d1[32];
    printf("file          %s\n", path);
    printf("users         %zu\n", s->n_users);
    printf("items         %zu\n", s->n_items);
    printf("interactions  %zu", s->nnz);
    if (rs->bad)
        printf("  (%zu malformed line%s skipped)", rs->bad, rs->bad == 1 ? "" : "s");
    printf("\ndensity       %.4f%%\n", 100.0 * s->density);
    if (s->nnz == 0)
        return;
    printf("ratings       %g .. %g, mean %.3f\n", s->rating_min, s->rating_max, s->rating_mean);
    printf("time          %s .. %s  (%lld .. %lld)\n", date_of(s->t_min, d0, sizeof d0),
           date_of(s->t_max, d1, sizeof d1), (long long)s->t_min, (long long)s->t_max);
    printf("popularity    top 1%% of items hold %.1f%% of interactions, top 10%% %.1f%%, "
           "top 20%% %.1f%% (the other 80%% hold %.1f%%)\n",
           100.0 * s->head1, 100.0 * s->head10, 100.0 * s->head20, 100.0 * (1.0 - s->head20));
    printf("              Gini of item counts %.3f; %zu items with a single interaction\n",
           s->item_gini, s->items_once);
    printf("per user      min %g, p25 %g, median %g, p75 %g, p90 %g, max %g, mean %.1f\n",
           s->ulen_min, s->ulen_p25, s->ulen_p50, s->ulen_p75, s->ulen_p90, s->ulen_max,
           s->ulen_mean);
    printf("per item      mean %.1f, max %g\n", s->ilen_mean, s->ilen_max);
}

int cmd_data_stats(int argc, char **argv)
{
    const char *path = NULL;
    if (argc > 0 && argv[0][0] != '-') {
        path = argv[0];
        argc--;
        argv++;
    }
    cli_args a;
    bool help;
    if (!cli_parse(&a, opts, EMBER_ARRAY_LEN(opts), argc, argv, usage,
                   "Describes an interaction file: counts, density, ratings, time range, "
                   "popularity skew and per-user lengths.",
                   &help))
        return help ? EXIT_OK : EXIT_USAGE;
    const char *input = cli_get(&a, "input");
    if (path && input)
        return cli_usage_error(usage, "give the file once (as FILE or --input)");
    if (!path)
        path = input;
    if (!path)
        return cli_usage_error(usage, "an interaction file is required");
    ember_read_opts ro;
    if (!cli_read_opts(&a, &ro))
        return EXIT_USAGE;

    ember_dataset *d = NULL;
    ember_read_stats rs;
    cli_progress("reading %s", path);
    int st = ember_dataset_load(path, &ro, NULL, NULL, &d, &rs);
    cli_progress_done();
    if (st)
        return cli_fail("data stats");
    data_stats s;
    st = data_stats_compute(d, &s);
    ember_dataset_free(d);
    if (st)
        return cli_fail("data stats");
    if (cli_flag(&a, "json"))
        print_json(path, &s, &rs);
    else
        print_report(path, &s, &rs);
    return EXIT_OK;
}
