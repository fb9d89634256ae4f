/* train.c - STUB: replaced by the trainer's owner. */
#include <stdio.h>
#include "cli.h"
int cmd_train(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("catdog train: not implemented yet\n", stderr);
    return 2;
}
