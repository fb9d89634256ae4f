/* gcheck.h - check.h's helpers for the tests written with GLib (the
 * dialog's panel, installing weights). */
#ifndef GCHECK_H
#define GCHECK_H

#include <glib.h>

#include "check.h"

/* got_expr makes a string (g_free'd here) that must be want; either may
 * be NULL. */
#define CHECK_STRING(got_expr, want)                                       \
  do {                                                                     \
    gchar *got_ = (got_expr);                                              \
    CHECKF (! g_strcmp0 (got_, want), "%s: \"%s\", expected \"%s\"",       \
            #got_expr, got_, want);                                        \
    g_free (got_);                                                         \
  } while (0)

#endif /* GCHECK_H */
