//! The request card: the nine items every interdepartmental request must carry
//! (210-FZ art. 7.2; domain.md §3, protocol.md §5).
//!
//! The card is the element `mz:RequestCard` (namespace [`MZ_NS`]) placed by the sender
//! in `BusinessProcessMetadata` (an `xs:any` slot of `SenderProvidedRequestData`). Its
//! content is a sequence, in this order (all children in [`MZ_NS`]):
//!
//! | element | occurs | art. 7.2 item |
//! |---|---|---|
//! | `SenderAgency` (text) | 1 | 1 |
//! | `RecipientAgency` (text) | 1 | 2 |
//! | `Service { Name, RegistryNumber? }` | 1 | 3 |
//! | `LegalBasis { Act, Provision }` | 1..n | 4 |
//! | `SearchDetails { Detail+ }` — `Detail` has attribute `name` and a text value | 1 | 5 |
//! | `ReplyContact` (text) | 1 | 6 |
//! | `SentOn` (`xs:date`) | 1 | 7 |
//! | `Official { FullName, Position, Phone?, Email? }` — at least one of Phone, Email | 1 | 8 |
//! | `SubjectConsent { Obtained (xs:boolean), Document?, Date? (xs:date) }` | 0..1 | 9 |
//! | `SenderRegistration { Number, Date (xs:date) }` — the sender's own registration | 1 | — |
//! | `AccessRestriction` (text `restricted`: DSP) | 0..1 | — |
//! | `Paper { Kind (paper\|fax), OriginalSentOn? (xs:date) }` | 0..1 | — |
//!
//! [`read_card`] checks all of it against the [`CardContext`] of the request and either
//! returns the card or **every** violation found (at most [`MAX_VIOLATIONS`], then one
//! summary), each with the byte position of the offending element and the art. 7.2 item it
//! concerns. Text values are trimmed; an element that is present must not be empty
//! (optional ones included — omit the element instead).
//!
//! Dates are `xs:date` restricted to `YYYY-MM-DD` with an optional `Z` or `±hh:mm` zone,
//! which is accepted and ignored: the date is taken as written. Dates that say when
//! something happened (`SentOn`, `SenderRegistration/Date`, `SubjectConsent/Date`,
//! `Paper/OriginalSentOn`) may be at most one day after the gateway's date
//! ([`CardContext::today`]): Russia spans eleven time zones, so a sender's local date can
//! be a day ahead of the gateway's, but not more.
//!
//! Privacy: `SearchDetails` may be personal data. Violation messages never quote the
//! values of search details, contacts or the official's data, the `Debug` form of
//! [`SearchDetail`] hides its value, and the journal stores only a keyed hash of
//! [`RequestCard::search_details_canonical`].

use std::fmt;

use chrono::NaiveDate;
use mezhved_xml::{Document, NodeId, NodeKind};

/// Namespace of mezhved's extensions, the request card among them.
pub const MZ_NS: &str = "urn://mezhved/ext/1.0";

/// Namespace of `BusinessProcessMetadata` (SMEV 3 message-exchange types 1.1).
pub const SMEV_TYPES_NS: &str = "urn://x-artefacts-smev-gov-ru/services/message-exchange/types/1.1";

/// At most this many violations are reported; the rest are summed up in one more.
pub const MAX_VIOLATIONS: usize = 100;

/// Longest excerpt of a sender's value quoted in a violation message, in characters.
const QUOTE_MAX_CHARS: usize = 64;

/// How many accepted agency names a message lists.
const EXPECTED_NAMES_SHOWN: usize = 3;

/// A request card that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestCard {
    /// Item 1.
    pub sender_agency: String,
    /// Item 2.
    pub recipient_agency: String,
    /// Item 3.
    pub service: Service,
    /// Item 4 (at least one).
    pub legal_basis: Vec<LegalBasis>,
    /// Item 5 (at least one), in document order.
    pub search_details: Vec<SearchDetail>,
    /// Item 6.
    pub reply_contact: String,
    /// Item 7.
    pub sent_on: NaiveDate,
    /// Item 8.
    pub official: Official,
    /// Item 9.
    pub subject_consent: Option<SubjectConsent>,
    /// The sender's own registration of the request (first of the triple registration).
    pub sender_registration: SenderRegistration,
    /// `AccessRestriction` was present (with the value `restricted`).
    pub access_restricted: bool,
    /// The request is also sent on paper or by fax.
    pub paper: Option<Paper>,
}

/// Item 3: the public service the data is needed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    /// Its number in the register of services, if it has one.
    pub registry_number: Option<String>,
}

/// Item 4: the provision of a legal act establishing that the data is provided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegalBasis {
    /// The act's details (kind, date, number, title).
    pub act: String,
    /// The provision (article, part, item).
    pub provision: String,
}

/// Item 5: one detail needed to find the document or information. May be personal data:
/// the `Debug` form shows the name only.
#[derive(Clone, PartialEq, Eq)]
pub struct SearchDetail {
    pub name: String,
    pub value: String,
}

impl fmt::Debug for SearchDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchDetail")
            .field("name", &self.name)
            .field("value", &format_args!("<redacted>"))
            .finish()
    }
}

/// Item 8: the official who prepared and sent the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Official {
    pub full_name: String,
    pub position: String,
    /// Work phone; at least one of `phone` and `email` is present.
    pub phone: Option<String>,
    /// Work e-mail.
    pub email: Option<String>,
}

/// Item 9: the mark that the data subject's consent was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectConsent {
    pub obtained: bool,
    /// The document of consent (its details).
    pub document: Option<String>,
    pub date: Option<NaiveDate>,
}

/// The sender's registration of the request in its own records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderRegistration {
    pub number: String,
    pub date: NaiveDate,
}

/// The request is also sent on paper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paper {
    pub kind: PaperKind,
    /// When the paper original was sent.
    pub original_sent_on: Option<NaiveDate>,
}

/// How the paper copy travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaperKind {
    Paper,
    Fax,
}

impl PaperKind {
    /// The value as written in the card.
    pub fn as_str(self) -> &'static str {
        match self {
            PaperKind::Paper => "paper",
            PaperKind::Fax => "fax",
        }
    }
}

impl RequestCard {
    /// A stable byte encoding of the search details, to be HMAC'd for the journal.
    ///
    /// The details are sorted by name, then by value (both compared as UTF-8 byte
    /// strings), and each is written as the UTF-8 bytes of its name, the byte `0x1F`
    /// (unit separator), the UTF-8 bytes of its value and the byte `0x1E` (record
    /// separator). Names and values are the trimmed texts as read; no Unicode
    /// normalisation is applied. Duplicates are kept. Since XML 1.0 text cannot contain
    /// `0x1E` or `0x1F`, the encoding of a card read from XML is unambiguous; the order of
    /// the details in the document does not matter.
    pub fn search_details_canonical(&self) -> Vec<u8> {
        canonical_search_details(&self.search_details)
    }
}

/// [`RequestCard::search_details_canonical`] of any list of details (an auditor's search
/// is hashed the same way as the cards it looks for). Names and values are trimmed here,
/// as the card reader trims them.
pub fn canonical_search_details(details: &[SearchDetail]) -> Vec<u8> {
    let mut details: Vec<(&str, &str)> = details
        .iter()
        .map(|d| (d.name.trim(), d.value.trim()))
        .collect();
    details.sort();
    let len = details.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(len);
    for (name, value) in details {
        out.extend_from_slice(name.as_bytes());
        out.push(0x1F);
        out.extend_from_slice(value.as_bytes());
        out.push(0x1E);
    }
    out
}

/// The keyed hash under which a card's search details are kept (the journal never stores
/// the details): HMAC-SHA-256 with the operator's subject key over
/// [`canonical_search_details`].
pub fn subject_hash(
    key: &[u8],
    details: &[SearchDetail],
) -> Result<[u8; 32], openssl::error::ErrorStack> {
    let key = openssl::pkey::PKey::hmac(key)?;
    let mut signer = openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key)?;
    let digest = signer.sign_oneshot_to_vec(&canonical_search_details(details))?;
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest[..32]);
    Ok(out)
}

/// What the card is checked against.
#[derive(Debug, Clone, Copy)]
pub struct CardContext<'a> {
    /// Names of the agency that owns the sending information system; `SenderAgency` must
    /// match one of them (case-insensitively, whitespace runs collapsed). An empty list
    /// accepts no name.
    pub sender_agency_names: &'a [&'a str],
    /// Names of the agency the request is addressed to; `RecipientAgency` likewise.
    pub recipient_agency_names: &'a [&'a str],
    /// The kind of information requested is restricted (DSP): the card must carry
    /// `AccessRestriction`.
    pub kind_restricted: bool,
    /// The law requires the data subject's consent for this service (item 9).
    pub consent_required: bool,
    /// The gateway's current date.
    pub today: NaiveDate,
}

/// One thing wrong with a card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Byte offset in the parsed input of the offending element (or of its parent when it
    /// is missing).
    pub position: usize,
    /// The item (1..=9) of 210-FZ art. 7.2 concerned, if any.
    pub item: Option<u8>,
    /// What is wrong, starting with the element's path, e.g.
    /// `RequestCard/Official: a work phone or e-mail is required (210-FZ art. 7.2 item 8)`.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Reads and checks the request card.
///
/// `business_process_metadata` is the `BusinessProcessMetadata` element of
/// `SenderProvidedRequestData`, if the request has one; `fallback_position` is where to
/// point when it does not (e.g. the start of `SenderProvidedRequestData`). Other children
/// of `BusinessProcessMetadata` (it is `xs:any`) are left alone.
///
/// Returns the card, or every violation found (see the module documentation).
pub fn read_card(
    doc: &Document,
    business_process_metadata: Option<NodeId>,
    fallback_position: usize,
    ctx: &CardContext,
) -> Result<RequestCard, Vec<Violation>> {
    let mut r = Reader {
        doc,
        ctx,
        out: Collector::default(),
    };
    let Some(bpm) = business_process_metadata.filter(|&n| doc.element(n).is_some()) else {
        r.report(
            fallback_position,
            "SenderProvidedRequestData",
            None,
            format_args!(
                "the request card is missing: BusinessProcessMetadata with a RequestCard \
                 (namespace {MZ_NS}) is required on every request (210-FZ art. 7.2)"
            ),
        );
        return Err(r.out.finish(fallback_position));
    };
    let bpm_pos = r.pos(bpm);
    let cards: Vec<NodeId> = doc.children_named(bpm, MZ_NS, "RequestCard").collect();
    let Some(&card) = cards.first() else {
        let hint = doc
            .child_elements(bpm)
            .find(|&c| {
                doc.element(c)
                    .is_some_and(|e| e.local_name() == "RequestCard")
            })
            .map(|c| {
                format!(
                    "; found RequestCard in {} instead",
                    describe_ns(doc.element_ns_uri(c))
                )
            })
            .unwrap_or_default();
        r.report(
            bpm_pos,
            "BusinessProcessMetadata",
            None,
            format_args!(
                "the request card is missing: a RequestCard in namespace {MZ_NS} is \
                 required on every request (210-FZ art. 7.2){hint}"
            ),
        );
        return Err(r.out.finish(bpm_pos));
    };
    for &dup in &cards[1..] {
        r.report(
            r.pos(dup),
            "BusinessProcessMetadata/RequestCard",
            None,
            format_args!("duplicate element: a request carries only one request card"),
        );
    }
    let card_pos = r.pos(card);
    let result = r.card(card);
    match result {
        Some(card) if r.out.is_empty() => Ok(card),
        _ => {
            if r.out.is_empty() {
                // Unreachable: every missing part has been reported. Never answer Ok
                // with an incomplete card, though.
                r.report(
                    card_pos,
                    "RequestCard",
                    None,
                    format_args!("the request card is incomplete"),
                );
            }
            Err(r.out.finish(card_pos))
        }
    }
}

