//! Request framing checks below hyper: refuses request-smuggling shapes.
//!
//! hyper accepts a request head carrying both `Content-Length` and
//! `Transfer-Encoding` (RFC 9112 §6.3: it drops the length and reads
//! chunked), so the service cannot tell that the length was ever there.
//! [`Framing`] wraps the client's TLS stream and follows the request
//! messages in the bytes hyper reads — head, then a sized or chunked body,
//! then the next head — with the same grammar hyper applies. Because the
//! wrapper sees every byte before hyper parses it, a bad head has been
//! recorded by the time hyper hands its request to the gateway, which asks
//! [`FramingCheck::admit`] first and answers 400 instead of forwarding.
//!
//! Refused: `Content-Length` with `Transfer-Encoding`; differing or invalid
//! `Content-Length` values; a `Transfer-Encoding` whose final coding is not
//! `chunked` (or any in HTTP/1.0); an unparsable or oversized head; invalid
//! chunked framing (size line, extensions, CRLF after data, last chunk,
//! trailers). Requests pipelined ahead of the violation are well framed and
//! still served; the violating request and every later one are refused.
//!
//! A body that is streamed to the daemon and turns out to be badly chunked
//! midway is cut by hyper itself: its decoder errors, the upstream request
//! fails and the connection is closed, so nothing after the bad chunk is
//! forwarded.
//!
//! Upgrades: after a request that may switch protocols (an `Upgrade` header
//! or CONNECT, the requests hyper may upgrade), the bytes that follow are
//! either a raw stream or, if the daemon declined, the next request. They
//! are kept aside (up to 64 KiB, then only counted) until the
//! gateway admits another request on the connection, which proves there
//! was no upgrade; they are then checked as request bytes. An upgraded
//! connection never asks again, so its stream is never parsed.
//!
//! Cost on the hot path: one uncontended lock per read; body data is
//! skipped by count and only head bytes are buffered.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::audit::Decision;
use crate::policy::Denial;

/// Largest request head accepted, request line and headers included:
/// hyper's own read buffer limit, so that large `X-Registry-Config`
/// headers pass here whenever hyper would take them.
const HEAD_LIMIT: usize = 8192 + 4096 * 100;
/// Bytes kept behind an upgrade request until it is known whether the
/// connection switched protocols.
const EARLY_LIMIT: usize = 64 * 1024;
/// hyper's limit on the bytes of all chunk extensions of one body.
const EXTENSIONS_LIMIT: u64 = 16 * 1024;
/// hyper's limit on the bytes of a chunked body's trailer section.
const TRAILERS_LIMIT: usize = 16 * 1024;
/// hyper's default limit on the number of header fields.
const MAX_HEADERS: usize = 100;

/// Why a request's framing is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    LengthWithTransferEncoding,
    DifferingLengths,
    InvalidLength,
    UnchunkedTransferEncoding,
    TransferEncodingInHttp10,
    UnparsableHead,
    HeadTooLarge,
    ChunkSize,
    ChunkSizeOverflow,
    ChunkSizeLine,
    ChunkExtension,
    ChunkExtensionsTooLong,
    ChunkDataEnd,
    LastChunkEnd,
    Trailer,
    TrailersTooLarge,
    /// More than 64 KiB behind an upgrade the daemon declined.
    EarlyUpgradeData,
    /// A request the check never saw a head for; the two parsers disagree.
    Unseen,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Violation::LengthWithTransferEncoding => {
                "Content-Length together with Transfer-Encoding"
            }
            Violation::DifferingLengths => "differing Content-Length values",
            Violation::InvalidLength => "invalid Content-Length",
            Violation::UnchunkedTransferEncoding => {
                "Transfer-Encoding whose final coding is not chunked"
            }
            Violation::TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            Violation::UnparsableHead => "unparsable request head",
            Violation::HeadTooLarge => "request head larger than 408 KiB",
            Violation::ChunkSize => "invalid chunk size",
            Violation::ChunkSizeOverflow => "chunk size overflows",
            Violation::ChunkSizeLine => "chunk size line not ended by CRLF",
            Violation::ChunkExtension => "invalid chunk extension",
            Violation::ChunkExtensionsTooLong => "chunk extensions longer than 16 KiB",
            Violation::ChunkDataEnd => "chunk data not followed by CRLF",
            Violation::LastChunkEnd => "last chunk not followed by CRLF",
            Violation::Trailer => "invalid chunked trailer",
            Violation::TrailersTooLarge => "chunked trailers larger than 16 KiB",
            Violation::EarlyUpgradeData => {
                "more than 64 KiB sent behind an upgrade request that was not upgraded"
            }
            Violation::Unseen => "request not seen by the framing check",
        })
    }
}

