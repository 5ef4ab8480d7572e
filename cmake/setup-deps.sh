#!/usr/bin/env bash
# Installs everything wavres needs on Debian 12 and builds Kokkos + Kokkos Kernels once into a cache prefix.
# Idempotent: a second run finds the cache and returns in seconds. Prints the prefix on stdout.
#
#   cmake/setup-deps.sh [openmp]   Kokkos OpenMP+Serial, Kokkos Kernels with OpenBLAS (float/double ETI)
#   cmake/setup-deps.sh cuda       Kokkos CUDA+Serial (patched for CUDA 13, cmake/patches/), Kokkos Kernels
#                                  with cuBLAS; needs the CUDA toolkit (nvcc), not a GPU
#
# Environment:
#   WAVRES_KOKKOS     which Kokkos: 3.4 (3.4.01 from Debian's trilinos sources; the default for openmp) or 4.6
#                     (Kokkos 4.6.01 + Kokkos Kernels 4.6.02 release tarballs; the default for cuda, see the
#                     README's "Dependencies and why")
#   WAVRES_DEPS       cache prefix (default ~/.cache/wavres); Kokkos goes to $WAVRES_DEPS/kokkos-<version>-openmp
#                     or $WAVRES_DEPS/kokkos-<version>-cuda-<arch>, e.g. kokkos-3.4.01-openmp, kokkos-4.6.01-cuda-HOPPER90
#   WAVRES_DEPS_MIRROR  a directory holding the 4.6 release tarballs (default ../shared/deps beside the repository,
#                     when present); otherwise they are downloaded from GitHub (WAVRES_KOKKOS_UPSTREAM, default
#                     https://github.com/kokkos, replaces the host). Either way their sha256 must match.
#   WAVRES_CUDA_ARCH  GPU architecture of the cuda build, as Kokkos names it or as sm_XX (default HOPPER90 = sm_90;
#                     also AMPERE80/sm_80, AMPERE86/sm_86, TURING75/sm_75)
#   Kokkos_ROOT       if set and valid, nothing is built: your own Kokkos >= 3.4 (+ Kokkos Kernels) is used
set -euo pipefail
backend=${1:-openmp}
deps=${WAVRES_DEPS:-$HOME/.cache/wavres}
here=$(cd "$(dirname "$0")" && pwd)
jobs=$(nproc)
log() { printf '[setup-deps] %s\n' "$*" >&2; }
die() { echo "setup-deps: $*" >&2; exit 2; }
# CUDA defaults to 4.6: its CUDA backend knows Hopper and CUDA 12+ and needs one small patch for CUDA 13 instead of
# 3.4's four (README, "Dependencies and why"). The OpenMP default stays 3.4: CI tests both, with identical results.
case ${WAVRES_KOKKOS:-$([ "$backend" = cuda ] && echo 4.6 || echo 3.4)} in
  3.4) kokkos_version=3.4.01 ;;
  4.6) kokkos_version=4.6.01 kernels_version=4.6.02 ;;
  *) die "WAVRES_KOKKOS=$WAVRES_KOKKOS is not 3.4 or 4.6" ;;
esac
case $backend in
  openmp) prefix=$deps/kokkos-$kokkos_version-openmp ;;
  cuda)
    arch=${WAVRES_CUDA_ARCH:-HOPPER90}
    case $arch in  # Kokkos' option names; CUDA 13 supports sm_75 and newer
      sm_90 | HOPPER90) arch=HOPPER90 ;;
      sm_86 | AMPERE86) arch=AMPERE86 ;;
      sm_80 | AMPERE80) arch=AMPERE80 ;;
      sm_75 | TURING75) arch=TURING75 ;;
      *) die "WAVRES_CUDA_ARCH=$arch is not one of HOPPER90 (sm_90), AMPERE86, AMPERE80, TURING75" ;;
    esac
    prefix=$deps/kokkos-$kokkos_version-cuda-$arch ;;
  *) die "unknown backend '$backend' (expected openmp or cuda)" ;;
esac

