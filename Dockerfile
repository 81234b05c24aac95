# The fuserec CLI in a container. Build: docker build -t fuserec-os:dev .   (or: docker compose build fuserec)
# osmem-server, a dependency, has an x86_64 wheel only: on arm64 hosts build with --platform linux/amd64.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (they change rarely), then the package itself.
COPY pyproject.toml README.md LICENSE ./
COPY fuserec_os ./fuserec_os
RUN pip install .

# The mapping files are read at run time (docker-compose.yml mounts ./mappings over this copy).
COPY mappings ./mappings
ENV FUSEREC_MAPPINGS_DIR=/app/mappings \
    FUSEREC_STATE_DIR=/app/.fuserec

RUN useradd --create-home --uid 10001 fuserec && mkdir -p /app/.fuserec && chown fuserec /app/.fuserec
USER fuserec

ENTRYPOINT ["fuserec"]
# Default: the end-to-end demo (needs FUSEREC_OPENSEARCH_URL, or it uses a temporary embedded engine).
# The query proxy: docker run -p 9400:9400 -e FUSEREC_OPENSEARCH_URL=... fuserec-os:dev serve --host 0.0.0.0
EXPOSE 9400
CMD ["demo"]
