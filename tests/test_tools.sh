#!/bin/bash
# Tests of the tools: wavres-inspect (src/tools/inspect.cpp) and perf/plot_routing.py.
#
#   WAVRES_BUILD=/work/main/build/openmp WAVRES_SHARED_DATA=/work/shared/data tests/test_tools.sh
#
# Needs, already built in $WAVRES_BUILD: src/wavres-inspect and experiments/exp_{prenorm,full,block,wav}_l4_text8
#   cmake --build build/openmp --target wavres-inspect exp_prenorm_l4_text8 exp_full_l4_text8 \
#         exp_block_l4_text8 exp_wav_l4_text8
# and /usr/bin/python3 with h5py, numpy, matplotlib (Debian: python3-h5py python3-numpy python3-matplotlib).
# Makes one small dump per variant, checks inspect's text and CSV output against the dumps, its error handling,
# and that plot_routing.py draws a PNG. Last line: "test_tools: N passed, M failed"; exit status 1 on any failure.
# WAVRES_KEEP_TMP=1 keeps the scratch directory.
set -u

here=$(cd "$(dirname "$0")" && pwd)
src_root=$(cd "$here/.." && pwd)
BUILD=${WAVRES_BUILD:-$src_root/build/openmp}
DATA=${WAVRES_SHARED_DATA:-$src_root/../shared/data}
PY=/usr/bin/python3
INSPECT=$BUILD/src/wavres-inspect
PLOT=$src_root/perf/plot_routing.py
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMP_PROC_BIND=false OMP_WAIT_POLICY=passive

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
check() {  # check "description" command...
  local what=$1
  shift
  if "$@"; then ok "$what"; else bad "$what"; fi
}
finish() {
  echo "test_tools: $pass passed, $fail failed"
  [ "$fail" -eq 0 ]
  exit $?
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/test_tools.XXXXXX")
if [ "${WAVRES_KEEP_TMP:-0}" = 1 ]; then
  echo "scratch directory: $tmp"
else
  trap 'rm -rf "$tmp"' EXIT
fi

# ---------------------------------------------------------------------------------------------------------------
# prerequisites
if [ ! -x "$INSPECT" ]; then
  bad "wavres-inspect is not built ($INSPECT)"
  finish
fi
have_py=1
if ! "$PY" -c 'import h5py, numpy, matplotlib' 2>/dev/null; then
  bad "$PY lacks h5py/numpy/matplotlib (apt-get install python3-h5py python3-numpy python3-matplotlib)"
  have_py=0
fi

# ---------------------------------------------------------------------------------------------------------------
# dumps of all four variants: n_layer 4 -> L = 8 sublayers, 9 consumers; D 32, F 48, T 16, V 27 (text8)
declare -A variant_name=([prenorm]=prenorm [full]=full_attnres [block]=block_attnres [wav]=wav_v1)
# parameter totals: embed 27*32+16*32, attn 4*4*32*32, mlp 4*3*48*32, norms 9*32, head 27*32, routing 2*9*32 (+9*2)
declare -A want_total=([prenorm]=37,344 [full]=37,920 [block]=37,920 [wav]=37,938)
declare -A loss_of
for v in prenorm full block wav; do
  exe=$BUILD/experiments/exp_${v}_l4_text8
  if [ ! -x "$exe" ]; then
    bad "$v: $exe is not built"
    continue
  fi
  if out=$("$exe" dump --d-model 32 --heads 2 --d-ff 48 --seq-len 16 --batch 4 --routing-init normal:0.5 \
      --data-dir "$DATA" --out "$tmp/$v.h5" 2>&1) && [ -s "$tmp/$v.h5" ]; then
    ok "$v: dump"
    loss_of[$v]=$(sed -n 's/.*: loss \([0-9.]*\) on .*/\1/p' <<<"$out")
  else
    bad "$v: dump failed: $out"
  fi
done

# ---------------------------------------------------------------------------------------------------------------
# human-readable output
for v in prenorm full block wav; do
  f=$tmp/$v.h5
  [ -s "$f" ] || continue
  if ! "$INSPECT" "$f" >"$tmp/$v.txt" 2>"$tmp/$v.err"; then
    bad "$v: inspect exited non-zero: $(cat "$tmp/$v.err")"
    continue
  fi
  txt=$tmp/$v.txt
  check "$v: inspect prints nothing on stderr" test ! -s "$tmp/$v.err"
  check "$v: variant line" grep -Eq "^  variant +${variant_name[$v]}\$" "$txt"
  check "$v: format line" grep -Eq '^  format +wavres-dump' "$txt"
  check "$v: n_layer line" grep -Eq '^  n_layer +4 +\(L = 8 sublayers\)' "$txt"
  check "$v: d_model/d_ff/seq_len/vocab" bash -c "grep -Eq '^  d_model +32\$' '$txt' && grep -Eq '^  d_ff +48\$' '$txt' \
    && grep -Eq '^  seq_len +16\$' '$txt' && grep -Eq '^  vocab_size +27\$' '$txt' && grep -Eq '^  dataset +text8\$' '$txt'"
  check "$v: run metadata (command line of the dump)" grep -Eq "^  command_line .*exp_${v}_l4_text8 dump" "$txt"
  check "$v: dump loss equals the one the executable printed (${loss_of[$v]:-?})" \
    grep -Eq "^  loss +${loss_of[$v]:-none} nats" "$txt"
  check "$v: parameter total ${want_total[$v]}" grep -Eq "^  total +${want_total[$v]}\$" "$txt"
  if [ "$v" = prenorm ]; then
    check "$v: no routing group in parameters" bash -c "! grep -Eq '^  routing ' '$txt'"
    check "$v: says there is no learned routing" grep -q '^\[routing\]  none' "$txt"
  else
    check "$v: routing parameter group" grep -Eq '^  routing +[0-9,]+ ' "$txt"
    check "$v: entropy note (entropy of the mean weights)" grep -q 'entropy of the mean weights' "$txt"
    check "$v: routing table has 9 consumer rows" \
      test "$(grep -Ec '^  (l[1-8] (attn|mlp)|out) ' "$txt")" -eq 9
  fi
  case $v in
    wav)
      check "wav: table has phase/split columns and detail biases" \
        grep -Eq '^  consumer .* phase +split .* phase_bias +split_bias$' "$txt"
      check "wav: out row has 7 sources and biases" grep -Eq '^  out +7 .*-?[0-9]+\.[0-9]{4} +-?[0-9]+\.[0-9]{4}$' "$txt"
      ;;
    block)
      check "block: table has b0/blocks/partial and no phase" bash -c \
        "grep -Eq '^  consumer .* b0 +blocks +b1 +b2 +partial ' '$txt' && ! grep -q 'phase' '$txt'"
      ;;
    full)
      check "full: table has x0, y_sum and y1..y8" grep -Eq '^  consumer .* x0 +y_sum +y1 .* y8 ' "$txt"
      ;;
  esac
