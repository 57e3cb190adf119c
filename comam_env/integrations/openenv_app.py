"""The served env as a module-level ASGI app, for ``uvicorn comam_env.integrations.openenv_app:app``
(the ``app:`` of ``openenv.yaml``; the Docker image runs ``comam-env serve`` instead).

Configured by environment variables: ``COMAM_ENV`` (env id, default ``synthetic-32k``),
``COMAM_ENV_KWARGS`` (JSON object of ``comam_env.make`` keyword arguments, default ``{}``) and
``COMAM_MAX_SESSIONS`` (default 64).
"""

from __future__ import annotations

import json
import os

from comam_env.integrations.openenv import create_server_app


def _env_kwargs() -> dict:
    raw = os.environ.get("COMAM_ENV_KWARGS", "{}")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"COMAM_ENV_KWARGS is not JSON ({exc}): {raw[:80]!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"COMAM_ENV_KWARGS must be a JSON object, got {type(value).__name__}")
    return value


app = create_server_app(os.environ.get("COMAM_ENV", "synthetic-32k"),
                        max_sessions=int(os.environ.get("COMAM_MAX_SESSIONS", "64")), env_kwargs=_env_kwargs())
