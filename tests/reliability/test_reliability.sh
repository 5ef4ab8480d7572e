#!/usr/bin/env bash
# Reliability, second pass (issue 14): what a new user broke in an afternoon, one section per finding, numbered
# as in the issue. Every check failed on main before the fixes (see the README, "Failure behaviour").
#   WAVRES_BUILD=build/openmp WAVRES_SHARED_DATA=../shared/data tests/reliability/test_reliability.sh
# Needs experiments/exp_{wav,prenorm}_l4_text8, src/wavres-inspect, src/wavres-compare and /usr/bin/python3 with
# h5py. Section 1 mounts a 600 KiB tmpfs where it may (root, mount allowed), else limits the file size with
# ulimit -f (also with WAVRES_TEST_NO_MOUNT=1); it prints which.
set -u
BUILD=${WAVRES_BUILD:?}
B=$BUILD/experiments
DATA=${WAVRES_SHARED_DATA:?}
W=$(mktemp -d /tmp/wavres_reliability.XXXXXX)
MNT=""
cleanup() {
  [ -n "$MNT" ] && umount "$MNT" 2>/dev/null
  rm -rf "$W"
}
trap cleanup EXIT
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=passive
PY=/usr/bin/python3
WAV=$B/exp_wav_l4_text8
PRE=$B/exp_prenorm_l4_text8
INSPECT=$BUILD/src/wavres-inspect
COMPARE=$BUILD/src/wavres-compare
WIDTH="--d-model 32 --heads 2 --d-ff 48 --seq-len 16"
TINY="$WIDTH --batch 4 --data-dir $DATA --quiet"
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
# expect NAME STATUS PATTERN -- command...: the exit status, and stderr exactly one line (no blank line before
# it) matching PATTERN
expect() {
  local name=$1 want=$2 pat=$3; shift 4
  local err; err=$(timeout -k 5 60 "$@" 2>&1 >/dev/null); local got=$?
  local lines; lines=$(printf '%s' "$err" | awk 'END { print NR }')
  if [ "$got" = "$want" ] && printf '%s' "$err" | grep -q -- "$pat" && [ "$lines" = 1 ]; then ok "$name"
  else bad "$name (status $got, want $want; stderr: $err)"; fi
}
# h5edit FILE PYTHON: runs PYTHON with f = h5py.File(FILE, "r+") and fnv(array) -> the checksum of its bytes
h5edit() {
  "$PY" - "$1" "$2" <<'PY'
import sys, h5py, numpy as np
def fnv(a):
    h = 1469598103934665603
    for b in np.ascontiguousarray(a).tobytes():
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return np.int64(h - (1 << 64) if h >= 1 << 63 else h)
def set_checked(f, path, value):  # a new value with a matching checksum: only range checks can catch it
    d = f[path]; d[...] = value; d.attrs["fnv1a64"] = fnv(d[...])
with h5py.File(sys.argv[1], "r+") as f:
    exec(sys.argv[2])
PY
}
rows() { tail -n +2 "$1" | cut -d, -f1 | tr '\n' ' '; }

# A run to take checkpoints from: 8 steps planned, stopped at 4 (ckpt_00000004.h5, total_steps 8).
"$WAV" train $TINY --steps 8 --stop-at 4 --checkpoint-every 2 --eval-every 0 --out "$W/base" >/dev/null 2>&1
CK=$W/base/ckpt_00000004.h5
[ -f "$CK" ] && ok "base run" || { bad "base run (no $CK)"; echo "test_reliability: $pass passed, $fail failed"; exit 1; }