done

# ---------------------------------------------------------------------------------------------------------------
# CSV output
for v in prenorm full block wav; do
  f=$tmp/$v.h5
  [ -s "$f" ] || continue
  csv=$tmp/$v.csv
  if ! "$INSPECT" "$f" --csv >"$csv" 2>"$tmp/$v.csverr"; then
    bad "$v: inspect --csv exited non-zero: $(cat "$tmp/$v.csverr")"
    continue
  fi
  if [ "$v" = prenorm ]; then
    check "prenorm: CSV is the header only" test "$(cat "$csv")" = "consumer,kind,entropy"
    continue
  fi
  check "$v: CSV has a header and L+1 = 9 rows" test "$(wc -l <"$csv")" -eq 10
  check "$v: CSV consumers are l1..l8,out with kinds attn/mlp/out" test \
    "$(tail -n +2 "$csv" | cut -d, -f1,2 | tr '\n' ' ')" = \
    "l1,attn l2,mlp l3,attn l4,mlp l5,attn l6,mlp l7,attn l8,mlp out,out "
  nextra=1
  [ "$v" = wav ] && nextra=3
  # every row: weights sum to 1, entropy = -sum a ln a, all rows have the same number of fields
  check "$v: each CSV row's weights sum to 1 (1e-4) and its entropy is -sum a ln a (1e-5)" \
    awk -F, -v nextra="$nextra" '
      NR == 1 { nf = NF; if ($1 != "consumer" || $2 != "kind" || $(NF - nextra + 1) != "entropy") bad = 1; next }
      {
        if (NF != nf) { bad = 1; next }
        s = 0; h = 0; n = 0
        for (i = 3; i <= NF - nextra; i++) if ($i != "") { a = $i + 0; s += a; n++; if (a > 0) h -= a * log(a) }
        if (n == 0 || (s - 1 > 1e-4) || (1 - s > 1e-4)) { bad = 1; print "row " $1 ": sum " s > "/dev/stderr" }
        e = $(NF - nextra + 1) + 0
        if (e - h > 1e-5 || h - e > 1e-5) { bad = 1; print "row " $1 ": entropy " e " vs " h > "/dev/stderr" }
      }
      END { exit bad || NR != 10 }' "$csv"
  check "$v: first consumer has a single source (weight 1, entropy 0)" \
    awk -F, -v nextra="$nextra" 'NR == 2 { n = 0; for (i = 3; i <= NF - nextra; i++) if ($i != "") { n++; w = $i }
      exit !(n == 1 && w == 1 && $(NF - nextra + 1) == 0) }' "$csv"
  check "$v: CSV has full precision (>= 8 significant digits somewhere)" grep -Eq '0\.[0-9]{8}' "$csv"
  hdr=$(head -1 "$csv")
  case $v in
    wav)
      check "wav: CSV header has phase/split sources and bias columns" test \
        "$hdr" = "consumer,kind,b0,b1,phase1,split1,b2,phase2,split2,partial,entropy,phase_bias,split_bias"
      check "wav: detail biases are -2 (their init) on every consumer" \
        awk -F, 'NR > 1 && ($(NF-1) != -2 || $NF != -2) { bad = 1 } END { exit bad }' "$csv"
      check "wav: out row uses phase2/split2, l5 does not" awk -F, \
        '$1 == "out" && $9 != "" && $8 != "" { a = 1 } $1 == "l5" && $8 == "" && $9 == "" && $5 != "" { b = 1 }
         END { exit !(a && b) }' "$csv"
      ;;
    block)
      check "block: CSV header" test "$hdr" = "consumer,kind,b0,b1,b2,partial,entropy"
      ;;
    full)
      check "full: CSV header" test "$hdr" = "consumer,kind,x0,y1,y2,y3,y4,y5,y6,y7,y8,entropy"
      check "full: consumer l<k> has k sources" awk -F, \
        'NR > 1 { n = 0; for (i = 3; i < NF; i++) if ($i != "") n++; if (n != NR - 1) bad = 1 } END { exit bad }' "$csv"
      ;;
  esac
  # the CSV agrees with /routing/alpha_mean as h5py reads it
  if [ "$have_py" = 1 ]; then
    check "$v: CSV weights equal /routing/alpha_mean (h5py)" "$PY" - "$f" "$csv" <<'EOF'
