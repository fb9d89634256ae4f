/* make_model.c - writes a model with random weights for the plug-in tests:
 *   plugin_make_model SPEC SEED OUT
 * SPEC is a built-in architecture name ("article") or a JSON description
 * as stored in model files.  The plug-in and `catdog` must agree on any
 * model, trained or not; a random one keeps those tests independent of
 * the shipped weights. */
#include "cnn.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s SPEC SEED OUT\n", argv[0]);
        return 2;
    }
    char *end;
    unsigned long long seed = strtoull(argv[2], &end, 10);
    if (*end) {
        fprintf(stderr, "%s: SEED must be a number, not '%s'\n", argv[0], argv[2]);
        return 2;
    }
    cnn_model *m = NULL;
    cnn_status s = cnn_model_from_spec(argv[1], &m);
    if (s == CNN_OK) s = cnn_model_init(m, seed);
    if (s == CNN_OK) s = cnn_model_save(m, argv[3], CNN_DTYPE_F32, NULL);
    if (s != CNN_OK) fprintf(stderr, "%s: %s\n", argv[0], cnn_last_error());
    cnn_model_free(m);
    return s == CNN_OK ? 0 : 1;
}
