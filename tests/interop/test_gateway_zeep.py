"""A stock zeep client against a running gateway.

zeep 4.3.3, unchanged, builds its client from the WSDL the gateway serves
(`<endpoint>?wsdl`, which imports the served XSDs) and completes a whole exchange:

    consumer SendRequest -> provider GetRequest -> provider Ack
    -> provider SendResponse (data) -> consumer GetResponse -> consumer Ack

Signing is what an agency adds to a generated client: a zeep Plugin whose egress hook
serialises the envelope, pipes it through `mezhved dsig sign --smev` with the system's
key, and hands the signed envelope on (one plugin instance per system key). zeep cannot
write an empty XMLDSig container (the type is one required xs:any), so the calls leave
the optional CallerInformationSystemSignature out and the plugin appends it, empty, for
the signer to fill. Business content (xs:any) is given to zeep as lxml elements.
"""

import datetime
import uuid

import lxml.etree as etree
import pytest
import zeep
from zeep.plugins import HistoryPlugin, Plugin
from zeep.transports import Transport

import gateway as G
from conftest import NS, SOAP


class SmevSigner(Plugin):
    """Signs every outgoing call with one information system's key."""

    def __init__(self, system: str):
        self.system = system

    def egress(self, envelope, http_headers, operation, binding_options):
        body = envelope.find(f"{{{SOAP}}}Body")
        call = next(c for c in body if isinstance(c.tag, str))
        container = call.find(f"{{{NS}}}CallerInformationSystemSignature")
        if container is None:
            container = etree.SubElement(call, f"{{{NS}}}CallerInformationSystemSignature")
        assert len(container) == 0, "the signature container must be empty before signing"
        signed = G.sign(etree.tostring(envelope), self.system)
        return etree.fromstring(signed), http_headers


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """`mezhved serve` with deploy/sample/mezhved.toml, a fresh data dir, port 0."""
    with G.started(tmp_path_factory.mktemp("zeep-gateway")) as gw:
        yield gw


def client(gw: G.Gateway, system: str):
    history = HistoryPlugin()
    c = zeep.Client(f"{gw.endpoint}?wsdl",
                    transport=Transport(operation_timeout=G.CALL_TIMEOUT, timeout=G.CALL_TIMEOUT),
                    plugins=[SmevSigner(system), history])
    return c, history


def selector():
    return {"Id": "SIGNED_BY_CALLER", "NamespaceURI": G.BIRTH_NS, "RootElementLocalName": G.BIRTH_ROOT,
            "Timestamp": datetime.datetime.now(datetime.timezone.utc)}


def registration(history: HistoryPlugin) -> etree._Element:
    """The mz:Registration header of the last answer (zeep itself ignores it)."""
    envelope = history.last_received["envelope"]
    regs = envelope.findall(f"{{{SOAP}}}Header/{{{G.MZ}}}Registration")
    assert len(regs) == 1, etree.tostring(envelope)[:2000]
    return regs[0]


def canonical(el: etree._Element) -> bytes:
    """Exclusive c14n of an element, to compare business content wherever it stood."""
    return etree.tostring(etree.fromstring(etree.tostring(el)), method="c14n", exclusive=True)


def test_stock_zeep_client_completes_an_exchange(gateway):
    with G.hang_guard(gateway):
        exchange(gateway)


