//! Escaping as Canonical XML writes it (C14N 1.0 §2.3), shared by exclusive c14n and the
//! SMEV transform (protocol.md §4 requires the same escaping for both).

/// Text node: `&` `<` `>` and CR (as `&#xD;`).
pub fn text(out: &mut Vec<u8>, s: &str) {
    escape(out, s.as_bytes(), |b| match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'\r' => Some(b"&#xD;"),
        _ => None,
    });
}

/// Attribute value: `&` `<` `"` and the whitespace characters TAB, LF, CR.
pub fn attribute(out: &mut Vec<u8>, s: &str) {
    escape(out, s.as_bytes(), |b| match b {
        b'&' => Some(b"&amp;"),
        b'<' => Some(b"&lt;"),
        b'"' => Some(b"&quot;"),
        b'\t' => Some(b"&#x9;"),
        b'\n' => Some(b"&#xA;"),
        b'\r' => Some(b"&#xD;"),
        _ => None,
    });
}

#[inline]
fn escape(out: &mut Vec<u8>, bytes: &[u8], replacement: impl Fn(u8) -> Option<&'static [u8]>) {
    // Every byte that needs escaping is ASCII up to '>'. Whole chunks without such a byte
    // are skipped by a branch-free (vectorised) test; others are scanned byte by byte.
    const CHUNK: usize = 32;
    let mut last = 0;
    let mut base = 0;
    for chunk in bytes.chunks(CHUNK) {
        if chunk.iter().fold(false, |acc, &b| {
            acc | (b <= b'>' && replacement(b).is_some())
        }) {
            for (j, &b) in chunk.iter().enumerate() {
                if b > b'>' {
                    continue;
                }
                if let Some(r) = replacement(b) {
                    let i = base + j;
                    out.extend_from_slice(&bytes[last..i]);
                    out.extend_from_slice(r);
                    last = i + 1;
                }
            }
        }
        base += chunk.len();
    }
    out.extend_from_slice(&bytes[last..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_text_and_attributes_as_c14n() {
        let mut o = Vec::new();
        text(&mut o, "a&b<c>d\"e'f\rg\th\ni");
        assert_eq!(o, b"a&amp;b&lt;c&gt;d\"e'f&#xD;g\th\ni");
        let mut o = Vec::new();
        attribute(&mut o, "a&b<c>d\"e'f\rg\th\ni");
        assert_eq!(o, b"a&amp;b&lt;c>d&quot;e'f&#xD;g&#x9;h&#xA;i");
    }
}