# --- 1. a real full disk: one-line error, exit 1, earlier checkpoints intact, no partial file ---------------
mkdir -p "$W/fs"
if [ "${WAVRES_TEST_NO_MOUNT:-0}" != 1 ] && mount -t tmpfs -o size=600k tmpfs "$W/fs" 2>/dev/null; then
  MNT=$W/fs
  echo "note 1. full disk: a 600 KiB tmpfs (one checkpoint of $(($(stat -c %s "$CK") / 1024)) KiB fits, the second does not)"
  expect "1. full tmpfs: one-line error, exit 1" 1 "ckpt_00000004.h5.tmp: cannot be written: No space left on device" -- \
    "$WAV" train $TINY --steps 8 --checkpoint-every 2 --eval-every 0 --out "$W/fs/run"
  { [ ! -e "$W/fs/run/ckpt_00000004.h5.tmp" ] && "$WAV" eval $TINY --checkpoint "$W/fs/run/ckpt_00000002.h5" \
      --eval-batches 1 >/dev/null 2>&1; } && ok "1. full tmpfs: checkpoint 2 intact, no .tmp left" \
    || bad "1. full tmpfs: $(ls -la "$W/fs/run")"
  umount "$W/fs" && MNT=""
else
  echo "note 1. full disk: no tmpfs (mount refused, or WAVRES_TEST_NO_MOUNT=1); ulimit -f 300 (KiB) instead, below one checkpoint"
  expect "1. file-size limit: one-line error, exit 1" 1 "ckpt_00000002.h5.tmp: cannot be written: File too large" -- \
    bash -c 'ulimit -f 300; exec "$@"' _ "$WAV" train $TINY --steps 8 --checkpoint-every 2 --eval-every 0 --out "$W/fs/run"
  [ ! -e "$W/fs/run/ckpt_00000002.h5.tmp" ] && ok "1. file-size limit: no .tmp left" || bad "1. file-size limit: .tmp left"
fi

# --- 2. one training per --out -------------------------------------------------------------------------------
"$WAV" train $TINY --steps 100000 --eval-every 0 --checkpoint-every 0 --out "$W/lock" >/dev/null 2>&1 &
first=$!
for _ in $(seq 100); do [ -s "$W/lock/log.csv" ] && break; sleep 0.1; done
expect "2. a second training on the same --out is refused, naming the first" 1 "another training is running in this directory (PID $first" -- \
  "$WAV" train $TINY --steps 50 --out "$W/lock"
kill -INT $first; wait $first; st=$?
n=$(tail -n +2 "$W/lock/log.csv" | wc -l)
[ "$st" = 3 ] && [ "$(rows "$W/lock/log.csv")" = "$(seq -s ' ' 1 "$n") " ] && ok "2. the first run's log is whole (steps 1..$n)" \
  || bad "2. first run (status $st), log steps: $(rows "$W/lock/log.csv" | tail -c 80)"
"$WAV" train $TINY --steps 100000 --eval-every 0 --checkpoint-every 0 --resume latest --out "$W/lock" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ "$(tail -n +2 "$W/lock/log.csv" | wc -l)" -gt "$n" ] && break; sleep 0.1; done
kill -KILL $pid; wait $pid 2>/dev/null
[ -f "$W/lock/.wavres.lock" ] && grep -qx "$pid" "$W/lock/.wavres.lock" && ok "2. a killed run leaves its lock file with its PID" \
  || bad "2. no stale lock file after SIGKILL"
"$WAV" train $TINY --steps $((n + 2)) --resume latest --out "$W/lock" >/dev/null 2>&1 && [ ! -e "$W/lock/.wavres.lock" ] \
  && ok "2. the stale lock of a dead process is taken over (and removed at exit)" || bad "2. stale lock not taken over"

# --- 3. a fresh run into a directory that holds a run --------------------------------------------------------
cp -r "$W/base" "$W/full"
before=$(cd "$W/full" && md5sum log.csv ckpt_*.h5)
expect "3. fresh train into a run directory is refused" 1 "holds another run" -- "$WAV" train $TINY --steps 2 --out "$W/full"
[ "$(cd "$W/full" && md5sum log.csv ckpt_*.h5)" = "$before" ] && ok "3. the old run is untouched" || bad "3. old run changed"
"$WAV" train $TINY --steps 2 --overwrite --out "$W/full" >/dev/null 2>&1 && [ "$(ls "$W/full")" = "$(printf 'ckpt_00000002.h5\nlog.csv')" ] \
  && [ "$(rows "$W/full/log.csv")" = "1 2 " ] && ok "3. --overwrite replaces the old run entirely" || bad "3. --overwrite: $(ls "$W/full")"

