//! XMLDSig (<https://www.w3.org/TR/xmldsig-core1/>) in the profile of protocol.md §4:
//! one Reference, same-document (`URI="#id"`, or `URI=""` for an enveloped signature over
//! the whole document), transforms `[enveloped-signature?] exc-c14n [SMEV transform?]`,
//! exclusive c14n of SignedInfo, an X509Certificate in KeyInfo.
//!
//! Verification invariants (the signature-wrapping defence):
//! - the caller names where the signature must stand and which element it must cover
//!   ([`Expectation`]); both are resolved by path and must be unique;
//! - the Reference must resolve to exactly one element, and that element must be the
//!   expected one; an Id value carried by two attributes anywhere (in any namespace) is
//!   an error, not a choice;
//! - SignedInfo must hold exactly one Reference and nothing unknown; only the listed
//!   algorithms are accepted (no HMAC, no SHA-1, no XPath);
//! - the bytes handed back ([`Verified::digested`]) are exactly the bytes that were
//!   digested, so the caller reads content only from what was verified.

use crate::crypto::{self, DigestAlgorithm, SignatureAlgorithm, SigningKey};
use crate::error::DsigError;
use crate::trust::{TrustStore, VerifiedCertificate};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use mezhved_xml::c14n::{self, ExcC14nOptions, EXC_C14N, EXC_C14N_WITH_COMMENTS};
use mezhved_xml::smev::{self, SMEV_TRANSFORM};
use mezhved_xml::{parse, Document, ElementPath, Limits, NodeId, NodeKind, PathError};
use openssl::x509::X509;
use std::time::SystemTime;

pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
pub const ENVELOPED_SIGNATURE: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// The transform chain of a Reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transforms {
    /// exc-c14n then the SMEV transform: the SMEV 3 profile.
    Smev,
    /// exc-c14n alone: plain XMLDSig, for generic tools.
    ExcC14n,
    /// enveloped-signature then exc-c14n.
    Enveloped,
    /// enveloped-signature, exc-c14n, then the SMEV transform.
    EnvelopedSmev,
}

impl Transforms {
    fn algorithms(self) -> &'static [&'static str] {
        match self {
            Transforms::Smev => &[EXC_C14N, SMEV_TRANSFORM],
            Transforms::ExcC14n => &[EXC_C14N],
            Transforms::Enveloped => &[ENVELOPED_SIGNATURE, EXC_C14N],
            Transforms::EnvelopedSmev => &[ENVELOPED_SIGNATURE, EXC_C14N, SMEV_TRANSFORM],
        }
    }
    fn is_enveloped(self) -> bool {
        matches!(self, Transforms::Enveloped | Transforms::EnvelopedSmev)
    }
    fn has_smev(self) -> bool {
        matches!(self, Transforms::Smev | Transforms::EnvelopedSmev)
    }
}

/// Where a signature must stand and what it must cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The element whose single `ds:Signature` child is the signature (for SMEV, e.g.
    /// `.../CallerInformationSystemSignature`; for an enveloped signature, the signed
    /// element itself).
    pub signature_parent: ElementPath,
    /// The element the signature must cover; `None` with an enveloped signature over the
    /// whole document (`URI=""`).
    pub target: Option<ElementPath>,
}

/// A verified signature.
#[derive(Debug)]
pub struct Verified {
    /// Exactly the octets that were digested (the output of the transform chain).
    pub digested: Vec<u8>,
    /// The covered element, in the parsed document.
    pub target: NodeId,
    pub signature_algorithm: SignatureAlgorithm,
    pub digest_algorithm: DigestAlgorithm,
    pub transforms: Transforms,
    pub certificate: X509,
    pub signer: VerifiedCertificate,
}

