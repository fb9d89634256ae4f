#!/bin/sh
# valgrind.sh - the catdog command's main paths under valgrind's memcheck
# (suite 'valgrind', plain builds only: the sanitizers and valgrind do not
# mix).  Each run must have no invalid read or write, no use of an
# uninitialised value and no definitely or indirectly lost memory, and
# must exit as it does without valgrind.
#
# Models: the small valid ones of the fuzz seed corpus (every layer type,
# F32/F16/BF16, "chw" flatten) and weights/catdog.safetensors when it
# loads; broken ones for the refusal paths.  Images: the sample photos and
# the hostile files of tests/data.
#
# Exit 77 (skip) when valgrind is not installed.
set -u

if [ -z "${CATDOG:-}" ] || [ ! -x "$CATDOG" ]; then
    echo "SKIP: \$CATDOG does not name the catdog binary"
    exit 77
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "SKIP: valgrind is not installed"
    exit 77
fi
src=${CATDOG_SOURCE_ROOT:-..}
seeds=$src/tests/fuzz/corpus/model
data=$src/tests/data
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# libjpeg-turbo's SIMD code reads whole vectors past the ends of its
# buffers on purpose, which memcheck reports; its scalar code is the same
# decoder.
export JSIMD_FORCENONE=1

checks=0
failures=0
fail() {
    failures=$((failures + 1))
    echo "FAILED: $*"
}

# vg STATUS DESCRIPTION ARG...: runs catdog ARG... under memcheck; it must
# exit with STATUS and memcheck must report nothing.
vg() {
    want=$1 desc=$2
    shift 2
    checks=$((checks + 1))
    valgrind -q --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        --track-origins=yes --log-file="$tmp/vg.log" \
        "$CATDOG" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [ "$rc" -eq 99 ] || [ -s "$tmp/vg.log" ]; then
        fail "$desc: memcheck found errors (catdog $*):"
        head -n 40 "$tmp/vg.log" | sed 's/^/  /'
    elif [ "$rc" -ne "$want" ]; then
        fail "$desc: exit status $rc, expected $want (catdog $*)"
        head -n 5 "$tmp/err" | sed 's/^/  stderr: /'
    fi
}

# has FILE TEXT DESCRIPTION
has() {
    checks=$((checks + 1))
    grep -qF -- "$2" "$1" || fail "$3: '$2' not in: $(head -c 300 "$1")"
}

small=$seeds/valid-small-article-bf16.safetensors
conv=$seeds/valid-conv-chw.safetensors
gray=$seeds/valid-gray-f16-bf16.safetensors
for f in "$small" "$conv" "$gray"; do
    [ -f "$f" ] || { echo "FAILED: missing seed model $f"; exit 1; }
done

good="$data/cat.596.jpg $data/dog.630.jpg $data/progressive.jpg $data/gray.jpg
      $data/cmyk-adobe.jpg $data/1x1.jpg $data/1x10000.jpg $data/orient-6.jpg"
bad="$data/empty.jpg $data/truncated.jpg $data/png-disguised.jpg $data/text.jpg
     $data/huge-30000.jpg $tmp/missing.jpg"

# --- classify: good photos, then hostile files among them (status 1,
# the good ones still classified).
# shellcheck disable=SC2086
vg 0 "classify photos" classify --threads 1 --model "$small" $good
has "$tmp/out" "cat.596.jpg" "classify prints each photo"
# shellcheck disable=SC2086
vg 1 "classify with hostile images" classify --threads 1 --model "$conv" $good $bad
has "$tmp/err" "empty.jpg: empty file" "classify names the empty file"
has "$tmp/err" "huge-30000.jpg: image is 30000 x 30000" "classify refuses the 30000 x 30000 header"
# shellcheck disable=SC2086
vg 1 "classify --json with hostile images" classify --json --threads 1 --model "$gray" \
    $data/dog.630.jpg $data/cmyk-plain.jpg $bad
has "$tmp/out" '"error":' "--json reports the errors inline"
# shellcheck disable=SC2086
vg 1 "classify --tta with hostile images" classify --tta --threads 1 --model "$conv" $good $bad
has "$tmp/out" "cat.596.jpg" "classify --tta prints each good photo"

# --- info on every valid seed model and on broken ones.
for f in "$seeds"/valid-*.safetensors; do
    vg 0 "info $(basename "$f")" info "$f"
done
for f in bad-header-length-8-gib bad-overlap bad-nan-weight bad-inf-f16-weight \
         bad-arch-params-without-data bad-arch-activations-too-large; do
    vg 1 "info $f" info "$seeds/$f.safetensors"
done
has "$tmp/err" "activations of one image" "info names the problem"
vg 1 "classify with a broken model" classify --threads 1 --model "$seeds/bad-missing-tensor.safetensors" \
    "$data/cat.596.jpg"

# --- maps: every conv layer, both colormaps.
vg 0 "maps, all layers, viridis" maps --model "$conv" --colormap viridis --out "$tmp/maps" \
    "$data/dog.409.jpg"
vg 0 "maps, one layer, gray" maps --model "$conv" --layer c2 --out "$tmp/maps-gray" \
    "$data/orient-6.jpg"
vg 1 "maps of a hostile image" maps --model "$conv" --out "$tmp/maps-bad" "$data/truncated.jpg"

# --- the shipped model, when it is there and loads.
shipped=$src/weights/catdog.safetensors
if [ -f "$shipped" ] && "$CATDOG" info "$shipped" >/dev/null 2>&1; then
    vg 0 "classify with the shipped model" classify --threads 1 --model "$shipped" \
        "$data/cat.178.jpg" "$data/dog.409.jpg"
    vg 0 "info on the shipped model" info "$shipped"
    vg 0 "maps with the shipped model" maps --model "$shipped" --layer conv1 --out "$tmp/maps-shipped" \
        "$data/cat.596.jpg"
else
    echo "note: $shipped is absent or does not load; the small models stand in"
fi

echo "valgrind: $checks checks, $failures failed"
[ "$failures" -eq 0 ]
