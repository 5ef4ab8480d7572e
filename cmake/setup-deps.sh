#!/usr/bin/env bash
# Installs everything wavres needs on Debian 12 and builds Kokkos + Kokkos Kernels once into a cache prefix.
# Idempotent: a second run finds the cache and returns in seconds. Prints the prefix on stdout.
#
#   cmake/setup-deps.sh [openmp]   Kokkos OpenMP+Serial, Kokkos Kernels with OpenBLAS (float/double ETI)
#   cmake/setup-deps.sh cuda       Kokkos CUDA+Serial (patched for CUDA 13, cmake/patches/), Kokkos Kernels
#                                  with cuBLAS; needs the CUDA toolkit (nvcc), not a GPU
#
# Environment:
#   WAVRES_DEPS       cache prefix (default ~/.cache/wavres); Kokkos goes to $WAVRES_DEPS/kokkos-3.4.01-openmp
#                     or $WAVRES_DEPS/kokkos-3.4.01-cuda-<arch>
#   WAVRES_CUDA_ARCH  GPU architecture of the cuda build, as Kokkos names it or as sm_XX (default HOPPER90 = sm_90;
#                     also AMPERE80/sm_80, AMPERE86/sm_86, TURING75/sm_75)
#   Kokkos_ROOT       if set and valid, nothing is built: your own Kokkos >= 3.4 (+ Kokkos Kernels) is used
set -euo pipefail
backend=${1:-openmp}
deps=${WAVRES_DEPS:-$HOME/.cache/wavres}
jobs=$(nproc)
log() { printf '[setup-deps] %s\n' "$*" >&2; }
die() { echo "setup-deps: $*" >&2; exit 2; }
case $backend in
  openmp) prefix=$deps/kokkos-3.4.01-openmp ;;
  cuda)
    arch=${WAVRES_CUDA_ARCH:-HOPPER90}
    case $arch in  # Kokkos' option names; CUDA 13 supports sm_75 and newer
      sm_90 | HOPPER90) arch=HOPPER90 ;;
      sm_86 | AMPERE86) arch=AMPERE86 ;;
      sm_80 | AMPERE80) arch=AMPERE80 ;;
      sm_75 | TURING75) arch=TURING75 ;;
      *) die "WAVRES_CUDA_ARCH=$arch is not one of HOPPER90 (sm_90), AMPERE86, AMPERE80, TURING75" ;;
    esac
    prefix=$deps/kokkos-3.4.01-cuda-$arch ;;
  *) die "unknown backend '$backend' (expected openmp or cuda)" ;;
esac

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

