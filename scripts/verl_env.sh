#!/usr/bin/env bash
# A throwaway environment where verl 0.9.0 installs (it needs tensordict <= 0.10, which TorchRL's
# pin excludes from the dev environment), then the verl recipe's tests against real verl.
# Usage: bash scripts/verl_env.sh [VENV_DIR]   (default .venv-verl; network: PyPI only)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-verl}"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q torch==2.13.0                      # the CPU build first (see README)
"$VENV/bin/pip" install -q verl==0.9.0 gymnasium==1.4.0 pettingzoo==1.27.0 scipy==1.17.1 pytest==9.2.0 \
    cachetools uvicorn fastapi                                 # verl's agent loop imports these undeclared
PYTHONPATH="$PWD" OMP_NUM_THREADS=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/integrations/test_verl_recipe.py
