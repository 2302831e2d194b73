"""XMLDSig interoperability, both directions, with independent implementations.

- Ours -> theirs: signatures made by `mezhved dsig sign` verify with the xmlsec1 command
  line (libxmlsec1) and with signxml; SMEV-profile signatures are re-derived from
  scratch with lxml + the PyPI smev-transform package + the OpenSSL command line.
- Theirs -> ours: signatures made by xmlsec1 (detached by Id, with an InclusiveNamespaces
  PrefixList) and by signxml (enveloped, URI="") verify with `mezhved dsig verify`, and
  so does a GOST signature assembled by hand from lxml's canonical SignedInfo and
  `openssl dgst -engine gost -sign`.
- Tampered copies are refused by both sides, so none of these checks can pass vacuously.
"""

import base64
import json
import pathlib
import subprocess

import lxml.etree as etree
import pytest
import signxml
from signxml import SignatureConfiguration
from smev_transform import Transform

from conftest import (CONTAINER, DS, NS, PKI, REQUEST, SOAP, TARGET, TRUST, key, mezhved,
                      openssl)

EXC = "http://www.w3.org/2001/10/xml-exc-c14n#"
SMEV = "urn://smev-gov-ru/xmldsig/transform"
SIG_METHOD = {
    "rsa": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "ecdsa": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
    "gost": "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34102012-gostr34112012-256",
}
DIGEST = {
    "sha256": "http://www.w3.org/2001/04/xmlenc#sha256",
    "gost": "urn:ietf:params:xml:ns:cpxmlsec:algorithms:gostr34112012-256",
}


def chain_pem(tmp_path: pathlib.Path, alg: str) -> pathlib.Path:
    """Root and intermediate of one algorithm in one PEM file."""
    out = tmp_path / f"{alg}-chain.pem"
    out.write_bytes((PKI / alg / "root-ca.cert.pem").read_bytes()
                    + (PKI / alg / "intermediate-ca.cert.pem").read_bytes())
    return out


def sign_ours(tmp_path, data: bytes, alg: str, transforms: str, name="consumer-is") -> bytes:
    src = tmp_path / "in.xml"
    src.write_bytes(data)
    k, c = key(alg, name)
    return mezhved("dsig", "sign", "--key", k, "--cert", c, "--id", "SIGNED_BY_CONSUMER",
                   "--container", CONTAINER, "--transforms", transforms, src).stdout


def verify_ours(tmp_path, data: bytes, signature_parent=CONTAINER, target=TARGET):
    src = tmp_path / "verify.xml"
    src.write_bytes(data)
    args = ["dsig", "verify", "--trust", TRUST, "--signature-parent", signature_parent]
    if target:
        args += ["--target", target]
    proc = mezhved(*args, src, check=False)
    return proc.returncode, json.loads(proc.stdout.decode() or "{}")


def xmlsec1_verify(tmp_path, data: bytes, alg: str) -> subprocess.CompletedProcess:
    src = tmp_path / "xmlsec1-in.xml"
    src.write_bytes(data)
    return subprocess.run(
        ["xmlsec1", "--verify", "--trusted-pem", PKI / alg / "root-ca.cert.pem",
         "--untrusted-pem", PKI / alg / "intermediate-ca.cert.pem",
         "--id-attr:Id", f"{NS}:SenderProvidedRequestData", src],
        capture_output=True)


def tamper(data: bytes) -> bytes:
    tampered = data.replace("Иванов".encode(), "Петров".encode())
    assert tampered != data
    return tampered


@pytest.mark.parametrize("alg", ["rsa", "ecdsa"])
def test_our_exc_c14n_signature_verifies_with_xmlsec1(tmp_path, send_request, alg):
    signed = sign_ours(tmp_path, send_request, alg, "exc-c14n")
    proc = xmlsec1_verify(tmp_path, signed, alg)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"OK" in proc.stdout + proc.stderr
    bad = xmlsec1_verify(tmp_path, tamper(signed), alg)
    assert bad.returncode != 0


@pytest.mark.parametrize("alg", ["rsa", "ecdsa"])
def test_our_exc_c14n_signature_verifies_with_signxml(tmp_path, send_request, alg):
    signed = sign_ours(tmp_path, send_request, alg, "exc-c14n")
    cert = (PKI / alg / "consumer-is.cert.pem").read_bytes()
    config = SignatureConfiguration(expect_references=1)
    result = signxml.XMLVerifier().verify(signed, x509_cert=cert, id_attribute="Id",
                                          expect_config=config)
    assert etree.QName(result.signed_xml).localname == "SenderProvidedRequestData"
    assert "Иванов" in etree.tostring(result.signed_xml, encoding="unicode")
    with pytest.raises(signxml.exceptions.InvalidSignature):
        signxml.XMLVerifier().verify(tamper(signed), x509_cert=cert, id_attribute="Id",
                                     expect_config=config)


