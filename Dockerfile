# syntax=docker/dockerfile:1
# Build: resolve the locked dependencies into a virtual environment.
FROM python:3.11-slim AS build
# Pinned like everything else the image installs; the dependencies themselves
# come from uv.lock.
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
ENV UV_PYTHON_DOWNLOADS=never UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project
COPY jarvis ./jarvis
# Not editable: Jarvis itself goes into site-packages, byte-compiled like its
# dependencies, so an unprivileged process never recompiles it at start-up.
RUN uv sync --locked --no-dev --no-editable

# Run: the environment only, as an unprivileged user.
FROM python:3.11-slim
# uid/gid 10001 are the numbers deploy/kubernetes runs as (runAsUser/runAsGroup).
RUN groupadd --system --gid 10001 jarvis \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/jarvis --create-home jarvis
COPY --from=build /app /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    JARVIS_DATABASE_URL=sqlite+aiosqlite:////var/lib/jarvis/jarvis.db \
    JARVIS_SPOOL_PATH=/var/lib/jarvis/spool.jsonl \
    PORT=8080
# Numeric, so that a runtime checking runAsNonRoot can tell without /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/jarvis
EXPOSE 8080
# Exec form: no shell in between; Python reads $PORT itself (the slim image has no curl).
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=2)"]
STOPSIGNAL SIGTERM
# No init needed: `jarvis` as PID 1 forks and reaps orphans itself (jarvis/cli/init.py).
# `jarvis run` by default; any other command by arguments, e.g. `db upgrade`
# as the one-off migration task before a release.
ENTRYPOINT ["jarvis"]
CMD ["run"]
