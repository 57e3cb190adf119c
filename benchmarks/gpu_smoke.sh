#!/usr/bin/env bash
# GPU smoke test of the LLM learner, one command on a fresh CUDA machine (target: <= 8 minutes):
#   bash benchmarks/gpu_smoke.sh               # install (scripts/setup.sh --gpu), then 3 iterations of the
#                                              # smollm2-gpu preset with the vLLM and the transformers backends
#   bash benchmarks/gpu_smoke.sh --check-only  # verify the machine; exit 1 with a one-line reason if it cannot run
# Prints one JSON line per backend: tokens/s per role, mean |log-prob difference| vLLM vs training
# model, peak GPU memory, whether rewards were non-zero (benchmarks/gpu_smoke.py).
# NOT RUN on the machine this was written on (no GPU): only --check-only has been exercised.
set -uo pipefail
cd "$(dirname "$0")/.."
check_only=0
for arg in "$@"; do
  case "$arg" in
    --check-only) check_only=1 ;;
    *) echo "gpu_smoke: unknown option $arg (use --check-only)" >&2; exit 2 ;;
  esac
done
fail() { echo "gpu_smoke: $1" >&2; exit 1; }
command -v nvidia-smi >/dev/null 2>&1 || fail "no NVIDIA GPU: nvidia-smi not found"
gpus="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
[ "${gpus:-0}" -ge 1 ] || fail "no NVIDIA GPU: nvidia-smi lists none"
py=.venv/bin/python
if [ "$check_only" = 1 ]; then
  [ -x "$py" ] || fail "no .venv yet (GPU found: run bash benchmarks/gpu_smoke.sh to install)"
  "$py" benchmarks/gpu_smoke.py --check-only
  exit $?
fi
start=$(date +%s)
bash scripts/setup.sh --gpu || fail "bash scripts/setup.sh --gpu failed"
"$py" benchmarks/gpu_smoke.py --iterations 3 || fail "the smoke run failed (see above)"
echo "gpu_smoke: done in $(( $(date +%s) - start )) s"
