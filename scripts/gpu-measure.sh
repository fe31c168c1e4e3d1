#!/usr/bin/env bash
# The GPU figures the README and docs/PERFORMANCE.md quote, in one pass, for a machine with the
# driver and a Vulkan loader but no toolchain (bring a release binary): the conformance table,
# the plan benchmark with the fused kernel (and its profile of the reference plan) and, where the
# adapter offers cooperative matrices, with coop16 (profiled), each with planner.model_step =
# split on the cartpole cases for comparison, the training benchmark with its
# profile, the SAC benchmark with its profile (updates per second and GPU time per update, 1, 20
# and 40 updates per submission), an MBPO environment step in its parts (profiled), every
# layout of the fused kernel on two cases, optionally the PyTorch baselines (PETS and SAC) in
# the same run and test executables. Each step is capped, and the whole pass ends within
# DEADLINE_S seconds (default 540).
#
#   bash scripts/gpu-measure.sh [LOOKAHEAD_BINARY] [OUT_DIR]
#     QUICK=1            the reduced sets
#     BASELINE=FILE      also run this copy of torch_pets_bench.py (python3 with PyTorch)
#     SAC_BASELINE=FILE  also run this copy of torch_sac_bench.py (the same SAC cases in PyTorch)
#     TESTS=DIR          also run every test executable in DIR (those that need no cargo)
#
# Everything lands in OUT_DIR/log.txt and, after every step, in OUT_DIR/results.tar.gz (each
# step's output and JSON), so what finished comes back even if the pass is cut short.
set -u
bin=${1:-target/release/lookahead}
out=${2:-${OUT:-gpu-out}}
deadline=$(($(date +%s) + ${DEADLINE_S:-540}))
quick=()
[ "${QUICK:-0}" = 1 ] && quick=(--quick)
mkdir -p "$out"
work=$(mktemp -d)
step() {
    local name=$1 limit=$2
    shift 2
    local left=$((deadline - $(date +%s) - 5))
    if [ "$left" -lt 10 ]; then
        echo "== $name: skipped (the pass's deadline is near)" | tee -a "$out/log.txt"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name (at most ${limit} s): $*" | tee -a "$out/log.txt"
    local t0
    t0=$(date +%s%N)
    timeout "$limit" "$@" >"$work/$name.txt" 2>&1
    local rc=$?
    tee -a "$out/log.txt" <"$work/$name.txt"
    echo "== $name: exit $rc after $((($(date +%s%N) - t0) / 1000000)) ms" | tee -a "$out/log.txt"
    tar czf "$out/results.tar.gz" -C "$work" .
}
L=("$bin" --backend vulkan)
step verify 120 "${L[@]}" verify "${quick[@]}" --json "$work/verify.json"
step plan-fused 120 "${L[@]}" bench plan "${quick[@]}" --mlp-kernel fused --json "$work/plan-fused.json"
step plan-fused-profile 60 "${L[@]}" bench plan "${quick[@]}" --mlp-kernel fused --only cartpole_ts1 --profile \
    --json "$work/plan-fused-profile.json"
# The same cases with each model step as two dispatches (the network, then propagate): the A/B
# of planner.model_step in the same run.
step plan-fused-split 90 "${L[@]}" bench plan "${quick[@]}" --mlp-kernel fused --model-step split \
    --only cartpole --json "$work/plan-fused-split.json"
if grep -q "mlp.coop16: run" "$work/verify.txt"; then
    # --force: time it even if its conformance cases failed here (verify.txt says whether they did).
    step plan-coop16 120 "${L[@]}" bench plan "${quick[@]}" --mlp-kernel coop16 --force --profile \
        --json "$work/plan-coop16.json"
else
    echo "== plan-coop16: skipped ($(grep -o 'mlp.coop16: .*' "$work/verify.txt"))" | tee -a "$out/log.txt"
fi
step train 120 "${L[@]}" bench train "${quick[@]}" --profile --json "$work/train.json"
# SAC updates as a run submits them (each submission also computes the next action), profiled.
step sac 120 "${L[@]}" bench sac "${quick[@]}" --profile --json "$work/sac.json"
# An MBPO environment step at the HalfCheetah reference in its parts (acting and updates, rollouts,
# model training), profiled; QUICK=1 takes three timed calls of each part.
mbpo_repeats=()
[ "${QUICK:-0}" = 1 ] && mbpo_repeats=(--repeats 3)
step mbpo 120 "${L[@]}" bench mbpo "${mbpo_repeats[@]}" --profile --json "$work/mbpo.json"
if [ -n "${BASELINE:-}" ]; then
    step torch 150 env PYTHONUNBUFFERED=1 python3 "$BASELINE" \
        --variants mbrl_like_fp32 eager_fp32 eager_tf32 \
        --configs cartpole_std_7m cartpole_std_7m_TSinf cartpole_pop1000_7m_padded cartpole_big_7m_padded \
        halfcheetah_7m --budget-s 0.6 --train-styles efficient --out "$work/torch.json"
fi
if [ -n "${SAC_BASELINE:-}" ]; then
    # The cases of `bench sac` (sac_<dims>_u<N>, the same names) and an MBPO step, fp32 and tf32.
    step torch-sac 120 env PYTHONUNBUFFERED=1 python3 "$SAC_BASELINE" "${quick[@]}" --budget-s 0.6 \
        --out "$work/torch-sac.json"
fi
# Every layout of the fused kernel on the reference plan and on a large population, and the row
# blocks of the fused training kernels (the data behind FusedShape::for_network's and
# for_training's rules); skipped with QUICK=1.
if [ "${QUICK:-0}" != 1 ]; then
    step layouts-reference 90 "${L[@]}" bench plan --only pets_cartpole_ts1 --fused-layouts \
        --json "$work/layouts-reference.json"
    step layouts-population-5000 120 "${L[@]}" bench plan --only population_5000 --fused-layouts \
        --json "$work/layouts-population-5000.json"
    step layouts-train 120 "${L[@]}" bench train --fused-layouts --json "$work/layouts-train.json"
fi
if [ -n "${TESTS:-}" ]; then
    for t in "$TESTS"/*; do
        step "test-$(basename "$t")" 120 "$t" --test-threads 1
    done
fi
rm -rf "$work"
