/* cli.h - the catdog command line: one function per sub-command.  Each
 * returns the process exit status (0 ok, 1 failure, 2 usage error). */
#ifndef CATDOG_CLI_H
#define CATDOG_CLI_H

int cmd_classify(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_maps(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* The model used when --model is not given: $CATDOG_MODEL if set, else
 * the installed default (CATDOG_DATADIR), else the source tree's
 * weights/catdog.safetensors (for an uninstalled build). */
const char *cli_default_model(void);

#endif
