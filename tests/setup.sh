#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian 12 machine, idempotently:
#   - Debian packages of the real components the tests run against,
#   - a virtualenv with sidecar (the distribution privacy-sidecar) and its test extras (mitmproxy,
#     hadolint among them); a venv holding the package under its old distribution name `sidecar`
#     has that one removed first, so the two never claim the same files,
#   - the embedded country database (sidecar geoip build), when missing or older than its source.
# Then `.venv/bin/python -m pytest` runs the suite. A component that is still missing makes its
# tests fail loudly; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(tor-geoipdb nginx clickhouse-server clickhouse-client wrk prometheus curl)  # wrk: bench/; prometheus: promtool; curl: HTTP/2 to the proxy
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "tests/setup.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
if .venv/bin/python -m pip show -q sidecar >/dev/null 2>&1; then
  .venv/bin/python -m pip uninstall -q -y sidecar  # renamed privacy-sidecar: same files
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

if [ ! -s data/country.mmdb ] || [ /usr/share/tor/geoip -nt data/country.mmdb ]; then
  .venv/bin/sidecar geoip build
fi
