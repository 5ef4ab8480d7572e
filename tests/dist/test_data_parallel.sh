#!/usr/bin/env bash
# Data-parallel training over MPI (issue 15): `mpirun -np 2 <experiment> train` against one process with the same
# global batch, resume (bit-identical, and across 1 <-> 2 ranks), files written by rank 0 only, a killed rank, a
# signal to mpirun, a non-finite gradient on one rank, and the usage errors.
#   WAVRES_BUILD=build/openmp WAVRES_SHARED_DATA=../shared/data tests/dist/test_data_parallel.sh
# Needs an MPI build (WAVRES_MPI=AUTO finds Debian's libopenmpi-dev), mpirun, experiments/exp_{block,wav}_l4_text8
# and /usr/bin/python3 with h5py. One OpenMP thread per rank; 2 ranks may share the 2 cores (--oversubscribe).
set -u
[ -n "${WAVRES_TRACE:-}" ] && { PS4='+ $(date +%s.%N | cut -c1-14) '; set -x; }
BUILD=$(cd "${WAVRES_BUILD:?}" && pwd)  # absolute: the runs start in a scratch directory
B=$BUILD/experiments
DATA=$(cd "${WAVRES_SHARED_DATA:?}" && pwd)
PY=/usr/bin/python3
W=$(mktemp -d /tmp/wavres_dist.XXXXXX)
# no process of this test outlives it (a rank left behind would spin in a collective forever)
trap 'pkill -KILL -f "$W/" 2>/dev/null; rm -rf "$W"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
# waitfor SECONDS PID: wait for a background job, killing it after SECONDS; sets st to its exit status
# (the timer holds no output of ours: ctest waits for every holder of the test's output pipe to exit)
waitfor() {
  (sleep "$1"; kill -KILL "$2") >/dev/null 2>&1 &
  local timer=$!
  wait "$2"; st=$?
  kill "$timer" $(pgrep -P "$timer") 2>/dev/null
  wait "$timer" 2>/dev/null
}
command -v mpirun >/dev/null || { echo "test_data_parallel: mpirun not found (apt-get install openmpi-bin)"; exit 1; }
grep -q '^WAVRES_HAVE_MPI:INTERNAL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null ||
  grep -q 'wavres: MPI ON' "$BUILD/CMakeFiles/CMakeOutput.log" 2>/dev/null ||
  ldd "$B/exp_block_l4_text8" | grep -q libmpi ||
  { echo "test_data_parallel: $B/exp_block_l4_text8 is not linked with MPI (configure with -DWAVRES_MPI=ON)"; exit 1; }

# CI runs as root, which OpenMPI refuses unless told; containers have no ptrace for single-copy shared memory.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
MPIRUN=(mpirun -np 2 --oversubscribe --bind-to none -x OMP_NUM_THREADS -x OMP_WAIT_POLICY)
OPTS="--d-model 64 --heads 2 --d-ff 128 --seq-len 32 --batch 8 --data-dir $DATA --eval-every 10 --eval-batches 4"
OPTS="$OPTS --checkpoint-every 10 --lr 3e-3 --quiet"

