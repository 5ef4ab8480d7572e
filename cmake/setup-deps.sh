#!/usr/bin/env bash
# Installs everything wavres needs on Debian 12 and builds Kokkos + Kokkos Kernels once into a cache prefix.
# Idempotent: a second run finds the cache and returns in seconds.
#
#   cmake/setup-deps.sh [openmp]      (the CUDA build is not part of this script yet)
#
# Environment:
#   WAVRES_DEPS   cache prefix (default ~/.cache/wavres); Kokkos goes to $WAVRES_DEPS/kokkos-3.4.01-<backend>
#   Kokkos_ROOT   if set and valid, nothing is built: your own Kokkos >= 3.4 (+ Kokkos Kernels) is used
set -euo pipefail
backend=${1:-openmp}
[ "$backend" = openmp ] || { echo "setup-deps: only the openmp backend is supported so far, got '$backend'" >&2; exit 2; }
deps=${WAVRES_DEPS:-$HOME/.cache/wavres}
prefix=$deps/kokkos-3.4.01-$backend
jobs=$(nproc)
log() { printf '[setup-deps] %s\n' "$*" >&2; }

# ---- 1. Debian packages -------------------------------------------------------------------------------------
# OpenBLAS's OpenMP flavour shares Kokkos' OpenMP thread pool instead of spawning a second pool (oversubscription).
pkgs=(build-essential cmake ninja-build git curl unzip ca-certificates libeigen3-dev libhdf5-dev hdf5-tools libboost-test-dev
      libopenblas-openmp-dev dpkg-dev clang-format
      python3-torch python3-h5py python3-numpy python3-matplotlib)  # torch: the independent reference of the spec
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# ---- 2. a user's own Kokkos ----------------------------------------------------------------------------------
if [ -n "${Kokkos_ROOT:-}" ]; then
  log "using Kokkos_ROOT=$Kokkos_ROOT (not building Kokkos)"; echo "$Kokkos_ROOT"; exit 0
fi
if [ -f "$prefix/.complete" ]; then log "cached: $prefix"; echo "$prefix"; exit 0; fi

# ---- 3. Kokkos 3.4.01 sources from Debian's trilinos source package ------------------------------------------
src=$deps/src
mkdir -p "$src"
if [ ! -d "$src/kokkos" ] || [ ! -d "$src/kokkos-kernels" ]; then
  if ! grep -rqs '^Types:.*deb-src\|^deb-src' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # Same mirrors as the machine's binary packages, for source packages too.
    log "enabling deb-src entries (for the trilinos source package)"
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
      sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
        | $SUDO tee /etc/apt/sources.list.d/wavres-deb-src.sources >/dev/null
    else
      grep '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' | $SUDO tee /etc/apt/sources.list.d/wavres-deb-src.list >/dev/null
    fi
    $SUDO apt-get update -qq
  fi
  log "downloading trilinos sources (~166 MB, once)"
  tmp=$deps/trilinos-download
  mkdir -p "$tmp"
  ls "$tmp"/trilinos_*.orig.tar.* >/dev/null 2>&1 || (cd "$tmp" && apt-get source -qq --download-only trilinos >/dev/null) ||
    { echo "setup-deps: could not download Debian's trilinos source package (network? deb-src?)" >&2; exit 1; }
  tarball=$(ls "$tmp"/trilinos_*.orig.tar.* | head -n1)
  log "extracting Kokkos and Kokkos Kernels from $(basename "$tarball")"
  top=$( (tar tf "$tarball" || true) | sed -n '1{s,/.*,,;p;q}')
  tar xf "$tarball" -C "$tmp" "$top/packages/kokkos" "$top/packages/kokkos-kernels"
  rm -rf "$src/kokkos" "$src/kokkos-kernels"
  mv "$tmp/$top/packages/kokkos" "$src/kokkos"
  mv "$tmp/$top/packages/kokkos-kernels" "$src/kokkos-kernels"
  rm -rf "$tmp"
fi

# ---- 4. build Kokkos -----------------------------------------------------------------------------------------
case $backend in
  openmp)
    kokkos_flags=(-DKokkos_ENABLE_OPENMP=ON -DKokkos_ENABLE_SERIAL=ON)
    kk_flags=(-DKokkosKernels_ENABLE_TPL_BLAS=ON -DKokkosKernels_INST_EXECSPACE_OPENMP=ON
              -DKokkosKernels_INST_EXECSPACE_SERIAL=OFF -DKokkosKernels_INST_MEMSPACE_HOSTSPACE=ON)
    cxx=${CXX:-g++} ;;
  *) echo "setup-deps: unknown backend '$backend' (expected openmp)" >&2; exit 2 ;;
esac
ksrc=$src/kokkos
build=$deps/build-$backend
rm -rf "$build"; mkdir -p "$build"
trap 'echo "setup-deps: build failed; last lines of the logs in $build:" >&2; tail -n 20 "$build"/*.log >&2' ERR
log "building Kokkos ($backend) into $prefix"
cmake -S "$ksrc" -B "$build/kokkos" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_CXX_STANDARD=17 -DCMAKE_INSTALL_PREFIX="$prefix" -DKokkos_ENABLE_TESTS=OFF "${kokkos_flags[@]}" >"$build/kokkos.log"
cmake --build "$build/kokkos" -j "$jobs" >>"$build/kokkos.log"
cmake --install "$build/kokkos" >>"$build/kokkos.log"

# ---- 5. build Kokkos Kernels, instantiating only what wavres uses (float, double; LayoutRight; int ordinals) --
log "building Kokkos Kernels ($backend; a few minutes)"
cmake -S "$src/kokkos-kernels" -B "$build/kk" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_CXX_STANDARD=17 -DCMAKE_INSTALL_PREFIX="$prefix" -DKokkos_ROOT="$prefix" \
  -DKokkosKernels_ENABLE_TESTS=OFF -DKokkosKernels_ENABLE_EXAMPLES=OFF \
  -DKokkosKernels_INST_FLOAT=ON -DKokkosKernels_INST_DOUBLE=ON \
  -DKokkosKernels_INST_COMPLEX_FLOAT=OFF -DKokkosKernels_INST_COMPLEX_DOUBLE=OFF \
  -DKokkosKernels_INST_LAYOUTRIGHT=ON -DKokkosKernels_INST_LAYOUTLEFT=OFF \
  -DKokkosKernels_INST_ORDINAL_INT=ON -DKokkosKernels_INST_ORDINAL_INT64_T=OFF \
  -DKokkosKernels_INST_OFFSET_INT=ON -DKokkosKernels_INST_OFFSET_SIZE_T=OFF \
  "${kk_flags[@]}" >"$build/kk.log"
cmake --build "$build/kk" -j "$jobs" >>"$build/kk.log"
cmake --install "$build/kk" >>"$build/kk.log"
touch "$prefix/.complete"
rm -rf "$build"
log "done: $prefix"
echo "$prefix"
