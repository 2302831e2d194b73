"""SMEV 3 1.1 conformance of a running gateway, over plain HTTP.

`mezhved serve` runs with the sample configuration (deploy/sample: USZN_IS asks ZAGS_IS
for birth records, PFR_IS has no grant) on port 0 with a fresh data directory. The tests
build each call's envelope by hand, sign it with `mezhved dsig sign --smev` and POST it:

- the served WSDL and every schema it references are fetched from the gateway, parse,
  and compile as XML Schema from the served URLs (imports resolved over HTTP from the
  gateway only) and equal the files in schemas/;
- a full exchange: SendRequest with inline attachments, queue statistics, GetRequest,
  Ack (with mz:ReceiverRegistration), an intermediate RequestStatus, the data with an
  attachment, GetResponse and Ack for each, GetStatus for both sides;
- a rejection (RequestRejected), an identical resend and a reused MessageID;
- faults: unsigned, tampered, unregistered signer, AccessDenied (PFR_IS), unknown kind,
  bad and stale MessageIDs, request-card violations, and the addressing faults;
- the mz:Registration headers (GlobalId = MessageMetadata/MessageId);
- a status read by GetStatus is not delivered again (SMEV 3 clients never Ack statuses),
  on a second gateway whose leases last 1 s.

Every body the gateway emits (the soap:Body's element, or a fault's detail element) and
every body we send (but one deliberately unsigned call) is validated against our
schemas (schemas/smev/1.1) and against the published reference ($MEZHVED_SMEV3_REFERENCE
or <repo>/../shared/reference/smev3/1.1; when absent those checks are skipped, which
test_reference_schemas_present reports).
mezhved's headers are validated against schemas/mezhved/mezhved-ext-1.0.xsd.

The tests share one gateway and run in file order; each one acknowledges everything it
receives, so the request and response queues are empty between tests. Set
MEZHVED_TEST_CALL_TIMEOUT (seconds, default 5) to change how long a call may take before
the gateway is taken for hung; MEZHVED_<SECTION>__<KEY> variables reach the gateway.
"""

import base64
import datetime
import time
import urllib.parse
import uuid

import lxml.etree as etree
import pytest

import gateway as G
from conftest import DS, NS
from gateway import BASIC, BIRTH_NS, BIRTH_ROOT, FAULTS, MZ, SOAP, WSDL, WSDL_SOAP, XS, q

KIND = f"{{{BIRTH_NS}}}{BIRTH_ROOT}"


# ------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def schemas():
    return G.Schemas()


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with G.started(tmp_path_factory.mktemp("conformance-gateway")) as gateway:
        yield gateway


@pytest.fixture
def guard(gw):
    """Every test: fail at once (not after another timeout) once the gateway hung."""
    with G.hang_guard(gw):
        yield


@pytest.fixture
def consumer(gw, schemas, guard):
    return G.Party(gw, "USZN_IS", schemas)


@pytest.fixture
def provider(gw, schemas, guard):
    return G.Party(gw, "ZAGS_IS", schemas)


@pytest.fixture
def pfr(gw, schemas, guard):
    return G.Party(gw, "PFR_IS", schemas)


# ------------------------------------------------------------------------ helpers

def metadata(reply: G.Reply) -> dict:
    md = reply.find(NS, "MessageMetadata")
    assert md is not None, reply.describe()
    return {etree.QName(c).localname: c for c in md}


def assert_global_id(text: str):
    assert G.UUID_RE.match(text or ""), f"not a lower-case UUID: {text!r}"
    uuid.UUID(text)


def pending(party: G.Party) -> dict:
    """queueName -> pendingMessageNumber from GetIncomingQueueStatistics."""
    reply = party.ok(G.queue_statistics())
    return {s.get("queueName"): int(s.get("pendingMessageNumber"))
            for s in reply.body.iter(q(NS, "QueueStatistics"))}


def pending_for_kind(party: G.Party, queue="requests") -> int:
    return sum(n for name, n in pending(party).items() if name == f"{queue}:{KIND}")


