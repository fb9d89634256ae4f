#!/bin/sh
# recipe_run.sh - a short real run with the whole v2 recipe (suite
# 'train'): 200 photos of ../shared/data/catdog (or $CATDOG_DATA), three
# epochs of a small network with --augment v2, mixup, cutmix, label
# smoothing, the moving average and --keep-best.
#   1. the epoch lines give ECE and the best epoch;
#   2. a run stopped after 17 steps and resumed writes the same model and
#      checkpoint bytes as the uninterrupted run (the checkpoint carries
#      the moving average and the best epoch);
#   3. OUT is the best epoch's model (its log loss is the lowest printed);
#   4. another seed gives other bytes; --erase without --augment v2 is a
#      usage error.
# Exit 77 (skip) when the data set or the binary is absent.
set -u

# shellcheck source=tests/check.sh
. "$(dirname "$0")/../check.sh"
src=${CATDOG_SOURCE_ROOT:-../..}
data=${CATDOG_DATA:-$src/../shared/data/catdog}
if [ ! -d "$data/train/cats" ] || [ ! -d "$data/validation/dogs" ]; then
    echo "SKIP: no data set at $data (set CATDOG_DATA to a folder with train/ and validation/)"
    exit 77
fi
check() { # check CONDITION-STATUS DESCRIPTION
    checks=$((checks + 1))
    [ "$1" -eq 0 ] || fail "$2"
}

arch='{"schema":1,"name":"short","input":[48,48,3],"labels":["cat","dog"],
"preprocess":{"resize":"squash","scale":0.00392156862745098,"mean":[0,0,0],"std":[1,1,1]},
"layers":[
{"type":"conv2d","name":"conv1","filters":8,"kernel":3,"padding":"same","bias":false},
{"type":"batchnorm","name":"bn1"},{"type":"relu","name":"relu1"},
{"type":"maxpool","name":"pool1","size":2,"stride":2},
{"type":"conv2d","name":"conv2","filters":16,"kernel":3,"padding":"same","bias":false},
{"type":"batchnorm","name":"bn2"},{"type":"relu","name":"relu2"},
{"type":"gap","name":"gap"},{"type":"dense","name":"fc","units":1},{"type":"sigmoid","name":"prob"}]}'

train() { # train OUT SEED EXTRA...
    out=$1
    seed=$2
    shift 2
    "$CATDOG" train --data "$data" --out "$out" --arch "$arch" --limit 100 \
        --epochs 3 --batch 16 --threads 2 --seed "$seed" --augment v2 --erase 0.5 \
        --mixup 0.2 --cutmix 1 --label-smoothing 0.1 --ema 0.9 --warmup 0.5 \
        --keep-best "$@" >"$tmp/log" 2>"$tmp/err"
}

train "$tmp/a.safetensors" 5
check $? "recipe run failed"
grep -Eq '^epoch 3/3 done: .* logloss [0-9.]+ ECE [01]\.[0-9]{4} \(n 200\), best epoch [123],' "$tmp/err"
check $? "no epoch line with ECE and the best epoch"
cp "$tmp/err" "$tmp/a.err"

# OUT holds the lowest validation log loss of the epoch lines.
best=$(sed -n 's/.* logloss \([0-9.]*\) ECE.*/\1/p' "$tmp/a.err" | sort -n | head -n 1)
tr -d '\\' <"$tmp/a.safetensors" | head -c 4000 | grep -aq "\"val_logloss\":$best"
rc=$?
# (the card stores the full double; compare its first 4 decimals)
if [ "$rc" -ne 0 ]; then
    stored=$(tr -d '\\' <"$tmp/a.safetensors" | head -c 4000 |
        sed -n 's/.*"val_logloss":\([0-9.]*\).*/\1/p' | head -n 1)
    [ -n "$stored" ] && [ "$(printf '%.4f' "$stored")" = "$best" ]
    rc=$?
fi
check $rc "OUT is not the best epoch's model (best printed $best)"

train "$tmp/b.safetensors" 5 --stop-after 17
rc=$?
test "$rc" -eq 130 && test -s "$tmp/b.safetensors.ckpt"
check $? "--stop-after: exit status $rc, expected 130 and a checkpoint"
"$CATDOG" train --data "$data" --out "$tmp/b.safetensors" --limit 100 \
    --resume "$tmp/b.safetensors.ckpt" >"$tmp/log" 2>"$tmp/err"
check $? "resume failed"
cmp -s "$tmp/a.safetensors" "$tmp/b.safetensors"
check $? "stop + resume: another model than one uninterrupted run"
cmp -s "$tmp/a.safetensors.ckpt" "$tmp/b.safetensors.ckpt"
check $? "stop + resume: another checkpoint than one uninterrupted run"

train "$tmp/c.safetensors" 6
check $? "run with another seed failed"
cmp -s "$tmp/a.safetensors" "$tmp/c.safetensors"
test $? -ne 0
check $? "another seed gave the same bytes"

"$CATDOG" train --data "$data" --out "$tmp/d.safetensors" --erase 0.3 >"$tmp/log" 2>"$tmp/err"
rc=$?
test "$rc" -eq 2 && grep -q -- "--augment v2" "$tmp/err"
check $? "--erase without --augment v2: status $rc"

summary recipe_run
