#!/usr/bin/env bash
# Creates (or brings up to date) the Python venv used by mezhved's interoperability
# tests and prints its path on stdout. Progress goes to stderr.
#
#   tests/interop/venv.sh            # ensure tests/.venv, print its path
#   tests/interop/venv.sh --check    # same, then a smoke test: sign with xmlsec,
#                                    # verify with signxml, run smev-transform
#   py="$(tests/interop/venv.sh)/bin/python"
#
# Idempotent: when the venv already matches requirements.txt it only checks the
# imports (well under a second). A fresh venv takes ~10 s (binary wheels only).
#
# Environment: PYTHON (default python3), MEZHVED_VENV (default <repo>/tests/.venv).
#
# libxml2 trap: python-xmlsec refuses to import ("lxml & xmlsec libxml2 library
# version mismatch") unless lxml runs on the same libxml2. The pinned lxml and
# xmlsec wheels bundle the same libxml2; if they ever disagree (another platform,
# another Python), this script rebuilds both from source against the system
# libxml2/libxmlsec1 (the Debian -dev packages below), which takes ~6 minutes.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${MEZHVED_VENV:-$root/tests/.venv}
req=$here/requirements.txt
py=${PYTHON:-python3}
# Bump when this script changes how the venv is built, to force a rebuild.
layout=1

log() { printf 'venv.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument: $1 (try --help)" ;;
esac

command -v "$py" >/dev/null 2>&1 || die "no $py on PATH (set PYTHON)"
[ -f "$req" ] || die "missing $req"

# --- Debian packages --------------------------------------------------------------
# Headers and pkg-config for the source-build fallback of lxml/xmlsec, and the
# xmlsec1 command-line tool for interop tests.
deb_pkgs=(pkg-config libxml2-dev libxslt1-dev libxmlsec1-dev libxmlsec1-openssl xmlsec1)
if [ "$("$py" -c 'import sys; print(sys.base_prefix)')" = /usr ]; then
  deb_pkgs+=(python3-venv python3-dev)   # Debian's own python3 ships venv separately
fi
if command -v dpkg >/dev/null 2>&1; then
  missing=()
  for p in "${deb_pkgs[@]}"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null 2>&1 || die "need root to apt-get install: ${missing[*]}"
      sudo=(sudo -n)
    fi
    log "apt-get install ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
else
  log "no dpkg: not a Debian system, assuming ${deb_pkgs[*]} (or equivalents) are present"
fi

# --- venv -------------------------------------------------------------------------
# Imports everything and fails (exit 3) if lxml and xmlsec use different libxml2.
import_check() {
  "$venv/bin/python" - <<'PY'
import sys
try:
    import lxml.etree
    import xmlsec
except Exception as e:  # xmlsec.InternalError on a libxml2 mismatch
    sys.exit(f"import lxml/xmlsec failed: {e!r}" if "mismatch" not in str(e) else 3)
import signxml, smev_transform, zeep, pytest, prometheus_client  # noqa: F401
a, b = lxml.etree.LIBXML_VERSION, xmlsec.get_libxml_version()
if a != b:
    print(f"libxml2 mismatch: lxml {a}, xmlsec {b}", file=sys.stderr)
    sys.exit(3)
PY
}

stamp_want=$( { echo "layout=$layout"; "$py" -c 'import sys; print(sys.version)'; cat "$req"; } \
  | sha256sum | cut -d' ' -f1)
stamp_file=$venv/.mezhved-venv-stamp

if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp_want" ] \
   && import_check 2>/dev/null; then
  [ "$check" = 1 ] || { echo "$venv"; exit 0; }
else
  if [ -e "$venv" ] && [ ! -f "$venv/pyvenv.cfg" ] && [ -n "$(ls -A "$venv")" ]; then
    die "$venv exists and is not a venv; refusing to clear it"
  fi
  log "creating $venv with $(command -v "$py") ($("$py" --version 2>&1))"
  "$py" -m venv --clear "$venv"
  rm -f "$stamp_file"
  pip=("$venv/bin/python" -m pip --disable-pip-version-check --no-input -q)
  log "pip install -r $req"
  "${pip[@]}" install -r "$req" >&2
  rc=0; import_check || rc=$?
  if [ "$rc" = 3 ]; then
    pins=$(grep -E '^(lxml|xmlsec)==' "$req" | tr '\n' ' ')
    log "lxml/xmlsec libxml2 mismatch: rebuilding $pins against the system libraries (slow)"
    # shellcheck disable=SC2086
    "${pip[@]}" install --force-reinstall --no-deps --no-binary lxml,xmlsec $pins >&2
    rc=0; import_check || rc=$?
  fi
  [ "$rc" = 0 ] || die "the venv in $venv does not import cleanly (rc=$rc)"
  echo "$stamp_want" > "$stamp_file"
  log "ready"
fi

# --- smoke test (--check) ---------------------------------------------------------
if [ "$check" = 1 ]; then
  log "smoke test: xmlsec signs (RSA-SHA256, exc-c14n), signxml and xmlsec verify, smev-transform"
  "$venv/bin/python" - <<'PY' >&2
import datetime
import importlib.metadata
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
import lxml.etree as etree
import signxml
import xmlsec
from smev_transform import Transform

key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mezhved venv check")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256()))
key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
cert_pem = cert.public_bytes(serialization.Encoding.PEM)

doc = etree.fromstring(
    b'<env xmlns="urn:test"><Data Id="d1"><v>42</v></Data><Sig/></env>')
sig = xmlsec.template.create(doc, xmlsec.constants.TransformExclC14N,
                             xmlsec.constants.TransformRsaSha256, ns="ds")
doc.find("{urn:test}Sig").append(sig)
ref = xmlsec.template.add_reference(sig, xmlsec.constants.TransformSha256, uri="#d1")
xmlsec.template.add_transform(ref, xmlsec.constants.TransformExclC14N)
xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(sig))
xmlsec.tree.add_ids(doc, ["Id"])
ctx = xmlsec.SignatureContext()
ctx.key = xmlsec.Key.from_memory(key_pem, xmlsec.constants.KeyDataFormatPem)
ctx.key.load_cert_from_memory(cert_pem, xmlsec.constants.KeyDataFormatPem)
ctx.sign(sig)
signed = etree.tostring(doc)