def statuses(party: G.Party) -> list:
    """Every status waiting in the party's GetStatus queue: (OriginalMessageId, category).
    A status read becomes invisible (leased), so reading until empty reads each once."""
    out = []
    for _ in range(20):
        reply = party.ok(G.get_status())
        msg = reply.find(NS, "SmevAsyncProcessingMessage")
        if msg is None:
            assert len(reply.body) == 0, reply.describe()
            return out
        assert msg.find(f"{{{NS}}}SMEVSignature/{{{DS}}}Signature") is not None
        out.append((reply.text(NS, "OriginalMessageId"), reply.text(NS, "StatusCategory")))
    raise AssertionError(f"GetStatus never ran empty: {out}")


def send(consumer: G.Party, **kw):
    """SendRequest of a birth-record request; returns (our MessageID, global ID, reply)."""
    mid = kw.pop("mid", None) or G.message_id()
    reply = consumer.ok(G.send_request(kw.pop("content", G.birth_request()), mid=mid, **kw))
    gid = reply.text(NS, "MessageId")
    assert_global_id(gid)
    return mid, gid, reply


def receive_request(provider: G.Party, gid: str) -> G.Reply:
    reply = provider.ok(G.get_request())
    request = reply.find(NS, "Request")
    assert request is not None, f"nothing delivered to {provider.system}\n{reply.describe()}"
    assert reply.text(NS, "MessageId") == gid, reply.describe()
    return reply


def exchange_to_provider(consumer, provider, **kw):
    """Send a request, have it delivered and acknowledged; returns (mid, gid, ReplyTo)."""
    mid, gid, _ = send(consumer, **kw)
    got = receive_request(provider, gid)
    provider.ok(G.ack(gid))
    return mid, gid, got.text(NS, "ReplyTo")


def attachments_of(reply: G.Reply) -> dict:
    """contentId -> bytes of inline attachments (AttachmentContentList)."""
    out = {}
    for c in reply.body.iter(q(BASIC, "AttachmentContent")):
        data = c.find(q(BASIC, "Content"))
        assert data.find("{http://www.w3.org/2004/08/xop/include}Include") is None, "expected inline content"
        out[c.findtext(q(BASIC, "Id"))] = base64.b64decode("".join((data.text or "").split()))
    return out


def canonical(el) -> bytes:
    return etree.tostring(etree.fromstring(etree.tostring(el)), method="c14n", exclusive=True)


# ------------------------------------------------------------------------ the served WSDL and schemas

class _FromGateway(etree.Resolver):
    """Resolves schema imports by fetching them from the gateway; anything else fails."""

    def __init__(self, gw, fetched):
        super().__init__()
        self.gw, self.fetched = gw, fetched

    def resolve(self, url, pubid, context):
        if not url.startswith(self.gw.base + "/"):
            raise AssertionError(f"schema compilation asked for {url}, not served by the gateway")
        r = self.gw.get(url)
        assert r.status_code == 200, f"GET {url}: HTTP {r.status_code}"
        self.fetched.add(url)
        return self.resolve_string(r.content, context, base_url=url)


def served_parser(gw, fetched):
    p = etree.XMLParser(no_network=True, load_dtd=False, resolve_entities=False)
    p.resolvers.add(_FromGateway(gw, fetched))
    return p


def fetch_xml(gw, url, parser):
    r = gw.get(url)
    assert r.status_code == 200, f"GET {url}: HTTP {r.status_code}"
    ctype = r.headers.get("Content-Type", "").replace(" ", "").lower()
    assert ctype.startswith("text/xml") or ctype.startswith("application/xml"), f"{url}: {ctype}"
    return r.content, etree.fromstring(r.content, parser, base_url=url)


