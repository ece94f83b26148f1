/*
 * cmd_models.c — `ember models`: the registered models, each with its
 * parameters, defaults and ranges, straight from the model tables.
 */
#include "cli/cli.h"

#include "models/model.h"

#include <string.h>

int cmd_models(int argc, char **argv);

int cmd_models(int argc, char **argv)
{
    if (argc > 0 && (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)) {
        printf("usage: ember models\n\nLists the models and their parameters.\n");
        return EXIT_OK;
    }
    if (argc > 0)
        return cli_usage_error("ember models", "unexpected argument '%s'", argv[0]);
    for (size_t i = 0; i < model_count(); i++) {
        const ember_model_ops *ops = model_at(i);
        printf("%-10s %s\n", ops->name, ops->summary);
        for (size_t p = 0; p < ops->n_params; p++) {
            const model_param *mp = &ops->params[p];
            char range[64] = "";
            if (mp->type == PARAM_CHOICE)
                snprintf(range, sizeof range, "%s", mp->choices);
            else if (mp->type == PARAM_BOOL)
                snprintf(range, sizeof range, "true|false");
            else
                snprintf(range, sizeof range, "%g..%g", mp->lo, mp->hi);
            printf("    %-12s default %-8s %-28s %s\n", mp->name, mp->def, range, mp->help);
        }
    }
    return EXIT_OK;
}