# ---- 1. Debian packages -------------------------------------------------------------------------------------
# OpenBLAS's OpenMP flavour shares Kokkos' OpenMP thread pool instead of spawning a second pool (oversubscription).
pkgs=(build-essential cmake ninja-build git curl unzip ca-certificates libeigen3-dev libhdf5-dev hdf5-tools libboost-test-dev
      libopenblas-openmp-dev dpkg-dev clang-format patchelf xz-utils  # patchelf, xz: the GPU kit
      libopenmpi-dev openmpi-bin  # data-parallel training (WAVRES_MPI, include/wavres/dist/)
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
# One build per prefix at a time: a second run waits here, then finds the first one's result.
mkdir -p "$deps"
exec 9>"$deps/.lock-${prefix##*/}"
flock -n 9 || { log "waiting for another setup-deps that is building $prefix"; flock 9; }
if [ -f "$prefix/.complete" ]; then log "cached: $prefix"; echo "$prefix"; exit 0; fi
rm -rf "$prefix"  # what an interrupted build left

# ---- 3. sources -------------------------------------------------------------------------------------------------
src=$deps/src
build=$deps/build-${prefix##*/}  # per prefix, so that two versions can be built side by side
mkdir -p "$src"
rm -rf "$build"; mkdir -p "$build"
if [ "$kokkos_version" = 3.4.01 ]; then
  # Kokkos 3.4.01 from Debian's trilinos source package
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
  kokkos_src=$src/kokkos kernels_src=$src/kokkos-kernels
else
  # Kokkos 4.6: the upstream release tarballs, pinned by sha256 (the values in ../shared/deps/README.md, which are
  # also Spack's). The pins live here, not in the mirror, so that a tampered mirror cannot vouch for itself.
  mirror=${WAVRES_DEPS_MIRROR:-$here/../../shared/deps}
  fetch_release() {  # fetch_release NAME VERSION SHA256 DIR: the release tarball, verified, extracted into DIR
    local name=$1 version=$2 sha=$3 dir=$4 file=$1-$2.tar.gz tarball got
    local url=${WAVRES_KOKKOS_UPSTREAM:-https://github.com/kokkos}/$name/releases/download/$version/$file
    tarball=$mirror/$file
    if [ ! -f "$tarball" ]; then
      tarball=$deps/downloads/$file
      if [ ! -f "$tarball" ]; then
        log "downloading $url"
        mkdir -p "$deps/downloads"
        if ! got=$(curl -fsSL --retry 3 -o "$tarball.part" "$url" 2>&1); then
          rm -f "$tarball.part"
          echo "setup-deps: could not download $url: ${got##*$'\n'} (offline? put $file into WAVRES_DEPS_MIRROR)" >&2
          exit 1
        fi
        mv "$tarball.part" "$tarball"
      fi
    fi
    got=$(sha256sum "$tarball" | cut -d' ' -f1)
    if [ "$got" != "$sha" ]; then
      # a bad download is removed so that the next run fetches it again; a mirror's file is left alone
      [ "$tarball" != "$deps/downloads/$file" ] || rm -f "$tarball"
      die "$tarball: sha256 $got, expected $sha (corrupted, or not the $name $version release)"
    fi
    log "extracting $file (sha256 verified)"
    mkdir -p "$dir"
    tar xzf "$tarball" -C "$dir" --strip-components=1
  }
  kokkos_src=$build/kokkos-src kernels_src=$build/kernels-src
  fetch_release kokkos "$kokkos_version" b9d70e4653b87a06dbb48d63291bf248058c7c7db4bd91979676ad5609bb1a3a "$kokkos_src"
  fetch_release kokkos-kernels "$kernels_version" a953f445660ed5aaab10e18fc4a90c4c178291e9d9d97d20abd4e6027f1193ec \
    "$kernels_src"
fi

# ---- 4. build Kokkos -----------------------------------------------------------------------------------------
trap 'echo "setup-deps: build failed; last lines of the logs in $build:" >&2; tail -n 20 "$build"/*.log >&2' ERR
ksrc=$kokkos_src
# No explicit instantiation (ETI): wavres only calls gemm, which goes straight to the BLAS TPL (OpenBLAS, cuBLAS)
# through the specialisation in the headers. Instantiating the other kernels costs build time and nothing else:
# for CUDA ~40 min on 2 cores (3.4, sparse), for OpenMP 80 files of 4.6's BLAS component.
no_eti=(-DKokkosKernels_INST_EXECSPACE_OPENMP=OFF -DKokkosKernels_INST_EXECSPACE_CUDA=OFF
        -DKokkosKernels_INST_MEMSPACE_CUDASPACE=OFF -DKokkosKernels_INST_MEMSPACE_CUDAUVMSPACE=OFF
        -DKokkosKernels_INST_EXECSPACE_SERIAL=OFF -DKokkosKernels_INST_MEMSPACE_HOSTSPACE=OFF
        -DKokkosKernels_INST_FLOAT=OFF -DKokkosKernels_INST_DOUBLE=OFF
        -DKokkosKernels_INST_LAYOUTRIGHT=OFF -DKokkosKernels_INST_ORDINAL_INT=OFF -DKokkosKernels_INST_OFFSET_INT=OFF)
case $backend in
  openmp)
    kokkos_flags=(-DKokkos_ENABLE_OPENMP=ON -DKokkos_ENABLE_SERIAL=ON)
    if [ "$kokkos_version" = 3.4.01 ]; then
      kk_flags=(-DKokkosKernels_ENABLE_TPL_BLAS=ON -DKokkosKernels_INST_EXECSPACE_OPENMP=ON
                -DKokkosKernels_INST_EXECSPACE_SERIAL=OFF -DKokkosKernels_INST_MEMSPACE_HOSTSPACE=ON
                -DKokkosKernels_INST_FLOAT=ON -DKokkosKernels_INST_DOUBLE=ON
                -DKokkosKernels_INST_LAYOUTRIGHT=ON -DKokkosKernels_INST_ORDINAL_INT=ON -DKokkosKernels_INST_OFFSET_INT=ON)
    else
      # 4.6 rejects a full path in BLAS_LIBRARIES (a name and a directory work). LAPACK is off: its TPL follows
      # BLAS by default, but nothing wavres builds calls it. F77_BLAS_MANGLE names OpenBLAS's symbol convention
      # (dgemm_) instead of detecting it with a Fortran compiler.
      kk_flags=(-DKokkosKernels_ENABLE_TPL_BLAS=ON -DBLAS_LIBRARIES=openblas
                "-DBLAS_LIBRARY_DIRS=/usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH)"
                -DKokkosKernels_ENABLE_TPL_LAPACK=OFF "-DF77_BLAS_MANGLE=(name,NAME) name ## _" "${no_eti[@]}")
    fi
    cxx=${CXX:-g++} ;;
  cuda)
    # Neither Kokkos knows CUDA 13 as released: patch a copy of the sources (each patch says why, hunk by hunk).
    if [ "$kokkos_version" = 3.4.01 ]; then
      ksrc=$build/kokkos-src
      cp -r "$kokkos_src" "$ksrc"
      patches=("$here"/patches/*.patch)
      kokkos_flags=(-DKokkos_ENABLE_CUDA_LAMBDA=ON)  # KOKKOS_LAMBDA on the device; 4.x always has it
    else
      patches=("$here/patches/kokkos-$kokkos_version"/*.patch)
      kokkos_flags=()
    fi
    for p in "${patches[@]}"; do
      log "patching Kokkos: ${p#"$here"/patches/}"
      patch -d "$ksrc" -p1 --forward --quiet <"$p" >>"$build/kokkos.log" || die "$(basename "$p") does not apply"
    done
    kokkos_flags+=(-DKokkos_ENABLE_CUDA=ON -DKokkos_ENABLE_SERIAL=ON "-DKokkos_ARCH_$arch=ON")
    kk_flags=(-DKokkosKernels_ENABLE_TPL_CUBLAS=ON -DKokkosKernels_ENABLE_TPL_CUSPARSE=OFF
              -DKokkosKernels_ENABLE_TPL_BLAS=OFF "${no_eti[@]}")
    if [ "$kokkos_version" = 4.6.01 ]; then
      kk_flags+=(-DKokkosKernels_ENABLE_TPL_CUSOLVER=OFF -DKokkosKernels_ENABLE_TPL_LAPACK=OFF)
    fi
    cxx=$ksrc/bin/nvcc_wrapper ;;
esac
if [ "$kokkos_version" = 4.6.01 ]; then
  # Kokkos Kernels 4.x builds every component (sparse, graph, batched, ODE; ~31 min on 2 cores) unless told
  # otherwise; wavres calls only gemm.
  kk_flags+=(-DKokkosKernels_ENABLE_ALL_COMPONENTS=OFF -DKokkosKernels_ENABLE_COMPONENT_BLAS=ON)
fi
log "building Kokkos $kokkos_version ($backend) into $prefix"
cmake -S "$ksrc" -B "$build/kokkos" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_CXX_STANDARD=17 -DCMAKE_INSTALL_PREFIX="$prefix" -DKokkos_ENABLE_TESTS=OFF "${kokkos_flags[@]}" >>"$build/kokkos.log" 2>&1
cmake --build "$build/kokkos" -j "$jobs" >>"$build/kokkos.log" 2>&1
cmake --install "$build/kokkos" >>"$build/kokkos.log"
if [ "$backend" = cuda ]; then cxx=$prefix/bin/nvcc_wrapper; fi  # users compile with the installed wrapper

# ---- 5. build Kokkos Kernels, instantiating only what wavres uses (see kk_flags) -----------------------------
log "building Kokkos Kernels ($backend)"
cmake -S "$kernels_src" -B "$build/kk" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
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
