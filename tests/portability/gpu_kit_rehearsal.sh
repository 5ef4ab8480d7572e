#!/usr/bin/env bash
# Keeps the GPU kit from rotting: runs its run.sh here, without a GPU (--rehearsal), and checks what a GPU
# machine's first call depends on:
#   - the kit is at most 64 MiB (what travels to the GPU machine) and has every file run.sh expects;
#   - every binary resolves every library but the driver's libcuda.so.1 (run.sh's ldd step);
#   - the GPU steps say "no GPU" at once (the whole rehearsal takes well under a minute of its own);
#   - the steps that need no GPU pass: layout, ldd, the dump comparison on the reference dumps, the PyTorch
#     baseline on the CPU;
#   - the results fit what comes back from the GPU machine: at most 8 files, at most 2 folders deep, with
#     summary.md naming every step.
# The kit is $WAVRES_GPU_KIT (default gpu-kit/ in the source tree), built by `cmake/wavres.sh gpu-kit`. Where
# none was built (no CUDA toolkit), the test is skipped (exit 77) unless WAVRES_GPU_KIT_REQUIRED=1 (CI's
# `cmake/wavres.sh test` with WAVRES_CUDA=on sets it): then a missing kit fails.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
kit=${WAVRES_GPU_KIT:-$root/gpu-kit}
fail() { echo "gpu_kit_rehearsal: FAIL: $*"; exit 1; }
if [ ! -x "$kit/run.sh" ]; then
  [ "${WAVRES_GPU_KIT_REQUIRED:-0}" = 1 ] && fail "no kit at $kit (cmake/wavres.sh gpu-kit builds it)"
  echo "gpu_kit_rehearsal: no kit at $kit (no CUDA toolkit?): skipped"
  exit 77
fi
size=$(du -sm "$kit" --exclude=results | cut -f1)
((size <= 64)) || fail "the kit is $size MiB, more than the 64 MiB that travel"
out=$(mktemp -d "${TMPDIR:-/tmp}/gpu_kit_rehearsal.XXXXXX")
trap 'rm -rf "$out"' EXIT
t0=$(date +%s)
OUT=$out bash "$kit/run.sh" --rehearsal >"$out.log" 2>&1
rc=$?
secs=$(($(date +%s) - t0))
cat "$out.log"
rm -f "$out.log"
((rc == 0)) || fail "run.sh --rehearsal exited $rc"
[ -s "$out/summary.md" ] || fail "no summary.md"
n_files=$(find "$out" -type f | wc -l)
((n_files <= 8)) || fail "$n_files result files; at most 8 come back from the GPU machine"
deep=$(find "$out" -mindepth 3 -type f | head -1)
[ -z "$deep" ] || fail "result file deeper than 2 folders: $deep"
steps=$(tar -xzOf "$out/logs.tar.gz" logs/steps.tsv) || fail "logs.tar.gz has no steps.tsv"
for s in layout ldd compare_prenorm_small compare_wav_wide torch_cpu_rehearsal; do
  grep -qP "^$s\tok\t" <<<"$steps" || fail "step $s did not pass: $(grep -P "^$s\t" <<<"$steps")"
done
for s in test_backends bench_wav_l12 bench_prenorm_l48 torch_eager_wav_l12 train_wav_l48 test_model_gradcheck; do
  grep -qP "^$s\tno GPU\t0\t" <<<"$steps" || fail "GPU step $s was not reported as 'no GPU': $(grep -P "^$s\t" <<<"$steps")"
done
n_steps=$(wc -l <<<"$steps")
n_listed=$(grep -c '^| [a-z_0-9]* | ' "$out/summary.md")
((n_listed >= n_steps)) || fail "summary.md lists $n_listed of $n_steps steps"
# The torch baseline takes most of the time here; the GPU steps themselves must cost nothing.
((secs < 240)) || fail "the rehearsal took $secs s"
echo "gpu_kit_rehearsal: ok: kit $size MiB, $n_steps steps in $secs s, $n_files result files"
