#!/bin/sh
# cli_filters.sh - `catdog filters` (suite 'filters'): its files, output
# and errors on the shipped model (few steps: the pictures' quality is
# filters_data's and test_filters' business).  Run from tests/filters
# with $CATDOG set (meson does both).
set -u

# shellcheck source=tests/check.sh
. "$(dirname "$0")/../check.sh"

model="$src/weights/catdog.safetensors"
run() {
    "$CATDOG" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}
expect() {
    checks=$((checks + 1))
    [ "$rc" -eq "$1" ] || fail "$2: exit status $rc, expected $1"
}
# usage_error DESCRIPTION TEXT ARG...: exit 2, TEXT on stderr, nothing
# on stdout, no folder written.
usage_error() {
    desc=$1
    text=$2
    shift 2
    rm -rf "$tmp/u"
    run "$@"
    expect 2 "$desc"
    has "$tmp/err" "$text" "$desc"
    checks=$((checks + 1))
    [ ! -s "$tmp/out" ] && [ ! -e "$tmp/u" ] || fail "$desc: wrote something"
}
png_size() {
    od -An -tu1 -j16 -N8 "$1" |
        awk '{ printf "%dx%d", $1*16777216 + $2*65536 + $3*256 + $4,
                              $5*16777216 + $6*65536 + $7*256 + $8 }'
}

run filters --help
expect 0 "--help"
has "$tmp/out" "usage: catdog filters" "--help"
run help filters
expect 0 "help filters"
run --help
has "$tmp/out" "filters" "catdog --help lists filters"

m="--model $model"
# shellcheck disable=SC2086
{
usage_error "no layer" "--layer NAME or --label LABEL is required" filters $m --out "$tmp/u"
usage_error "layer and label" "exclude each other" filters $m --layer conv1 --label dog --out "$tmp/u"
usage_error "channels and top" "exclude each other" filters $m --layer conv1 --channels 1 --top 2 --out "$tmp/u"
usage_error "no out" "--out DIR is required" filters $m --layer conv1
usage_error "unknown layer" "conv9" filters $m --layer conv9 --out "$tmp/u"
usage_error "not a conv" "bn1" filters $m --layer bn1 --out "$tmp/u"
usage_error "channel too high" "channels 0 to 31, not 32" filters $m --layer conv1 --channels 32 --out "$tmp/u"
usage_error "bad list" "not a list" filters $m --layer conv1 --channels 1,,2 --out "$tmp/u"
usage_error "bad range" "not a list" filters $m --layer conv1 --channels 5-2 --out "$tmp/u"
usage_error "negative channel" "not a list" filters $m --layer conv1 --channels -1 --out "$tmp/u"
usage_error "steps 0" "--steps" filters $m --layer conv1 --steps 0 --out "$tmp/u"
usage_error "size 8" "--size" filters $m --layer conv1 --size 8 --out "$tmp/u"
usage_error "top 0" "--top" filters $m --layer conv1 --top 0 --out "$tmp/u"
usage_error "seed x" "--seed" filters $m --layer conv1 --seed x --out "$tmp/u"
usage_error "bad precision" "f16" filters $m --layer conv1 --precision f16 --out "$tmp/u"
usage_error "unknown label" "labels are cat and dog, not 'horse'" filters $m --label horse --out "$tmp/u"
usage_error "label with top" "need --layer" filters $m --label dog --top 2 --out "$tmp/u"
usage_error "an operand" "unexpected argument" filters $m --layer conv1 photo.jpg --out "$tmp/u"
}

run filters --model "$tmp/absent.safetensors" --layer conv1 --out "$tmp/u"
expect 1 "missing model"
has "$tmp/err" "absent.safetensors" "missing model named"

if [ ! -r "$model" ]; then
    echo "SKIP: the shipped model is not there"
    exit 77
fi

# Two channels at 48x48: the files, their sizes, the lines.
run filters --model "$model" --layer conv1 --channels 3,7 --steps 8 --size 48 --precision f32 --out "$tmp/a"
expect 0 "two channels"
for f in conv1-3 conv1-7; do
    checks=$((checks + 1))
    [ -s "$tmp/a/$f.png" ] || fail "$f.png not written"
    same "$(png_size "$tmp/a/$f.png")" "48x48" "$f.png's size"
done
# The mosaic: 2 columns of 48 with a 1-pixel gap, one row.
same "$(png_size "$tmp/a/conv1.png")" "97x48" "the mosaic's size"
same "$(wc -l <"$tmp/out" | tr -d ' ')" "3" "one line per picture and the mosaic"
same "$(awk -F'\t' 'NR <= 2 { print $2 " " $3 }' "$tmp/out" | tr '\n' ';')" "conv1 3;conv1 7;" "layer and channel columns"
checks=$((checks + 1))
awk -F'\t' 'NR <= 2 && $4 !~ /^-?[0-9]+\.[0-9]+$/ { bad = 1 } END { exit bad }' "$tmp/out" ||
    fail "the activation column is not a number: $(cat "$tmp/out")"

# The same run writes the same bytes; another seed other ones.
run filters --model "$model" --layer conv1 --channels 7 --steps 8 --size 48 --precision f32 --out "$tmp/b"
expect 0 "again"
checks=$((checks + 1))
cmp -s "$tmp/a/conv1-7.png" "$tmp/b/conv1-7.png" || fail "the same run gave other bytes"
run filters --model "$model" --layer conv1 --channels 7 --steps 8 --size 48 --precision f32 --seed 5 --out "$tmp/c"
checks=$((checks + 1))
cmp -s "$tmp/a/conv1-7.png" "$tmp/c/conv1-7.png" && fail "--seed changed nothing"

# --top without --data: by gain, K pictures at the model's input size.
run filters --model "$model" --layer conv1 --top 2 --steps 2 --out "$tmp/t"
expect 0 "--top"
same "$(grep -c 'conv1-' "$tmp/out")" "2" "--top 2 gives two pictures"
f=$(awk -F'\t' 'NR == 1 { print $1 }' "$tmp/out")
side=$("$CATDOG" info "$model" | sed -n 's/^input  *\([0-9]*\)x.*/\1/p')
same "$(png_size "$f")" "${side}x$side" "the model's input size by default"

# --label: one picture named after the label, the logit towards it.
run filters --model "$model" --label cat --steps 4 --size 32 --out "$tmp/l"
expect 0 "--label cat"
checks=$((checks + 1))
[ -s "$tmp/l/cat.png" ] || fail "cat.png not written"
same "$(awk -F'\t' '{ print $2 " " $3 }' "$tmp/out")" "logit 0" "--label's line"

# --data: the best photo column, and the count on stderr.
data=${CATDOG_DATA:-$src/../shared/data/catdog}
if [ -d "$data/validation" ]; then
    run filters --model "$model" --layer conv1 --channels 0 --steps 4 --size 32 --data "$data" --photos 3 --out "$tmp/d"
    expect 0 "--data"
    has "$tmp/err" "compared with 6 validation photos" "--data's count"
    checks=$((checks + 1))
    awk -F'\t' 'NR == 1 && NF != 5 { bad = 1 } END { exit bad }' "$tmp/out" ||
        fail "--data adds a column: $(cat "$tmp/out")"
    run filters --model "$model" --layer conv1 --steps 1 --data "$tmp/nothing" --out "$tmp/d"
    expect 1 "--data without photos"
else
    skipped="$skipped --data (no data set)"
fi

summary cli_filters
