#!/usr/bin/env bash
# Everything issue 6 asks of a GPU machine, in one command (run from the repository root, on the GPU machine):
#   1. build the OpenMP and the CUDA trees (cmake/wavres.sh build, build-cuda),
#   2. the CUDA test suite (ctest --preset cuda; test_backends compares CUDA with Kokkos::Serial),
#   3. the same dump on OpenMP and on CUDA for all four variants, compared tensor by tensor,
#   4. the 12/24/48-layer step benchmarks on the GPU (JSON lines), and PyTorch on the same GPU with the same model
#      (perf/torch_baseline.py --device cuda, eager and --compile).
# Everything is logged under $OUT (default perf/results/gpu-<date>/); exit status 1 if any step failed.
#
#   tests/portability/gpu_checks.sh [--skip-build]
# --skip-build expects build/openmp and a full build/cuda (cmake/wavres.sh build-cuda); the CUDA tree that
# `cmake/wavres.sh test` leaves has no benchmarks and only the 12-layer experiments.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-perf/results/gpu-$(date +%F)}
[[ -d ../shared/data ]] && export WAVRES_SHARED_DATA=${WAVRES_SHARED_DATA:-$(cd ../shared/data && pwd)}
mkdir -p "$out"
failed=0
step() {  # step NAME CMD...: run, log, remember a failure, keep going
  local name=$1; shift
  echo "== $name: $*" | tee -a "$out/summary.txt"
  if "$@" >"$out/$name.log" 2>&1; then echo "   ok" | tee -a "$out/summary.txt"
  else echo "   FAILED (exit $?; see $out/$name.log)" | tee -a "$out/summary.txt"; failed=1
  fi
}
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1; nproc; } \
  >"$out/machine.txt"
if [[ ${1:-} != --skip-build ]]; then
  step build_openmp bash cmake/wavres.sh build
  step build_cuda bash cmake/wavres.sh build-cuda
fi
step ctest_cuda ctest --preset cuda
for v in prenorm full block wav; do
  step "compare_${v}" tests/portability/compare_backends.sh build/cuda/experiments/exp_${v}_l4_text8 \
    build/openmp/experiments/exp_${v}_l4_text8 --compare build/openmp/src/wavres-compare
done
for v in prenorm full block wav; do
  for l in 12 24 48; do
    step "bench_${v}_l${l}" build/cuda/perf/bench_${v}_l${l} --timed 7 --warmup 2 --json
  done
done
declare -A torch_name=([prenorm]=prenorm [full]=full_attnres [block]=block_attnres [wav]=wav_v1)
for v in prenorm full block wav; do
  for l in 12 24 48; do
    step "torch_eager_${v}_l${l}" python3 perf/torch_baseline.py --variant "${torch_name[$v]}" --n-layer $l \
      --device cuda --steps 7 --warmup-steps 2 --json
    step "torch_compile_${v}_l${l}" python3 perf/torch_baseline.py --variant "${torch_name[$v]}" --n-layer $l \
      --device cuda --compile --steps 7 --warmup-steps 3 --json
  done
done
exit $failed
