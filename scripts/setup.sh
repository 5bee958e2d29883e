#!/usr/bin/env bash
# Installs what pbx-agent needs on a Debian machine with Python >= 3.11: the PostgreSQL server
# (for the embedded database) when missing, a virtualenv in .venv, and the package.
#   bash scripts/setup.sh          runtime only
#   bash scripts/setup.sh --dev    plus the test and lint tools (and a browser for the admin-page tests)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@"
}

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "setup: installing the PostgreSQL server (apt)"
  apt_install postgresql
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: Python >= 3.11 is required ($python is $("$python" --version 2>&1))" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
if [ "$dev" = 1 ] && [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing Chromium for the admin-page browser tests (apt)"
  apt_install chromium
fi
if [ "$dev" = 1 ] && { [ ! -x /usr/sbin/mariadbd ] || [ ! -x /usr/bin/my_print_defaults ]; }; then
  echo "setup: installing the MariaDB server binaries for the MySQL CDR tests (apt; no service is started)"
  apt_install mariadb-server-core mariadb-client-core  # mariadb-install-db needs the client's my_print_defaults
fi
if [ "$dev" = 1 ]; then
  .venv/bin/python -m pip install -q -e '.[dev]' 2>&1 | grep -v '^WARNING: Location' || true
else
  .venv/bin/python -m pip install -q -e . 2>&1 | grep -v '^WARNING: Location' || true
fi
.venv/bin/python -c 'import agent, asyncpg, aiohttp, panoramisk' # fail loudly if the install did not work
echo "setup: ready (.venv)"
