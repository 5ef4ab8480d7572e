#!/usr/bin/env bash
# Builds the GPU kit: everything a bare GPU machine (no package registry, no HDF5/Boost/Eigen/Kokkos, only the
# driver, the CUDA toolkit, CMake, ninja and Python with torch) needs to check and time wavres in one call.
#
#   cmake/wavres.sh gpu-kit          (this script, after the usual set-up)
#
# Output: the git-ignored folder gpu-kit/ (WAVRES_GPU_KIT), at most 64 MiB:
#   run.sh, summarize.py         the one command to run there, and its report writer
#   bin.tar.xz                   bin/: CUDA executables (tests, l4 dump experiments, exp_wav_l48_text8, bench
#                                l12/l48) and the host tool wavres-compare (OpenMP build), rpath $ORIGIN/../lib;
#                                lib/: every non-system shared library they load (HDF5 and its dependencies,
#                                Boost, cudart, libgomp, libstdc++ ...), except the driver (libcuda.so.1) and
#                                cuBLAS, which the GPU machine's CUDA toolkit provides (run.sh adds its lib64 to
#                                the search path). Packed: 17 executables are ~40 MiB as they are, ~10 packed.
#   ref/                         OpenMP reference dumps of the four variants, at two shapes
#   data/text8/text8-prefix      the corpus the runs read
#   perf/                        the PyTorch baseline (torch_baseline.py, wavres_torch.py)
#   fallback/                    for --build-there: the wavres sources, the patched Kokkos CUDA prefix and the
#                                Debian .debs of HDF5, Boost.Test and Eigen (unpacked there with dpkg -x)
#   MANIFEST                     commit, build date, sizes, and what each binary is
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
kit=${WAVRES_GPU_KIT:-$root/gpu-kit}
jobs=${WAVRES_JOBS:-$(nproc)}
limit_mib=64
log() { printf '[gpu-kit] %s\n' "$*" >&2; }
die() { echo "gpu-kit: $*" >&2; exit 2; }
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
command -v nvcc >/dev/null || die "the kit's CUDA executables need the CUDA toolkit (nvcc), which was not found"
command -v patchelf >/dev/null || {
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  log "installing patchelf"; DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq patchelf >/dev/null
}

variants=(prenorm full block wav)
cuda_tests=(test_backends test_model_gradcheck test_routing_identities)
cuda_exps=(exp_prenorm_l4_text8 exp_full_l4_text8 exp_block_l4_text8 exp_wav_l4_text8 exp_wav_l48_text8)
cuda_bench=()
for v in "${variants[@]}"; do cuda_bench+=(bench_${v}_l12 bench_${v}_l48); done

# ---- 1. the OpenMP side: the comparison tool and the reference dumps ------------------------------------------
host_prefix=$(bash cmake/setup-deps.sh openmp)
cmake --preset openmp -DCMAKE_PREFIX_PATH="$host_prefix" >/dev/null
log "building the OpenMP reference executables"
cmake --build build/openmp -j "$jobs" --target wavres-compare "${cuda_exps[@]:0:4}"

# ---- 2. the CUDA executables (build/cuda, configured for the kit's experiments and 12/48-layer benchmarks) -----
cuda_prefix=${Kokkos_CUDA_ROOT:-$(Kokkos_ROOT= bash cmake/setup-deps.sh cuda)}
cuda_cxx=${WAVRES_CUDA_CXX:-$cuda_prefix/bin/nvcc_wrapper}
# A tree configured with another compiler (another Kokkos) is started afresh: CMake would drop the preset's
# variables with its cache and quietly find a host-only Kokkos.
if [ -f build/cuda/CMakeCache.txt ] && ! grep -qE "^CMAKE_CXX_COMPILER:(STRING|FILEPATH)=$cuda_cxx\$" build/cuda/CMakeCache.txt; then
  log "build/cuda was configured with another compiler: reconfiguring from scratch"
  rm -rf build/cuda/CMakeCache.txt build/cuda/CMakeFiles
