#!/usr/bin/env bash
# The one command of the README, on a fresh Debian 12 machine or an old one:
#   cmake/wavres.sh demo    install what is missing, build, train a 12-layer PreNorm model on text8 for a few
#                           minutes (progress bar, validation loss, checkpoint in runs/demo), print a sample
#   cmake/wavres.sh test    install what is missing, build everything, run the whole test suite (ctest), then the
#                           fuzz test under ASan/UBSan (the `asan` preset)
#   cmake/wavres.sh test    ... and, where the CUDA toolkit is installed, compile the library, one experiment per
#                           variant and the tests for CUDA (the `cuda` preset; compiled, not run: no GPU needed)
#   cmake/wavres.sh build   install what is missing and build everything
#   cmake/wavres.sh build-cuda   build everything for CUDA into build/cuda (WAVRES_CUDA_ARCH, default sm_90)
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
    ./build/openmp/experiments/exp_prenorm_l12_text8 train --d-model 128 --heads 4 --d-ff 352 --seq-len 128 \
      --batch 16 --steps 400 --eval-every 100 --checkpoint-every 200 --out runs/demo
    echo "wavres.sh: 300 characters from runs/demo/ckpt_00000400.h5 (README, \"Generating text\"):" >&2
    exec ./build/openmp/experiments/exp_prenorm_l12_text8 sample --checkpoint runs/demo/ckpt_00000400.h5 \
      --prompt "the meaning of " --tokens 300 --temperature 0.8 --seed 1 ;;
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
    ctest --preset asan
    ctest --preset openmp
    if [ $cuda = 1 ]; then
      # Compile-only (CI has no GPU): the library, the tools, one experiment per variant and every test program.
      configure_cuda -DWAVRES_BUILD_PERF=OFF \
        "-DWAVRES_EXPERIMENTS=exp_prenorm_l12_text8;exp_full_l12_text8;exp_block_l12_text8;exp_wav_l12_text8"
      echo "wavres.sh: compiling the CUDA build (build/cuda)" >&2
      exec cmake --build build/cuda -j "$jobs"
    fi ;;
  build)
    configure
    exec cmake --build build/openmp -j "$jobs" ;;
  build-cuda)
    configure_cuda -DWAVRES_BUILD_PERF=ON -DWAVRES_EXPERIMENTS=
    exec cmake --build build/cuda -j "$jobs" ;;
  *) echo "usage: cmake/wavres.sh demo|test|build|build-cuda" >&2; exit 2 ;;
esac
