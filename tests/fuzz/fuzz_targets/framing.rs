//! Client byte streams → `framing::Tracker`.
//!
//! The first byte of the input picks how the stream is cut into reads; the
//! rest is the stream. Never panics, and checks what the gateway relies on:
//! - the cut does not matter: fed whole, byte by byte, or in the pieces the
//!   first byte picks, the tracker admits and refuses the same requests (as
//!   hyper would read them: a read may end anywhere);
//! - a refusal is final: once a request is refused for its framing, every
//!   later request on the connection is refused for the same reason;
//! - a request is only admitted after a complete head was seen for it, so a
//!   stream without a CRLF CRLF or LF LF has no admitted request.
#![no_main]

use dockgate_wire::framing::{Error, Tracker};
use libfuzzer_sys::fuzz_target;

/// Requests asked about per stream, more than any seed holds.
const REQUESTS: usize = 16;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let whole = verdicts(stream, &[stream.len()]);
    assert_eq!(verdicts(stream, &[1]), whole, "byte by byte");
    let pieces = [1 + usize::from(cut % 61), 1 + usize::from(cut / 61)];
    assert_eq!(verdicts(stream, &pieces), whole, "pieces {pieces:?}");

    if let Some(refused) = whole
        .iter()
        .position(|v| matches!(v, Err(e) if *e != Error::Unseen))
    {
        let reason = whole[refused];
        assert!(whole[refused..].iter().all(|v| *v == reason), "{whole:?}");
    }
    let has_head =
        stream.windows(2).any(|w| w == b"\n\n") || stream.windows(3).any(|w| w == b"\n\r\n");
    if !has_head {
        assert!(
            whole.iter().all(Result::is_err),
            "admitted without a head: {whole:?}"
        );
    }
});

/// What the gateway is told for each of [`REQUESTS`] requests after the
/// stream arrived in reads of `pieces` bytes (cycled).
fn verdicts(stream: &[u8], pieces: &[usize]) -> Vec<Result<(), Error>> {
    let mut tracker = Tracker::default();
    let mut rest = stream;
    for &n in pieces.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (read, tail) = rest.split_at(n.clamp(1, rest.len()));
        tracker.observe(read);
        rest = tail;
    }
    (0..REQUESTS).map(|_| tracker.admit()).collect()
}
