# syntax=docker/dockerfile:1
# One image, two commands: `oomguard monitor` (the node agent, DaemonSet) and
# `oomguard operator` (the kopf operator, Deployment).
#
# The image runs as an unprivileged user (uid 65532) by default: that is right for the
# operator. The node agent writes the host's cgroupfs (memory.high, cgroup.kill), which
# is owned by root, so the Helm chart runs that one container as uid 0 (with every
# capability dropped; see helm/oomguard/README.md).
#
# Base: python:3.11-slim-bookworm, pinned by digest so a rebuild gets the same bytes.
# Override with --build-arg PYTHON_IMAGE=... to move it.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Dependencies first, from the hashed locks (scripts/lock): every file pip fetches must match
# a recorded sha256, so two builds of one commit install the same bytes. The build backend
# (setuptools, wheel) gets a virtualenv of its own and never reaches the image.
COPY requirements.lock requirements-build.lock ./
RUN python -m venv /opt/oomguard \
 && /opt/oomguard/bin/pip install --no-cache-dir --require-hashes -r requirements.lock \
 && python -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir --require-hashes -r requirements-build.lock
# Only what the wheel is built from: the package (src/oomguard, with its symlinks to
# monitor/ and operator/) and the folders those symlinks point at.
COPY pyproject.toml README.md LICENSE ./
COPY src/ src/
COPY monitor/ monitor/
COPY operator/ operator/
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/oomguard/bin/pip install --no-cache-dir --no-deps --no-index --find-links /wheels oomguard \
 && /opt/oomguard/bin/pip check \
 && /opt/oomguard/bin/python -m compileall -q /opt/oomguard/lib \
 && /opt/oomguard/bin/oomguard --help >/dev/null \
 && /opt/oomguard/bin/oomguard --version

FROM ${PYTHON_IMAGE}
# The commit `oomguard --version` reports; the release workflow passes github.sha.
ARG GIT_COMMIT=""
LABEL org.opencontainers.image.title="oomguard" \
      org.opencontainers.image.description="Frees memory newest-first before the kernel OOM killer fires" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${GIT_COMMIT}"
RUN groupadd --system --gid 65532 oomguard \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin oomguard
# The venv links to the base image's /usr/local/bin/python3.11, identical in both stages.
COPY --from=build /opt/oomguard /opt/oomguard
ENV PATH=/opt/oomguard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OOMGUARD_GIT_COMMIT=${GIT_COMMIT}
USER 65532:65532
ENTRYPOINT ["oomguard"]
CMD ["--help"]