# --- 4. empty paths ------------------------------------------------------------------------------------------
# (no corpus under --data-dir: a build that accepts --out "" fails on the corpus before writing into /)
expect "4. --out \"\" is an error" 2 "--out needs a path" -- "$WAV" train $TINY --steps 1 --data-dir "$W/nodata" --out ""
expect "4. --out= is an error" 2 "--out needs a path" -- "$WAV" train $TINY --steps 1 --data-dir "$W/nodata" --out=
expect "4. --checkpoint \"\" is an error" 2 "--checkpoint needs a path" -- "$WAV" eval $TINY --checkpoint ""

# --- 5. /train_state and /vocab are checksummed and range-checked --------------------------------------------
for field in step data_rng lr_peak warmup_steps tokens_seen seed; do
  cp "$CK" "$W/ts_$field.h5"
  h5edit "$W/ts_$field.h5" "d = f['/train_state/$field']; a = d[...]; b = bytearray(a.tobytes()); b[0] ^= 0x01; d[...] = np.frombuffer(bytes(b), a.dtype).reshape(a.shape)"
  expect "5. one byte of /train_state/$field changed" 1 "/train_state/$field fails its checksum" -- \
    "$WAV" train $TINY --resume "$W/ts_$field.h5" --out "$W/ts_${field}_run"
done
cp "$CK" "$W/vocab.h5"
h5edit "$W/vocab.h5" "d = f['/vocab']; a = d[...]; a[3] += 1; d[...] = a"
expect "5. one byte of /vocab changed" 1 "/vocab fails its checksum" -- "$WAV" eval $TINY --checkpoint "$W/vocab.h5"
cp "$CK" "$W/lr.h5"; h5edit "$W/lr.h5" "set_checked(f, '/train_state/lr_peak', -5.0)"
expect "5. lr_peak -5 (valid checksum) is refused" 1 "/train_state/lr_peak is -5, expected" -- \
  "$WAV" train $TINY --resume "$W/lr.h5" --out "$W/lr_run"
cp "$CK" "$W/warm.h5"; h5edit "$W/warm.h5" "set_checked(f, '/train_state/warmup_steps', np.int64(2**62))"
expect "5. warmup_steps 2^62 (valid checksum) is refused" 1 "/train_state/warmup_steps is 4611686018427387904" -- \
  "$WAV" train $TINY --resume "$W/warm.h5" --out "$W/warm_run"
cp "$CK" "$W/step.h5"; h5edit "$W/step.h5" "set_checked(f, '/train_state/step', np.int64(3))"
expect "5. /train_state/step disagreeing with /config step is refused" 1 "/config step 4 differs from /train_state/step 3" -- \
  "$WAV" train $TINY --resume "$W/step.h5" --out "$W/step_run"

# --- 6. an all-zero RNG state is refused, not spun on ------------------------------------------------------
cp "$CK" "$W/rng.h5"; h5edit "$W/rng.h5" "set_checked(f, '/train_state/data_rng', np.zeros(4, np.uint64))"
expect "6. data_rng all zero is refused (within 60 s)" 1 "/train_state/data_rng is all zero" -- \
  "$WAV" train $TINY --resume "$W/rng.h5" --out "$W/rng_run"

# --- 7. every checksum is required by format version 2; version 1 is read as documented ------------------
cp "$CK" "$W/nosum.h5"
h5edit "$W/nosum.h5" "
def strip(name, o):
    if isinstance(o, h5py.Dataset) and 'fnv1a64' in o.attrs: del o.attrs['fnv1a64']
f.visititems(strip)
d = f['/params/lm_head']; a = d[...]; a[0, 0] += 1.0; d[...] = a"
expect "7. a tensor without its checksum is refused" 1 "has no fnv1a64 checksum" -- \
  "$WAV" eval $TINY --checkpoint "$W/nosum.h5"
