# sigserve scoring server image.
#
#   podman build --format docker -t sigserve .          # or: docker build -t sigserve .
#   podman run --rm -p 8080:8080 -v ./model:/opt/model:ro -e MODEL_URI=/opt/model sigserve
#   podman run --rm -p 8080:8080 -e MODEL_URI=models:/churn@champion \
#       -e MLFLOW_TRACKING_URI=https://mlflow.example.com -e MLFLOW_TRACKING_TOKEN=… sigserve
#
# Build args:
#   BASE_IMAGE        a Python >= 3.10 image with `python3 -m venv` (default: the official slim
#                     image, same Python as the tests); both stages use it
#   SIGSERVE_EXTRAS   extras to install: "sklearn" (default), "sklearn,mlflow", "mlflow", ""
#   PIP_INDEX_URL     package index for the build stage only (unset: the base image's pip
#                     configuration, else PyPI)
#
# Runtime contract: listens on 0.0.0.0:8080 and, for the V2 gRPC API, 8081 (SIGSERVE_GRPC_PORT,
# 0 = off), runs as uid/gid 10001, downloads into /var/cache/sigserve, works with a read-only
# root filesystem given writable /tmp and /var/cache/sigserve. Configure `sigserve serve` by
# environment: MODEL_URI, MLFLOW_TRACKING_URI, MLFLOW_TRACKING_TOKEN, SIGSERVE_WORKERS,
# SIGSERVE_PORT, SIGSERVE_GRPC_PORT, SIGSERVE_TIMEOUT,
# SIGSERVE_RELOAD_INTERVAL, SIGSERVE_MAX_BODY_BYTES, SIGSERVE_MAX_CONCURRENCY,
# SIGSERVE_LOG_LEVEL, SIGSERVE_LOG_FORMAT, SIGSERVE_ACCESS_LOG, SIGSERVE_BATCH_MAX_SIZE,
# SIGSERVE_BATCH_MAX_WAIT_MS. Arguments after the image name are passed to `sigserve serve`.
# A model baked in lives at /opt/model with MODEL_URI=/opt/model (`sigserve generate-dockerfile`).
#
# Security: the image binds 0.0.0.0, and with no settings anyone who reaches the port may score,
# read /metadata and /metrics. Turn on bearer tokens (SIGSERVE_AUTH_TOKEN_FILE, a file of tokens
# one a line, e.g. a mounted Secret; or SIGSERVE_AUTH_TOKENS=a,b) and TLS (SIGSERVE_TLS_CERT and
# SIGSERVE_TLS_KEY, PEM files), or keep the port behind a network policy. Set TLS by environment,
# not by flags: the HEALTHCHECK reads SIGSERVE_TLS_CERT to speak HTTPS (without verifying, to
# 127.0.0.1), and probes /ping, which needs no token.

ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG SIGSERVE_EXTRAS=sklearn
ARG PIP_INDEX_URL
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/python -m pip wheel --no-deps --wheel-dir /dist . \
 && wheel="$(ls /dist/sigserve-*.whl)" \
 && /opt/venv/bin/python -m pip install "${wheel}${SIGSERVE_EXTRAS:+[${SIGSERVE_EXTRAS}]}" \
 && /opt/venv/bin/sigserve --version

FROM ${BASE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="sigserve" \
      org.opencontainers.image.description="MLflow-compatible, signature-enforcing model scoring server"
RUN groupadd --system --gid 10001 sigserve \
 && useradd --system --uid 10001 --gid 10001 --home-dir /home/sigserve --create-home \
        --shell /usr/sbin/nologin sigserve \
 && mkdir -p /var/cache/sigserve /opt/model \
 && chown 10001:10001 /var/cache/sigserve
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIGSERVE_HOST=0.0.0.0 \
    SIGSERVE_PORT=8080 \
    SIGSERVE_CACHE_DIR=/var/cache/sigserve
USER 10001:10001
WORKDIR /home/sigserve
EXPOSE 8080 8081
# python, not curl: slim images have no curl. HTTPS when SIGSERVE_TLS_CERT is set.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["/opt/venv/bin/python", "-c", "import os, ssl, urllib.request; tls = bool(os.environ.get('SIGSERVE_TLS_CERT')); c = ssl.create_default_context(); c.check_hostname = False; c.verify_mode = ssl.CERT_NONE; urllib.request.urlopen('%s://127.0.0.1:%s/ping' % ('https' if tls else 'http', os.environ.get('SIGSERVE_PORT', '8080')), timeout=4, context=c if tls else None)"]
ENTRYPOINT ["/opt/venv/bin/sigserve", "serve"]
