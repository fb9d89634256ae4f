#!/bin/sh
# test_cli.sh - the catdog command line (suite 'cli').
#
# Run from tests/ with $CATDOG set to the catdog binary (meson does both).
# Three parts:
#   1. arguments, help and version (no model needed);
#   2. classify / info / maps on tiny models this script writes itself, so
#      every expected value (verdicts, probabilities, parameter counts,
#      shapes, mosaic sizes) is known independently of the core;
#   3. the shipped model on the sample photos, when it loads.
# Exit 77 (skip) when neither part 2 nor part 3 could run.
set -u

# shellcheck source=tests/check.sh
. "$(dirname "$0")/check.sh"

# run ARG...: runs catdog; stdout in $tmp/out, stderr in $tmp/err, status in $rc.
run() {
    "$CATDOG" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# expect STATUS DESCRIPTION: checks the status of the last run.
expect() {
    checks=$((checks + 1))
    [ "$rc" -eq "$1" ] || fail "$2: exit status $rc, expected $1"
}

# usage_error DESCRIPTION ARG...: a bad command line exits 2, says why on
# stderr and prints nothing on stdout.
usage_error() {
    desc=$1
    shift
    run "$@"
    expect 2 "$desc"
    checks=$((checks + 1))
    [ -s "$tmp/err" ] && [ ! -s "$tmp/out" ] ||
        fail "$desc: expected a message on stderr only"
}

# ------------------------------------------------------------------
# 1. Arguments, help, version
# ------------------------------------------------------------------

run --help
expect 0 "--help"
for c in classify info maps train eval; do has "$tmp/out" "$c" "--help lists $c"; done

version=$(sed -n 's/^#define CNN_VERSION "\(.*\)"$/\1/p' "$src/core/cnn.h")
run --version
expect 0 "--version"
same "$(cat "$tmp/out")" "catdog $version" "--version"

run help
expect 0 "help without a command"
has "$tmp/out" "usage: catdog COMMAND" "help without a command"

for c in classify info maps; do
    run help "$c"
    expect 0 "help $c"
    has "$tmp/out" "usage: catdog $c" "help $c"
    run "$c" --help
    expect 0 "$c --help"
    has "$tmp/out" "usage: catdog $c" "$c --help"
done

usage_error "no command"
usage_error "unknown command" frobnicate
usage_error "unknown top-level option" --frobnicate
usage_error "help on an unknown command" help frobnicate
usage_error "classify without images" classify
usage_error "classify, unknown option" classify --bogus data/cat.178.jpg
usage_error "classify, --model without its value" classify data/cat.178.jpg --model
usage_error "classify, non-numeric --threads" classify --threads many data/cat.178.jpg
usage_error "classify, unknown --precision" classify --precision fp8 data/cat.178.jpg
usage_error "eval, unknown --precision" eval --precision f64 data
usage_error "train, unknown --precision" train --precision half --data data --out x
usage_error "bench, unknown --precision" bench --precision bf8
usage_error "classify, negative --threads" classify --threads=-1 data/cat.178.jpg
usage_error "classify, --json with a value" classify --json=yes data/cat.178.jpg
usage_error "classify, --tta with a value" classify --tta=yes data/cat.178.jpg
usage_error "eval, --tta with a value" eval --tta=1 data
for c in classify eval; do
    run "$c" --help
    has "$tmp/out" "--tta" "$c --help lists --tta"
done
usage_error "info with two models" info a.safetensors b.safetensors
usage_error "maps without --out" maps data/cat.178.jpg
usage_error "maps without an image" maps --out "$tmp/m"
usage_error "maps with two images" maps --out "$tmp/m" data/cat.178.jpg data/dog.409.jpg
usage_error "maps, unknown colormap" maps --colormap rainbow --out "$tmp/m" data/cat.178.jpg
has "$tmp/err" "unknown colormap 'rainbow'" "the colormap message names the bad value"
usage_error "maps, empty --out" maps --out= data/cat.178.jpg

# A missing model file is a failure (1) that names the file.
run classify --model "$tmp/absent.safetensors" data/cat.178.jpg
expect 1 "classify with a missing model"
has "$tmp/err" "catdog: $tmp/absent.safetensors" "the missing model is named"

# ------------------------------------------------------------------
# 2. Tiny models written here
# ------------------------------------------------------------------

photos="data/cat.178.jpg data/cat.596.jpg data/dog.409.jpg data/dog.630.jpg data/cat.835.jpg data/dog.701.jpg"
have_photos=yes
for f in $photos; do [ -f "$f" ] || have_photos=no; done

# write_model FILE BIAS TEMPERATURE: input 32x32x3, conv1 (4 filters, 3x3,
# valid) relu pool, conv2 (8 filters, 3x3, same) relu pool, flatten,
# fc (1 unit) sigmoid.  fc's weights are zero, so the logit is BIAS for
# every image and the verdict is known in advance.  Written directly
# (struct + json), independent of the core's writer.
write_model() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, random, struct, sys
path, bias, temperature = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rng = random.Random(7)
layers = [
    {"type": "conv2d", "name": "conv1", "filters": 4, "kernel": 3, "stride": 1, "padding": "valid", "bias": True},
    {"type": "relu", "name": "relu1"},
    {"type": "maxpool", "name": "pool1", "size": 2, "stride": 2},
    {"type": "conv2d", "name": "conv2", "filters": 8, "kernel": 3, "stride": 1, "padding": "same", "bias": True},
    {"type": "relu", "name": "relu2"},
    {"type": "maxpool", "name": "pool2", "size": 2, "stride": 2},
    {"type": "flatten", "name": "flatten"},
    {"type": "dense", "name": "fc", "units": 1, "bias": True},
    {"type": "sigmoid", "name": "prob"},
]
desc = {"schema": 1, "name": "tiny-test", "input": [32, 32, 3], "labels": ["cat", "dog"],
        "preprocess": {"resize": "squash", "scale": 1 / 255, "mean": [0, 0, 0], "std": [1, 1, 1]},
        "flatten": "hwc", "layers": layers, "temperature": temperature,
        "metrics": {"val_accuracy": 0.5, "n": 10}}
tensors = [
    ("conv1.weight", [4, 3, 3, 3], [rng.uniform(-0.5, 0.5) for _ in range(108)]),
    ("conv1.bias", [4], [0.1] * 4),
    ("conv2.weight", [8, 4, 3, 3], [rng.uniform(-0.5, 0.5) for _ in range(288)]),
    ("conv2.bias", [8], [0.05] * 8),
    ("fc.weight", [1, 392], [0.0] * 392),
    ("fc.bias", [1], [bias]),
]
header, data = {}, b""
for name, shape, values in tensors:
    blob = struct.pack("<%df" % len(values), *values)
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
    data += blob
header["__metadata__"] = {"format": "catdog", "catdog": json.dumps(desc)}
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + data)
EOF
}