/// The parts of a parsed `ds:Signature`, all checked against the profile.
#[derive(Debug)]
struct ParsedSignature {
    signature: NodeId,
    signed_info: NodeId,
    signed_info_c14n: ExcC14nOptions,
    signature_algorithm: SignatureAlgorithm,
    /// The Reference URI without `#`; `None` for `URI=""`.
    reference_id: Option<String>,
    transforms: Transforms,
    exc_options: ExcC14nOptions,
    digest_algorithm: DigestAlgorithm,
    digest_value: Vec<u8>,
    signature_value: Vec<u8>,
    /// DER of the KeyInfo certificate, parsed later through the trust store's cache.
    certificate_der: Option<Vec<u8>>,
}

fn malformed(msg: impl Into<String>) -> DsigError {
    DsigError::MalformedSignature(msg.into())
}

/// Element children of `id`, failing on any non-whitespace text (nothing may hide
/// between the parts of a signature).
fn element_children(doc: &Document, id: NodeId) -> Result<Vec<NodeId>, DsigError> {
    let mut out = Vec::new();
    for c in doc.children(id) {
        match doc.node(c).kind() {
            NodeKind::Element(_) => out.push(c),
            NodeKind::Text(t) if t.trim_matches([' ', '\t', '\r', '\n']).is_empty() => {}
            NodeKind::Comment(_) => {}
            _ => return Err(malformed(format!("unexpected content in {}", doc.path(id)))),
        }
    }
    Ok(out)
}

fn expect_ds(doc: &Document, id: NodeId, local: &str) -> Result<(), DsigError> {
    if doc.is_element(id, DSIG_NS, local) {
        Ok(())
    } else {
        Err(malformed(format!(
            "expected ds:{local}, found {}",
            doc.path(id)
        )))
    }
}

fn algorithm_attr(doc: &Document, id: NodeId) -> Result<&str, DsigError> {
    doc.attribute(id, "", "Algorithm")
        .ok_or_else(|| malformed(format!("{} has no Algorithm", doc.path(id))))
}

fn base64_text(doc: &Document, id: NodeId) -> Result<Vec<u8>, DsigError> {
    let mut text = doc.text(id).into_bytes();
    text.retain(|b| !b.is_ascii_whitespace());
    BASE64
        .decode(&text)
        .map_err(|e| malformed(format!("{} is not base64: {e}", doc.path(id))))
}

/// Reads an exc-c14n algorithm (and its InclusiveNamespaces PrefixList) from a
/// CanonicalizationMethod or Transform element.
fn exc_c14n_options(
    doc: &Document,
    id: NodeId,
    algorithm: &str,
) -> Result<ExcC14nOptions, DsigError> {
    let with_comments = match algorithm {
        EXC_C14N => false,
        EXC_C14N_WITH_COMMENTS => true,
        other => return Err(DsigError::UnsupportedAlgorithm(other.to_string())),
    };
    let mut options = ExcC14nOptions {
        with_comments,
        inclusive_prefixes: Vec::new(),
    };
    for c in element_children(doc, id)? {
        if doc.is_element(c, EXC_C14N, "InclusiveNamespaces") {
            let list = doc.attribute(c, "", "PrefixList").unwrap_or("");
            options
                .inclusive_prefixes
                .extend(list.split_ascii_whitespace().map(str::to_string));
        } else {
            return Err(malformed(format!(
                "unexpected {} in {}",
                doc.path(c),
                doc.path(id)
            )));
        }
    }
    Ok(options)
}