def _digest(alg: str, data: bytes) -> bytes:
    if alg == "gost":
        return openssl("dgst", "-md_gost12_256", "-binary", input=data, gost=True)
    return openssl("dgst", "-sha256", "-binary", input=data)


def _pubkey(tmp_path, alg, name="consumer-is") -> pathlib.Path:
    out = tmp_path / f"{alg}-{name}.pub.pem"
    out.write_bytes(openssl("x509", "-in", PKI / alg / f"{name}.cert.pem", "-pubkey", "-noout",
                            gost=(alg == "gost")))
    return out


def _ecdsa_raw_to_der(raw: bytes) -> bytes:
    """r||s (XMLDSig) to the DER SEQUENCE the openssl command line expects."""
    def integer(b: bytes) -> bytes:
        b = b.lstrip(b"\0") or b"\0"
        if b[0] & 0x80:
            b = b"\0" + b
        return b"\x02" + bytes([len(b)]) + b
    half = len(raw) // 2
    body = integer(raw[:half]) + integer(raw[half:])
    return b"\x30" + bytes([len(body)]) + body


@pytest.mark.parametrize("alg", ["rsa", "ecdsa", "gost"])
def test_our_smev_signature_rederived_with_lxml_smev_transform_and_openssl(tmp_path, send_request_plain, alg):
    """Digest: lxml exc-c14n -> PyPI smev-transform -> openssl dgst equals DigestValue.
    Signature: openssl dgst -verify over lxml's canonical SignedInfo."""
    signed = sign_ours(tmp_path, send_request_plain, alg, "smev")
    root = etree.fromstring(signed)
    target = root.find(f".//{{{NS}}}SenderProvidedRequestData")
    c14n = etree.tostring(target, method="c14n", exclusive=True, with_comments=False)
    transformed = Transform().process(c14n.decode()).encode()
    digest_value = root.find(f".//{{{DS}}}DigestValue").text
    assert base64.b64encode(_digest(alg, transformed)).decode() == digest_value

    signed_info = root.find(f".//{{{DS}}}SignedInfo")
    si_c14n = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    value = base64.b64decode(root.find(f".//{{{DS}}}SignatureValue").text)
    if alg == "ecdsa":
        value = _ecdsa_raw_to_der(value)
    (tmp_path / "si").write_bytes(si_c14n)
    (tmp_path / "sig").write_bytes(value)
    md = "-md_gost12_256" if alg == "gost" else "-sha256"
    out = openssl("dgst", md, "-verify", _pubkey(tmp_path, alg), "-signature", tmp_path / "sig",
                  tmp_path / "si", gost=(alg == "gost"))
    assert b"Verified OK" in out
    (tmp_path / "si").write_bytes(si_c14n.replace(b"SIGNED_BY_CONSUMER", b"SIGNED_BY_ATTACKER"))
    with pytest.raises(AssertionError):
        openssl("dgst", md, "-verify", _pubkey(tmp_path, alg), "-signature", tmp_path / "sig",
                tmp_path / "si", gost=(alg == "gost"))


TEMPLATE = f"""<ds:Signature xmlns:ds="{DS}"><ds:SignedInfo>
<ds:CanonicalizationMethod Algorithm="{EXC}"/>
<ds:SignatureMethod Algorithm="{{method}}"/>
<ds:Reference URI="#SIGNED_BY_CONSUMER"><ds:Transforms>
<ds:Transform Algorithm="{EXC}"><ec:InclusiveNamespaces xmlns:ec="{EXC}" PrefixList="#default ns2 soap"/></ds:Transform>
</ds:Transforms><ds:DigestMethod Algorithm="{DIGEST['sha256']}"/><ds:DigestValue/></ds:Reference>
</ds:SignedInfo><ds:SignatureValue/><ds:KeyInfo><ds:X509Data><ds:X509Certificate/></ds:X509Data></ds:KeyInfo></ds:Signature>"""