fi
cmake --preset cuda -DCMAKE_PREFIX_PATH="$cuda_prefix" -DCMAKE_CXX_COMPILER="$cuda_cxx" -DWAVRES_EXPECT_CUDA=ON \
  -DWAVRES_BUILD_PERF=ON "-DWAVRES_BENCH_LAYERS=12;48" "-DWAVRES_EXPERIMENTS=$(IFS=';'; echo "${cuda_exps[*]}")" \
  >/dev/null
log "building the CUDA executables (${#cuda_tests[@]} tests, ${#cuda_exps[@]} experiments, ${#cuda_bench[@]} benchmarks)"
t0=$(date +%s)
cmake --build build/cuda -j "$jobs" --target "${cuda_tests[@]}" "${cuda_exps[@]}" "${cuda_bench[@]}"
log "CUDA executables built in $(($(date +%s) - t0)) s"
# CI (WAVRES_KIT_ALL_TESTS=1): every other target of the tree too, so that every test program compiles for CUDA.
[ "${WAVRES_KIT_ALL_TESTS:-0}" = 1 ] && cmake --build build/cuda -j "$jobs"

# ---- 3. assemble ----------------------------------------------------------------------------------------------
rm -rf "$kit"
mkdir -p "$kit"/{ref,data/text8,perf,fallback/debs}
stage=$(mktemp -d "${TMPDIR:-/tmp}/wavres-gpu-kit.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,lib}
for t in "${cuda_tests[@]}"; do cp build/cuda/tests/$t "$stage/bin/"; done
for e in "${cuda_exps[@]}"; do cp build/cuda/experiments/$e "$stage/bin/"; done
for b in "${cuda_bench[@]}"; do cp build/cuda/perf/$b "$stage/bin/"; done
cp build/openmp/src/wavres-compare "$stage/bin/wavres-compare"
strip --strip-unneeded "$stage"/bin/*

# Shared libraries: everything ldd resolves outside the C library itself, the driver and the CUDA toolkit.
# glibc's own libraries must come from the machine (they are tied to its ld.so); the CUDA toolkit's cuBLAS is
# hundreds of MiB and is what the GPU machine's toolkit provides, matched to its driver.
system_lib='^(linux-vdso|ld-linux|libc|libm|libdl|librt|libpthread|libresolv|libutil|libcuda|libcublas|libcublasLt|libnvidia)[.-]'
for f in "$stage"/bin/*; do
  ldd "$f" | awk '/=> \// {print $1, $3}' | while read -r name path; do
    [[ $name =~ $system_lib ]] && continue
    [ -e "$stage/lib/$name" ] || cp -L "$path" "$stage/lib/$name"
  done
done
chmod u+w "$stage"/lib/*
strip --strip-unneeded "$stage"/lib/* 2>/dev/null || true
# The toolkit's usual places stay on the path for cuBLAS; run.sh adds any others it finds.
for f in "$stage"/bin/*; do
  patchelf --set-rpath '$ORIGIN/../lib:/usr/local/cuda/lib64:/usr/local/cuda/targets/x86_64-linux/lib' "$f"
done
for f in "$stage"/lib/*; do patchelf --set-rpath '$ORIGIN' "$f"; done

# Reference dumps, made here with the OpenMP build: small (the tests' shape) and wide (the production code paths
# of the device bodies: 5120 rows > 4 x 1024 reduction chunks, head dim 20, T = 160 not a multiple of 64).
data_dir=$root/../shared/data
[ -f "$data_dir/text8/text8-prefix" ] || data_dir=$root/data
[ -f "$data_dir/text8/text8-prefix" ] || [ -f "$data_dir/text8/text8" ] || bash data/fetch.sh >/dev/null
[ -f "$data_dir/text8/text8-prefix" ] || data_dir=$root/data
if [ -f "$data_dir/text8/text8-prefix" ]; then cp -L "$data_dir/text8/text8-prefix" "$kit/data/text8/"
else die "no text8 prefix in ../shared/data or data/ (run data/fetch.sh)"; fi
source tests/portability/gpu-kit/shapes.sh  # dump_small, dump_wide: the options both sides use
for v in "${variants[@]}"; do
  OMP_NUM_THREADS=$jobs build/openmp/experiments/exp_${v}_l4_text8 "${dump_small[@]}" --data-dir "$kit/data" \
    --out "$kit/ref/${v}_small.h5" >/dev/null
  OMP_NUM_THREADS=$jobs build/openmp/experiments/exp_${v}_l4_text8 "${dump_wide[@]}" --data-dir "$kit/data" \
    --out "$kit/ref/${v}_wide.h5" >/dev/null
done

cp tests/portability/gpu-kit/run.sh tests/portability/gpu-kit/summarize.py tests/portability/gpu-kit/shapes.sh \
  tests/portability/gpu-kit/build-there.sh "$kit/"
cp perf/torch_baseline.py perf/wavres_torch.py "$kit/perf/"

# ---- 4. the fallback: build there, from sources and unpacked .debs --------------------------------------------
git archive --format=tar.gz --prefix=wavres/ -o "$kit/fallback/wavres-src.tar.gz" HEAD
git diff --quiet HEAD || log "warning: the working tree has uncommitted changes; fallback/wavres-src.tar.gz is HEAD"
tar -C "$(dirname "$cuda_prefix")" -cJf "$kit/fallback/kokkos-cuda.tar.xz" "$(basename "$cuda_prefix")"
(cd "$kit/fallback/debs" && apt-get download -qq libhdf5-dev libhdf5-103-1 libboost1.74-dev libboost-test1.74-dev \
  libboost-test1.74.0 libeigen3-dev 2>/dev/null) || die "apt-get download of the fallback .debs failed"

# ---- 5. check and describe ------------------------------------------------------------------------------------
# Every CUDA executable carries device code (an .nv_fatbin section): a host-only Kokkos would build without it.
for f in "$stage"/bin/*; do
  [ "$(basename "$f")" = wavres-compare ] && continue
  [[ $(readelf -SW "$f") == *.nv_fatbin* ]] || die "$(basename "$f") holds no GPU code (was Kokkos built with CUDA?)"
done
missing=$(for f in "$stage"/bin/*; do
  LD_LIBRARY_PATH=/usr/local/cuda/lib64 ldd "$f" | { grep 'not found' || true; } | { grep -v 'libcuda\.so' || true; } |
    sed "s|^|$(basename "$f"): |"
done)
# (this machine's toolkit may live in /usr/local/cuda-13.0 only: then ldd looks there, as run.sh does)
[ -z "$missing" ] || die "libraries not resolved inside the kit: $missing"
tar -C "$stage" -cf - bin lib | xz -T0 -6 >"$kit/bin.tar.xz"
size_mib=$(du -sm "$kit" | cut -f1)
{
  echo "wavres GPU kit"
  echo "commit: $(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD || echo ' (+ uncommitted changes)')"
  echo "built: $(date -u +%FT%TZ) on $(. /etc/os-release; echo "$PRETTY_NAME"), $(nvcc --version | tail -1)"
  echo "kokkos (cuda): $(basename "$cuda_prefix"), arch ${WAVRES_CUDA_ARCH:-HOPPER90}"
  echo "size: $size_mib MiB"
  echo "files:"
  (cd "$kit" && find . -type f -printf '%s %p\n' | sort -k2 | awk '{printf "  %8.1f KiB  %s\n", $1/1024, $2}')
  echo "in bin.tar.xz:"
  (cd "$stage" && find . -type f -printf '%s %p\n' | sort -k2 | awk '{printf "  %8.1f KiB  %s\n", $1/1024, $2}')
} >"$kit/MANIFEST"
((size_mib <= limit_mib)) || die "the kit is $size_mib MiB, over the $limit_mib MiB that can travel"
log "kit ready: $kit ($size_mib MiB); on the GPU machine run: bash gpu-kit/run.sh"
