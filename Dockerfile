# comam-env served per the OpenEnv spec (WebSocket /ws sessions, HTTP /reset /step /state /health).
#   docker build -t comam-env .
#   docker run -p 8000:8000 -e COMAM_ENV=synthetic-32k comam-env
# Inside the container the server binds 0.0.0.0 so the published port reaches it; outside Docker,
# `comam-env serve` binds 127.0.0.1 by default. PersonaMem / LoCoMo need their data mounted
# (e.g. -v $HOME/.cache/comam_env:/root/.cache/comam_env); the synthetic envs need nothing.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints-cpu.txt README.md ./
COPY comam_env ./comam_env
COPY agents ./agents
COPY baselines ./baselines
COPY leaderboard ./leaderboard
# torch first and pinned (CPU wheel): an unpinned resolve pulls a multi-GB CUDA build
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
 && pip install --no-cache-dir -c constraints-cpu.txt ".[integrations]"
ENV COMAM_ENV=synthetic-32k COMAM_MAX_SESSIONS=64
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=60s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["sh", "-c", "exec comam-env serve --env \"$COMAM_ENV\" --host 0.0.0.0 --port 8000 --max-sessions \"$COMAM_MAX_SESSIONS\""]