/// The schema of one child in a sequence.
#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    required: bool,
    repeat: bool,
    item: Option<u8>,
}

const fn one(name: &'static str, item: Option<u8>) -> Field {
    Field {
        name,
        required: true,
        repeat: false,
        item,
    }
}

const fn opt(name: &'static str, item: Option<u8>) -> Field {
    Field {
        name,
        required: false,
        repeat: false,
        item,
    }
}

const fn many(name: &'static str, item: Option<u8>) -> Field {
    Field {
        name,
        required: true,
        repeat: true,
        item,
    }
}

const CARD: [Field; 12] = [
    one("SenderAgency", Some(1)),
    one("RecipientAgency", Some(2)),
    one("Service", Some(3)),
    many("LegalBasis", Some(4)),
    one("SearchDetails", Some(5)),
    one("ReplyContact", Some(6)),
    one("SentOn", Some(7)),
    one("Official", Some(8)),
    opt("SubjectConsent", Some(9)),
    one("SenderRegistration", None),
    opt("AccessRestriction", None),
    opt("Paper", None),
];
const SERVICE: [Field; 2] = [one("Name", Some(3)), opt("RegistryNumber", Some(3))];
const LEGAL_BASIS: [Field; 2] = [one("Act", Some(4)), one("Provision", Some(4))];
const SEARCH_DETAILS: [Field; 1] = [many("Detail", Some(5))];
const OFFICIAL: [Field; 4] = [
    one("FullName", Some(8)),
    one("Position", Some(8)),
    opt("Phone", Some(8)),
    opt("Email", Some(8)),
];
const SUBJECT_CONSENT: [Field; 3] = [
    one("Obtained", Some(9)),
    opt("Document", Some(9)),
    opt("Date", Some(9)),
];
const SENDER_REGISTRATION: [Field; 2] = [one("Number", None), one("Date", None)];
const PAPER: [Field; 2] = [one("Kind", None), opt("OriginalSentOn", None)];

/// Keeps the first [`MAX_VIOLATIONS`] violations and counts the rest.
#[derive(Debug, Default)]
struct Collector {
    kept: Vec<Violation>,
    more: usize,
}

impl Collector {
    fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }

    fn finish(mut self, summary_position: usize) -> Vec<Violation> {
        if self.more > 0 {
            self.kept.push(Violation {
                position: summary_position,
                item: None,
                message: format!(
                    "RequestCard: …and {} more violation{}",
                    self.more,
                    if self.more == 1 { "" } else { "s" }
                ),
            });
        }
        self.kept
    }
}

struct Reader<'a> {
    doc: &'a Document,
    ctx: &'a CardContext<'a>,
    out: Collector,
}

