#!/bin/sh
# model_card.sh - the shipped model does what its card says (suite 'train').
#
# Runs `catdog eval` of weights/catdog.safetensors on the validation photos
# of ../shared/data/catdog (or $CATDOG_DATA) and checks that the section
# "## The shipped model" of weights/README.md quotes exactly the confusion
# matrix rows, the calibration line and the last line it prints, and that
# these clear the shipping floor (accuracy >= 0.90, log loss <= 0.25,
# expected calibration error <= 0.02).  With --targets it checks
# issue 14's targets instead (accuracy >= 0.965, log loss <= 0.10,
# ECE <= 0.02): meson runs that as model_targets, marked as expected to
# fail while the shipped model misses them (tests/train/meson.build).
# Exit 77 (skip) when the data set or the binary is absent, or in a
# sanitizer build (CATDOG_SKIP_CARD, set by meson.build).
set -u
targets=no
[ "${1:-}" = --targets ] && targets=yes

# shellcheck source=tests/check.sh
. "$(dirname "$0")/../check.sh"
# Evaluating takes a while: an interrupt ends the test (and removes $tmp).
trap 'exit 1' INT TERM
if [ -n "${CATDOG_SKIP_CARD:-}" ]; then
    echo "SKIP: $CATDOG_SKIP_CARD (evaluating 2,500 photos is too slow there)"
    exit 77
fi
src=${CATDOG_SOURCE_ROOT:-../..}
data=${CATDOG_DATA:-$src/../shared/data/catdog}
if [ ! -d "$data/validation/cats" ] || [ ! -d "$data/validation/dogs" ]; then
    echo "SKIP: no validation photos at $data/validation (set CATDOG_DATA)"
    exit 77
fi
card=$src/weights/README.md
model=$src/weights/catdog.safetensors

# The card's section, from its heading to the next "## " heading.
sed -n '/^## The shipped model/,/^## /p' "$card" | sed '1!{/^## /d}' >"$tmp/section"
# Lines the card quotes from catdog eval: confusion rows, calibration and
# the summary.
pick() {
    grep -E '^ +(cat|dog) +[0-9]+ +[0-9]+$|^calibration: ECE [0-9.]+ \(15 bins\), temperature [0-9.]+$|^accuracy [0-9.]+ logloss [0-9.]+ n [0-9]+$' "$1"
}
pick "$tmp/section" >"$tmp/card_lines"
if [ ! -s "$tmp/card_lines" ]; then
    fail "weights/README.md, section 'The shipped model', quotes no 'catdog eval' output"
fi

"$CATDOG" eval --model "$model" "$data/validation" >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -ne 0 ]; then
    fail "catdog eval exited with $rc"
    sed 's/^/  stderr: /' "$tmp/err" | tail -n 5
fi
cat "$tmp/out"
pick "$tmp/out" >"$tmp/eval_lines"

if [ -s "$tmp/card_lines" ] && ! cmp -s "$tmp/card_lines" "$tmp/eval_lines"; then
    fail "the card's numbers differ from what catdog eval prints:"
    diff "$tmp/card_lines" "$tmp/eval_lines" | sed 's/^/  /'
fi

last=$(tail -n 1 "$tmp/out")
ece=$(sed -n 's/^calibration: ECE \([0-9.]*\) (15 bins).*/\1/p' "$tmp/out")
acc=$(echo "$last" | sed -n 's/^accuracy \([0-9.]*\) logloss .*/\1/p')
ll=$(echo "$last" | sed -n 's/^accuracy [0-9.]* logloss \([0-9.]*\) n .*/\1/p')
if [ -z "$acc" ] || [ -z "$ll" ]; then
    fail "catdog eval's last line is not 'accuracy A logloss L n N': $last"
else
    if [ "$targets" = yes ]; then
        min_acc=0.965 max_ll=0.10 bar="issue 14's targets"
    else
        min_acc=0.90 max_ll=0.25 bar="the shipping floor"
    fi
    if ! awk -v a="$acc" -v l="$ll" -v ma="$min_acc" -v ml="$max_ll" \
        'BEGIN { exit !(a >= ma && l <= ml) }'; then
        fail "the shipped model is below $bar: accuracy $acc (>= $min_acc), log loss $ll (<= $max_ll)"
    fi
fi
if [ -z "$ece" ]; then
    fail "catdog eval printed no 'calibration: ECE E (15 bins), temperature T' line"
elif ! awk -v e="$ece" 'BEGIN { exit !(e <= 0.02) }'; then
    fail "the shipped model is miscalibrated: ECE $ece (<= 0.02)"
fi

[ "$failures" -eq 0 ] && echo "model_card: the card matches catdog eval"
[ "$failures" -eq 0 ]
