#!/usr/bin/env bash
# Failure behaviour of the experiment executables (README "Failure behaviour"): every bad input gets a one-line
# error naming what was wrong and a non-zero status, and nothing already written is lost.
#   WAVRES_BUILD=build/openmp WAVRES_SHARED_DATA=../shared/data tests/reliability/test_failures.sh
set -u
B=${WAVRES_BUILD:?}/experiments
DATA=${WAVRES_SHARED_DATA:?}
W=$(mktemp -d /tmp/wavres_failures.XXXXXX)
trap 'rm -rf "$W"' EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=passive
TINY="--d-model 32 --heads 2 --d-ff 48 --seq-len 16 --batch 4 --data-dir $DATA --quiet"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
# expect NAME STATUS PATTERN -- command...: exit status and a one-line stderr message matching PATTERN
expect() {
  local name=$1 want=$2 pat=$3; shift 4
  local err; err=$("$@" 2>&1 >/dev/null); local got=$?
  local lines; lines=$(printf '%s\n' "$err" | sed '/^$/d' | wc -l)
  if [ "$got" = "$want" ] && printf '%s' "$err" | grep -q -- "$pat" && [ "$lines" -le 1 ]; then ok "$name"
  else bad "$name (status $got, want $want; stderr: $err)"; fi
}
P=$B/exp_prenorm_l4_text8
F=$B/exp_full_l4_text8

# --- command line -------------------------------------------------------------------------------------------
expect "unknown option"          2 "unknown option --bogus"        -- "$P" train --bogus 3
expect "malformed integer"       2 "--steps expects an integer"    -- "$P" train --steps ten
expect "zero size"               2 "--d-model must be in"          -- "$P" train --d-model 0
expect "negative size"           2 "--batch must be in"            -- "$P" train --batch -4
expect "heads do not divide"     2 "does not divide --d-model"     -- "$P" train --d-model 30 --heads 4
expect "unknown command"         2 "unknown command 'fit'"         -- "$P" fit
expect "missing value"           2 "--lr needs a value"            -- "$P" train --lr
expect "eval needs a checkpoint" 2 "eval needs --checkpoint"       -- "$P" eval
expect "batch too large"         2 "GiB are available"             -- "$P" train --batch 60000 --seq-len 4096 --data-dir "$DATA"
expect "bad gemm precision"      2 "--gemm-precision expects fp32 or tf32" -- "$P" train --gemm-precision bf16
# TF32 is a cuBLAS mode: a host build refuses it by name instead of training in FP32 under a TF32 label
expect "tf32 on a host build"    2 "--gemm-precision tf32 needs a CUDA build" -- "$P" train $TINY --steps 1 --gemm-precision tf32 --out "$W/tf32"

# --- data ---------------------------------------------------------------------------------------------------
mkdir -p "$W/empty" "$W/zero" "$W/short"
: > "$W/zero/text8-prefix"
printf 'abc def' > "$W/short/text8-prefix"
expect "no corpus"               1 "text8"                         -- "$P" train $TINY --data-dir "$W/empty" --out "$W/r0"
expect "empty corpus"            1 "zero/text8-prefix"             -- "$P" train $TINY --data-dir "$W/zero" --out "$W/r0"
expect "split too small"         1 "short/text8-prefix"            -- "$P" train $TINY --data-dir "$W/short" --out "$W/r0"

# --- a good run to have checkpoints -------------------------------------------------------------------------
"$P" train $TINY --steps 6 --eval-every 3 --eval-batches 2 --checkpoint-every 2 --keep-checkpoints 2 --out "$W/run" \
  >/dev/null 2>&1 && ok "tiny training run" || bad "tiny training run"
n=$(ls "$W/run"/ckpt_*.h5 2>/dev/null | wc -l)
[ "$n" = 2 ] && ok "keeps the last 2 checkpoints" || bad "keeps the last 2 checkpoints (found $n)"
CK=$W/run/ckpt_00000006.h5
[ -f "$W/run/log.csv" ] && [ "$(wc -l < "$W/run/log.csv")" = 7 ] && ok "log.csv has 6 rows" || bad "log.csv"

# --- checkpoints --------------------------------------------------------------------------------------------
expect "other variant"           1 "variant is prenorm"            -- "$F" eval $TINY --checkpoint "$CK"
expect "other width"             1 "d_model is 32, --d-model is 64" -- "$P" eval $TINY --d-model 64 --checkpoint "$CK"
expect "other seq-len"           1 "seq_len is 16, --seq-len is 32" -- "$P" eval $TINY --seq-len 32 --checkpoint "$CK"
expect "missing checkpoint"      1 "nope.h5"                       -- "$P" eval $TINY --checkpoint "$W/nope.h5"
head -c 5000 "$CK" > "$W/trunc.h5"
expect "truncated checkpoint"    1 "trunc.h5"                      -- "$P" eval $TINY --checkpoint "$W/trunc.h5"
head -c 100000 /dev/urandom > "$W/random.h5"
expect "random bytes"            1 "random.h5"                     -- "$P" eval $TINY --checkpoint "$W/random.h5"
cp "$CK" "$W/flipped.h5"
/usr/bin/python3 - "$W/flipped.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    d = f["/params/lm_head"]; a = d[...]; a[0, 0] += 1.0; d[...] = a   # data changed, checksum attribute not
PY
expect "corrupted tensor"        1 "lm_head fails its checksum"    -- "$P" eval $TINY --checkpoint "$W/flipped.h5"
mkdir -p "$W/upper" && { head -c 20000 "$DATA/text8/text8-prefix"; printf 'Zebra'; head -c 5000 "$DATA/text8/text8-prefix"; } > "$W/upper/text8-prefix"
expect "byte outside vocabulary" 1 "upper/text8-prefix"            -- "$P" eval $TINY --checkpoint "$CK" --data-dir "$W/upper"
expect "unwritable output"       1 "cannot be written"             -- "$P" train $TINY --steps 2 --out /proc/wavres_no

