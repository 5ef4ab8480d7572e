#!/usr/bin/env bash
# Generation speed at batch 1: the KV cache against re-encoding the whole window for every token (--no-cache),
# for each experiment executable given (default: PreNorm and WAV v1 at 12 and 48 layers), at the benchmark
# width (d_model 256, 4 heads, d_ff 704, T 256). The parameters are those of a 1-step checkpoint: speed does
# not depend on what the model has learned. Prints a Markdown table.
#   perf/sample_speed.sh [build/openmp/experiments/exp_prenorm_l12_text8 ...]
# Columns: 255 tokens after a 1-byte prompt with the cache (inside the window: no slide); 64 tokens with
# --no-cache (every token re-encodes its window: one full B = 1 forward over T rows, whatever the context
# length, so 64 tokens measure the same per-token cost as 255); 512 tokens with the cache and --keep 128 (a
# re-encode every 128 tokens past T). Past T with the default keep (T−1) every token re-encodes, i.e. costs
# what --no-cache costs. Each cell: tokens/s in wall time (`sample`'s own line: generation only), and CPU ms
# per token: the process's user+sys time minus that of the same command generating 1 token (start-up,
# checkpoint loading), over the other tokens. A machine shared with other jobs inflates CPU time much less
# than wall time, so the speed-up is the ratio of CPU times.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data=${WAVRES_SHARED_DATA:-$root/../shared/data}
exes=("$@")
[ ${#exes[@]} -gt 0 ] || exes=("$root"/build/openmp/experiments/exp_{prenorm,wav}_l{12,48}_text8)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
W=$(mktemp -d /tmp/wavres_sample_speed.XXXXXX)
trap 'rm -rf "$W"' EXIT
WIDTH="--d-model 256 --heads 4 --d-ff 704 --seq-len 256"
# run N ARGS...: prints "tokens/s cpu_seconds"
run() {
  local n=$1; shift
  /usr/bin/time -f "%U %S" -o "$W/cpu" "$@" --tokens "$n" 2>"$W/err" >/dev/null || { cat "$W/err" >&2; exit 1; }
  local r; r=$(sed -n 's/.* s: \([0-9.]*\) tokens\/s.*/\1/p' "$W/err")
  awk -v r="$r" '{ printf "%s %.3f\n", r, $1 + $2 }' "$W/cpu"
}
ms() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", 1000 * (a - b) / (n - 1) }'; }
echo "| executable | cache, 255 tokens | no cache, 64 tokens | speed-up (CPU) | cache, 512 tokens, --keep 128 |"
echo "|---|---|---|---|---|"
for exe in "${exes[@]}"; do
  name=$(basename "$exe")
  "$exe" train $WIDTH --batch 1 --steps 1 --eval-batches 1 --checkpoint-every 0 --data-dir "$data" --quiet \
    --out "$W/$name" >"$W/train.log" 2>&1 || { cat "$W/train.log" >&2; exit 1; }
  s=("$exe" sample --checkpoint "$W/$name/ckpt_00000001.h5" --seed 1)
  read -r _ base < <(run 1 "${s[@]}")
  read -r c cs < <(run 255 "${s[@]}")
  read -r n ns < <(run 64 "${s[@]}" --no-cache)
  read -r k ks < <(run 512 "${s[@]}" --keep 128)
  cm=$(ms "$cs" "$base" 255) nm=$(ms "$ns" "$base" 64) km=$(ms "$ks" "$base" 512)
  echo "| $name | $c tokens/s ($cm ms) | $n tokens/s ($nm ms) | $(awk -v a="$nm" -v b="$cm" 'BEGIN { printf "%.1fx", a / b }') | $k tokens/s ($km ms) |"
done