cp "$CK" "$W/v1.h5"  # what format version 1 wrote: checksums on tensors only
h5edit "$W/v1.h5" "
f['/config'].attrs['format_version'] = np.int64(1)
del f['/vocab'].attrs['fnv1a64']
for k in f['/train_state']: del f['/train_state'][k].attrs['fnv1a64']"
"$WAV" eval $TINY --checkpoint "$W/v1.h5" --eval-batches 1 >/dev/null 2>&1 \
  && "$WAV" train $TINY --resume "$W/v1.h5" --out "$W/v1_run" >/dev/null 2>&1 && [ -f "$W/v1_run/ckpt_00000008.h5" ] \
  && ok "7. a format version 1 checkpoint still evaluates and resumes" || bad "7. format version 1 not read"
cp "$CK" "$W/v3.h5"; h5edit "$W/v3.h5" "f['/config'].attrs['format_version'] = np.int64(3)"
expect "7. a newer format version is refused" 1 "format_version 3 is not readable by this build" -- \
  "$WAV" eval $TINY --checkpoint "$W/v3.h5"

# --- 8. text8 is a-z and space ---------------------------------------------------------------------------
mkdir -p "$W/nul" "$W/utf8" "$W/crlf"
head -c 100000 /dev/zero > "$W/nul/text8-prefix"
{ head -c 20000 "$DATA/text8/text8-prefix"; printf 'caf\xc3\xa9'; head -c 20000 "$DATA/text8/text8-prefix"; } > "$W/utf8/text8-prefix"
{ head -c 30000 "$DATA/text8/text8-prefix"; printf '\r\n'; head -c 20000 "$DATA/text8/text8-prefix"; } > "$W/crlf/text8-prefix"
expect "8. NUL bytes are not text8" 1 "nul/text8-prefix: byte 0x00 at offset 0 is not text8" -- \
  "$WAV" train $TINY --data-dir "$W/nul" --steps 2 --out "$W/nul_run"
expect "8. UTF-8 is not text8" 1 "utf8/text8-prefix: byte 0xc3 at offset 20003 is not text8" -- \
  "$WAV" train $TINY --data-dir "$W/utf8" --steps 2 --out "$W/utf8_run"
expect "8. CRLF is not text8" 1 "crlf/text8-prefix: byte 0x0d at offset 30000 is not text8" -- \
  "$WAV" train $TINY --data-dir "$W/crlf" --steps 2 --out "$W/crlf_run"

# --- 9. eval and resume take the widths from the checkpoint -------------------------------------------------
out=$("$WAV" eval --checkpoint "$CK" --data-dir "$DATA" --batch 4 --eval-batches 2 --quiet 2>&1); st=$?
[ "$st" = 0 ] && printf '%s' "$out" | grep -q "val loss" && ok "9. eval --checkpoint without width options" || bad "9. eval: $out"
expect "9. a width given and different is still refused" 1 "d_model is 32, --d-model is 64" -- \
  "$WAV" eval --checkpoint "$CK" --d-model 64 --batch 4 --data-dir "$DATA" --quiet
"$WAV" train --resume "$CK" --batch 4 --data-dir "$DATA" --quiet --out "$W/w9" >/dev/null 2>&1 && [ -f "$W/w9/ckpt_00000008.h5" ] \
  && ok "9. train --resume without width options" || bad "9. train --resume without width options"

# --- 10. log.csv keeps its header; a finished run says so ---------------------------------------------------
head -n 1 "$W/w9/log.csv" | grep -q "^step,tokens," && [ "$(rows "$W/w9/log.csv")" = "5 6 7 8 " ] \
  && ok "10. resume into a new --out: log.csv has its header, steps 5-8" || bad "10. new --out log: $(head -n 2 "$W/w9/log.csv")"
