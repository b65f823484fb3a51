# The service image. Build: `docker build -t bandit-service .`
# Run (SQLite in a named volume): `docker run -p 8000:8000 -v bandit-data:/data bandit-service`
# With PostgreSQL: compose.yaml. tests/test_container.py checks this file against the app and its CLI.

# pyproject.toml requires Python >= 3.11; both stages must use the same base, so the copied
# virtual environment finds its interpreter at the same path.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY policies/ policies/
COPY bandit_service/ bandit_service/
# A regular (not editable) install without the test extra; the postgres extra brings the driver of
# BANDIT_DATABASE_URL=postgresql+psycopg://... Every dependency ships wheels, so no compiler is needed.
# Plain RUN (no BuildKit cache mount) so that any builder takes the file: docker, podman, buildah, kaniko.
RUN pip install --no-cache-dir ".[postgres]"

FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="bandit-service" \
      org.opencontainers.image.description="Adaptive multi-armed bandit service" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid, so `USER` below is provably not root (Kubernetes' runAsNonRoot checks the number)
# and a volume's files keep one owner across rebuilds; --no-log-init spares a high uid a sparse lastlog.
RUN groupadd --gid 10001 bandit \
 && useradd --uid 10001 --gid bandit --no-log-init --no-create-home --home-dir /data --shell /usr/sbin/nologin bandit \
 && mkdir /data \
 && chown bandit:bandit /data
# Only the installed environment crosses over: no source tree, build backend or pip cache.
COPY --from=build /opt/venv /opt/venv
# The SQLite file, its WAL and its writer lock live in /data; declared after the chown so that a new
# named volume starts out owned by the service's user.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BANDIT_DATABASE_URL=sqlite:////data/bandit.db
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8000
# Ready = database writable, scheduler running, writer not stuck. Slim images have no curl; urlopen
# raises on any status >= 400 or a refused connection, so the exit code is 1 unless /readyz succeeds.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)"]
CMD ["bandit-service", "serve", "--host", "0.0.0.0", "--port", "8000"]
