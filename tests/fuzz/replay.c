/* replay.c - runs a fuzz harness over saved inputs, without libFuzzer:
 *   fuzz_model_replay FILE|DIR...
 * Each argument is a file or a folder whose files (not starting with '.')
 * are run in name order.  A crash or a broken invariant aborts, which
 * fails the test; the sanitizer build shows memory errors the same way. */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (!buf) {
            fprintf(stderr, "%s: out of memory\n", path);
            fclose(f);
            return -1;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        uint8_t *bigger = realloc(buf, cap);
        if (!bigger) free(buf);
        buf = bigger;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        fprintf(stderr, "%s: read error\n", path);
        free(buf);
        return -1;
    }
    /* The exact size, so that reading one byte too far is an error the
     * sanitizers see, as under libFuzzer. */
    uint8_t *exact = malloc(n ? n : 1);
    if (exact) memcpy(exact, buf, n);
    free(buf);
    if (!exact) return -1;
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

static int visible(const struct dirent *e) { return e->d_name[0] != '.'; }

int main(int argc, char **argv)
{
    int files = 0, errors = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "%s: %s\n", argv[i], strerror(errno));
            errors++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) == 0) files++; else errors++;
            continue;
        }
        struct dirent **list = NULL;
        int n = scandir(argv[i], &list, visible, alphasort);
        if (n < 0) {
            fprintf(stderr, "%s: cannot list: %s\n", argv[i], strerror(errno));
            errors++;
            continue;
        }
        for (int k = 0; k < n; k++) {
            size_t len = strlen(argv[i]) + strlen(list[k]->d_name) + 2;
            char *path = malloc(len);
            if (path) {
                snprintf(path, len, "%s/%s", argv[i], list[k]->d_name);
                if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                    if (run_file(path) == 0) files++; else errors++;
                }
                free(path);
            }
            free(list[k]);
        }
        free(list);
    }
    printf("%d inputs replayed, %d could not be read\n", files, errors);
    return errors || files == 0 ? 1 : 0;
}