cp -r "$W/base" "$W/nolog" && rm "$W/nolog/log.csv"
"$WAV" train $TINY --resume latest --out "$W/nolog" >/dev/null 2>&1 && head -n 1 "$W/nolog/log.csv" | grep -q "^step,tokens," \
  && ok "10. resume after log.csv was deleted: header written" || bad "10. deleted log: $(head -n 1 "$W/nolog/log.csv")"
before=$(cd "$W/nolog" && md5sum log.csv ckpt_*.h5)
out=$("$WAV" train $TINY --resume latest --out "$W/nolog" 2>&1); st=$?
[ "$st" = 0 ] && printf '%s' "$out" | grep -q "the run is finished (step 8 of 8)" && ! printf '%s' "$out" | grep -q nan \
  && [ "$(cd "$W/nolog" && md5sum log.csv ckpt_*.h5)" = "$before" ] && ok "10. resuming a finished run says so, changes nothing" \
  || bad "10. finished run (status $st): $out"

# --- 11. messages that name the real problem -----------------------------------------------------------------
mkdir -p "$W/cdir/text8-prefix" "$W/cfifo" "$W/cloop" "$W/czero"
mkfifo "$W/cfifo/text8-prefix"
ln -s loop2 "$W/cloop/text8-prefix" && ln -s text8-prefix "$W/cloop/loop2"
ln -s /dev/zero "$W/czero/text8-prefix"
expect "11. a directory as corpus" 1 "cdir/text8-prefix is a directory, not a regular file" -- "$WAV" train $TINY --data-dir "$W/cdir" --out "$W/c1"
expect "11. a FIFO as corpus" 1 "cfifo/text8-prefix is a FIFO, not a regular file" -- "$WAV" train $TINY --data-dir "$W/cfifo" --out "$W/c2"
expect "11. a symlink loop as corpus" 1 "cloop/text8-prefix is a symbolic link loop" -- "$WAV" train $TINY --data-dir "$W/cloop" --out "$W/c3"
expect "11. /dev/zero as corpus" 1 "czero/text8-prefix is a character device" -- "$WAV" train $TINY --data-dir "$W/czero" --out "$W/c4"
expect "11. --d-model 65536 names the parameters" 2 "parameters need .* lower --d-model or --d-ff" -- \
  "$WAV" train --d-model 65536 --heads 256 --d-ff 48 --seq-len 16 --batch 1 --data-dir "$DATA" --quiet --out "$W/c5"
cp -r "$W/base" "$W/garbage" && printf 'garbage\n' >> "$W/garbage/log.csv"
expect "11. a garbage log.csv line on resume" 1 "log.csv: line 6 is not a log row ('garbage')" -- \
  "$WAV" train $TINY --resume latest --out "$W/garbage"
cp "$CK" "$W/bigvocab.h5"
h5edit "$W/bigvocab.h5" "del f['/vocab']; f.create_dataset('/vocab', shape=(2**36,), dtype='u1')"
expect "11. a 2^36-byte /vocab" 1 "/vocab must hold 1 to 256 bytes, it has shape 68719476736" -- \
  "$WAV" eval $TINY --checkpoint "$W/bigvocab.h5"
cp "$CK" "$W/nanhead.h5"; h5edit "$W/nanhead.h5" "set_checked(f, '/params/lm_head', np.full(f['/params/lm_head'].shape, np.nan, np.float32))"
expect "11. a non-finite loss is named plainly" 4 "non-finite loss at step 5; last good checkpoint: $W/nanhead.h5" -- \
  "$WAV" train $TINY --resume "$W/nanhead.h5" --out "$W/nan_run"

# --- 12. the tools see every difference and verify checksums ------------------------------------------------
cp "$CK" "$W/later.h5"
h5edit "$W/later.h5" "f['/config'].attrs['step'] = np.int64(6); set_checked(f, '/train_state/step', np.int64(6)); set_checked(f, '/train_state/tokens_seen', np.int64(6 * 64))"
out=$("$COMPARE" "$W/later.h5" "$CK" --quiet 2>&1); st=$?
[ "$st" = 1 ] && printf '%s' "$out" | grep -q "FAIL /config@step" && printf '%s' "$out" | grep -q "FAIL /train_state/step" \
  && printf '%s' "$out" | grep -q "FAIL /train_state/tokens_seen" && ok "12. wavres-compare: step and /train_state differ" || bad "12. compare (status $st): $out"
