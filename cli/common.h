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
    int id;                 /* > 0, returned by cli_next() */
} cli_option;

enum {
    CLI_END = 0,        /* no arguments left */
    CLI_OPERAND = -1,   /* a non-option argument, in *value */
    CLI_BAD = -2        /* already reported; exit with CLI_USAGE */
};

typedef struct {
    const char *cmd;          /* for messages: "classify" */
    int argc;
    char **argv;
    int next;                 /* index of the next argument */
    bool operands_only;       /* after "--" */
    const cli_option *options; /* terminated by an entry with id 0 */
} cli_parser;

/* argv[0] is the sub-command's name and is skipped. */
void cli_parser_init(cli_parser *p, const char *cmd, int argc, char **argv,
                     const cli_option *options);

/* Returns the id of the next option (its argument in *value), CLI_OPERAND
 * with the argument in *value, CLI_END, or CLI_BAD. */
int cli_next(cli_parser *p, const char **value);

/* Parses a whole decimal integer in [min, max] given to option `name`;
 * reports and returns false otherwise. */
bool cli_parse_int(const char *cmd, const char *name, const char *text,
                   int min, int max, int *out);

/* ------------------------------------------------------------------ */
/* Models                                                             */
/* ------------------------------------------------------------------ */

/* Loads the model at path (cli_default_model() when NULL) and plans a
 * network for one image at a time; threads < 0 keeps the core's default.
 * Reports failures naming the file; returns CLI_OK or CLI_FAILED. */
int cli_open_model(const char *path, int threads, cnn_model **model,
                   cnn_net **net);

/* Decodes IMAGE for the model and runs the network on it.  Reports
 * failures naming the image; returns CLI_OK or CLI_FAILED. */
int cli_run_image(const cnn_model *m, cnn_net *net, const char *image,
                  float *input, float *logit);

/* Allocates the model's input tensor (one image); reports failure. */
float *cli_alloc_input(const cnn_model *m);

#endif
