#!/usr/bin/env bash
# Is BLIS faster than OpenBLAS on the gemm calls of one training step? (issue 18)
# Installs Debian's BLIS (OpenMP flavour) if missing, without changing which library the system's
# libblas.so.3 points to, builds perf/gemm_blas_ab.cpp with g++ -O2 (into build/gemm_blas_ab/, not the CMake
# build) and runs it on OpenBLAS (A) against BLIS (B), both with 2 threads, interleaved.
#   perf/gemm_blas_ab.sh [gemm_blas_ab options: --rounds 15 --warmup 2 --routed --threads 2 ...]
# Environment: GEMM_AB_LIB_A, GEMM_AB_LIB_B (library paths), GEMM_AB_NAMES (default OpenBLAS,BLIS),
# GEMM_AB_OPENBLAS_CORETYPE, GEMM_AB_BLIS_ARCH (kernels, see below), GEMM_AB_BUSY (competing busy loops).
# The thread placement is the caller's: OMP_PROC_BIND, OMP_PLACES, OMP_WAIT_POLICY, GOMP_SPINCOUNT,
# OPENBLAS_L2_SIZE and GLIBC_TUNABLES are passed through; where unset, they get what a wavres executable sets
# for itself (src/cli/blas_env.cpp). The kernels are chosen here (see below): OpenBLAS SkylakeX, BLIS skx.
# Takes about a minute with the defaults on the 2-core EPYC if both libraries run the step's gemms in ~0.55 s
# (17 rounds of 2 x 2 x 0.55 s, plus ~10 s of set-up and checks); longer where one of them is much slower.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
arch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)
lib_a=${GEMM_AB_LIB_A:-/usr/lib/$arch/openblas-openmp/libblas.so.3}
lib_b=${GEMM_AB_LIB_B:-/usr/lib/$arch/blis-openmp/libblis.so.4}
names=${GEMM_AB_NAMES:-OpenBLAS,BLIS}
alt=libblas.so.3-$arch

alt_value() { update-alternatives --query "$1" 2>/dev/null | sed -n 's/^Value: //p'; }
alt_status() { update-alternatives --query "$1" 2>/dev/null | sed -n 's/^Status: //p'; }
alt_best() { update-alternatives --query "$1" 2>/dev/null | sed -n 's/^Best: //p'; }

# --- BLIS: the runtime package libblis4-openmp holds the library (libblis-openmp-dev adds only headers, the
# static library and a libblas.so link-time alternative, none of which this tool needs).
if [ "$lib_b" = "/usr/lib/$arch/blis-openmp/libblis.so.4" ] && [ ! -e "$lib_b" ]; then
  [ "$(id -u)" = 0 ] || { echo "gemm_blas_ab.sh: $lib_b is missing; install libblis4-openmp as root" >&2; exit 2; }
  before_value=$(alt_value "$alt") before_status=$(alt_status "$alt")
  before_dev=$(alt_value "libblas.so-$arch")
  echo "== installing libblis4-openmp"
  echo "  before: $alt -> ${before_value:-(none)} ($before_status); libblas.so-$arch -> ${before_dev:-(none)}"
  if [ -z "$(apt-cache policy libblis4-openmp 2>/dev/null | sed -n 's/^ *Candidate: //p' | grep -v '(none)')" ]; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libblis4-openmp >/dev/null
  after_value=$(alt_value "$alt") after_status=$(alt_status "$alt")
  echo "  after:  $alt -> ${after_value:-(none)} ($after_status); libblas.so-$arch -> $(alt_value "libblas.so-$arch")"
  if [ "$after_value" != "$before_value" ] && [ -n "$before_value" ]; then
    # Put the system's BLAS back: auto mode again if the old choice is still the best, else pinned by hand.
    if [ "$before_status" = auto ] && [ "$(alt_best "$alt")" = "$before_value" ]; then
      update-alternatives --auto "$alt"
    else
      update-alternatives --set "$alt" "$before_value"
    fi
    echo "  the install changed $alt; set back to $(alt_value "$alt") ($(alt_status "$alt"))"
  else
    echo "  $alt unchanged"
  fi
fi
for l in "$lib_a" "$lib_b"; do [ -e "$l" ] || { echo "gemm_blas_ab.sh: no $l" >&2; exit 2; }; done

