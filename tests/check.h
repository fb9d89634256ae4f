/* check.h - a tiny assertion helper for the C tests.  Each failed check
 * prints where and why; check_done() prints a summary and returns the
 * process exit status (0 when everything passed). */
#ifndef CHECK_H
#define CHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_count_;
static int check_failed_;

#define CHECKF(cond, ...)                                                   \
    do {                                                                    \
        check_count_++;                                                     \
        if (!(cond)) {                                                      \
            check_failed_++;                                                \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

#define CHECK(cond) CHECKF(cond, "%s", "")

/* |a - b| <= tol, NaN fails. */
#define CHECK_NEAR(a, b, tol)                                               \
    do {                                                                    \
        double ca_ = (double)(a), cb_ = (double)(b);                        \
        CHECKF(fabs(ca_ - cb_) <= (tol), "%s = %.9g, %s = %.9g (tol %g)",   \
               #a, ca_, #b, cb_, (double)(tol));                            \
    } while (0)

/* A cnn call that must succeed. */
#define CHECK_OK(expr)                                                      \
    do {                                                                    \
        cnn_status cs_ = (expr);                                            \
        CHECKF(cs_ == CNN_OK, "%s -> %s: %s", #expr, cnn_status_name(cs_),  \
               cnn_last_error());                                           \
    } while (0)

/* A cnn call that must fail with status st and a message containing sub. */
#define CHECK_FAILS(expr, st, sub)                                          \
    do {                                                                    \
        cnn_status cs_ = (expr);                                            \
        const char *cm_ = cnn_last_error();                                 \
        CHECKF(cs_ == (st) && strstr(cm_, (sub)) != NULL,                   \
               "%s -> %s \"%s\", expected %s containing \"%s\"", #expr,    \
               cnn_status_name(cs_), cm_, cnn_status_name(st), (sub));      \
    } while (0)

/* A fresh folder $TMPDIR/catdog-NAME-XXXXXX (/tmp without $TMPDIR) in
 * dir; the test stops (exit 1) when it cannot be made. */
static inline void check_tmp_dir(char *dir, size_t size, const char *name)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, size, "%s/catdog-%s-XXXXXX", base && *base ? base : "/tmp", name);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
}

/* got[0], got[1], ... each within tol of the values listed (NaN fails):
 * CHECK_VALUES(out, 1e-4, 0.0, 25.0, 75.0); one check per value. */
#define CHECK_VALUES(got, tol, ...)                                          \
    check_values_(__FILE__, __LINE__, #got, (got), (tol),                   \
                  (const double[]){__VA_ARGS__},                            \
                  sizeof((const double[]){__VA_ARGS__}) / sizeof(double))

static inline void check_values_(const char *file, int line, const char *name,
                                 const float *got, double tol, const double *want,
                                 size_t n)
{
    for (size_t i = 0; i < n; i++) {
        check_count_++;
        if (!(fabs((double)got[i] - want[i]) <= tol)) {
            check_failed_++;
            fprintf(stderr, "%s:%d: FAILED (%s)[%zu] = %.9g, want %.9g (tol %g)\n", file,
                    line, name, i, (double)got[i], want[i], tol);
        }
    }
}

static inline int check_done(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_count_, check_failed_);
    return check_failed_ ? 1 : 0;
}

#endif /* CHECK_H */
