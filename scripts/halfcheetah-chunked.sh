#!/usr/bin/env bash
# PETS on MuJoCo HalfCheetah-v5 with the reference preset (20 trials of 1000 steps after 5000
# random ones), run in chunks on a machine that allows a few minutes per command and has no
# network: each call runs for at most SECONDS, stops after the current step (SIGINT: the run
# folder keeps every finished trial), and packs the run folder into $OUT/run.tar.gz; the next
# call, given that file as .hc/run.tar.gz, continues with --resume. Once all trials are done a
# call only rewrites the summary.
#
#   bash scripts/halfcheetah-chunked.sh SECONDS [--set key=value ...]
#
# Prepared where there is a network (the wheels go in .whl/, for the target's Python, e.g. 3.12):
#   python3 -m pip wheel --no-deps -w .whl ./python
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl gymnasium farama-notifications mujoco glfw pyopengl
# Without .whl/ the installed packages are used. $OUT defaults to ./hc-out.
set -u
secs=${1:?usage: halfcheetah-chunked.sh SECONDS [--set key=value ...]}
shift
out=${OUT:-hc-out}
mkdir -p "$out"
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/hc-site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/hc-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 MUJOCO_GL=${MUJOCO_GL:-egl}
run=$(mktemp -d /tmp/hc-run.XXXX)
resume=()
if [ -f .hc/run.tar.gz ]; then
    tar xzf .hc/run.tar.gz -C "$run" || exit 1
    resume=(--resume)
fi
python3 -c 'import lookahead, gymnasium, mujoco; print("lookahead", lookahead.__version__, "gymnasium", gymnasium.__version__, "mujoco", mujoco.__version__)' \
    || exit 1
start=$(date +%s)
# SIGINT at the budget; killed 120 s later if a training pass keeps it from stopping.
timeout -s INT -k 120 "$secs" python3 -m lookahead pets --env gymnasium:HalfCheetah-v5 --preset reference \
    --out "$run" "${resume[@]}" "$@"
rc=$?
echo "pets exit status $rc after $(( $(date +%s) - start )) s (130 or 124: stopped at the budget; resume next call)"
tar czf "$out/run.tar.gz" -C "$run" . && cp "$run/results.csv" "$run/learning_curve.svg" "$out/" 2>/dev/null
cat "$run/results.csv" 2>/dev/null
exit 0
