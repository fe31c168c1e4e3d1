#!/usr/bin/env bash
# The GPU figures the README and docs/PERFORMANCE.md quote, in one pass, for a machine with the
# driver and a Vulkan loader but no toolchain (bring a release binary): the conformance table,
# the plan benchmark with the fused kernel and, where the adapter offers cooperative matrices,
# with coop16 (profiled), and the training benchmark with its profile. Each step is capped.
#
#   bash scripts/gpu-measure.sh [LOOKAHEAD_BINARY] [OUT_DIR]      (QUICK=1: the reduced sets)
set -u
bin=${1:-target/release/lookahead}
out=${2:-${OUT:-gpu-out}}
quick=()
[ "${QUICK:-0}" = 1 ] && quick=(--quick)
mkdir -p "$out"
step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1
    local rc=$?
    cat "$out/$name.txt"
    echo "== $name: exit $rc"
}
step verify 180 "$bin" --backend vulkan verify "${quick[@]}" --json "$out/verify.json"
step plan-fused 240 "$bin" --backend vulkan bench plan "${quick[@]}" --mlp-kernel fused --json "$out/plan-fused.json"
if grep -q "mlp.coop16: run" "$out/verify.txt"; then
    step plan-coop16 240 "$bin" --backend vulkan bench plan "${quick[@]}" --mlp-kernel coop16 --profile \
        --json "$out/plan-coop16.json"
else
    echo "== plan-coop16: skipped ($(grep -o 'mlp.coop16: .*' "$out/verify.txt"))"
fi
step train 240 "$bin" --backend vulkan bench train "${quick[@]}" --profile --json "$out/train.json"
