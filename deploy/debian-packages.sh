#!/usr/bin/env bash
# Installs the Debian packages mezhved needs to build, run and test, if any is missing.
# Idempotent and quick when everything is there (one dpkg query per package).
#
#   libengine-gost-openssl   GOST R 34.10/34.11-2012 for OpenSSL (loaded by the gateway)
#   libssl-dev pkg-config    building the openssl crate
#   xmlsec1 libxmlsec1-*     the interoperability tests' independent XMLDSig implementation
#   libxml2-dev ...          fallback source build of lxml/python-xmlsec (tests/interop/venv.sh)
#   systemd                  systemd-analyze, which checks deploy/systemd's units in the tests
#   chromium fonts-dejavu-core  the dashboard's browser tests (tests/blackbox/tests/browser.rs)
#   nodejs npm               only where no `node` is installed: drives Chromium through
#                            playwright-core (tests/browser; Node.js 20 or newer)
set -euo pipefail
packages=(libengine-gost-openssl libssl-dev pkg-config xmlsec1 libxmlsec1-dev libxmlsec1-openssl
          libxml2-dev libxslt1-dev systemd chromium fonts-dejavu-core)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "debian-packages: all present"
  exit 0
fi
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
echo "debian-packages: installing ${missing[*]}"
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
