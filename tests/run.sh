#!/usr/bin/env bash
# mezhved's test command: everything CI runs to prove the code, from a fresh Debian machine.
#
#   tests/run.sh            # install what is missing, build, run every test
#
# 1. Debian packages the code and its tests need (GOST engine, xmlsec1, headers), if absent.
# 2. playwright-core for the dashboard's browser tests (tests/browser, from its lock file);
#    they drive Debian's Chromium, never a downloaded browser.
# 3. The Rust tests of the whole workspace (unit, integration, property, fuzz-corpus replay).
# 4. The interoperability suite (tests/interop): our binary against lxml, libxmlsec1
#    (xmlsec1, python-xmlsec), signxml, the PyPI smev-transform and the OpenSSL CLI with
#    the GOST engine, in a venv that tests/interop/venv.sh makes.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

log() { printf '\n== %s\n' "$*"; }

# Never let OPENSSL_CONF reach cargo or the tests: with the GOST engine configured that
# way OpenSSL crashes at exit. The code loads the engine itself.
unset OPENSSL_CONF

log "Debian packages"
deploy/debian-packages.sh

log "browser driver (npm ci)"
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error

log "cargo build"
cargo build --workspace --all-targets --locked

log "cargo test"
cargo test --workspace --locked

log "interoperability suite"
venv=$(tests/interop/venv.sh)
MEZHVED_BIN="$root/target/debug/mezhved" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/interop

log "artefacts"
# The browser tests' screenshots (one directory per test), kept for whoever reads the run.
find "${MEZHVED_ARTEFACTS:-$root/target/artefacts}" -name '*.png' 2>/dev/null | sort
