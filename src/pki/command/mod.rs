//! `dockgate pki …`: the command line over [`super::ops`].
//!
//! [`args`] is what clap parses (flags and help text are operator contracts),
//! [`handlers`] runs a command and reports it, [`list`] renders `pki list`.

mod args;
mod handlers;
mod list;

use time::OffsetDateTime;

use super::index::CertKind;

pub use args::PkiCommand;
pub use handlers::run;

/// A time as every `pki` command prints it: UTC, to the minute.
fn date(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// How `pki` output names a certificate's kind.
fn kind_word(kind: CertKind) -> &'static str {
    match kind {
        CertKind::Client => "client",
        CertKind::Server => "server",
    }
}
