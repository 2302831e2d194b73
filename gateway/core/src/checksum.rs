//! The message checksum (docs/protocol.md, "Checksum"), which the journal keeps and the
//! `mz:Registration` header returns so that each party can later prove what it sent or
//! received:
//!
//! ```text
//! checksum = SHA-256( SHA-256(B) ‖ SHA-256(A₁) ‖ … ‖ SHA-256(Aₙ) )
//! ```
//!
//! where `B` is the signed block (`SenderProvidedRequestData` or
//! `SenderProvidedResponseData`) after exclusive c14n and the SMEV transform — exactly
//! the octets an SMEV-profile signature digests — and `A₁…Aₙ` are the attachments' bytes
//! in the order of the block's `AttachmentHeaderList`. The result is sent base64-encoded
//! with algorithm `urn://mezhved/checksum/sha256-v1`.

use mezhved_xml::{smev, Document, NodeId};
use sha2::{Digest, Sha256};

/// `B`: the block through the SMEV transform.
pub fn canonical_block(doc: &Document, block: NodeId) -> Vec<u8> {
    let mut out = Vec::new();
    smev::transform(doc, block, None, &mut out);
    out
}

pub fn checksum(block: &[u8], attachment_digests: &[[u8; 32]]) -> [u8; 32] {
    let mut outer = Sha256::new();
    outer.update(Sha256::digest(block));
    for d in attachment_digests {
        outer.update(d);
    }
    outer.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_documented_formula() {
        let b = b"<ns1:A xmlns:ns1=\"urn:x\">t</ns1:A>";
        let a1 = Sha256::digest(b"first");
        let a2 = Sha256::digest(b"second");
        let mut concat = Sha256::digest(b).to_vec();
        concat.extend_from_slice(&a1);
        concat.extend_from_slice(&a2);
        let expected: [u8; 32] = Sha256::digest(&concat).into();
        assert_eq!(checksum(b, &[a1.into(), a2.into()]), expected);
        assert_ne!(
            checksum(b, &[a2.into(), a1.into()]),
            expected,
            "order matters"
        );
        assert_eq!(
            checksum(b, &[]),
            <[u8; 32]>::from(Sha256::digest(Sha256::digest(b)))
        );
    }
}
