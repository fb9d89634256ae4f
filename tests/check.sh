# check.sh - what the shell tests share (sourced; tests/check.h is the C
# tests' counterpart).  Exits 77 (skip) unless $CATDOG names the catdog
# binary; sets $src (the source tree) and $tmp (a folder removed on exit),
# the counters with fail, has and same, $skipped for parts that could not
# run, and summary for the end.
# shellcheck shell=sh

if [ -z "${CATDOG:-}" ] || [ ! -x "$CATDOG" ]; then
    echo "SKIP: \$CATDOG does not name the catdog binary"
    exit 77
fi
# shellcheck disable=SC2034 # used by the sourcing test
src=${CATDOG_SOURCE_ROOT:-..}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

checks=0
failures=0
skipped=""

# fail MESSAGE: counts a failure; the last command's stderr ($tmp/err)
# follows, if any.
fail() {
    failures=$((failures + 1))
    echo "FAILED: $*"
    if [ -s "$tmp/err" ]; then sed 's/^/  stderr: /' "$tmp/err" | head -n 5; fi
}

# has FILE TEXT DESCRIPTION: FILE contains TEXT (a fixed string).
has() {
    checks=$((checks + 1))
    grep -qF -- "$2" "$1" || fail "$3: '$2' not in $(basename "$1"): $(head -c 400 "$1")"
}

# same ACTUAL EXPECTED DESCRIPTION
same() {
    checks=$((checks + 1))
    [ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

# summary NAME: the counts and what did not run; exits 1 after a failure.
summary() {
    echo "$1: $checks checks, $failures failed"
    if [ -n "$skipped" ]; then echo "not run:$skipped"; fi
    if [ "$failures" -ne 0 ]; then exit 1; fi
}