import csv, sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
a = f["/routing/alpha_mean"][()]
lab = f["/routing/source_labels"].asstr()[()]
rows = list(csv.DictReader(open(sys.argv[2])))
assert len(rows) == a.shape[0], (len(rows), a.shape)
for r, row in enumerate(rows):
    for j in range(a.shape[1]):
        if lab[r, j]:
            assert np.float32(row[lab[r, j]]) == a[r, j], (r, j, row[lab[r, j]], a[r, j])
        else:
            assert np.isnan(a[r, j])
    assert sum(1 for k, x in row.items() if x != "" and k not in ("consumer", "kind", "entropy", "phase_bias", "split_bias")) \
        == sum(1 for s in lab[r] if s)
EOF
  fi
done

# ---------------------------------------------------------------------------------------------------------------
# errors: exit 1 and exactly one line on stderr naming the file; nothing on stdout
expect_error() {  # expect_error description file [args...]
  local what=$1 file=$2
  shift 2
  "$INSPECT" "$file" "$@" >"$tmp/err.out" 2>"$tmp/err.err"
  local rc=$?
  local lines
  lines=$(wc -l <"$tmp/err.err")
  if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && grep -qF "wavres-inspect: $file: " "$tmp/err.err" && [ ! -s "$tmp/err.out" ]; then
    ok "$what -> exit 1, '$(cat "$tmp/err.err")'"
  else
    bad "$what: rc $rc, $lines stderr line(s): $(cat "$tmp/err.err"), stdout $(wc -c <"$tmp/err.out") bytes"
  fi
}
head -c 4096 /dev/urandom >"$tmp/random.bin"
expect_error "random bytes" "$tmp/random.bin"
expect_error "random bytes, --csv" "$tmp/random.bin" --csv
expect_error "missing file" "$tmp/does-not-exist.h5"
expect_error "a directory" "$tmp"
if [ -s "$tmp/wav.h5" ]; then
  head -c 2000 "$tmp/wav.h5" >"$tmp/truncated.h5"
  expect_error "truncated dump" "$tmp/truncated.h5"
