//! Where each HTTP/1.1 request of a client connection starts and ends, as
//! hyper's server frames them.
//!
//! hyper accepts request heads that other HTTP parsers read differently (it
//! drops a `Content-Length` sent together with `Transfer-Encoding`, RFC 9112
//! §6.3), and a proxy that forwards such a request cannot tell. [`Tracker`]
//! is fed a connection's bytes as hyper reads them, in pieces of any size,
//! and follows its request messages — head, then a sized or chunked body,
//! then the next head — with the grammar hyper applies (httparse for heads,
//! hyper's limits). The gateway asks [`Tracker::admit`] once per request
//! hyper hands it, and refuses what is badly framed.
//!
//! Refused ([`Error`]): `Content-Length` with `Transfer-Encoding`; differing
//! or invalid `Content-Length` values; a `Transfer-Encoding` whose final
//! coding is not `chunked` (or any in HTTP/1.0); an unparsable or oversized
//! head; invalid chunked framing (size line, extensions, CRLF after data,
//! last chunk, trailers). Requests pipelined ahead of the violation are well
//! framed and still admitted; the violating request and every later one are
//! refused.
//!
//! Upgrades: after a request that may switch protocols (an `Upgrade` header
//! or CONNECT, the requests hyper may upgrade), the bytes that follow are
//! either a raw stream or, if the daemon declined, the next request. They
//! are kept aside (up to 64 KiB, then only counted) until another request is
//! admitted on the connection, which proves there was no upgrade; they are
//! then checked as request bytes. An upgraded connection never asks again,
//! so its stream is never parsed.
//!
//! Body data is skipped by count; only head bytes are buffered.

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
pub enum Error {
    /// `Content-Length` together with `Transfer-Encoding`.
    LengthWithTransferEncoding,
    /// `Content-Length` headers with differing values.
    DifferingLengths,
    /// A `Content-Length` that is not ASCII digits, or overflows.
    InvalidLength,
    /// A `Transfer-Encoding` whose final coding is not `chunked`.
    UnchunkedTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request.
    TransferEncodingInHttp10,
    /// A head httparse refuses.
    UnparsableHead,
    /// A head larger than hyper's read buffer (408 KiB).
    HeadTooLarge,
    /// A chunk size that is not hex digits.
    ChunkSize,
    /// A chunk size beyond 64 bits.
    ChunkSizeOverflow,
    /// A chunk size line not ended by CRLF.
    ChunkSizeLine,
    /// A chunk extension ended by a bare LF.
    ChunkExtension,
    /// Chunk extensions longer than 16 KiB in one body.
    ChunkExtensionsTooLong,
    /// Chunk data not followed by CRLF.
    ChunkDataEnd,
    /// The last chunk not followed by CRLF.
    LastChunkEnd,
    /// A trailer line not ended by CRLF.
    Trailer,
    /// Chunked trailers larger than 16 KiB.
    TrailersTooLarge,
    /// More than 64 KiB behind an upgrade the daemon declined.
    EarlyUpgradeData,
    /// A request the tracker never saw a head for; the two parsers disagree.
    Unseen,
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

/// Follows the request messages of one client connection.
#[derive(Debug)]
pub struct Tracker {
    state: State,
    head: Vec<u8>,
    /// Heads completed so far; the index of the request being read.
    requests: u64,
    /// Requests admitted (or refused) so far.
    admitted: u64,
    /// Whether the current message may switch protocols.
    upgrade: bool,
    /// The first violation and the index of the request it belongs to.
    violation: Option<(u64, Error)>,
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
    /// Takes the next bytes the client sent, as hyper reads them.
    pub fn observe(&mut self, mut bytes: &[u8]) {
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
        self.head
            .extend_from_slice(bytes.get(..take).unwrap_or_default());
        if ends_head(&self.head, old.saturating_sub(2)) {
            match parse_head(&self.head) {
                Ok(Some(head)) => {
                    self.head.clear();
                    let Some(used) = head.len.checked_sub(old) else {
                        self.violate(self.requests, Error::UnparsableHead);
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
            self.violate(self.requests, Error::HeadTooLarge);
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

    fn violate(&mut self, request: u64, violation: Error) {
        self.violation = Some((request, violation));
        self.state = State::Stopped;
        self.head = Vec::new();
    }

    /// Admits the connection's next request, or says why it is refused.
    /// Must be called exactly once per request hyper parsed, in order.
    pub fn admit(&mut self) -> Result<(), Error> {
        let request = self.admitted;
        self.admitted += 1;
        if request >= self.requests {
            if let State::Upgrade { early, overflowed } = &mut self.state {
                // hyper parsed another request after the possible upgrade,
                // so it did not happen: what followed it is request bytes.
                let early = std::mem::take(early);
                if *overflowed {
                    self.violate(self.requests, Error::EarlyUpgradeData);
                } else {
                    self.state = State::Head;
                    self.observe(&early);
                }
            }
        }
        match self.violation {
            Some((at, violation)) if request >= at => Err(violation),
            _ if request >= self.requests => Err(Error::Unseen),
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
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Error> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(Error::UnparsableHead),
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
                    length_error.get_or_insert(Error::InvalidLength);
                }
                (Some(n), Some(prev)) if n != prev => {
                    length_error.get_or_insert(Error::DifferingLengths);
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
            return Err(Error::LengthWithTransferEncoding);
        }
        if request.version != Some(1) {
            return Err(Error::TransferEncodingInHttp10);
        }
        if !chunked {
            return Err(Error::UnchunkedTransferEncoding);
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
    fn feed(&mut self, bytes: &[u8]) -> Result<(usize, bool), Error> {
        let mut i = 0;
        while let Some(&byte) = bytes.get(i) {
            if self.data > 0 {
                let rest = bytes.len() - i;
                let n = usize::try_from(self.data).map_or(rest, |data| data.min(rest));
                self.data -= n as u64;
                i += n;
                continue;
            }
            i += 1;
            if self.step(byte)? {
                return Ok((i, true));
            }
        }
        Ok((i, false))
    }

    /// Takes one framing byte; true when it ended the body.
    fn step(&mut self, byte: u8) -> Result<bool, Error> {
        self.step = match (self.step, byte) {
            (Step::Start, b) => {
                self.size = hex(b).ok_or(Error::ChunkSize)?;
                Step::Size
            }
            (Step::Size, b'\t' | b' ') | (Step::SizeWhitespace, b'\t' | b' ') => {
                Step::SizeWhitespace
            }
            (Step::Size | Step::SizeWhitespace, b';') => Step::Extension,
            (Step::Size | Step::SizeWhitespace, b'\r') => Step::SizeLf,
            (Step::Size, b) => {
                let digit = hex(b).ok_or(Error::ChunkSize)?;
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|size| size.checked_add(digit))
                    .ok_or(Error::ChunkSizeOverflow)?;
                Step::Size
            }
            (Step::SizeWhitespace, _) => return Err(Error::ChunkSize),
            (Step::Extension, b'\r') => Step::SizeLf,
            (Step::Extension, b'\n') => return Err(Error::ChunkExtension),
            (Step::Extension, _) => {
                self.extension_bytes += 1;
                if self.extension_bytes >= EXTENSIONS_LIMIT {
                    return Err(Error::ChunkExtensionsTooLong);
                }
                Step::Extension
            }
            (Step::SizeLf, b'\n') if self.size == 0 => Step::EndCr,
            (Step::SizeLf, b'\n') => {
                self.data = self.size;
                Step::DataCr
            }
            (Step::SizeLf, _) => return Err(Error::ChunkSizeLine),
            (Step::DataCr, b'\r') => Step::DataLf,
            (Step::DataLf, b'\n') => Step::Start,
            (Step::DataCr | Step::DataLf, _) => return Err(Error::ChunkDataEnd),
            (Step::EndCr, b'\r') => Step::EndLf,
            (Step::EndLf, b'\n') => return Ok(true),
            (Step::EndLf, _) => return Err(Error::LastChunkEnd),
            // Trailer lines end in CRLF; a bare LF is not a line ending.
            (Step::EndCr | Step::Trailer, b'\n') => return Err(Error::Trailer),
            (Step::Trailer, b'\r') => self.trailer_byte(Step::TrailerLf)?,
            (Step::TrailerLf, b'\n') => self.trailer_byte(Step::EndCr)?,
            (Step::TrailerLf, _) => return Err(Error::Trailer),
            (Step::EndCr | Step::Trailer, _) => self.trailer_byte(Step::Trailer)?,
        };
        Ok(false)
    }

    /// Counts a byte of the trailer section against its limit.
    fn trailer_byte(&mut self, next: Step) -> Result<Step, Error> {
        self.trailer_bytes += 1;
        if self.trailer_bytes >= TRAILERS_LIMIT {
            return Err(Error::TrailersTooLarge);
        }
        Ok(next)
    }
}

fn hex(byte: u8) -> Option<u64> {
    char::from(byte).to_digit(16).map(u64::from)
}

#[cfg(test)]
mod tests {
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
    fn admitted(input: &[u8], requests: usize) -> Vec<Result<(), Error>> {
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
        assert_eq!(admitted(GET.as_bytes(), 2), [Ok(()), Err(Error::Unseen)]);
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
        assert_eq!(admitted(input.as_bytes(), 3)[2], Err(Error::Unseen));
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
            [Ok(()), Ok(()), Err(Error::Unseen)]
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
                [Err(Error::LengthWithTransferEncoding); 2],
                "{head}"
            );
            // A well-framed request pipelined ahead is still served.
            let pipelined = format!("{GET}{bad}");
            assert_eq!(
                admitted(pipelined.as_bytes(), 2),
                [Ok(()), Err(Error::LengthWithTransferEncoding)],
                "{head}"
            );
        }
    }

    #[test]
    fn bad_lengths_and_encodings_are_refused() {
        for (head, violation) in [
            (
                "Content-Length: 5\r\nContent-Length: 6",
                Error::DifferingLengths,
            ),
            ("Content-Length: 5, 5", Error::InvalidLength),
            ("Content-Length: +5", Error::InvalidLength),
            ("Content-Length: 99999999999999999999", Error::InvalidLength),
            ("Transfer-Encoding: gzip", Error::UnchunkedTransferEncoding),
            (
                "Transfer-Encoding: chunked, gzip",
                Error::UnchunkedTransferEncoding,
            ),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip",
                Error::UnchunkedTransferEncoding,
            ),
            ("Bad Header", Error::UnparsableHead),
        ] {
            let input = format!("POST /build HTTP/1.1\r\n{head}\r\n\r\n");
            assert_eq!(admitted(input.as_bytes(), 1), [Err(violation)], "{head}");
        }
        let old = "POST /build HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert_eq!(
            admitted(old.as_bytes(), 1),
            [Err(Error::TransferEncodingInHttp10)]
        );
    }

    fn chunked(body: &str) -> String {
        format!("POST /build HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}{GET}")
    }

    #[test]
    fn invalid_chunked_framing_is_refused() {
        for (body, violation) in [
            ("zz\r\n", Error::ChunkSize),
            (";ext\r\n", Error::ChunkSize),
            ("\r\n", Error::ChunkSize),
            ("-5\r\n", Error::ChunkSize),
            ("5 5\r\nhello\r\n", Error::ChunkSize),
            ("5\nhello\r\n", Error::ChunkSize),
            ("5\rhello\r\n", Error::ChunkSizeLine),
            ("5;a\rhello\r\n", Error::ChunkSizeLine),
            ("5;a\nhello\r\n", Error::ChunkExtension),
            ("5\r\nhelloX\r\n0\r\n\r\n", Error::ChunkDataEnd),
            ("5\r\nhello\n0\r\n\r\n", Error::ChunkDataEnd),
            ("5\r\nhello\rX0\r\n\r\n", Error::ChunkDataEnd),
            ("5\r\nhello\r\n0\r\n\rX", Error::LastChunkEnd),
            ("0\r\nX: 1\nY: 2\r\n\r\n", Error::Trailer),
            ("0\r\nX: 1\rY: 2\r\n\r\n", Error::Trailer),
            ("0\r\n\n", Error::Trailer),
            ("1ffffffffffffffff\r\n", Error::ChunkSizeOverflow),
            ("100000000000000000\r\n", Error::ChunkSizeOverflow),
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
            [Err(Error::ChunkExtensionsTooLong)]
        );
        let trailers = format!("0\r\nX: {}\r\n\r\n", "y".repeat(TRAILERS_LIMIT));
        assert_eq!(
            admitted(chunked(&trailers).as_bytes(), 1),
            [Err(Error::TrailersTooLarge)]
        );
    }

    #[test]
    fn oversize_head_is_refused_and_the_limit_is_inclusive_below() {
        let big = format!(
            "GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "a".repeat(HEAD_LIMIT)
        );
        assert_eq!(admitted(big.as_bytes(), 1), [Err(Error::HeadTooLarge)]);
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
            [Ok(()), Err(Error::LengthWithTransferEncoding)]
        );
        let input = format!("{ATTACH}{GET}{ATTACH}{GET}");
        assert_eq!(admitted(input.as_bytes(), 4), [Ok(()); 4]);

        let mut input = ATTACH.as_bytes().to_vec();
        input.extend(std::iter::repeat_n(b'a', EARLY_LIMIT + 1));
        assert_eq!(admitted(&input, 2), [Ok(()), Err(Error::EarlyUpgradeData)]);
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
}