# compare KIND A B: python checks on two run directories / checkpoints (see each kind below)
compare() {
  "$PY" - "$@" <<'PY'
import csv, glob, sys
import h5py, numpy as np
kind, a, b = sys.argv[1:4]
def log(d):
    with open(d + "/log.csv") as f:
        return list(csv.DictReader(f))
def tensors(path, groups=("/params", "/optimizer")):
    out = {}
    with h5py.File(path, "r") as f:
        for g in groups:
            if g in f:
                f[g].visititems(lambda n, o: out.__setitem__(g + "/" + n, o[...]) if isinstance(o, h5py.Dataset) else None)
    return out
def last(d):
    return sorted(glob.glob(d + "/ckpt_*.h5"))[-1]
if kind == "close":
    # 1 vs 2 ranks: the same batch, summed in another order (each weight-gradient gemm sums 128 rows per rank
    # instead of 256). Losses within 1e-6 relative at every step; the parameters within 1e-5 as a vector:
    # |theta_2 - theta_1| / |theta_1|. Not per coordinate: AdamW divides each coordinate's step by its own
    # gradient scale, so where a gradient is mostly rounding noise (a nearly dead SwiGLU unit: m ~ 1e-5,
    # sqrt(v) ~ 1e-4) the order of summation decides the step's sign; such a coordinate drifted 9.2e-5 in 20
    # steps of Block AttnRes at lr 3e-3 (2026-11-28) while the losses agreed to the printed 6 decimals.
    la, lb = log(a), log(b)
    assert len(la) == len(lb) == 20, (len(la), len(lb))
    rel = max(abs(float(x["train_loss"]) - float(y["train_loss"])) / abs(float(x["train_loss"])) for x, y in zip(la, lb))
    va = [(x["val_loss"], y["val_loss"]) for x, y in zip(la, lb) if x["val_loss"]]
    vrel = max(abs(float(x) - float(y)) / abs(float(x)) for x, y in va)
    ta, tb = tensors(last(a), ("/params",)), tensors(last(b), ("/params",))
    assert ta.keys() == tb.keys() and len(ta) > 10
    d2 = sum(float(np.sum((ta[k].astype(np.float64) - tb[k]) ** 2)) for k in ta)
    n2 = sum(float(np.sum(ta[k].astype(np.float64) ** 2)) for k in ta)
    prel = (d2 / n2) ** 0.5
    dp = max(float(np.max(np.abs(ta[k].astype(np.float64) - tb[k]))) for k in ta)
    print(f"train loss max rel diff {rel:.2e}, val loss {vrel:.2e}, params rel diff {prel:.2e} (max abs {dp:.2e})")
    sys.exit(0 if rel <= 1e-6 and vrel <= 1e-6 and prel <= 1e-5 else 1)
if kind == "identical":  # straight vs resumed: every tensor and every logged loss bit for bit
    ta, tb = tensors(last(a)), tensors(last(b))
    diff = [k for k in ta if not np.array_equal(ta[k], tb[k])]
    la, lb = log(a), log(b)
    logdiff = [x["step"] for x, y in zip(la, lb) if (x["train_loss"], x["val_loss"], x["grad_norm"]) != (y["train_loss"], y["val_loss"], y["grad_norm"])]
    print(f"{len(ta)} tensors, {len(diff)} differ {diff[:3]}; {len(la)}/{len(lb)} log rows, differing {logdiff[:5]}")
    sys.exit(0 if ta and not diff and len(la) == len(lb) and not logdiff else 1)
if kind == "ranks":  # the checkpoint records the number of ranks
    with h5py.File(a, "r") as f:
        r = int(f["/run"].attrs["ranks"])
    print(f"ranks {r}")
    sys.exit(0 if r == int(b) else 1)
PY
}

# 1. one process against two ranks, same global batch: Block AttnRes and WAV v1, 20 steps
for v in block wav; do
  exe=$B/exp_${v}_l4_text8
  "$exe" train $OPTS --steps 20 --out "$W/one_$v" >"$W/one_$v.out" 2>&1 || bad "1. $v: one process failed: $(tail -2 "$W/one_$v.out")"
  (cd "$W" && "${MPIRUN[@]}" "$exe" train $OPTS --steps 20 --out "$W/two_$v" >"$W/two_$v.out" 2>&1) ||
    bad "1. $v: 2 ranks failed: $(tail -3 "$W/two_$v.out")"
  if r=$(compare close "$W/one_$v" "$W/two_$v"); then ok "1. $v: 1 process vs 2 ranks: $r"
  else bad "1. $v: 1 process vs 2 ranks: $r"; fi
done

# 2. only rank 0 writes: the run directory holds log.csv and the checkpoints, nothing partial; nothing lands in
# the working directory; the result is printed once
files=$(cd "$W/two_wav" && ls -A | tr '\n' ' ')
[ "$files" = "ckpt_00000010.h5 ckpt_00000020.h5 log.csv " ] && ok "2. run directory: $files" ||
  bad "2. run directory holds: $files"
stray=$(find "$W" -maxdepth 1 -newer "$W/one_block.out" ! -name 'one_*' ! -name 'two_*' ! -path "$W" | head -3)
[ -z "$stray" ] && ok "2. nothing written outside --out" || bad "2. stray files: $stray"
n=$(grep -c 'final val loss' "$W/two_wav.out")
[ "$n" = 1 ] && grep -q '2 ranks' "$W/two_wav.out" && ok "2. the result printed once (by rank 0)" ||
  bad "2. result lines: $n ($(cat "$W/two_wav.out"))"
if r=$(compare ranks "$W/two_wav/ckpt_00000020.h5" 2); then ok "2. the checkpoint records the ranks ($r)"
else bad "2. /run ranks: $r"; fi

# 3. resume: a 2-rank run stopped at step 10 and resumed equals the straight one bit for bit; a 1-process
# checkpoint resumed on 2 ranks, and the other way round, finish within the tolerance of section 1
WAV=$B/exp_wav_l4_text8
(cd "$W" && "${MPIRUN[@]}" "$WAV" train $OPTS --steps 20 --stop-at 10 --out "$W/res" >/dev/null 2>&1 &&
  "${MPIRUN[@]}" "$WAV" train $OPTS --resume latest --out "$W/res" >"$W/res.out" 2>&1) || bad "3. resumed 2-rank run failed"
