#!/usr/bin/env bash
# keys/gen-demo.sh [--force] [PKIDIR] — TEST-ONLY certificates of the four demo agencies'
# information systems (deploy/demo), issued by the existing ECDSA test intermediate CA.
#
# !!! TEST ONLY. NEVER USE ANY OF THESE KEYS OR CERTIFICATES IN PRODUCTION. !!!
# Every private key this script writes is committed to a public repository, unencrypted.
#
# PKIDIR (default keys/test-pki) must hold the test PKI made by keys/gen.sh; the
# certificates are issued by PKIDIR/ecdsa/intermediate-ca.{cert,key}.pem, which this
# script only reads (it neither re-signs nor touches the CA's CRL), and written to
# PKIDIR/demo/<system>.{key,cert}.pem with a DO-NOT-USE-IN-PRODUCTION.txt marker.
#
# Idempotent: a system whose key and certificate are present, match each other, and
# verify against PKIDIR/ecdsa/{root,intermediate}-ca.cert.pem is left alone; only missing
# or stale ones (e.g. after keys/gen.sh made a new CA) are (re)issued. --force reissues
# all four. The extensions are exactly those keys/gen.sh gives its information-system
# certificates (section v3_signer): CA:FALSE, keyUsage digitalSignature + nonRepudiation
# (critical), subject and authority key identifiers. Subject:
# C=RU, O=mezhved TEST ONLY - NOT FOR PRODUCTION, OU=demo, CN=<system mnemonic>.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
force=0
if [[ "${1:-}" == --force ]]; then
    force=1
    shift
fi
pki="${1:-$here/test-pki}"
ca_dir="$pki/ecdsa"
out="$pki/demo"
marker="DO-NOT-USE-IN-PRODUCTION.txt"

# system mnemonic -> file stem
systems=(USZN_IS ZAGS_IS FNS_IS SFR_IS)
stem() { echo "$1" | tr 'A-Z_' 'a-z-'; }

for f in intermediate-ca.cert.pem intermediate-ca.key.pem root-ca.cert.pem; do
    if [[ ! -f "$ca_dir/$f" ]]; then
        echo "gen-demo.sh: $ca_dir/$f is missing; run keys/gen.sh first" >&2
        exit 1
    fi
done
# The CA directory must be the test PKI (its marker), and OUT one this script made.
if [[ ! -f "$pki/$marker" ]]; then
    echo "gen-demo.sh: $pki has no $marker; refusing to use it" >&2
    exit 1
fi
if [[ -e "$out" && ! -f "$out/$marker" ]]; then
    if [[ -d "$out" && -z "$(ls -A "$out")" ]]; then
        :
    else
        echo "gen-demo.sh: $out exists and has no $marker; refusing to write into it" >&2
        exit 1
    fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

ossl() {
    if ! openssl "$@" >"$work/ossl.log" 2>&1; then
        cat "$work/ossl.log" >&2
        echo "gen-demo.sh: openssl $1 failed" >&2
        exit 1
    fi
}

# current NAME: the key and certificate of NAME exist, match, and chain to the CA.
current() {
    local key="$out/$1.key.pem" cert="$out/$1.cert.pem"
    [[ -f "$key" && -f "$cert" ]] || return 1
    openssl verify -x509_strict -CAfile "$ca_dir/root-ca.cert.pem" \
        -untrusted "$ca_dir/intermediate-ca.cert.pem" "$cert" >/dev/null 2>&1 || return 1
    [[ "$(openssl pkey -in "$key" -pubout 2>/dev/null)" == \
        "$(openssl x509 -in "$cert" -noout -pubkey 2>/dev/null)" ]]
}

# The `openssl ca` set-up of keys/gen.sh (write_cnf), reduced to what issuing needs; a
# fresh database each run, random serials (rand_serial), as gen.sh does.
db="$work/ca"
mkdir -p "$db/new"
: > "$db/index.txt"
cp "$ca_dir/intermediate-ca.cert.pem" "$db/ca.cert.pem"
cp "$ca_dir/intermediate-ca.key.pem" "$db/ca.key.pem"
cat > "$db/ca.cnf" <<EOF
[ ca ]
default_ca = this_ca

[ this_ca ]
dir              = $db
database         = \$dir/index.txt
new_certs_dir    = \$dir/new
certificate      = \$dir/ca.cert.pem
private_key      = \$dir/ca.key.pem
rand_serial      = yes
unique_subject   = no
default_md       = default
default_days     = 10957
policy           = policy_any
copy_extensions  = none
email_in_dn      = no

[ policy_any ]
countryName            = optional
organizationName       = optional
organizationalUnitName = optional
commonName             = supplied

[ req ]
distinguished_name = req_dn
prompt             = no
[ req_dn ]
CN = placeholder

[ v3_signer ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, nonRepudiation
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF

mkdir -p "$out"
issued=0
for sys in "${systems[@]}"; do
    name="$(stem "$sys")"
    if [[ "$force" == 0 ]] && current "$name"; then
        continue
    fi
    ossl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
        -pkeyopt ec_param_enc:named_curve -out "$work/$name.key.pem"
    ossl req -new -config "$db/ca.cnf" -key "$work/$name.key.pem" \
        -subj "/C=RU/O=mezhved TEST ONLY - NOT FOR PRODUCTION/OU=demo/CN=$sys" \
        -out "$work/$name.csr"
    ossl ca -batch -notext -config "$db/ca.cnf" -in "$work/$name.csr" \
        -extensions v3_signer -out "$work/$name.cert.pem"
    chmod 644 "$work/$name.key.pem" "$work/$name.cert.pem"
    mv "$work/$name.key.pem" "$out/$name.key.pem"
    mv "$work/$name.cert.pem" "$out/$name.cert.pem"
    issued=$((issued + 1))
done

cat > "$work/$marker" <<EOF
TEST-ONLY certificates of the demo agencies' information systems (deploy/demo),
generated by keys/gen-demo.sh and issued by ../ecdsa/intermediate-ca.
All private keys here are public. NEVER use these keys or certificates in production.
Files: <system>.key.pem (PKCS#8, ECDSA P-256) and <system>.cert.pem for
uszn-is (USZN_IS), zags-is (ZAGS_IS), fns-is (FNS_IS), sfr-is (SFR_IS).
EOF
if ! cmp -s "$work/$marker" "$out/$marker"; then
    cp "$work/$marker" "$out/$marker"
    chmod 644 "$out/$marker"
fi
echo "gen-demo.sh: $issued of ${#systems[@]} demo certificates issued in $out"
