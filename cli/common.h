/* common.h - helpers shared by the catdog sub-commands: messages, option
 * parsing, and opening a model with its network. */
#ifndef CATDOG_CLI_COMMON_H
#define CATDOG_CLI_COMMON_H

#include "cnn.h"

#include <stdbool.h>

#if defined(__GNUC__) || defined(__clang__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CLI_PRINTF(f, a)
#endif

/* Exit statuses of every sub-command. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/* "catdog: MESSAGE" on stderr. */
void cli_error(const char *fmt, ...) CLI_PRINTF(1, 2);

/* message without a leading "FILE: " (the core's messages usually name
 * the file they are about); "failed" for an empty message. */
const char *cli_without_file(const char *file, const char *message);

/* "catdog: FILE: MESSAGE" on stderr, the file named once. */
void cli_file_error(const char *file, const char *message);

/* "catdog CMD: MESSAGE" plus a pointer to the command's help on stderr;
 * returns CLI_USAGE so that callers write `return cli_usage_error(...)`. */
int cli_usage_error(const char *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);

/* ------------------------------------------------------------------ */
/* Option parsing: GNU style, options and operands in any order,       */
/* "--opt VALUE", "--opt=VALUE", "-o VALUE", "--" ends the options.   */
/* ------------------------------------------------------------------ */

typedef struct {
    const char *long_name;  /* without the dashes */
    char short_name;        /* 0 if none */
    bool has_value;
    int id;                 /* > 0, handed to the command's handler */
} cli_option;

/* The options the parser handles itself, for the commands that ask for
 * them (cli_parser_init's `common`), spelled the same everywhere. */
enum {
    CLI_COMMON_MODEL = 1,   /* -m, --model FILE: in p->model */
    CLI_COMMON_THREADS = 2, /* -t, --threads N, 0 to 1024: in p->threads */
    CLI_COMMON_HELP = 4     /* -h, --help: prints the usage; exit status 0 */
};

enum { CLI_OPERAND = -1 }; /* the id of a non-option argument */

typedef struct {
    const char *cmd;          /* for messages: "classify" */
    const char *usage;        /* N_()-marked help, printed translated */
    int common;               /* CLI_COMMON_* the command has */
    const char *model;        /* --model's value, NULL when not given */
    int threads;              /* --threads' value, -1 when not given */
    int argc;
    char **argv;
    int next;                 /* index of the next argument */
    bool operands_only;       /* after "--" */
    const cli_option *options; /* the command's own, ending with id 0 */
} cli_parser;

/* argv[0] is the sub-command's name and is skipped. */
void cli_parser_init(cli_parser *p, const char *cmd, int argc, char **argv,
                     const cli_option *options, int common, const char *usage);

/* Called in order for each of the command's own options (their id, the
 * argument in value) and each operand (CLI_OPERAND): returns CLI_OK to go
 * on, or the exit status after reporting why not. */
typedef int (*cli_handler)(void *ctx, int id, const char *value);

enum { CLI_CONTINUE = -1 };

/* Parses every argument.  Returns CLI_CONTINUE when the command is to run
 * (the common options in p), else its exit status: CLI_OK after --help,
 * CLI_USAGE after a usage error (reported), or what handle returned. */
int cli_parse(cli_parser *p, cli_handler handle, void *ctx);

/* cli_parse_int() for a handler: CLI_OK, or CLI_USAGE after reporting. */
int cli_int_option(const char *cmd, const char *name, const char *text, int min, int max,
                   int *out);

/* For options naming a file or folder: *out = value, unless value is
 * empty: then the usage error `message` (translated, no '%').  Returns
 * CLI_OK or CLI_USAGE. */
int cli_name_option(const char *cmd, const char *value, const char *message,
                    const char **out);

/* For the commands that take one IMAGE operand: keeps it in *image; a
 * second one is a usage error of cmd.  Returns CLI_OK or CLI_USAGE. */
int cli_one_image(const char *cmd, const char **image, const char *value);

/* Parses a whole decimal integer in [min, max] given to option `name`;
 * reports and returns false otherwise. */
bool cli_parse_int(const char *cmd, const char *name, const char *text,
                   int min, int max, int *out);

/* ------------------------------------------------------------------ */
/* Models                                                             */
/* ------------------------------------------------------------------ */

/* Loads the model at *path (when NULL, cli_default_model(), written back
 * to *path) and plans a network for one image at a time; threads < 0
 * keeps the core's default.  Reports failures naming the file; returns
 * CLI_OK or CLI_FAILED. */
int cli_open_model(const char **path, int threads, cnn_model **model,
                   cnn_net **net);
/* The same with the net's precision (cnn_net_options), and with tta a
 * net for an image and its mirror (cli_run_image_tta). */
int cli_open_model_precision(const char **path, int threads, cnn_precision precision,
                             bool tta, cnn_model **model, cnn_net **net);

/* --precision's value ("f32" or "bf16") into *out; a usage error of cmd
 * otherwise.  Returns CLI_OK or CLI_USAGE. */
int cli_precision_option(const char *cmd, const char *value, cnn_precision *out);

/* Decodes IMAGE for the model and runs the network on it.  Reports
 * failures naming the image; returns CLI_OK or CLI_FAILED. */
int cli_run_image(const cnn_model *m, cnn_net *net, const char *image,
                  float *input, float *logit);
/* The same; with tta the logit is flip-averaged (cnn_net_forward_flip:
 * the net from cli_open_model_precision with tta). */
int cli_run_image_tta(const cnn_model *m, cnn_net *net, const char *image,
                      float *input, bool tta, float *logit);

/* Allocates the model's input tensor (one image); reports failure. */
float *cli_alloc_input(const cnn_model *m);

/* Like mkdir -p; reports the failure and returns CLI_FAILED. */
int cli_make_dirs(const char *dir);

#endif