fn parse_signature(doc: &Document, signature: NodeId) -> Result<ParsedSignature, DsigError> {
    let parts = element_children(doc, signature)?;
    let mut it = parts.iter().copied();
    let signed_info = it.next().ok_or_else(|| malformed("empty ds:Signature"))?;
    expect_ds(doc, signed_info, "SignedInfo")?;
    let value_el = it.next().ok_or_else(|| malformed("no ds:SignatureValue"))?;
    expect_ds(doc, value_el, "SignatureValue")?;
    let mut certificate_der = None;
    if let Some(key_info) = it.next() {
        expect_ds(doc, key_info, "KeyInfo")?;
        certificate_der = read_key_info(doc, key_info)?;
    }
    if let Some(extra) = it.next() {
        return Err(malformed(format!(
            "{} is not accepted in ds:Signature",
            doc.path(extra)
        )));
    }

    let si = element_children(doc, signed_info)?;
    if si.len() < 3 {
        return Err(malformed(
            "ds:SignedInfo needs CanonicalizationMethod, SignatureMethod and one Reference",
        ));
    }
    expect_ds(doc, si[0], "CanonicalizationMethod")?;
    let signed_info_c14n = exc_c14n_options(doc, si[0], algorithm_attr(doc, si[0])?)?;
    expect_ds(doc, si[1], "SignatureMethod")?;
    let signature_algorithm = SignatureAlgorithm::from_uri(algorithm_attr(doc, si[1])?)?;
    if !element_children(doc, si[1])?.is_empty() {
        // HMACOutputLength and friends: nothing our algorithms take.
        return Err(malformed("ds:SignatureMethod must be empty"));
    }
    if si.len() > 3 {
        return Err(malformed(format!(
            "ds:SignedInfo holds {} References; exactly one is accepted",
            si.len() - 2
        )));
    }
    let reference = si[2];
    expect_ds(doc, reference, "Reference")?;
    let uri = doc
        .attribute(reference, "", "URI")
        .ok_or_else(|| malformed("ds:Reference has no URI"))?;
    let reference_id = if uri.is_empty() {
        None
    } else if let Some(id) = uri.strip_prefix('#') {
        if id.is_empty() || id.starts_with("xpointer(") {
            return Err(malformed(format!("unsupported Reference URI '{uri}'")));
        }
        Some(id.to_string())
    } else {
        return Err(malformed(format!(
            "only same-document references are accepted, not '{uri}'"
        )));
    };

    let rparts = element_children(doc, reference)?;
    let (transforms_el, rest) = match rparts.first() {
        Some(&t) if doc.is_element(t, DSIG_NS, "Transforms") => (Some(t), &rparts[1..]),
        _ => (None, &rparts[..]),
    };
    if rest.len() != 2 {
        return Err(malformed("ds:Reference needs DigestMethod and DigestValue"));
    }
    expect_ds(doc, rest[0], "DigestMethod")?;
    let digest_algorithm = DigestAlgorithm::from_uri(algorithm_attr(doc, rest[0])?)?;
    expect_ds(doc, rest[1], "DigestValue")?;
    let digest_value = base64_text(doc, rest[1])?;

    let mut algorithms: Vec<&str> = Vec::new();
    let mut exc_options = ExcC14nOptions::default();
    if let Some(t) = transforms_el {
        for tr in element_children(doc, t)? {
            expect_ds(doc, tr, "Transform")?;
            let alg = algorithm_attr(doc, tr)?;
            match alg {
                EXC_C14N | EXC_C14N_WITH_COMMENTS => {
                    exc_options = exc_c14n_options(doc, tr, alg)?;
                    algorithms.push(EXC_C14N);
                }
                ENVELOPED_SIGNATURE | SMEV_TRANSFORM => {
                    if !element_children(doc, tr)?.is_empty() {
                        return Err(malformed(format!("transform {alg} takes no parameters")));
                    }
                    algorithms.push(alg);
                }
                other => return Err(DsigError::UnsupportedAlgorithm(other.to_string())),
            }
        }
    }
    let transforms = [
        Transforms::Smev,
        Transforms::ExcC14n,
        Transforms::Enveloped,
        Transforms::EnvelopedSmev,
    ]
    .into_iter()
    .find(|t| t.algorithms() == algorithms.as_slice())
    .ok_or_else(|| {
        DsigError::UnsupportedAlgorithm(format!(
            "transform chain [{}] (accepted: [exc-c14n], [exc-c14n, SMEV], optionally after enveloped-signature)",
            algorithms.join(", ")
        ))
    })?;

    Ok(ParsedSignature {
        signature,
        signed_info,
        signed_info_c14n,
        signature_algorithm,
        reference_id,
        transforms,
        exc_options,
        digest_algorithm,
        digest_value,
        signature_value: base64_text(doc, value_el)?,
        certificate_der,
    })
}