def test_served_wsdl_and_schemas(gw, guard):
    fetched = set()
    parser = served_parser(gw, fetched)
    wsdl_url = f"{gw.endpoint}?wsdl"
    _, wsdl = fetch_xml(gw, wsdl_url, parser)
    assert wsdl.tag == q(WSDL, "definitions")
    assert [a.get("location") for a in wsdl.iter(q(WSDL_SOAP, "address"))] == [gw.endpoint]

    # Crawl every schema the WSDL references, and what those import in turn.
    todo = [urllib.parse.urljoin(wsdl_url, i.get("schemaLocation"))
            for i in wsdl.iterfind(f"{{{WSDL}}}types/{{{XS}}}schema/{{{XS}}}import")]
    assert len(todo) == 2 and all(u.startswith(f"{gw.base}/schemas/") for u in todo), todo
    served = {}
    while todo:
        url = todo.pop()
        if url in served:
            continue
        raw, doc = fetch_xml(gw, url, parser)
        assert doc.tag == q(XS, "schema"), url
        served[url] = raw
        for imp in doc.iter(q(XS, "import"), q(XS, "include"), q(XS, "redefine")):
            assert imp.get("schemaLocation"), f"{url}: import without schemaLocation"
            todo.append(urllib.parse.urljoin(url, imp.get("schemaLocation")))
    expected = {f"{gw.base}/schemas/smev/1.1/{n}": G.SMEV_DIR / n for n in G.SMEV_FILES if n.endswith(".xsd")}
    assert set(served) == set(expected)
    for url, path in expected.items():
        assert served[url] == path.read_bytes(), f"{url} differs from {path}"
        etree.XMLSchema(etree.fromstring(served[url], parser, base_url=url))  # compiles from its URL

    # The WSDL's own types compile with imports fetched from the served URLs, and
    # accept what our schemas accept.
    fetched.clear()
    embedded = wsdl.find(f"{{{WSDL}}}types/{{{XS}}}schema")
    served_schema = etree.XMLSchema(etree.fromstring(etree.tostring(embedded), parser, base_url=wsdl_url))
    assert fetched == set(expected), fetched
    body = G.body_element(G.parse(G.sign(G.send_request(G.birth_request()), "USZN_IS")))
    assert served_schema.validate(G.standalone(body)), served_schema.error_log
    assert served_schema.validate(etree.ElementTree(etree.fromstring(f'<f:AccessDenied xmlns:f="{FAULTS}"/>')))

    # The extension schema is served too.
    ext_url = f"{gw.base}/schemas/mezhved/mezhved-ext-1.0.xsd"
    raw, doc = fetch_xml(gw, ext_url, parser)
    assert raw == G.EXT_XSD.read_bytes()
    etree.XMLSchema(doc)

    assert gw.get(f"{gw.base}/schemas/smev/1.1/nope.xsd").status_code == 404
    assert gw.get(gw.endpoint).status_code == 405  # GET without ?wsdl


def test_reference_schemas_present(schemas):
    """Every other test validates against the reference only when it is present."""
    if schemas.reference is None:
        pytest.skip(schemas.reference_missing)


# ------------------------------------------------------------------------ the exchange

