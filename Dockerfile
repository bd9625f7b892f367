# slo-engine daemon image (also runs the demo traffic simulator in docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY engine ./engine
RUN pip install . && rm -rf /src/build

# Never run as root. It writes only to its state directory and, for the compose stack's
# one-shot history job, to /var/lib/slo-engine-history (created here so that a named volume
# mounted there inherits the user's ownership).
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/slo-engine --create-home slo-engine \
    && install -d -o slo-engine -g slo-engine /var/lib/slo-engine-history
USER slo-engine
WORKDIR /var/lib/slo-engine

EXPOSE 8080
CMD ["slo-engine", "run", "--config", "/etc/slo-engine/config.yml"]
