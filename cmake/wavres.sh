#!/usr/bin/env bash
# The one command of the README, on a fresh Debian 12 machine or an old one:
#   cmake/wavres.sh demo    install what is missing, build, train a 12-layer PreNorm model on text8 for a few
#                           minutes (progress bar, validation loss, checkpoint in runs/demo), print a sample
#   cmake/wavres.sh test    install what is missing, build what the test suite runs (not the whole experiment
#                           grid: `build` does that), run it (ctest), and the fuzz test under ASan/UBSan (`asan`)
#   cmake/wavres.sh test    ... and, where the CUDA toolkit is installed, the CUDA build as the GPU kit (the `cuda`
#                           preset, Kokkos 4.6.01; compiled, not run: no GPU needed): the kit's executables and
#                           every test program, then the kit's rehearsal (ctest gpu_kit_rehearsal); then the second
#                           configuration, `openmp-device`: Kokkos 4.6.01, the device-shaped kernel bodies on
#                           OpenMP (Serial keeps the host bodies), the kernel tests and the l4 conformance dumps,
#                           the kernel tests again with 16 threads (WAVRES_K46=off skips it)
#   cmake/wavres.sh build   install what is missing and build everything
#   cmake/wavres.sh build-cuda   build everything for CUDA into build/cuda (WAVRES_CUDA_ARCH, default sm_90)
#   cmake/wavres.sh gpu-kit      build gpu-kit/: the CUDA executables, their libraries, reference dumps, data and
#                                run.sh, to copy to a bare GPU machine and run there in one call (cmake/gpu-kit.sh)
# Kokkos and Kokkos Kernels are built once into ~/.cache/wavres (WAVRES_DEPS) and reused.
# WAVRES_CUDA=auto|on|off: whether `test` compiles the CUDA build (auto: when nvcc is found; CI sets on, so a
# missing toolkit fails instead of skipping the check).
# WAVRES_K46=on|off: whether `test` also builds and tests the openmp-device configuration (Kokkos 4.6.01).
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
  case $preset in openmp-k46 | openmp-device) p=$(Kokkos_ROOT='' WAVRES_KOKKOS=4.6 bash cmake/setup-deps.sh openmp) ;; esac
  cmake --preset "$preset" -DCMAKE_PREFIX_PATH="$p" "${@:2}" >/dev/null
}
have_nvcc() { command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]; }
# The CUDA build: Kokkos from `setup-deps.sh cuda` (4.6.01 unless WAVRES_KOKKOS=3.4; or Kokkos_CUDA_ROOT, a user's
# own Kokkos >= 3.4 with CUDA and CUDA_LAMBDA), compiled through its nvcc_wrapper, into $cuda_dir (build/cuda, or
# build/cuda-k34 for 3.4). Extra arguments go to CMake.
configure_cuda() {
  command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
  local cprefix preset=${WAVRES_CUDA_PRESET:-cuda}
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
  # another compiler (Kokkos) in an existing tree: start afresh (CMake would drop the preset's variables)
  if [ -f build/$preset/CMakeCache.txt ] && ! grep -qE "^CMAKE_CXX_COMPILER:(STRING|FILEPATH)=$cxx\$" build/$preset/CMakeCache.txt; then
    rm -rf build/$preset/CMakeCache.txt build/$preset/CMakeFiles
  fi
  cmake --preset $preset -DCMAKE_PREFIX_PATH="$cprefix" -DCMAKE_CXX_COMPILER="$cxx" -DWAVRES_EXPECT_CUDA=ON "$@" >/dev/null
  cuda_dir=build/$preset
}
case $cmd in
  demo)
    bash data/fetch.sh  # the tests read ../shared/data; only the demo needs data/
    configure openmp -DWAVRES_EXPERIMENTS= "-DWAVRES_BENCH_LAYERS=12;24;48"
    cmake --build build/openmp -j "$jobs" --target exp_prenorm_l12_text8
    ./build/openmp/experiments/exp_prenorm_l12_text8 train --d-model 128 --heads 4 --d-ff 352 --seq-len 128 \
      --batch 16 --steps 400 --eval-every 100 --checkpoint-every 200 --out runs/demo --overwrite
    echo "wavres.sh: 300 characters from runs/demo/ckpt_00000400.h5 (README, \"Generating text\"):" >&2
    exec ./build/openmp/experiments/exp_prenorm_l12_text8 sample --checkpoint runs/demo/ckpt_00000400.h5 \
      --prompt "the meaning of " --tokens 300 --temperature 0.8 --seed 1 ;;
  test)
    # What the suite runs (the l4 experiments and their Serial twins, the l12 ones of the conformance tests, one
    # 48-layer target, the 12-layer benchmarks), not the whole 24-target grid: the grid is one source compiled
    # with other template arguments, and CI's time goes to the CUDA kit and the device-bodies configuration.
    configure openmp "-DWAVRES_EXPERIMENTS=$(for v in prenorm full block wav; do
      printf 'exp_%s_l4_text8;exp_%s_l4_text8_serial;exp_%s_l12_text8;' $v $v $v; done)exp_wav_l48_text8" \
      -DWAVRES_BENCH_LAYERS=12
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
      # Data parallelism's device path (dist/allreduce.hpp: NCCL on Kokkos' stream) compiled for CUDA, one
      # experiment; the kit's executables stay MPI-free (the GPU machine need not have OpenMPI).
      echo "wavres.sh: compiling exp_wav_l4_text8 with MPI and NCCL for CUDA (build/cuda-mpi)" >&2
      WAVRES_CUDA_PRESET=cuda-mpi configure_cuda
      cmake --build build/cuda-mpi -j "$jobs" --target exp_wav_l4_text8
      needed=$(readelf -d build/cuda-mpi/experiments/exp_wav_l4_text8)
      case $needed in *libnccl*) ;; *) echo "wavres.sh: build/cuda-mpi's exp_wav_l4_text8 does not link NCCL" >&2; exit 1 ;; esac
    fi
    ctest --preset asan
    ctest --preset openmp
    case ${WAVRES_K46:-on} in
      on)
        # The second configuration, two checks in one build: Kokkos 4.6.01 + Kokkos Kernels 4.6.02 (what Spack and
        # cluster modules ship) and the device-shaped kernel bodies on OpenMP, against the host bodies on Serial
        # (test_backends) and finite differences, also with 16 threads on 2 cores (races two threads hide).
        echo "wavres.sh: Kokkos 4.6.01, device-shaped bodies on OpenMP (build/openmp-device)" >&2
        configure openmp-device
        cmake --build build/openmp-device -j "$jobs"
        ctest --preset openmp-device ;;
      off) ;;
      *) echo "wavres.sh: WAVRES_K46 must be on or off" >&2; exit 2 ;;
    esac ;;
  build)
    configure openmp -DWAVRES_EXPERIMENTS= "-DWAVRES_BENCH_LAYERS=12;24;48"  # everything (test narrows the grid)
    exec cmake --build build/openmp -j "$jobs" ;;
  build-cuda)
    configure_cuda -DWAVRES_BUILD_PERF=ON -DWAVRES_EXPERIMENTS=
    exec cmake --build "$cuda_dir" -j "$jobs" ;;
  gpu-kit)
    exec bash cmake/gpu-kit.sh ;;
  *) echo "usage: cmake/wavres.sh demo|test|build|build-cuda|gpu-kit" >&2; exit 2 ;;
esac
