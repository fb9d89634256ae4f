/* main.c - the catdog command: dispatches to a sub-command. */
#include "cli.h"
#include "cnn.h"
#include "common.h"
#include "i18n.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"classify", cmd_classify, N_("say whether photos show a cat or a dog")},
    {"info", cmd_info, N_("describe a model file: metadata and layers")},
    {"maps", cmd_maps, N_("write each conv layer's feature maps as PNG mosaics")},
    {"cam", cmd_cam, N_("show where the network looks (Grad-CAM) as a heat map")},
    {"filters", cmd_filters, N_("draw what each filter of a conv layer looks for")},
    {"train", cmd_train, N_("train a model")},
    {"eval", cmd_eval, N_("measure a model on labelled photos")},
    {"bench", cmd_bench, N_("measure inference speed against this CPU's peak")},
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
    fputs(_("usage: catdog COMMAND [OPTION...] [ARG...]\n"
            "       catdog help COMMAND\n"
            "       catdog --version\n"
            "\n"
            "Commands:\n"), f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, _(commands[i].summary));
    fputc('\n', f);
    fprintf(f, _("Without --model, commands use $CATDOG_MODEL or the default model\n"
                 "(now %s).\n"),
            cli_default_model());
}

static int unknown_command(const char *name)
{
    char list[128] = "";
    for (size_t i = 0; i < N_COMMANDS; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof list - n, "%s%s", i ? " " : "", commands[i].name);
    }
    cli_error(_("unknown command '%s'; commands: %s (see 'catdog --help')"), name, list);
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
        cli_error("%s", _("'help' takes one command name (see 'catdog --help')"));
        return CLI_USAGE;
    }
    const command *c = find_command(argv[1]);
    if (!c) return unknown_command(argv[1]);
    char *args[] = {argv[1], (char *)"--help", NULL};
    return c->run(2, args);
}

/* Messages follow the user's language (LC_MESSAGES) and the terminal's
 * character set (LC_CTYPE, which gettext converts them to).  LC_NUMERIC
 * stays "C": scripts read the numbers (--json, eval's last line), so a
 * decimal comma must never appear. */
static void init_i18n(void)
{
#ifdef ENABLE_NLS
    setlocale(LC_MESSAGES, "");
    setlocale(LC_CTYPE, "");
    const char *dir = getenv("CATDOG_LOCALEDIR");
    bindtextdomain(CATDOG_TEXTDOMAIN, dir && *dir ? dir : CATDOG_LOCALEDIR);
    textdomain(CATDOG_TEXTDOMAIN);
#endif
}

int main(int argc, char **argv)
{
    init_i18n();
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
        cli_error(_("unknown option '%s' (see 'catdog --help')"), name);
        return CLI_USAGE;
    }
    const command *c = find_command(name);
    if (!c) return unknown_command(name);
    return c->run(argc - 1, argv + 1);
}