impl Violation {
    /// The 400 refusal for the client and the audit log.
    pub fn denial(self, role: Option<std::sync::Arc<str>>) -> Denial {
        Denial {
            status: StatusCode::BAD_REQUEST,
            message: format!("dockgate: refused request framing: {self}"),
            decision: Decision {
                operation: None,
                role,
                allowed: false,
                rule: "request framing".into(),
            },
        }
    }
}

/// The client's stream, watched: reads are observed by the connection's
/// tracker, writes pass through untouched.
pub struct Framing<T> {
    io: T,
    tracker: Arc<Mutex<Tracker>>,
}

/// The gateway's side of a connection's [`Framing`]; one per connection,
/// cloned into each request.
#[derive(Clone)]
pub struct FramingCheck(Arc<Mutex<Tracker>>);

impl<T> Framing<T> {
    pub fn new(io: T) -> (Framing<T>, FramingCheck) {
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let check = FramingCheck(tracker.clone());
        (Framing { io, tracker }, check)
    }
}

impl FramingCheck {
    /// Admits the connection's next request, or says why it is refused.
    /// Must be called exactly once per request, in order.
    pub fn admit(&self) -> Result<(), Violation> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Framing<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = &buf.filled()[before..];
            if !read.is_empty() {
                this.tracker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .observe(read);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Framing<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// Where the tracker is in the client's byte stream.
#[derive(Debug)]
enum State {
    /// Reading a request head (buffered in `Tracker::head`).
    Head,
    /// Skipping the rest of a sized body.
    Length(u64),
    Chunked(Chunked),
    /// Behind a request that may have switched protocols.
    Upgrade {
        early: Vec<u8>,
        overflowed: bool,
    },
    /// After a violation: nothing more is inspected.
    Stopped,
}

#[derive(Debug)]
struct Tracker {
    state: State,
    head: Vec<u8>,
    /// Heads completed so far; the index of the request being read.
    requests: u64,
    /// Requests admitted (or refused) so far.
    admitted: u64,
    /// Whether the current message may switch protocols.
    upgrade: bool,
    /// The first violation and the index of the request it belongs to.
    violation: Option<(u64, Violation)>,
}

impl Default for Tracker {
    fn default() -> Tracker {
        Tracker {
            state: State::Head,
            head: Vec::new(),
            requests: 0,
            admitted: 0,
            upgrade: false,
            violation: None,
        }
    }
}

impl Tracker {
    fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let taken = match &mut self.state {
                State::Head => self.head_bytes(bytes),
                State::Length(left) => {
                    let n =
                        usize::try_from(*left).map_or(bytes.len(), |left| left.min(bytes.len()));
                    *left -= n as u64;
                    if *left == 0 {
                        self.end_message();
                    }
                    n
                }
                State::Chunked(chunked) => match chunked.feed(bytes) {
                    Ok((n, done)) => {
                        if done {
                            self.end_message();
                        }
                        n
                    }
                    Err(violation) => {
                        self.violate(self.requests.saturating_sub(1), violation);
                        return;
                    }
                },
                State::Upgrade { early, overflowed } => {
                    if !*overflowed {
                        if early.len() + bytes.len() <= EARLY_LIMIT {
                            early.extend_from_slice(bytes);
                        } else {
                            *early = Vec::new();
                            *overflowed = true;
                        }
                    }
                    return;
                }
                State::Stopped => return,
            };
            bytes = bytes.get(taken..).unwrap_or_default();
        }
    }