def exchange(gateway):
    consumer, consumer_history = client(gateway, "USZN_IS")
    provider, provider_history = client(gateway, "ZAGS_IS")

    # The served WSDL points zeep at this gateway.
    port = consumer.wsdl.services["SMEVMessageExchangeService"].ports["SMEVMessageExchangeEndpoint"]
    assert port.binding_options["address"] == gateway.endpoint

    # --- consumer: SendRequest
    content = etree.fromstring(G.birth_request("Ivanova", "2019-05-14"))
    card = etree.fromstring(G.request_card(number="USZN-ZEEP/1"))
    message_id = G.message_id()
    sent = consumer.service.SendRequest(
        SenderProvidedRequestData={
            "Id": "SIGNED_BY_CONSUMER",
            "MessageID": message_id,
            "MessagePrimaryContent": {"_value_1": content},
            "BusinessProcessMetadata": {"_value_1": [card]},
        })
    metadata = sent.MessageMetadata
    global_id = metadata.MessageId
    assert str(uuid.UUID(global_id)) == global_id, global_id
    assert global_id != message_id
    assert metadata.MessageType == "REQUEST"
    assert metadata.Sender.Mnemonic == "USZN_IS"
    assert metadata.Recipient.Mnemonic == "ZAGS_IS"
    assert metadata.Status == "requestIsQueued"
    assert sent.SMEVSignature is not None
    reg = registration(consumer_history)
    assert reg.findtext(f"{{{G.MZ}}}GlobalId") == global_id
    assert reg.findtext(f"{{{G.MZ}}}SenderRegistration/{{{G.MZ}}}Number") == "USZN-ZEEP/1"
    # What zeep sent was signed by the plugin.
    sent_env = consumer_history.last_sent["envelope"]
    assert sent_env.find(f".//{{{NS}}}CallerInformationSystemSignature/{{{G.DS}}}Signature") is not None

    # --- provider: GetRequest, Ack
    delivered = provider.service.GetRequest(MessageTypeSelector=selector())
    assert delivered is not None, "nothing delivered to the provider"
    request = delivered.Request
    assert request.MessageMetadata.MessageId == global_id
    assert request.SenderProvidedRequestData.MessageID == message_id
    got = request.SenderProvidedRequestData.MessagePrimaryContent._value_1
    assert canonical(got) == canonical(content)
    got_card = request.SenderProvidedRequestData.BusinessProcessMetadata._value_1
    assert [canonical(c) for c in got_card] == [canonical(card)]
    assert request.SenderInformationSystemSignature is not None
    reply_to = request.ReplyTo
    assert reply_to
    assert registration(provider_history).findtext(f"{{{G.MZ}}}GlobalId") == global_id
    assert provider.service.Ack(
        AckTargetMessage={"_value_1": request.MessageMetadata.MessageId, "Id": "SIGNED_BY_CALLER",
                          "accepted": True}) is None  # AckResponse is empty

    # Nothing else waits for the provider.
    assert provider.service.GetRequest(MessageTypeSelector=selector()) is None

    # --- provider: SendResponse with data
    record = etree.fromstring(G.birth_record("170-2019-0042"))
    answered = provider.service.SendResponse(
        SenderProvidedResponseData={
            "Id": "SIGNED_BY_PROVIDER",
            "MessageID": G.message_id(),
            "To": reply_to,
            "MessagePrimaryContent": {"_value_1": record},
        })
    response_id = answered.MessageMetadata.MessageId
    assert str(uuid.UUID(response_id)) == response_id
    assert answered.MessageMetadata.MessageType == "RESPONSE"
    assert registration(provider_history).findtext(f"{{{G.MZ}}}GlobalId") == response_id

    # --- consumer: GetResponse, Ack
    got_response = consumer.service.GetResponse(MessageTypeSelector=selector())
    assert got_response is not None, "no response delivered to the consumer"
    response = got_response.Response
    assert response.MessageMetadata.MessageId == response_id
    assert response.OriginalMessageId == message_id
    data = response.SenderProvidedResponseData
    assert data.To == reply_to
    assert canonical(data.MessagePrimaryContent._value_1) == canonical(record)
    assert registration(consumer_history).findtext(f"{{{G.MZ}}}GlobalId") == response_id
    assert consumer.service.Ack(
        AckTargetMessage={"_value_1": response_id, "Id": "SIGNED_BY_CALLER", "accepted": True}) is None
    assert consumer.service.GetResponse(MessageTypeSelector=selector()) is None