# sigmoid(logit / temperature), as the core computes it.
p_dog() { awk -v l="$1" -v t="$2" 'BEGIN { printf "%.6f", 1 / (1 + exp(-l / t)) }'; }

# png_info FILE: "WIDTH HEIGHT COLOR_TYPE" from the PNG header.
png_info() {
    od -An -tu1 -j16 -N10 "$1" |
        awk '{ printf "%d %d %d", $1*16777216 + $2*65536 + $3*256 + $4,
                                  $5*16777216 + $6*65536 + $7*256 + $8, $10 }'
}

tiny_part() {
    write_model "$tmp/dog.safetensors" 2.0 1.0 || { fail "writing a tiny model"; return; }
    write_model "$tmp/cat.safetensors" -1.5 2.0 || { fail "writing a tiny model"; return; }

    # --- info: every number below follows from the architecture alone.
    run info "$tmp/dog.safetensors"
    if [ "$rc" -ne 0 ] && grep -q "not implemented" "$tmp/err"; then
        skipped="$skipped tiny-models(core not implemented yet: $(head -n 1 "$tmp/err"))"
        return
    fi
    expect 0 "info on a tiny model"
    has "$tmp/out" "tiny-test" "info: name"
    has "$tmp/out" "32x32x3" "info: input"
    has "$tmp/out" "cat, dog" "info: labels"
    has "$tmp/out" "squash, scale 1/255" "info: preprocessing"
    has "$tmp/out" "val_accuracy 0.5000, n 10" "info: metrics"
    # conv1: 4*3*3*3 + 4 = 112 params, 30*30*4 outputs * 27 MACs = 97,200
    # conv2: 8*4*3*3 + 8 = 296 params, 15*15*8 outputs * 36 MACs = 64,800
    # fc: 392 + 1 = 393 params, 392 MACs; total 801 params
    same "$(awk '$1 == "conv1" { print $2, $3, $4, $5 }' "$tmp/out")" \
        "conv2d 30x30x4 112 97,200" "info: conv1 row"
    same "$(awk '$1 == "pool1" { print $2, $3, $4 }' "$tmp/out")" \
        "maxpool 15x15x4 0" "info: pool1 row"
    same "$(awk '$1 == "conv2" { print $2, $3, $4, $5 }' "$tmp/out")" \
        "conv2d 15x15x8 296 64,800" "info: conv2 row"
    same "$(awk '$1 == "fc" { print $2, $3, $4, $5 }' "$tmp/out")" \
        "dense 1x1x1 393 392" "info: fc row"
    same "$(awk '$1 == "total" { print $2 }' "$tmp/out")" "801" "info: total parameters"
    same "$(awk '$1 == "parameters" { print $2 }' "$tmp/out")" "801" "info: parameters"
    same "$(awk '$2 ~ /^(conv2d|relu|maxpool|flatten|dense|sigmoid)$/' "$tmp/out" | wc -l | tr -d ' ')" \
        "9" "info: one row per layer"

    # --- classify: the logit is the fc bias for every image.
    want_dog=$(p_dog 2.0 1.0)
    want_cat=$(awk -v p="$(p_dog -1.5 2.0)" 'BEGIN { printf "%.6f", 1 - p }')
    if [ "$have_photos" = yes ]; then
        # shellcheck disable=SC2086
        run classify --model "$tmp/dog.safetensors" $photos
        expect 0 "classify the photos"
        : >"$tmp/want"
        for f in $photos; do printf '%s\tdog\t%.4f\n' "$f" "$want_dog" >>"$tmp/want"; done
        checks=$((checks + 1))
        cmp -s "$tmp/out" "$tmp/want" || fail "classify output: $(cat "$tmp/out"), expected $(cat "$tmp/want")"

        run classify -m "$tmp/cat.safetensors" data/cat.178.jpg
        expect 0 "classify with temperature 2"
        same "$(cat "$tmp/out")" "$(printf 'data/cat.178.jpg\tcat\t%.4f' "$want_cat")" \
            "cat verdict, probability of the printed label"
        # Option spellings: attached values, "=", options after operands.
        run classify data/cat.178.jpg -t2 --model="$tmp/cat.safetensors" -- data/dog.409.jpg
        expect 0 "classify with -t2, --model=FILE and --"
        same "$(cut -f1,2 "$tmp/out" | tr '\n\t' '  ')" "data/cat.178.jpg cat data/dog.409.jpg cat " \
            "option spellings"

        # Failing images are reported, the others still run, status 1.
        : >"$tmp/empty.jpg"
        echo "not a JPEG at all" >"$tmp/text.jpg"
        run classify --model "$tmp/dog.safetensors" data/cat.178.jpg "$tmp/missing.jpg" \
            "$tmp/empty.jpg" "$tmp/text.jpg" data/dog.409.jpg
        expect 1 "classify with bad images"
        same "$(cut -f1 "$tmp/out" | tr '\n' ' ')" "data/cat.178.jpg data/dog.409.jpg " \
            "the good images still print"
        for f in missing empty text; do
            has "$tmp/err" "catdog: $tmp/$f.jpg: " "error line for $f.jpg"
        done
        same "$(wc -l <"$tmp/err" | tr -d ' ')" 3 "one error line per bad image"

        # --json: the same verdicts, errors inline.
        run classify --json --model "$tmp/cat.safetensors" data/dog.409.jpg "$tmp/text.jpg"
        expect 1 "classify --json with a bad image"
        checks=$((checks + 1))
        python3 - "$tmp/out" "$want_cat" "$tmp/text.jpg" <<'EOF' || fail "classify --json document"
import json, sys
doc = json.load(open(sys.argv[1]))
want = float(sys.argv[2])
imgs = doc["images"]
assert doc["labels"] == ["cat", "dog"], doc
assert len(imgs) == 2, imgs
a, b = imgs
assert a["file"] == "data/dog.409.jpg" and a["label"] == "cat", a
assert abs(a["probability"] - want) < 1e-5, a
assert abs(a["dog_probability"] - (1 - want)) < 1e-5, a
assert b["file"] == sys.argv[3] and b["error"] and "label" not in b, b
assert not b["error"].startswith(sys.argv[3]), "the error repeats the file name: " + b["error"]
EOF

        # Files of every kind in tests/data: a verdict or a clean error,
        # never a crash (sanitizer builds abort with another status).
        for f in data/*; do
            case "$f" in data/cat.*.jpg | data/dog.*.jpg) continue ;; esac
            [ -f "$f" ] || continue
            run classify --model "$tmp/dog.safetensors" "$f"
            checks=$((checks + 1))
            case $rc in
            0) grep -q "^$f	dog	" "$tmp/out" || fail "$f: odd output $(cat "$tmp/out")" ;;
            1) grep -qF "catdog: $f" "$tmp/err" || fail "$f: the error does not name the file" ;;
            *) fail "$f: exit status $rc" ;;
            esac
        done
    else
        skipped="$skipped classify(photos missing in tests/data)"
    fi

    # --- maps: one mosaic per conv layer, sizes from cnn.h's rule
    # (ceil(sqrt(c)) columns, 1-pixel gaps): conv1 4 maps of 30x30 -> 2x2
    # grid, 61x61; conv2 8 maps of 15x15 -> 3x3 grid, 47x47.
    if [ "$have_photos" = yes ]; then
        run maps --model "$tmp/dog.safetensors" --out "$tmp/maps/a" data/cat.178.jpg
        expect 0 "maps, all layers"
        same "$(cd "$tmp/maps/a" 2>/dev/null && ls -A | tr '\n' ' ')" "conv1.png conv2.png " \
            "maps: one PNG per conv layer"
        has "$tmp/out" "$tmp/maps/a/conv1.png" "maps prints the paths"
        same "$(png_info "$tmp/maps/a/conv1.png")" "61 61 0" "conv1 mosaic (gray)"
        same "$(png_info "$tmp/maps/a/conv2.png")" "47 47 0" "conv2 mosaic (gray)"

        run maps -m "$tmp/dog.safetensors" --layer conv2 --colormap viridis -o "$tmp/maps/b" \
            data/dog.409.jpg
        expect 0 "maps, one layer, viridis"
        same "$(cd "$tmp/maps/b" 2>/dev/null && ls -A | tr '\n' ' ')" "conv2.png " "maps --layer conv2"
        same "$(png_info "$tmp/maps/b/conv2.png")" "47 47 2" "conv2 mosaic (RGB)"

        usage_error "maps, a layer that is not conv" maps -m "$tmp/dog.safetensors" \
            --layer pool1 --out "$tmp/maps/c" data/cat.178.jpg
        has "$tmp/err" "its conv layers are: conv1 conv2" "maps lists the conv layers"
        usage_error "maps, an unknown layer" maps -m "$tmp/dog.safetensors" \
            --layer nope --out "$tmp/maps/c" data/cat.178.jpg

        run maps -m "$tmp/dog.safetensors" --out "$tmp/maps/d" "$tmp/text.jpg"
        expect 1 "maps on a bad image"
        has "$tmp/err" "catdog: $tmp/text.jpg" "maps names the bad image"
        checks=$((checks + 1))
        [ ! -e "$tmp/maps/d" ] || fail "maps created its folder for a failed image"
    fi
    tiny_ran=yes
}

# write_mirror_model FILE BIAS TEMPERATURE: input 2x2x3, flatten, fc (1
# unit) sigmoid, with fc's weight +2 on the left column's values and -2 on
# the right's: the logit of an image is BIAS + 2 (left - right), that of
# its mirror BIAS - 2 (left - right), so their mean, the --tta logit, is
# BIAS for every image while the plain logit is not.
write_mirror_model() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, struct, sys
path, bias, temperature = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
layers = [
    {"type": "flatten", "name": "flatten"},
    {"type": "dense", "name": "fc", "units": 1, "bias": True},
    {"type": "sigmoid", "name": "prob"},
]
desc = {"schema": 1, "name": "mirror-test", "input": [2, 2, 3], "labels": ["cat", "dog"],
        "preprocess": {"resize": "squash", "scale": 1 / 255, "mean": [0, 0, 0], "std": [1, 1, 1]},
        "flatten": "hwc", "layers": layers, "temperature": temperature}
# (y, x, c) order: x = 0 is the left column.
weight = [2.0 if x == 0 else -2.0 for y in range(2) for x in range(2) for c in range(3)]
tensors = [("fc.weight", [1, 12], weight), ("fc.bias", [1], [bias])]
header, data = {}, b""
for name, shape, values in tensors:
    blob = struct.pack("<%df" % len(values), *values)
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
    data += blob
header["__metadata__"] = {"format": "catdog", "catdog": json.dumps(desc)}
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(text)) + text + data)
EOF
}

# --tta (test-time flip averaging) on classify and eval, with the mirror
# model: every verdict is known in advance.
tta_part() {
    write_mirror_model "$tmp/mirror.safetensors" 0.5 2.0 || { fail "writing the mirror model"; return; }
    want=$(p_dog 0.5 2.0)
    for precision in f32 bf16; do
        # shellcheck disable=SC2086
        run classify --json --tta --precision "$precision" --model "$tmp/mirror.safetensors" $photos
        expect 0 "classify --tta --precision $precision"
        checks=$((checks + 1))
        python3 - "$tmp/out" "$want" <<'EOF' || fail "classify --tta --precision $precision: $(cat "$tmp/out")"
import json, sys
doc = json.load(open(sys.argv[1]))
want = float(sys.argv[2])
assert len(doc["images"]) == 6, doc
for im in doc["images"]:
    assert abs(im["dog_probability"] - want) < 1e-5, (im, want)
    assert im["label"] == "dog", im
EOF
    done
    # Without --tta the left and right halves of the photos tell.
    # shellcheck disable=SC2086
    run classify --json --model "$tmp/mirror.safetensors" $photos
    expect 0 "classify the photos with the mirror model"
    checks=$((checks + 1))
    python3 - "$tmp/out" "$want" <<'EOF' || fail "classify without --tta gives the --tta values: $(cat "$tmp/out")"
import json, sys
doc = json.load(open(sys.argv[1]))
want = float(sys.argv[2])
assert sum(abs(im["dog_probability"] - want) > 1e-3 for im in doc["images"]) >= 3, doc
EOF
    # Tab-separated output and option order: the same probability.
    run classify data/cat.178.jpg --tta -m "$tmp/mirror.safetensors"
    expect 0 "classify IMAGE --tta -m FILE"
    same "$(cat "$tmp/out")" "$(printf 'data/cat.178.jpg\tdog\t%.4f' "$want")" "classify --tta line"

    # eval --tta: every photo is "dog" with probability $want.
    mkdir -p "$tmp/evaldir/cats" "$tmp/evaldir/dogs"
    for f in $photos; do
        case "$f" in
        data/cat.*) cp "$f" "$tmp/evaldir/cats/" ;;
        *) cp "$f" "$tmp/evaldir/dogs/" ;;
        esac
    done
    run eval --tta --model "$tmp/mirror.safetensors" "$tmp/evaldir"
    expect 0 "eval --tta"
    has "$tmp/out" "test-time flip averaging" "eval --tta says so"
    same "$(tail -n 1 "$tmp/out")" \
        "$(awk -v p="$want" 'BEGIN { printf "accuracy 0.5000 logloss %.4f n 6", -(log(p) + log(1 - p)) / 2 }')" \
        "eval --tta: accuracy and log loss"
    run eval --model "$tmp/mirror.safetensors" "$tmp/evaldir"
    expect 0 "eval without --tta"
    checks=$((checks + 1))
    ! grep -q "test-time flip averaging" "$tmp/out" || fail "eval without --tta mentions it"
}

tiny_ran=no
if command -v python3 >/dev/null 2>&1; then
    tiny_part
    if [ "$have_photos" = yes ]; then tta_part; fi
else
    skipped="$skipped tiny-models(python3 missing)"
fi

# ------------------------------------------------------------------
# 3. The shipped model
# ------------------------------------------------------------------

default_ran=no
model="$src/weights/catdog.safetensors"
run info "$model"
if [ "$rc" -ne 0 ]; then
    skipped="$skipped shipped-model(not loadable yet: $(head -n 1 "$tmp/err"))"
elif [ "$have_photos" != yes ]; then
    skipped="$skipped shipped-model(photos missing in tests/data)"
else
    default_ran=yes
    convs=$(awk '$2 == "conv2d" { print $1 }' "$tmp/out")
    # shellcheck disable=SC2086
    CATDOG_MODEL=$model "$CATDOG" classify $photos >"$tmp/out" 2>"$tmp/err"
    rc=$?
    expect 0 "classify with the shipped model"
    checks=$((checks + 1))
    awk -F '\t' 'NF != 3 || ($2 != "cat" && $2 != "dog") || $3 !~ /^[01]\.[0-9][0-9][0-9][0-9]$/ ||
                 $3 < 0.5 || $3 > 1 { bad = 1 } END { exit bad || NR != 6 }' "$tmp/out" ||
        fail "shipped model verdicts: $(cat "$tmp/out")"
    sed 's/^/  /' "$tmp/out"
    # Results do not depend on the thread count.
    cp "$tmp/out" "$tmp/threads0"
    # shellcheck disable=SC2086
    run classify --model "$model" --threads 1 $photos
    checks=$((checks + 1))
    cmp -s "$tmp/out" "$tmp/threads0" || fail "--threads 1 changes the verdicts"
    # bf16 convolutions and dense layer: the same verdicts on the sample
    # photos (the labels; probabilities move in the second decimal).
    # shellcheck disable=SC2086
    run classify --model "$model" --precision bf16 $photos
    expect 0 "classify --precision bf16"
    checks=$((checks + 1))
    [ "$(cut -f 1,2 "$tmp/out")" = "$(cut -f 1,2 "$tmp/threads0")" ] ||
        fail "--precision bf16 changes the verdicts: $(cat "$tmp/out")"

    # --tta, alone and with --precision bf16: well-formed verdicts, and the
    # same labels in both precisions.
    # shellcheck disable=SC2086
    run classify --model "$model" --tta $photos
    expect 0 "classify --tta with the shipped model"
    checks=$((checks + 1))
    awk -F '\t' 'NF != 3 || ($2 != "cat" && $2 != "dog") || $3 < 0.5 || $3 > 1 { bad = 1 }
                 END { exit bad || NR != 6 }' "$tmp/out" || fail "shipped model --tta verdicts: $(cat "$tmp/out")"
    sed 's/^/  tta /' "$tmp/out"
    cp "$tmp/out" "$tmp/tta"
    # shellcheck disable=SC2086
    run classify --model "$model" --tta --precision bf16 $photos
    expect 0 "classify --tta --precision bf16"
    checks=$((checks + 1))
    [ "$(cut -f 1,2 "$tmp/out")" = "$(cut -f 1,2 "$tmp/tta")" ] ||
        fail "--tta --precision bf16 changes the verdicts: $(cat "$tmp/out")"

    run maps --model "$model" --colormap viridis --out "$tmp/maps/shipped" data/dog.630.jpg
    expect 0 "maps with the shipped model"
    same "$(cd "$tmp/maps/shipped" 2>/dev/null && ls -A | tr '\n' ' ')" \
        "$(for c in $convs; do printf '%s.png\n' "$c"; done | sort | tr '\n' ' ')" \
        "one mosaic per conv layer of the shipped model"
fi

summary cli
if [ "$tiny_ran" = no ] && [ "$default_ran" = no ]; then
    echo "SKIP: no model could be loaded"
    exit 77
fi
exit 0
