#!/bin/sh
# short_run.sh - a short real training run (suite 'train'): 300 photos of
# ../shared/data/catdog (or $CATDOG_DATA), one epoch of a small network.
#   1. two runs with the same seed and threads write the same bytes;
#   2. a run stopped after 7 steps (as Ctrl-C does: exit 130, checkpoint)
#      and resumed writes the same bytes as the uninterrupted run;
#   3. a damaged checkpoint is refused; SIGINT (Ctrl-C) stops cleanly with a checkpoint, status 130;
#   4. a different seed gives different weights;
#   5. catdog eval of the result prints its contract line (and with
#      --precision bf16 too);
#   6. --precision bf16: the trainer says so, the same seed gives the same
#      bytes, not f32's, and stop + resume (which keeps the precision
#      recorded in the checkpoint) gives the uninterrupted run's bytes.
# Exit 77 (skip) when the data set or the binary is absent.
set -u

# shellcheck source=tests/check.sh
. "$(dirname "$0")/../check.sh"
src=${CATDOG_SOURCE_ROOT:-../..}
# shellcheck source=tests/train/run_common.sh
. "$(dirname "$0")/run_common.sh"

train() { # train OUT EXTRA...
    out=$1
    shift
    "$CATDOG" train --data "$data" --out "$out" --arch "$arch" --limit 150 \
        --epochs 1 --batch 16 --threads 2 --seed 5 "$@" >"$tmp/log" 2>"$tmp/err"
}

train "$tmp/a.safetensors"
check $? "first run failed"
train "$tmp/b.safetensors"
check $? "second run failed"
cmp -s "$tmp/a.safetensors" "$tmp/b.safetensors"
check $? "two runs with the same seed and threads differ"
grep -q "validation accuracy" "$tmp/err"
check $? "no per-epoch validation line"

train "$tmp/c.safetensors" --stop-after 7
rc=$?
test "$rc" -eq 130
check $? "--stop-after: exit status $rc, expected 130"
test -s "$tmp/c.safetensors.ckpt" && test ! -e "$tmp/c.safetensors"
check $? "--stop-after: expected a checkpoint and no model yet"
resume_matches c 150

# A damaged checkpoint is refused, naming the file.
cp "$tmp/c.safetensors.ckpt" "$tmp/bad.ckpt"
printf 'X' | dd of="$tmp/bad.ckpt" bs=1 seek=200 conv=notrunc 2>/dev/null
"$CATDOG" train --data "$data" --out "$tmp/f.safetensors" --limit 150 \
    --resume "$tmp/bad.ckpt" >"$tmp/log" 2>"$tmp/err"
rc=$?
test "$rc" -eq 1 && grep -q "bad.ckpt.*damaged" "$tmp/err"
check $? "a damaged checkpoint: status $rc, $(cat "$tmp/err")"

# Ctrl-C: SIGINT stops after the current batch with a checkpoint, status 130.
"$CATDOG" train --data "$data" --out "$tmp/e.safetensors" --arch "$arch" --limit 150 \
    --epochs 1000 --batch 16 --threads 2 >"$tmp/log" 2>"$tmp/err" &
pid=$!
sleep 2
kill -INT "$pid"
wait "$pid"
rc=$?
test "$rc" -eq 130 && test -s "$tmp/e.safetensors.ckpt"
check $? "SIGINT: exit status $rc (expected 130) or no checkpoint"
grep -q "resume" "$tmp/err"
check $? "SIGINT: no hint to resume"

"$CATDOG" train --data "$data" --out "$tmp/d.safetensors" --arch "$arch" --limit 150 \
    --epochs 1 --batch 16 --threads 2 --seed 6 >"$tmp/log" 2>"$tmp/err"
check $? "run with another seed failed"
cmp -s "$tmp/a.safetensors" "$tmp/d.safetensors"
test $? -ne 0
check $? "another seed gave the same bytes"

"$CATDOG" eval --model "$tmp/a.safetensors" --limit 50 "$data/validation" >"$tmp/out" 2>"$tmp/err"
check $? "eval failed"
tail -n 1 "$tmp/out" | grep -Eq '^accuracy [01]\.[0-9]{4} logloss [0-9]+\.[0-9]{4} n 100$'
check $? "eval's last line is not 'accuracy A logloss L n 100': $(tail -n 1 "$tmp/out")"

"$CATDOG" eval --precision bf16 --model "$tmp/a.safetensors" --limit 50 "$data/validation" \
    >"$tmp/out" 2>"$tmp/err"
check $? "eval --precision bf16 failed"
tail -n 1 "$tmp/out" | grep -Eq '^accuracy [01]\.[0-9]{4} logloss [0-9]+\.[0-9]{4} n 100$'
check $? "eval --precision bf16: last line $(tail -n 1 "$tmp/out")"

# bf16: a (the f32 run) moves to f32.safetensors; a is then the
# uninterrupted bf16 run that resume_matches compares with.
mv "$tmp/a.safetensors" "$tmp/f32.safetensors"
train "$tmp/a.safetensors" --precision bf16
check $? "bf16 run failed"
grep -q "precision bf16" "$tmp/err"
check $? "bf16 run: the trainer does not say 'precision bf16': $(head -n 3 "$tmp/err")"
train "$tmp/g.safetensors" --precision bf16
cmp -s "$tmp/a.safetensors" "$tmp/g.safetensors"
check $? "two bf16 runs with the same seed and threads differ"
cmp -s "$tmp/a.safetensors" "$tmp/f32.safetensors"
test $? -ne 0
check $? "--precision bf16 gave the f32 run's bytes"
train "$tmp/h.safetensors" --precision bf16 --stop-after 7
test $? -eq 130 && grep -q '"precision":"bf16"' "$tmp/h.safetensors.ckpt"
check $? "bf16 --stop-after: no checkpoint recording precision bf16"
resume_matches h 150

summary short_run
