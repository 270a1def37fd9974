#!/usr/bin/env bash
# Install the OS packages EarthSignature needs when they are missing: PostgreSQL + PostGIS (the catalog),
# Node.js + npm (the map page's web library, at setup), Chromium (the map page's browser test), Debian's GDAL
# command-line tools (a signed map link opened by the gdalinfo pilots have) and curl (the README's examples);
# with --qgis also Debian's PyQGIS (`make qgis-check`: about 200 packages, so not for `make setup`).
# As root it installs them; otherwise it prints the exact command to run. Idempotent.
set -euo pipefail

have_postgis() {
    compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null &&
        compgen -G "/usr/share/postgresql/*/extension/postgis.control" >/dev/null
}

PACKAGES=()
have_postgis || PACKAGES+=(postgresql postgresql-15-postgis-3)
command -v npm >/dev/null || PACKAGES+=(nodejs npm)
command -v chromium >/dev/null || PACKAGES+=(chromium fonts-liberation)
command -v gdalinfo >/dev/null || PACKAGES+=(gdal-bin)
command -v curl >/dev/null || PACKAGES+=(curl)
have_qgis() { /usr/bin/python3 -c "import qgis.core" 2>/dev/null; }
QGIS=false
[ "${1:-}" = "--qgis" ] && QGIS=true
$QGIS && ! have_qgis && PACKAGES+=(python3-qgis qgis-providers)

if [ ${#PACKAGES[@]} -eq 0 ]; then
    echo "os-packages: PostgreSQL, PostGIS, npm, Chromium, GDAL's tools and curl$($QGIS && echo ", PyQGIS") are installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "os-packages: ${PACKAGES[*]} missing; install them with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y --no-install-recommends ${PACKAGES[*]}" >&2
    exit 1
fi
echo "os-packages: installing ${PACKAGES[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >/dev/null
have_postgis && command -v npm >/dev/null && command -v chromium >/dev/null && command -v gdalinfo >/dev/null &&
    command -v curl >/dev/null && { ! $QGIS || have_qgis; }