fn read_key_info(doc: &Document, key_info: NodeId) -> Result<Option<Vec<u8>>, DsigError> {
    let mut found: Option<Vec<u8>> = None;
    for c in element_children(doc, key_info)? {
        if !doc.is_element(c, DSIG_NS, "X509Data") {
            continue;
        }
        for d in element_children(doc, c)? {
            if doc.is_element(d, DSIG_NS, "X509Certificate") {
                if found.is_some() {
                    return Err(malformed("KeyInfo carries more than one X509Certificate"));
                }
                found = Some(base64_text(doc, d)?);
            }
        }
    }
    Ok(found)
}

/// All attributes that look like an Id (`Id`, `ID`, `id`, in any namespace) with this value.
fn elements_with_id(doc: &Document, value: &str) -> (Vec<NodeId>, usize) {
    let mut resolvable = Vec::new();
    let mut total = 0;
    for (i, node) in doc.nodes_iter() {
        if let Some(e) = node.as_element() {
            for a in e.attributes() {
                if matches!(a.local_name(), "Id" | "ID" | "id") && a.value() == value {
                    total += 1;
                    if a.prefix().is_none() {
                        resolvable.push(i);
                    }
                }
            }
        }
    }
    (resolvable, total)
}

fn path_error(path: &ElementPath, e: PathError, what: &str) -> DsigError {
    match e {
        PathError::NotFound { .. } if what == "signature" => {
            DsigError::NoSignatureFound(path.to_string())
        }
        PathError::Ambiguous { .. } if what == "signature" => {
            DsigError::AmbiguousSignature(path.to_string())
        }
        PathError::NotFound { .. } => DsigError::IncorrectSignatureTarget {
            expected: path.to_string(),
            found: "no such element in the document".into(),
        },
        PathError::Ambiguous { .. } => DsigError::IncorrectSignatureTarget {
            expected: path.to_string(),
            found: "more than one element at that place".into(),
        },
    }
}

/// Runs the Reference's transform chain over the node set and returns the octets to digest.
fn transformed(doc: &Document, target: NodeId, sig: &ParsedSignature) -> Vec<u8> {
    let exclude = sig.transforms.is_enveloped().then_some(sig.signature);
    apply_transforms(doc, target, exclude, sig.transforms, &sig.exc_options)
}

/// The octets a Reference digests: the node set at `target` less `exclude`, through the
/// chain. Signing and verifying both come here, so they cannot drift apart.
fn apply_transforms(
    doc: &Document,
    target: NodeId,
    exclude: Option<NodeId>,
    transforms: Transforms,
    exc_options: &ExcC14nOptions,
) -> Vec<u8> {
    let mut out = Vec::new();
    if transforms.has_smev() {
        // The SMEV transform reads only the infoset, which exclusive c14n preserves, so
        // applying it straight to the node set equals re-parsing the c14n output.
        smev::transform(doc, target, exclude, &mut out);
    } else {
        c14n::canonicalize(doc, target, exclude, exc_options, &mut out);
    }
    out
}

/// Verifies the signature at `expect.signature_parent` over `expect.target` in `xml`.
pub fn verify(
    xml: &[u8],
    limits: &Limits,
    expect: &Expectation,
    trust: &TrustStore,
    at: SystemTime,
) -> Result<Verified, DsigError> {
    let doc = parse(xml, limits)?;
    verify_document(&doc, expect, trust, at)
}

