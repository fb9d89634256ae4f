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
#      usage error;
#   5. --calib 10 holds 10 photos per class out of training, fits the
#      temperature on them after every epoch (the epoch line gives T and
#      the ECE at T 1; OUT stores the best epoch's T), and a stopped and
#      resumed run still writes the same bytes;
#   6. --init starts from a model file's weights: a second stage at a
#      learning rate too small to move them evaluates as the file does
#      (within 0.002; a run from the seed's weights does not), records
#      the file, and stops and resumes to the same bytes; --init with
#      --arch or --resume is a usage error, a missing file an error
#      naming it.
#   7. --init with --input 64 trains the same weights at 64 x 64 pixels
#      (OUT and --resume keep the size; stop and resume give the same
#      bytes); --input with --resume is a usage error, and a network whose
#      dense layer depends on the size is refused, naming the layer.
# Exit 77 (skip) when the data set or the binary is absent.
set -u

# shellcheck source=tests/check.sh
. "$(dirname "$0")/../check.sh"
src=${CATDOG_SOURCE_ROOT:-../..}
# shellcheck source=tests/train/run_common.sh
. "$(dirname "$0")/run_common.sh"

train() { # train OUT SEED EXTRA...
    out=$1
    seed=$2
    shift 2
    "$CATDOG" train --data "$data" --out "$out" --arch "$arch" --limit 100 \
        --epochs 3 --batch 16 --threads 2 --seed "$seed" --augment v2 --erase 0.5 \
        --mixup 0.2 --cutmix 1 --label-smoothing 0.1 --ema 0.9 --warmup 0.5 \
        --keep-best --lr 0.05 "$@" >"$tmp/log" 2>"$tmp/err"
}