# --- build (outside the CMake build tree)
out=$root/build/gemm_blas_ab
exe=$out/gemm_blas_ab
src=$root/perf/gemm_blas_ab.cpp
mkdir -p "$out"
if [ ! -x "$exe" ] || [ "$src" -nt "$exe" ]; then
  echo "== building $exe"
  g++ -std=c++17 -O2 -Wall -Wextra -o "$exe" "$src" -ldl
fi

# --- what each library picks by itself on this CPU (BLIS 0.9.0 does not know AMD family 0x1A, Zen 5, and
# falls back to its generic C kernels)
echo "== detection: each library without OPENBLAS_CORETYPE / BLIS_ARCH_TYPE"
env -u OPENBLAS_CORETYPE "$exe" --probe "$lib_a" | grep -E "corename|arch_query" || true
env -u BLIS_ARCH_TYPE "$exe" --probe "$lib_b" | grep -E "corename|arch_query" || true

# --- environment: 2 threads for both libraries, and what wavres sets where the caller did not
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$OMP_NUM_THREADS} BLIS_NUM_THREADS=${BLIS_NUM_THREADS:-$OMP_NUM_THREADS}
if [ -z "${OMP_PROC_BIND:-}" ]; then
  if [ -n "${OMP_PLACES:-}${GOMP_CPU_AFFINITY:-}" ]; then export OMP_PROC_BIND=true; else export OMP_PROC_BIND=false; fi
fi
if [ -z "${OMP_WAIT_POLICY:-}" ] && [ -z "${GOMP_SPINCOUNT:-}" ]; then export OMP_WAIT_POLICY=passive; fi
export GLIBC_TUNABLES=${GLIBC_TUNABLES:-glibc.malloc.hugetlb=1}
# Kernels: each library at its best on an AVX-512 CPU, whatever the shell inherited (an inherited
# OPENBLAS_CORETYPE=Haswell would compare AVX2 OpenBLAS kernels): OpenBLAS's SkylakeX (what wavres sets when
# OPENBLAS_CORETYPE is unset) and BLIS's skx. GEMM_AB_OPENBLAS_CORETYPE=keep keeps the inherited value;
# GEMM_AB_BLIS_ARCH=auto lets BLIS detect (generic kernels on Zen 5), =zen3 its AVX2 Zen configuration.
avx512=0
grep -qw avx512f /proc/cpuinfo && avx512=1
coretype=${GEMM_AB_OPENBLAS_CORETYPE:-$([ $avx512 = 1 ] && echo SkylakeX || echo keep)}
if [ "$coretype" != keep ]; then
  if [ -n "${OPENBLAS_CORETYPE:-}" ] && [ "$OPENBLAS_CORETYPE" != "$coretype" ]; then
    echo "note: inherited OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE replaced by $coretype (GEMM_AB_OPENBLAS_CORETYPE=keep keeps it)"
  fi
  export OPENBLAS_CORETYPE=$coretype
fi
blis_arch=${GEMM_AB_BLIS_ARCH:-$([ $avx512 = 1 ] && echo skx || echo auto)}

args=("$lib_a" "$lib_b" --names "$names")
has_threads=0
for a in "$@"; do [ "$a" = --threads ] && has_threads=1; done
[ $has_threads = 1 ] || args+=(--threads "$OMP_NUM_THREADS")
[ "$blis_arch" = auto ] || args+=(--blis-arch "$blis_arch")
# Optional competing load (issue 18's shared-machine case): GEMM_AB_BUSY=N busy loops on the machine while
# the tool runs, ended by their process ids when it stops.
busy=()
trap '[ ${#busy[@]} = 0 ] || kill "${busy[@]}" 2>/dev/null || true' EXIT
for _ in $(seq 1 "${GEMM_AB_BUSY:-0}"); do
  bash -c 'while :; do :; done' &
  busy+=($!)
done
[ ${#busy[@]} = 0 ] || echo "== ${#busy[@]} busy loop(s) running alongside (GEMM_AB_BUSY): pids ${busy[*]}"
echo "== $exe ${args[*]} $*"
"$exe" "${args[@]}" "$@"
