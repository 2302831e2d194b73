"""Helpers for the suites that drive a running `mezhved serve` over HTTP
(test_gateway_zeep.py, test_gateway_conformance.py).

- `Gateway`: starts the binary with the sample configuration (deploy/sample/mezhved.toml)
  on 127.0.0.1:0 with a fresh data directory, reads the port from the line it prints,
  posts SOAP calls with a timeout, and stops it with SIGTERM.
- `sign`: signs a call's block into its (present, empty) CallerInformationSystemSignature
  with `mezhved dsig sign --smev`, the way an agency's system would.
- Envelope builders for every operation, a request card the sample registry accepts,
  and the schemas (ours, the published reference, the mezhved extensions) to validate
  what goes over the wire.

Nothing here knows the gateway's internals: it sees only what a SMEV 3 client sees.
"""

import base64
import contextlib
import datetime
import os
import pathlib
import re
import signal
import subprocess
import threading
import uuid
from xml.sax.saxutils import escape

import lxml.etree as etree
import requests

from conftest import DS, NS, PKI, ROOT, SOAP, mezhved_bin  # noqa: F401 (DS re-exported)

BASIC = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.1"
FAULTS = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/faults/1.1"
MZ = "urn://mezhved/ext/1.0"
XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"

SAMPLE_CONFIG = ROOT / "deploy" / "sample" / "mezhved.toml"
SMEV_DIR = ROOT / "schemas" / "smev" / "1.1"
EXT_XSD = ROOT / "schemas" / "mezhved" / "mezhved-ext-1.0.xsd"
SERVICE_WSDL = "smev-message-exchange-service-1.1.wsdl"
SMEV_FILES = ("smev-message-exchange-basic-1.1.xsd", "smev-message-exchange-types-1.1.xsd",
              "smev-message-exchange-faults-1.1.xsd", SERVICE_WSDL)

# The sample registry (deploy/sample/registry.toml).
BIRTH_NS = "urn://mezhved/demo/zags/birth-record/1.0"
BIRTH_ROOT = "BirthRecordRequest"
CONSUMER_AGENCY = "Social Protection Office of the Sample Region"
PROVIDER_AGENCY = "Civil Registry Office of the Sample Region"
PFR_AGENCY = "Pension Fund Branch of the Sample Region"
SYSTEM_KEYS = {  # system mnemonic -> test key (ECDSA)
    "USZN_IS": "consumer-is",
    "ZAGS_IS": "provider-is",
    "PFR_IS": "second-consumer-is",
}

# A call that takes longer than this is taken for a hung gateway.
CALL_TIMEOUT = float(os.environ.get("MEZHVED_TEST_CALL_TIMEOUT", "5"))
START_TIMEOUT = 15.0
# The gateway drains for MEZHVED_SERVER__SHUTDOWN_GRACE_SECONDS (2 s here) after SIGTERM.
STOP_TIMEOUT = 6.0
STOP_TIMEOUT_HUNG = 3.0  # a gateway that already hung gets less time

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def q(ns: str, local: str) -> str:
    return f"{{{ns}}}{local}"


# ------------------------------------------------------------------------ the process

class GatewayHung(AssertionError):
    pass


