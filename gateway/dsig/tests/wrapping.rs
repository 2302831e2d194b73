//! The signature-wrapping corpus: one test per attack on a signed SMEV SendRequest. Each
//! attack either fails with its specific error, or (for the harmless rewrites that the
//! SMEV transform exists to absorb) verifies while the bytes handed back stay the
//! verified ones.

mod common;

use common::*;
use mezhved_dsig::error::SmevSignatureCode;
use mezhved_dsig::xmldsig::{self, SignOptions, Transforms};
use mezhved_dsig::DsigError;
use mezhved_xml::Limits;

fn signed() -> String {
    String::from_utf8(signed_fixture("ecdsa", "consumer-is")).expect("utf-8")
}

fn verify(doc: &str) -> Result<xmldsig::Verified, DsigError> {
    xmldsig::verify(
        doc.as_bytes(),
        &Limits::default(),
        &smev_expectation(),
        &trust(),
        now(),
    )
}

/// The signed request block, `<ns:SenderProvidedRequestData ...>...</...>`.
fn block(doc: &str) -> String {
    let start = doc
        .find("<ns:SenderProvidedRequestData")
        .expect("block start");
    let end_tag = "</ns:SenderProvidedRequestData>";
    let end = doc.find(end_tag).expect("block end") + end_tag.len();
    doc[start..end].to_string()
}

fn evil_block(doc: &str) -> String {
    block(doc)
        .replace("Иванов", "Петров")
        .replace(" Id=\"SIGNED_BY_CONSUMER\"", "")
}

fn code(e: &DsigError) -> Option<SmevSignatureCode> {
    e.smev_code()
}

#[test]
fn baseline_the_untouched_message_verifies() {
    let v = verify(&signed()).expect("verifies");
    assert!(String::from_utf8(v.digested)
        .expect("utf-8")
        .contains("Иванов"));
}

#[test]
fn xsw1_original_moved_to_the_header_evil_block_in_its_place() {
    let doc = signed();
    let original = block(&doc);
    let attacked = doc.replace(&original, &evil_block(&doc)).replace(
        "<soap:Header/>",
        &format!("<soap:Header><Wrapper>{original}</Wrapper></soap:Header>"),
    );
    let e = verify(&attacked).expect_err("wrapped");
    assert!(
        matches!(e, DsigError::IncorrectSignatureTarget { .. }),
        "{e}"
    );
    assert_eq!(code(&e), Some(SmevSignatureCode::IncorrectSignatureTarget));
}

#[test]
fn xsw2_evil_block_carries_the_same_id_as_the_hidden_original() {
    let doc = signed();
    let original = block(&doc);
    let evil_with_id = block(&doc).replace("Иванов", "Петров");
    let attacked = doc.replace(&original, &evil_with_id).replace(
        "<soap:Header/>",
        &format!("<soap:Header>{original}</soap:Header>"),
    );
    let e = verify(&attacked).expect_err("duplicate Id");
    assert!(
        matches!(e, DsigError::AmbiguousId(ref id) if id == "SIGNED_BY_CONSUMER"),
        "{e}"
    );
}

#[test]
fn xsw3_original_nested_inside_the_evil_block() {
    let doc = signed();
    let original = block(&doc);
    let evil = evil_block(&doc).replace(
        "</ns:SenderProvidedRequestData>",
        &format!("<Hidden>{original}</Hidden></ns:SenderProvidedRequestData>"),
    );
    let e = verify(&doc.replace(&original, &evil)).expect_err("nested");
    assert!(
        matches!(&e, DsigError::IncorrectSignatureTarget { found, .. } if found.ends_with("Hidden/ns:SenderProvidedRequestData")),
        "{e}"
    );
}

#[test]
fn xsw4_original_hidden_inside_the_signature() {
    let doc = signed();
    let original = block(&doc);
    let attacked = doc.replace(&original, &evil_block(&doc)).replace(
        "</ds:KeyInfo>",
        &format!("</ds:KeyInfo><ds:Object>{original}</ds:Object>"),
    );
    let e = verify(&attacked).expect_err("object");
    assert!(matches!(e, DsigError::MalformedSignature(_)), "{e}");
}

#[test]
fn xsw5_second_block_beside_the_signed_one() {
    let doc = signed();
    let original = block(&doc);
    let attacked = doc.replace(&original, &format!("{original}{}", evil_block(&doc)));
    let e = verify(&attacked).expect_err("two blocks");
    assert!(
        matches!(e, DsigError::IncorrectSignatureTarget { .. }),
        "{e}"
    );
}

