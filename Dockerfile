# syntax=docker/dockerfile:1
# Plume's production image: `plume serve` by default, `plume migrate` as a separate command
# (the Helm chart runs it in a pre-install/pre-upgrade Job). See docs/operations.md,
# "Container image".
#
# The base is pinned by exact tag, not by digest: the digest could not be looked up where this
# file was written (no registry access). Pin it when building: resolve the digest once
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm
# and append @sha256:<digest> to both FROM lines. Both stages must use the same image (a
# test checks it): the virtualenv built in the first is copied into the second and points at
# its interpreter (/usr/local/bin/python3.11).

# ------------------------------------------------------------------------------ builder
FROM python:3.11.14-slim-bookworm AS builder

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never

WORKDIR /app

# The installer itself, hash-locked like everything else (the Makefile's first step).
COPY requirements/bootstrap.lock requirements/build.lock requirements/main.lock requirements/
RUN python -m pip install --require-hashes --no-deps -r requirements/bootstrap.lock

# The production set, and only it: requirements/main.lock (no dev tools, no embedded
# PostgreSQL), every file checked against its hash. The build backend (setuptools, from
# build.lock, hash-locked too) is installed beside it only to build the one source
# distribution of the set (odfpy) and Plume itself without fetching anything unpinned
# (--no-build-isolation), then removed.
RUN uv venv /opt/plume \
 && uv pip install --python /opt/plume/bin/python --require-hashes --no-deps \
        -r requirements/build.lock \
 && uv pip sync --python /opt/plume/bin/python --require-hashes --no-build-isolation \
        requirements/main.lock requirements/build.lock

# Plume from its source tree: `plume migrate` and /readyz find alembic.ini and migrations/
# next to services/ (plume.runtime.migrations.PROJECT_ROOT), so the tree is installed in
# place (editable), as `make install` does, and copied whole into the final stage.
COPY pyproject.toml README.md alembic.ini ./
COPY migrations/ migrations/
COPY services/ services/
RUN uv pip install --python /opt/plume/bin/python --no-deps --no-build-isolation -e . \
 && uv pip uninstall --python /opt/plume/bin/python setuptools \
 && /opt/plume/bin/python -m compileall -q /opt/plume/lib /app/services /app/migrations

# ------------------------------------------------------------------------------ runtime
FROM python:3.11.14-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="plume" \
      org.opencontainers.image.description="Plume: generative-AI drafting API for the communes of Seine-Maritime" \
      org.opencontainers.image.licenses="EUPL-1.2" \
      org.opencontainers.image.vendor="Seine-Maritime Numérique"

# Read-only root filesystem: Python writes no bytecode (it was compiled in the builder), and
# everything Plume or its libraries may write goes under /tmp, an emptyDir in Kubernetes.
# LITELLM_LOCAL_MODEL_COST_MAP: LiteLLM reads its bundled cost map instead of downloading
# one at start-up (the NetworkPolicy allows no such egress anyway).
ENV PATH=/opt/plume/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    TMPDIR=/tmp \
    PLUME_STATE_DIR=/tmp/plume \
    PLUME_ENV=production \
    LITELLM_LOCAL_MODEL_COST_MAP=True

# A numeric, unprivileged user that owns nothing in the image (the files are root's,
# readable by all): Kubernetes checks runAsNonRoot against the number.
RUN groupadd --system --gid 10001 plume \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp \
        --shell /usr/sbin/nologin plume

WORKDIR /app
COPY --from=builder /opt/plume /opt/plume
COPY --from=builder /app /app

USER 10001:10001
EXPOSE 8000

# Liveness with the standard library (no curl in the image): /healthz answers 200 while the
# process serves. Kubernetes ignores HEALTHCHECK and uses the chart's probes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status == 200 else 1)"]

# `docker run IMAGE` serves; `docker run IMAGE migrate` migrates (with the owner's URL).
# SIGTERM drains in-flight requests for PLUME_DRAIN_TIMEOUT_S, then exits 0.
ENTRYPOINT ["plume"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
