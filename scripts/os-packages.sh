#!/usr/bin/env bash
# Install the OS packages EarthSignature needs (PostgreSQL + PostGIS from Debian's packages) when they
# are missing. As root it installs them; otherwise it prints the exact command to run. Idempotent.
set -euo pipefail

PACKAGES=(postgresql postgresql-15-postgis-3)

have_postgis() {
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null &&
        compgen -G "/usr/share/postgresql/*/extension/postgis.control" >/dev/null
}

if have_postgis; then
    echo "os-packages: PostgreSQL and PostGIS are installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "os-packages: PostgreSQL + PostGIS are missing; install them with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PACKAGES[*]}" >&2
    exit 1
fi
echo "os-packages: installing ${PACKAGES[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
have_postgis
