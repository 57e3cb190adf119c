"""`import comam_env` (and the integrations package itself) stays light: no adapter library."""

import os
import subprocess
import sys

HEAVY = ("torch", "transformers", "trl", "ray", "verifiers", "openenv", "fastapi", "datasets")


def test_import_comam_env_loads_no_adapter_library():
    code = ("import sys, comam_env, comam_env.integrations, comam_env.integrations.episodes; "
            f"heavy = [m for m in sys.modules if m.split('.')[0] in {HEAVY!r}]; "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})