if r=$(compare identical "$W/two_wav" "$W/res"); then ok "3. 2 ranks, stopped at 10 and resumed = straight: $r"
else bad "3. 2 ranks resumed vs straight: $r"; fi
"$WAV" train $OPTS --steps 20 --stop-at 10 --out "$W/x12" >/dev/null 2>&1
(cd "$W" && "${MPIRUN[@]}" "$WAV" train $OPTS --resume latest --out "$W/x12" >/dev/null 2>&1) || bad "3. 1 -> 2 ranks resume failed"
if r=$(compare close "$W/one_wav" "$W/x12"); then ok "3. 1 process to step 10, 2 ranks to 20: $r"
else bad "3. 1 -> 2 ranks: $r"; fi
(cd "$W" && "${MPIRUN[@]}" "$WAV" train $OPTS --steps 20 --stop-at 10 --out "$W/x21" >/dev/null 2>&1)
"$WAV" train $OPTS --resume latest --out "$W/x21" >/dev/null 2>&1 || bad "3. 2 -> 1 ranks resume failed"
if r=$(compare close "$W/one_wav" "$W/x21"); then ok "3. 2 ranks to step 10, 1 process to 20: $r"
else bad "3. 2 -> 1 ranks: $r"; fi

# 4. a rank killed mid-run: the job exits non-zero, the last checkpoint stays intact and loadable
LONG="$OPTS --steps 100000 --checkpoint-every 3 --eval-every 0"
(cd "$W" && exec "${MPIRUN[@]}" "$WAV" train $LONG --out "$W/kill" >"$W/kill.out" 2>&1) &
job=$!
for _ in $(seq 600); do [ -n "$(ls "$W/kill"/ckpt_*.h5 2>/dev/null)" ] && break; sleep 0.1; done
rank1=""
for p in $(pgrep -f "exp_wav_l4_text8 train.*$W/kill"); do
  tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && rank1=$p
done
sleep 1
[ -n "$rank1" ] && kill -KILL "$rank1"
waitfor 60 $job
ck=$(ls "$W/kill"/ckpt_*.h5 2>/dev/null | tail -1)
sleep 0.5
left=$(pgrep -f "exp_wav_l4_text8 train.*$W/kill" | tr '\n' ' ')
if [ -n "$rank1" ] && [ "$st" != 0 ] && [ -z "$left" ] && [ -n "$ck" ] && "$WAV" eval --checkpoint "$ck" --data-dir "$DATA" --eval-batches 2 >/dev/null 2>&1; then
  ok "4. rank 1 killed: mpirun exit $st, $(basename "$ck") loads"
else bad "4. rank 1 killed (pid '$rank1'): exit $st, checkpoint '$ck', processes left: '$left' ($(tail -3 "$W/kill.out"))"; fi

# 5. A signal to mpirun: every rank finishes its step, one checkpoint at the step they stopped at, and it resumes.
# SIGTERM (and Ctrl-C): OpenMPI 4 waits odls_base_sigkill_timeout seconds (default 1), sends the ranks SIGTERM,
# waits as long again and sends SIGKILL, so a step and a checkpoint must fit in that time (3 s here; the README
# says to raise it for large models). SIGUSR1: forwarded at once, nobody is killed; the ranks exit 3.
(cd "$W" && OMPI_MCA_odls_base_sigkill_timeout=60 exec "${MPIRUN[@]}" "$WAV" train $LONG --checkpoint-every 1000 \
  --out "$W/term" >"$W/term.out" 2>&1) &