def test_full_exchange_with_attachments_statuses_and_data(consumer, provider):
    assert pending_for_kind(provider) == 0
    form = b"%PDF-1.4 application form\n" * 40
    extract = '<?xml version="1.0"?><extract>household of 3</extract>'.encode()
    mid, gid, sent = send(consumer, attachments=[("form1", "application/pdf", form),
                                                 ("extract1", "application/xml", extract)],
                          card=G.request_card(number="USZN-2026/77"))
    md = metadata(sent)
    assert md["MessageType"].text == "REQUEST"
    assert md["Sender"].findtext(q(NS, "Mnemonic")) == "USZN_IS"
    assert md["Recipient"].findtext(q(NS, "Mnemonic")) == "ZAGS_IS"
    assert md["DestinationName"].text == "ZAGS_IS"
    assert md["Status"].text == "requestIsQueued"
    assert sent.find(NS, "MessageMetadata").get("Id"), "the signed MessageMetadata needs an Id"
    assert sent.body.find(f"{{{NS}}}SMEVSignature/{{{DS}}}Signature") is not None
    reg = sent.registration()
    assert reg is not None and reg.findtext(q(MZ, "GlobalId")) == gid

    # The provider sees one pending request of the kind.
    assert pending_for_kind(provider) == 1
    assert pending_for_kind(consumer) == 0 and pending_for_kind(consumer, "responses") == 0

    got = receive_request(provider, gid)
    request = got.find(NS, "Request")
    block = request.find(q(NS, "SenderProvidedRequestData"))
    sent_block = G.body_element(G.parse(sent.request)).find(q(NS, "SenderProvidedRequestData"))
    assert canonical(block) == canonical(sent_block), "the request block must be delivered as signed"
    assert block.findtext(q(NS, "MessageID")) == mid
    assert request.find(f"{{{NS}}}SenderInformationSystemSignature/{{{DS}}}Signature") is not None
    assert got.body.find(f".//{{{NS}}}RequestMessage/{{{NS}}}SMEVSignature/{{{DS}}}Signature") is not None
    assert attachments_of(got) == {"form1": form, "extract1": extract}
    dmd = {etree.QName(c).localname: c for c in request.find(q(NS, "MessageMetadata"))}
    assert dmd["MessageType"].text == "REQUEST" and dmd["Sender"].findtext(q(NS, "Mnemonic")) == "USZN_IS"
    reply_to = got.text(NS, "ReplyTo")
    assert reply_to
    assert got.registration().findtext(q(MZ, "GlobalId")) == gid

    # Ack with the receiver's registration (second registration).
    ack = G.ack(gid, receiver_registration=("ZAGS-IN-2026/5", G.xs_datetime()))
    for block in G.header_blocks(G.parse(ack)):
        consumer.schemas.mz(block, "our Ack header")
    acked = provider.ok(ack)
    assert len(acked.body) == 0, acked.describe()  # AckResponse is empty
    provider.ok(G.ack(gid))  # acknowledging again changes nothing
    assert pending_for_kind(provider) == 0
    empty = provider.ok(G.get_request())
    assert len(empty.body) == 0, empty.describe()

    # An intermediate status, then the data with an attachment.
    status_mid, data_mid = G.message_id(), G.message_id()
    status = provider.ok(G.send_response(
        reply_to, mid=status_mid,
        status=(3, "clarification requested: the birth date is ambiguous", [("field", "BirthDate")])))
    status_gid = status.text(NS, "MessageId")
    assert_global_id(status_gid)
    assert metadata(status)["MessageType"].text == "RESPONSE"
    assert status.registration().findtext(q(MZ, "GlobalId")) == status_gid

    got_status = consumer.ok(G.get_response())
    response = got_status.find(NS, "Response")
    assert response is not None, got_status.describe()
    assert got_status.text(NS, "MessageId") == status_gid
    assert response.findtext(q(NS, "OriginalMessageId")) == mid
    assert got_status.text(NS, "StatusCode") == "3"
    assert got_status.text(NS, "Key") == "field" and got_status.text(NS, "Value") == "BirthDate"
    assert got_status.text(NS, "To") == reply_to
    consumer.ok(G.ack(status_gid))

    scan = bytes(range(256)) * 8
    record = G.birth_record("170-2019-0042")
    data = provider.ok(G.send_response(reply_to, mid=data_mid, content=record,
                                       attachments=[("scan1", "image/png", scan)]))
    data_gid = data.text(NS, "MessageId")
    assert_global_id(data_gid)
    assert len({gid, status_gid, data_gid}) == 3

    got_data = consumer.ok(G.get_response())
    assert got_data.text(NS, "MessageId") == data_gid
    content = got_data.find(BASIC, "MessagePrimaryContent")
    assert canonical(content[0]) == canonical(etree.fromstring(record))
    assert attachments_of(got_data) == {"scan1": scan}
    assert got_data.find(NS, "Response").findtext(q(NS, "OriginalMessageId")) == mid
    assert got_data.registration().findtext(q(MZ, "GlobalId")) == data_gid
    consumer.ok(G.ack(data_gid))
    empty = consumer.ok(G.get_response())
    assert len(empty.body) == 0, empty.describe()

    # Processing statuses: the consumer hears that the provider took its request, the
    # provider that its responses were delivered.
    assert statuses(consumer) == [(mid, "underProcessing")]
    assert sorted(statuses(provider)) == sorted([(status_mid, "responseIsDelivered"),
                                                 (data_mid, "responseIsDelivered")])
    assert statuses(consumer) == [] and statuses(provider) == []