/// [`verify`] over an already parsed document.
pub fn verify_document(
    doc: &Document,
    expect: &Expectation,
    trust: &TrustStore,
    at: SystemTime,
) -> Result<Verified, DsigError> {
    let sig_path = expect.signature_parent.child(Some(DSIG_NS), "Signature");
    let signature = sig_path
        .resolve(doc)
        .map_err(|e| path_error(&sig_path, e, "signature"))?;
    let sig = parse_signature(doc, signature)?;

    // Resolve the Reference and pin it to the expected element.
    let target = match (&sig.reference_id, &expect.target) {
        (Some(id), Some(expected_path)) => {
            let found = find_by_id(doc, id)?;
            let expected = expected_path
                .resolve(doc)
                .map_err(|e| path_error(expected_path, e, "target"))?;
            if found != expected {
                return Err(DsigError::IncorrectSignatureTarget {
                    expected: expected_path.to_string(),
                    found: doc.path(found),
                });
            }
            found
        }
        (None, None) => {
            if !sig.transforms.is_enveloped() {
                return Err(malformed(
                    "URI=\"\" needs the enveloped-signature transform",
                ));
            }
            Document::DOCUMENT_NODE
        }
        (None, Some(expected_path)) => {
            return Err(DsigError::IncorrectSignatureTarget {
                expected: expected_path.to_string(),
                found: "the whole document (URI=\"\")".into(),
            })
        }
        (Some(id), None) => {
            return Err(DsigError::IncorrectSignatureTarget {
                expected: "the whole document".into(),
                found: format!("#{id}"),
            })
        }
    };
    // An enveloped-signature transform over an element that does not contain the
    // signature removes nothing; generic signers (signxml) emit it that way, so it is
    // accepted as the no-op it is.
    if !sig.transforms.is_enveloped() && doc.is_ancestor_or_self(target, signature) {
        return Err(malformed(
            "the signature stands inside what it signs but has no enveloped-signature transform",
        ));
    }

    let digested = transformed(doc, target, &sig);
    let digest = sig.digest_algorithm.digest(&digested)?;
    if digest.len() != sig.digest_value.len() || !openssl::memcmp::eq(&digest, &sig.digest_value) {
        return Err(DsigError::DigestMismatch);
    }

    let der = sig
        .certificate_der
        .as_deref()
        .ok_or(DsigError::CertificateMissing)?;
    let certificate = trust.certificate_from_der(der)?;
    let mut signed_info = Vec::new();
    c14n::canonicalize(
        doc,
        sig.signed_info,
        None,
        &sig.signed_info_c14n,
        &mut signed_info,
    );
    let public = certificate.public_key()?;
    crypto::verify(
        sig.signature_algorithm,
        &public,
        &signed_info,
        &sig.signature_value,
    )?;
    let signer = trust.verify(&certificate, &[], at)?;

    let target_el = if target == Document::DOCUMENT_NODE {
        doc.root()
    } else {
        target
    };
    Ok(Verified {
        digested,
        target: target_el,
        signature_algorithm: sig.signature_algorithm,
        digest_algorithm: sig.digest_algorithm,
        transforms: sig.transforms,
        certificate,
        signer,
    })
}

/// What makes a SignatureValue: a key in memory ([`SigningKey`]) today; a hardware token
/// or a certified CSP can stand in without the XML side changing.
pub trait Signer: Send + Sync + std::fmt::Debug {
    fn algorithm(&self) -> SignatureAlgorithm;
    /// The certificate that goes into KeyInfo.
    fn certificate(&self) -> &X509;
    /// The SignatureValue octets over `data` (the canonical SignedInfo).
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, DsigError>;
}

impl Signer for SigningKey {
    fn algorithm(&self) -> SignatureAlgorithm {
        SigningKey::algorithm(self)
    }
    fn certificate(&self) -> &X509 {
        SigningKey::certificate(self)
    }
    fn sign(&self, data: &[u8]) -> Result<Vec<u8>, DsigError> {
        SigningKey::sign(self, data)
    }
}

/// Verifies signatures: the seam the gateway and adapters call.
pub trait Verifier: Send + Sync + std::fmt::Debug {
    fn verify(
        &self,
        xml: &[u8],
        expect: &Expectation,
        at: SystemTime,
    ) -> Result<Verified, DsigError>;
}

