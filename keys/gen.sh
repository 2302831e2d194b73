#!/usr/bin/env bash
# keys/gen.sh [OUTDIR] — generate mezhved's TEST-ONLY PKI (default OUTDIR: keys/test-pki).
#
# !!! TEST ONLY. NEVER USE ANY OF THESE KEYS OR CERTIFICATES IN PRODUCTION. !!!
# Every private key this script writes is committed to a public repository, unencrypted.
#
# The output is rebuilt from scratch on every run (layout: keys/README.md). Only the
# openssl CLI is used; GOST algorithms come from the `gost` engine, selected with
# `-engine gost` on each command (no OPENSSL_CONF).
#
# Validity is long on purpose (CAs ~35 years, end-entity certs and CRLs ~30-35 years) so
# that the committed files keep working in tests without regeneration.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/test-pki}"
marker="DO-NOT-USE-IN-PRODUCTION.txt"

# Refuse to wipe a directory this script did not create: OUTDIR is user input.
if [[ -e "$out" && ! -f "$out/$marker" ]]; then
    if [[ -d "$out" && -z "$(ls -A "$out")" ]]; then
        :
    else
        echo "gen.sh: $out exists and has no $marker; refusing to overwrite it" >&2
        exit 1
    fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/out"
mkdir -p "$stage"

O="mezhved TEST ONLY - NOT FOR PRODUCTION"
CA_DAYS=12784    # ~35 years
EE_DAYS=10957    # ~30 years
CRL_DAYS=12784   # ~35 years: a CRL outlives every certificate it covers
# CAs start a day early so that end-entity certs are well inside their issuer's validity.
ca_start="$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)"
ca_end="$(date -u -d "+$CA_DAYS days" +%Y%m%d%H%M%SZ)"

# ossl ARGS...: the openssl CLI, quiet on success, showing its messages on failure.
ossl() {
    if ! openssl "$@" >"$work/ossl.log" 2>&1; then
        cat "$work/ossl.log" >&2
        echo "gen.sh: openssl $1 failed" >&2
        exit 1
    fi
}

# engine_args ALG: the engine flag the openssl CLI needs for ALG's keys.
engine_args() {
    case "$1" in
        gost*) echo "-engine gost" ;;
        *) echo "" ;;
    esac
}

# genkey ALG FILE: an unencrypted PKCS#8 private key.
genkey() {
    local alg="$1" file="$2"
    case "$alg" in
        rsa) ossl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$file" ;;
        ecdsa)
            ossl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
                -pkeyopt ec_param_enc:named_curve -out "$file"
            ;;
        gost) ossl genpkey -engine gost -algorithm gost2012_256 -pkeyopt paramset:A -out "$file" ;;
        gost512) ossl genpkey -engine gost -algorithm gost2012_512 -pkeyopt paramset:A -out "$file" ;;
        *) echo "genkey: unknown algorithm $alg" >&2; exit 1 ;;
    esac
}