fi
if [ "$have_py" = 1 ]; then
  "$PY" - "$tmp/plain.h5" "$tmp/otherformat.h5" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "w") as f:
    f["x"] = [1.0, 2.0]
    f.create_group("config").attrs["variant"] = "wav_v1"   # /config but no format
with h5py.File(sys.argv[2], "w") as f:
    f.create_group("config").attrs["format"] = "something-else"
EOF
  expect_error "non-wavres HDF5 (no /config format)" "$tmp/plain.h5"
  expect_error "HDF5 with another /config format" "$tmp/otherformat.h5" --csv
  check "non-wavres HDF5: message says it is not a wavres file" grep -q 'not a wavres checkpoint or dump' "$tmp/err.err"
fi

# usage: exit 2
"$INSPECT" >/dev/null 2>&1
check "no arguments -> exit 2" test $? -eq 2
"$INSPECT" --bogus "$tmp/wav.h5" >/dev/null 2>&1
check "unknown option -> exit 2" test $? -eq 2
"$INSPECT" "$tmp/wav.h5" "$tmp/block.h5" >/dev/null 2>&1
check "two files -> exit 2" test $? -eq 2
"$INSPECT" --help >"$tmp/help.txt" 2>&1
check "--help -> exit 0 with usage" grep -q '^usage: wavres-inspect CKPT \[--csv\]' "$tmp/help.txt"

# ---------------------------------------------------------------------------------------------------------------
# plot_routing.py
is_png() { [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }
if [ "$have_py" = 1 ] && [ -s "$tmp/wav.h5" ]; then
  if "$PY" "$PLOT" "$tmp/wav.h5" -o "$tmp/wav.png" >"$tmp/plot.log" 2>&1; then
    check "plot_routing.py: heatmap of the wav dump is a non-empty PNG ($(wc -c <"$tmp/wav.png") bytes)" is_png "$tmp/wav.png"
  else
    bad "plot_routing.py heatmap failed: $(cat "$tmp/plot.log")"
  fi
  if [ -s "$tmp/full.h5" ]; then
    "$PY" "$PLOT" "$tmp/full.h5" -o "$tmp/full.png" >"$tmp/plot.log" 2>&1
    check "plot_routing.py: heatmap of the full dump" is_png "$tmp/full.png"
  fi
  if [ -s "$tmp/prenorm.h5" ]; then
    "$PY" "$PLOT" "$tmp/prenorm.h5" -o "$tmp/prenorm.png" >"$tmp/plot.log" 2>&1
    check "plot_routing.py: prenorm (no routing) -> exit 1, no PNG" \
      bash -c "[ $? -eq 1 ] && [ ! -e '$tmp/prenorm.png' ] && grep -q prenorm.h5 '$tmp/plot.log'"
  fi
  # loss curves from two synthetic run directories (val_loss empty on most rows, one duplicated step)
  mkdir -p "$tmp/run_a" "$tmp/run_b"
  "$PY" - "$tmp/run_a/log.csv" "$tmp/run_b/log.csv" <<'EOF'
import math, sys
for k, path in enumerate(sys.argv[1:]):
    with open(path, "w") as f:
        f.write("step,tokens,train_loss,val_loss,lr,tokens_per_s,grad_norm\n")
        for s in list(range(1, 201)) + [200]:
            tr = 1.3 + 2.0 * math.exp(-s / 40.0) + 0.05 * math.sin(s) + 0.05 * k
            val = "%.6f" % (tr - 0.02) if s % 25 == 0 else ""
            f.write("%d,%d,%.6f,%s,0.001,30000.0,0.5\n" % (s, 256 * s, tr, val))
EOF
  if "$PY" "$PLOT" --curves "$tmp/run_a" "$tmp/run_b" -o "$tmp/curves.png" >"$tmp/plot.log" 2>&1; then
    check "plot_routing.py --curves: non-empty PNG" is_png "$tmp/curves.png"
  else
    bad "plot_routing.py --curves failed: $(cat "$tmp/plot.log")"
  fi
  "$PY" "$PLOT" --curves "$tmp/no-such-run" -o "$tmp/none.png" >"$tmp/plot.log" 2>&1
  check "plot_routing.py --curves on a directory without log.csv -> exit 1" test $? -eq 1
  "$PY" "$PLOT" "$tmp/wav.h5" >/dev/null 2>&1
  check "plot_routing.py without -o -> exit 2" test $? -eq 2
fi

finish
