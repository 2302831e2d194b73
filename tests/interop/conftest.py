"""Shared fixtures of the interoperability suite.

The suite faces mezhved's `mezhved` binary with independent implementations: lxml
(libxml2's canonicaliser), xmlsec1 and python-xmlsec (libxmlsec1), signxml, the PyPI
smev-transform package and the OpenSSL command line with the GOST engine. Run it through
tests/run.sh, which builds the binary and the venv first.
"""

import os
import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PKI = ROOT / "keys" / "test-pki"
TRUST = PKI / "trust"
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1"
DS = "http://www.w3.org/2000/09/xmldsig#"
REQUEST = f"/{{{SOAP}}}Envelope/{{{SOAP}}}Body/{{{NS}}}SendRequestRequest"
TARGET = f"{REQUEST}/{{{NS}}}SenderProvidedRequestData"
CONTAINER = f"{REQUEST}/{{{NS}}}CallerInformationSystemSignature"


def mezhved_bin() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("MEZHVED_BIN", ROOT / "target" / "debug" / "mezhved"))
    if not path.exists():
        pytest.exit(f"{path} not built: run tests/run.sh (or cargo build -p mezhved)", 2)
    return path


def mezhved(*args, check=True, input=None):
    """Runs the mezhved binary; returns the CompletedProcess (stdout as bytes)."""
    proc = subprocess.run(
        [str(mezhved_bin()), *map(str, args)], capture_output=True, input=input
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"mezhved {' '.join(map(str, args))} exited {proc.returncode}: "
            f"{proc.stderr.decode(errors='replace')}{proc.stdout.decode(errors='replace')}"
        )
    return proc


def openssl(*args, input=None, gost=False):
    """Runs the openssl CLI; GOST through `-engine gost`, never through OPENSSL_CONF."""
    cmd = ["openssl", *map(str, args)]
    if gost:
        cmd.insert(2, "-engine")
        cmd.insert(3, "gost")
    proc = subprocess.run(cmd, capture_output=True, input=input)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout


def key(alg: str, name: str):
    return PKI / alg / f"{name}.key.pem", PKI / alg / f"{name}.cert.pem"


@pytest.fixture
def send_request() -> bytes:
    return (FIXTURES / "send-request.xml").read_bytes()


@pytest.fixture
def send_request_plain(send_request) -> bytes:
    """The request without markup characters in text: the PyPI smev-transform writes `&`
    unescaped (protocol.md section 4), so digests derived with it are compared on text
    that needs no escaping."""
    plain = send_request.replace(b"Tom &amp; Jerry", b"Tom and Jerry")
    assert b"&" not in plain
    return plain