impl Reader<'_> {
    fn report(&mut self, position: usize, path: &str, item: Option<u8>, problem: fmt::Arguments) {
        if self.out.kept.len() >= MAX_VIOLATIONS {
            self.out.more += 1;
            return;
        }
        let mut message = format!("{path}: {problem}");
        if let Some(n) = item {
            message.push_str(&format!(" (210-FZ art. 7.2 item {n})"));
        }
        self.out.kept.push(Violation {
            position,
            item,
            message,
        });
    }

    fn pos(&self, id: NodeId) -> usize {
        self.doc.element(id).map_or(0, |e| e.span().start)
    }

    /// How to name an element that does not belong where it is.
    fn describe(&self, id: NodeId) -> String {
        let Some(e) = self.doc.element(id) else {
            return String::from("(not an element)");
        };
        let ns = self.doc.ns_uri(e.namespace());
        if ns == MZ_NS {
            e.local_name().to_owned()
        } else {
            format!("{} ({})", e.local_name(), describe_ns(ns))
        }
    }

    /// Reads the children of `parent` against a sequence schema: reports unknown,
    /// misplaced, duplicate and missing elements and stray text, and returns the nodes
    /// found for each field (at most one for a non-repeating field).
    fn sequence(
        &mut self,
        parent: NodeId,
        path: &str,
        fields: &[Field],
        item: Option<u8>,
    ) -> Vec<Vec<NodeId>> {
        let doc = self.doc;
        let mut found: Vec<Vec<NodeId>> = vec![Vec::new(); fields.len()];
        let mut furthest: Option<usize> = None;
        let mut stray_text = false;
        for child in doc.children(parent) {
            let element = match doc.node(child).kind() {
                NodeKind::Element(e) => e,
                NodeKind::Text(t) => {
                    if !stray_text && !t.trim().is_empty() {
                        stray_text = true;
                        self.report(
                            self.pos(parent),
                            path,
                            item,
                            format_args!("unexpected text: only child elements are allowed here"),
                        );
                    }
                    continue;
                }
                _ => continue,
            };
            let local = element.local_name();
            let ns = doc.ns_uri(element.namespace());
            let k = fields.iter().position(|f| f.name == local);
            let k = match k {
                Some(k) if ns == MZ_NS => k,
                Some(_) => {
                    self.report(
                        self.pos(child),
                        path,
                        item,
                        format_args!(
                            "element {local} is in {}: the card's elements must be in \
                             namespace {MZ_NS}",
                            describe_ns(ns)
                        ),
                    );
                    continue;
                }
                None => {
                    let name = self.describe(child);
                    self.report(
                        self.pos(child),
                        path,
                        item,
                        format_args!("unknown element {name}"),
                    );
                    continue;
                }
            };
            let field = fields[k];
            if !field.repeat && !found[k].is_empty() {
                self.report(
                    self.pos(child),
                    &format!("{path}/{}", field.name),
                    field.item,
                    format_args!("duplicate element: {} may occur only once", field.name),
                );
                continue;
            }
            match furthest {
                Some(m) if k < m => {
                    self.report(
                        self.pos(child),
                        &format!("{path}/{}", field.name),
                        field.item,
                        format_args!(
                            "element out of order: {} must come before {}",
                            field.name, fields[m].name
                        ),
                    );
                }
                _ => furthest = Some(k),
            }
            found[k].push(child);
        }
        for (k, field) in fields.iter().enumerate() {
            if field.required && found[k].is_empty() {
                self.report(
                    self.pos(parent),
                    &format!("{path}/{}", field.name),
                    field.item,
                    format_args!("required element is missing"),
                );
            }
        }
        found
    }

    /// The trimmed text of a simple element; `None` (reported) when empty.
    fn text(&mut self, id: NodeId, path: &str, item: Option<u8>) -> Option<String> {
        if let Some(child) = self.doc.child_elements(id).next() {
            let name = self.describe(child);
            self.report(
                self.pos(child),
                path,
                item,
                format_args!("must contain text only, found element {name}"),
            );
        }
        let raw = self.doc.text(id);
        let value = raw.trim();
        if value.is_empty() {
            self.report(self.pos(id), path, item, format_args!("must not be empty"));
            return None;
        }
        Some(value.to_owned())
    }

    /// An `xs:date` that may be at most one day after today.
    fn date(&mut self, id: NodeId, path: &str, item: Option<u8>) -> Option<NaiveDate> {
        let text = self.text(id, path, item)?;
        let Some(date) = parse_xs_date(&text) else {
            self.report(
                self.pos(id),
                path,
                item,
                format_args!(
                    "not a valid date: {} (expected xs:date YYYY-MM-DD, optionally \
                     followed by Z or ±hh:mm)",
                    quote(&text)
                ),
            );
            return None;
        };
        let today = self.ctx.today;
        if let Some(latest) = today.succ_opt() {
            if date > latest {
                self.report(
                    self.pos(id),
                    path,
                    item,
                    format_args!(
                        "date {date} is in the future: it may be at most one day after \
                         today ({today})"
                    ),
                );
            }
        }
        Some(date)
    }

    fn agency(
        &mut self,
        id: NodeId,
        path: &str,
        item: u8,
        accepted: &[&str],
        whose: &str,
    ) -> Option<String> {
        let value = self.text(id, path, Some(item))?;
        let wanted = normalise_name(&value);
        if !accepted.iter().any(|a| normalise_name(a) == wanted) {
            if accepted.is_empty() {
                self.report(
                    self.pos(id),
                    path,
                    Some(item),
                    format_args!(
                        "{} cannot be checked: no agency name is registered for {whose}",
                        quote(&value)
                    ),
                );
            } else {
                let mut shown: Vec<String> = accepted
                    .iter()
                    .take(EXPECTED_NAMES_SHOWN)
                    .map(|a| quote(a))
                    .collect();
                if accepted.len() > EXPECTED_NAMES_SHOWN {
                    shown.push(format!("{} more", accepted.len() - EXPECTED_NAMES_SHOWN));
                }
                self.report(
                    self.pos(id),
                    path,
                    Some(item),
                    format_args!(
                        "{} does not name {whose} (expected {})",
                        quote(&value),
                        shown.join(", ")
                    ),
                );
            }
        }
        Some(value)
    }

    fn card(&mut self, card: NodeId) -> Option<RequestCard> {
        const P: &str = "RequestCard";
        let ctx = self.ctx;
        let card_pos = self.pos(card);
        let f = self.sequence(card, P, &CARD, None);

        let sender_agency = f[0].first().and_then(|&n| {
            self.agency(
                n,
                "RequestCard/SenderAgency",
                1,
                ctx.sender_agency_names,
                "the agency of the sending information system",
            )
        });
        let recipient_agency = f[1].first().and_then(|&n| {
            self.agency(
                n,
                "RequestCard/RecipientAgency",
                2,
                ctx.recipient_agency_names,
                "the agency the request is addressed to",
            )
        });
        let service = f[2].first().and_then(|&n| self.service(n));
        let mut legal_basis = Vec::with_capacity(f[3].len());
        for (i, &n) in f[3].iter().enumerate() {
            if let Some(lb) = self.legal_basis(n, i) {
                legal_basis.push(lb);
            }
        }
        let search_details = f[4].first().and_then(|&n| self.search_details(n));
        let reply_contact = f[5]
            .first()
            .and_then(|&n| self.text(n, "RequestCard/ReplyContact", Some(6)));
        let sent_on = f[6]
            .first()
            .and_then(|&n| self.date(n, "RequestCard/SentOn", Some(7)));
        let official = f[7].first().and_then(|&n| self.official(n));

        let subject_consent = match f[8].first() {
            Some(&n) => self.subject_consent(n),
            None => {
                if ctx.consent_required {
                    self.report(
                        card_pos,
                        "RequestCard/SubjectConsent",
                        Some(9),
                        format_args!(
                            "required element is missing: the law requires the data \
                             subject's consent for this service, and the card must mark \
                             that it was obtained"
                        ),
                    );
                }
                None
            }
        };
        let sender_registration = f[9].first().and_then(|&n| self.sender_registration(n));

        let access_restricted = match f[10].first() {
            Some(&n) => {
                const PATH: &str = "RequestCard/AccessRestriction";
                match self.text(n, PATH, None) {
                    Some(v) if v == "restricted" => true,
                    Some(v) => {
                        self.report(
                            self.pos(n),
                            PATH,
                            None,
                            format_args!("must be \"restricted\", found {}", quote(&v)),
                        );
                        false
                    }
                    None => false,
                }
            }
            None => {
                if ctx.kind_restricted {
                    self.report(
                        card_pos,
                        P,
                        None,
                        format_args!(
                            "the kind of information is restricted (DSP): the card must \
                             carry AccessRestriction"
                        ),
                    );
                }
                false
            }
        };
        let paper = f[11].first().map(|&n| self.paper(n));

        Some(RequestCard {
            sender_agency: sender_agency?,
            recipient_agency: recipient_agency?,
            service: service?,
            legal_basis: non_empty(legal_basis)?,
            search_details: search_details?,
            reply_contact: reply_contact?,
            sent_on: sent_on?,
            official: official?,
            subject_consent,
            sender_registration: sender_registration?,
            access_restricted,
            paper: optional(paper)?,
        })
    }

    fn service(&mut self, id: NodeId) -> Option<Service> {
        const P: &str = "RequestCard/Service";
        let f = self.sequence(id, P, &SERVICE, Some(3));
        let name = f[0]
            .first()
            .and_then(|&n| self.text(n, "RequestCard/Service/Name", Some(3)));
        let registry_number = f[1]
            .first()
            .map(|&n| self.text(n, "RequestCard/Service/RegistryNumber", Some(3)));
        Some(Service {
            name: name?,
            registry_number: optional(registry_number)?,
        })
    }

    fn legal_basis(&mut self, id: NodeId, index: usize) -> Option<LegalBasis> {
        let p = format!("RequestCard/LegalBasis[{}]", index + 1);
        let f = self.sequence(id, &p, &LEGAL_BASIS, Some(4));
        let act = f[0]
            .first()
            .and_then(|&n| self.text(n, &format!("{p}/Act"), Some(4)));
        let provision = f[1]
            .first()
            .and_then(|&n| self.text(n, &format!("{p}/Provision"), Some(4)));
        Some(LegalBasis {
            act: act?,
            provision: provision?,
        })
    }

    fn search_details(&mut self, id: NodeId) -> Option<Vec<SearchDetail>> {
        const P: &str = "RequestCard/SearchDetails";
        let f = self.sequence(id, P, &SEARCH_DETAILS, Some(5));
        let mut details = Vec::with_capacity(f[0].len());
        let mut complete = true;
        for (i, &n) in f[0].iter().enumerate() {
            let p = format!("{P}/Detail[{}]", i + 1);
            let name = match self.doc.attribute(n, "", "name").map(str::trim) {
                Some(name) if !name.is_empty() => Some(name.to_owned()),
                Some(_) => {
                    self.report(
                        self.pos(n),
                        &p,
                        Some(5),
                        format_args!("attribute name must not be empty"),
                    );
                    None
                }
                None => {
                    self.report(
                        self.pos(n),
                        &p,
                        Some(5),
                        format_args!("attribute name is missing"),
                    );
                    None
                }
            };
            let value = self.text(n, &p, Some(5));
            match (name, value) {
                (Some(name), Some(value)) => details.push(SearchDetail { name, value }),
                _ => complete = false,
            }
        }
        if complete {
            non_empty(details)
        } else {
            None
        }
    }

    fn official(&mut self, id: NodeId) -> Option<Official> {
        const P: &str = "RequestCard/Official";
        let f = self.sequence(id, P, &OFFICIAL, Some(8));
        let full_name = f[0]
            .first()
            .and_then(|&n| self.text(n, "RequestCard/Official/FullName", Some(8)));
        let position = f[1]
            .first()
            .and_then(|&n| self.text(n, "RequestCard/Official/Position", Some(8)));
        let phone = f[2].first().and_then(|&n| {
            const PATH: &str = "RequestCard/Official/Phone";
            let v = self.text(n, PATH, Some(8))?;
            if let Some(problem) = phone_problem(&v) {
                self.report(
                    self.pos(n),
                    PATH,
                    Some(8),
                    format_args!("not a valid phone number: {problem}"),
                );
            }
            Some(v)
        });
        let email = f[3].first().and_then(|&n| {
            const PATH: &str = "RequestCard/Official/Email";
            let v = self.text(n, PATH, Some(8))?;
            if let Some(problem) = email_problem(&v) {
                self.report(
                    self.pos(n),
                    PATH,
                    Some(8),
                    format_args!("not a valid e-mail address: {problem}"),
                );
            }
            Some(v)
        });
        if f[2].is_empty() && f[3].is_empty() {
            self.report(
                self.pos(id),
                P,
                Some(8),
                format_args!("a work phone or e-mail is required"),
            );
        }
        Some(Official {
            full_name: full_name?,
            position: position?,
            phone,
            email,
        })
    }

    fn subject_consent(&mut self, id: NodeId) -> Option<SubjectConsent> {
        const P: &str = "RequestCard/SubjectConsent";
        let f = self.sequence(id, P, &SUBJECT_CONSENT, Some(9));
        let obtained = f[0].first().and_then(|&n| {
            const PATH: &str = "RequestCard/SubjectConsent/Obtained";
            let v = self.text(n, PATH, Some(9))?;
            let Some(b) = parse_xs_boolean(&v) else {
                self.report(
                    self.pos(n),
                    PATH,
                    Some(9),
                    format_args!(
                        "not a valid boolean: {} (expected true, false, 1 or 0)",
                        quote(&v)
                    ),
                );
                return None;
            };
            if !b && self.ctx.consent_required {
                self.report(
                    self.pos(n),
                    PATH,
                    Some(9),
                    format_args!(
                        "the law requires the data subject's consent for this service, \
                         but the card says it was not obtained"
                    ),
                );
            }
            Some(b)
        });
        let document = f[1]
            .first()
            .map(|&n| self.text(n, "RequestCard/SubjectConsent/Document", Some(9)));
        let date = f[2]
            .first()
            .map(|&n| self.date(n, "RequestCard/SubjectConsent/Date", Some(9)));
        Some(SubjectConsent {
            obtained: obtained?,
            document: optional(document)?,
            date: optional(date)?,
        })
    }

    fn sender_registration(&mut self, id: NodeId) -> Option<SenderRegistration> {
        const P: &str = "RequestCard/SenderRegistration";
        let f = self.sequence(id, P, &SENDER_REGISTRATION, None);
        let number = f[0]
            .first()
            .and_then(|&n| self.text(n, "RequestCard/SenderRegistration/Number", None));
        let date = f[1]
            .first()
            .and_then(|&n| self.date(n, "RequestCard/SenderRegistration/Date", None));
        Some(SenderRegistration {
            number: number?,
            date: date?,
        })
    }

    fn paper(&mut self, id: NodeId) -> Option<Paper> {
        const P: &str = "RequestCard/Paper";
        let f = self.sequence(id, P, &PAPER, None);
        let kind = f[0].first().and_then(|&n| {
            const PATH: &str = "RequestCard/Paper/Kind";
            let v = self.text(n, PATH, None)?;
            match v.as_str() {
                "paper" => Some(PaperKind::Paper),
                "fax" => Some(PaperKind::Fax),
                _ => {
                    self.report(
                        self.pos(n),
                        PATH,
                        None,
                        format_args!("must be \"paper\" or \"fax\", found {}", quote(&v)),
                    );
                    None
                }
            }
        });
        let original_sent_on = f[1]
            .first()
            .map(|&n| self.date(n, "RequestCard/Paper/OriginalSentOn", None));
        Some(Paper {
            kind: kind?,
            original_sent_on: optional(original_sent_on)?,
        })
    }
}

/// An optional part: absent is fine (`Some(None)`), present but invalid fails (`None`).
fn optional<T>(part: Option<Option<T>>) -> Option<Option<T>> {
    match part {
        None => Some(None),
        Some(None) => None,
        Some(Some(v)) => Some(Some(v)),
    }
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() {
        None
    } else {
        Some(v)
    }
}

fn describe_ns(ns: &str) -> String {
    if ns.is_empty() {
        String::from("no namespace")
    } else {
        format!("namespace {ns}")
    }
}

/// A sender's value for a message: debug-quoted (control characters escaped) and cut to
/// [`QUOTE_MAX_CHARS`] characters.
fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX_CHARS) {
        Some((cut, _)) => format!("{:?}…", &s[..cut]),
        None => format!("{s:?}"),
    }
}

/// Case-insensitive, whitespace-normalised form of an agency name.
fn normalise_name(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// `YYYY-MM-DD` with an optional zone `Z` or `±hh:mm` (hh ≤ 14, mm ≤ 59, 14:00 at most),
/// the zone ignored. Years 0001–9999 only.
fn parse_xs_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&b[0..4])?;
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    if year == 0 {
        return None;
    }
    match &b[10..] {
        [] | [b'Z'] => {}
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let hh = digits(&[*h1, *h2])?;
            let mm = digits(&[*m1, *m2])?;
            if mm > 59 || hh > 14 || (hh == 14 && mm != 0) {
                return None;
            }
        }
        _ => return None,
    }
    NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)
}

fn digits(b: &[u8]) -> Option<u32> {
    b.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// `xs:boolean` (whitespace already trimmed).
fn parse_xs_boolean(s: &str) -> Option<bool> {
    match s {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

fn phone_problem(phone: &str) -> Option<&'static str> {
    let allowed = phone
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '+' | '(' | ')' | '-'));
    let digit_count = phone.chars().filter(char::is_ascii_digit).count();
    match (allowed, digit_count >= 5) {
        (true, true) => None,
        (false, true) => Some("only digits, spaces, '+', '(', ')' and '-' are allowed"),
        (true, false) => Some("at least 5 digits are required"),
        (false, false) => Some(
            "only digits, spaces, '+', '(', ')' and '-' are allowed, and at least 5 digits \
             are required",
        ),
    }
}