@pytest.mark.parametrize("alg", ["rsa", "ecdsa"])
def test_xmlsec1_detached_signature_with_prefix_list_verifies_with_ours(tmp_path, send_request, alg):
    # A default namespace in scope above the signed block makes "#default" matter.
    doc = send_request.replace(b"<ns:SendRequestRequest>",
                               b'<ns:SendRequestRequest xmlns="urn://mezhved/test/default">')
    doc = doc.replace(b"<ns:CallerInformationSystemSignature/>",
                      ("<ns:CallerInformationSystemSignature>"
                       + TEMPLATE.replace("{method}", SIG_METHOD[alg])
                       + "</ns:CallerInformationSystemSignature>").encode())
    tmpl = tmp_path / "tmpl.xml"
    tmpl.write_bytes(doc)
    k, c = key(alg, "consumer-is")
    out = tmp_path / "signed.xml"
    proc = subprocess.run(["xmlsec1", "--sign", "--privkey-pem", f"{k},{c}",
                           "--id-attr:Id", f"{NS}:SenderProvidedRequestData",
                           "--output", out, tmpl], capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode()
    signed = out.read_bytes()
    assert b"X509Certificate>MII" in signed
    rc, verdict = verify_ours(tmp_path, signed)
    assert rc == 0 and verdict["valid"], verdict
    assert "consumer-is" in verdict["signer"]
    rc, verdict = verify_ours(tmp_path, tamper(signed))
    assert rc == 1 and verdict["code"] == "SignatureIsInvalid", verdict


@pytest.mark.parametrize("alg,method", [("rsa", "rsa-sha256"), ("ecdsa", "ecdsa-sha256")])
def test_signxml_enveloped_signature_verifies_with_ours(tmp_path, send_request, alg, method):
    k, c = key(alg, "consumer-is")
    signer = signxml.XMLSigner(
        method=signxml.methods.enveloped,
        signature_algorithm=method,
        digest_algorithm="sha256",
        c14n_algorithm=EXC,
    )
    root = etree.fromstring(send_request)
    signed_root = signer.sign(root, key=k.read_bytes(), cert=c.read_bytes())
    signed = etree.tostring(signed_root, encoding="unicode").encode()
    rc, verdict = verify_ours(tmp_path, signed, signature_parent=f"/{{{SOAP}}}Envelope",
                              target=None)
    assert rc == 0 and verdict["valid"], verdict
    assert verdict["transforms"] == "Enveloped"
    rc, verdict = verify_ours(tmp_path, tamper(signed), signature_parent=f"/{{{SOAP}}}Envelope",
                              target=None)
    assert rc == 1 and not verdict["valid"]


def test_openssl_made_gost_signature_verifies_with_ours(tmp_path, send_request_plain):
    """A SMEV-profile GOST signature assembled without mezhved: the digest from lxml +
    smev-transform + openssl, SignedInfo canonicalised by lxml, signed by openssl."""
    root = etree.fromstring(send_request_plain)
    target = root.find(f".//{{{NS}}}SenderProvidedRequestData")
    c14n = etree.tostring(target, method="c14n", exclusive=True, with_comments=False)
    digest = base64.b64encode(_digest("gost", Transform().process(c14n.decode()).encode())).decode()
    signed_info_xml = (
        f'<ds:SignedInfo xmlns:ds="{DS}">'
        f'<ds:CanonicalizationMethod Algorithm="{EXC}"/>'
        f'<ds:SignatureMethod Algorithm="{SIG_METHOD["gost"]}"/>'
        f'<ds:Reference URI="#SIGNED_BY_CONSUMER"><ds:Transforms>'
        f'<ds:Transform Algorithm="{EXC}"/><ds:Transform Algorithm="{SMEV}"/>'
        f'</ds:Transforms><ds:DigestMethod Algorithm="{DIGEST["gost"]}"/>'
        f'<ds:DigestValue>{digest}</ds:DigestValue></ds:Reference></ds:SignedInfo>')
    si = etree.fromstring(signed_info_xml)
    si_c14n = etree.tostring(si, method="c14n", exclusive=True, with_comments=False)
    (tmp_path / "si").write_bytes(si_c14n)
    k, c = key("gost", "consumer-is")
    value = openssl("dgst", "-md_gost12_256", "-sign", k, tmp_path / "si", gost=True)
    assert len(value) == 64
    cert_der = openssl("x509", "-in", c, "-outform", "DER", gost=True)
    signature = etree.fromstring(
        f'<ds:Signature xmlns:ds="{DS}">{signed_info_xml}'
        f'<ds:SignatureValue>{base64.b64encode(value).decode()}</ds:SignatureValue>'
        f'<ds:KeyInfo><ds:X509Data><ds:X509Certificate>{base64.b64encode(cert_der).decode()}'
        f'</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>')
    root.find(f".//{{{NS}}}CallerInformationSystemSignature").append(signature)
    signed = etree.tostring(root, encoding="unicode").encode()
    rc, verdict = verify_ours(tmp_path, signed)
    assert rc == 0 and verdict["valid"], verdict
    assert verdict["signature_algorithm"] == SIG_METHOD["gost"]
    rc, verdict = verify_ours(tmp_path, tamper(signed))
    assert rc == 1 and verdict["code"] == "SignatureIsInvalid", verdict