res = signxml.XMLVerifier().verify(signed, x509_cert=cert_pem)
assert res.signed_xml.get("Id") == "d1", res.signed_xml

doc2 = etree.fromstring(signed)
xmlsec.tree.add_ids(doc2, ["Id"])
ctx2 = xmlsec.SignatureContext()
ctx2.key = xmlsec.Key.from_memory(cert_pem, xmlsec.constants.KeyDataFormatCertPem)
ctx2.verify(xmlsec.tree.find_node(doc2, xmlsec.constants.NodeSignature))

tampered = signed.replace(b"<v>42</v>", b"<v>43</v>")
try:
    signxml.XMLVerifier().verify(tampered, x509_cert=cert_pem)
    raise SystemExit("tampered document verified")
except signxml.exceptions.InvalidSignature:
    pass

out = Transform().process('<?xml version="1.0"?><a:x xmlns:a="urn:a" b="2" a:c="1">'
                          '\n  <a:y/></a:x>')
assert out == '<ns1:x xmlns:ns1="urn:a" ns1:c="1" b="2"><ns1:y></ns1:y></ns1:x>', out
print("venv.sh: smoke test passed (libxml2 %s, xmlsec %s, signxml %s)" % (
    ".".join(map(str, etree.LIBXML_VERSION)),
    ".".join(map(str, xmlsec.get_libxmlsec_version())),
    importlib.metadata.version("signxml")))
PY
  echo "$venv"
fi
[ "$check" = 1 ] || echo "$venv"