class Gateway:
    """A `mezhved serve` child process. Use `started()`."""

    def __init__(self, data_dir: pathlib.Path, log_path: pathlib.Path, config=SAMPLE_CONFIG, env=None):
        self.data_dir = data_dir
        self.log_path = log_path
        self.config = config
        self.extra_env = dict(env or {})
        self.proc = None
        self.base = None       # http://127.0.0.1:PORT
        self.endpoint = None   # <base>/smev/v1.1
        self.hung = None       # set once a call timed out: later calls fail at once
        self.session = requests.Session()
        self.session.trust_env = False  # never through a proxy: the gateway is local

    def start(self):
        # The harness's own variables (MEZHVED_BIN, MEZHVED_SMEV3_REFERENCE, ...) reach the
        # gateway on purpose: `mezhved serve` must leave variables that are not configuration
        # keys alone.
        env = dict(os.environ)
        env.pop("OPENSSL_CONF", None)  # tests/run.sh: the binary loads the GOST engine itself
        env.update({
            "MEZHVED_DATA_DIR": str(self.data_dir),
            "MEZHVED_SERVER__LISTEN": "127.0.0.1:0",
            # Keep the sample's 10 s drain from slowing down teardown.
            "MEZHVED_SERVER__SHUTDOWN_GRACE_SECONDS": "2",
        })
        env.update(self.extra_env)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(mezhved_bin()), "serve", "--config", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._log, env=env)
        line = self._first_line()
        m = re.search(r"mezhved listening on (http://127\.0\.0\.1:(\d+))/smev/v1\.1 \(WSDL: \?wsdl\)", line)
        if not m:
            self.stop(check=False)
            raise AssertionError(f"unexpected first line of `mezhved serve`: {line!r}\n{self.log_tail()}")
        self.base = m.group(1)
        self.endpoint = f"{self.base}/smev/v1.1"
        return self

    def _first_line(self) -> str:
        box = []
        reader = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        if not box:
            self.stop(check=False)
            raise AssertionError(f"`mezhved serve` printed nothing within {START_TIMEOUT} s\n{self.log_tail()}")
        if not box[0]:
            self.proc.wait(5)
            code = self.stop(check=False)
            raise AssertionError(f"`mezhved serve` exited with {code} before listening\n{self.log_tail()}")
        return box[0].decode(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # ANSI colours of the text log format
        return "gateway log (tail):\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self, check=True):
        """SIGTERM, then wait; returns the exit code. With `check`, a gateway that does
        not stop in STOP_TIMEOUT s (it is then killed) or exits non-zero is an error."""
        if self.proc is None:
            return None
        self.session.close()
        problem = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            timeout = STOP_TIMEOUT_HUNG if self.hung else STOP_TIMEOUT
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problem = f"`mezhved serve` did not exit within {timeout} s of SIGTERM (killed)"
        code = self.proc.returncode
        if problem is None and code != 0:
            problem = f"`mezhved serve` exited with {code} after SIGTERM"
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()
        self.proc = None
        if check and problem:
            raise AssertionError(f"{problem}\n{self.log_tail()}")
        return code

    # -------------------------------------------------------------- HTTP

    def get(self, url: str) -> requests.Response:
        self._check_alive()
        try:
            return self.session.get(url, timeout=(5, CALL_TIMEOUT))
        except requests.exceptions.Timeout:
            raise self._hang(f"GET {url}") from None

    def post(self, envelope: bytes, content_type="text/xml; charset=utf-8", soap_action=None) -> requests.Response:
        self._check_alive()
        headers = {"Content-Type": content_type}
        if soap_action:
            headers["SOAPAction"] = soap_action
        try:
            return self.session.post(self.endpoint, data=envelope, headers=headers, timeout=(5, CALL_TIMEOUT))
        except requests.exceptions.Timeout:
            raise self._hang(f"POST {self.endpoint}") from None

    def _check_alive(self):
        if self.hung:
            raise GatewayHung(self.hung)
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"the gateway is not running\n{self.log_tail()}")

    def _hang(self, what: str) -> GatewayHung:
        self.hung = (f"{what}: no answer within {CALL_TIMEOUT} s; the gateway is hung "
                     f"(later calls to it fail at once)\n{self.log_tail()}")
        return GatewayHung(self.hung)


@contextlib.contextmanager
def hang_guard(gw: Gateway):
    """Turns a client library's read timeout (zeep over requests) into GatewayHung."""
    try:
        yield
    except requests.exceptions.Timeout as e:
        raise gw._hang(f"{e}") from None


@contextlib.contextmanager
def started(tmp: pathlib.Path, **kwargs):
    """A running gateway with its data and log in `tmp`; stopped (checked) on exit."""
    gw = Gateway(tmp / "data", tmp / "gateway.log", **kwargs).start()
    try:
        yield gw
    finally:
        gw.stop(check=True)


# ------------------------------------------------------------------------ signing

def key_files(system_or_key: str):
    name = SYSTEM_KEYS.get(system_or_key, system_or_key)
    d = PKI / "ecdsa"
    return d / f"{name}.key.pem", d / f"{name}.cert.pem"


def sign(envelope: bytes, system: str) -> bytes:
    """`mezhved dsig sign --smev` with the system's key, the envelope on stdin."""
    k, c = key_files(system)
    proc = subprocess.run(
        [str(mezhved_bin()), "dsig", "sign", "--smev", "--key", str(k), "--cert", str(c), "/dev/stdin"],
        input=envelope, capture_output=True, timeout=30)
    if proc.returncode != 0:
        raise AssertionError(f"mezhved dsig sign --smev ({system}) exited {proc.returncode}: "
                             f"{proc.stderr.decode(errors='replace')}")
    return proc.stdout


