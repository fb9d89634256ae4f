#!/bin/sh
# kill_checkpoint.sh - nothing lost when training is killed (suite
# 'robustness').  A short training run on four sample photos writes its
# checkpoint and model after every epoch (a few times a second); it is
# killed with SIGKILL again and again, after random delays and, every
# other round, the moment a checkpoint write has begun (its temporary file
# exists).  After every kill:
#   - the checkpoint, once one exists, is complete: training resumes from
#     it (the next round starts with --resume);
#   - the model file, once one exists, loads (catdog info);
#   - nothing but the data set, the checkpoint and the model is visible in
#     the folder: a half-written file only ever exists under a hidden
#     temporary name, never under the checkpoint's or the model's.
# At the end, the next clean checkpoint save removes a killed writer's
# stale temporary file but leaves a fresh one (another writer's) alone.
# Exit 77 (skip) when catdog has no working train command.
set -u

if [ -z "${CATDOG:-}" ] || [ ! -x "$CATDOG" ]; then
    echo "SKIP: \$CATDOG does not name the catdog binary"
    exit 77
fi
if ! "$CATDOG" train --help >/dev/null 2>&1; then
    echo "SKIP: catdog has no train command"
    exit 77
fi
src=${CATDOG_SOURCE_ROOT:-..}
tmp=$(mktemp -d) || exit 1
trap 'kill -KILL $pid 2>/dev/null; rm -rf "$tmp"' EXIT INT TERM
pid=

checks=0
failures=0
fail() {
    failures=$((failures + 1))
    echo "FAILED: $*"
    [ -s "$tmp/err" ] && tail -n 3 "$tmp/err" | sed 's/^/  stderr: /'
}

# The data set: two photos per class, the same ones for validation.
ds=$tmp/data
for split in train validation; do
    mkdir -p "$ds/$split/cats" "$ds/$split/dogs"
    cp "$src/tests/data/cat.596.jpg" "$src/tests/data/cat.178.jpg" "$ds/$split/cats/" &&
        cp "$src/tests/data/dog.630.jpg" "$src/tests/data/dog.409.jpg" "$ds/$split/dogs/" || exit 1
done

# Small input, but a dense layer of 3 million weights: the checkpoint
# (weights and two Adam moments) is 37 MB, so each write takes long enough
# to be killed in the middle of.
arch='{"schema":1,"name":"kill","input":[32,32,3],"labels":["cat","dog"],"layers":[
{"type":"flatten","name":"flat"},{"type":"dense","name":"fc1","units":1000},
{"type":"relu","name":"relu"},{"type":"dense","name":"fc2","units":1},
{"type":"sigmoid","name":"prob"}]}'

work=$tmp/run
mkdir -p "$work"
ckpt=$work/kill.ckpt
out=$work/kill.safetensors

start_training() {
    if [ -f "$ckpt" ]; then
        "$CATDOG" train --data "$ds" --out "$out" --checkpoint "$ckpt" --resume "$ckpt" \
            >"$tmp/log" 2>"$tmp/err" &
    else
        "$CATDOG" train --data "$ds" --out "$out" --checkpoint "$ckpt" --arch "$arch" \
            --epochs 100000 --batch 2 --threads 1 --augment none --dtype f32 \
            >"$tmp/log" 2>"$tmp/err" &
    fi
    pid=$!
}

# Temporary files of the writes under way, or left by an earlier kill.
temporaries() {
    for f in "$work"/.kill.ckpt.tmp-* "$work"/.kill.safetensors.tmp-*; do
        [ -e "$f" ] && echo "$f"
    done
}
# A write has begun since this round started: a new temporary file.  Shell
# built-ins only, so that the kill follows within microseconds.
writing() {
    for f in "$work"/.kill.ckpt.tmp-* "$work"/.kill.safetensors.tmp-*; do
        [ -e "$f" ] || continue
        case " $before " in *" $f "*) ;; *) return 0 ;; esac
    done
    return 1
}

# Random delays from a fixed seed, in seconds.
delays=$(awk 'BEGIN { srand(6); for (i = 0; i < 20; i++) printf "%.3f ", 0.05 + rand() * 0.6 }')

