#!/usr/bin/env bash
# The one command of the README, on a fresh Debian 12 machine or an old one:
#   cmake/wavres.sh demo    install what is missing, build, train a 12-layer PreNorm model on text8 for a few
#                           minutes (progress bar, validation loss, checkpoint in runs/demo)
#   cmake/wavres.sh test    install what is missing, build everything, run the whole test suite (ctest), then the
#                           fuzz test under ASan/UBSan (the `asan` preset)
#   cmake/wavres.sh build   install what is missing and build everything
# Kokkos and Kokkos Kernels are built once into ~/.cache/wavres (WAVRES_DEPS) and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-demo}
jobs=${WAVRES_JOBS:-$(nproc)}
prefix=$(bash cmake/setup-deps.sh openmp)  # prints the Kokkos prefix (honours WAVRES_DEPS and Kokkos_ROOT)
configure() { cmake --preset "${1:-openmp}" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null; }
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
    ctest --preset asan
    exec ctest --preset openmp ;;
  build)
    configure
    exec cmake --build build/openmp -j "$jobs" ;;
  *) echo "usage: cmake/wavres.sh demo|test|build" >&2; exit 2 ;;
esac
