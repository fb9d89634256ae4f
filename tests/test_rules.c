/* test_rules.c - the small rules of the public API that the CLI, the
 * plug-in and its dialog share (core/rules.c, core/clock.c, cnn.h): the
 * verdict, finding a conv layer by name, the default model, ranking, the
 * clock and the kernel sets' FMA peak. */
#include "cnn.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char tmp_dir[256];

static const char *in_tmp(const char *name)
{
    static char buf[2][512];
    static int which;
    which ^= 1;
    snprintf(buf[which], sizeof buf[which], "%s/%s", tmp_dir, name);
    return buf[which];
}

static void write_file(const char *name, const char *text)
{
    FILE *f = fopen(in_tmp(name), "wb");
    if (!f) {
        perror(name);
        exit(1);
    }
    fwrite(text, 1, strlen(text), f);
    fclose(f);
}

static void test_verdict(void)
{
    CHECK(cnn_verdict(0.5) == 1);
    CHECK(cnn_verdict(0.9) == 1);
    CHECK(cnn_verdict(0.4999999) == 0);
    CHECK(cnn_verdict(0.0) == 0);
    CHECK(cnn_verdict(NAN) == 0);
    CHECK_NEAR(cnn_verdict_confidence(0.5), 0.5, 0);
    CHECK_NEAR(cnn_verdict_confidence(0.93), 0.93, 0);
    CHECK_NEAR(cnn_verdict_confidence(0.25), 0.75, 0);
    CHECK_NEAR(cnn_verdict_confidence(1e-4), 1.0 - 1e-4, 0);
}

#define SPEC_CONVS                                                                      \
    "{\"name\":\"t\",\"input\":[16,16,3],\"layers\":["                                  \
    "{\"type\":\"conv2d\",\"name\":\"c1\",\"filters\":4,\"kernel\":3},"                 \
    "{\"type\":\"relu\",\"name\":\"r1\"},{\"type\":\"maxpool\",\"name\":\"p1\",\"size\":2}," \
    "{\"type\":\"conv2d\",\"name\":\"c2\",\"filters\":4,\"kernel\":3},"                 \
    "{\"type\":\"relu\",\"name\":\"r2\"},"                                              \
    "{\"type\":\"conv2d\",\"name\":\"c3\",\"filters\":4,\"kernel\":3},"                 \
    "{\"type\":\"flatten\",\"name\":\"f\"},{\"type\":\"dense\",\"name\":\"d\",\"units\":1}," \
    "{\"type\":\"sigmoid\",\"name\":\"s\"}]}"

#define SPEC_NO_CONV                                                          \
    "{\"name\":\"flat\",\"input\":[4,4,1],\"layers\":["                      \
    "{\"type\":\"flatten\",\"name\":\"f\"},{\"type\":\"dense\",\"name\":\"d\",\"units\":1}," \
    "{\"type\":\"sigmoid\",\"name\":\"s\"}]}"

static void test_find_conv(void)
{
    cnn_model *m = NULL;
    CHECK_OK(cnn_model_from_spec(SPEC_CONVS, &m));
    if (!m) return;
    int layer = 99, tap = 99;
    CHECK_OK(cnn_model_find_conv(m, "c2", &layer, &tap));
    CHECKF(layer == 3 && tap == 1, "c2: layer %d, tap %d", layer, tap);
    CHECK_OK(cnn_model_find_conv(m, "c1", &layer, NULL));
    CHECK(layer == 0);
    CHECK_OK(cnn_model_find_conv(m, NULL, &layer, &tap));
    CHECKF(layer == 5 && tap == 2, "last conv: layer %d, tap %d", layer, tap);

    CHECK_FAILS(cnn_model_find_conv(m, "c9", &layer, &tap), CNN_ERR_ARG,
                "no layer called 'c9'; its conv layers are: c1 c2 c3");
    CHECK(layer == -1 && tap == -1);
    CHECK_FAILS(cnn_model_find_conv(m, "r2", &layer, NULL), CNN_ERR_ARG,
                "'r2' is not a conv layer; its conv layers are: c1 c2 c3");
    CHECK(layer == 4);
    CHECK_FAILS(cnn_model_find_conv(m, "", NULL, NULL), CNN_ERR_ARG, "no layer called ''");
    CHECK_FAILS(cnn_model_find_conv(NULL, "c1", NULL, NULL), CNN_ERR_ARG, "NULL");

    char *names = NULL;
    CHECK_OK(cnn_model_conv_names(m, ", ", &names));
    CHECKF(names && strcmp(names, "c1, c2, c3") == 0, "names '%s'", names ? names : "(null)");
    free(names);
    CHECK_OK(cnn_model_conv_names(m, "", &names));
    CHECK(names && strcmp(names, "c1c2c3") == 0);
    free(names);
    CHECK_FAILS(cnn_model_conv_names(m, NULL, &names), CNN_ERR_ARG, "NULL");
    CHECK(names == NULL);
    cnn_model_free(m);

    CHECK_OK(cnn_model_from_spec(SPEC_NO_CONV, &m));
    if (!m) return;
    CHECK_FAILS(cnn_model_find_conv(m, NULL, &layer, &tap), CNN_ERR_ARG, "no conv layer");
    CHECK(layer == -1 && tap == -1);
    CHECK_FAILS(cnn_model_find_conv(m, "d", &layer, NULL), CNN_ERR_ARG, "no conv layer");
    CHECK(layer == 1);
    CHECK_OK(cnn_model_conv_names(m, ", ", &names));
    CHECK(names && strcmp(names, "") == 0);
    free(names);
    cnn_model_free(m);
}

