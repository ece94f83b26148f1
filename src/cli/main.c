/*
 * main.c — the `ember` command: dispatch to one sub-command per file.
 *
 * The command line is a contract (issue 2): train, eval, recommend,
 * similar, data synth|stats|split.  Sub-commands may be added; existing
 * names and options are not renamed.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: ember COMMAND [options]   (ember COMMAND --help for details)\n"
    "\n"
    "commands:\n"
    "  train      fit a model:  ember train --train FILE [--valid FILE] --model NAME\n"
    "             [--param k=v ...] --out MODEL\n"
    "  eval       score a model on a test file (full ranking):  ember eval --model MODEL\n"
    "             --test FILE [--exclude FILE,...] [--history FILE,...] [-k 10] [--json]\n"
    "  recommend  top-k for a user or a history:  ember recommend --model MODEL\n"
    "             (--user ID | --history ID,ID,...) [-k 10] [--json]\n"
    "  similar    items like an item:  ember similar --model MODEL --item ID [-k 10] [--json]\n"
    "  data       synth | stats | split  (generate, describe, split interaction files)\n"
    "  models     list the models and their parameters\n"
    "  serve      HTTP API:  ember serve --model MODEL --db EVENTS.sqlite [--port 8080] [--keys FILE]\n"
    "  version    print the version\n"
    "\n"
    "exit codes: 0 ok, 1 failure (bad data, bad model file, i/o), 2 usage error\n";

int cmd_models(int argc, char **argv);

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : EXIT_OK;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("ember %s\n", EMBER_VERSION_STRING);
        return EXIT_OK;
    }
    if (strcmp(cmd, "train") == 0)
        return cmd_train(argc - 2, argv + 2);
    if (strcmp(cmd, "eval") == 0)
        return cmd_eval(argc - 2, argv + 2);
    if (strcmp(cmd, "recommend") == 0)
        return cmd_recommend(argc - 2, argv + 2);
    if (strcmp(cmd, "similar") == 0)
        return cmd_similar(argc - 2, argv + 2);
    if (strcmp(cmd, "models") == 0)
        return cmd_models(argc - 2, argv + 2);
    if (strcmp(cmd, "serve") == 0) return cmd_serve(argc - 2, argv + 2);
    if (strcmp(cmd, "data") == 0) {
        const char *sub = argc > 2 ? argv[2] : "";
        if (strcmp(sub, "synth") == 0)
            return cmd_data_synth(argc - 3, argv + 3);
        if (strcmp(sub, "stats") == 0)
            return cmd_data_stats(argc - 3, argv + 3);
        if (strcmp(sub, "split") == 0)
            return cmd_data_split(argc - 3, argv + 3);
        fprintf(stderr, "usage: ember data synth|stats|split [options]  (--help on each)\n");
        return EXIT_USAGE;
    }
    fprintf(stderr, "ember: unknown command '%s'\n%s", cmd, usage_text);
    return EXIT_USAGE;
}