# ------------------------------------------------------------------------ message content

def message_id() -> str:
    """A sender's MessageID: a UUID version 1, as the protocol requires."""
    return str(uuid.uuid1())


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def xs_datetime(t=None) -> str:
    t = t or utc_now()
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def today() -> str:
    # The gateway dates cards in UTC (a day ahead is tolerated, a day behind is not).
    return utc_now().date().isoformat()


def request_card(sender=CONSUMER_AGENCY, recipient=PROVIDER_AGENCY, number="USZN-2026/1", *, drop=(),
                 replace=None) -> str:
    """A complete mz:RequestCard (as adapters/client RequestCard::complete writes it).
    `drop` names child elements to leave out, `replace` maps a child's name to raw XML."""
    d = today()
    parts = {
        "SenderAgency": f"<mz:SenderAgency>{escape(sender)}</mz:SenderAgency>",
        "RecipientAgency": f"<mz:RecipientAgency>{escape(recipient)}</mz:RecipientAgency>",
        "Service": "<mz:Service><mz:Name>Assignment of the monthly child allowance</mz:Name>"
                   "<mz:RegistryNumber>4200000000161370001</mz:RegistryNumber></mz:Service>",
        "LegalBasis": "<mz:LegalBasis><mz:Act>Federal Law of 27.07.2010 No. 210-FZ</mz:Act>"
                      "<mz:Provision>art. 7.2 part 1</mz:Provision></mz:LegalBasis>",
        "SearchDetails": '<mz:SearchDetails><mz:Detail name="surname">Ivanova</mz:Detail>'
                         '<mz:Detail name="birth_date">2019-05-14</mz:Detail></mz:SearchDetails>',
        "ReplyContact": "<mz:ReplyContact>uszn@example.gov.ru</mz:ReplyContact>",
        "SentOn": f"<mz:SentOn>{d}</mz:SentOn>",
        "Official": "<mz:Official><mz:FullName>Petrova Anna Sergeevna</mz:FullName>"
                    "<mz:Position>Chief specialist</mz:Position><mz:Phone>+7 (3842) 00-00-00</mz:Phone>"
                    "<mz:Email>petrova@example.gov.ru</mz:Email></mz:Official>",
        "SubjectConsent": "<mz:SubjectConsent><mz:Obtained>true</mz:Obtained></mz:SubjectConsent>",
        "SenderRegistration": f"<mz:SenderRegistration><mz:Number>{escape(number)}</mz:Number>"
                              f"<mz:Date>{d}</mz:Date></mz:SenderRegistration>",
    }
    for name, xml in (replace or {}).items():
        assert name in parts, name
        parts[name] = xml
    body = "".join(v for k, v in parts.items() if k not in drop)
    return f'<mz:RequestCard xmlns:mz="{MZ}">{body}</mz:RequestCard>'


def birth_request(surname="Ivanova", birth_date="2019-05-14") -> str:
    return (f'<br:BirthRecordRequest xmlns:br="{BIRTH_NS}"><br:Surname>{escape(surname)}</br:Surname>'
            f"<br:BirthDate>{birth_date}</br:BirthDate></br:BirthRecordRequest>")


def birth_record(number="170-2019-0042") -> str:
    return (f'<br:BirthRecord xmlns:br="{BIRTH_NS}"><br:Number>{number}</br:Number>'
            "<br:Date>2019-05-20</br:Date><br:Child>Ivanova Maria Petrovna</br:Child></br:BirthRecord>")


# ------------------------------------------------------------------------ envelopes (unsigned)

def envelope(body: str, header: str = "") -> bytes:
    head = f"<soap:Header>{header}</soap:Header>" if header else ""
    return (f'<soap:Envelope xmlns:soap="{SOAP}" xmlns:ns="{NS}" xmlns:ns2="{BASIC}">'
            f"{head}<soap:Body>{body}</soap:Body></soap:Envelope>").encode()


EMPTY_SIGNATURE = "<ns:CallerInformationSystemSignature/>"