# write_cnf DIR: the `openssl ca` configuration for the CA whose database lives in DIR.
write_cnf() {
    local dir="$1"
    mkdir -p "$dir/new"
    : > "$dir/index.txt"
    echo 1000 > "$dir/crlnumber"
    cat > "$dir/ca.cnf" <<EOF
[ ca ]
default_ca = this_ca

[ this_ca ]
dir              = $dir
database         = \$dir/index.txt
new_certs_dir    = \$dir/new
certificate      = \$dir/ca.cert.pem
private_key      = \$dir/ca.key.pem
crlnumber        = \$dir/crlnumber
rand_serial      = yes
unique_subject   = no
default_md       = default
default_days     = $EE_DAYS
default_crl_days = $CRL_DAYS
policy           = policy_any
copy_extensions  = none
email_in_dn      = no
crl_extensions   = crl_ext

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

[ crl_ext ]
authorityKeyIdentifier = keyid:always

[ v3_root ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ v3_intermediate ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ v3_signer ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature, nonRepudiation
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always

[ v3_encipher_only ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, keyEncipherment
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
}

# make_root ALG DBDIR OUTDIR SUBJECT: a self-signed root CA (key + cert) in OUTDIR.
make_root() {
    local alg="$1" db="$2" dst="$3" subj="$4"
    local eng
    eng="$(engine_args "$alg")"
    write_cnf "$db"
    genkey "$alg" "$dst/root-ca.key.pem"
    cp "$dst/root-ca.key.pem" "$db/ca.key.pem"
    # shellcheck disable=SC2086 # $eng is empty or two words on purpose
    ossl req $eng -new -config "$db/ca.cnf" -key "$db/ca.key.pem" -subj "$subj" \
        -out "$db/ca.csr"
    # shellcheck disable=SC2086
    ossl ca $eng -batch -notext -selfsign -config "$db/ca.cnf" -in "$db/ca.csr" \
        -extensions v3_root -startdate "$ca_start" -enddate "$ca_end" \
        -out "$dst/root-ca.cert.pem"
    cp "$dst/root-ca.cert.pem" "$db/ca.cert.pem"
}

# issue ALG CADB KEYALG NAME OUTDIR SUBJECT EXT [extra `openssl ca` args...]:
# a key for NAME (algorithm KEYALG) and its certificate issued by the CA in CADB.
issue() {
    local alg="$1" db="$2" keyalg="$3" name="$4" dst="$5" subj="$6" ext="$7"
    shift 7
    local eng
    eng="$(engine_args "$alg")"
    # The engine is needed whenever either the CA key or the subject key is GOST.
    [[ -z "$eng" ]] && eng="$(engine_args "$keyalg")"
    genkey "$keyalg" "$dst/$name.key.pem"
    # shellcheck disable=SC2086
    ossl req $eng -new -config "$db/ca.cnf" -key "$dst/$name.key.pem" -subj "$subj" \
        -out "$work/$name.csr"
    # shellcheck disable=SC2086
    ossl ca $eng -batch -notext -config "$db/ca.cnf" -in "$work/$name.csr" \
        -extensions "$ext" -out "$dst/$name.cert.pem" "$@"
}

# gencrl ALG CADB FILE
gencrl() {
    local eng
    eng="$(engine_args "$1")"
    # shellcheck disable=SC2086
    ossl ca $eng -batch -gencrl -config "$2/ca.cnf" -out "$3"
}

# build_family ALG: root CA, intermediate CA, end-entity certs and CRLs for ALG.
build_family() {
    local alg="$1"
    local dst="$stage/$alg"
    local rootdb="$work/$alg-root" interdb="$work/$alg-intermediate"
    local base="/C=RU/O=$O/OU=$alg"
    mkdir -p "$dst"

    make_root "$alg" "$rootdb" "$dst" "$base/CN=mezhved test $alg root CA"

    write_cnf "$interdb"
    issue "$alg" "$rootdb" "$alg" intermediate-ca "$dst" \
        "$base/CN=mezhved test $alg intermediate CA" v3_intermediate \
        -startdate "$ca_start" -enddate "$ca_end"
    cp "$dst/intermediate-ca.key.pem" "$interdb/ca.key.pem"
    cp "$dst/intermediate-ca.cert.pem" "$interdb/ca.cert.pem"

    local name
    for name in gateway consumer-is provider-is second-consumer-is revoked; do
        issue "$alg" "$interdb" "$alg" "$name" "$dst" "$base/CN=$name" v3_signer
    done
    issue "$alg" "$interdb" "$alg" expired "$dst" "$base/CN=expired" v3_signer \
        -startdate 20200101000000Z -enddate 20210101000000Z
    issue "$alg" "$interdb" "$alg" bad-keyusage "$dst" "$base/CN=bad-keyusage" v3_encipher_only
    if [[ "$alg" == gost ]]; then
        issue gost "$interdb" gost512 consumer-is-512 "$dst" "$base/CN=consumer-is-512" v3_signer
    fi

    local eng
    eng="$(engine_args "$alg")"
    # shellcheck disable=SC2086
    ossl ca $eng -batch -config "$interdb/ca.cnf" -revoke "$dst/revoked.cert.pem" \
        -crl_reason keyCompromise
    gencrl "$alg" "$rootdb" "$dst/root-ca.crl"
    gencrl "$alg" "$interdb" "$dst/intermediate-ca.crl"

    # The trust dir holds what a relying party configures: CA certs and CRLs only.
    local f
    for f in root-ca.cert.pem intermediate-ca.cert.pem root-ca.crl intermediate-ca.crl; do
        cp "$dst/$f" "$stage/trust/$alg-$f"
    done
}

mkdir -p "$stage/trust"
build_family rsa
build_family ecdsa
build_family gost

# The rogue root is deliberately absent from trust/: its certs must be rejected as untrusted.
mkdir -p "$stage/rogue"
rogue_base="/C=RU/O=$O/OU=rogue"
make_root rsa "$work/rogue-root" "$stage/rogue" "$rogue_base/CN=mezhved test rogue root CA"
issue rsa "$work/rogue-root" rsa rogue-is "$stage/rogue" "$rogue_base/CN=rogue-is" v3_signer
issue rsa "$work/rogue-root" gost rogue-gost-is "$stage/rogue" "$rogue_base/CN=rogue-gost-is" v3_signer
gencrl rsa "$work/rogue-root" "$stage/rogue/root-ca.crl"

cat > "$stage/$marker" <<EOF
TEST-ONLY PKI generated by keys/gen.sh for mezhved's tests.
All private keys here are public. NEVER use these keys or certificates in production.
Layout: keys/README.md
EOF

chmod 644 "$stage"/*/*.pem "$stage"/*/*.crl
rm -rf "$out"
mkdir -p "$(dirname "$out")"
mv "$stage" "$out"
echo "gen.sh: test PKI written to $out"

# The demo agencies' information systems (deploy/demo), under the new ECDSA intermediate.
"$here/gen-demo.sh" "$out"
