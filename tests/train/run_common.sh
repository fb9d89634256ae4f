# run_common.sh - what the training-run tests share (sourced by
# short_run.sh and recipe_run.sh after ../check.sh): $data (the data set,
# ../shared/data/catdog or $CATDOG_DATA; exit 77, skip, without it),
# check, resume_matches, and $arch, a small network that trains in seconds.
# shellcheck shell=sh

data=${CATDOG_DATA:-$src/../shared/data/catdog}
if [ ! -d "$data/train/cats" ] || [ ! -d "$data/validation/dogs" ]; then
    echo "SKIP: no data set at $data (set CATDOG_DATA to a folder with train/ and validation/)"
    exit 77
fi
check() { # check CONDITION-STATUS DESCRIPTION
    checks=$((checks + 1))
    [ "$1" -eq 0 ] || fail "$2"
}

# resume_matches NAME LIMIT: resumes $tmp/NAME.safetensors from its
# checkpoint; the result must be the uninterrupted run's $tmp/a.safetensors.
resume_matches() {
    "$CATDOG" train --data "$data" --out "$tmp/$1.safetensors" --limit "$2" \
        --resume "$tmp/$1.safetensors.ckpt" >"$tmp/log" 2>"$tmp/err"
    check $? "resume failed"
    cmp -s "$tmp/a.safetensors" "$tmp/$1.safetensors"
    check $? "stop + resume differs from one uninterrupted run"
}

# shellcheck disable=SC2034 # used by the sourcing test
arch='{"schema":1,"name":"short","input":[48,48,3],"labels":["cat","dog"],
"preprocess":{"resize":"squash","scale":0.00392156862745098,"mean":[0,0,0],"std":[1,1,1]},
"layers":[
{"type":"conv2d","name":"conv1","filters":8,"kernel":3,"padding":"same","bias":false},
{"type":"batchnorm","name":"bn1"},{"type":"relu","name":"relu1"},
{"type":"maxpool","name":"pool1","size":2,"stride":2},
{"type":"conv2d","name":"conv2","filters":16,"kernel":3,"padding":"same","bias":false},
{"type":"batchnorm","name":"bn2"},{"type":"relu","name":"relu2"},
{"type":"gap","name":"gap"},{"type":"dropout","name":"drop","rate":0.2},
{"type":"dense","name":"fc","units":1},{"type":"sigmoid","name":"prob"}]}'
