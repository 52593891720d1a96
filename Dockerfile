# sidecar serve in a container: `docker build -t sidecar .` (docker-compose.yml and
# deploy/kubernetes/pod.yaml show it beside nginx; docs/deploy.md explains the choices).
# No container engine runs where this project is tested: hadolint checks this file and
# tests/test_dockerfile.py runs its steps outside a container, but the image build itself is
# untested there.

# --- builder: the package in a venv, and the embedded country database ----------------------
FROM python:3.11-slim-bookworm AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# Country ranges of the IPFire Location database (CC BY-SA 4.0), as Debian packages them. Not
# pinned: a pinned version breaks the build on Debian's next update of the data.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends tor-geoipdb \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar/ sidecar/
# The runtime only (no test extras, no [proxy]): every dependency ships a manylinux wheel, so no
# compiler is needed.
RUN python -m venv /opt/sidecar \
 && /opt/sidecar/bin/pip install --no-compile . \
 && /opt/sidecar/bin/sidecar geoip build --output /usr/share/sidecar/country.mmdb \
 && cp /usr/share/doc/tor-geoipdb/copyright /usr/share/sidecar/country.mmdb.copyright

# --- runtime ---------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm

ENV PATH=/opt/sidecar/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# A fixed, unprivileged uid/gid (10001), so volume ownership is predictable.
RUN groupadd --system --gid 10001 sidecar \
 && useradd --system --uid 10001 --gid sidecar --no-create-home \
      --home-dir /var/lib/sidecar --shell /usr/sbin/nologin sidecar \
 && install -d -o sidecar -g sidecar /var/lib/sidecar /var/lib/sidecar/data /run/sidecar

COPY --from=builder /opt/sidecar /opt/sidecar
COPY --from=builder /usr/share/sidecar /usr/share/sidecar
# The default config: every key with its default (mount your own over /etc/sidecar).
COPY config/sidecar.toml /etc/sidecar/sidecar.toml

# The config's relative paths (data/state, data/spool, data/analytics.db, ...) land in the data
# volume.
WORKDIR /var/lib/sidecar
USER 10001:10001

# data: storage, spool, dead letters, checkpoints; /etc/sidecar: the config; /run/sidecar: the
# unix syslog socket, shared with nginx.
VOLUME ["/var/lib/sidecar/data", "/etc/sidecar", "/run/sidecar"]

# 9187: /metrics, /healthz, /readyz. 5514/udp: syslog from nginx.
EXPOSE 9187 5514/udp

# /healthz answers 200 while the process runs. No curl in the image: Python's urllib.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:9187/healthz', timeout=4).status != 200)"]

# serve's own defaults listen on loopback only; in a container loopback is the container's own,
# so the endpoints and the UDP syslog source listen on every interface of the container's
# network: Prometheus scrapes it from another container or pod, nginx sends to it. Publish
# neither port on a public interface: the metrics say how much traffic the site has, and anyone
# who can send to 5514 can add log lines. The flags override the config file; to let a mounted
# config decide, give the command `sidecar serve --config /etc/sidecar/sidecar.toml`.
CMD ["sidecar", "serve", "--config", "/etc/sidecar/sidecar.toml", \
     "--geoip", "/usr/share/sidecar/country.mmdb", \
     "--syslog-udp", "0.0.0.0:5514", "--http", "0.0.0.0:9187"]
