//! Where each value of `appliance.toml` stands: the TOML parser's own spans (`toml::de::DeTable`
//! keeps one for every key and value), looked up by a dotted path such as
//! `workflow.image[1].file`, so a validation error names the line of the value it is about,
//! in the second and later array tables too.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// The parsed document's spans.
pub(crate) struct Spans<'i> {
    src: &'i str,
    root: Option<Spanned<DeTable<'i>>>,
}

impl<'i> Spans<'i> {
    /// Spans of `src`; a document that does not parse has none (serde reports that error).
    pub(crate) fn parse(src: &'i str) -> Spans<'i> {
        Spans {
            src,
            root: DeTable::parse(src).ok(),
        }
    }

    /// 1-based line of `path` (`table.key`, `table.array[i].key`): the key where it is set,
    /// else the nearest enclosing table or array element that is written, else 0.
    pub(crate) fn line(&self, path: &str) -> usize {
        let Some(root) = &self.root else {
            return 0;
        };
        let mut at = root.span().start;
        let mut table = Some(root.get_ref());
        let mut found_any = false;
        for seg in path.split('.') {
            let (key, index) = match seg.split_once('[') {
                Some((k, i)) => (k, i.trim_end_matches(']').parse::<usize>().ok()),
                None => (seg, None),
            };
            let Some(t) = table else { break };
            let Some((k, v)) = t.iter().find(|(k, _)| k.get_ref().as_ref() == key) else {
                break;
            };
            found_any = true;
            at = k.span().start;
            table = match (v.get_ref(), index) {
                (DeValue::Table(t), None) => Some(t),
                (DeValue::Array(items), Some(i)) => match items.get(i) {
                    Some(item) => {
                        at = item.span().start;
                        match item.get_ref() {
                            DeValue::Table(t) => Some(t),
                            _ => None,
                        }
                    }
                    None => None,
                },
                _ => None,
            };
        }
        if !found_any {
            return 0;
        }
        line_of(self.src, at)
    }
}

/// 1-based line of byte offset `at` in `src`.
pub(crate) fn line_of(src: &str, at: usize) -> usize {
    src.get(..at.min(src.len()))
        .map_or(0, |head| head.matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_keys_tables_and_array_elements() {
        let src = "[http]\nlisten = \"x\"\n\n[[workflow.image]]\nfile = \"a\"\n\n[[workflow.image]]\npid-prefix = \"C1161\"\nfile = \"b\"\n[dhcp]\n";
        let s = Spans::parse(src);
        let cases = [
            ("http.listen", 2),
            ("http.advertise", 1),
            ("workflow.image[0].file", 5),
            ("workflow.image[1].file", 9),
            ("workflow.image[1].version", 7),
            ("dhcp.pool", 10),
            ("backoff.finished", 0),
        ];
        for (path, line) in cases {
            assert_eq!(s.line(path), line, "{path}");
        }
        assert_eq!(Spans::parse("not toml [").line("http.listen"), 0);
    }
}
