#!/usr/bin/env bash
# The README's main command: a living region on one machine. The gateway on the embedded
# SQLite store, four demo agencies (a social-protection office asking a civil registry, a
# tax office and a social fund) behind their adapters, and a stream of requests, with a
# live summary. Test keys only (keys/test-pki). Installs the Debian packages it needs,
# builds, and runs until Ctrl-C; the same command resumes where it stopped.
#
#   deploy/demo.sh                       # data in ./demo-data, gateway on 127.0.0.1:7575
#   deploy/demo.sh --fresh --rate 20     # start over, 20 requests/s
#   deploy/demo.sh --help                # every option (speed of region time, seed, ...)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
unset OPENSSL_CONF
deploy/debian-packages.sh
cargo build --release --locked -p mezhved
exec target/release/mezhved demo --repo "$root" "$@"
