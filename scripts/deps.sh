#!/usr/bin/env bash
# Installs the Debian packages ember needs to build and test, only those missing.
# Run as root on Debian 12. Safe to run again: it does nothing when all are present.
set -eu
# chromium: tests/cli/test_dashboard.sh loads the server's dashboard in a headless browser
pkgs="cmake make gcc clang libopenblas-dev liblapack-dev libcmocka-dev libxxhash-dev libcjson-dev libmicrohttpd-dev libsqlite3-dev pkg-config curl sqlite3 chromium"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing (run as root or install them)" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing
