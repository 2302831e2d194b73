#!/usr/bin/env bash
# What mezhved can do today, on a fresh Debian machine: build the `mezhved` command, sign
# a sample SMEV SendRequest with each test key (GOST R 34.10-2012, RSA, ECDSA), verify it
# against the test trust store, then show a tampered copy being refused.
#
#   deploy/dsig-demo.sh
#
# (The exchange itself, `mezhved serve`, arrives with the exchange core.)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
unset OPENSSL_CONF
deploy/debian-packages.sh >/dev/null
cargo build --release --locked -p mezhved
bin=target/release/mezhved
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pki=keys/test-pki
for alg in gost rsa ecdsa; do
  echo "== $alg: sign the request block, verify it where SMEV expects it"
  "$bin" dsig sign --smev --key "$pki/$alg/consumer-is.key.pem" --cert "$pki/$alg/consumer-is.cert.pem" \
    -o "$work/$alg.xml" gateway/dsig/tests/fixtures/send-request.xml
  "$bin" dsig verify --smev --trust "$pki/trust" "$work/$alg.xml"
done
echo "== the same message with one word changed after signing"
sed 's/Иванов/Петров/' "$work/gost.xml" > "$work/tampered.xml"
if "$bin" dsig verify --smev --trust "$pki/trust" "$work/tampered.xml"; then
  echo "tampered message verified: this must not happen" >&2
  exit 1
fi
echo "== refused, as it must be. The signed envelope:"
cat "$work/gost.xml"