/* *path against want (NULL: none), then freed. */
static void check_path(char *path, const char *want, const char *what)
{
    if (!want)
        CHECKF(path == NULL, "%s: got '%s', expected none", what, path);
    else
        CHECKF(path && strcmp(path, want) == 0, "%s: got '%s', expected '%s'", what,
               path ? path : "(none)", want);
    free(path);
}

static void test_folder_default(void)
{
    char *path = (char *)"unchanged";
    char want[600];
    CHECK_OK(cnn_models_folder_default(tmp_dir, &path));
    check_path(path, NULL, "no default file");

    write_file("a.safetensors", "x");
    write_file("b.safetensors", "x");
    write_file(".hidden.safetensors", "x");
    write_file("notes.txt", "x");
    mkdir(in_tmp("dir.safetensors"), 0755);

    snprintf(want, sizeof want, "%s/a.safetensors", tmp_dir);
    write_file("default", "a.safetensors\n");
    CHECK_OK(cnn_models_folder_default(tmp_dir, &path));
    check_path(path, want, "plain line");
    write_file("default", " \t\r\n a.safetensors \r\n\n");
    CHECK_OK(cnn_models_folder_default(tmp_dir, &path));
    check_path(path, want, "white space around");
    char slash[300];
    snprintf(slash, sizeof slash, "%s//", tmp_dir);
    CHECK_OK(cnn_models_folder_default(slash, &path));
    check_path(path, want, "folder with trailing slashes");

    /* Only the text up to a NUL counts. */
    FILE *f = fopen(in_tmp("default"), "wb");
    if (f) {
        fwrite("a.safetensors\0junk", 1, 18, f);
        fclose(f);
    }
    CHECK_OK(cnn_models_folder_default(tmp_dir, &path));
    check_path(path, want, "NUL ends the name");

    static const char *const refused[] = {
        "",                   "   \n",          "gone.safetensors",  ".hidden.safetensors",
        ".safetensors",       "notes.txt",      "dir.safetensors",   "a.safetensors/",
        "../a.safetensors",   "a.safetensorsx",
    };
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        write_file("default", refused[i]);
        path = (char *)"unchanged";
        CHECK_OK(cnn_models_folder_default(tmp_dir, &path));
        check_path(path, NULL, refused[i]);
    }

    /* A symbolic link to a model counts (the target is a regular file). */
    if (symlink("b.safetensors", in_tmp("link.safetensors")) == 0) {
        write_file("default", "link.safetensors");
        snprintf(want, sizeof want, "%s/link.safetensors", tmp_dir);
        CHECK_OK(cnn_models_folder_default(tmp_dir, &path));
        check_path(path, want, "symbolic link");
    }
    CHECK_OK(cnn_models_folder_default(in_tmp("no-such-folder"), &path));
    check_path(path, NULL, "missing folder");
    CHECK_FAILS(cnn_models_folder_default(NULL, &path), CNN_ERR_ARG, "NULL");
    CHECK(path == NULL);
}

