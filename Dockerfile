# slo-engine daemon image (also runs the demo traffic simulator in docker-compose.yml).
#
# Reproducible: the base image is pinned by digest, every Python dependency by version and
# hash (requirements.lock, written by `make lock` from pyproject.toml), promtool by release.
#
#   docker build --build-arg REVISION="$(git rev-parse HEAD)" -t slo-engine .

# promtool, from the Prometheus release the tests and docker-compose.yml run (2.42.0): one
# static binary, so `slo-engine validate` in the container parses PromQL exactly as CI does.
# Copied rather than Debian's `prometheus` package, which would bring the whole server, its
# dependencies and a post-install script for a service that never runs here. (Pinned by
# tag: its digest could not be looked up where this file was written.)
FROM prom/prometheus:v2.42.0 AS prometheus

# python:3.11.13-slim-bookworm, its multi-platform manifest digest.
FROM python:3.11.13-slim-bookworm@sha256:86adf8dbadc3d6e82ee5dd2c74bec2e1c2467cdad47886280501df722372d2e1

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=prometheus /bin/promtool /usr/local/bin/promtool

WORKDIR /src
# Dependencies first (a layer that changes only with the lock), each checked by its hash.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY engine ./engine
RUN pip install --no-deps . && rm -rf /src/build

# The source revision: the `revision` label of slo_engine_build_info on /metrics.
ARG REVISION=unknown
ENV SLO_ENGINE_REVISION=${REVISION}

# Never run as root. It writes only to its state directory and, for the compose stack's
# one-shot history job, to /var/lib/slo-engine-history (created here so that a named volume
# mounted there inherits the user's ownership).
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/slo-engine --create-home slo-engine \
    && install -d -o slo-engine -g slo-engine /var/lib/slo-engine-history
USER slo-engine
WORKDIR /var/lib/slo-engine

EXPOSE 8080
# /healthz answers while the process serves HTTP (readiness is /readyz). Containers of this
# image that run something else (the simulator, one-shot jobs) set their own in compose.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=3)"]
CMD ["slo-engine", "run", "--config", "/etc/slo-engine/config.yml"]
