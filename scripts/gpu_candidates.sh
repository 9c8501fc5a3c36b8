#!/usr/bin/env bash
# Train the bundled model's candidates side by side on one GPU server, then pack the runs.
#
#   python -m faceml shrink --path ../shared/data/utkface --size 64 --quality 90 --out .data/utkface64
#   KERAS_BACKEND=jax scripts/gpu_candidates.sh .data/utkface64 OUT [DEADLINE_S] [EXTRA_TRAIN_ARGS...]
#
# Every candidate is a plain `python -m faceml train` (so its command is on its model card);
# they share the GPU (XLA_PYTHON_CLIENT_PREALLOCATE=false). At DEADLINE_S seconds a STOP file
# asks any unfinished run to stop after its current batch: it still stores its predictions.
# OUT receives at most 8 files: each run's model without optimizer state (ID.keras), all runs'
# records in runs.tgz and the log. The candidate is chosen on validation, never on test.
set -u
DATA=$1; OUT=$2; DEADLINE=${3:-330}; shift $(( $# < 3 ? $# : 3 ))
EXTRA=("$@")
export FACEML_RUNS_DIR=${FACEML_RUNS_DIR:-/tmp/faceml-runs} XLA_PYTHON_CLIENT_PREALLOCATE=false
mkdir -p "$OUT" "$FACEML_RUNS_DIR" /tmp/faceml-logs
python3 -m faceml prepare utkface --path "$DATA" --size 64 --color rgb --json || exit 1
common=(--dataset utkface --path "$DATA" --size 64 --color rgb --heads gender,race,age
        --head-weights age=0.1 --optimizer adamw --schedule cosine --augment flip,rotation,zoom
        --seed 0)
pids=()
train() {
  local name=$1; shift
  python3 -m faceml train "${common[@]}" "$@" "${EXTRA[@]}" --json \
    >"/tmp/faceml-logs/$name.json" 2>"/tmp/faceml-logs/$name.err" &
  pids+=($!)
}
train a --arch deep_cnn --lr 0.003 --batch-size 128 --epochs 30
train b --arch deep_cnn --lr 0.003 --batch-size 128 --epochs 45
train c --arch deep_cnn --param base_filters=40 --lr 0.003 --batch-size 128 --epochs 35
train d --arch default_cnn --lr 0.003 --batch-size 128 --epochs 50
( sleep "$DEADLINE"; for d in "$FACEML_RUNS_DIR"/*/; do touch "$d/STOP"; done ) &
sleeper=$!
wait "${pids[@]}"
kill "$sleeper" 2>/dev/null
for f in /tmp/faceml-logs/*.err; do echo "== $f"; tail -n 3 "$f"; done
python3 -m scripts.pack_runs "$FACEML_RUNS_DIR" "$OUT"
