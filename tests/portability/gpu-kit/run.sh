#!/usr/bin/env bash
# The wavres GPU kit's one command, for a bare GPU machine (built here by `cmake/wavres.sh gpu-kit`):
#
#   bash gpu-kit/run.sh [--out DIR] [--budget SECONDS] [--build-there] [--rehearsal]
#
# Runs, each step under its own timeout and all of them inside --budget (default 450 s, so the whole call
# ends within 8 minutes), in this order of priority:
#   1. the machine: nvidia-smi (GPU, driver, clocks), CPU, toolkit, torch; every binary's libraries (ldd)
#   2. correctness: test_backends (CUDA against Kokkos::Serial, every variant, float and double); the four
#      variants' CUDA dumps at two shapes against the OpenMP reference dumps (wavres-compare, worst relative
#      error per tensor); test_routing_identities and test_model_gradcheck on CUDA (last: they are slow)
#   3. speed: bench_<variant>_l12 at the benchmark shape and bench_<variant>_l48 at the paper preset's width
#      (step time, tokens/s, device memory, the ten most expensive kernels), and perf/torch_baseline.py with the
#      machine's torch on the same model and shapes (eager at both; torch.compile at 48 layers); WAV v1 at 48
#      layers once more with TF32 tensor-core gemms (--gemm-precision tf32)
#   4. a 90-second training of exp_wav_l48_text8 at the paper preset's width, with its loss curve
#   5. summary.md: every figure and every failure
# Steps that no longer fit the budget are reported as skipped, not run. Results go to $OUT (or --out; default
# gpu-kit/results), at most 8 files: summary.md, results.json, machine.txt, train_log.csv, train_loss.png and
# logs.tar.gz (every step's full output).
#
# --build-there: build the CUDA executables on this machine from fallback/ (sources, Kokkos CUDA prefix, .debs)
#   instead of using bin/; done automatically when bin/'s executables do not load here.
# --rehearsal: on a machine without a GPU (CI), the GPU steps say "no GPU" at once, and everything that needs
#   none runs: the layout, ldd, the dump comparison on the reference dumps, the PyTorch baseline on the CPU.
#   Exit status 1 if any of those failed. Without --rehearsal, the exit status is 1 if any step failed.
set -uo pipefail
kit=$(cd "$(dirname "$0")" && pwd)
out=${OUT:-$kit/results}
budget=450 build_there=0 rehearsal=0
while (($#)); do
  case $1 in
    --out) out=$2; shift 2 ;;
    --budget) budget=$2; shift 2 ;;
    --build-there) build_there=1; shift ;;
    --rehearsal) rehearsal=1; shift ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $budget =~ ^[0-9]+$ ]] || { echo "run.sh: --budget expects seconds, got '$budget'" >&2; exit 2; }
t_start=$(date +%s)
mkdir -p "$out" || { echo "run.sh: cannot create $out" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/wavres-gpu-kit.XXXXXX")
logs=$work/logs
mkdir -p "$logs"
steps=$logs/steps.tsv  # name, status, seconds, note: what summarize.py reads
: >"$steps"
source "$kit/shapes.sh"
# The executables and their libraries travel packed (bin.tar.xz: ~10 MiB instead of ~40): unpack them here.
mkdir -p "$work/kit"
tar -C "$work/kit" -xJf "$kit/bin.tar.xz" || { echo "run.sh: cannot unpack $kit/bin.tar.xz" >&2; exit 2; }
bin=$work/kit/bin
compare=$work/kit/bin/wavres-compare
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} OMP_PROC_BIND=${OMP_PROC_BIND:-false}
export PYTHONUNBUFFERED=1

left() { echo $((budget - ($(date +%s) - t_start))); }
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$steps"; }
# step NAME CAP CMD...: run CMD under min(CAP, what is left of the budget less 20 s for the summary)
step() {
  local name=$1 cap=$2; shift 2
  local l t rc t0 t1
  l=$(left)
  t=$((cap < l - 20 ? cap : l - 20))
  if ((t < 5)); then record "$name" skipped 0 "out of time (budget ${budget} s)"; echo "-- $name: skipped (out of time)"; return 3; fi
  t0=$(date +%s.%N)
  if declare -F "$1" >/dev/null; then "$@" >"$logs/$name.log" 2>&1  # a check of run.sh's own: no timeout
  else timeout -k 5 "$t" "$@" >"$logs/$name.log" 2>&1
  fi
  rc=$?
  t1=$(date +%s.%N)
  local secs
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
  if ((rc == 0)); then record "$name" ok "$secs" ""
  elif ((rc == 124 || rc == 137)); then record "$name" timeout "$secs" "stopped after ${t} s"
  else record "$name" failed "$secs" "exit $rc"
  fi
  echo "-- $name: $(tail -n1 "$steps" | cut -f2) (${secs} s)"
  return $rc
}
gpu_step() {  # a step that needs the GPU: recorded as "no GPU" at once where there is none
  if ((gpu)); then step "$@"; else record "$1" "no GPU" 0 "skipped: no GPU on this machine"; echo "-- $1: no GPU"; fi
}