fn email_problem(email: &str) -> Option<&'static str> {
    let mut parts = email.split('@');
    let (local, domain) = match (parts.next(), parts.next(), parts.next()) {
        (Some(l), Some(d), None) => (l, d),
        _ => return Some("it must contain exactly one '@'"),
    };
    if local.is_empty() || domain.is_empty() {
        return Some("there must be text on both sides of the '@'");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("spaces and control characters are not allowed");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use mezhved_xml::{parse, Limits};
    use proptest::prelude::*;

    const SENDER_NAMES: &[&str] = &[
        "Управление Росреестра по Тверской области",
        "Rosreestr Tver",
    ];
    const RECIPIENT_NAMES: &[&str] = &["ФНС России"];

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, 1).expect("date")
    }

    fn ctx() -> CardContext<'static> {
        CardContext {
            sender_agency_names: SENDER_NAMES,
            recipient_agency_names: RECIPIENT_NAMES,
            kind_restricted: false,
            consent_required: false,
            today: today(),
        }
    }

    /// The parts of a valid card, in schema order.
    const PARTS: [(&str, &str); 10] = [
        ("SenderAgency", "<mz:SenderAgency>  управление  Росреестра\n по Тверской   области </mz:SenderAgency>"),
        ("RecipientAgency", "<mz:RecipientAgency>ФНС России</mz:RecipientAgency>"),
        ("Service", "<mz:Service><mz:Name>Государственная регистрация прав</mz:Name><mz:RegistryNumber> 10000000001 </mz:RegistryNumber></mz:Service>"),
        ("LegalBasis", "<mz:LegalBasis><mz:Act>Федеральный закон от 13.07.2015 № 218-ФЗ</mz:Act><mz:Provision>ст. 18</mz:Provision></mz:LegalBasis>\
                        <mz:LegalBasis><mz:Act>Федеральный закон от 27.07.2010 № 210-ФЗ</mz:Act><mz:Provision>ст. 7.2</mz:Provision></mz:LegalBasis>"),
        ("SearchDetails", "<mz:SearchDetails><mz:Detail name=\"snils\">SECRET-112-233-445 95</mz:Detail><mz:Detail name=\"cadastral\">69:40:0100001:1</mz:Detail></mz:SearchDetails>"),
        ("ReplyContact", "<mz:ReplyContact>tver@rosreestr.example</mz:ReplyContact>"),
        ("SentOn", "<mz:SentOn>2025-03-01</mz:SentOn>"),
        ("Official", "<mz:Official><mz:FullName>Петрова Анна Сергеевна</mz:FullName><mz:Position>ведущий специалист</mz:Position><mz:Phone>+7 (4822) 12-34-56</mz:Phone><mz:Email>petrova@tver.example</mz:Email></mz:Official>"),
        ("SubjectConsent", "<mz:SubjectConsent><mz:Obtained>true</mz:Obtained><mz:Document>заявление № 5</mz:Document><mz:Date>2025-02-28Z</mz:Date></mz:SubjectConsent>"),
        ("SenderRegistration", "<mz:SenderRegistration><mz:Number>ВХ-123/25</mz:Number><mz:Date>2025-03-01+03:00</mz:Date></mz:SenderRegistration>"),
    ];

    fn part(name: &str) -> &'static str {
        PARTS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, x)| *x)
            .expect("known part")
    }

    /// The valid card body with some parts replaced ("" removes one).
    fn body(edits: &[(&str, &str)]) -> String {
        for (name, _) in edits {
            assert!(PARTS.iter().any(|(n, _)| n == name), "unknown part {name}");
        }
        PARTS
            .iter()
            .map(|(name, xml)| {
                edits
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(*xml, |(_, x)| *x)
            })
            .collect()
    }

    fn envelope(bpm_content: &str) -> String {
        format!(
            "<SenderProvidedRequestData xmlns=\"{SMEV_TYPES_NS}\" Id=\"SIGNED\">\
             <MessageID>c7dd9a60-8ef8-11e7-9d43-00155d0a0b1f</MessageID>\
             <BusinessProcessMetadata>{bpm_content}</BusinessProcessMetadata>\
             </SenderProvidedRequestData>"
        )
    }

    fn card_doc(body: &str) -> String {
        envelope(&format!(
            "<mz:RequestCard xmlns:mz=\"{MZ_NS}\">{body}</mz:RequestCard>"
        ))
    }

    fn read_with(xml: &str, ctx: &CardContext) -> Result<RequestCard, Vec<Violation>> {
        let doc = parse(xml.as_bytes(), &Limits::default()).expect("well-formed test XML");
        let bpm = doc
            .children_named(doc.root(), SMEV_TYPES_NS, "BusinessProcessMetadata")
            .next();
        read_card(&doc, bpm, 7, ctx)
    }

    fn read(xml: &str) -> Result<RequestCard, Vec<Violation>> {
        read_with(xml, &ctx())
    }

    fn violations_with(xml: &str, ctx: &CardContext) -> Vec<Violation> {
        match read_with(xml, ctx) {
            Ok(card) => panic!("expected violations, got {card:?}"),
            Err(v) => {
                assert!(!v.is_empty());
                v
            }
        }
    }

    fn violations(xml: &str) -> Vec<Violation> {
        violations_with(xml, &ctx())
    }

    /// The only violation, which must be exactly one.
    fn single(xml: &str) -> Violation {
        let mut v = violations(xml);
        assert_eq!(v.len(), 1, "{v:#?}");
        v.remove(0)
    }

    fn messages(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.message.as_str()).collect()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    // ---- valid cards ----

    #[test]
    fn reads_a_complete_card() {
        let card = read(&card_doc(&body(&[]))).expect("valid");
        assert_eq!(
            card.sender_agency,
            "управление  Росреестра\n по Тверской   области"
        );
        assert_eq!(card.recipient_agency, "ФНС России");
        assert_eq!(
            card.service,
            Service {
                name: "Государственная регистрация прав".into(),
                registry_number: Some("10000000001".into()),
            }
        );
        assert_eq!(card.legal_basis.len(), 2);
        assert_eq!(
            card.legal_basis[1].act,
            "Федеральный закон от 27.07.2010 № 210-ФЗ"
        );
        assert_eq!(card.legal_basis[1].provision, "ст. 7.2");
        assert_eq!(
            card.search_details,
            vec![
                SearchDetail {
                    name: "snils".into(),
                    value: "SECRET-112-233-445 95".into()
                },
                SearchDetail {
                    name: "cadastral".into(),
                    value: "69:40:0100001:1".into()
                },
            ]
        );
        assert_eq!(card.reply_contact, "tver@rosreestr.example");
        assert_eq!(card.sent_on, date(2025, 3, 1));
        assert_eq!(
            card.official,
            Official {
                full_name: "Петрова Анна Сергеевна".into(),
                position: "ведущий специалист".into(),
                phone: Some("+7 (4822) 12-34-56".into()),
                email: Some("petrova@tver.example".into()),
            }
        );
        assert_eq!(
            card.subject_consent,
            Some(SubjectConsent {
                obtained: true,
                document: Some("заявление № 5".into()),
                date: Some(date(2025, 2, 28)),
            })
        );
        assert_eq!(
            card.sender_registration,
            SenderRegistration {
                number: "ВХ-123/25".into(),
                date: date(2025, 3, 1)
            }
        );
        assert!(!card.access_restricted);
        assert_eq!(card.paper, None);
    }

    #[test]
    fn reads_a_minimal_card() {
        let xml = card_doc(&body(&[
            ("Service", "<mz:Service><mz:Name>Услуга</mz:Name></mz:Service>"),
            ("LegalBasis", "<mz:LegalBasis><mz:Act>Закон</mz:Act><mz:Provision>ст. 1</mz:Provision></mz:LegalBasis>"),
            ("Official", "<mz:Official><mz:FullName>Иванов И. И.</mz:FullName><mz:Position>специалист</mz:Position><mz:Email>i@x.ru</mz:Email></mz:Official>"),
            ("SubjectConsent", ""),
        ]));
        let card = read(&xml).expect("valid");
        assert_eq!(card.service.registry_number, None);
        assert_eq!(card.legal_basis.len(), 1);
        assert_eq!(card.official.phone, None);
        assert_eq!(card.official.email.as_deref(), Some("i@x.ru"));
        assert_eq!(card.subject_consent, None);
    }

    #[test]
    fn phone_alone_is_enough() {
        let xml = card_doc(&body(&[(
            "Official",
            "<mz:Official><mz:FullName>И</mz:FullName><mz:Position>П</mz:Position><mz:Phone>12345</mz:Phone></mz:Official>",
        )]));
        let card = read(&xml).expect("valid");
        assert_eq!(card.official.phone.as_deref(), Some("12345"));
        assert_eq!(card.official.email, None);
    }

    #[test]
    fn default_namespace_and_other_prefixes_work() {
        let b = body(&[]).replace("mz:", "");
        let xml = envelope(&format!("<RequestCard xmlns=\"{MZ_NS}\">{b}</RequestCard>"));
        assert!(read(&xml).is_ok());
        let b = body(&[]).replace("mz:", "x:");
        let xml = envelope(&format!(
            "<x:RequestCard xmlns:x=\"{MZ_NS}\">{b}</x:RequestCard>"
        ));
        assert!(read(&xml).is_ok());
    }

    #[test]
    fn comments_whitespace_and_other_bpm_content_are_ignored() {
        let xml = envelope(&format!(
            "<other:Extension xmlns:other=\"urn:other\"><other:x/></other:Extension>\n\
             <mz:RequestCard xmlns:mz=\"{MZ_NS}\">\n  <!-- card -->\n{}\n<?pi x?></mz:RequestCard>",
            body(&[(
                "ReplyContact",
                "<mz:ReplyContact> <!-- c -->a<![CDATA[b]]> </mz:ReplyContact>"
            )])
        ));
        let card = read(&xml).expect("valid");
        assert_eq!(card.reply_contact, "ab");
    }

    #[test]
    fn optional_parts() {
        let regs = format!(
            "{}<mz:AccessRestriction> restricted </mz:AccessRestriction>\
             <mz:Paper><mz:Kind>fax</mz:Kind><mz:OriginalSentOn>2025-02-27</mz:OriginalSentOn></mz:Paper>",
            part("SenderRegistration")
        );
        let card = read(&card_doc(&body(&[("SenderRegistration", &regs)]))).expect("valid");
        assert!(card.access_restricted);
        assert_eq!(
            card.paper,
            Some(Paper {
                kind: PaperKind::Fax,
                original_sent_on: Some(date(2025, 2, 27))
            })
        );
        let regs = format!(
            "{}<mz:Paper><mz:Kind>paper</mz:Kind></mz:Paper>",
            part("SenderRegistration")
        );
        let card = read(&card_doc(&body(&[("SenderRegistration", &regs)]))).expect("valid");
        assert_eq!(
            card.paper,
            Some(Paper {
                kind: PaperKind::Paper,
                original_sent_on: None
            })
        );
        assert_eq!(PaperKind::Paper.as_str(), "paper");
        assert_eq!(PaperKind::Fax.as_str(), "fax");
    }

    // ---- missing card ----

    #[test]
    fn no_business_process_metadata() {
        let xml = card_doc(&body(&[]));
        let doc = parse(xml.as_bytes(), &Limits::default()).expect("xml");
        let v = read_card(&doc, None, 1234, &ctx()).expect_err("missing");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].position, 1234);
        assert_eq!(v[0].item, None);
        assert!(
            v[0].message.contains("request card is missing"),
            "{}",
            v[0].message
        );
        assert!(v[0].message.contains("BusinessProcessMetadata"));
        // A node that is not an element counts as no BusinessProcessMetadata.
        let v = read_card(&doc, Some(Document::DOCUMENT_NODE), 55, &ctx()).expect_err("missing");
        assert_eq!((v.len(), v[0].position), (1, 55));
    }

    #[test]
    fn no_request_card() {
        let xml = envelope("<x:Other xmlns:x=\"urn:x\"/>");
        let v = single(&xml);
        assert_eq!(
            v.position,
            xml.find("<BusinessProcessMetadata").expect("bpm")
        );
        assert_eq!(
            v.message,
            format!(
                "BusinessProcessMetadata: the request card is missing: a RequestCard in \
                 namespace {MZ_NS} is required on every request (210-FZ art. 7.2)"
            )
        );
        let v = single(&envelope(""));
        assert!(v.message.contains("request card is missing"));
    }

    #[test]
    fn request_card_in_wrong_namespace() {
        let v = single(&envelope(&format!(
            "<RequestCard xmlns=\"\" xmlns:mz=\"{MZ_NS}\">{}</RequestCard>",
            body(&[])
        )));
        assert!(
            v.message.contains("request card is missing"),
            "{}",
            v.message
        );
        assert!(
            v.message
                .ends_with("; found RequestCard in no namespace instead"),
            "{}",
            v.message
        );
        let v = single(&envelope(&format!(
            "<RequestCard xmlns=\"urn://mezhved/ext/2.0\" xmlns:mz=\"{MZ_NS}\">{}</RequestCard>",
            body(&[])
        )));
        assert!(
            v.message
                .ends_with("; found RequestCard in namespace urn://mezhved/ext/2.0 instead"),
            "{}",
            v.message
        );
    }

    #[test]
    fn duplicate_request_card() {
        let card = format!(
            "<mz:RequestCard xmlns:mz=\"{MZ_NS}\">{}</mz:RequestCard>",
            body(&[])
        );
        let xml = envelope(&format!("{card}{card}"));
        let v = single(&xml);
        assert_eq!(v.position, xml.rfind("<mz:RequestCard").expect("second"));
        assert_eq!(
            v.message,
            "BusinessProcessMetadata/RequestCard: duplicate element: a request carries only one request card"
        );
    }

    // ---- structure ----

    #[test]
    fn empty_card_reports_every_required_element() {
        let xml = envelope(&format!("<mz:RequestCard xmlns:mz=\"{MZ_NS}\"/>"));
        let v = violations(&xml);
        let card_pos = xml.find("<mz:RequestCard").expect("card");
        assert!(v.iter().all(|v| v.position == card_pos));
        let got: Vec<(Option<u8>, &str)> = v.iter().map(|v| (v.item, v.message.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Some(1), "RequestCard/SenderAgency: required element is missing (210-FZ art. 7.2 item 1)"),
                (Some(2), "RequestCard/RecipientAgency: required element is missing (210-FZ art. 7.2 item 2)"),
                (Some(3), "RequestCard/Service: required element is missing (210-FZ art. 7.2 item 3)"),
                (Some(4), "RequestCard/LegalBasis: required element is missing (210-FZ art. 7.2 item 4)"),
                (Some(5), "RequestCard/SearchDetails: required element is missing (210-FZ art. 7.2 item 5)"),
                (Some(6), "RequestCard/ReplyContact: required element is missing (210-FZ art. 7.2 item 6)"),
                (Some(7), "RequestCard/SentOn: required element is missing (210-FZ art. 7.2 item 7)"),
                (Some(8), "RequestCard/Official: required element is missing (210-FZ art. 7.2 item 8)"),
                (None, "RequestCard/SenderRegistration: required element is missing"),
            ]
        );
    }

    #[test]
    fn empty_card_with_consent_and_restriction_required() {
        let xml = envelope(&format!(
            "<mz:RequestCard xmlns:mz=\"{MZ_NS}\"></mz:RequestCard>"
        ));
        let c = CardContext {
            consent_required: true,
            kind_restricted: true,
            ..ctx()
        };
        let v = violations_with(&xml, &c);
        assert_eq!(v.len(), 11);
        assert!(v.iter().any(|v| v.item == Some(9)
            && v.message
                .starts_with("RequestCard/SubjectConsent: required element is missing")));
        assert!(v.iter().any(|v| v.message
            == "RequestCard: the kind of information is restricted (DSP): the card must carry AccessRestriction"));
    }

    #[test]
    fn each_missing_part_is_reported_once() {
        for (name, _) in PARTS {
            if name == "SubjectConsent" {
                continue;
            }
            let xml = card_doc(&body(&[(name, "")]));
            let v = single(&xml);
            assert_eq!(
                v.message.split(" (210-FZ").next(),
                Some(&*format!("RequestCard/{name}: required element is missing"))
            );
            assert_eq!(v.position, xml.find("<mz:RequestCard").expect("card"));
        }
    }

    #[test]
    fn whitespace_only_values_are_empty() {
        let v = single(&card_doc(&body(&[(
            "ReplyContact",
            "<mz:ReplyContact> \n\t </mz:ReplyContact>",
        )])));
        assert_eq!(
            v.message,
            "RequestCard/ReplyContact: must not be empty (210-FZ art. 7.2 item 6)"
        );
        assert_eq!(v.item, Some(6));
        let v = single(&card_doc(&body(&[("SentOn", "<mz:SentOn/>")])));
        assert_eq!(
            v.message,
            "RequestCard/SentOn: must not be empty (210-FZ art. 7.2 item 7)"
        );
        // Unicode whitespace (no-break space) is trimmed too.
        let v = single(&card_doc(&body(&[(
            "ReplyContact",
            "<mz:ReplyContact>\u{a0}</mz:ReplyContact>",
        )])));
        assert!(v
            .message
            .ends_with("must not be empty (210-FZ art. 7.2 item 6)"));
    }

    #[test]
    fn empty_optional_elements_are_violations() {
        let v = single(&card_doc(&body(&[(
            "Service",
            "<mz:Service><mz:Name>У</mz:Name><mz:RegistryNumber/></mz:Service>",
        )])));
        assert_eq!(
            v.message,
            "RequestCard/Service/RegistryNumber: must not be empty (210-FZ art. 7.2 item 3)"
        );
    }

    #[test]
    fn out_of_order_elements_are_named() {
        let swapped = format!("{}{}", part("RecipientAgency"), part("SenderAgency"));
        let xml = card_doc(&body(&[
            ("SenderAgency", ""),
            ("RecipientAgency", &swapped),
        ]));
        let v = single(&xml);
        assert_eq!(
            v.message,
            "RequestCard/SenderAgency: element out of order: SenderAgency must come before RecipientAgency (210-FZ art. 7.2 item 1)"
        );
        assert_eq!(v.position, xml.find("<mz:SenderAgency").expect("sa"));
        assert_eq!(v.item, Some(1));

        // SentOn moved to the end: it is reported, before the last element seen.
        let regs = format!("{}{}", part("SenderRegistration"), part("SentOn"));
        let v = single(&card_doc(&body(&[
            ("SentOn", ""),
            ("SenderRegistration", &regs),
        ])));
        assert_eq!(
            v.message,
            "RequestCard/SentOn: element out of order: SentOn must come before SenderRegistration (210-FZ art. 7.2 item 7)"
        );
    }

    #[test]
    fn out_of_order_inside_parts() {
        let v = single(&card_doc(&body(&[(
            "Official",
            "<mz:Official><mz:Position>П</mz:Position><mz:FullName>И</mz:FullName><mz:Email>a@b</mz:Email></mz:Official>",
        )])));
        assert_eq!(
            v.message,
            "RequestCard/Official/FullName: element out of order: FullName must come before Position (210-FZ art. 7.2 item 8)"
        );
    }

    #[test]
    fn split_legal_basis_is_out_of_order() {
        let lb = "<mz:LegalBasis><mz:Act>A</mz:Act><mz:Provision>P</mz:Provision></mz:LegalBasis>";
        let xml = card_doc(&body(&[
            ("LegalBasis", lb),
            ("SearchDetails", &format!("{}{lb}", part("SearchDetails"))),
        ]));
        let v = single(&xml);
        assert_eq!(
            v.message,
            "RequestCard/LegalBasis: element out of order: LegalBasis must come before SearchDetails (210-FZ art. 7.2 item 4)"
        );
        assert_eq!(v.position, xml.rfind("<mz:LegalBasis").expect("second"));
    }

    #[test]
    fn duplicates_of_single_elements() {
        let two = format!("{}<mz:SentOn>2025-02-01</mz:SentOn>", part("SentOn"));
        let xml = card_doc(&body(&[("SentOn", &two)]));
        let v = single(&xml);
        assert_eq!(
            v.message,
            "RequestCard/SentOn: duplicate element: SentOn may occur only once (210-FZ art. 7.2 item 7)"
        );
        assert_eq!(v.position, xml.rfind("<mz:SentOn").expect("second"));
        // Duplicate inside a part, and a duplicate that is also out of place.
        let v = single(&card_doc(&body(&[(
            "Service",
            "<mz:Service><mz:Name>A</mz:Name><mz:Name>B</mz:Name></mz:Service>",
        )])));
        assert!(v
            .message
            .starts_with("RequestCard/Service/Name: duplicate element"));
        let late = format!("{}{}", part("SenderRegistration"), part("SenderAgency"));
        let v = single(&card_doc(&body(&[("SenderRegistration", &late)])));
        assert!(
            v.message
                .starts_with("RequestCard/SenderAgency: duplicate element"),
            "{}",
            v.message
        );
    }

    #[test]
    fn unknown_elements_are_named() {
        let extra = format!("{}<mz:Urgency>high</mz:Urgency>", part("ReplyContact"));
        let xml = card_doc(&body(&[("ReplyContact", &extra)]));
        let v = single(&xml);
        assert_eq!(v.message, "RequestCard: unknown element Urgency");
        assert_eq!(v.position, xml.find("<mz:Urgency").expect("u"));
        assert_eq!(v.item, None);

        let extra = format!("{}<x:Note xmlns:x=\"urn:x\"/>", part("ReplyContact"));
        let v = single(&card_doc(&body(&[("ReplyContact", &extra)])));
        assert_eq!(
            v.message,
            "RequestCard: unknown element Note (namespace urn:x)"
        );

        // A card element written without its namespace.
        let xml = card_doc(&body(&[(
            "SentOn",
            "<SentOn xmlns=\"\">2025-03-01</SentOn>",
        )]));
        let v = violations(&xml);
        assert_eq!(
            messages(&v),
            vec![
                format!("RequestCard: element SentOn is in no namespace: the card's elements must be in namespace {MZ_NS}"),
                "RequestCard/SentOn: required element is missing (210-FZ art. 7.2 item 7)".to_string(),
            ]
        );

        // Inside a part the item of the part is given.
        let v = single(&card_doc(&body(&[(
            "Official",
            "<mz:Official><mz:FullName>И</mz:FullName><mz:Position>П</mz:Position><mz:Fax>1</mz:Fax><mz:Phone>12345</mz:Phone></mz:Official>",
        )])));
        assert_eq!(
            v.message,
            "RequestCard/Official: unknown element Fax (210-FZ art. 7.2 item 8)"
        );
    }

    #[test]
    fn stray_text_and_nested_elements() {
        let xml = envelope(&format!(
            "<mz:RequestCard xmlns:mz=\"{MZ_NS}\">oops{}more</mz:RequestCard>",
            body(&[])
        ));
        let v = single(&xml);
        assert_eq!(
            v.message,
            "RequestCard: unexpected text: only child elements are allowed here"
        );
        let xml = card_doc(&body(&[(
            "ReplyContact",
            "<mz:ReplyContact>a<mz:b>c</mz:b></mz:ReplyContact>",
        )]));
        let v = single(&xml);
        assert_eq!(v.message, "RequestCard/ReplyContact: must contain text only, found element b (210-FZ art. 7.2 item 6)");
        assert_eq!(v.position, xml.find("<mz:b>").expect("b"));
        let v = violations(&card_doc(&body(&[(
            "ReplyContact",
            "<mz:ReplyContact><i xmlns=\"\">x</i></mz:ReplyContact>",
        )])));
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v[0].message.contains("found element i (no namespace)"));
        assert!(v[1]
            .message
            .ends_with("must not be empty (210-FZ art. 7.2 item 6)"));
    }

    // ---- dates ----

    #[test]
    fn xs_date_forms() {
        for ok in [
            "2025-03-01",
            "2025-03-01Z",
            "2025-03-01+03:00",
            "2025-03-01-14:00",
            "2025-03-01+14:00",
            "2024-02-29",
            "0001-01-01",
            "9999-12-31",
        ] {
            assert!(parse_xs_date(ok).is_some(), "{ok}");
        }
        assert_eq!(parse_xs_date("2025-03-01+12:00"), Some(date(2025, 3, 1)));
        for bad in [
            "",
            "2025",
            "2025-02-29",
            "2025-13-01",
            "2025-00-10",
            "2025-01-00",
            "2025-04-31",
            "25-03-01",
            "2025-3-1",
            "2025-03-01T00:00:00",
            "2025-03-01+15:00",
            "2025-03-01+14:30",
            "2025-03-01+03:60",
            "2025-03-01 ",
            "2025-03-01z",
            "0000-01-01",
            "2025/03/01",
            "２０２５-03-01",
            "2025-03-01+0300",
            "2025-03-01+03",
            "+2025-03-01",
            "-2025-03-01",
            "12025-03-01",
            "2025-03-01Z+03:00",
            "2025-03-01+03:00:00",
            "2025-03-0１",
        ] {
            assert_eq!(parse_xs_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn invalid_dates_are_reported() {
        let xml = card_doc(&body(&[("SentOn", "<mz:SentOn>01.03.2025</mz:SentOn>")]));
        let v = single(&xml);
        assert_eq!(
            v.message,
            "RequestCard/SentOn: not a valid date: \"01.03.2025\" (expected xs:date YYYY-MM-DD, \
             optionally followed by Z or ±hh:mm) (210-FZ art. 7.2 item 7)"
        );
        assert_eq!(v.position, xml.find("<mz:SentOn").expect("s"));
        let v = single(&card_doc(&body(&[(
            "SenderRegistration",
            "<mz:SenderRegistration><mz:Number>1</mz:Number><mz:Date>2025-02-30</mz:Date></mz:SenderRegistration>",
        )])));
        assert!(v
            .message
            .starts_with("RequestCard/SenderRegistration/Date: not a valid date"));
        assert_eq!(v.item, None);
        // Whitespace around a date is trimmed.
        let card = read(&card_doc(&body(&[(
            "SentOn",
            "<mz:SentOn>\n 2025-02-01 \n</mz:SentOn>",
        )])))
        .expect("ok");
        assert_eq!(card.sent_on, date(2025, 2, 1));
    }

    #[test]
    fn dates_may_be_at_most_one_day_ahead() {
        let tomorrow = card_doc(&body(&[(
            "SentOn",
            "<mz:SentOn>2025-03-02+12:00</mz:SentOn>",
        )]));
        assert!(read(&tomorrow).is_ok());
        let v = single(&card_doc(&body(&[(
            "SentOn",
            "<mz:SentOn>2025-03-03</mz:SentOn>",
        )])));
        assert_eq!(
            v.message,
            "RequestCard/SentOn: date 2025-03-03 is in the future: it may be at most one day \
             after today (2025-03-01) (210-FZ art. 7.2 item 7)"
        );
        assert_eq!(v.item, Some(7));
        let v = single(&card_doc(&body(&[(
            "SenderRegistration",
            "<mz:SenderRegistration><mz:Number>1</mz:Number><mz:Date>2026-01-01</mz:Date></mz:SenderRegistration>",
        )])));
        assert!(v
            .message
            .starts_with("RequestCard/SenderRegistration/Date: date 2026-01-01 is in the future"));
        assert_eq!(v.item, None);
        // Old dates are fine.
        assert!(read(&card_doc(&body(&[(
            "SentOn",
            "<mz:SentOn>1999-01-01</mz:SentOn>"
        )])))
        .is_ok());
        // Today at the end of the calendar: no overflow.
        let c = CardContext {
            today: NaiveDate::MAX,
            ..ctx()
        };
        assert!(read_with(&card_doc(&body(&[])), &c).is_ok());
    }

    // ---- agencies ----

    #[test]
    fn agency_names_match_case_and_whitespace_insensitively() {
        let xml = card_doc(&body(&[
            (
                "SenderAgency",
                "<mz:SenderAgency>ROSREESTR\tTVER</mz:SenderAgency>",
            ),
            (
                "RecipientAgency",
                "<mz:RecipientAgency>фнс   россии</mz:RecipientAgency>",
            ),
        ]));
        assert!(read(&xml).is_ok());
    }

    #[test]
    fn agency_mismatches() {
        let xml = card_doc(&body(&[
            (
                "SenderAgency",
                "<mz:SenderAgency>Управление Росреестра по Москве</mz:SenderAgency>",
            ),
            (
                "RecipientAgency",
                "<mz:RecipientAgency>ФНС</mz:RecipientAgency>",
            ),
        ]));
        let v = violations(&xml);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].item, Some(1));
        assert_eq!(v[0].position, xml.find("<mz:SenderAgency").expect("s"));
        assert_eq!(
            v[0].message,
            "RequestCard/SenderAgency: \"Управление Росреестра по Москве\" does not name the agency \
             of the sending information system (expected \"Управление Росреестра по Тверской области\", \
             \"Rosreestr Tver\") (210-FZ art. 7.2 item 1)"
        );
        assert_eq!(v[1].item, Some(2));
        assert_eq!(
            v[1].message,
            "RequestCard/RecipientAgency: \"ФНС\" does not name the agency the request is addressed to \
             (expected \"ФНС России\") (210-FZ art. 7.2 item 2)"
        );
    }

    #[test]
    fn agency_lists_empty_or_long() {
        let c = CardContext {
            sender_agency_names: &[],
            ..ctx()
        };
        let v = violations_with(&card_doc(&body(&[])), &c);
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains(
            "no agency name is registered for the agency of the sending information system"
        ));
        let many: &[&str] = &["a", "b", "c", "d", "e"];
        let c = CardContext {
            recipient_agency_names: many,
            ..ctx()
        };
        let v = violations_with(&card_doc(&body(&[])), &c);
        assert!(
            v[0].message
                .contains("(expected \"a\", \"b\", \"c\", 2 more)"),
            "{}",
            v[0].message
        );
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "Я".repeat(500);
        let xml = card_doc(&body(&[(
            "RecipientAgency",
            &format!("<mz:RecipientAgency>{long}</mz:RecipientAgency>"),
        )]));
        let v = single(&xml);
        assert!(v
            .message
            .contains(&format!("\"{}\"…", "Я".repeat(QUOTE_MAX_CHARS))));
        assert!(v.message.len() < 400);
    }

    // ---- official ----

    #[test]
    fn official_needs_phone_or_email() {
        let xml = card_doc(&body(&[(
            "Official",
            "<mz:Official><mz:FullName>И</mz:FullName><mz:Position>П</mz:Position></mz:Official>",
        )]));
        let v = single(&xml);
        assert_eq!(
            v.message,
            "RequestCard/Official: a work phone or e-mail is required (210-FZ art. 7.2 item 8)"
        );
        assert_eq!(v.item, Some(8));
        assert_eq!(v.position, xml.find("<mz:Official").expect("o"));
        assert_eq!(v.to_string(), v.message);
    }

    #[test]
    fn official_missing_everything() {
        let v = violations(&card_doc(&body(&[("Official", "<mz:Official/>")])));
        assert_eq!(
            messages(&v),
            vec![
                "RequestCard/Official/FullName: required element is missing (210-FZ art. 7.2 item 8)",
                "RequestCard/Official/Position: required element is missing (210-FZ art. 7.2 item 8)",
                "RequestCard/Official: a work phone or e-mail is required (210-FZ art. 7.2 item 8)",
            ]
        );
    }

    #[test]
    fn phone_rules() {
        for ok in [
            "12345",
            "+7 (4822) 12-34-56",
            "8-800-555-35-35",
            " 1 2 3 4 5 ",
        ] {
            assert_eq!(phone_problem(ok.trim()), None, "{ok}");
        }
        assert_eq!(
            phone_problem("1234"),
            Some("at least 5 digits are required")
        );
        assert_eq!(
            phone_problem("+7 (---)"),
            Some("at least 5 digits are required")
        );
        assert_eq!(
            phone_problem("12345 доб. 6"),
            Some("only digits, spaces, '+', '(', ')' and '-' are allowed")
        );
        assert_eq!(
            phone_problem("123456789x"),
            Some("only digits, spaces, '+', '(', ')' and '-' are allowed")
        );
        assert_eq!(phone_problem("１２３４５６"), Some("only digits, spaces, '+', '(', ')' and '-' are allowed, and at least 5 digits are required"));
        assert!(phone_problem("12.34.56").is_some());
    }

    #[test]
    fn email_rules() {
        for ok in ["a@b", "petrova@tver.example", "анна@почта.рф"] {
            assert_eq!(email_problem(ok), None, "{ok}");
        }
        assert_eq!(email_problem("ab"), Some("it must contain exactly one '@'"));
        assert_eq!(
            email_problem("a@b@c"),
            Some("it must contain exactly one '@'")
        );
        assert_eq!(
            email_problem("@b"),
            Some("there must be text on both sides of the '@'")
        );
        assert_eq!(
            email_problem("a@"),
            Some("there must be text on both sides of the '@'")
        );
        assert_eq!(
            email_problem("a b@c"),
            Some("spaces and control characters are not allowed")
        );
    }

    #[test]
    fn bad_contacts_are_reported_without_their_values() {
        let xml = card_doc(&body(&[(
            "Official",
            "<mz:Official><mz:FullName>И</mz:FullName><mz:Position>П</mz:Position>\
             <mz:Phone>SECRET12</mz:Phone><mz:Email>SECRET.example</mz:Email></mz:Official>",
        )]));
        let v = violations(&xml);
        assert_eq!(
            messages(&v),
            vec![
                "RequestCard/Official/Phone: not a valid phone number: only digits, spaces, '+', '(', ')' \
                 and '-' are allowed, and at least 5 digits are required (210-FZ art. 7.2 item 8)",
                "RequestCard/Official/Email: not a valid e-mail address: it must contain exactly one '@' \
                 (210-FZ art. 7.2 item 8)",
            ]
        );
        assert_eq!(v[0].position, xml.find("<mz:Phone").expect("p"));
        assert_eq!(v[1].position, xml.find("<mz:Email").expect("e"));
        assert!(v.iter().all(|v| !v.message.contains("SECRET")));
    }

    #[test]
    fn empty_phone_with_valid_email_is_a_violation() {
        let v = single(&card_doc(&body(&[(
            "Official",
            "<mz:Official><mz:FullName>И</mz:FullName><mz:Position>П</mz:Position><mz:Phone> </mz:Phone><mz:Email>a@b</mz:Email></mz:Official>",
        )])));
        assert_eq!(
            v.message,
            "RequestCard/Official/Phone: must not be empty (210-FZ art. 7.2 item 8)"
        );
    }

    // ---- consent ----

    fn consent(obtained: &str) -> String {
        format!("<mz:SubjectConsent><mz:Obtained>{obtained}</mz:Obtained></mz:SubjectConsent>")
    }

    #[test]
    fn consent_values() {
        for (text, value) in [
            ("true", true),
            ("1", true),
            (" false ", false),
            ("0", false),
        ] {
            let card = read(&card_doc(&body(&[("SubjectConsent", &consent(text))]))).expect("ok");
            assert_eq!(
                card.subject_consent,
                Some(SubjectConsent {
                    obtained: value,
                    document: None,
                    date: None
                })
            );
        }
        for bad in ["yes", "TRUE", "да", "2"] {
            let v = single(&card_doc(&body(&[("SubjectConsent", &consent(bad))])));
            assert_eq!(v.item, Some(9));
            assert!(
                v.message
                    .starts_with("RequestCard/SubjectConsent/Obtained: not a valid boolean"),
                "{}",
                v.message
            );
        }
    }

    #[test]
    fn consent_required() {
        let c = CardContext {
            consent_required: true,
            ..ctx()
        };
        assert!(read_with(&card_doc(&body(&[])), &c).is_ok());
        assert!(read_with(&card_doc(&body(&[("SubjectConsent", &consent("1"))])), &c).is_ok());

        let xml = card_doc(&body(&[("SubjectConsent", "")]));
        let v = violations_with(&xml, &c);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].item, Some(9));
        assert!(v[0]
            .message
            .starts_with("RequestCard/SubjectConsent: required element is missing"));
        assert!(v[0].message.ends_with("(210-FZ art. 7.2 item 9)"));
        assert_eq!(v[0].position, xml.find("<mz:RequestCard").expect("c"));

        let xml = card_doc(&body(&[("SubjectConsent", &consent("false"))]));
        let v = violations_with(&xml, &c);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].item, Some(9));
        assert_eq!(v[0].position, xml.find("<mz:Obtained").expect("o"));
        assert!(v[0].message.contains("not obtained"));

        // An invalid value is reported once, as invalid.
        let v = violations_with(
            &card_doc(&body(&[("SubjectConsent", &consent("maybe"))])),
            &c,
        );
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("not a valid boolean"));

        let v = violations_with(
            &card_doc(&body(&[("SubjectConsent", "<mz:SubjectConsent/>")])),
            &c,
        );
        assert_eq!(messages(&v), vec!["RequestCard/SubjectConsent/Obtained: required element is missing (210-FZ art. 7.2 item 9)"]);
    }

    #[test]
    fn consent_document_and_date_checked_together() {
        let v = violations(&card_doc(&body(&[(
            "SubjectConsent",
            "<mz:SubjectConsent><mz:Obtained>true</mz:Obtained><mz:Document/><mz:Date>2030-01-01</mz:Date></mz:SubjectConsent>",
        )])));
        assert_eq!(v.len(), 2, "{v:#?}");
        assert!(v[0]
            .message
            .starts_with("RequestCard/SubjectConsent/Document: must not be empty"));
        assert!(v[1]
            .message
            .starts_with("RequestCard/SubjectConsent/Date: date 2030-01-01 is in the future"));
    }

    // ---- access restriction, paper ----

    #[test]
    fn access_restriction() {
        let restricted = CardContext {
            kind_restricted: true,
            ..ctx()
        };
        let xml = card_doc(&body(&[]));
        let v = violations_with(&xml, &restricted);
        assert_eq!(
            messages(&v),
            vec!["RequestCard: the kind of information is restricted (DSP): the card must carry AccessRestriction"]
        );
        assert_eq!(v[0].item, None);
        assert_eq!(v[0].position, xml.find("<mz:RequestCard").expect("c"));

        let with = |value: &str| {
            card_doc(&body(&[(
                "SenderRegistration",
                &format!(
                    "{}<mz:AccessRestriction>{value}</mz:AccessRestriction>",
                    part("SenderRegistration")
                ),
            )]))
        };
        assert!(
            read_with(&with("restricted"), &restricted)
                .expect("ok")
                .access_restricted
        );
        assert!(read(&with("restricted")).expect("ok").access_restricted);
        let v = violations_with(&with("DSP"), &restricted);
        assert_eq!(
            messages(&v),
            vec!["RequestCard/AccessRestriction: must be \"restricted\", found \"DSP\""]
        );
        let v = violations(&with("Restricted"));
        assert_eq!(v.len(), 1);
        let v = violations(&with(""));
        assert_eq!(
            messages(&v),
            vec!["RequestCard/AccessRestriction: must not be empty"]
        );
    }

    #[test]
    fn paper() {
        let with = |p: &str| {
            card_doc(&body(&[(
                "SenderRegistration",
                &format!("{}{p}", part("SenderRegistration")),
            )]))
        };
        let v = single(&with("<mz:Paper><mz:Kind>email</mz:Kind></mz:Paper>"));
        assert_eq!(
            v.message,
            "RequestCard/Paper/Kind: must be \"paper\" or \"fax\", found \"email\""
        );
        let v = violations(&with("<mz:Paper><mz:Kind>courier</mz:Kind><mz:OriginalSentOn>2025-02-30</mz:OriginalSentOn></mz:Paper>"));
        assert_eq!(v.len(), 2);
        assert!(v[1]
            .message
            .starts_with("RequestCard/Paper/OriginalSentOn: not a valid date"));
        let v = single(&with("<mz:Paper/>"));
        assert_eq!(
            v.message,
            "RequestCard/Paper/Kind: required element is missing"
        );
        // Paper before AccessRestriction is out of order.
        let v = single(&with("<mz:Paper><mz:Kind>fax</mz:Kind></mz:Paper><mz:AccessRestriction>restricted</mz:AccessRestriction>"));
        assert_eq!(v.message, "RequestCard/AccessRestriction: element out of order: AccessRestriction must come before Paper");
    }

    // ---- search details ----

    #[test]
    fn search_detail_problems() {
        let xml = card_doc(&body(&[(
            "SearchDetails",
            "<mz:SearchDetails><mz:Detail>SECRET1</mz:Detail><mz:Detail name=\" \">SECRET2</mz:Detail>\
             <mz:Detail name=\"inn\"> </mz:Detail><mz:Detail name=\"ok\">SECRET3</mz:Detail></mz:SearchDetails>",
        )]));
        let v = violations(&xml);
        assert_eq!(
            messages(&v),
            vec![
                "RequestCard/SearchDetails/Detail[1]: attribute name is missing (210-FZ art. 7.2 item 5)",
                "RequestCard/SearchDetails/Detail[2]: attribute name must not be empty (210-FZ art. 7.2 item 5)",
                "RequestCard/SearchDetails/Detail[3]: must not be empty (210-FZ art. 7.2 item 5)",
            ]
        );
        let starts: Vec<usize> = xml.match_indices("<mz:Detail").map(|(i, _)| i).collect();
        assert_eq!(
            v.iter().map(|v| v.position).collect::<Vec<_>>(),
            starts[..3].to_vec()
        );
        assert!(v.iter().all(|v| !v.message.contains("SECRET")));

        let v = single(&card_doc(&body(&[(
            "SearchDetails",
            "<mz:SearchDetails/>",
        )])));
        assert_eq!(v.message, "RequestCard/SearchDetails/Detail: required element is missing (210-FZ art. 7.2 item 5)");
        // A namespaced attribute called name does not count.
        let v = single(&card_doc(&body(&[(
            "SearchDetails",
            "<mz:SearchDetails><mz:Detail mz:name=\"inn\">1</mz:Detail></mz:SearchDetails>",
        )])));
        assert!(v.message.contains("attribute name is missing"));
    }

    #[test]
    fn legal_basis_problems_are_indexed() {
        let xml = card_doc(&body(&[(
            "LegalBasis",
            "<mz:LegalBasis><mz:Act>A</mz:Act><mz:Provision>P</mz:Provision></mz:LegalBasis>\
             <mz:LegalBasis><mz:Act> </mz:Act></mz:LegalBasis>",
        )]));
        let v = violations(&xml);
        assert_eq!(
            messages(&v),
            vec![
                "RequestCard/LegalBasis[2]/Provision: required element is missing (210-FZ art. 7.2 item 4)",
                "RequestCard/LegalBasis[2]/Act: must not be empty (210-FZ art. 7.2 item 4)",
            ]
        );
        assert_eq!(v[0].position, xml.rfind("<mz:LegalBasis").expect("lb"));
        assert_eq!(v[1].position, xml.rfind("<mz:Act").expect("act"));
    }

    #[test]
    fn canonical_search_details() {
        let card = read(&card_doc(&body(&[]))).expect("valid");
        assert_eq!(
            card.search_details_canonical(),
            b"cadastral\x1f69:40:0100001:1\x1esnils\x1fSECRET-112-233-445 95\x1e".to_vec()
        );
        let mut shuffled = card.clone();
        shuffled.search_details.reverse();
        assert_eq!(
            shuffled.search_details_canonical(),
            card.search_details_canonical()
        );

        let mut c = card.clone();
        c.search_details = vec![
            SearchDetail {
                name: "б".into(),
                value: "1".into(),
            },
            SearchDetail {
                name: "a".into(),
                value: "z".into(),
            },
            SearchDetail {
                name: "a".into(),
                value: "y".into(),
            },
            SearchDetail {
                name: "a".into(),
                value: "y".into(),
            },
            SearchDetail {
                name: "ab".into(),
                value: "".into(),
            },
        ];
        let mut want = Vec::new();
        for (n, v) in [("a", "y"), ("a", "y"), ("a", "z"), ("ab", ""), ("б", "1")] {
            want.extend_from_slice(n.as_bytes());
            want.push(0x1F);
            want.extend_from_slice(v.as_bytes());
            want.push(0x1E);
        }
        assert_eq!(c.search_details_canonical(), want);
        c.search_details.clear();
        assert!(c.search_details_canonical().is_empty());
        // The split between name and value matters.
        let a = SearchDetail {
            name: "ab".into(),
            value: "c".into(),
        };
        let b = SearchDetail {
            name: "a".into(),
            value: "bc".into(),
        };
        let (mut ca, mut cb) = (card.clone(), card);
        ca.search_details = vec![a];
        cb.search_details = vec![b];
        assert_ne!(ca.search_details_canonical(), cb.search_details_canonical());
    }

    #[test]
    fn subject_hash_is_hmac_sha256_of_the_canonical_details() {
        let card = read(&card_doc(&body(&[]))).expect("valid");
        let key = b"operator subject key, 32 bytes..";
        let h = subject_hash(key, &card.search_details).expect("hmac");
        // Independent HMAC from OpenSSL's one-shot API over the documented encoding.
        let want = openssl::pkey::PKey::hmac(key)
            .and_then(|k| {
                openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &k)?
                    .sign_oneshot_to_vec(
                        b"cadastral\x1f69:40:0100001:1\x1esnils\x1fSECRET-112-233-445 95\x1e",
                    )
            })
            .expect("hmac");
        assert_eq!(h.to_vec(), want);
        // Order and surrounding whitespace do not matter; the key does.
        let mut other = card.search_details.clone();
        other.reverse();
        other[0].value = format!("  {}  ", other[0].value);
        assert_eq!(subject_hash(key, &other).expect("hmac"), h);
        assert_ne!(
            subject_hash(b"another key", &card.search_details).expect("hmac"),
            h
        );
    }

    #[test]
    fn debug_hides_search_values() {
        let card = read(&card_doc(&body(&[]))).expect("valid");
        let dbg = format!("{card:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
        assert!(dbg.contains("snils"));
        assert!(dbg.contains("<redacted>"));
    }

    // ---- collecting ----

    #[test]
    fn collects_every_violation() {
        let xml = card_doc(&body(&[
            ("SenderAgency", "<mz:SenderAgency>Чужое ведомство</mz:SenderAgency>"),
            ("RecipientAgency", ""),
            ("Service", "<mz:Service><mz:RegistryNumber>1</mz:RegistryNumber><mz:Extra/></mz:Service>"),
            ("SearchDetails", "<mz:SearchDetails><mz:Detail name=\"x\"/></mz:SearchDetails>"),
            ("ReplyContact", "<mz:ReplyContact/>"),
            ("SentOn", "<mz:SentOn>2025-03-10</mz:SentOn>"),
            ("Official", "<mz:Official><mz:FullName>И</mz:FullName><mz:Position>П</mz:Position><mz:Email>x</mz:Email></mz:Official>"),
            ("SubjectConsent", "<mz:SubjectConsent><mz:Obtained>false</mz:Obtained></mz:SubjectConsent>"),
            ("SenderRegistration", "<mz:SenderRegistration><mz:Date>bad</mz:Date></mz:SenderRegistration><mz:AccessRestriction>dsp</mz:AccessRestriction><mz:Paper><mz:Kind>mail</mz:Kind></mz:Paper>"),
        ]));
        let c = CardContext {
            consent_required: true,
            kind_restricted: true,
            ..ctx()
        };
        let v = violations_with(&xml, &c);
        let m = messages(&v);
        let expect = [
            "RequestCard/RecipientAgency: required element is missing",
            "RequestCard/SenderAgency: \"Чужое ведомство\" does not name",
            "RequestCard/Service: unknown element Extra",
            "RequestCard/Service/Name: required element is missing",
            "RequestCard/SearchDetails/Detail[1]: must not be empty",
            "RequestCard/ReplyContact: must not be empty",
            "RequestCard/SentOn: date 2025-03-10 is in the future",
            "RequestCard/Official/Email: not a valid e-mail address",
            "RequestCard/SubjectConsent/Obtained: the law requires",
            "RequestCard/SenderRegistration/Number: required element is missing",
            "RequestCard/SenderRegistration/Date: not a valid date",
            "RequestCard/AccessRestriction: must be \"restricted\"",
            "RequestCard/Paper/Kind: must be \"paper\" or \"fax\"",
        ];
        for e in expect {
            assert!(
                m.iter().any(|m| m.starts_with(e)),
                "missing {e:?} in {m:#?}"
            );
        }
        assert_eq!(v.len(), expect.len(), "{m:#?}");
        let items: Vec<Option<u8>> = v.iter().map(|v| v.item).collect();
        for i in [1, 2, 3, 5, 6, 7, 8, 9] {
            assert!(items.contains(&Some(i)), "item {i}");
        }
    }

    #[test]
    fn at_most_one_hundred_violations() {
        let junk: String = (0..150).map(|i| format!("<mz:Junk{i}/>")).collect();
        let xml = envelope(&format!(
            "<mz:RequestCard xmlns:mz=\"{MZ_NS}\">{junk}</mz:RequestCard>"
        ));
        let v = violations(&xml);
        assert_eq!(v.len(), MAX_VIOLATIONS + 1);
        assert_eq!(v[0].message, "RequestCard: unknown element Junk0");
        assert_eq!(v[99].message, "RequestCard: unknown element Junk99");
        // 50 more unknown elements and 9 missing required ones.
        assert_eq!(v[100].message, "RequestCard: …and 59 more violations");
        assert_eq!(v[100].item, None);
        assert_eq!(v[100].position, xml.find("<mz:RequestCard").expect("c"));

        let junk: String = (0..101).map(|i| format!("<mz:Junk{i}/>")).collect();
        let xml = card_doc(&format!("{}{junk}", body(&[])));
        let v = violations(&xml);
        assert_eq!(v.len(), 101);
        assert_eq!(v[100].message, "RequestCard: …and 1 more violation");

        let junk: String = (0..100).map(|i| format!("<mz:Junk{i}/>")).collect();
        let v = violations(&card_doc(&format!("{}{junk}", body(&[]))));
        assert_eq!(v.len(), 100);
        assert!(v.iter().all(|v| !v.message.contains("more violation")));
    }

    // ---- properties ----

    proptest! {
        #[test]
        fn prop_only_schema_order_is_accepted(perm in Just((0..PARTS.len()).collect::<Vec<_>>()).prop_shuffle()) {
            let body: String = perm.iter().map(|&i| PARTS[i].1).collect();
            let sorted = perm.windows(2).all(|w| w[0] < w[1]);
            let r = read(&card_doc(&body));
            prop_assert_eq!(r.is_ok(), sorted);
            if let Err(v) = r {
                prop_assert!(v.iter().all(|v| v.message.contains("out of order")));
            }
        }

        #[test]
        fn prop_any_subset_reports_each_missing_required(keep in proptest::collection::vec(any::<bool>(), PARTS.len())) {
            let body: String = PARTS.iter().zip(&keep).filter(|(_, k)| **k).map(|(p, _)| p.1).collect();
            let missing = PARTS.iter().zip(&keep).filter(|(p, k)| !**k && p.0 != "SubjectConsent").count();
            match read(&card_doc(&body)) {
                Ok(_) => prop_assert_eq!(missing, 0),
                Err(v) => {
                    prop_assert_eq!(v.len(), missing);
                    prop_assert!(v.iter().all(|v| v.message.contains("required element is missing")));
                }
            }
        }

        #[test]
        fn prop_any_text_never_panics(text in "\\PC{0,40}", field in 0usize..6) {
            let escaped = text.replace('&', "&amp;").replace('<', "&lt;");
            let name = ["SenderAgency", "RecipientAgency", "ReplyContact", "SentOn", "SenderRegistration", "Official"][field];
            let xml = match name {
                "SenderRegistration" => card_doc(&body(&[(name, &format!(
                    "<mz:SenderRegistration><mz:Number>1</mz:Number><mz:Date>{escaped}</mz:Date></mz:SenderRegistration>"))])),
                "Official" => card_doc(&body(&[(name, &format!(
                    "<mz:Official><mz:FullName>И</mz:FullName><mz:Position>П</mz:Position><mz:Phone>{escaped}</mz:Phone><mz:Email>{escaped}</mz:Email></mz:Official>"))])),
                _ => card_doc(&body(&[(name, &format!("<mz:{name}>{escaped}</mz:{name}>"))])),
            };
            if let Ok(doc) = parse(xml.as_bytes(), &Limits::default()) {
                let bpm = doc.children_named(doc.root(), SMEV_TYPES_NS, "BusinessProcessMetadata").next();
                if let Err(v) = read_card(&doc, bpm, 0, &ctx()) {
                    prop_assert!(!v.is_empty() && v.len() <= MAX_VIOLATIONS + 1);
                    prop_assert!(v.iter().all(|v| v.position < xml.len()));
                }
            }
        }

        #[test]
        fn prop_date_round_trip(y in 1i32..=9999, ordinal in 1u32..=365, tz in 0usize..4) {
            let d = NaiveDate::from_yo_opt(y, ordinal).expect("valid ordinal");
            let suffix = ["", "Z", "+03:00", "-11:30"][tz];
            let s = format!("{}{suffix}", d.format("%Y-%m-%d"));
            prop_assert_eq!(parse_xs_date(&s), Some(d));
        }
    }
}