job=$!
# rows FILE: data rows of a log.csv (0 while it does not exist)
rows() { { [ -f "$1" ] && echo $(($(wc -l <"$1") - 1)); } || echo 0; }
# (mpirun itself exits 1 after a SIGTERM, whatever the ranks return; the ranks' own lines say how they ended)
for sig in TERM USR1; do
  d=$W/sig$sig
  (cd "$W" && OMPI_MCA_odls_base_sigkill_timeout=3 exec "${MPIRUN[@]}" "$WAV" train $LONG --checkpoint-every 1000 \
    --out "$d" >"$d.out" 2>&1) &
  job=$!
  for _ in $(seq 600); do [ "$(rows "$d/log.csv")" -ge 5 ] && break; sleep 0.1; done
  kill -$sig $job
  waitfor 120 $job
  ck=$(ls "$d"/ckpt_*.h5 2>/dev/null | tail -1)
  n=$(rows "$d/log.csv")
  want=1; [ $sig = USR1 ] && want=3  # mpirun forwards SIGUSR1 and leaves the ranks' exit status (3) as its own
  if [ "$st" = $want ] && [ -n "$ck" ] && [ "$(basename "$ck")" = "$(printf 'ckpt_%08d.h5' "$n")" ] &&
    [ "$(grep -c "stopped by signal .* at step $n;" "$d.out")" = 1 ]; then
    ok "5. SIG$sig to mpirun: exit $st, one checkpoint, $(basename "$ck"), at the last logged step"
  else bad "5. SIG$sig to mpirun: exit $st, checkpoint '$ck', $n log rows ($(tail -3 "$d.out"))"; fi
  (cd "$W" && "${MPIRUN[@]}" "$WAV" train $OPTS --resume latest --steps $((n + 2)) --out "$d" >/dev/null 2>&1) &&
    [ "$(rows "$d/log.csv")" = $((n + 2)) ] && ok "5. ... and it resumes to step $((n + 2))" ||
    bad "5. resume after SIG$sig failed"
done

# 6. a non-finite gradient on rank 1 only stops both ranks with the same one line, exit 4, checkpoints kept
(cd "$W" && WAVRES_INJECT_NAN_AT_STEP=14 WAVRES_INJECT_NAN_RANK=1 "${MPIRUN[@]}" -x WAVRES_INJECT_NAN_AT_STEP \
  -x WAVRES_INJECT_NAN_RANK "$WAV" train $OPTS --steps 20 --out "$W/nan" >"$W/nan.out" 2>&1); st=$?
n=$(grep -c 'non-finite' "$W/nan.out")
if [ "$st" = 4 ] && [ "$n" = 1 ] && grep -q 'error: non-finite gradient of .* at step 14; last good checkpoint: .*ckpt_00000010.h5' "$W/nan.out" &&
  [ -f "$W/nan/ckpt_00000010.h5" ]; then ok "6. NaN on rank 1: exit 4, one line: $(grep non-finite "$W/nan.out")"
else bad "6. NaN on rank 1: exit $st, $n lines ($(cat "$W/nan.out"))"; fi

# 7. usage errors, one line each: a batch the ranks do not divide; dump and sample on several ranks
(cd "$W" && "${MPIRUN[@]}" "$WAV" train ${OPTS/--batch 8/--batch 5} --steps 2 --out "$W/odd" >"$W/odd.out" 2>&1); st=$?
n=$(grep -c 'not divisible' "$W/odd.out")
[ "$st" = 2 ] && [ "$n" = 1 ] && ok "7. --batch 5 on 2 ranks: $(grep 'not divisible' "$W/odd.out")" ||
  bad "7. --batch 5 on 2 ranks: exit $st ($(cat "$W/odd.out"))"
[ ! -e "$W/odd/log.csv" ] && ok "7. ... and nothing written" || bad "7. --batch 5 left a log"
(cd "$W" && "${MPIRUN[@]}" "$WAV" dump --checkpoint "$W/two_wav/ckpt_00000020.h5" --data-dir "$DATA" \
  --out "$W/d.h5" >"$W/dump.out" 2>&1); st=$?
[ "$st" = 2 ] && [ "$(grep -c 'runs on one process' "$W/dump.out")" = 1 ] && ok "7. dump refuses several ranks" ||
  bad "7. dump on 2 ranks: exit $st ($(cat "$W/dump.out"))"

# 8. eval is sharded: 2 ranks report the loss one process reports
e1=$("$WAV" eval --checkpoint "$W/two_wav/ckpt_00000020.h5" --data-dir "$DATA" --eval-batches 4 2>&1 | grep -oE 'val loss [0-9.]+')
e2=$(cd "$W" && "${MPIRUN[@]}" "$WAV" eval --checkpoint "$W/two_wav/ckpt_00000020.h5" --data-dir "$DATA" --eval-batches 4 2>&1 | grep -oE 'val loss [0-9.]+')
# (5 decimals printed; the two sum the same rows in another order)
if [ -n "$e1" ] && [ -n "$e2" ] && awk -v a="${e1#val loss }" -v b="${e2#val loss }" 'BEGIN { d = a - b; exit !(d <= 2e-5 && d >= -2e-5) }'; then
  ok "8. eval on 2 ranks = 1 process ($e1, $e2)"
else bad "8. eval: '$e1' vs '$e2'"; fi

echo "test_data_parallel: $pass passed, $fail failed"
[ "$fail" = 0 ]