rounds=12
hit_writes=0
round=1
for delay in $delays; do
    [ "$round" -le "$rounds" ] || break
    before=$(temporaries | tr '\n' ' ')
    start_training
    if [ "$round" -eq 1 ]; then
        # Long enough for the photos to be decoded and a few epochs saved.
        sleep 2
        how="after 2 s"
    elif [ $((round % 2)) -eq 0 ]; then
        # Poll (a bounded number of times) for a write to begin, then
        # kill at once.
        waited=0
        while ! writing && [ "$waited" -lt 200000 ]; do waited=$((waited + 1)); done
        how="once a write began"
    else
        sleep "$delay"
        how="after $delay s"
    fi
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    rc=$?
    pid=

    # A run resumed from a damaged checkpoint would have ended by itself
    # with status 1 before the kill.
    checks=$((checks + 1))
    [ "$rc" -eq 137 ] || fail "round $round: training ended with status $rc before it was killed"
    checks=$((checks + 1))
    [ "$round" -gt 1 ] || [ -f "$ckpt" ] || fail "round 1: no checkpoint after 2 s of training"
    if [ -f "$out" ]; then
        checks=$((checks + 1))
        "$CATDOG" info "$out" >/dev/null 2>"$tmp/err" ||
            fail "round $round (killed $how): the model file does not load"
    fi
    # Only the checkpoint and the model may be visible.
    checks=$((checks + 1))
    extra=$(ls "$work" | grep -v '^kill\.\(ckpt\|safetensors\)$')
    [ -z "$extra" ] || fail "round $round (killed $how): unexpected files: $extra"
    # The kill interrupted a write if it left a new temporary file.
    left=$(temporaries | wc -l)
    for f in $(temporaries); do
        case " $before " in *" $f "*) continue ;; esac
        hit_writes=$((hit_writes + 1))
        name=${f##*/.}
        how="$how, in the middle of writing ${name%.tmp-*}"
        break
    done
    echo "round $round: killed $how; $left temporary files left"
    # What a kill leaves is garbage no process will finish; removed here
    # only to keep this test's disk (often RAM) use small.
    temporaries | while read -r f; do rm -f "$f"; done
    round=$((round + 1))
done

# What kills leave behind is cleaned up by the next successful save of the
# same file, except for a temporary file younger than a minute: that may
# be another writer's, still at work.
printf 'killed writer\n' >"$work/.kill.ckpt.tmp-AAAAAA"
touch -d '2 minutes ago' "$work/.kill.ckpt.tmp-AAAAAA"
printf 'busy writer\n' >"$work/.kill.ckpt.tmp-CCCCCC"
printf 'not ours\n' >"$work/.kill.ckpt.tmp-DDDDDDD"
touch -d '2 minutes ago' "$work/.kill.ckpt.tmp-DDDDDDD"

# The last checkpoint still resumes: one more step, then a clean stop.
checks=$((checks + 1))
if [ -f "$ckpt" ]; then
    "$CATDOG" train --data "$ds" --out "$out" --checkpoint "$ckpt" --resume "$ckpt" \
        --stop-after 1 >"$tmp/log" 2>"$tmp/err"
    rc=$?
    [ "$rc" -eq 130 ] || fail "resuming from the last checkpoint: exit status $rc, expected 130"
else
    fail "no checkpoint at the end"
fi
checks=$((checks + 1))
[ ! -e "$work/.kill.ckpt.tmp-AAAAAA" ] ||
    fail "a killed writer's temporary file (2 minutes old) survived the next checkpoint save"
checks=$((checks + 1))
[ -e "$work/.kill.ckpt.tmp-CCCCCC" ] && [ -e "$work/.kill.ckpt.tmp-DDDDDDD" ] ||
    fail "the checkpoint save removed a temporary file that was not a stale leftover of its own"
checks=$((checks + 1))
[ "$hit_writes" -ge 1 ] ||
    fail "no kill landed during a write ($hit_writes of $((rounds / 2)) tries); the test proves nothing"
echo "kill_checkpoint: $hit_writes kills during a write; $checks checks, $failures failed"
[ "$failures" -eq 0 ]
