/* i18n.h - translated messages of the catdog command line.
 *
 * The CLI shares the plug-in's gettext domain (one catalog per language,
 * po/); main() binds it.  Without ENABLE_NLS (no <libintl.h>) every macro
 * hands back its English text, so the core never depends on gettext.
 *
 * Mark only text meant for people.  Output that scripts parse (--json,
 * eval's last line, bench's speedup lines) stays untranslated.
 *
 *   _("text")            translated now
 *   N_("text")           marked for the catalog, translated later with _()
 *                        (static tables of help lines)
 *   P_("one", "many", n) plural forms chosen by the language's rules
 */
#ifndef CATDOG_CLI_I18N_H
#define CATDOG_CLI_I18N_H

/* The plug-in's domain (po/meson.build: gettext_package). */
#define CATDOG_TEXTDOMAIN "gimp-catdog"

#ifdef ENABLE_NLS
#include <libintl.h>
#define _(msgid) gettext(msgid)
#define P_(singular, plural, n) ngettext(singular, plural, (unsigned long)(n))
#else
#define _(msgid) (msgid)
#define P_(singular, plural, n) ((n) == 1 ? (singular) : (plural))
#endif

#define N_(msgid) msgid

#endif
