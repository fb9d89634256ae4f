/* main.c - the catdog command: dispatches to a sub-command. */
#include "cli.h"
#include "cnn.h"
#include "common.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"classify", cmd_classify, "say whether photos show a cat or a dog"},
    {"info", cmd_info, "describe a model file: metadata and layers"},
    {"maps", cmd_maps, "write each conv layer's feature maps as PNG mosaics"},
    {"train", cmd_train, "train a model"},
    {"eval", cmd_eval, "measure a model on labelled photos"},
    {"bench", cmd_bench, "measure inference speed against this CPU's peak"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static void usage(FILE *f)
{
    fputs("usage: catdog COMMAND [OPTION...] [ARG...]\n"
          "       catdog help COMMAND\n"
          "       catdog --version\n"
          "\n"
          "Commands:\n", f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\nWithout --model, commands use $CATDOG_MODEL or the default model\n"
          "(now ", f);
    fputs(cli_default_model(), f);
    fputs(").\n", f);
}

static int unknown_command(const char *name)
{
    fprintf(stderr, "catdog: unknown command '%s'; commands:", name);
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(stderr, " %s", commands[i].name);
    fputs(" (see 'catdog --help')\n", stderr);
    return CLI_USAGE;
}

/* "catdog help CMD" is "catdog CMD --help", so each command keeps its
 * usage text in one place. */
static int help(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return CLI_OK;
    }
    if (argc > 2) {
        fputs("catdog: 'help' takes one command name (see 'catdog --help')\n", stderr);
        return CLI_USAGE;
    }
    const command *c = find_command(argv[1]);
    if (!c) return unknown_command(argv[1]);
    char *args[] = {argv[1], (char *)"--help", NULL};
    return c->run(2, args);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
        printf("catdog %s\n", CNN_VERSION);
        return CLI_OK;
    }
    if (strcmp(name, "help") == 0) return help(argc - 1, argv + 1);
    if (name[0] == '-') {
        fprintf(stderr, "catdog: unknown option '%s' (see 'catdog --help')\n", name);
        return CLI_USAGE;
    }
    const command *c = find_command(name);
    if (!c) return unknown_command(name);
    return c->run(argc - 1, argv + 1);
}
