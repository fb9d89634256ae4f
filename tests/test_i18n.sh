#!/bin/sh
# test_i18n.sh - translations (suite 'i18n').
#
# Run from tests/ with $CATDOG set to the catdog binary and $CATDOG_NLS to
# 1 when it was built with gettext (meson does all three).
#   1. the catalogs in po/: every entry translated, none fuzzy, msgfmt
#      --check clean; every string marked in the files of po/POTFILES is
#      in them; every source file that marks strings is in po/POTFILES;
#   2. the CLI in German (LANGUAGE=de, LANG=de_DE.UTF-8): help and errors
#      translated (French and Spanish spot checks too);
#   3. in a German locale, even LC_ALL=de_DE.UTF-8, what scripts read is
#      byte for byte what the C locale gives: classify's lines, --json,
#      and eval's last line keep '.' decimals.
# The CLI reads the catalogs compiled here from po/*.po, through
# $CATDOG_LOCALEDIR.
# The expected messages quote with „“ and « »: that is the point.
# shellcheck disable=SC1111

set -u

# shellcheck source=tests/check.sh
. "$(dirname "$0")/check.sh"
for tool in msgfmt xgettext msgmerge msgattrib; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "SKIP: $tool (gettext) is missing"
        exit 77
    fi
done
po=$src/po

languages=$(sed 's/#.*//' "$po/LINGUAS")

# first_untranslated PO: the msgid (its first lines) of the first entry
# after the header that lacks a translation.
first_untranslated() {
    msgattrib --untranslated --no-obsolete --no-wrap "$1" |
        awk '/^msgid / { n++ } n == 2 && /^msgstr/ { exit } n == 2' |
        sed 's/^msgid //; s/^"//; s/"$//' | tr -d '\n' | cut -c 1-100
}

# ------------------------------------------------------------------
# 1. The catalogs
# ------------------------------------------------------------------

# The strings marked in the sources now, extracted as po/meson.build does
# (the glib preset's keywords plus P_).
(cd "$src" && xgettext --from-code=UTF-8 --keyword=_ --keyword=N_ --keyword=P_:1,2 \
    --keyword=C_:1c,2 --keyword=NC_:1c,2 --keyword=g_dngettext:2,3 \
    --flag=N_:1:pass-c-format -o "$tmp/now.pot" --files-from=po/POTFILES) 2>"$tmp/err"
checks=$((checks + 1))
[ -s "$tmp/now.pot" ] || fail "xgettext on po/POTFILES: $(head -n 3 "$tmp/err")"

for lang in $languages; do
    checks=$((checks + 1))
    if ! msgfmt --check --statistics -o "$tmp/$lang.mo" "$po/$lang.po" 2>"$tmp/stats"; then
        fail "msgfmt --check $lang.po: $(head -n 5 "$tmp/stats")"
        continue
    fi
    # "N translated messages." and nothing about fuzzy or untranslated ones.
    grep -Eq '^[0-9]+ translated messages?\.$' "$tmp/stats" ||
        fail "$lang.po has fuzzy or untranslated entries: $(cat "$tmp/stats")"
    mkdir -p "$tmp/locale/$lang/LC_MESSAGES"
    cp "$tmp/$lang.mo" "$tmp/locale/$lang/LC_MESSAGES/gimp-catdog.mo"

    # Against the sources: a string marked since the catalog was updated
    # arrives untranslated here.
    if [ -s "$tmp/now.pot" ]; then
        msgmerge --quiet --no-fuzzy-matching -o "$tmp/$lang.merged.po" "$po/$lang.po" \
            "$tmp/now.pot" 2>"$tmp/err"
        msgfmt --statistics -o /dev/null "$tmp/$lang.merged.po" 2>"$tmp/stats"
        checks=$((checks + 1))
        grep -Eq '^[0-9]+ translated messages?\.$' "$tmp/stats" ||
            fail "$lang.po against the sources: $(cat "$tmp/stats") (refresh the catalogs," \
                "see po/meson.build); the first: $(first_untranslated "$tmp/$lang.merged.po")"
    fi