# --- resume, interruption, non-finite, full disk -------------------------------------------------------------
"$P" train $TINY --steps 8 --checkpoint-every 2 --resume latest --out "$W/run" >/dev/null 2>&1 \
  && [ -f "$W/run/ckpt_00000008.h5" ] && ok "resume latest" || bad "resume latest"

"$P" train $TINY --steps 100000 --eval-every 0 --checkpoint-every 0 --out "$W/sig" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$W/sig/log.csv" ] && [ "$(wc -l < "$W/sig/log.csv")" -gt 3 ] && break; sleep 0.1; done
kill -INT $pid; wait $pid; st=$?
[ "$st" = 3 ] && ls "$W/sig"/ckpt_*.h5 >/dev/null 2>&1 && ok "SIGINT writes a checkpoint, exits 3" \
  || bad "SIGINT (status $st)"

# killed without warning past its last checkpoint, then resumed: every step is logged exactly once
"$P" train $TINY --steps 100000 --eval-every 0 --checkpoint-every 3 --out "$W/kill" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$W/kill/log.csv" ] && [ "$(wc -l < "$W/kill/log.csv")" -gt 8 ] && break; sleep 0.1; done
kill -KILL $pid; wait $pid 2>/dev/null
last=$(ls "$W/kill"/ckpt_*.h5 | sort | tail -n 1 | sed 's/.*ckpt_0*\([0-9][0-9]*\)\.h5/\1/')
"$P" train $TINY --steps 100000 --eval-every 0 --checkpoint-every 3 --stop-at $((last + 3)) --resume latest \
  --out "$W/kill" >/dev/null 2>&1
steps=$(tail -n +2 "$W/kill/log.csv" | cut -d, -f1 | tr '\n' ' ')
[ "$steps" = "$(seq -s ' ' 1 $((last + 3))) " ] && ok "SIGKILL + resume: each step logged once" \
  || bad "SIGKILL + resume log (last checkpoint $last): ...$(echo "$steps" | tr " " "\n" | tail -n 8 | tr "\n" " ")"
expect "--steps below the checkpoint" 2 "is not beyond the checkpoint's step" -- \
  "$P" train $TINY --steps 2 --resume latest --out "$W/kill"

WAVRES_INJECT_NAN_AT_STEP=5 "$P" train $TINY --steps 8 --checkpoint-every 2 --out "$W/nan" >/dev/null 2>"$W/nan.err"; st=$?
if [ "$st" = 4 ] && grep -q "non-finite gradient of .* at step 5; last good checkpoint: .*ckpt_00000004.h5" "$W/nan.err" \
   && "$P" eval $TINY --checkpoint "$W/nan/ckpt_00000004.h5" >/dev/null 2>&1 && [ ! -f "$W/nan/ckpt_00000005.h5" ]; then
  ok "non-finite gradient stops the run, names step, tensor and last good checkpoint"
else bad "non-finite (status $st: $(cat "$W/nan.err"))"; fi

# resumed at 8, the run checkpoints at 10 and 12 (120 tensor writes each: params, m, v); the 180th write,
# inside the second, fails like a full disk
cp -r "$W/run" "$W/disk"
before=$(md5sum "$W/disk/ckpt_00000008.h5" | cut -d' ' -f1)
WAVRES_INJECT_WRITE_FAILURE=180 "$P" train $TINY --steps 12 --checkpoint-every 2 --resume latest --out "$W/disk" \
  >/dev/null 2>"$W/disk.err"; st=$?
after=$(md5sum "$W/disk/ckpt_00000008.h5" | cut -d' ' -f1)
if [ "$st" = 1 ] && grep -q "No space left on device" "$W/disk.err" && [ "$before" = "$after" ] \
   && ! ls "$W/disk"/*.tmp >/dev/null 2>&1 && "$P" eval $TINY --checkpoint "$W/disk/ckpt_00000010.h5" >/dev/null 2>&1; then
  ok "full disk: error, earlier checkpoints intact, no partial file"
else bad "full disk (status $st: $(cat "$W/disk.err"))"; fi

echo "test_failures: $pass passed, $fail failed"
[ "$fail" = 0 ]
