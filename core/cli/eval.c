/* eval.c - STUB: replaced by the trainer's owner. */
#include <stdio.h>
#include "cli.h"
int cmd_eval(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fputs("catdog eval: not implemented yet\n", stderr);
    return 2;
}