#[test]
fn xsw6_signature_moved_out_of_its_expected_place() {
    let doc = signed();
    let sig_start = doc.find("<ds:Signature").expect("sig");
    let sig_end = doc.find("</ds:Signature>").expect("end") + "</ds:Signature>".len();
    let sig = doc[sig_start..sig_end].to_string();
    let attacked = doc.replace(&sig, "").replace(
        "<soap:Header/>",
        &format!("<soap:Header>{sig}</soap:Header>"),
    );
    let e = verify(&attacked).expect_err("moved");
    assert!(matches!(e, DsigError::NoSignatureFound(_)), "{e}");
    assert_eq!(code(&e), Some(SmevSignatureCode::NoSignatureFound));
}

#[test]
fn content_changed_after_signing_breaks_the_digest() {
    let e = verify(&signed().replace("Иванов", "Петров")).expect_err("changed");
    assert!(matches!(e, DsigError::DigestMismatch), "{e}");
    assert_eq!(code(&e), Some(SmevSignatureCode::SignatureIsInvalid));
}

#[test]
fn comment_injection_cannot_split_what_the_caller_reads() {
    // Comments are not digested, so the signature stays valid; what matters is that the
    // caller reads the verified octets, where the text is whole.
    let attacked = signed().replace("Иванов", "Ива<!-- injected -->нов");
    let v = verify(&attacked).expect("comments are outside the digest");
    let digested = String::from_utf8(v.digested).expect("utf-8");
    assert!(digested.contains(">Иванов<"), "{digested}");
    assert!(!digested.contains("injected"));
}

#[test]
fn whitespace_injection_is_absorbed_by_the_smev_transform_only_between_elements() {
    let doc = signed();
    let between = doc.replace(
        "<ns2:MessagePrimaryContent>",
        "<ns2:MessagePrimaryContent>\n\n      \t",
    );
    let v = verify(&between).expect("whitespace-only text is dropped by the SMEV transform");
    assert!(!String::from_utf8(v.digested).expect("utf-8").contains('\t'));
    let inside = doc.replace("Иванов", " Иванов");
    assert!(matches!(verify(&inside), Err(DsigError::DigestMismatch)));

    // Under plain exclusive c14n the same whitespace is digested.
    let plain = String::from_utf8(
        xmldsig::sign(
            &fixture(),
            &Limits::default(),
            &key("rsa", "consumer-is"),
            &smev_placement(),
            &SignOptions {
                transforms: Transforms::ExcC14n,
                digest: None,
            },
        )
        .expect("signs"),
    )
    .expect("utf-8");
    let e = verify(&plain.replace(
        "<ns2:MessagePrimaryContent>",
        "<ns2:MessagePrimaryContent>\n ",
    ))
    .expect_err("whitespace is content under exc-c14n");
    assert!(matches!(e, DsigError::DigestMismatch), "{e}");
}

#[test]
fn namespace_prefix_rebinding_changes_meaning_and_is_caught() {
    let doc = signed();
    // Same prefix, other namespace: the business element silently changes kind.
    let rebound = doc.replace(
        "xmlns:req=\"urn://mezhved/demo/zags/1.0\"",
        "xmlns:req=\"urn://attacker/other-kind/1.0\"",
    );
    assert!(matches!(verify(&rebound), Err(DsigError::DigestMismatch)));
    // The envelope's ns2 declaration is inherited by the signed block: re-binding it
    // outside the block changes the block, too.
    let outer = doc.replacen(
        "xmlns:ns2=\"urn://x-artefacts-smev-gov-ru/services/message-exchange/types/basic/1.1\"",
        "xmlns:ns2=\"urn://attacker/basic\"",
        1,
    );
    assert!(matches!(verify(&outer), Err(DsigError::DigestMismatch)));
    // Renaming a prefix while keeping its namespace is harmless under the SMEV transform.
    let renamed = doc
        .replace("xmlns:req=", "xmlns:zz=")
        .replace("<req:", "<zz:")
        .replace("</req:", "</zz:");
    verify(&renamed).expect("prefix names do not matter");
}

#[test]
fn id_in_a_foreign_namespace_is_neither_resolved_nor_allowed_to_collide() {
    let doc = signed();
    let original = block(&doc);
    let foreign = evil_block(&doc).replacen(
        "<ns:SenderProvidedRequestData",
        "<ns:SenderProvidedRequestData xmlns:wsu=\"urn:wsu\" wsu:Id=\"SIGNED_BY_CONSUMER\"",
        1,
    );
    let collide = doc.replace(&original, &foreign).replace(
        "<soap:Header/>",
        &format!("<soap:Header>{original}</soap:Header>"),
    );
    assert!(matches!(verify(&collide), Err(DsigError::AmbiguousId(_))));
    let alone = doc.replace(&original, &foreign);
    let e = verify(&alone).expect_err("only a foreign Id");
    assert!(matches!(e, DsigError::ReferenceNotFound(_)), "{e}");
}

