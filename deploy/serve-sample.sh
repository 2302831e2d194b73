#!/usr/bin/env bash
# The README's main command: the gateway on the embedded SQLite store with the sample
# configuration and registry (deploy/sample/) and the test PKI (keys/test-pki, TEST KEYS
# ONLY). Installs the Debian packages it needs, builds, and serves until Ctrl-C.
#
#   deploy/serve-sample.sh                 # http://127.0.0.1:7575/smev/v1.1
#   MEZHVED_SERVER__LISTEN=0.0.0.0:8080 deploy/serve-sample.sh
#
# Then, from another terminal: deploy/sample/first-exchange.sh (a whole exchange with
# curl and `mezhved dsig sign`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
unset OPENSSL_CONF
deploy/debian-packages.sh
cargo build --release --locked -p mezhved
exec target/release/mezhved serve --config deploy/sample/mezhved.toml