# resume_same WHAT NAME REFERENCE: the stopped run $tmp/NAME.safetensors,
# resumed, writes REFERENCE's model and checkpoint (REFERENCE.ckpt) bytes.
resume_same() {
    "$CATDOG" train --data "$data" --out "$tmp/$2.safetensors" --limit 100 \
        --resume "$tmp/$2.safetensors.ckpt" >"$tmp/log" 2>"$tmp/err"
    check $? "$1: resume failed"
    cmp -s "$3" "$tmp/$2.safetensors" && cmp -s "$3.ckpt" "$tmp/$2.safetensors.ckpt"
    check $? "$1: stop + resume differs from one uninterrupted run"
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
# ... and records that epoch (at lr 0.05 the best is epoch 2 of 3 today,
# so OUT is not simply the last epoch).
n=$(sed -n 's/.*best epoch \([0-9]*\),.*/\1/p' "$tmp/a.err" | tail -n 1)
tr -d '\\' <"$tmp/a.safetensors" | head -c 8000 | grep -aq "\"epochs_done\":$n[,}]"
check $? "OUT does not record the best epoch ($n) as epochs_done"

train "$tmp/b.safetensors" 5 --stop-after 17
rc=$?
test "$rc" -eq 130 && test -s "$tmp/b.safetensors.ckpt"
check $? "--stop-after: exit status $rc, expected 130 and a checkpoint"
resume_matches b 100
cmp -s "$tmp/a.safetensors.ckpt" "$tmp/b.safetensors.ckpt"
check $? "stop + resume: another checkpoint than one uninterrupted run"

train "$tmp/c.safetensors" 6
check $? "run with another seed failed"
cmp -s "$tmp/a.safetensors" "$tmp/c.safetensors"
test $? -ne 0
check $? "another seed gave the same bytes"

train "$tmp/e.safetensors" 5 --calib 10
check $? "run with --calib failed"
grep -q '^180 training, 20 calibration (held out) and 200 validation images' "$tmp/err"
check $? "--calib 10: not 180 training and 20 calibration photos"
grep -Eq '^epoch 3/3 done: .* ECE [01]\.[0-9]{4} \(T [0-9]+\.[0-9]{3}; at T 1: ECE [01]\.[0-9]{4}\) \(n 200\)' "$tmp/err"
check $? "--calib: no epoch line with the temperature"
bestn=$(sed -n 's/.*best epoch \([0-9]*\),.*/\1/p' "$tmp/err" | tail -n 1)
printed=$(sed -n "s/^epoch $bestn\/3 done: .*(T \([0-9.]*\);.*/\1/p" "$tmp/err")
stored=$(tr -d '\\' <"$tmp/e.safetensors" | head -c 8000 |
    sed -n 's/.*"temperature":\([0-9.e+-]*\).*/\1/p' | head -n 1)
[ -n "$printed" ] && [ -n "$stored" ] && [ "$(printf '%.3f' "$stored")" = "$printed" ] &&
    [ "$printed" != "1.000" ]
check $? "--calib: OUT's temperature ($stored) is not the best epoch's T ($printed)"
cp "$tmp/e.safetensors" "$tmp/e.first"
cp "$tmp/e.safetensors.ckpt" "$tmp/e.first.ckpt"
train "$tmp/f.safetensors" 5 --calib 10 --stop-after 17
test $? -eq 130
check $? "--calib --stop-after: not stopped"
resume_same --calib f "$tmp/e.first"

"$CATDOG" train --data "$data" --out "$tmp/d.safetensors" --erase 0.3 >"$tmp/log" 2>"$tmp/err"
rc=$?
test "$rc" -eq 2 && grep -q -- "--augment v2" "$tmp/err"
check $? "--erase without --augment v2: status $rc"

# 6. A second stage from a file (--init): here at lr 1e-7, which leaves
# the weights where they were, so the result evaluates as the file did.
stage2() { # stage2 OUT EXTRA...
    out=$1
    shift
    "$CATDOG" train --data "$data" --out "$out" --limit 100 --epochs 2 --batch 16 \
        --threads 2 --seed 5 --augment none --lr 1e-7 --calib 10 "$@" >"$tmp/log" 2>"$tmp/err"
}
last_eval() { # last_eval MODEL: catdog eval's last line on 100 photos per class
    "$CATDOG" eval --model "$1" --limit 100 --threads 2 "$data/validation" 2>/dev/null | tail -n 1
}
stage2 "$tmp/g.safetensors" --init "$tmp/e.first"
check $? "--init run failed"
tr -d '\\' <"$tmp/g.safetensors" | head -c 20000 | grep -aq '"init":"[^"]*e.first"'
check $? "--init: OUT does not record the file it started from"
want=$(last_eval "$tmp/e.first")
got=$(last_eval "$tmp/g.safetensors")
# close(A, B, TOL): both eval lines, accuracy and log loss within TOL
close() {
    [ -n "$1" ] && [ -n "$2" ] &&
        printf '%s\n%s\n' "$1" "$2" | awk -v tol="$3" '
            { acc[NR] = $2; ll[NR] = $4 }
            END { d1 = acc[1] - acc[2]; d2 = ll[1] - ll[2]
                  exit !(d1 <= tol && -d1 <= tol && d2 <= tol && -d2 <= tol) }'
}
close "$got" "$want" 0.002
check $? "--init at lr 1e-7: '$got', the file it started from: '$want'"
stage2 "$tmp/h.safetensors" --arch "$arch"
check $? "seed run for the --init comparison failed"
fresh=$(last_eval "$tmp/h.safetensors")
echo "--init: eval of the file '$want', of the --init run '$got', of a seed run '$fresh'"
! close "$fresh" "$want" 0.01
check $? "a run from the seed's weights ('$fresh') evaluates as the --init file does: not a test"
stage2 "$tmp/i.safetensors" --init "$tmp/e.first" --stop-after 9
test $? -eq 130
check $? "--init --stop-after: not stopped"
resume_same --init i "$tmp/g.safetensors"
for bad in "--arch catdog-v1" "--resume $tmp/g.safetensors.ckpt"; do
    # shellcheck disable=SC2086 # two words on purpose
    "$CATDOG" train --data "$data" --out "$tmp/j.safetensors" --init "$tmp/e.first" $bad \
        >"$tmp/log" 2>"$tmp/err"
    rc=$?
    test "$rc" -eq 2 && grep -q -- "--init" "$tmp/err"
    check $? "--init with $bad: status $rc, expected a usage error naming --init"
done
"$CATDOG" train --data "$data" --out "$tmp/j.safetensors" --init "$tmp/no-such.safetensors" \
    >"$tmp/log" 2>"$tmp/err"
rc=$?
test "$rc" -eq 1 && grep -q "no-such.safetensors" "$tmp/err" && test ! -e "$tmp/j.safetensors"
check $? "--init with a missing file: status $rc, expected 1 and a message naming it"

# 7. Another input size for the second stage (--input).
stage2 "$tmp/k.safetensors" --init "$tmp/e.first" --input 64 --lr 1e-3
check $? "--init --input 64 run failed"
"$CATDOG" info "$tmp/k.safetensors" 2>&1 | grep -q '^input  *64x64x3'
check $? "--input 64: OUT's input is not 64x64x3"
stage2 "$tmp/l.safetensors" --init "$tmp/e.first" --input 64 --lr 1e-3 --stop-after 9
test $? -eq 130
check $? "--input --stop-after: not stopped"
resume_same --input l "$tmp/k.safetensors"
"$CATDOG" train --data "$data" --out "$tmp/m.safetensors" --input 64 \
    --resume "$tmp/k.safetensors.ckpt" >"$tmp/log" 2>"$tmp/err"
rc=$?
test "$rc" -eq 2 && grep -q -- "--input" "$tmp/err"
check $? "--input with --resume: status $rc, expected a usage error naming --input"
"$CATDOG" train --data "$data" --out "$tmp/m.safetensors" --arch article --input 64 \
    --limit 4 >"$tmp/log" 2>"$tmp/err"
rc=$?
test "$rc" -eq 1 && grep -q 'layer "fc1"' "$tmp/err" && test ! -e "$tmp/m.safetensors"
check $? "--input on a network with a dense layer after flatten: status $rc, expected 1 naming fc1"

summary recipe_run
