#!/usr/bin/env bash
# Step time against depth (12/24/48 at T 256) and sequence length (128/256/512 at 12 layers) for every variant,
# d_model 256, 4 heads, d_ff 704, batch 16, median of 3 timed steps after 1 warm-up. Prints a Markdown table.
#   perf/scaling.sh [BUILD_DIR] > perf/results/<date>_scaling.md
set -euo pipefail
build=${1:-build/openmp}
row() {  # variant layers T
  "$build/perf/bench_$1_l$2" --json --no-profile --timed 3 --warmup 1 --seq-len "$3" | tail -n 1
}
echo "| variant | layers | T | step (s) | tokens/s | GFLOP/s | step vs PreNorm | peak RSS (MiB) |"
echo "|---|---|---|---|---|---|---|---|"
for cfg in "12 128" "12 256" "12 512" "24 256" "48 256"; do
  set -- $cfg
  base=""
  for v in prenorm full block wav; do
    j=$(row $v "$1" "$2")
    python3 - "$j" "$base" <<'PY'
import json, sys
j = json.loads(sys.argv[1]); base = float(sys.argv[2]) if sys.argv[2] else j["median_step_s"]
print(f"| {j['variant']} | {j['n_layer']} | {j['seq_len']} | {j['median_step_s']:.3f} | {j['tokens_per_s']:.0f} | "
      f"{j['gflops']:.0f} | {100 * (j['median_step_s'] / base - 1):+.1f} % | {j['peak_rss_mib']:.0f} |")
PY
    [ -n "$base" ] || base=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['median_step_s'])" "$j")
  done
done
