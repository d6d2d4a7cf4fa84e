# The code-location image: a Dagster gRPC code server for collab_pipelines. The webserver,
# daemon, data API and SFTP server run from this same image (deploy/docker-compose.yml).
FROM python:3.11-slim

# bubblewrap (bwrap) is the sandbox each evaluated commit runs in. Debian's is not setuid: it
# needs unprivileged user namespaces, which Compose and the Helm values allow for the containers
# that evaluate (docs/deploy.md, "Sandboxed evaluations").
RUN apt-get update \
    && apt-get install -y --no-install-recommends make git bubblewrap \
    && rm -rf /var/lib/apt/lists/*

# Every process of the image runs as this user, never root: the kernel does not apply the
# candidate's process limit (RLIMIT_NPROC) to uid 0. The uid is fixed so that Compose, the Helm
# values (runAsUser) and the owners of volumes agree.
RUN groupadd --gid 10001 collab \
    && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/collab --shell /usr/sbin/nologin collab

WORKDIR /app
# Dependencies first, so a code change does not reinstall them.
COPY setup.py Makefile ./
# EXTRAS= installs what runs in production only: no test or benchmark extras (Playwright,
# schemathesis, datasette); collab_pipelines_tests/test_deploy_files.py checks it.
RUN mkdir collab_pipelines && touch collab_pipelines/__init__.py \
    && make install PYTHON=python3.11 EXTRAS= \
    && rm -rf collab_pipelines
COPY . .
# The same install command as README's `make run` and `make test` (`make install`).
RUN touch setup.py && make install PYTHON=python3.11 EXTRAS=

# The team's configuration folder (catalog, suites, templates, uploads, SFTP accounts) is
# /app/config: copied in with the code, or mounted (deploy/docker-compose.yml). The state
# folder is the container's own; the shared folder, inside the working directory where the
# code server's notebook view reads, is where a deployment mounts its shared volume: the
# landing zone, reports, tuning work (docs/deploy.md). The webserver's notebook view finds the
# project's nbconvert page through JUPYTER_PATH: the same report without require.js and
# MathJax from a CDN, which a closed network cannot reach.
ENV PATH=/app/.venv/bin:$PATH \
    HOME=/home/collab \
    DAGSTER_HOME=/opt/dagster/home \
    COLLAB_STATE_DIR=/app/.state \
    COLLAB_SHARED_DIR=/app/.shared \
    COLLAB_ENVIRONMENTS_DIR=/app/.environments \
    COLLAB_CONFIG_DIR=/app/config \
    JUPYTER_PATH=/app/collab_pipelines/reports/jupyter
# The code and the venv stay root's, readable and executable by all: the user can run them but
# not change them. It owns only the folders it writes; a named volume mounted on one of them
# starts with the image's owner, so Compose's volumes are the user's too.
RUN mkdir -p $DAGSTER_HOME/storage $COLLAB_STATE_DIR $COLLAB_SHARED_DIR $COLLAB_ENVIRONMENTS_DIR $COLLAB_CONFIG_DIR \
    && chown collab:collab $DAGSTER_HOME $DAGSTER_HOME/storage $COLLAB_STATE_DIR $COLLAB_SHARED_DIR $COLLAB_ENVIRONMENTS_DIR
# Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001

EXPOSE 4000
CMD ["dagster", "code-server", "start", "-m", "collab_pipelines.definitions", "-a", "defs", "-h", "0.0.0.0", "-p", "4000"]
