//! The service log: `text` for people, `json` for collectors, and one line
//! per event either way.
//!
//! A line per event is what journald, `grep` and log shippers assume; a
//! multi-line value (a TOML error spans several lines) would split one event
//! into several, or let a value forge a line. Text lines therefore carry a
//! value's line breaks escaped as `\n`; JSON escapes them itself.

use std::io::{IsTerminal, Write};

use serde::Deserialize;

/// `--log-format` and `log_format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Logs to standard error; the level comes from `DOCKGATE_LOG` (default
/// `info`).
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DOCKGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| OneLine(std::io::stderr()));
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// `text` on one line: line breaks escaped as `\n`.
pub fn one_line(text: &str) -> String {
    text.trim_end_matches('\n').replace('\n', "\\n")
}

/// Writes each event (the formatter writes one per call) as one line.
struct OneLine<W>(W);

impl<W: Write> Write for OneLine<W> {
    fn write(&mut self, event: &[u8]) -> std::io::Result<usize> {
        let body = event.strip_suffix(b"\n").unwrap_or(event);
        if body.contains(&b'\n') {
            let mut line = Vec::with_capacity(event.len() + 8);
            for &b in body {
                match b {
                    b'\n' => line.extend_from_slice(b"\\n"),
                    b => line.push(b),
                }
            }
            line.push(b'\n');
            self.0.write_all(&line)?;
        } else {
            self.0.write_all(event)?;
        }
        Ok(event.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_with_line_breaks_is_one_line() {
        let mut out = OneLine(Vec::new());
        out.write_all(b"ERROR invalid config: TOML parse error\n  |\n1 | x\n\n")
            .unwrap();
        out.write_all(b"INFO plain\n").unwrap();
        assert_eq!(
            String::from_utf8(out.0).unwrap(),
            "ERROR invalid config: TOML parse error\\n  |\\n1 | x\\n\nINFO plain\n"
        );
        assert_eq!(one_line("a\nb\n"), "a\\nb");
    }
}