# The Python that has torch and numpy: python3 on the GPU machine; WAVRES_PYTHON, or Debian's, elsewhere.
py=python3
for cand in ${WAVRES_PYTHON:-} python3 /usr/bin/python3; do
  if "$cand" -c 'import torch, numpy' >/dev/null 2>&1; then py=$cand; break; fi
done

# ---- 1. the machine -------------------------------------------------------------------------------------------
gpu=0
if command -v nvidia-smi >/dev/null && [[ $(nvidia-smi -L 2>/dev/null) == *GPU* ]]; then gpu=1; fi
((rehearsal)) && gpu=0
# cuBLAS (and cudart if dynamic) come from the machine's CUDA toolkit or from PyTorch's wheels.
cublas_dirs=$( (ls -d /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib 2>/dev/null;
  timeout 20 find /usr/local /opt /usr/lib -maxdepth 8 -name 'libcublas.so.1[0-9]*' -printf '%h\n' 2>/dev/null) |
  awk '!seen[$0]++' | paste -sd:)
export LD_LIBRARY_PATH=$work/kit/lib${cublas_dirs:+:$cublas_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
{
  echo "date: $(date -u +%FT%TZ)"
  echo "kit: $(sed -n 2p "$kit/MANIFEST" 2>/dev/null)"
  echo "host: $(uname -srm), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "os: $( (. /etc/os-release && echo "$PRETTY_NAME") 2>/dev/null), glibc $(ldd --version 2>/dev/null | head -1 | awk '{print $NF}')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
  echo "nvcc: $( (nvcc --version || /usr/local/cuda/bin/nvcc --version) 2>/dev/null | tail -1)"
  echo "cmake: $(cmake --version 2>/dev/null | head -1); ninja: $(ninja --version 2>/dev/null)"
  echo "python: $py: $("$py" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -1)"
  echo "cublas dirs: ${cublas_dirs:-none found}"
  if ((gpu)); then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.limit,temperature.gpu --format=csv
    nvidia-smi -q -d CLOCK,PERFORMANCE 2>&1 | sed -n '1,60p'
  else
    echo "gpu: none (${rehearsal:+rehearsal; }nvidia-smi: $(command -v nvidia-smi || echo absent))"
  fi
} >"$out/machine.txt" 2>&1
record machine ok 0 "$(grep -m1 -E '^(NVIDIA|gpu:)|H[0-9]+' "$out/machine.txt" | head -c 120)"

# Layout and libraries: every expected file is there, every binary resolves every library but the driver's.
check_layout() {
  local bad=0 f
  for f in run.sh summarize.py shapes.sh build-there.sh MANIFEST bin.tar.xz data/text8/text8-prefix \
    perf/torch_baseline.py perf/wavres_torch.py fallback/wavres-src.tar.gz fallback/kokkos-cuda.tar.xz; do
    [ -e "$kit/$f" ] || { echo "missing: $f"; bad=1; }
  done
  for v in prenorm full block wav; do
    for f in ref/${v}_small.h5 ref/${v}_wide.h5; do [ -e "$kit/$f" ] || { echo "missing: $f"; bad=1; }; done
    for f in exp_${v}_l4_text8 bench_${v}_l12 bench_${v}_l48; do
      [ -x "$bin/$f" ] || { echo "missing: bin/$f"; bad=1; }
    done
  done
  for f in test_backends test_model_gradcheck test_routing_identities exp_wav_l48_text8 wavres-compare; do
    [ -x "$bin/$f" ] || { echo "missing: bin/$f"; bad=1; }
  done
  for f in libhdf5_serial.so.103 libcudart.so.13; do
    [ -e "$work/kit/lib/$f" ] || { echo "missing: lib/$f"; bad=1; }
  done
  ls "$kit"/fallback/debs/*.deb >/dev/null 2>&1 || { echo "missing: fallback/debs/*.deb"; bad=1; }
  ((bad)) || echo "layout complete: $(ls "$bin" | wc -l) executables, $(ls "$work/kit/lib" | wc -l) libraries"
  return $bad
}
check_ldd() {  # $1: directory of executables
  local bad=0 f m
  local deps
  for f in "$1"/*; do
    deps=$(ldd "$f" 2>&1)  # (not piped into grep -q: its early exit would fail the pipeline under pipefail)
    # every executable but the host tool is a CUDA one: it must load the CUDA runtime
    if [ "$(basename "$f")" != wavres-compare ] && ! grep -q 'libcudart\.so' <<<"$deps"; then
      echo "$(basename "$f"): does not load libcudart (not a CUDA build?)"; bad=1
    fi
    m=$(grep 'not found' <<<"$deps" | awk '{print $1}' | paste -sd' ')
    if ((gpu)); then [ -z "$m" ] || { echo "$(basename "$f"): missing $m"; bad=1; }
    else
      m=$(tr ' ' '\n' <<<"$m" | grep -v '^libcuda\.so\.1$' | paste -sd' ')
      [ -z "$m" ] || { echo "$(basename "$f"): missing $m"; bad=1; }
    fi
  done
  ((bad)) || echo "every executable in $1 resolves every library$( ((gpu)) || echo ' but the driver (libcuda.so.1)')"
  return $bad
}
step layout 10 check_layout
step ldd 30 check_ldd "$bin"
ldd_ok=$?
if ((build_there || (ldd_ok != 0 && gpu))); then
  step build_there 300 bash "$kit/build-there.sh" "$work/build" "$work/kit" && bin=$work/build/bin
fi

# ---- 2. correctness -------------------------------------------------------------------------------------------
gpu_step test_backends 120 "$bin/test_backends" --log_level=message
for v in prenorm full block wav; do
  for shape in small wide; do
    declare -n opts=dump_$shape
    if ((gpu)); then
      gpu_step "dump_${v}_${shape}" 40 "$bin/exp_${v}_l4_text8" "${opts[@]}" --data-dir "$kit/data" \
        --out "$work/${v}_${shape}.h5" &&
        step "compare_${v}_${shape}" 20 "$compare" "$work/${v}_${shape}.h5" "$kit/ref/${v}_${shape}.h5" \
          --rtol 1e-4 --atol 1e-6
    else  # the tool and the reference dumps, without a GPU: each reference against itself must agree exactly
      step "compare_${v}_${shape}" 20 "$compare" "$kit/ref/${v}_${shape}.h5" "$kit/ref/${v}_${shape}.h5" \
        --rtol 0 --atol 0
    fi
    unset -n opts
  done
done

# ---- 3. speed -------------------------------------------------------------------------------------------------
declare -A tname=([prenorm]=prenorm [full]=full_attnres [block]=block_attnres [wav]=wav_v1)
torch_py=$kit/perf/torch_baseline.py
for v in prenorm full block wav; do
  gpu_step "bench_${v}_l12" 60 "$bin/bench_${v}_l12" --timed 10 --warmup 3 --json --top 10 "${bench_shape[@]}"
done
for v in prenorm full block wav; do
  gpu_step "torch_eager_${v}_l12" 60 "$py" "$torch_py" --variant "${tname[$v]}" --n-layer 12 "${bench_shape[@]}" \
    --device cuda --steps 10 --warmup-steps 3 --json
done
if ((!gpu)); then  # the baseline script itself, on the CPU, at a tiny size
  step torch_cpu_rehearsal 120 "$py" "$torch_py" --variant wav_v1 --n-layer 4 --d-model 64 --heads 4 --d-ff 176 \
    --seq-len 64 --batch 4 --steps 2 --warmup-steps 1 --threads 2 --json
fi
for v in prenorm full block wav; do
  gpu_step "bench_${v}_l48" 75 "$bin/bench_${v}_l48" --timed 3 --warmup 1 --json --top 10 "${paper_shape[@]}"
done

# ---- 4. training ----------------------------------------------------------------------------------------------
gpu_step train_wav_l48 150 "$bin/exp_wav_l48_text8" train "${paper_shape[@]}" --steps 1000000 --max-minutes 1.5 \
  --lr 1e-3 --eval-every 20 --eval-batches 4 --checkpoint-every 1000000 --data-dir "$kit/data" --out "$work/train"
[ -f "$work/train/log.csv" ] && cp "$work/train/log.csv" "$out/train_log.csv"

# ---- what fits after: torch at 48 layers, the slower CUDA tests ------------------------------------------------
for v in prenorm wav; do
  gpu_step "torch_eager_${v}_l48" 90 "$py" "$torch_py" --variant "${tname[$v]}" --n-layer 48 "${paper_shape[@]}" \
    --device cuda --steps 3 --warmup-steps 1 --json
  gpu_step "torch_compile_${v}_l48" 150 "$py" "$torch_py" --variant "${tname[$v]}" --n-layer 48 "${paper_shape[@]}" \
    --device cuda --compile --steps 3 --warmup-steps 2 --json
done
gpu_step bench_wav_l48_tf32 75 "$bin/bench_wav_l48" --timed 3 --warmup 1 --json --top 10 "${paper_shape[@]}" \
  --gemm-precision tf32
gpu_step test_routing_identities 60 "$bin/test_routing_identities" --log_level=message
gpu_step test_model_gradcheck 90 "$bin/test_model_gradcheck" --log_level=message

# ---- 5. summary -----------------------------------------------------------------------------------------------
python3 "$kit/summarize.py" --logs "$logs" --out "$out" --budget "$budget" --elapsed "$(($(date +%s) - t_start))" \
  $( ((rehearsal)) && echo --rehearsal) || echo "run.sh: summarize.py failed" >&2
tar -C "$work" -czf "$out/logs.tar.gz" logs
rm -rf "$work"
echo "run.sh: $(($(date +%s) - t_start)) s; results in $out (summary.md)"
if awk -F'\t' '$2 == "failed" || $2 == "timeout" {bad = 1} END {exit !bad}' <(tar -xzOf "$out/logs.tar.gz" logs/steps.tsv); then
  exit 1
fi
exit 0
