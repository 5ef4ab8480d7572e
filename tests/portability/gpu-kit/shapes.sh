# shellcheck shell=bash
# The shapes the GPU kit uses, sourced by cmake/gpu-kit.sh (reference dumps, OpenMP) and run.sh (CUDA), so that
# both sides dump the same model on the same batch.
# small: the shape of tests/portability/compare_backends.sh.
# wide: the production code paths of the device bodies: 32 x 160 = 5120 rows (> 4 x 1024 reduction chunks),
#       head dim 20 (not a multiple of 16), T = 160 (not a multiple of a 64-row query block; three key blocks).
dump_small=(dump --d-model 32 --heads 2 --d-ff 48 --seq-len 16 --batch 4 --seed 5 --routing-init normal:0.5)
dump_wide=(dump --d-model 80 --heads 4 --d-ff 224 --seq-len 160 --batch 32 --seed 7 --routing-init normal:0.5)
# the benchmark shape (bench_step's defaults, the README's CPU tables) and the paper preset's width
bench_shape=(--d-model 256 --heads 4 --d-ff 704 --seq-len 256 --batch 16)
paper_shape=(--d-model 512 --heads 8 --d-ff 1408 --seq-len 512 --batch 32)
