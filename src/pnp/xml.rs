//! A small, defensive XML tree for what PnP devices send.
//!
//! Owns turning untrusted bytes into an [`Element`] tree that matches *local names* only
//! (prefixes dropped), keeps the literal default `xmlns` attribute (the PnP service name is read
//! from it, see `docs/pnp-protocol.md` §4 and §11), and refuses what a device never sends:
//! DTDs, non-predefined entities (billion-laughs / XXE), non-UTF-8 text, nesting deeper than
//! [`MAX_DEPTH`] and more than [`MAX_ELEMENTS`] elements. Serde is not used on purpose: PnP
//! messages repeat children freely (`fileSystem`, `dialogueLog`, `resultEntry`) and carry unknown
//! elements (`thisProfileName`, `reason`, ...), which a tree with lookup helpers takes in stride.

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

/// Deepest element nesting accepted; real PnP documents are under 10 levels.
pub(crate) const MAX_DEPTH: usize = 48;
/// Most elements accepted in one document; a device-info answer has about 60.
pub(crate) const MAX_ELEMENTS: usize = 20_000;

/// Why a body is not an acceptable XML document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XmlError {
    /// The bytes are not well-formed XML.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// The document declares a DTD; PnP never does and DTDs enable entity attacks.
    #[error("XML with a DTD (<!DOCTYPE>) is refused")]
    Dtd,
    /// A reference to an entity other than the five predefined ones.
    #[error("XML entity &{0}; is refused (only the predefined entities are accepted)")]
    Entity(String),
    /// Text or names that are not UTF-8.
    #[error("XML is not valid UTF-8")]
    NotUtf8,
    /// Too deep or too many elements.
    #[error("XML too large or too deeply nested ({0})")]
    TooBig(&'static str),
    /// No root element.
    #[error("XML document has no root element")]
    Empty,
}

/// One element: local name, attributes by local name, children and concatenated text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Local name (any `prefix:` removed).
    pub name: String,
    /// Attributes in document order; `xmlns` kept literally, `xmlns:p` declarations dropped.
    pub(crate) attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Text directly inside this element (CDATA included), entities resolved.
    pub(crate) text: String,
}

impl Element {
    /// The value of attribute `name` (local name).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// First child with local name `name`.
    pub(crate) fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children with local name `name`.
    pub(crate) fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a path of local names through first matches.
    pub(crate) fn path(&self, path: &[&str]) -> Option<&Element> {
        path.iter().try_fold(self, |el, name| el.child(name))
    }

    /// Trimmed text at `path`, `None` when absent or empty.
    pub(crate) fn text_at(&self, path: &[&str]) -> Option<String> {
        self.path(path)
            .map(|e| e.text.trim().to_string())
            .filter(|t| !t.is_empty())
    }

    /// All descendants (depth first) with local name `name`.
    pub(crate) fn descendants<'a>(&'a self, name: &'a str, out: &mut Vec<&'a Element>) {
        for c in &self.children {
            if c.name == name {
                out.push(c);
            }
            c.descendants(name, out);
        }
    }
}

fn local(name: &[u8]) -> Result<String, XmlError> {
    let s = std::str::from_utf8(name).map_err(|_| XmlError::NotUtf8)?;
    Ok(match s.rsplit_once(':') {
        Some((_, l)) => l.to_string(),
        None => s.to_string(),
    })
}

fn open(start: &BytesStart<'_>) -> Result<Element, XmlError> {
    let mut el = Element {
        name: local(start.name().as_ref())?,
        ..Element::default()
    };
    for attr in start.attributes() {
        let attr = attr.map_err(|e| XmlError::Malformed(e.to_string()))?;
        let key = std::str::from_utf8(attr.key.as_ref()).map_err(|_| XmlError::NotUtf8)?;
        if key.starts_with("xmlns:") {
            continue;
        }
        let key = if key == "xmlns" {
            key.to_string()
        } else {
            local(key.as_bytes())?
        };
        let raw = std::str::from_utf8(&attr.value).map_err(|_| XmlError::NotUtf8)?;
        el.attrs.push((key, unescape(raw)?));
    }
    Ok(el)
}

/// Resolves the five predefined entities and character references; refuses anything else.
fn resolve_entity(name: &str) -> Result<char, XmlError> {
    Ok(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => {
            let code = if let Some(hex) = name.strip_prefix("#x") {
                u32::from_str_radix(hex, 16).ok()
            } else if let Some(dec) = name.strip_prefix('#') {
                dec.parse::<u32>().ok()
            } else {
                None
            };
            // XML 1.0 §4.1, WFC "Legal Character": a reference must name a `Char` (§2.2):
            // tab, LF, CR, or U+0020 and up (surrogates and U+FFFE/U+FFFF excluded by
            // `char::from_u32` and the check). `&#0;` and the other C0 controls are refused.
            return code
                .and_then(char::from_u32)
                .filter(|c| {
                    matches!(c, '\t' | '\n' | '\r')
                        || (*c >= ' ' && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
                })
                .ok_or_else(|| XmlError::Entity(name.chars().take(32).collect()));
        }
    })
}

