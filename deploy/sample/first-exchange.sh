#!/usr/bin/env bash
# One whole exchange against a running sample gateway, by hand: curl for HTTP,
# `mezhved dsig sign --smev` for the signatures. Read it as a tutorial.
#
#   deploy/sample/first-exchange.sh [ENDPOINT]     # default http://127.0.0.1:7575/smev/v1.1
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
endpoint=${1:-http://127.0.0.1:7575/smev/v1.1}
M=${MEZHVED_BIN:-$root/target/release/mezhved}
[ -x "$M" ] || M=$root/target/debug/mezhved
keys=$root/keys/test-pki/ecdsa
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
NS='xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1" xmlns:ns2="urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.1"'
now() { date -u +%Y-%m-%dT%H:%M:%S.000Z; }
uuid1() { python3 -c 'import uuid; print(uuid.uuid1())'; }

# call NAME SYSTEM: sign $work/NAME.xml with SYSTEM's key, POST it, print the answer.
call() {
    "$M" dsig sign --smev --key "$keys/$2.key.pem" --cert "$keys/$2.cert.pem" \
        -o "$work/$1.signed.xml" "$work/$1.xml"
    curl -sS -H 'Content-Type: text/xml; charset=utf-8' --data-binary @"$work/$1.signed.xml" \
        "$endpoint" -o "$work/$1.answer.xml"
    echo "--- $1 ($2) answered:"
    cat "$work/$1.answer.xml"; echo
}
# first TAG FILE: the text of the first <…:TAG> element.
first() { sed -n "s/.*<[a-zA-Z0-9]*:$1[^>]*>\([^<]*\)<\/[a-zA-Z0-9]*:$1>.*/\1/p" "$2" | head -n1; }

today=$(date -u +%F)
cat > "$work/send.xml" <<XML
<soap:Envelope $NS><soap:Body><ns:SendRequestRequest>
<ns:SenderProvidedRequestData Id="SIGNED_BY_CONSUMER">
<ns:MessageID>$(uuid1)</ns:MessageID>
<ns2:MessagePrimaryContent><b:BirthRecordRequest xmlns:b="urn://mezhved/demo/zags/birth-record/1.0"><b:Surname>Ivanova</b:Surname><b:BirthDate>2019-05-14</b:BirthDate></b:BirthRecordRequest></ns2:MessagePrimaryContent>
<ns:BusinessProcessMetadata><mz:RequestCard xmlns:mz="urn://mezhved/ext/1.0">
<mz:SenderAgency>Social Protection Office of the Sample Region</mz:SenderAgency>
<mz:RecipientAgency>Civil Registry Office of the Sample Region</mz:RecipientAgency>
<mz:Service><mz:Name>Assignment of the monthly child allowance</mz:Name></mz:Service>
<mz:LegalBasis><mz:Act>Federal Law of 27.07.2010 No. 210-FZ</mz:Act><mz:Provision>art. 7.2 part 1</mz:Provision></mz:LegalBasis>
<mz:SearchDetails><mz:Detail name="surname">Ivanova</mz:Detail><mz:Detail name="birth_date">2019-05-14</mz:Detail></mz:SearchDetails>
<mz:ReplyContact>uszn@example.gov.ru</mz:ReplyContact>
<mz:SentOn>$today</mz:SentOn>
<mz:Official><mz:FullName>Petrova Anna Sergeevna</mz:FullName><mz:Position>Chief specialist</mz:Position><mz:Email>petrova@example.gov.ru</mz:Email></mz:Official>
<mz:SenderRegistration><mz:Number>USZN-$today-1</mz:Number><mz:Date>$today</mz:Date></mz:SenderRegistration>
</mz:RequestCard></ns:BusinessProcessMetadata>
</ns:SenderProvidedRequestData>
<ns:CallerInformationSystemSignature/></ns:SendRequestRequest></soap:Body></soap:Envelope>
XML
call send consumer-is
gid=$(first MessageId "$work/send.answer.xml")
[ -n "$gid" ] || { echo "SendRequest failed" >&2; exit 1; }
echo "== the request is registered as $gid"

cat > "$work/get.xml" <<XML
<soap:Envelope $NS><soap:Body><ns:GetRequestRequest><ns2:MessageTypeSelector Id="SIGNED_BY_CALLER"><ns2:Timestamp>$(now)</ns2:Timestamp></ns2:MessageTypeSelector><ns:CallerInformationSystemSignature/></ns:GetRequestRequest></soap:Body></soap:Envelope>
XML
call get provider-is
reply_to=$(first ReplyTo "$work/get.answer.xml")

cat > "$work/ack.xml" <<XML
<soap:Envelope $NS><soap:Header><mz:ReceiverRegistration xmlns:mz="urn://mezhved/ext/1.0"><mz:Number>ZAGS-IN-1</mz:Number><mz:RegisteredAt>$(now)</mz:RegisteredAt></mz:ReceiverRegistration></soap:Header><soap:Body><ns:AckRequest><ns2:AckTargetMessage Id="SIGNED_BY_CALLER" accepted="true">$gid</ns2:AckTargetMessage><ns:CallerInformationSystemSignature/></ns:AckRequest></soap:Body></soap:Envelope>
XML
call ack provider-is

cat > "$work/respond.xml" <<XML
<soap:Envelope $NS><soap:Body><ns:SendResponseRequest><ns:SenderProvidedResponseData Id="SIGNED_BY_PROVIDER"><ns:MessageID>$(uuid1)</ns:MessageID><ns:To>$reply_to</ns:To><ns2:MessagePrimaryContent><r:BirthRecordResponse xmlns:r="urn://mezhved/demo/zags/birth-record/1.0"><r:RecordNumber>120199000012</r:RecordNumber></r:BirthRecordResponse></ns2:MessagePrimaryContent></ns:SenderProvidedResponseData><ns:CallerInformationSystemSignature/></ns:SendResponseRequest></soap:Body></soap:Envelope>
XML
call respond provider-is

cat > "$work/fetch.xml" <<XML
<soap:Envelope $NS><soap:Body><ns:GetResponseRequest><ns2:MessageTypeSelector Id="SIGNED_BY_CALLER"><ns2:Timestamp>$(now)</ns2:Timestamp></ns2:MessageTypeSelector><ns:CallerInformationSystemSignature/></ns:GetResponseRequest></soap:Body></soap:Envelope>
XML
call fetch consumer-is
rid=$(first MessageId "$work/fetch.answer.xml")
sed "s/$gid/$rid/; s/ZAGS-IN-1/USZN-IN-1/" "$work/ack.xml" > "$work/ack2.xml"
call ack2 consumer-is
grep -q 120199000012 "$work/fetch.answer.xml" && echo "== exchange complete: the consumer has record 120199000012"
