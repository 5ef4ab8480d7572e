#!/usr/bin/env bash
# The GPU kit's fallback: build its CUDA executables on the GPU machine itself, for when the ones built on the
# CPU machine do not load there (other system libraries). Needs nvcc, CMake and ninja there; nothing from a
# package registry: HDF5, Boost.Test and Eigen come from the kit's Debian .debs, unpacked with dpkg -x into a
# private prefix (never into /), and Kokkos from the kit's patched CUDA prefix.
#
#   bash gpu-kit/build-there.sh BUILD_DIR [UNPACKED]   (run.sh calls it; the executables land in BUILD_DIR/bin)
# UNPACKED: where run.sh unpacked bin.tar.xz (its lib/ holds HDF5's own dependencies); else unpacked here.
set -euo pipefail
kit=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: build-there.sh BUILD_DIR}
fb=$kit/fallback
mkdir -p "$build"
build=$(cd "$build" && pwd)
sys=$build/sysroot
unpacked=${2:-}
if [ -z "$unpacked" ]; then unpacked=$build/kit; mkdir -p "$unpacked"; tar -C "$unpacked" -xJf "$kit/bin.tar.xz"; fi
kitlib=$unpacked/lib
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
for t in nvcc cmake ninja dpkg tar; do command -v $t >/dev/null || { echo "build-there: $t not found" >&2; exit 2; }; done

echo "build-there: unpacking the sources, Kokkos and $(ls "$fb"/debs/*.deb | wc -l) .debs into $build"
tar -C "$build" -xzf "$fb/wavres-src.tar.gz"
tar -C "$build" -xJf "$fb/kokkos-cuda.tar.xz"
kokkos=$(ls -d "$build"/kokkos-*-cuda-*)
for d in "$fb"/debs/*.deb; do dpkg -x "$d" "$sys"; done
# The .debs' absolute symlinks (e.g. libhdf5_serial.so -> /usr/lib/...) point outside the private prefix.
find "$sys" -type l | while read -r l; do
  t=$(readlink "$l")
  [[ $t == /* ]] && ln -sfn "$sys$t" "$l"
done
multi=$sys/usr/lib/x86_64-linux-gnu
# Kokkos' installed CMake files and nvcc_wrapper carry the CPU machine's prefix path: point them here.
old_prefix=$(grep -rhoE '/[^" ;]*/kokkos-[0-9.]+-cuda-[A-Z0-9]+' "$kokkos/lib/cmake" 2>/dev/null | head -1 || true)
[ -n "$old_prefix" ] && grep -rlF "$old_prefix" "$kokkos" | xargs -r sed -i "s|$old_prefix|$kokkos|g"

cmake -S "$build/wavres" -B "$build/tree" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CXX_COMPILER="$kokkos/bin/nvcc_wrapper" -DCMAKE_PREFIX_PATH="$kokkos;$sys/usr" \
  -DWAVRES_EXPECT_CUDA=ON -DWAVRES_CONFORMANCE=OFF -DWAVRES_BUILD_PERF=ON "-DWAVRES_BENCH_LAYERS=12;48" \
  "-DWAVRES_EXPERIMENTS=exp_prenorm_l4_text8;exp_full_l4_text8;exp_block_l4_text8;exp_wav_l4_text8;exp_wav_l48_text8" \
  -DHDF5_C_INCLUDE_DIR="$sys/usr/include/hdf5/serial" -DHDF5_C_LIBRARY_hdf5="$multi/hdf5/serial/libhdf5.so" \
  -DHDF5_INCLUDE_DIRS="$sys/usr/include/hdf5/serial" -DHDF5_C_LIBRARIES="$multi/hdf5/serial/libhdf5.so" \
  -DEigen3_DIR="$sys/usr/share/eigen3/cmake" -DBoost_ROOT="$sys/usr" -DBoost_NO_SYSTEM_PATHS=ON \
  -DCMAKE_BUILD_RPATH="$multi;$kitlib" -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$multi:$kitlib"
targets=(test_backends test_model_gradcheck test_routing_identities exp_prenorm_l4_text8 exp_full_l4_text8
         exp_block_l4_text8 exp_wav_l4_text8 exp_wav_l48_text8)
for v in prenorm full block wav; do targets+=(bench_${v}_l12 bench_${v}_l48); done
cmake --build "$build/tree" -j "$(nproc)" --target "${targets[@]}"
mkdir -p "$build/bin"
for t in "${targets[@]}"; do find "$build/tree" -type f -name "$t" -perm -u+x -exec cp {} "$build/bin/" \; ; done
cp "$unpacked/bin/wavres-compare" "$build/bin/"
echo "build-there: built ${#targets[@]} executables into $build/bin"
