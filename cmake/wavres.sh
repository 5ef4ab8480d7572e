#!/usr/bin/env bash
# The one command of the README, on a fresh Debian 12 machine or an old one:
#   cmake/wavres.sh demo    install what is missing, build, train a 12-layer PreNorm model on text8 for a few
#                           minutes (progress bar, validation loss, checkpoint in runs/demo)
#   cmake/wavres.sh test    install what is missing, build everything, run the whole test suite (ctest), then the
#                           fuzz test under ASan/UBSan (the `asan` preset)
#   cmake/wavres.sh test    ... and, where the CUDA toolkit is installed, compile the library, one experiment per
#                           variant and the tests for CUDA (the `cuda` preset; compiled, not run: no GPU needed)
#   cmake/wavres.sh build   install what is missing and build everything
#   cmake/wavres.sh build-cuda   build everything for CUDA into build/cuda (WAVRES_CUDA_ARCH, default sm_90)
#   cmake/wavres.sh gpu-kit      build gpu-kit/: the CUDA executables, their libraries, reference dumps, data and
#                                run.sh, to copy to a bare GPU machine and run there in one call (cmake/gpu-kit.sh)
# Kokkos and Kokkos Kernels are built once into ~/.cache/wavres (WAVRES_DEPS) and reused.
# WAVRES_CUDA=auto|on|off: whether `test` compiles the CUDA build (auto: when nvcc is found; CI sets on, so a
# missing toolkit fails instead of skipping the check).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-demo}
jobs=${WAVRES_JOBS:-$(nproc)}
prefix=$(bash cmake/setup-deps.sh openmp)  # prints the Kokkos prefix (honours WAVRES_DEPS and Kokkos_ROOT)
configure() { cmake --preset "${1:-openmp}" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null; }
have_nvcc() { command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; }
# The CUDA build: Kokkos from `setup-deps.sh cuda` (or Kokkos_CUDA_ROOT, a user's own Kokkos >= 3.4 with CUDA and
# CUDA_LAMBDA), compiled through its nvcc_wrapper. Extra arguments go to CMake.
configure_cuda() {
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
  local cprefix
  if [ -n "${Kokkos_CUDA_ROOT:-}" ]; then cprefix=$Kokkos_CUDA_ROOT
  else cprefix=$(Kokkos_ROOT= bash cmake/setup-deps.sh cuda)
  fi
  local cxx=${WAVRES_CUDA_CXX:-$cprefix/bin/nvcc_wrapper}
  [ -x "$cxx" ] || { echo "wavres.sh: $cxx not found (set WAVRES_CUDA_CXX to Kokkos' nvcc_wrapper)" >&2; exit 2; }
  cmake --preset cuda -DCMAKE_PREFIX_PATH="$cprefix" -DCMAKE_CXX_COMPILER="$cxx" "$@" >/dev/null
}
case $cmd in
  demo)
    bash data/fetch.sh  # the tests read ../shared/data; only the demo needs data/
    configure
    cmake --build build/openmp -j "$jobs" --target exp_prenorm_l12_text8
    exec ./build/openmp/experiments/exp_prenorm_l12_text8 train --d-model 128 --heads 4 --d-ff 352 --seq-len 128 \
      --batch 16 --steps 400 --eval-every 100 --checkpoint-every 200 --out runs/demo --overwrite ;;
  test)
    configure
    cmake --build build/openmp -j "$jobs"
    # the fuzz test of the file readers under AddressSanitizer + UndefinedBehaviorSanitizer (only test_fuzz)
    configure asan
    cmake --build build/asan -j "$jobs"
    case ${WAVRES_CUDA:-auto} in
      on) cuda=1 ;;
      off) cuda=0 ;;
      auto) if have_nvcc; then cuda=1; else cuda=0; echo "wavres.sh: no nvcc: not compiling the CUDA build" >&2; fi ;;
      *) echo "wavres.sh: WAVRES_CUDA must be auto, on or off" >&2; exit 2 ;;
    esac
    if [ $cuda = 1 ]; then
      # The CUDA build, compile-only (CI has no GPU), as the GPU kit: its executables (CUDA tests, l4 and l48
      # experiments, l12/l48 benchmarks) and every other test program; ctest's gpu_kit_rehearsal then runs the
      # kit here, where its GPU steps must say "no GPU" and everything else must pass.
      echo "wavres.sh: compiling the CUDA build (build/cuda) and the GPU kit (gpu-kit/)" >&2
      WAVRES_KIT_ALL_TESTS=1 bash cmake/gpu-kit.sh
      export WAVRES_GPU_KIT_REQUIRED=1
    fi
    ctest --preset asan
    ctest --preset openmp
    # The device-shaped kernel bodies on OpenMP (Serial keeps the host bodies): the same tests, and the kernel
    # tests again with 16 threads on 2 cores (oversubscribed: exposes races that two threads hide).
    configure openmp-device
    cmake --build build/openmp-device -j "$jobs"
    ctest --preset openmp-device ;;
  build)
    configure
    exec cmake --build build/openmp -j "$jobs" ;;
  build-cuda)
    configure_cuda -DWAVRES_BUILD_PERF=ON -DWAVRES_EXPERIMENTS=
    exec cmake --build build/cuda -j "$jobs" ;;
  gpu-kit)
    exec bash cmake/gpu-kit.sh ;;
  *) echo "usage: cmake/wavres.sh demo|test|build|build-cuda|gpu-kit" >&2; exit 2 ;;
esac
