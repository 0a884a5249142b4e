//! How results are shown: one JSON value with `--json`, otherwise tables and short lines.
//! Colours and table borders only when the stream is a terminal (and `NO_COLOR` is unset);
//! piped output is plain text.

use std::io::IsTerminal;

use anstyle::{AnsiColor, Style};
use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

use crate::error::CliError;

pub const BOLD: Style = Style::new().bold();
pub const DIM: Style = Style::new().dimmed();
pub const YELLOW: Style = AnsiColor::Yellow.on_default();
pub const RED: Style = AnsiColor::Red.on_default().bold();

#[derive(Clone, Copy, Debug)]
pub struct Output {
    pub json: bool,
    /// Whether stdout is a terminal.
    pub tty: bool,
}

impl Output {
    pub fn new(json: bool) -> Output {
        Output {
            json,
            tty: std::io::stdout().is_terminal(),
        }
    }

    /// Prints one JSON value: indented on a terminal, one line otherwise.
    pub fn value<T: Serialize + ?Sized>(&self, v: &T) -> Result<(), CliError> {
        let text = if self.tty {
            serde_json::to_string_pretty(v)
        } else {
            serde_json::to_string(v)
        }
        .map_err(|e| CliError::local(format!("cannot encode the answer as JSON: {e}")))?;
        println!("{text}");
        Ok(())
    }

    /// Prints one JSON value on one line (for streams of values, as `tail --json` writes).
    pub fn line<T: Serialize + ?Sized>(&self, v: &T) -> Result<(), CliError> {
        let text = serde_json::to_string(v)
            .map_err(|e| CliError::local(format!("cannot encode the answer as JSON: {e}")))?;
        println!("{text}");
        Ok(())
    }

    /// A table with a header row; plain columns without colours when stdout is not a
    /// terminal. Cells are strings or styled [`comfy_table::Cell`]s.
    pub fn table<C: Into<comfy_table::Cell>>(&self, header: &[&str], rows: Vec<Vec<C>>) {
        let mut t = Table::new();
        if self.tty {
            t.load_preset(UTF8_FULL_CONDENSED);
            // Wrap to the terminal's width when it reports a usable one.
            if t.width().is_some_and(|w| w >= 40) {
                t.set_content_arrangement(ContentArrangement::Dynamic);
            }
        } else {
            t.load_preset(comfy_table::presets::NOTHING).force_no_tty();
        }
        t.set_header(header.iter().map(comfy_table::Cell::new));
        for row in rows {
            t.add_row(row);
        }
        println!("{}", t.trim_fmt());
    }

    /// `key: value` lines, keys aligned.
    pub fn fields(&self, pairs: &[(&str, String)]) {
        let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in pairs {
            anstream::println!("{BOLD}{k:<width$}{BOLD:#}  {v}");
        }
    }

    /// A line of human output (stdout); styled parts are stripped when not a terminal.
    pub fn say(&self, text: impl std::fmt::Display) {
        anstream::println!("{text}");
    }
}

/// Wraps `text` in `style` (the escape codes are dropped later when not on a terminal).
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

/// Prints a failure on stderr: `error: ...` and its hint.
pub fn error(e: &CliError) {
    anstream::eprintln!("{RED}error:{RED:#} {}", e.message);
    if let Some(h) = &e.hint {
        anstream::eprintln!("  {DIM}hint:{DIM:#} {h}");
    }
}

/// A status line on stderr (progress, "waiting for messages"), never mixed into results.
pub fn status(text: impl std::fmt::Display) {
    anstream::eprintln!("{DIM}{text}{DIM:#}");
}

/// A timestamp to the second, for people: `2025-01-02 10:11:12`.
pub fn short_time(t: enrichment_client::protocol::Timestamp) -> String {
    let s = t.to_string();
    s.get(..19).unwrap_or(&s).replace('T', " ")
}

/// `1d 2h 3m` from seconds.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// An optional value, or a dash.
pub fn or_dash(v: Option<impl std::fmt::Display>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(5), "5s");
        assert_eq!(duration(65), "1m 5s");
        assert_eq!(duration(3 * 3600 + 120), "3h 2m");
        assert_eq!(duration(2 * 86_400 + 3600), "2d 1h");
    }
}
