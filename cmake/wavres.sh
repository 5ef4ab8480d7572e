#!/usr/bin/env bash
# The one command of the README, on a fresh Debian 12 machine or an old one:
#   cmake/wavres.sh demo    install what is missing, build, train a 12-layer PreNorm model on text8 for a few
#                           minutes (progress bar, validation loss, checkpoint in runs/demo)
#   cmake/wavres.sh test    install what is missing, build everything, run the whole test suite (ctest), then the
#                           fuzz test under ASan/UBSan (the `asan` preset)
#   cmake/wavres.sh test    ... then the same suite against Kokkos 4.6.01 (the `openmp-k46` preset, WAVRES_K46),
#                           and, where the CUDA toolkit is installed, compile the library, one experiment per
#                           variant and the tests for CUDA (the `cuda` preset, Kokkos 4.6.01; compiled, not run: no
#                           GPU needed) and test_backends against Kokkos 3.4.01 (the `cuda-k34` preset)
#   cmake/wavres.sh build   install what is missing and build everything
#   cmake/wavres.sh build-cuda   build everything for CUDA into build/cuda (WAVRES_CUDA_ARCH, default sm_90)
# Kokkos and Kokkos Kernels are built once into ~/.cache/wavres (WAVRES_DEPS) and reused.
# WAVRES_CUDA=auto|on|off: whether `test` compiles the CUDA build (auto: when nvcc is found; CI sets on, so a
# missing toolkit fails instead of skipping the check).
# WAVRES_K46=on|off: whether `test` also builds and tests against Kokkos 4.6.01 (OpenMP; build/openmp-k46).
# WAVRES_KOKKOS=4.6|3.4: the Kokkos of build-cuda (default 4.6, build/cuda; 3.4 builds build/cuda-k34).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-demo}
jobs=${WAVRES_JOBS:-$(nproc)}
# The Kokkos prefix of build/openmp and build/asan: 3.4.01 (WAVRES_KOKKOS is for build-cuda; `test` adds 4.6 itself).
# setup-deps prints it and honours WAVRES_DEPS and Kokkos_ROOT.
prefix=$(WAVRES_KOKKOS=3.4 bash cmake/setup-deps.sh openmp)
# configure [PRESET [CMAKE ARGS]]: openmp and asan use $prefix; openmp-k46 Kokkos 4.6.01 from setup-deps.
configure() {
  local preset=${1:-openmp} p=$prefix
  [ "$preset" != openmp-k46 ] || p=$(Kokkos_ROOT='' WAVRES_KOKKOS=4.6 bash cmake/setup-deps.sh openmp)
  cmake --preset "$preset" -DCMAKE_PREFIX_PATH="$p" "${@:2}" >/dev/null
}
have_nvcc() { command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; }
# The CUDA build: Kokkos from `setup-deps.sh cuda` (4.6.01 unless WAVRES_KOKKOS=3.4; or Kokkos_CUDA_ROOT, a user's
# own Kokkos >= 3.4 with CUDA and CUDA_LAMBDA), compiled through its nvcc_wrapper, into $cuda_dir (build/cuda, or
# build/cuda-k34 for 3.4). Extra arguments go to CMake.
configure_cuda() {
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
  local cprefix preset=cuda
  case ${WAVRES_KOKKOS:-4.6} in
    4.6) ;;
    3.4) preset='cuda-k34' ;;
    *) echo "wavres.sh: WAVRES_KOKKOS must be 4.6 or 3.4, got '$WAVRES_KOKKOS'" >&2; exit 2 ;;
  esac
  if [ -n "${Kokkos_CUDA_ROOT:-}" ]; then cprefix=$Kokkos_CUDA_ROOT
  else cprefix=$(Kokkos_ROOT='' WAVRES_KOKKOS=${WAVRES_KOKKOS:-4.6} bash cmake/setup-deps.sh cuda)
  fi
  local cxx=${WAVRES_CUDA_CXX:-$cprefix/bin/nvcc_wrapper}
  [ -x "$cxx" ] || { echo "wavres.sh: $cxx not found (set WAVRES_CUDA_CXX to Kokkos' nvcc_wrapper)" >&2; exit 2; }
  cmake --preset $preset -DCMAKE_PREFIX_PATH="$cprefix" -DCMAKE_CXX_COMPILER="$cxx" "$@" >/dev/null
  cuda_dir=build/$preset
}
case $cmd in
  demo)
    bash data/fetch.sh  # the tests read ../shared/data; only the demo needs data/
    configure
    cmake --build build/openmp -j "$jobs" --target exp_prenorm_l12_text8
    exec ./build/openmp/experiments/exp_prenorm_l12_text8 train --d-model 128 --heads 4 --d-ff 352 --seq-len 128 \
      --batch 16 --steps 400 --eval-every 100 --checkpoint-every 200 --out runs/demo ;;
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
    case ${WAVRES_K46:-on} in
      on)
        # The whole suite again against Kokkos 4.6.01 + Kokkos Kernels 4.6.02 (what Spack and cluster modules
        # ship), building only what the tests run: the l4 experiments and their Serial twins, the l12 ones of the
        # conformance tests, no benchmarks.
        echo "wavres.sh: building and testing against Kokkos 4.6.01 (build/openmp-k46)" >&2
        configure openmp-k46 -DWAVRES_BUILD_PERF=OFF "-DWAVRES_EXPERIMENTS=$(for v in prenorm full block wav; do
          printf 'exp_%s_l4_text8;exp_%s_l4_text8_serial;exp_%s_l12_text8;' $v $v $v; done)"
        cmake --build build/openmp-k46 -j "$jobs"
        ctest --preset openmp-k46 ;;
      off) ;;
      *) echo "wavres.sh: WAVRES_K46 must be on or off" >&2; exit 2 ;;
    esac
    if [ $cuda = 1 ]; then
      # Kokkos 3.4.01's CUDA build stays compiled, as the alternative to compare with: test_backends holds every
      # variant's kernels (build/cuda-k34).
      WAVRES_KOKKOS=3.4 configure_cuda -DWAVRES_BUILD_PERF=OFF -DWAVRES_BUILD_EXPERIMENTS=OFF
      echo "wavres.sh: compiling test_backends against Kokkos 3.4.01 for CUDA ($cuda_dir)" >&2
      cmake --build "$cuda_dir" -j "$jobs" --target test_backends
      # Compile-only (CI has no GPU): the library, the tools, one experiment per variant and every test program.
      configure_cuda -DWAVRES_BUILD_PERF=OFF \
        "-DWAVRES_EXPERIMENTS=exp_prenorm_l12_text8;exp_full_l12_text8;exp_block_l12_text8;exp_wav_l12_text8"
      echo "wavres.sh: compiling the CUDA build ($cuda_dir)" >&2
      exec cmake --build "$cuda_dir" -j "$jobs"
    fi ;;
  build)
    configure
    exec cmake --build build/openmp -j "$jobs" ;;
  build-cuda)
    configure_cuda -DWAVRES_BUILD_PERF=ON -DWAVRES_EXPERIMENTS=
    exec cmake --build "$cuda_dir" -j "$jobs" ;;
  *) echo "usage: cmake/wavres.sh demo|test|build|build-cuda" >&2; exit 2 ;;
esac