if [ "$backend" = cuda ]; then
  # nvcc_wrapper calls `nvcc` from PATH; Debian-less NVIDIA installs put it in /usr/local/cuda/bin.
  command -v nvcc >/dev/null || { [ -x /usr/local/cuda/bin/nvcc ] && export PATH=/usr/local/cuda/bin:$PATH; } ||
    die "the cuda backend needs the CUDA toolkit: nvcc is neither on PATH nor in /usr/local/cuda/bin"
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
build=$deps/build-$backend
rm -rf "$build"; mkdir -p "$build"
trap 'echo "setup-deps: build failed; last lines of the logs in $build:" >&2; tail -n 20 "$build"/*.log >&2' ERR
ksrc=$src/kokkos
case $backend in
  openmp)
    kokkos_flags=(-DKokkos_ENABLE_OPENMP=ON -DKokkos_ENABLE_SERIAL=ON)
    kk_flags=(-DKokkosKernels_ENABLE_TPL_BLAS=ON -DKokkosKernels_INST_EXECSPACE_OPENMP=ON
              -DKokkosKernels_INST_EXECSPACE_SERIAL=OFF -DKokkosKernels_INST_MEMSPACE_HOSTSPACE=ON
              -DKokkosKernels_INST_FLOAT=ON -DKokkosKernels_INST_DOUBLE=ON
              -DKokkosKernels_INST_LAYOUTRIGHT=ON -DKokkosKernels_INST_ORDINAL_INT=ON -DKokkosKernels_INST_OFFSET_INT=ON)
    cxx=${CXX:-g++} ;;
  cuda)
    # Kokkos 3.4.01 predates CUDA 13: patch a copy of the sources (each patch says why, hunk by hunk).
    ksrc=$build/kokkos-src
    cp -r "$src/kokkos" "$ksrc"
    for p in "$(cd "$(dirname "$0")" && pwd)"/patches/*.patch; do
      log "patching Kokkos: $(basename "$p")"
      patch -d "$ksrc" -p1 --forward --quiet <"$p" >>"$build/kokkos.log" || die "$(basename "$p") does not apply"
    done
    kokkos_flags=(-DKokkos_ENABLE_CUDA=ON -DKokkos_ENABLE_CUDA_LAMBDA=ON -DKokkos_ENABLE_SERIAL=ON
                  "-DKokkos_ARCH_$arch=ON")
    # No explicit instantiation: wavres only calls gemm, which goes straight to cuBLAS through the TPL
    # specialisation in the headers; instantiating the sparse kernels for CUDA would take ~40 minutes on 2 cores.
    kk_flags=(-DKokkosKernels_ENABLE_TPL_CUBLAS=ON -DKokkosKernels_ENABLE_TPL_CUSPARSE=OFF
              -DKokkosKernels_ENABLE_TPL_BLAS=OFF -DKokkosKernels_INST_EXECSPACE_CUDA=OFF
              -DKokkosKernels_INST_MEMSPACE_CUDASPACE=OFF -DKokkosKernels_INST_MEMSPACE_CUDAUVMSPACE=OFF
              -DKokkosKernels_INST_EXECSPACE_SERIAL=OFF -DKokkosKernels_INST_MEMSPACE_HOSTSPACE=OFF
              -DKokkosKernels_INST_FLOAT=OFF -DKokkosKernels_INST_DOUBLE=OFF
              -DKokkosKernels_INST_LAYOUTRIGHT=OFF -DKokkosKernels_INST_ORDINAL_INT=OFF -DKokkosKernels_INST_OFFSET_INT=OFF)
    cxx=$ksrc/bin/nvcc_wrapper ;;
esac
log "building Kokkos ($backend) into $prefix"
cmake -S "$ksrc" -B "$build/kokkos" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_CXX_STANDARD=17 -DCMAKE_INSTALL_PREFIX="$prefix" -DKokkos_ENABLE_TESTS=OFF "${kokkos_flags[@]}" >>"$build/kokkos.log" 2>&1
cmake --build "$build/kokkos" -j "$jobs" >>"$build/kokkos.log" 2>&1
cmake --install "$build/kokkos" >>"$build/kokkos.log"
if [ "$backend" = cuda ]; then cxx=$prefix/bin/nvcc_wrapper; fi  # users compile with the installed wrapper

# ---- 5. build Kokkos Kernels, instantiating only what wavres uses (see kk_flags) -----------------------------
log "building Kokkos Kernels ($backend)"
cmake -S "$src/kokkos-kernels" -B "$build/kk" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_CXX_STANDARD=17 -DCMAKE_INSTALL_PREFIX="$prefix" -DKokkos_ROOT="$prefix" \
  -DKokkosKernels_ENABLE_TESTS=OFF -DKokkosKernels_ENABLE_EXAMPLES=OFF \
  -DKokkosKernels_INST_COMPLEX_FLOAT=OFF -DKokkosKernels_INST_COMPLEX_DOUBLE=OFF \
  -DKokkosKernels_INST_LAYOUTLEFT=OFF -DKokkosKernels_INST_ORDINAL_INT64_T=OFF -DKokkosKernels_INST_OFFSET_SIZE_T=OFF \
  "${kk_flags[@]}" >"$build/kk.log" 2>&1
cmake --build "$build/kk" -j "$jobs" >>"$build/kk.log" 2>&1
cmake --install "$build/kk" >>"$build/kk.log"
touch "$prefix/.complete"
rm -rf "$build"
log "done: $prefix"
echo "$prefix"