    /// Takes head bytes; returns how many of `bytes` belong to the head.
    fn head_bytes(&mut self, bytes: &[u8]) -> usize {
        if self.head.is_empty() {
            // Empty lines before a request line are skipped, as httparse does.
            let blank = bytes
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
            if blank > 0 {
                return blank;
            }
        }
        let old = self.head.len();
        let take = HEAD_LIMIT.saturating_sub(old).min(bytes.len());
        self.head.extend_from_slice(&bytes[..take]);
        if ends_head(&self.head, old.saturating_sub(2)) {
            match parse_head(&self.head) {
                Ok(Some(head)) => {
                    self.head.clear();
                    let Some(used) = head.len.checked_sub(old) else {
                        self.violate(self.requests, Violation::UnparsableHead);
                        return bytes.len();
                    };
                    self.begin_body(head);
                    return used;
                }
                Ok(None) => {}
                Err(violation) => {
                    self.violate(self.requests, violation);
                    return bytes.len();
                }
            }
        }
        if self.head.len() >= HEAD_LIMIT {
            self.violate(self.requests, Violation::HeadTooLarge);
            return bytes.len();
        }
        take
    }

    fn begin_body(&mut self, head: Head) {
        self.requests += 1;
        self.upgrade = head.upgrade;
        match head.body {
            BodyFraming::Length(0) => self.end_message(),
            BodyFraming::Length(n) => self.state = State::Length(n),
            BodyFraming::Chunked => self.state = State::Chunked(Chunked::default()),
        }
    }

    fn end_message(&mut self) {
        self.state = if self.upgrade {
            State::Upgrade {
                early: Vec::new(),
                overflowed: false,
            }
        } else {
            State::Head
        };
    }

    fn violate(&mut self, request: u64, violation: Violation) {
        self.violation = Some((request, violation));
        self.state = State::Stopped;
        self.head = Vec::new();
    }

    fn admit(&mut self) -> Result<(), Violation> {
        let request = self.admitted;
        self.admitted += 1;
        if request >= self.requests {
            if let State::Upgrade { early, overflowed } = &mut self.state {
                // hyper parsed another request after the possible upgrade,
                // so it did not happen: what followed it is request bytes.
                let early = std::mem::take(early);
                if *overflowed {
                    self.violate(self.requests, Violation::EarlyUpgradeData);
                } else {
                    self.state = State::Head;
                    self.observe(&early);
                }
            }
        }
        match self.violation {
            Some((at, violation)) if request >= at => Err(violation),
            _ if request >= self.requests => Err(Violation::Unseen),
            _ => Ok(()),
        }
    }
}

/// Whether a line ending from `from` on is followed by an empty line.
fn ends_head(buf: &[u8], from: usize) -> bool {
    let tail = buf.get(from..).unwrap_or_default();
    tail.iter().enumerate().any(|(i, &b)| {
        b == b'\n' && matches!(tail.get(i + 1..), Some([b'\n', ..] | [b'\r', b'\n', ..]))
    })
}

#[derive(Debug, PartialEq, Eq)]
enum BodyFraming {
    Length(u64),
    Chunked,
}

#[derive(Debug, PartialEq, Eq)]
struct Head {
    /// Bytes of the head, its terminating empty line included.
    len: usize,
    body: BodyFraming,
    upgrade: bool,
}

/// Parses a complete head the way hyper's server does and decides its body
/// framing; `None` when the head is not complete yet.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Violation> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Violation::UnparsableHead),
    };
    let mut length: Option<u64> = None;
    let mut saw_length = false;
    let mut length_error = None;
    let mut te = false;
    let mut chunked = false;
    let mut upgrade = request.method == Some("CONNECT");
    for header in request.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            saw_length = true;
            match (from_digits(header.value), length) {
                (None, _) => {
                    length_error.get_or_insert(Violation::InvalidLength);
                }
                (Some(n), Some(prev)) if n != prev => {
                    length_error.get_or_insert(Violation::DifferingLengths);
                }
                (Some(n), _) => length = Some(n),
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            te = true;
            chunked = ends_chunked(header.value);
        } else if header.name.eq_ignore_ascii_case("upgrade") {
            upgrade = true;
        }
    }
    if te {
        if saw_length {
            return Err(Violation::LengthWithTransferEncoding);
        }
        if request.version != Some(1) {
            return Err(Violation::TransferEncodingInHttp10);
        }
        if !chunked {
            return Err(Violation::UnchunkedTransferEncoding);
        }
    }
    if let Some(violation) = length_error {
        return Err(violation);
    }
    let body = if te {
        BodyFraming::Chunked
    } else {
        BodyFraming::Length(length.unwrap_or(0))
    };
    Ok(Some(Head { len, body, upgrade }))
}