/// A [`Verifier`] over one trust store and one set of parser limits.
#[derive(Debug)]
pub struct TrustedVerifier {
    pub trust: TrustStore,
    pub limits: Limits,
}

impl Verifier for TrustedVerifier {
    fn verify(
        &self,
        xml: &[u8],
        expect: &Expectation,
        at: SystemTime,
    ) -> Result<Verified, DsigError> {
        verify(xml, &self.limits, expect, &self.trust, at)
    }
}

/// What to sign and where to put the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Sign the element with this Id (detached, `URI="#id"`); append the signature as
    /// the last child of the element at `container`.
    Detached { id: String, container: ElementPath },
    /// Sign the element with this Id, or the whole document when `None` (`URI=""`), and
    /// append the signature as its last child.
    Enveloped { id: Option<String> },
}

/// Options of [`sign`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignOptions {
    /// For [`Placement::Detached`]: [`Transforms::Smev`] or [`Transforms::ExcC14n`]; for
    /// enveloped: [`Transforms::Enveloped`] or [`Transforms::EnvelopedSmev`].
    pub transforms: Transforms,
    /// The Reference digest; `None` takes the one that goes with the key's algorithm.
    pub digest: Option<DigestAlgorithm>,
}

impl SignOptions {
    pub fn smev() -> Self {
        SignOptions {
            transforms: Transforms::Smev,
            digest: None,
        }
    }
}

fn escape_attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('"', "&quot;")
}

/// Builds the `ds:SignedInfo` element, already in canonical form (explicit end tags, the
/// `ds` declaration on it, which exclusive c14n renders there wherever it stands).
fn signed_info_xml(
    alg: SignatureAlgorithm,
    uri: &str,
    transforms: Transforms,
    digest: DigestAlgorithm,
    digest_value: &[u8],
) -> String {
    let mut s = String::with_capacity(800);
    s.push_str("<ds:SignedInfo xmlns:ds=\"");
    s.push_str(DSIG_NS);
    s.push_str("\"><ds:CanonicalizationMethod Algorithm=\"");
    s.push_str(EXC_C14N);
    s.push_str("\"></ds:CanonicalizationMethod><ds:SignatureMethod Algorithm=\"");
    s.push_str(alg.uri());
    s.push_str("\"></ds:SignatureMethod><ds:Reference URI=\"");
    s.push_str(&escape_attr(uri));
    s.push_str("\"><ds:Transforms>");
    for t in transforms.algorithms() {
        s.push_str("<ds:Transform Algorithm=\"");
        s.push_str(t);
        s.push_str("\"></ds:Transform>");
    }
    s.push_str("</ds:Transforms><ds:DigestMethod Algorithm=\"");
    s.push_str(digest.uri());
    s.push_str("\"></ds:DigestMethod><ds:DigestValue>");
    s.push_str(&BASE64.encode(digest_value));
    s.push_str("</ds:DigestValue></ds:Reference></ds:SignedInfo>");
    s
}