def _attachments(attachments):
    """(headers in the block, content list after it) for inline attachments
    [(content_id, mime_type, bytes)]."""
    if not attachments:
        return "", ""
    headers = "".join(f"<ns2:AttachmentHeader><ns2:contentId>{cid}</ns2:contentId>"
                      f"<ns2:MimeType>{mime}</ns2:MimeType></ns2:AttachmentHeader>"
                      for cid, mime, _ in attachments)
    contents = "".join(f"<ns2:AttachmentContent><ns2:Id>{cid}</ns2:Id>"
                       f"<ns2:Content>{base64.b64encode(data).decode()}</ns2:Content></ns2:AttachmentContent>"
                       for cid, _, data in attachments)
    return (f"<ns2:AttachmentHeaderList>{headers}</ns2:AttachmentHeaderList>",
            f"<ns2:AttachmentContentList>{contents}</ns2:AttachmentContentList>")


def send_request(content: str, *, mid=None, card=None, attachments=(), test=False) -> bytes:
    mid = mid or message_id()
    card = request_card() if card is None else card
    headers, contents = _attachments(attachments)
    bpm = f"<ns:BusinessProcessMetadata>{card}</ns:BusinessProcessMetadata>" if card else ""
    return envelope(
        "<ns:SendRequestRequest>"
        f'<ns:SenderProvidedRequestData Id="SIGNED_BY_CONSUMER"><ns:MessageID>{mid}</ns:MessageID>'
        f"<ns2:MessagePrimaryContent>{content}</ns2:MessagePrimaryContent>{headers}{bpm}"
        f"{'<ns:TestMessage/>' if test else ''}</ns:SenderProvidedRequestData>"
        f"{contents}{EMPTY_SIGNATURE}</ns:SendRequestRequest>")


def send_response(to: str, *, content=None, rejection=None, status=None, mid=None, attachments=()) -> bytes:
    """Exactly one of content (XML), rejection (code, description), status
    (code, description, [(key, value)])."""
    mid = mid or message_id()
    headers, contents = _attachments(attachments)
    if content is not None:
        inner = f"<ns2:MessagePrimaryContent>{content}</ns2:MessagePrimaryContent>{headers}"
    elif rejection is not None:
        inner = (f"<ns:RequestRejected><ns:RejectionReasonCode>{rejection[0]}</ns:RejectionReasonCode>"
                 f"<ns:RejectionReasonDescription>{escape(rejection[1])}</ns:RejectionReasonDescription>"
                 "</ns:RequestRejected>")
    else:
        code, description, params = status
        inner = (f"<ns:RequestStatus><ns:StatusCode>{code}</ns:StatusCode>"
                 + "".join(f"<ns:StatusParameter><ns:Key>{escape(k)}</ns:Key><ns:Value>{escape(v)}</ns:Value>"
                           "</ns:StatusParameter>" for k, v in params)
                 + f"<ns:StatusDescription>{escape(description)}</ns:StatusDescription></ns:RequestStatus>")
    return envelope(
        "<ns:SendResponseRequest>"
        f'<ns:SenderProvidedResponseData Id="SIGNED_BY_PROVIDER"><ns:MessageID>{mid}</ns:MessageID>'
        f"<ns:To>{escape(to)}</ns:To>{inner}</ns:SenderProvidedResponseData>"
        f"{contents}{EMPTY_SIGNATURE}</ns:SendResponseRequest>")


def _selector(kind=None) -> str:
    sel = (f"<ns2:NamespaceURI>{kind[0]}</ns2:NamespaceURI>"
           f"<ns2:RootElementLocalName>{kind[1]}</ns2:RootElementLocalName>") if kind else ""
    return (f'<ns2:MessageTypeSelector Id="SIGNED_BY_CALLER">{sel}'
            f"<ns2:Timestamp>{xs_datetime()}</ns2:Timestamp></ns2:MessageTypeSelector>")


def get_request(kind=(BIRTH_NS, BIRTH_ROOT)) -> bytes:
    return envelope(f"<ns:GetRequestRequest>{_selector(kind)}{EMPTY_SIGNATURE}</ns:GetRequestRequest>")


def get_response(kind=(BIRTH_NS, BIRTH_ROOT)) -> bytes:
    return envelope(f"<ns:GetResponseRequest>{_selector(kind)}{EMPTY_SIGNATURE}</ns:GetResponseRequest>")


def ack(global_id: str, accepted=True, receiver_registration=None) -> bytes:
    header = ""
    if receiver_registration:
        number, at = receiver_registration
        header = (f'<mz:ReceiverRegistration xmlns:mz="{MZ}"><mz:Number>{escape(number)}</mz:Number>'
                  f"<mz:RegisteredAt>{at}</mz:RegisteredAt></mz:ReceiverRegistration>")
    return envelope(
        f'<ns:AckRequest><ns2:AckTargetMessage Id="SIGNED_BY_CALLER" accepted="{str(accepted).lower()}">'
        f"{global_id}</ns2:AckTargetMessage>{EMPTY_SIGNATURE}</ns:AckRequest>", header)


