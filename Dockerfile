# The reelscope image of infra/docker-compose.yml and infra/k8s/: serve and every processor group.
# It installs exactly as CI does, by running .ci/install (REELSCOPE_EXTRAS=all: the test tools stay out), so the
# two cannot drift; .dockerignore keeps the host's .venv, state and caches out of the build context.
# Not built here (no Docker engine where this was written). The base image is pinned by tag; add its digest
# before a production build: docker buildx imagetools inspect python:3.11-slim-bookworm
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# OpenGL and GLib: what OpenCV's and MediaPipe's wheels load at import on a slim Debian
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .
RUN REELSCOPE_EXTRAS=all bash .ci/install

# State (uploads, run files, embedded ClickHouse if no server is configured) and model weights live in volumes
RUN useradd --system --uid 10001 --home-dir /var/lib/reelscope reelscope \
    && mkdir -p /var/lib/reelscope/weights /var/cache/huggingface \
    && chown -R reelscope /var/lib/reelscope /var/cache/huggingface
ENV PATH=/app/.venv/bin:$PATH REELSCOPE_STATE_DIR=/var/lib/reelscope HF_HOME=/var/cache/huggingface
USER reelscope
EXPOSE 18080 9100
CMD ["reelscope", "serve"]