/// Signs part of `xml` with `key` and returns the document with the `ds:Signature`
/// spliced in. The original bytes are kept as they are; only the signature is inserted.
pub fn sign(
    xml: &[u8],
    limits: &Limits,
    key: &dyn Signer,
    placement: &Placement,
    options: &SignOptions,
) -> Result<Vec<u8>, DsigError> {
    let doc = parse(xml, limits)?;
    let (target, container, uri) = match placement {
        Placement::Detached { id, container } => {
            if options.transforms.is_enveloped() {
                return Err(malformed(
                    "a detached signature cannot use the enveloped-signature transform",
                ));
            }
            let target = find_by_id(&doc, id)?;
            let container = container
                .resolve(&doc)
                .map_err(|e| path_error(container, e, "target"))?;
            if doc.is_ancestor_or_self(target, container) {
                return Err(malformed("the signature container is inside the signed element; use an enveloped signature"));
            }
            (target, container, format!("#{id}"))
        }
        Placement::Enveloped { id } => {
            if !options.transforms.is_enveloped() {
                return Err(malformed(
                    "an enveloped signature needs the enveloped-signature transform",
                ));
            }
            match id {
                Some(id) => {
                    let t = find_by_id(&doc, id)?;
                    (t, t, format!("#{id}"))
                }
                None => (Document::DOCUMENT_NODE, doc.root(), String::new()),
            }
        }
    };
    let digest_alg = options.digest.unwrap_or(key.algorithm().digest());
    // The signature does not exist yet, so nothing needs excluding even when enveloped.
    let digested = apply_transforms(
        &doc,
        target,
        None,
        options.transforms,
        &ExcC14nOptions::default(),
    );
    let digest_value = digest_alg.digest(&digested)?;
    let signed_info = signed_info_xml(
        key.algorithm(),
        &uri,
        options.transforms,
        digest_alg,
        &digest_value,
    );
    // Sign the canonical form as a verifier will compute it, not our string as written.
    let si_doc = parse(signed_info.as_bytes(), &Limits::default())?;
    let mut canonical_si = Vec::with_capacity(signed_info.len());
    c14n::canonicalize(
        &si_doc,
        si_doc.root(),
        None,
        &ExcC14nOptions::default(),
        &mut canonical_si,
    );
    let signature_value = key.sign(&canonical_si)?;
    let cert_der = key.certificate().to_der()?;

    let signature = format!(
        "<ds:Signature xmlns:ds=\"{DSIG_NS}\">{}<ds:SignatureValue>{}</ds:SignatureValue><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></ds:Signature>",
        // Inside ds:Signature the declaration on SignedInfo is redundant; c14n renders
        // it on SignedInfo either way, so we drop it to keep the document tidy.
        signed_info.replacen(&format!(" xmlns:ds=\"{DSIG_NS}\""), "", 1),
        BASE64.encode(&signature_value),
        BASE64.encode(&cert_der),
    );
    let span = doc
        .element(container)
        .map(|e| e.span())
        .ok_or_else(|| malformed("signature container is not an element"))?;
    let mut out = Vec::with_capacity(xml.len() + signature.len() + 16);
    if span.is_empty_element_tag() {
        // `<c .../>` becomes `<c ...>SIG</c>`.
        let tag = &xml[span.start..span.start_tag_end];
        let head = tag
            .strip_suffix(b"/>")
            .ok_or_else(|| malformed("unexpected empty-element tag"))?;
        let head = head.trim_ascii_end();
        let name = doc
            .element(container)
            .map(|e| e.name().qname().to_string())
            .unwrap_or_default();
        out.extend_from_slice(&xml[..span.start]);
        out.extend_from_slice(head);
        out.push(b'>');
        out.extend_from_slice(signature.as_bytes());
        out.extend_from_slice(format!("</{name}>").as_bytes());
        out.extend_from_slice(&xml[span.end..]);
    } else {
        out.extend_from_slice(&xml[..span.end_tag_start]);
        out.extend_from_slice(signature.as_bytes());
        out.extend_from_slice(&xml[span.end_tag_start..]);
    }
    Ok(out)
}

/// The element a same-document reference `#id` resolves to, by the rules of
/// verification: only an unqualified `Id`/`ID`/`id` attribute resolves, and an `id`-named
/// attribute with that value anywhere else (in any namespace) makes it ambiguous.
pub fn find_by_id(doc: &Document, id: &str) -> Result<NodeId, DsigError> {
    let (resolvable, total) = elements_with_id(doc, id);
    if total > 1 {
        return Err(DsigError::AmbiguousId(id.to_string()));
    }
    match resolvable[..] {
        [one] => Ok(one),
        _ => Err(DsigError::ReferenceNotFound(id.to_string())),
    }
}
