#!/usr/bin/env bash
# Tests of wavres-compare (src/tools/compare.cpp) and tests/portability/compare_backends.sh.
#
#   WAVRES_BUILD=build/openmp WAVRES_SHARED_DATA=/work/shared/data tests/test_compare.sh
#
# Needs in $WAVRES_BUILD: src/wavres-compare and experiments/exp_<v>_l4_text8{,_serial} for v in prenorm full
# block wav; /usr/bin/python3 with h5py and numpy (apt-get install -y python3-h5py).
#  (a) each variant: OpenMP vs Kokkos::Serial dumps agree (compare_backends.sh, rtol 1e-4, atol 1e-6)
#  (b) a dump compared with itself passes with zero error everywhere
#  (c) dumps with different --seed fail (exit 1)
#  (d) one gradient element scaled by 1.01 fails, naming that tensor and only it
#  (e) a dump vs a checkpoint of another variant exits 1 naming 'variant'
#  (f) a file of random bytes exits 2 with one line "wavres-compare: <file>: <what>"
#  (g) usage errors and a missing file exit 2
#  (h) a tensor missing from one file exits 1 naming it
# Last line: "test_compare: N passed, M failed"; exit status 1 if any failed.
set -u

build=${WAVRES_BUILD:-/work/main/build/openmp}
data=${WAVRES_SHARED_DATA:-/work/shared/data}
here=$(cd "$(dirname "$0")" && pwd)
compare=$build/src/wavres-compare
exp=$build/experiments
backends=$here/portability/compare_backends.sh
py=/usr/bin/python3

work=$(mktemp -d "${TMPDIR:-/tmp}/test_compare.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT

passed=0 failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() {
  echo "FAIL $1: $2"
  if [[ -n ${3:-} && -f $3 ]]; then sed 's/^/    | /' "$3" | tail -n 25; fi
  failed=$((failed + 1))
}

finish() {
  echo "test_compare: $passed passed, $failed failed"
  [[ $failed -eq 0 ]]
  exit $?
}

for f in "$compare" "$backends"; do
  if [[ ! -x $f ]]; then fail setup "$f is missing or not executable"; finish; fi
done

dump_opts=(--d-model 32 --heads 2 --d-ff 48 --seq-len 16 --batch 4 --routing-init normal:0.5 --data-dir "$data")
# make_dump EXE SEED OUT
make_dump() { "$1" dump "${dump_opts[@]}" --seed "$2" --out "$3" >"$3.log" 2>&1; }

# worst relative error of a wavres-compare output, with its tensor
worst_rel() {
  awk '($1=="OK"||$1=="FAIL") { for (i = 1; i < NF; i++) if ($i == "rel" && $(i+1) != "-") {
         if (!seen || $(i+1) + 0 > best + 0) { best = $(i+1); where = $2; seen = 1 } } }
       END { if (seen) print best " (" where ")"; else print "n/a" }' "$1"
}

# (a) backends --------------------------------------------------------------------------------------------------
for v in prenorm full block wav; do
  a=$exp/exp_${v}_l4_text8 b=$exp/exp_${v}_l4_text8_serial log=$work/backends_$v.log
  if [[ ! -x $a || ! -x $b ]]; then
    fail "backends $v" "missing executable $a or $b"
    continue
  fi
  "$backends" "$a" "$b" --data-dir "$data" --compare "$compare" --workdir "$work/backends_$v" >"$log" 2>&1
  rc=$?
  if [[ $rc -eq 0 ]] && grep -q '^A: backend OpenMP, B: backend Serial$' "$log" &&
     tail -n 1 "$log" | grep -Eq '^wavres-compare: [1-9][0-9]* passed, 0 failed$'; then
    pass "backends $v: OpenMP vs Serial, worst rel $(worst_rel "$log")"
  else
    fail "backends $v" "exit $rc" "$log"
  fi
done

# the reference dumps for the other cases (wav_v1: every kind of tensor, including NaN-padded alpha_mean)
wav=$exp/exp_wav_l4_text8 prenorm=$exp/exp_prenorm_l4_text8
d5=$work/wav_seed5.h5 d6=$work/wav_seed6.h5
if ! make_dump "$wav" 5 "$d5" || ! make_dump "$wav" 6 "$d6"; then
  fail "dumps" "cannot make the wav_v1 dumps" "$d5.log"
  finish
fi