def test_rejection(consumer, provider):
    mid, gid, reply_to = exchange_to_provider(consumer, provider)
    # A response of the request's own kind is refused.
    provider.fails(G.send_response(reply_to, content=G.birth_request()), "IncorrectResponseContentType")
    provider.ok(G.send_response(reply_to, rejection=("NO_DATA", "no birth record matches the details")))
    got = consumer.ok(G.get_response())
    rejected = got.find(NS, "RequestRejected")
    assert rejected is not None, got.describe()
    assert rejected.findtext(q(NS, "RejectionReasonCode")) == "NO_DATA"
    assert rejected.findtext(q(NS, "RejectionReasonDescription")) == "no birth record matches the details"
    assert got.find(NS, "Response").findtext(q(NS, "OriginalMessageId")) == mid
    consumer.ok(G.ack(got.text(NS, "MessageId")))
    statuses(consumer), statuses(provider)  # drained


def test_identical_resend_gets_the_first_answer_and_a_reused_id_is_refused(consumer, provider):
    mid = G.message_id()
    signed = G.sign(G.send_request(G.birth_request("Sidorova"), mid=mid), "USZN_IS")
    first = consumer.ok(None, signed=signed)
    again = consumer.ok(None, signed=signed)
    assert again.raw == first.raw
    gid = first.text(NS, "MessageId")
    consumer.fails(G.send_request(G.birth_request("Kuznetsova"), mid=mid), "MessageIsAlreadySent")
    receive_request(provider, gid)
    provider.ok(G.ack(gid))
    assert provider.ok(G.get_request()).body.find(q(NS, "RequestMessage")) is None, "delivered twice"
    statuses(consumer)


def test_registration_headers(consumer, provider, schemas):
    """mz:Registration on SendRequest/SendResponse answers and on delivered Request and
    Response messages: GlobalId = MessageMetadata/MessageId, valid against the
    extension schema."""
    mid, gid, sent = send(consumer, card=G.request_card(number="USZN-REG/1"))
    got = receive_request(provider, gid)
    provider.ok(G.ack(gid))
    answered = provider.ok(G.send_response(got.text(NS, "ReplyTo"), content=G.birth_record()))
    rid = answered.text(NS, "MessageId")
    delivered = consumer.ok(G.get_response())
    consumer.ok(G.ack(rid))
    statuses(consumer), statuses(provider)

    headers = {
        "SendRequestResponse": (sent, gid),
        "GetRequestResponse": (got, gid),
        "SendResponseResponse": (answered, rid),
        "GetResponseResponse": (delivered, rid),
    }
    invalid = []
    for name, (reply, global_id) in headers.items():
        reg = reply.registration()
        assert reg is not None, f"{name}: no mz:Registration header"
        assert reg.findtext(q(MZ, "GlobalId")) == global_id == reply.text(NS, "MessageId"), name
        assert reg.get(q(SOAP, "mustUnderstand")) in (None, "0", "false"), f"{name}: mustUnderstand"
        datetime.datetime.fromisoformat(reg.findtext(q(MZ, "ReceivedAt")).replace("Z", "+00:00"))
        checksum = reg.find(q(MZ, "Checksum"))
        assert checksum is not None and checksum.get("algorithm") and base64.b64decode(checksum.text), name
        if name in ("SendRequestResponse", "GetRequestResponse"):
            assert reg.findtext(f"{{{MZ}}}SenderRegistration/{{{MZ}}}Number") == "USZN-REG/1", name
        try:
            schemas.mz(reg, f"mz:Registration header of {name}")
        except AssertionError as e:
            invalid.append(str(e))
    assert not invalid, "\n\n".join(invalid)


# ------------------------------------------------------------------------ faults

def signature_code(reply: G.Reply) -> str:
    return reply.fault.findtext(q(FAULTS, "SignatureVerificationFault"))