static void test_default_model(void)
{
    char *path = NULL;
    char want[600];
    write_file("default", "b.safetensors");
    snprintf(want, sizeof want, "%s/b.safetensors", tmp_dir);
    char readable[600], missing[600], other[600];
    snprintf(readable, sizeof readable, "%s/a.safetensors", tmp_dir);
    snprintf(missing, sizeof missing, "%s/missing.safetensors", tmp_dir);
    snprintf(other, sizeof other, "%s/notes.txt", tmp_dir);
    const char *fallbacks[] = {missing, readable, other};

    /* 1. the override, 2. the folder's default, 3. a readable fallback,
     * 4. the last one regardless. */
    CHECK_OK(cnn_default_model("/elsewhere/m.safetensors", tmp_dir, fallbacks, 3, &path));
    check_path(path, "/elsewhere/m.safetensors", "override");
    CHECK_OK(cnn_default_model("", tmp_dir, fallbacks, 3, &path));
    check_path(path, want, "empty override: folder default");
    CHECK_OK(cnn_default_model(NULL, tmp_dir, fallbacks, 3, &path));
    check_path(path, want, "folder default");
    CHECK_OK(cnn_default_model(NULL, NULL, fallbacks, 3, &path));
    check_path(path, readable, "first readable fallback");
    write_file("default", "gone.safetensors");
    CHECK_OK(cnn_default_model(NULL, tmp_dir, fallbacks, 3, &path));
    check_path(path, readable, "stale folder default: fallback");
    CHECK_OK(cnn_default_model(NULL, tmp_dir, fallbacks, 1, &path));
    check_path(path, missing, "last fallback even when missing");
    const char *two_missing[] = {missing, "/no/such/file"};
    CHECK_OK(cnn_default_model(NULL, NULL, two_missing, 2, &path));
    check_path(path, "/no/such/file", "none readable: the last");
    CHECK_OK(cnn_default_model(NULL, NULL, NULL, 0, &path));
    check_path(path, NULL, "nothing applies");
    CHECK_FAILS(cnn_default_model(NULL, NULL, NULL, 2, &path), CNN_ERR_ARG, "fallbacks");
    CHECK_FAILS(cnn_default_model(NULL, NULL, fallbacks, -1, &path), CNN_ERR_ARG, "fallbacks");
    CHECK_FAILS(cnn_default_model(NULL, NULL, fallbacks, 1, NULL), CNN_ERR_ARG, "NULL");
}

static void test_clock_and_peak(void)
{
    double t0 = cnn_clock_seconds(), t1 = t0;
    for (int i = 0; i < 1000; i++) {
        const double t = cnn_clock_seconds();
        CHECKF(t >= t1, "the clock went back: %.9f after %.9f", t, t1);
        t1 = t;
    }
    const struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    const double slept = cnn_clock_seconds() - t1;
    CHECKF(slept >= 0.019 && slept < 5.0, "a 20 ms sleep took %.6f s", slept);

    for (int i = 0; i < CNN_ISA_COUNT; i++) {
        double peak = -1;
        if (cnn_isa_supported((cnn_isa)i)) {
            CHECK_OK(cnn_isa_fma_peak((cnn_isa)i, &peak));
            /* Any CPU of this century does at least 0.1 GFLOP/s. */
            CHECKF(peak > 1e8 && peak < 1e13, "%s peak %g", cnn_isa_name((cnn_isa)i), peak);
        } else {
            CHECK_FAILS(cnn_isa_fma_peak((cnn_isa)i, &peak), CNN_ERR_UNSUPPORTED,
                        cnn_isa_name((cnn_isa)i));
            CHECK(peak == 0);
        }
    }
    CHECK(cnn_isa_supported(CNN_ISA_PORTABLE));
    CHECK_FAILS(cnn_isa_fma_peak(CNN_ISA_PORTABLE, NULL), CNN_ERR_ARG, "NULL");
    CHECK(cnn_cpu_count() >= 1 && cnn_cpu_count() <= 1024);
}

static void test_rank(void)
{
    const double score[] = {0.5, 2.0, NAN, 0.5, -1.0, 2.0, NAN};
    int order[7] = {0};
    const int want[7] = {1, 5, 0, 3, 4, 2, 6};
    CHECK_OK(cnn_rank(score, 7, order));
    for (int i = 0; i < 7; i++)
        CHECKF(order[i] == want[i], "order[%d] = %d, want %d", i, order[i], want[i]);
    CHECK_OK(cnn_rank(NULL, 0, NULL));
    CHECK_FAILS(cnn_rank(score, -1, order), CNN_ERR_ARG, "cnn_rank");
    CHECK_FAILS(cnn_rank(score, 2, NULL), CNN_ERR_ARG, "cnn_rank");
}

static void remove_tmp(void)
{
    static const char *const names[] = {
        "a.safetensors", "b.safetensors", ".hidden.safetensors", "notes.txt",
        "link.safetensors", "default",
    };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) unlink(in_tmp(names[i]));
    rmdir(in_tmp("dir.safetensors"));
    rmdir(tmp_dir);
}

int main(void)
{
    check_tmp_dir(tmp_dir, sizeof tmp_dir, "rules");
    test_verdict();
    test_find_conv();
    test_folder_default();
    test_default_model();
    test_rank();
    test_clock_and_peak();
    remove_tmp();
    return check_done("test_rules");
}