#[test]
fn a_second_signature_at_the_expected_place_is_refused() {
    let doc = signed();
    let sig_start = doc.find("<ds:Signature").expect("sig");
    let sig_end = doc.find("</ds:Signature>").expect("end") + "</ds:Signature>".len();
    let sig = doc[sig_start..sig_end].to_string();
    let e = verify(&doc.replace(&sig, &format!("{sig}{sig}"))).expect_err("two signatures");
    assert!(matches!(e, DsigError::AmbiguousSignature(_)), "{e}");
}

#[test]
fn signed_info_with_two_references_is_refused() {
    let doc = signed();
    let r_start = doc.find("<ds:Reference").expect("ref");
    let r_end = doc.find("</ds:Reference>").expect("end") + "</ds:Reference>".len();
    let reference = doc[r_start..r_end].to_string();
    let e =
        verify(&doc.replace(&reference, &format!("{reference}{reference}"))).expect_err("two refs");
    assert!(
        matches!(&e, DsigError::MalformedSignature(m) if m.contains("2 References")),
        "{e}"
    );
}

#[test]
fn hmac_and_unknown_algorithms_are_refused() {
    let doc = signed();
    for alg in [
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
        "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
        "urn:unknown",
    ] {
        let attacked = doc.replace("http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256", alg);
        let e = verify(&attacked).expect_err(alg);
        assert!(
            matches!(e, DsigError::UnsupportedAlgorithm(_)),
            "{alg}: {e}"
        );
    }
    let sha1 = doc.replace(
        "http://www.w3.org/2001/04/xmlenc#sha256",
        "http://www.w3.org/2000/09/xmldsig#sha1",
    );
    assert!(matches!(
        verify(&sha1),
        Err(DsigError::UnsupportedAlgorithm(_))
    ));
    let xpath = doc.replace(
        "urn://smev-gov-ru/xmldsig/transform",
        "http://www.w3.org/TR/1999/REC-xpath-19991116",
    );
    assert!(matches!(
        verify(&xpath),
        Err(DsigError::UnsupportedAlgorithm(_))
    ));
}

#[test]
fn truncated_or_altered_signature_value_is_refused() {
    let doc = signed();
    let v_start = doc.find("<ds:SignatureValue>").expect("value") + "<ds:SignatureValue>".len();
    let v_end = doc.find("</ds:SignatureValue>").expect("end");
    let value = doc[v_start..v_end].to_string();
    let truncated = doc.replace(&value, &value[..value.len() - 8]);
    assert!(matches!(verify(&truncated), Err(DsigError::BadSignature)));
    let mut flipped: Vec<char> = value.chars().collect();
    flipped[10] = if flipped[10] == 'A' { 'B' } else { 'A' };
    let altered = doc.replace(&value, &flipped.into_iter().collect::<String>());
    assert!(matches!(verify(&altered), Err(DsigError::BadSignature)));
}

#[test]
fn signature_transplanted_from_another_message_is_refused() {
    let doc = signed();
    let other_fixture = String::from_utf8(fixture())
        .expect("utf-8")
        .replace("Иванов", "Сидоров");
    let other = String::from_utf8(
        xmldsig::sign(
            other_fixture.as_bytes(),
            &Limits::default(),
            &key("ecdsa", "consumer-is"),
            &smev_placement(),
            &SignOptions::smev(),
        )
        .expect("signs"),
    )
    .expect("utf-8");
    let sig_of = |d: &str| {
        let start = d.find("<ds:Signature").expect("start");
        let end = d.find("</ds:Signature>").expect("end") + "</ds:Signature>".len();
        d[start..end].to_string()
    };
    let attacked = doc.replace(&sig_of(&doc), &sig_of(&other));
    assert!(matches!(verify(&attacked), Err(DsigError::DigestMismatch)));
    verify(&other).expect("the other message itself is fine");
}

#[test]
fn certificate_swapped_for_another_trusted_one_is_refused() {
    let doc = signed();
    let c_start = doc.find("<ds:X509Certificate>").expect("cert") + "<ds:X509Certificate>".len();
    let c_end = doc.find("</ds:X509Certificate>").expect("end");
    let other = key("ecdsa", "provider-is")
        .certificate()
        .to_der()
        .expect("der");
    use base64::Engine as _;
    let swapped = doc.replace(
        &doc[c_start..c_end],
        &base64::engine::general_purpose::STANDARD.encode(other),
    );
    assert!(matches!(verify(&swapped), Err(DsigError::BadSignature)));
}

#[test]
fn external_and_xpointer_references_are_refused() {
    let doc = signed();
    for uri in [
        "http://attacker.invalid/doc.xml",
        "#xpointer(/)",
        "cid:part",
    ] {
        let attacked = doc.replace("URI=\"#SIGNED_BY_CONSUMER\"", &format!("URI=\"{uri}\""));
        assert!(
            matches!(verify(&attacked), Err(DsigError::MalformedSignature(_))),
            "{uri}"
        );
    }
}