fn unescape(raw: &str) -> Result<String, XmlError> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let end = after
            .find(';')
            .ok_or_else(|| XmlError::Malformed("unterminated entity in attribute".into()))?;
        out.push(resolve_entity(&after[..end])?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses one XML document into its root element.
pub fn parse(bytes: &[u8]) -> Result<Element, XmlError> {
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        match event {
            Event::Start(s) | Event::Empty(s) if root.is_some() => {
                let _ = s;
                return Err(XmlError::Malformed("content after the root element".into()));
            }
            Event::Start(s) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooBig("too many elements"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooBig("nesting too deep"));
                }
                stack.push(open(&s)?);
            }
            Event::Empty(s) => {
                count += 1;
                if count > MAX_ELEMENTS {
                    return Err(XmlError::TooBig("too many elements"));
                }
                let el = open(&s)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| XmlError::Malformed("unexpected end tag".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|_| XmlError::NotUtf8)?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => {
                        return Err(XmlError::Malformed("text outside the root element".into()));
                    }
                }
            }
            Event::CData(t) => {
                let s = std::str::from_utf8(&t).map_err(|_| XmlError::NotUtf8)?;
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(s);
                }
            }
            Event::GeneralRef(r) => {
                let name = std::str::from_utf8(&r).map_err(|_| XmlError::NotUtf8)?;
                let c = resolve_entity(name)?;
                match stack.last_mut() {
                    Some(el) => el.text.push(c),
                    None => {
                        return Err(XmlError::Malformed("text outside the root element".into()));
                    }
                }
            }
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed(
            "document ends inside an element".into(),
        ));
    }
    root.ok_or(XmlError::Empty)
}

/// Escapes text or an attribute value for output.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn character_references_must_name_legal_xml_characters() {
        for (doc, ok) in [
            ("<a>x&#65;&#x42;</a>", true),
            ("<a>tab&#9;lf&#10;cr&#13;</a>", true),
            ("<a>&#0;</a>", false),
            ("<a>&#x1b;[31m</a>", false),
            ("<a>&#7;</a>", false),
            ("<a b=\"&#x0;\"/>", false),
            ("<a>&#xFFFE;</a>", false),
            ("<a>&#xD800;</a>", false),
        ] {
            assert_eq!(parse(doc.as_bytes()).is_ok(), ok, "{doc}");
        }
    }

    use super::*;

    #[test]
    fn local_names_and_default_xmlns() {
        let doc = br#"<?xml version="1.0"?><p:pnp xmlns:p="urn:cisco:pnp" udi="a&amp;b"><response xmlns="urn:cisco:pnp:cli-exec" x:correlator="C1" xmlns:x="q"><t>a &lt; b &#65;</t></response></p:pnp>"#;
        let root = parse(doc).unwrap();
        assert_eq!(root.name, "pnp");
        assert_eq!(root.attr("udi"), Some("a&b"));
        let resp = root.child("response").unwrap();
        assert_eq!(resp.attr("xmlns"), Some("urn:cisco:pnp:cli-exec"));
        assert_eq!(resp.attr("correlator"), Some("C1"));
        assert_eq!(root.text_at(&["response", "t"]).as_deref(), Some("a < b A"));
    }

    #[test]
    fn refuses_hostile_and_broken_input() {
        type Check = fn(&XmlError) -> bool;
        let cases: &[(&[u8], Check)] = &[
            (b"<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>", |e| {
                *e == XmlError::Dtd
            }),
            (b"<x>&a;</x>", |e| matches!(e, XmlError::Entity(_))),
            (b"<x a=\"&foo;\"/>", |e| matches!(e, XmlError::Entity(_))),
            (b"<x>\xff</x>", |e| *e == XmlError::NotUtf8),
            (b"<x><y></x>", |e| matches!(e, XmlError::Malformed(_))),
            (b"<x>", |e| matches!(e, XmlError::Malformed(_))),
            (b"", |e| *e == XmlError::Empty),
            (b"not xml", |e| matches!(e, XmlError::Malformed(_))),
            (b"<x/><y/>", |e| matches!(e, XmlError::Malformed(_))),
        ];
        for (input, check) in cases {
            let err = parse(input).expect_err(&String::from_utf8_lossy(input));
            assert!(
                check(&err),
                "{:?} gave {err:?}",
                String::from_utf8_lossy(input)
            );
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert_eq!(
            parse(deep.as_bytes()),
            Err(XmlError::TooBig("nesting too deep"))
        );
        let wide = format!("<a>{}</a>", "<b/>".repeat(MAX_ELEMENTS + 1));
        assert_eq!(
            parse(wide.as_bytes()),
            Err(XmlError::TooBig("too many elements"))
        );
    }

    #[test]
    fn repeated_children_and_cdata() {
        let root = parse(b"<l><f n=\"1\"/><f n=\"2\"/><c><![CDATA[<raw>]]></c></l>").unwrap();
        let names: Vec<_> = root
            .children_named("f")
            .filter_map(|f| f.attr("n"))
            .collect();
        assert_eq!(names, ["1", "2"]);
        assert_eq!(root.text_at(&["c"]).as_deref(), Some("<raw>"));
        assert_eq!(escape("<a&\"'>"), "&lt;a&amp;&quot;&apos;&gt;");
    }
}