/// A `Content-Length` value: ASCII digits only, no sign, no overflow.
fn from_digits(value: &[u8]) -> Option<u64> {
    if value.is_empty() {
        return None;
    }
    value.iter().try_fold(0u64, |n, &b| {
        let digit = char::from(b).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Whether a `Transfer-Encoding` line's final coding is `chunked` (hyper
/// judges each line alone; the last line decides).
fn ends_chunked(value: &[u8]) -> bool {
    let visible = value
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
    visible
        && value
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"))
}

/// The steps of RFC 9112 §7.1 chunked framing, as hyper's decoder takes
/// them. Chunk data is not a step: it is skipped by count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Step {
    /// Before a chunk size's first hex digit.
    #[default]
    Start,
    Size,
    /// Whitespace after the size.
    SizeWhitespace,
    Extension,
    SizeLf,
    DataCr,
    DataLf,
    /// After the last chunk, or after a trailer line.
    EndCr,
    Trailer,
    TrailerLf,
    EndLf,
}

#[derive(Debug, Default)]
struct Chunked {
    step: Step,
    size: u64,
    /// Chunk data still to skip.
    data: u64,
    extension_bytes: u64,
    trailer_bytes: usize,
}

impl Chunked {
    /// Consumes body bytes; returns how many it took and whether the body
    /// ended there.
    fn feed(&mut self, bytes: &[u8]) -> Result<(usize, bool), Violation> {
        let mut i = 0;
        while i < bytes.len() {
            if self.data > 0 {
                let rest = bytes.len() - i;
                let n = usize::try_from(self.data).map_or(rest, |data| data.min(rest));
                self.data -= n as u64;
                i += n;
                continue;
            }
            let byte = bytes[i];
            i += 1;
            if self.step(byte)? {
                return Ok((i, true));
            }
        }
        Ok((i, false))
    }

    /// Takes one framing byte; true when it ended the body.
    fn step(&mut self, byte: u8) -> Result<bool, Violation> {
        self.step = match (self.step, byte) {
            (Step::Start, b) => {
                self.size = hex(b).ok_or(Violation::ChunkSize)?;
                Step::Size
            }
            (Step::Size, b'\t' | b' ') | (Step::SizeWhitespace, b'\t' | b' ') => {
                Step::SizeWhitespace
            }
            (Step::Size | Step::SizeWhitespace, b';') => Step::Extension,
            (Step::Size | Step::SizeWhitespace, b'\r') => Step::SizeLf,
            (Step::Size, b) => {
                let digit = hex(b).ok_or(Violation::ChunkSize)?;
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|size| size.checked_add(digit))
                    .ok_or(Violation::ChunkSizeOverflow)?;
                Step::Size
            }
            (Step::SizeWhitespace, _) => return Err(Violation::ChunkSize),
            (Step::Extension, b'\r') => Step::SizeLf,
            (Step::Extension, b'\n') => return Err(Violation::ChunkExtension),
            (Step::Extension, _) => {
                self.extension_bytes += 1;
                if self.extension_bytes >= EXTENSIONS_LIMIT {
                    return Err(Violation::ChunkExtensionsTooLong);
                }
                Step::Extension
            }
            (Step::SizeLf, b'\n') if self.size == 0 => Step::EndCr,
            (Step::SizeLf, b'\n') => {
                self.data = self.size;
                Step::DataCr
            }
            (Step::SizeLf, _) => return Err(Violation::ChunkSizeLine),
            (Step::DataCr, b'\r') => Step::DataLf,
            (Step::DataLf, b'\n') => Step::Start,
            (Step::DataCr | Step::DataLf, _) => return Err(Violation::ChunkDataEnd),
            (Step::EndCr, b'\r') => Step::EndLf,
            (Step::EndLf, b'\n') => return Ok(true),
            (Step::EndLf, _) => return Err(Violation::LastChunkEnd),
            // Trailer lines end in CRLF; a bare LF is not a line ending.
            (Step::EndCr | Step::Trailer, b'\n') => return Err(Violation::Trailer),
            (Step::Trailer, b'\r') => self.trailer_byte(Step::TrailerLf)?,
            (Step::TrailerLf, b'\n') => self.trailer_byte(Step::EndCr)?,
            (Step::TrailerLf, _) => return Err(Violation::Trailer),
            (Step::EndCr | Step::Trailer, _) => self.trailer_byte(Step::Trailer)?,
        };
        Ok(false)
    }

    /// Counts a byte of the trailer section against its limit.
    fn trailer_byte(&mut self, next: Step) -> Result<Step, Violation> {
        self.trailer_bytes += 1;
        if self.trailer_bytes >= TRAILERS_LIMIT {
            return Err(Violation::TrailersTooLarge);
        }
        Ok(next)
    }
}

fn hex(byte: u8) -> Option<u64> {
    char::from(byte).to_digit(16).map(u64::from)
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A deterministic pseudo-random sequence (no test depends on a seed
    /// being lucky: every split is checked).
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
    }

    fn feed(input: &[u8], pieces: &[usize]) -> Tracker {
        let mut tracker = Tracker::default();
        let mut rest = input;
        for &n in pieces.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, tail) = rest.split_at(n.clamp(1, rest.len()));
            tracker.observe(piece);
            rest = tail;
        }
        tracker
    }

    /// The ways `input` is cut into reads: whole, at every single position
    /// (for short inputs), in pieces of 1, 2, 3 and 7 bytes, and in random
    /// pieces.
    fn splits(input: &[u8]) -> Vec<Vec<usize>> {
        let mut all = vec![vec![input.len()], vec![1], vec![2], vec![3], vec![7]];
        if input.len() <= 4096 {
            all.extend((1..input.len()).map(|at| vec![at, input.len()]));
        }
        let mut rng = Lcg(input.len() as u64);
        for _ in 0..20 {
            all.push((0..64).map(|_| 1 + (rng.next() % 97) as usize).collect());
        }
        all
    }

    /// What the gateway would be told for `requests` requests, under every
    /// split; asserts that all splits agree.
    fn admitted(input: &[u8], requests: usize) -> Vec<Result<(), Violation>> {
        let mut seen = None;
        for pieces in splits(input) {
            let mut tracker = feed(input, &pieces);
            let outcome: Vec<_> = (0..requests).map(|_| tracker.admit()).collect();
            match &seen {
                None => seen = Some(outcome),
                Some(first) => assert_eq!(&outcome, first, "split {pieces:?}"),
            }
        }
        seen.unwrap_or_default()
    }

    const GET: &str = "GET /v1.41/_ping HTTP/1.1\r\nHost: docker\r\n\r\n";

    #[test]
    fn plain_get() {
        assert_eq!(
            admitted(GET.as_bytes(), 2),
            [Ok(()), Err(Violation::Unseen)]
        );
        let tracker = feed(GET.as_bytes(), &[1]);
        assert!(matches!(tracker.state, State::Head));
        assert!(tracker.head.is_empty());
    }

    #[test]
    fn blank_lines_and_bare_lf_heads() {
        let input = "\r\n\r\nGET /_ping HTTP/1.1\nHost: docker\n\nGET /_ping HTTP/1.1\r\n\n";
        assert_eq!(admitted(input.as_bytes(), 2), [Ok(()), Ok(())]);
    }

    #[test]
    fn sized_post_then_pipelined_get() {
        // The body looks like a smuggled request; it is skipped by count.
        let body = "GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let input = format!(
            "POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: {}\r\n\r\n{body}{GET}",
            body.len()
        );
        assert_eq!(admitted(input.as_bytes(), 2), [Ok(()), Ok(())]);
        assert_eq!(admitted(input.as_bytes(), 3)[2], Err(Violation::Unseen));
    }

    #[test]
    fn equal_duplicate_lengths_are_one_length() {
        let input = format!(
            "POST /build HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc{GET}"
        );
        assert_eq!(admitted(input.as_bytes(), 2), [Ok(()), Ok(())]);
    }

    #[test]
    fn chunked_post_with_extensions_and_trailers_then_get() {
        let input = format!(
            "POST /v1.41/build HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
             5;name=value\r\nhello\r\n\
             A \t;x;y=\"z\"\r\n0\r\n\r\n0\r\n\r\n\r\n\
             00000003\r\nabc\r\n\
             0;last\r\nX-Trailer: 1\r\nY: 2\r\n\r\n{GET}"
        );
        assert_eq!(
            admitted(input.as_bytes(), 3),
            [Ok(()), Ok(()), Err(Violation::Unseen)]
        );
        let tracker = feed(input.as_bytes(), &[1]);
        assert!(matches!(tracker.state, State::Head) && tracker.requests == 2);
    }

    #[test]
    fn transfer_encoding_split_over_lines_ends_with_the_last() {
        let input = format!(
            "POST /build HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{GET}"
        );
        assert_eq!(admitted(input.as_bytes(), 2), [Ok(()), Ok(())]);
    }

    #[test]
    fn length_with_transfer_encoding_is_refused() {
        for head in [
            "Content-Length: 5\r\nTransfer-Encoding: chunked",
            "Transfer-Encoding: chunked\r\nContent-Length: 5",
            "content-length: 5\r\nTRANSFER-ENCODING: Chunked",
            "Transfer-Encoding: gzip, chunked\r\nContent-Length: 5",
            "Content-Length: x\r\nTransfer-Encoding: chunked",
        ] {
            let bad = format!("POST /containers/create HTTP/1.1\r\n{head}\r\n\r\n0\r\n\r\n");
            assert_eq!(
                admitted(bad.as_bytes(), 2),
                [Err(Violation::LengthWithTransferEncoding); 2],
                "{head}"
            );
            // A well-framed request pipelined ahead is still served.
            let pipelined = format!("{GET}{bad}");
            assert_eq!(
                admitted(pipelined.as_bytes(), 2),
                [Ok(()), Err(Violation::LengthWithTransferEncoding)],
                "{head}"
            );
        }
    }

    #[test]
    fn bad_lengths_and_encodings_are_refused() {
        for (head, violation) in [
            (
                "Content-Length: 5\r\nContent-Length: 6",
                Violation::DifferingLengths,
            ),
            ("Content-Length: 5, 5", Violation::InvalidLength),
            ("Content-Length: +5", Violation::InvalidLength),
            (
                "Content-Length: 99999999999999999999",
                Violation::InvalidLength,
            ),
            (
                "Transfer-Encoding: gzip",
                Violation::UnchunkedTransferEncoding,
            ),
            (
                "Transfer-Encoding: chunked, gzip",
                Violation::UnchunkedTransferEncoding,
            ),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip",
                Violation::UnchunkedTransferEncoding,
            ),
            ("Bad Header", Violation::UnparsableHead),
        ] {
            let input = format!("POST /build HTTP/1.1\r\n{head}\r\n\r\n");
            assert_eq!(admitted(input.as_bytes(), 1), [Err(violation)], "{head}");
        }
        let old = "POST /build HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(
            admitted(old.as_bytes(), 1),
            [Err(Violation::TransferEncodingInHttp10)]
        );
    }

    fn chunked(body: &str) -> String {
        format!("POST /build HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}{GET}")
    }

    #[test]
    fn invalid_chunked_framing_is_refused() {
        for (body, violation) in [
            ("zz\r\n", Violation::ChunkSize),
            (";ext\r\n", Violation::ChunkSize),
            ("\r\n", Violation::ChunkSize),
            ("-5\r\n", Violation::ChunkSize),
            ("5 5\r\nhello\r\n", Violation::ChunkSize),
            ("5\nhello\r\n", Violation::ChunkSize),
            ("5\rhello\r\n", Violation::ChunkSizeLine),
            ("5;a\rhello\r\n", Violation::ChunkSizeLine),
            ("5;a\nhello\r\n", Violation::ChunkExtension),
            ("5\r\nhelloX\r\n0\r\n\r\n", Violation::ChunkDataEnd),
            ("5\r\nhello\n0\r\n\r\n", Violation::ChunkDataEnd),
            ("5\r\nhello\rX0\r\n\r\n", Violation::ChunkDataEnd),
            ("5\r\nhello\r\n0\r\n\rX", Violation::LastChunkEnd),
            ("0\r\nX: 1\nY: 2\r\n\r\n", Violation::Trailer),
            ("0\r\nX: 1\rY: 2\r\n\r\n", Violation::Trailer),
            ("0\r\n\n", Violation::Trailer),
            ("1ffffffffffffffff\r\n", Violation::ChunkSizeOverflow),
            ("100000000000000000\r\n", Violation::ChunkSizeOverflow),
        ] {
            let input = chunked(body);
            assert_eq!(
                admitted(input.as_bytes(), 2),
                [Err(violation); 2],
                "{body:?}"
            );
        }
    }

    #[test]
    fn largest_chunk_size_is_framing_not_overflow() {
        let input =
            "POST /build HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nabc";
        let tracker = feed(input.as_bytes(), &[1]);
        assert!(tracker.violation.is_none());
        assert!(matches!(&tracker.state, State::Chunked(c) if c.data == u64::MAX - 3));
    }

    #[test]
    fn chunk_extensions_and_trailers_are_bounded() {
        let long = format!(
            "1;{}\r\na\r\n0\r\n\r\n",
            "x".repeat(EXTENSIONS_LIMIT as usize)
        );
        assert_eq!(
            admitted(chunked(&long).as_bytes(), 1),
            [Err(Violation::ChunkExtensionsTooLong)]
        );
        let trailers = format!("0\r\nX: {}\r\n\r\n", "y".repeat(TRAILERS_LIMIT));
        assert_eq!(
            admitted(chunked(&trailers).as_bytes(), 1),
            [Err(Violation::TrailersTooLarge)]
        );
    }

    #[test]
    fn oversize_head_is_refused_and_the_limit_is_inclusive_below() {
        let big = format!(
            "GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "a".repeat(HEAD_LIMIT)
        );
        assert_eq!(admitted(big.as_bytes(), 1), [Err(Violation::HeadTooLarge)]);
        let tracker = feed(big.as_bytes(), &[1]);
        assert!(tracker.head.capacity() == 0, "the head buffer is released");

        let prefix = "GET / HTTP/1.1\r\nX-Big: ";
        let fits = format!(
            "{prefix}{}\r\n\r\n",
            "a".repeat(HEAD_LIMIT - prefix.len() - 5)
        );
        assert_eq!(fits.len(), HEAD_LIMIT - 1);
        assert_eq!(admitted(fits.as_bytes(), 1), [Ok(())]);
    }

    const ATTACH: &str = "POST /v1.41/containers/c/attach?stream=1&stdin=1 HTTP/1.1\r\n\
                          Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n";

    fn binary(len: usize) -> Vec<u8> {
        let mut rng = Lcg(7);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        bytes.extend_from_slice(
            b"\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        );
        bytes
    }

    #[test]
    fn upgraded_stream_is_not_inspected() {
        for len in [0, 100, EARLY_LIMIT + 1, 1 << 20] {
            let mut input = ATTACH.as_bytes().to_vec();
            input.extend(binary(len));
            let mut tracker = feed(&input, &[1000]);
            assert_eq!(tracker.admit(), Ok(()));
            assert!(tracker.violation.is_none());
            assert!(
                matches!(&tracker.state, State::Upgrade { early, .. } if early.len() <= EARLY_LIMIT)
            );
        }
        let mut input = ATTACH.as_bytes().to_vec();
        input.extend(binary(300));
        assert_eq!(admitted(&input, 1), [Ok(())]);
    }

    #[test]
    fn declined_upgrade_is_followed_by_checked_requests() {
        let bad = "POST /containers/create HTTP/1.1\r\nContent-Length: 5\r\n\
                   Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let input = format!("{ATTACH}{bad}");
        assert_eq!(
            admitted(input.as_bytes(), 2),
            [Ok(()), Err(Violation::LengthWithTransferEncoding)]
        );
        let input = format!("{ATTACH}{GET}{ATTACH}{GET}");
        assert_eq!(admitted(input.as_bytes(), 4), [Ok(()); 4]);

        let mut input = ATTACH.as_bytes().to_vec();
        input.extend(std::iter::repeat_n(b'a', EARLY_LIMIT + 1));
        assert_eq!(
            admitted(&input, 2),
            [Ok(()), Err(Violation::EarlyUpgradeData)]
        );
    }

    #[test]
    fn requests_ahead_of_an_upgrade_do_not_decide_it() {
        // GET, then an upgrade; admitting the GET must leave the upgrade's
        // stream alone.
        let mut input = format!("{GET}{ATTACH}").into_bytes();
        input.extend(binary(500));
        let mut tracker = feed(&input, &[64]);
        assert_eq!(tracker.admit(), Ok(()));
        assert_eq!(tracker.admit(), Ok(()));
        assert!(tracker.violation.is_none());
        assert!(matches!(tracker.state, State::Upgrade { .. }));
    }

    #[test]
    fn connect_may_switch_protocols() {
        let mut input = b"CONNECT docker:2375 HTTP/1.1\r\nHost: docker:2375\r\n\r\n".to_vec();
        input.extend(binary(64));
        let mut tracker = feed(&input, &[5]);
        assert_eq!(tracker.admit(), Ok(()));
        assert!(tracker.violation.is_none());
    }

    #[tokio::test]
    async fn the_wrapper_observes_reads_and_passes_writes() {
        let (client, server) = tokio::io::duplex(64);
        let (mut wrapped, check) = Framing::new(server);
        let (mut client_read, mut client_write) = tokio::io::split(client);
        let bad = "POST /containers/create HTTP/1.1\r\nContent-Length: 5\r\n\
                   Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let sent = format!("{GET}{bad}");
        let writer = tokio::spawn(async move {
            client_write.write_all(sent.as_bytes()).await.unwrap();
            client_write.shutdown().await.unwrap();
        });
        let mut read = Vec::new();
        wrapped.read_to_end(&mut read).await.unwrap();
        writer.await.unwrap();
        assert_eq!(read, format!("{GET}{bad}").as_bytes());
        assert_eq!(check.admit(), Ok(()));
        assert_eq!(check.admit(), Err(Violation::LengthWithTransferEncoding));

        wrapped
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
        wrapped.shutdown().await.unwrap();
        let mut answer = Vec::new();
        client_read.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 400 Bad Request\r\n\r\n");
    }

    /// Serves `input` with hyper over a [`Framing`]-wrapped stream, the way
    /// the server does, and returns what each request was told.
    async fn serve(input: String, requests: usize) -> Vec<Result<(), Violation>> {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Incoming;

        let (client, server) = tokio::io::duplex(1 << 16);
        let (io, check) = Framing::new(server);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
            let verdict = check.admit();
            let tx = tx.clone();
            async move {
                // Declines every upgrade; reads every body to its end.
                let body = request.into_body().collect().await.map(|b| b.to_bytes());
                let _ = tx.send((verdict, body.is_ok()));
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                    bytes::Bytes::new(),
                )))
            }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(hyper_util::rt::TokioIo::new(io), service);
        tokio::spawn(connection);
        let (mut from_server, mut to_server) = tokio::io::split(client);
        tokio::spawn(async move { to_server.write_all(input.as_bytes()).await });
        tokio::spawn(
            async move { tokio::io::copy(&mut from_server, &mut tokio::io::sink()).await },
        );
        let mut told = Vec::new();
        while told.len() < requests {
            let next = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv()).await;
            let Ok(Some((verdict, body_read))) = next else {
                break;
            };
            assert!(body_read, "hyper read request {} whole", told.len());
            told.push(verdict);
        }
        told
    }

    #[tokio::test]
    async fn hyper_sees_the_same_requests() {
        let body = "GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let sized = format!(
            "POST /containers/create HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let chunked = "POST /build HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                       5;name=value\r\nhello\r\nA \t;x\r\n0\r\n\r\n0\r\n\r\n\r\n\
                       0;last\r\nX-Trailer: 1\r\n\r\n";
        let bare = "\r\nGET /_ping HTTP/1.1\nHost: docker\n\n";
        let input = format!("{GET}{sized}{chunked}{bare}{ATTACH}{sized}{GET}");
        assert_eq!(serve(input, 7).await, [Ok(()); 7]);

        let smuggled = "POST /containers/create HTTP/1.1\r\nContent-Length: 5\r\n\
                        Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        let input = format!("{GET}{ATTACH}{smuggled}");
        assert_eq!(
            serve(input, 3).await,
            [Ok(()), Ok(()), Err(Violation::LengthWithTransferEncoding)]
        );
    }

    #[test]
    fn refusal_is_docker_shaped() {
        let denial = Violation::LengthWithTransferEncoding.denial(Some("admin".into()));
        assert_eq!(denial.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            denial.message,
            "dockgate: refused request framing: Content-Length together with Transfer-Encoding"
        );
        assert!(!denial.decision.allowed);
        assert_eq!(denial.decision.role.as_deref(), Some("admin"));
    }
}
