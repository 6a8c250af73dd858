//! Finds where a key sits in the TOML text, so that every configuration error
//! can name the file, the line and the dotted key (`token.keys[1].algorithm`).

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// One step of a dotted key path.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn steps(path: &str) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let (name, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Step::Key(name));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            if let Ok(n) = idx.trim_end_matches(']').parse() {
                out.push(Step::Index(n));
            }
        }
    }
    out
}

/// 1-based line of byte offset `at` in `text`.
pub fn line_at(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The line where the key of `path` is written, when the file has it.
pub fn line_of(text: &str, path: &str) -> Option<usize> {
    let doc = DeTable::parse(text).ok()?;
    let mut span: Option<std::ops::Range<usize>> = None;
    let mut table: &DeTable = doc.get_ref();
    let mut value: Option<&Spanned<DeValue>> = None;
    for step in steps(path) {
        match step {
            Step::Key(k) => {
                let current = match value {
                    None => table,
                    Some(v) => match v.get_ref() {
                        DeValue::Table(t) => t,
                        _ => break,
                    },
                };
                let (key, v) = current.iter().find(|(key, _)| key.get_ref() == k)?;
                span = Some(key.span());
                table = current;
                value = Some(v);
            }
            Step::Index(n) => {
                let arr = match value.map(|v| v.get_ref()) {
                    Some(DeValue::Array(a)) => a,
                    _ => break,
                };
                let item = arr.get(n)?;
                span = Some(item.span());
                value = Some(item);
            }
        }
    }
    span.map(|s| line_at(text, s.start))
}

/// The dotted path of the innermost key whose key or value covers byte `at`.
/// Table spans only cover their `[header]`, so every branch is searched.
pub fn path_at(text: &str, at: usize) -> Option<String> {
    let doc = DeTable::parse(text).ok()?;
    find_in_table(doc.get_ref(), at)
}

fn covers(span: std::ops::Range<usize>, at: usize) -> bool {
    span.start <= at && at < span.end
}

fn find_in_table(table: &DeTable, at: usize) -> Option<String> {
    for (key, value) in table.iter() {
        if let Some(inner) = find_in_value(value.get_ref(), at) {
            return Some(format!("{}{}", key.get_ref(), inner));
        }
    }
    table
        .iter()
        .find(|(key, value)| covers(key.span(), at) || covers(value.span(), at))
        .map(|(key, _)| key.get_ref().to_string())
}

/// The path below `value` (starting with `.` or `[`) that covers `at`.
fn find_in_value(value: &DeValue, at: usize) -> Option<String> {
    match value {
        DeValue::Table(t) => find_in_table(t, at).map(|p| format!(".{p}")),
        DeValue::Array(arr) => {
            arr.iter()
                .enumerate()
                .find_map(|(i, item)| match find_in_value(item.get_ref(), at) {
                    Some(inner) => Some(format!("[{i}]{inner}")),
                    None if covers(item.span(), at) => Some(format!("[{i}]")),
                    None => None,
                })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[listen]\nproxy = \"x\"\n\n[[token.keys]]\nalgorithm = \"HS256\"\n\n[[token.keys]]\nalgorithm = \"HS999\"\n";

    #[test]
    fn finds_lines_of_nested_keys() {
        assert_eq!(line_of(TEXT, "listen.proxy"), Some(2));
        assert_eq!(line_of(TEXT, "token.keys[1].algorithm"), Some(8));
        assert_eq!(line_of(TEXT, "token.keys[0].algorithm"), Some(5));
        assert_eq!(line_of(TEXT, "store.path"), None);
    }

    #[test]
    fn finds_path_at_offset() {
        let at = TEXT.find("HS999").unwrap();
        assert_eq!(
            path_at(TEXT, at).as_deref(),
            Some("token.keys[1].algorithm")
        );
        let at = TEXT.find("proxy").unwrap();
        assert_eq!(path_at(TEXT, at).as_deref(), Some("listen.proxy"));
    }
}