done

# Every file that marks strings is listed, so its strings reach the catalogs.
(cd "$src" && grep -lE '(^|[^A-Za-z0-9_])(N?_|P_|g_dngettext) ?\(' \
    cli/*.c plugin/*.c ui/*.c 2>/dev/null) | sort >"$tmp/marking"
sed 's/#.*//; /^[[:space:]]*$/d' "$po/POTFILES" | sort >"$tmp/listed"
same "$(comm -23 "$tmp/marking" "$tmp/listed" | tr '\n' ' ')" "" \
    "files that mark strings but are missing from po/POTFILES"

# ------------------------------------------------------------------
# 2. The CLI in German (and French and Spanish)
# ------------------------------------------------------------------

# in LANG CMD...: runs catdog with only LANG (and LANGUAGE) set for the
# locale; stdout in $tmp/out, stderr in $tmp/err, status in $rc.
in_lang() {
    l=$1
    shift
    env -u LC_ALL -u LC_MESSAGES -u LC_NUMERIC -u LC_CTYPE LANGUAGE="${l%%_*}" LANG="$l" \
        CATDOG_LOCALEDIR="$tmp/locale" "$CATDOG" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

have_locale() {
    locale -a 2>/dev/null | tr '[:upper:]' '[:lower:]' |
        grep -qx "$(echo "$1" | tr '[:upper:]' '[:lower:]' | sed 's/utf-8/utf8/')"
}

if [ "${CATDOG_NLS:-0}" != 1 ]; then
    skipped="$skipped translated-cli(built without gettext: no libintl)"
elif ! have_locale de_DE.UTF-8; then
    skipped="$skipped translated-cli(no de_DE.UTF-8 locale: locale-gen de_DE.UTF-8)"
else
    in_lang de_DE.UTF-8 --help
    same "$rc" 0 "German --help: exit status"
    has "$tmp/out" "Aufruf: catdog BEFEHL" "German --help: usage line"
    has "$tmp/out" "Befehle:" "German --help: command list"
    has "$tmp/out" "ein Modell trainieren" "German --help: a command's summary"

    in_lang de_DE.UTF-8 help classify
    has "$tmp/out" "Aufruf: catdog classify [--model DATEI]" "German classify help"

    # Usage errors: translated, still status 2, stdout empty.
    in_lang de_DE.UTF-8 classify
    same "$rc" 2 "German usage error: exit status"
    same "$(wc -c <"$tmp/out" | tr -d ' ')" 0 "German usage error: nothing on stdout"
    has "$tmp/err" "catdog classify: kein BILD angegeben" "German usage error"
    has "$tmp/err" "(siehe „catdog help classify“)" "German pointer to the help"
    in_lang de_DE.UTF-8 frobnicate
    has "$tmp/err" "catdog: unbekannter Befehl „frobnicate“" "German unknown command"
    in_lang de_DE.UTF-8 classify --threads many x.jpg
    has "$tmp/err" "--threads muss eine ganze Zahl von 0 bis 1024 sein, nicht „many“" \
        "German message with several placeholders"

    if have_locale fr_FR.UTF-8; then
        in_lang fr_FR.UTF-8 classify --bogus x.jpg
        has "$tmp/err" "option inconnue « --bogus »" "French usage error"
    fi
    if have_locale es_ES.UTF-8; then
        in_lang es_ES.UTF-8 --help
        has "$tmp/out" "uso: catdog COMANDO" "Spanish --help"
    fi

    # A language without a catalog falls back to English.
    env -u LC_ALL LANGUAGE=ja LANG=de_DE.UTF-8 CATDOG_LOCALEDIR="$tmp/locale" \
        "$CATDOG" --help >"$tmp/out" 2>&1
    has "$tmp/out" "usage: catdog COMMAND" "no catalog: English"
fi

# ------------------------------------------------------------------
# 3. What scripts read does not depend on the locale
# ------------------------------------------------------------------

photos="data/cat.178.jpg data/cat.596.jpg data/dog.409.jpg data/dog.630.jpg data/cat.835.jpg data/dog.701.jpg"
model="$src/weights/catdog.safetensors"
# c_and_de NAME CMD...: runs catdog in the C locale and in a German one
# (LC_ALL, so LC_NUMERIC too); outputs in $tmp/NAME.c and $tmp/NAME.de.
c_and_de() {
    name=$1
    shift
    env -u LANGUAGE LC_ALL=C "$CATDOG" "$@" >"$tmp/$name.c" 2>"$tmp/$name.c.err"
    rc_c=$?
    env -u LANGUAGE LC_ALL=de_DE.UTF-8 CATDOG_LOCALEDIR="$tmp/locale" \
        "$CATDOG" "$@" >"$tmp/$name.de" 2>"$tmp/$name.de.err"
    rc_de=$?
}

have_photos=yes
for f in $photos; do [ -f "$f" ] || have_photos=no; done
if ! have_locale de_DE.UTF-8; then
    skipped="$skipped numbers(no de_DE.UTF-8 locale)"
elif [ "$have_photos" != yes ]; then
    skipped="$skipped numbers(photos missing in tests/data)"
elif ! "$CATDOG" info "$model" >/dev/null 2>&1; then
    skipped="$skipped numbers(the shipped model does not load)"
else
    # shellcheck disable=SC2086
    c_and_de classify classify --model "$model" $photos
    same "$rc_c $rc_de" "0 0" "classify in both locales: exit status"
    checks=$((checks + 1))
    cmp -s "$tmp/classify.c" "$tmp/classify.de" ||
        fail "classify differs under LC_ALL=de_DE.UTF-8: $(head -n 2 "$tmp/classify.de")"
    same "$(grep -Ec '	[01]\.[0-9]{4}$' "$tmp/classify.de")" 6 "classify: '.' decimals"

    c_and_de json classify --json --model "$model" data/cat.178.jpg data/text.jpg
    checks=$((checks + 1))
    cmp -s "$tmp/json.c" "$tmp/json.de" || fail "classify --json differs under LC_ALL=de_DE.UTF-8"
    checks=$((checks + 1))
    python3 - "$tmp/json.de" <<'EOF' || fail "classify --json under LC_ALL=de_DE.UTF-8 is not valid JSON"
import json, sys
doc = json.load(open(sys.argv[1]))
a = doc["images"][0]
assert 0.0 <= a["probability"] <= 1.0 and 0.0 <= a["dog_probability"] <= 1.0, a
assert "error" in doc["images"][1], doc
EOF

    # eval on DIR/cats and DIR/dogs made of the sample photos.
    mkdir -p "$tmp/set/cats" "$tmp/set/dogs"
    for f in $photos; do
        case $f in
        data/cat.*) cp "$f" "$tmp/set/cats/" ;;
        *) cp "$f" "$tmp/set/dogs/" ;;
        esac
    done
    c_and_de eval eval --model "$model" --threads 1 "$tmp/set"
    same "$rc_c $rc_de" "0 0" "eval in both locales: exit status"
    same "$(tail -n 1 "$tmp/eval.de")" "$(tail -n 1 "$tmp/eval.c")" \
        "eval's last line under LC_ALL=de_DE.UTF-8"
    checks=$((checks + 1))
    tail -n 1 "$tmp/eval.de" | grep -Eq '^accuracy [01]\.[0-9]{4} logloss [0-9]+\.[0-9]{4} n 6$' ||
        fail "eval's last line: $(tail -n 1 "$tmp/eval.de")"
    # The matrix rows too (weights/README.md's model card is checked on them).
    same "$(grep -E '^ +(cat|dog) +[0-9]+ +[0-9]+$' "$tmp/eval.de")" \
        "$(grep -E '^ +(cat|dog) +[0-9]+ +[0-9]+$' "$tmp/eval.c")" "eval's confusion matrix rows"
    if [ "${CATDOG_NLS:-0}" = 1 ]; then
        # ... while the lines for people are German.
        has "$tmp/eval.de" "Konfusionsmatrix" "German eval report"
    fi
fi

summary i18n
exit 0
