//! Printing: aligned tables, JSON and YAML, colours, and the small helpers that turn JSON
//! values into table cells. Never talks to the network.

use std::io::Write as _;

use serde_json::Value;

use crate::cli::{ColorChoice, GlobalArgs, Output};
use crate::error::Error;

/// An aligned text table: a header row, then rows, columns two spaces apart, the last
/// column unpadded.
///
/// ```
/// use opampctl::Table;
///
/// let mut t = Table::new(["NAME", "LATEST", "CREATED BY"]);
/// t.row(["collector", "3", "alice"]);
/// t.row(["web", "12", "ci"]);
/// assert_eq!(
///     t.render(),
///     "NAME       LATEST  CREATED BY\n\
///      collector  3       alice\n\
///      web        12      ci\n"
/// );
/// ```
#[derive(Debug, Clone, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty, extra cells are dropped).
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut row: Vec<String> = cells.into_iter().map(Into::into).collect();
        row.resize(self.header.len(), String::new());
        self.rows.push(row);
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row, each ending in `\n`.
    pub fn render(&self) -> String {
        // Control characters from the server (a label value with a newline) would break
        // the alignment, or worse, drive the terminal: show them escaped.
        let clean = |s: &str| -> String {
            s.chars()
                .flat_map(|c| {
                    if c.is_control() {
                        c.escape_default().collect::<Vec<_>>()
                    } else {
                        vec![c]
                    }
                })
                .collect()
        };
        let lines: Vec<Vec<String>> = std::iter::once(&self.header)
            .chain(&self.rows)
            .map(|r| r.iter().map(|c| clean(c)).collect())
            .collect();
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                lines
                    .iter()
                    .map(|r| r[i].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for line in &lines {
            let last = line.len().saturating_sub(1);
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                text.push_str(cell);
                if i < last {
                    let pad = widths[i] - cell.chars().count() + 2;
                    text.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// What to print, and how, for one command.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Printer {
    pub(crate) output: Output,
    pub(crate) wide: bool,
    pub(crate) color: bool,
}

impl Printer {
    pub(crate) fn new(global: &GlobalArgs) -> Self {
        use std::io::IsTerminal as _;
        let color = match global.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            _ => {
                std::io::stdout().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        };
        Self {
            output: global.output,
            wide: global.wide,
            color,
        }
    }

    /// Prints `value` as JSON or YAML; for tables, calls `human` for the text.
    pub(crate) fn emit(&self, value: &Value, human: impl FnOnce() -> String) -> Result<(), Error> {
        let text = match self.output {
            Output::Json => {
                let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
                s.push('\n');
                s
            }
            Output::Yaml => serde_norway::to_string(value).unwrap_or_default(),
            _ => human(),
        };
        write_stdout(&text)
    }

    /// A uid as the tables show it: whole with `--wide`, else its last 12 hex digits.
    pub(crate) fn uid(&self, uid: &str) -> String {
        if self.wide {
            return uid.to_owned();
        }
        let hex: String = uid.chars().filter(|c| *c != '-').collect();
        match hex.char_indices().rev().nth(11) {
            Some((i, _)) => hex[i..].to_owned(),
            None => hex,
        }
    }

    /// A hash as the tables show it: whole with `--wide`, else its first 12 hex digits.
    pub(crate) fn hash(&self, hash: &str) -> String {
        if self.wide {
            return hash.to_owned();
        }
        hash.chars().take(12).collect()
    }

    /// Wraps `text` in an ANSI colour when colours are on.
    pub(crate) fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// Writes to stdout; a closed pipe (`opampctl ... | head`) is not an error.
pub(crate) fn write_stdout(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Output(e)),
        _ => Ok(()),
    }
}

/// Writes a note to stderr (hints, "no agents match"): never mixed into JSON output.
pub(crate) fn note(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// A field as text: strings as they are, `null`/absent as `-`, others as compact JSON.
pub(crate) fn text(v: &Value, key: &str) -> String {
    cell(v.get(key).unwrap_or(&Value::Null))
}

/// A value as a table cell.
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 timestamp cut to seconds: `2025-01-02T03:04:05Z`.
pub(crate) fn time(v: &Value, key: &str) -> String {
    let s = text(v, key);
    match (s.find('.'), s.ends_with('Z')) {
        (Some(dot), true) if s.len() > dot => format!("{}Z", &s[..dot]),
        _ => s,
    }
}

/// `key=value` pairs of a JSON object, comma-separated.
pub(crate) fn pairs(v: Option<&Value>) -> String {
    match v.and_then(Value::as_object) {
        Some(m) if !m.is_empty() => m
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(v)))
            .collect::<Vec<_>>()
            .join(","),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn printer(wide: bool) -> Printer {
        Printer {
            output: Output::Table,
            wide,
            color: false,
        }
    }

    #[test]
    fn tables_align_columns_and_escape_control_characters() {
        let mut t = Table::new(["A", "B"]);
        t.row(["x\ny", "1"]);
        t.row(["long", ""]);
        assert_eq!(t.render(), "A     B\nx\\ny  1\nlong\n");
    }

    #[test]
    fn short_uids_are_the_random_tail_of_a_uuid_v7() {
        let uid = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        assert_eq!(printer(false).uid(uid), "0c1d2e3f4a5b");
        assert_eq!(printer(true).uid(uid), uid);
        assert_eq!(printer(false).uid("abc"), "abc");
    }

    #[test]
    fn cells_render_json_values_readably() {
        let v = json!({"s": "x", "n": 3, "e": "", "t": "2025-01-02T03:04:05.678Z"});
        assert_eq!(text(&v, "s"), "x");
        assert_eq!(text(&v, "n"), "3");
        assert_eq!(text(&v, "e"), "-");
        assert_eq!(text(&v, "missing"), "-");
        assert_eq!(time(&v, "t"), "2025-01-02T03:04:05Z");
        assert_eq!(pairs(Some(&json!({"a": "1", "b": 2}))), "a=1,b=2");
    }
}