def test_unsigned_call_is_refused(consumer):
    # An empty CallerInformationSystemSignature is not schema-valid (the container holds
    # exactly one XMLDSig element), so this request is not validated before sending.
    reply = consumer.fails(G.send_request(G.birth_request()), "SignatureVerificationFault", sign_it=False,
                           validate_request=False)
    assert signature_code(reply) == "NoSignatureFound"
    # Without the (optional) container the request is schema-valid, and still refused.
    without_container = G.send_request(G.birth_request()).replace(G.EMPTY_SIGNATURE.encode(), b"")
    reply = consumer.fails(without_container, "SignatureVerificationFault", sign_it=False)
    assert signature_code(reply) == "NoSignatureFound"
    reply = consumer.fails(G.get_request().replace(G.EMPTY_SIGNATURE.encode(), b""),
                           "SignatureVerificationFault", sign_it=False)
    assert signature_code(reply) == "NoSignatureFound"


def test_tampered_call_is_refused(consumer):
    signed = G.sign(G.send_request(G.birth_request("Ivanova")), "USZN_IS")
    tampered = signed.replace(b"Ivanova</br:Surname>", b"Petrova</br:Surname>")
    assert tampered != signed
    reply = consumer.fails(None, "SignatureVerificationFault", signed=tampered)
    assert signature_code(reply) == "SignatureIsInvalid"


def test_unregistered_signer(gw, schemas, guard):
    # The gateway's own certificate chains to the trust anchors but is no registered system.
    stranger = G.Party(gw, "stranger", schemas, key="gateway")
    stranger.fails(G.send_request(G.birth_request()), "SenderIsNotRegistered")


def test_access_denied_without_a_grant(pfr):
    card = G.request_card(sender=G.PFR_AGENCY, number="PFR-1")
    pfr.fails(G.send_request(G.birth_request(), card=card), "AccessDenied")


def test_unknown_kind(consumer):
    content = '<x:PassportRequest xmlns:x="urn://example/unknown/1.0"><x:Number>1</x:Number></x:PassportRequest>'
    reply = consumer.fails(G.send_request(content), "BusinessDataTypeIsNotSupported")
    assert reply.fault.findtext(q(FAULTS, "RootElementLocalName")) == "PassportRequest"
    assert reply.fault.findtext(q(FAULTS, "RootElementNamespaceURI")) == "urn://example/unknown/1.0"


@pytest.mark.parametrize("case", ["uuid4", "not-a-uuid", "stale-v1", "future-v1"])
def test_bad_message_ids(consumer, case):
    now = G.utc_now()
    mid, fault = {
        "uuid4": (str(uuid.uuid4()), "InvalidMessageIdFormat"),
        # Schema-valid (b:UUID is a pattern) but of no version: 0x0 in the version nibble.
        "not-a-uuid": ("12345678-1234-0234-8123-123456789abc", "InvalidMessageIdFormat"),
        # The sample configuration allows 86400 s in the past and 300 s in the future.
        "stale-v1": (str(uuid1_at(now - datetime.timedelta(days=2))), "StaleMessageId"),
        "future-v1": (str(uuid1_at(now + datetime.timedelta(hours=1))), "StaleMessageId"),
    }[case]
    consumer.fails(G.send_request(G.birth_request(), mid=mid), fault)


def uuid1_at(t: datetime.datetime) -> uuid.UUID:
    """A version-1 UUID with the timestamp `t`."""
    ticks = int((t - datetime.datetime(1582, 10, 15, tzinfo=datetime.timezone.utc)).total_seconds() * 10**7)
    base = uuid.uuid1()
    return uuid.UUID(fields=(ticks & 0xFFFFFFFF, (ticks >> 32) & 0xFFFF, ((ticks >> 48) & 0x0FFF) | 0x1000,
                             base.clock_seq_hi_variant, base.clock_seq_low, base.node))


def validation_errors(reply: G.Reply) -> list:
    return [(e.get("errorPosition"), e.text or "") for e in reply.fault.iter(q(FAULTS, "ValidationError"))]