def get_status() -> bytes:
    return envelope(f'<ns:GetStatusRequest><ns2:Timestamp Id="SIGNED_BY_CALLER">{xs_datetime()}</ns2:Timestamp>'
                    f"{EMPTY_SIGNATURE}</ns:GetStatusRequest>")


def queue_statistics() -> bytes:
    return envelope("<ns:GetIncomingQueueStatisticsRequest>"
                    f'<ns2:Timestamp Id="SIGNED_BY_CALLER">{xs_datetime()}</ns2:Timestamp>'
                    f"{EMPTY_SIGNATURE}</ns:GetIncomingQueueStatisticsRequest>")


# ------------------------------------------------------------------------ reading documents

def parse(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False))


def body_element(root: etree._Element) -> etree._Element:
    """The soap:Body's single element."""
    assert root.tag == q(SOAP, "Envelope"), root.tag
    body = root.find(q(SOAP, "Body"))
    assert body is not None, "no soap:Body"
    kids = [c for c in body if isinstance(c.tag, str)]
    assert len(kids) == 1, f"soap:Body holds {len(kids)} elements"
    return kids[0]


def fault_detail(fault: etree._Element) -> etree._Element:
    detail = fault.find("detail")
    assert detail is not None, "soap:Fault without detail"
    kids = [c for c in detail if isinstance(c.tag, str)]
    assert len(kids) == 1, f"detail holds {len(kids)} elements"
    return kids[0]


def header_blocks(root: etree._Element) -> list:
    header = root.find(q(SOAP, "Header"))
    return [] if header is None else [c for c in header if isinstance(c.tag, str)]


def standalone(el: etree._Element) -> etree._ElementTree:
    return etree.ElementTree(etree.fromstring(etree.tostring(el)))


# ------------------------------------------------------------------------ schemas

class _NoNetwork(etree.Resolver):
    def resolve(self, url, pubid, context):
        if url and re.match(r"(?i)^[a-z][a-z0-9+.-]*://", url) and not url.lower().startswith("file:"):
            raise AssertionError(f"schema loading tried to fetch {url}")
        return None


def _file_parser() -> etree.XMLParser:
    p = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities=False)
    p.resolvers.add(_NoNetwork())
    return p


def wsdl_schema(directory: pathlib.Path) -> etree.XMLSchema:
    """The schema a WSDL client sees: the service WSDL's wsdl:types/xs:schema with its
    imports resolved from sibling files."""
    path = directory / SERVICE_WSDL
    embedded = etree.parse(str(path), _file_parser()).find(f"{{{WSDL}}}types/{{{XS}}}schema")
    doc = etree.fromstring(etree.tostring(embedded), _file_parser(), base_url=str(path))
    return etree.XMLSchema(doc)


def reference_dir():
    env = os.environ.get("MEZHVED_SMEV3_REFERENCE")
    path = pathlib.Path(env) if env else ROOT.parent / "shared" / "reference" / "smev3" / "1.1"
    missing = [n for n in SMEV_FILES if not (path / n).is_file()]
    return path, missing


class Schemas:
    """Ours (schemas/smev/1.1), the reference (None when absent: `reference_missing`
    says why) and the mezhved extensions."""

    def __init__(self):
        self.ours = wsdl_schema(SMEV_DIR)
        self.ext = etree.XMLSchema(etree.parse(str(EXT_XSD), _file_parser()))
        path, missing = reference_dir()
        self.reference = None if missing else wsdl_schema(path)
        self.reference_missing = (
            f"SMEV 3 1.1 reference schemas not found in {path} (missing: {', '.join(missing)}); "
            "set MEZHVED_SMEV3_REFERENCE to the directory holding them") if missing else None

    @staticmethod
    def _check(schema, el, what, name):
        if not schema.validate(standalone(el)):
            errors = "\n".join(f"  line {e.line}: {e.message}" for e in schema.error_log)
            raise AssertionError(f"{what}: {etree.QName(el).localname} is invalid against {name}:\n{errors}\n"
                                 f"document: {etree.tostring(el)[:3000].decode(errors='replace')}")

    def smev(self, el, what):
        """Valid against our schemas and (when present) the reference."""
        self._check(self.ours, el, what, "our schemas (schemas/smev/1.1)")
        if self.reference is not None:
            self._check(self.reference, el, what, "the reference schemas")

    def mz(self, el, what):
        self._check(self.ext, el, what, "schemas/mezhved/mezhved-ext-1.0.xsd")


