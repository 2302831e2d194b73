//! A small XML writer for the gateway's own answers: elements are written with explicit
//! prefixes and declarations, text and attribute values are escaped as exclusive c14n
//! writes them, so what the gateway signs is already close to canonical.

#[derive(Debug, Default)]
pub struct XmlWriter {
    out: Vec<u8>,
}

pub fn escape_text(s: &str, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

pub fn escape_attr(s: &str, out: &mut Vec<u8>) {
    for b in s.bytes() {
        match b {
            b'&' => out.extend_from_slice(b"&amp;"),
            b'<' => out.extend_from_slice(b"&lt;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            b'\t' => out.extend_from_slice(b"&#x9;"),
            b'\n' => out.extend_from_slice(b"&#xA;"),
            b'\r' => out.extend_from_slice(b"&#xD;"),
            _ => out.push(b),
        }
    }
}

impl XmlWriter {
    pub fn with_capacity(n: usize) -> Self {
        XmlWriter {
            out: Vec::with_capacity(n),
        }
    }
    /// `<name a="v" ...>`; attributes are (name, value) pairs written in order.
    pub fn open(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.out.push(b'<');
        self.out.extend_from_slice(name.as_bytes());
        for (k, v) in attrs {
            self.out.push(b' ');
            self.out.extend_from_slice(k.as_bytes());
            self.out.extend_from_slice(b"=\"");
            escape_attr(v, &mut self.out);
            self.out.push(b'"');
        }
        self.out.push(b'>');
        self
    }
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.out.extend_from_slice(b"</");
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'>');
        self
    }
    /// `<name>text</name>`.
    pub fn leaf(&mut self, name: &str, text: &str) -> &mut Self {
        self.open(name, &[]);
        escape_text(text, &mut self.out);
        self.close(name)
    }
    /// `<name attrs></name>` (explicit end tag, as c14n writes it).
    pub fn empty(&mut self, name: &str, attrs: &[(&str, &str)]) -> &mut Self {
        self.open(name, attrs);
        self.close(name)
    }
    pub fn text(&mut self, text: &str) -> &mut Self {
        escape_text(text, &mut self.out);
        self
    }
    /// Bytes that are already well-formed XML (a verbatim signed block).
    pub fn raw(&mut self, xml: &[u8]) -> &mut Self {
        self.out.extend_from_slice(xml);
        self
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.out
    }
    pub fn len(&self) -> usize {
        self.out.len()
    }
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_exclusive_c14n() {
        let mut w = XmlWriter::default();
        w.open("a", &[("x", "1&<\"\t\n\r>")])
            .text("&<>\r\"")
            .close("a");
        assert_eq!(
            String::from_utf8(w.into_bytes()).expect("utf-8"),
            "<a x=\"1&amp;&lt;&quot;&#x9;&#xA;&#xD;>\">&amp;&lt;&gt;&#xD;\"</a>"
        );
    }
}