def test_request_without_card_is_invalid(consumer):
    reply = consumer.fails(G.send_request(G.birth_request(), card=""), "InvalidContent")
    errors = validation_errors(reply)
    assert len(errors) == 1 and "RequestCard" in errors[0][1], errors


def test_card_violations_are_all_reported(consumer):
    card = G.request_card(
        recipient="Some Other Office",
        drop=("SentOn",),
        replace={"Official": "<mz:Official><mz:FullName>Petrova A. S.</mz:FullName>"
                             "<mz:Position>Chief specialist</mz:Position></mz:Official>"})
    reply = consumer.fails(G.send_request(G.birth_request(), card=card), "InvalidContent")
    errors = validation_errors(reply)
    text = "\n".join(m for _, m in errors)
    assert len(errors) >= 3, errors
    for element in ("RecipientAgency", "SentOn", "Official"):
        assert element in text, f"no violation about {element}:\n{text}"
    for pos, _ in errors:
        assert int(pos) >= 0
    assert reply.fault.findtext(q(BASIC, "Code")) == "InvalidContent"
    # Privacy: search details are never quoted back.
    assert "Ivanova" not in reply.raw.decode()


def test_addressing_faults(consumer, provider):
    # A consumer may not read the queue of a kind it does not provide.
    consumer.fails(G.get_request(), "UnknownMessageType")
    # Ack of a message never delivered to the caller.
    provider.fails(G.ack(str(uuid.uuid1())), "TargetMessageIsNotFound")
    # A response to an address the gateway never gave out.
    provider.fails(G.send_response(f"mezhved:reply:{uuid.uuid1()}", content=G.birth_record()),
                   "RecipientIsNotFound")
    provider.fails(G.send_response("somewhere", content=G.birth_record()), "RecipientIsNotFound")


def test_refused_calls_queued_nothing(consumer, provider):
    # Statuses read by GetStatus are left out: see test_status_read_by_get_status_is_not_redelivered.
    for party in (consumer, provider):
        left = {name: n for name, n in pending(party).items() if n and not name.startswith("statuses:")}
        assert left == {}, f"{party.system}: {left}"
    assert provider.ok(G.get_request()).body.find(q(NS, "RequestMessage")) is None
    assert consumer.ok(G.get_response()).body.find(q(NS, "ResponseMessage")) is None
    assert statuses(consumer) == [] and statuses(provider) == []


# ------------------------------------------------------------------------ statuses need no Ack

@pytest.fixture(scope="module")
def gw_short_lease(tmp_path_factory):
    """A second gateway whose leases last 1 s instead of 300."""
    with G.started(tmp_path_factory.mktemp("short-lease-gateway"),
                   env={"MEZHVED_EXCHANGE__VISIBILITY_TIMEOUT_SECONDS": "1"}) as gateway:
        yield gateway


def test_status_read_by_get_status_is_not_redelivered(gw_short_lease, schemas):
    """The reference WSDL: Ack "must be called after receiving a message by GetRequest or
    GetResponse", and AckTargetMessage is "the MessageMetadata/MessageId from
    GetRequestResponse or GetResponseResponse". A GetStatus answer has no MessageId, so
    a SMEV 3 client never acknowledges a status: once read, it must not come back."""
    with G.hang_guard(gw_short_lease):
        consumer = G.Party(gw_short_lease, "USZN_IS", schemas)
        provider = G.Party(gw_short_lease, "ZAGS_IS", schemas)
        mid, gid, _ = exchange_to_provider(consumer, provider)
        first = consumer.ok(G.get_status())
        assert first.text(NS, "OriginalMessageId") == mid and first.text(NS, "StatusCategory") == "underProcessing", \
            first.describe()
        # The lease is over: an unacknowledged request read before the sleep comes back.
        mid2, gid2, _ = send(consumer)
        receive_request(provider, gid2)
        time.sleep(1.3)
        receive_request(provider, gid2)
        again = [s for s in statuses(consumer) if s[0] == mid]
        assert again == [], (f"the status about {mid}, read by GetStatus, was delivered again after the "
                             f"lease: {again}")
