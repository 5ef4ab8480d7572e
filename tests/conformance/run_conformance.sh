#!/usr/bin/env bash
# Conformance of one experiment executable with the spec: a dump at a small width with random pseudo-queries
# (so the mixer's key path carries gradient), checked against autograd of an independent PyTorch
# implementation of routing-spec.md (check_dump.py): loss to 1e-5 relative, every gradient to 1e-3.
#   run_conformance.sh EXECUTABLE WORKDIR
set -euo pipefail
exe=$1 work=$2
mkdir -p "$work"
out="$work/$(basename "$exe").dump.h5"
"$exe" dump --d-model 32 --heads 2 --d-ff 48 --seq-len 16 --batch 4 --seed 5 --routing-init normal:0.5 \
  --data-dir "${WAVRES_SHARED_DATA:?}" --out "$out"
exec /usr/bin/python3 "$(dirname "$0")/check_dump.py" "$out" --loss-rtol 1e-5 --grad-rtol 1e-3