# (b) self ------------------------------------------------------------------------------------------------------
log=$work/self.log
"$compare" "$d5" "$d5" >"$log" 2>&1
rc=$?
nonzero=$(awk '($1=="OK"||$1=="FAIL") { for (i = 1; i < NF; i++) if ($i == "max|a-b|" && $(i+1) != "-" && $(i+1) + 0 != 0) n++ }
               END { print n + 0 }' "$log")
if [[ $rc -eq 0 && $nonzero -eq 0 ]] && grep -q '^OK   /routing/alpha_mean ' "$log" &&
   tail -n 1 "$log" | grep -Eq '^wavres-compare: [1-9][0-9]* passed, 0 failed$'; then
  pass "self: zero error everywhere"
else
  fail "self" "exit $rc, $nonzero tensors with nonzero error" "$log"
fi

# (c) different seeds -------------------------------------------------------------------------------------------
log=$work/seeds.log
"$compare" "$d5" "$d6" >"$log" 2>&1
rc=$?
if [[ $rc -eq 1 ]] && grep -q '^FAIL /batch/tokens ' "$log" && grep -q '^FAIL /params/lm_head ' "$log" &&
   tail -n 1 "$log" | grep -Eq '^wavres-compare: [0-9]+ passed, [1-9][0-9]* failed$'; then
  pass "different seeds fail"
else
  fail "different seeds" "exit $rc (expected 1)" "$log"
fi

# (d) one gradient element x 1.01 -------------------------------------------------------------------------------
tensor=/grads/layers/1/mlp/w_up
bumped=$work/bumped.h5 log=$work/bumped.log
cp "$d5" "$bumped"
if ! "$py" - "$bumped" "$tensor" >"$log.py" 2>&1 <<'PY'
import sys
import h5py
import numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    d = f[sys.argv[2]]
    g = d[()]
    i = np.unravel_index(np.argmax(np.abs(g)), g.shape)
    g[i] *= np.float32(1.01)
    d[...] = g
PY
then
  fail "scaled gradient element" "h5py could not edit the copy (apt-get install -y python3-h5py)" "$log.py"
else
  "$compare" "$bumped" "$d5" >"$log" 2>&1
  rc=$?
  if [[ $rc -eq 1 ]] && grep -q "^FAIL $tensor " "$log" && [[ $(grep -c '^FAIL' "$log") -eq 1 ]] &&
     tail -n 1 "$log" | grep -Eq '^wavres-compare: [1-9][0-9]* passed, 1 failed$'; then
    pass "one gradient element x1.01 fails naming $tensor"
  else
    fail "scaled gradient element" "exit $rc (expected 1, one FAIL naming $tensor)" "$log"
  fi
fi

# (e) dump vs checkpoint of another variant ---------------------------------------------------------------------
log=$work/variant.log
ck=$work/ckpt_prenorm
if ! "$prenorm" train "${dump_opts[@]}" --seed 5 --steps 1 --eval-batches 1 --quiet --out "$ck" >"$log.train" 2>&1 ||
   [[ ! -f $ck/ckpt_00000001.h5 ]]; then
  fail "variant" "cannot train a one-step prenorm checkpoint" "$log.train"
else
  "$compare" "$d5" "$ck/ckpt_00000001.h5" >"$log" 2>&1
  rc=$?
  if [[ $rc -eq 1 ]] && grep -q 'variant' "$log" && ! grep -q '^OK ' "$log"; then
    pass "dump vs prenorm checkpoint: exit 1 naming variant"
  else
    fail "variant" "exit $rc (expected 1 naming variant)" "$log"
  fi
fi

# (f) random bytes ----------------------------------------------------------------------------------------------
junk=$work/junk.h5
head -c 65536 /dev/urandom >"$junk"
"$compare" "$d5" "$junk" >"$work/junk.out" 2>"$work/junk.err"
rc=$?
if [[ $rc -eq 2 && $(wc -l <"$work/junk.err") -eq 1 ]] && grep -q "^wavres-compare: $junk: " "$work/junk.err"; then
  pass "random bytes: exit 2, $(cat "$work/junk.err")"
else
  cat "$work/junk.out" "$work/junk.err" >"$work/junk.log"
  fail "random bytes" "exit $rc (expected 2 and one line naming the file)" "$work/junk.log"
fi

# (g) usage errors and missing files ----------------------------------------------------------------------------
ok=1
for args in "" "$d5" "$d5 $d5 --rtol" "$d5 $d5 --rtol -1" "$d5 $d5 --bogus" "$d5 $work/no_such_file.h5"; do
  # shellcheck disable=SC2086
  "$compare" $args >"$work/usage.out" 2>"$work/usage.err"
  rc=$?
  if [[ $rc -ne 2 || $(wc -l <"$work/usage.err") -ne 1 ]] || ! grep -q '^wavres-compare: ' "$work/usage.err"; then
    ok=0
    echo "    | args '$args': exit $rc: $(head -c 300 "$work/usage.err")"
  fi
done
if [[ $ok -eq 1 ]]; then pass "usage errors and a missing file exit 2"; else fail "usage" "see above"; fi

# (h) a tensor missing from one file ----------------------------------------------------------------------------
cut=$work/cut.h5 log=$work/cut.log
cp "$d5" "$cut"
if ! "$py" -c 'import sys, h5py; f = h5py.File(sys.argv[1], "r+"); del f["grads/routing/query"]; f.close()' "$cut" \
    >"$log.py" 2>&1; then
  fail "missing tensor" "h5py could not edit the copy" "$log.py"
else
  "$compare" "$d5" "$cut" >"$log" 2>&1
  rc=$?
  if [[ $rc -eq 1 ]] && grep -q '^FAIL /grads/routing/query .*missing in B' "$log"; then
    pass "missing tensor: exit 1 naming /grads/routing/query"
  else
    fail "missing tensor" "exit $rc (expected 1 naming /grads/routing/query)" "$log"
  fi
fi

finish