# ------------------------------------------------------------------------ a SOAP caller

class Reply:
    """A gateway answer: HTTP status, parsed envelope, its body element and, for a
    fault, the fault detail element."""

    def __init__(self, http: requests.Response, request: bytes):
        self.http = http
        self.request = request
        self.raw = http.content
        self.root = parse(self.raw)
        self.body = body_element(self.root)
        self.fault = fault_detail(self.body) if self.body.tag == q(SOAP, "Fault") else None

    @property
    def fault_name(self):
        return None if self.fault is None else etree.QName(self.fault).localname

    def find(self, ns: str, local: str):
        return self.body.find(f".//{{{ns}}}{local}")

    def text(self, ns: str, local: str):
        el = self.find(ns, local)
        return None if el is None else (el.text or "").strip()

    def registration(self):
        regs = [b for b in header_blocks(self.root) if b.tag == q(MZ, "Registration")]
        assert len(regs) <= 1, "more than one mz:Registration header"
        return regs[0] if regs else None

    def describe(self) -> str:
        return (f"HTTP {self.http.status_code}\nrequest: {self.request[:1500].decode(errors='replace')}\n"
                f"response: {self.raw[:3000].decode(errors='replace')}")


class Party:
    """An information system calling the gateway: signs each call with its key, checks
    that what it sends and what it gets back is valid SMEV 3 (ours and the reference)."""

    def __init__(self, gw: Gateway, system: str, schemas: Schemas, key: str = None):
        self.gw, self.system, self.schemas, self.key = gw, system, schemas, key or system
        self.log = []  # (request bytes, Reply)

    def call(self, unsigned: bytes, *, sign_it=True, signed: bytes = None, validate_request=True) -> Reply:
        """`validate_request=False` only for calls that are deliberately not valid SMEV."""
        data = signed if signed is not None else (sign(unsigned, self.key) if sign_it else unsigned)
        request_body = body_element(parse(data))
        if validate_request:
            self.schemas.smev(request_body, f"{self.system} request")
        operation = etree.QName(request_body).localname.removesuffix("Request")
        http = self.gw.post(data, soap_action=f'"urn:{operation}"')
        ctype = http.headers.get("Content-Type", "")
        assert ctype.replace(" ", "").lower() == "text/xml;charset=utf-8", f"Content-Type {ctype!r}"
        reply = Reply(http, data)
        self.log.append((data, reply))
        what = f"gateway answer to {etree.QName(request_body).localname} from {self.system}"
        if reply.fault is not None:
            assert http.status_code == 500, f"a fault with HTTP {http.status_code}"
            fault = reply.body
            assert [c.tag for c in fault if isinstance(c.tag, str)] == ["faultcode", "faultstring", "detail"]
            prefix, _, local = (fault.findtext("faultcode") or "").partition(":")
            assert fault.nsmap.get(prefix) == SOAP, f"faultcode {fault.findtext('faultcode')!r}"
            assert local == ("Server" if reply.fault_name == "SMEVFailure" else "Client"), reply.describe()
            assert (fault.findtext("faultstring") or "").strip(), "empty faultstring"
            assert reply.fault.tag.startswith(f"{{{FAULTS}}}"), reply.fault.tag
            self.schemas.smev(reply.fault, what + " (fault detail)")
        else:
            assert http.status_code == 200, reply.describe()
            assert reply.body.tag == q(NS, f"{operation}Response"), reply.describe()
            self.schemas.smev(reply.body, what)
        return reply

    def ok(self, unsigned: bytes, **kw) -> Reply:
        reply = self.call(unsigned, **kw)
        assert reply.fault is None, f"{self.system}: unexpected fault {reply.fault_name}\n{reply.describe()}"
        return reply

    def fails(self, unsigned: bytes, fault: str, **kw) -> Reply:
        reply = self.call(unsigned, **kw)
        assert reply.fault_name == fault, f"{self.system}: expected {fault}, got {reply.fault_name or 'no fault'}\n" \
                                          + reply.describe()
        return reply
