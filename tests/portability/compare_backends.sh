#!/usr/bin/env bash
# Backend comparison: the same model built for two Kokkos backends must compute the same loss, gradients and
# routing weights up to float32 rounding.
#
#   compare_backends.sh EXE_A EXE_B [--data-dir DIR] [--compare PATH_TO_wavres-compare] [--workdir DIR]
#
# EXE_A and EXE_B are experiment executables of the same model built for different backends, e.g.
# build/openmp/experiments/exp_wav_l4_text8 (OpenMP) and exp_wav_l4_text8_serial (Kokkos::Serial), or the same
# target from an OpenMP and a CUDA build directory. Each writes a dump from the same seed and options; the two
# dumps are compared with wavres-compare --rtol 1e-4 --atol 1e-6 (B = EXE_B is the reference): float32 sums are
# reduced in a different order on each backend, so results agree to a few ulps of the tensor's scale, not bit for
# bit. The tolerances are normwise (|a-b| <= atol + rtol*max|b| per tensor), see src/tools/compare.cpp.
#
# Defaults: --data-dir $WAVRES_SHARED_DATA (else the executables' built-in default), --compare: wavres-compare
# next to the build (EXE_A/../../src/wavres-compare), else on PATH; --workdir: a temporary directory, removed
# on exit. Exit status: wavres-compare's (0 agree, 1 differ, 2 unreadable dump); 2 for usage errors or when a
# dump cannot be made.
set -uo pipefail

prog=compare_backends.sh
usage() { echo "usage: $prog EXE_A EXE_B [--data-dir DIR] [--compare PATH_TO_wavres-compare] [--workdir DIR]"; }
die() { echo "$prog: $*" >&2; exit 2; }

exes=() data_dir=${WAVRES_SHARED_DATA:-} compare='' workdir=''
while [[ $# -gt 0 ]]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --data-dir) [[ $# -ge 2 ]] || die "--data-dir needs a value"; data_dir=$2; shift 2 ;;
    --compare) [[ $# -ge 2 ]] || die "--compare needs a value"; compare=$2; shift 2 ;;
    --workdir) [[ $# -ge 2 ]] || die "--workdir needs a value"; workdir=$2; shift 2 ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) exes+=("$1"); shift ;;
  esac
done
[[ ${#exes[@]} -eq 2 ]] || { usage >&2; die "expected two executables, got ${#exes[@]}"; }
exe_a=${exes[0]} exe_b=${exes[1]}
for e in "$exe_a" "$exe_b"; do
  [[ -x $e && -f $e ]] || die "$e: not an executable file"
done

if [[ -z $compare ]]; then
  guess="$(cd "$(dirname "$exe_a")" && pwd)/../src/wavres-compare"
  if [[ -x $guess ]]; then compare=$guess
  else compare=$(command -v wavres-compare) || die "wavres-compare not found (pass --compare PATH)"
  fi
fi
[[ -x $compare ]] || die "$compare: not an executable file"

if [[ -z $workdir ]]; then
  workdir=$(mktemp -d "${TMPDIR:-/tmp}/compare_backends.XXXXXX") || die "cannot create a temporary directory"
  trap 'rm -rf "$workdir"' EXIT
else
  mkdir -p "$workdir" || die "$workdir: cannot create"
fi

dump_opts=(dump --d-model 32 --heads 2 --d-ff 48 --seq-len 16 --batch 4 --seed 5 --routing-init normal:0.5)
[[ -n $data_dir ]] && dump_opts+=(--data-dir "$data_dir")

out_a="$workdir/A.$(basename "$exe_a").h5"
out_b="$workdir/B.$(basename "$exe_b").h5"
[[ $out_a != "$out_b" ]] || die "internal: dump names collide"
echo "$prog: A = $exe_a"
echo "$prog: B = $exe_b"
"$exe_a" "${dump_opts[@]}" --out "$out_a" || die "$exe_a: dump failed (exit $?)"
"$exe_b" "${dump_opts[@]}" --out "$out_b" || die "$exe_b: dump failed (exit $?)"

"$compare" "$out_a" "$out_b" --rtol 1e-4 --atol 1e-6
status=$?
exit $status