"$COMPARE" "$CK" "$CK" >/dev/null 2>&1 && ok "12. wavres-compare: a checkpoint equals itself" || bad "12. compare self"
out=$("$INSPECT" "$CK" 2>&1); st=$?
[ "$st" = 0 ] && printf '%s' "$out" | grep -Eq "checksums +[0-9]+ datasets verified" && ok "12. wavres-inspect verifies the checksums" || bad "12. inspect: $out"
cp "$CK" "$W/flip.h5"; h5edit "$W/flip.h5" "d = f['/optimizer/v/lm_head']; a = d[...]; a[1, 1] += 1.0; d[...] = a"
out=$("$INSPECT" "$W/flip.h5" 2>&1); st=$?
[ "$st" = 1 ] && [ "$out" = "wavres-inspect: $W/flip.h5: /optimizer/v/lm_head fails its checksum (the file is corrupted)" ] \
  && ok "12. wavres-inspect: a corrupted tensor is an error" || bad "12. inspect corrupted (status $st): $out"

# --- 13. signals act at once ---------------------------------------------------------------------------------
# stop PID SECONDS: waits up to SECONDS for PID to end; kills it (and says so) if it does not. Sets $st.
stop() {
  local k
  for k in $(seq $(($2 * 20))); do kill -0 "$1" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$1" 2>/dev/null; then kill -KILL "$1"; echo "note: PID $1 still running after $2 s, killed"; fi
  wait "$1"; st=$?
}
# started LOG: LOG has its first row (the signal handlers are installed; before, a background job ignores SIGINT)
started() { for _ in $(seq 600); do [ "$(cat "$1" 2>/dev/null | wc -l)" -ge 2 ] && break; sleep 0.05; done; }
# the first signal is acknowledged at once; the second, sent after that line, arrives within the ~1 s step
"$PRE" train --d-model 256 --heads 4 --d-ff 704 --seq-len 256 --batch 32 --data-dir "$DATA" --quiet --steps 100000 \
  --eval-every 0 --checkpoint-every 0 --out "$W/sig2" >/dev/null 2>"$W/sig2.err" &
pid=$!
started "$W/sig2/log.csv"
kill -INT $pid
for _ in $(seq 500); do grep -q "^stopping: finishing the step" "$W/sig2.err" && break; sleep 0.01; done
kill -INT $pid; stop $pid 30
[ "$st" = 130 ] && grep -q "second signal: quitting at once" "$W/sig2.err" && ! ls "$W/sig2"/ckpt_*.h5 >/dev/null 2>&1 \
  && ok "13. a second Ctrl-C quits at once (exit 130, no checkpoint)" || bad "13. double Ctrl-C (status $st: $(cat "$W/sig2.err"))"
# every step evaluates the whole validation split (~8 s at this size): Ctrl-C must not wait for it
"$WAV" train $TINY --steps 100000 --eval-every 1 --eval-batches 0 --checkpoint-every 0 --out "$W/sigeval" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ -e "$W/sigeval/.wavres.lock" ] && break; sleep 0.1; done
sleep 2  # start-up takes ~0.3 s at this size; then the first evaluation runs for ~8 s
t0=$(date +%s.%N); kill -INT $pid; stop $pid 60; t1=$(date +%s.%N)
secs=$(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }")
[ "$st" = 3 ] && awk "BEGIN { exit !($secs < 4) }" && ls "$W/sigeval"/ckpt_*.h5 >/dev/null 2>&1 \
  && ok "13. SIGINT during a whole-split evaluation: checkpoint and exit 3 after ${secs} s" \
  || bad "13. SIGINT during evaluation: status $st after ${secs} s"

echo "test_reliability: $pass passed, $fail failed"
[ "$fail" = 0 ]
