//! Reading a classic build's context tar as it streams, to check the
//! Dockerfile inside it ([`super::build::dockerfile`]).
//!
//! dockerd unpacks the whole context before it parses the Dockerfile or
//! runs a step (moby 20.10 `builder/dockerfile/builder.go:Build` calls
//! `remotecontext.Detect`, whose `FromArchive` untars the stream to its
//! end; only then `withDockerfileFromContext` opens the Dockerfile). So a
//! context whose bytes stop before the Dockerfile is complete fails the
//! build before anything is fetched. The invariant this module keeps for
//! the pipeline: **the daemon only ever receives a prefix of the context
//! in which every file it could read as the Dockerfile was complete and
//! checked.** [`ContextScanner::holding`] says when the bytes scanned so
//! far must not be forwarded yet.
//!
//! Headers are read as Go's `archive/tar` reads them (USTAR, PAX and GNU
//! long names; PAX `path` and `size`; header-only types carry no data), and
//! entries are placed as moby's `Unpack` places them (`filepath.Clean`,
//! then the file system, which follows symlinks in parent directories).
//! What could make the two disagree is refused: compressed contexts,
//! sparse or unknown entry types, base-256 numbers, STAR headers, old-style
//! entries named like directories, symlinks or hard links on the
//! Dockerfile's path, and any entry below a link.

use super::build::{self, clean};
use super::inspect::Violation;

const BLOCK: usize = 512;

/// Leading bytes by which moby's `DetectCompression` recognizes bzip2,
/// gzip, xz and (on master) zstd.
const COMPRESSED: [&[u8]; 4] = [
    &[0x42, 0x5A, 0x68],
    &[0x1F, 0x8B, 0x08],
    &[0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00],
    &[0x28, 0xB5, 0x2F, 0xFD],
];

#[derive(Debug)]
pub struct ContextScanner {
    /// Where the daemon may read the Dockerfile from.
    dockerfiles: Vec<String>,
    /// Largest Dockerfile read.
    limit: usize,
    /// Symbolic and hard links unpacked so far.
    links: Vec<String>,
    header: Vec<u8>,
    state: State,
    /// PAX and GNU records for the next entry.
    next: Pending,
    blocks: u64,
    checked: bool,
}

#[derive(Debug)]
enum State {
    Header,
    /// One zero block seen: a second ends the archive.
    Zero,
    Data {
        remaining: u64,
        padding: u64,
        keep: Option<(Keep, Vec<u8>)>,
    },
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Pax,
    LongName,
    Dockerfile,
}

#[derive(Debug, Default)]
struct Pending {
    path: Option<String>,
    size: Option<u64>,
    long_name: Option<String>,
}

fn context(what: impl Into<String>) -> Violation {
    Violation {
        rule: "build.context",
        what: what.into(),
    }
}

impl ContextScanner {
    pub fn new(dockerfiles: Vec<String>, limit: usize) -> ContextScanner {
        ContextScanner {
            dockerfiles,
            limit,
            links: Vec::new(),
            header: Vec::with_capacity(BLOCK),
            state: State::Header,
            next: Pending::default(),
            blocks: 0,
            checked: false,
        }
    }

    /// Whether the bytes scanned so far must be held back: the first block
    /// (it decides compression) or a Dockerfile is incomplete.
    pub fn holding(&self) -> bool {
        let first = self.blocks == 0 && !self.header.is_empty();
        let dockerfile = matches!(
            &self.state,
            State::Data {
                keep: Some((Keep::Dockerfile, _)),
                ..
            }
        );
        first || dockerfile
    }

    /// Whether the answer for an ordinary context is known: a Dockerfile
    /// was checked, or the archive ended.
    pub fn settled(&self) -> bool {
        self.checked || matches!(self.state, State::End)
    }

    /// Scans the next bytes of the context.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Violation> {
        while !data.is_empty() {
            match &mut self.state {
                State::End => return Ok(()),
                State::Header | State::Zero => {
                    let take = (BLOCK - self.header.len()).min(data.len());
                    self.header.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if self.header.len() == BLOCK {
                        let block = std::mem::take(&mut self.header);
                        self.block(&block)?;
                        self.blocks += 1;
                    }
                }
                State::Data {
                    remaining,
                    padding,
                    keep,
                } => {
                    if *remaining > 0 {
                        let take = (*remaining).min(data.len() as u64) as usize;
                        if let Some((_, kept)) = keep {
                            kept.extend_from_slice(&data[..take]);
                        }
                        *remaining -= take as u64;
                        data = &data[take..];
                        if *remaining == 0 {
                            if let Some((what, kept)) = keep.take() {
                                self.kept(what, &kept)?;
                            }
                        }
                    } else {
                        let take = (*padding).min(data.len() as u64);
                        *padding -= take;
                        data = &data[take as usize..];
                    }
                    if let State::Data {
                        remaining: 0,
                        padding: 0,
                        ..
                    } = self.state
                    {
                        self.state = State::Header;
                    }
                }
            }
        }
        Ok(())
    }

    /// The context ended: refuses what dockgate could not read to its end
    /// (the daemon fails on a cut archive too, but a compressed one shorter
    /// than a block would still build).
    pub fn finish(&self) -> Result<(), Violation> {
        if self.blocks == 0 && !self.header.is_empty() {
            compression(&self.header)?;
        }
        match &self.state {
            State::Header if self.header.is_empty() => Ok(()),
            State::Zero | State::End => Ok(()),
            _ => Err(context("send a context that ends inside a tar entry")),
        }
    }

    fn block(&mut self, block: &[u8]) -> Result<(), Violation> {
        if self.blocks == 0 {
            compression(block)?;
        }
        if block.iter().all(|b| *b == 0) {
            self.state = match self.state {
                State::Zero => State::End,
                _ => State::Zero,
            };
            return Ok(());
        }
        if matches!(self.state, State::Zero) {
            return Err(context("send a context with data after a zero block"));
        }
        let header = Header::parse(block)?;
        let typeflag = header.typeflag;
        // Go's reader: link, device, directory and FIFO headers carry no
        // data whatever their size says; PAX `size` applies to the entry
        // after the PAX header, not to meta headers.
        let size = match typeflag {
            b'1'..=b'6' => 0,
            b'x' | b'L' | b'K' | b'g' => header.size,
            _ => self.next.size.unwrap_or(header.size),
        };
        let keep = match typeflag {
            b'x' => Some(Keep::Pax),
            b'L' => Some(Keep::LongName),
            b'K' => None,
            b'g' => {
                self.next = Pending::default();
                None
            }
            b'0' | 0 | b'1'..=b'6' => {
                let mut name = header.name;
                if let Some(path) = self.next.path.take() {
                    name = path;
                }
                if let Some(long) = self.next.long_name.take() {
                    name = long;
                }
                self.next = Pending::default();
                // Go versions differ on whether this is a directory, which
                // carries no data.
                if typeflag == 0 && name.ends_with('/') {
                    return Err(context(format!(
                        "send an old-style (type NUL) tar entry named like a directory: {name}"
                    )));
                }
                self.entry(typeflag, &name, size)?
            }
            other => {
                return Err(context(format!(
                    "send a context with tar entries of type {:?}",
                    other as char
                )))
            }
        };
        if keep.is_some_and(|k| k != Keep::Dockerfile) && size > self.limit as u64 {
            return Err(context("send a context with tar headers this large"));
        }
        let padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
        self.state = State::Data {
            remaining: size,
            padding,
            keep: keep.map(|k| (k, Vec::new())),
        };
        if size == 0 {
            if let State::Data { keep, .. } = &mut self.state {
                if let Some((what, kept)) = keep.take() {
                    self.kept(what, &kept)?;
                }
            }
            self.state = State::Header;
        }
        Ok(())
    }

    /// Checks an entry the daemon unpacks; whether its data must be read.
    fn entry(&mut self, typeflag: u8, name: &str, size: u64) -> Result<Option<Keep>, Violation> {
        let path = clean(name).trim_start_matches('/').to_owned();
        let path = if path == "." { String::new() } else { path };
        if path == ".." || path.starts_with("../") {
            return Err(context(format!(
                "send a context entry outside the context: {name}"
            )));
        }
        if self.links.iter().any(|link| below(link, &path)) {
            return Err(context(format!(
                "send a context entry below a link: {name}"
            )));
        }
        let dockerfile = self.dockerfiles.contains(&path);
        let on_path = self.dockerfiles.iter().any(|d| below(&path, d));
        match typeflag {
            // A hard link to a symlink is a symlink too (moby links with
            // os.Link, which does not follow it): both are recorded.
            b'1' | b'2' => {
                if dockerfile || on_path {
                    return Err(context(format!(
                        "send a link as the Dockerfile or on its path: {name}"
                    )));
                }
                self.links.push(path);
                Ok(None)
            }
            b'0' | 0 if dockerfile => {
                if size > self.limit as u64 {
                    return Err(Violation {
                        rule: "build.dockerfile",
                        what: format!("build a Dockerfile larger than {} bytes", self.limit),
                    });
                }
                Ok(Some(Keep::Dockerfile))
            }
            _ => Ok(None),
        }
    }

    fn kept(&mut self, what: Keep, data: &[u8]) -> Result<(), Violation> {
        match what {
            Keep::Dockerfile => {
                build::dockerfile(data)?;
                self.checked = true;
            }
            Keep::Pax => {
                let records = pax(data)?;
                self.next.path = records.path;
                self.next.size = records.size;
            }
            Keep::LongName => self.next.long_name = Some(c_string(data)?),
        }
        Ok(())
    }
}

/// Whether `path` lies strictly below `dir` (`""` is the context root).
fn below(dir: &str, path: &str) -> bool {
    if dir.is_empty() {
        return !path.is_empty();
    }
    path.strip_prefix(dir)
        .is_some_and(|rest| rest.starts_with('/'))
}

fn compression(first: &[u8]) -> Result<(), Violation> {
    if COMPRESSED.iter().any(|magic| first.starts_with(magic)) {
        return Err(context(
            "send a compressed build context (dockgate reads it as it streams; send a plain tar)",
        ));
    }
    Ok(())
}

struct Header {
    name: String,
    size: u64,
    typeflag: u8,
}

impl Header {
    /// Go's `Reader.readHeader`, for the fields that place an entry.
    fn parse(block: &[u8]) -> Result<Header, Violation> {
        let unreadable = || context("send a context whose tar headers dockgate cannot read");
        let stored = octal(&block[148..156]).ok_or_else(unreadable)?;
        let unsigned: u64 = block
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(*b)
                }
            })
            .sum();
        let signed: i64 = block
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    i64::from(*b as i8)
                }
            })
            .sum();
        if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
            return Err(unreadable());
        }
        let magic = &block[257..263];
        let ustar = magic == b"ustar\0";
        if ustar && &block[508..512] == b"tar\0" {
            return Err(context("send a context in the STAR tar format"));
        }
        let mut name = c_string(&block[..100]).map_err(|_| unreadable())?;
        if ustar {
            let prefix = c_string(&block[345..500]).map_err(|_| unreadable())?;
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        let size = octal(&block[124..136]).ok_or_else(|| {
            context("send a context with tar sizes dockgate cannot read (base-256)")
        })?;
        Ok(Header {
            name,
            size,
            typeflag: block[156],
        })
    }
}

/// Go's `parseOctal`: NULs and spaces trimmed at both ends, empty is 0.
fn octal(field: &[u8]) -> Option<u64> {
    let field = field
        .iter()
        .position(|b| !matches!(b, 0 | b' '))
        .map_or(&[][..], |start| &field[start..]);
    let end = field
        .iter()
        .rposition(|b| !matches!(b, 0 | b' '))
        .map_or(0, |i| i + 1);
    let field = &field[..end];
    if field.is_empty() {
        return Some(0);
    }
    let text = std::str::from_utf8(field).ok()?;
    u64::from_str_radix(text, 8).ok()
}

/// Text up to the first NUL; names must be UTF-8 to be compared.
fn c_string(field: &[u8]) -> Result<String, Violation> {
    let end = field.iter().position(|b| *b == 0).unwrap_or(field.len());
    String::from_utf8(field[..end].to_vec())
        .map_err(|_| context("send a context with tar names that are not UTF-8"))
}

/// Go's `parsePAX`: `"%d %s=%s\n"` records; `path` and `size` place the
/// next entry; sparse files are refused.
fn pax(mut data: &[u8]) -> Result<Pending, Violation> {
    let bad = || context("send a context with PAX records dockgate cannot read");
    let mut next = Pending::default();
    while !data.is_empty() {
        let space = data.iter().position(|b| *b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&data[..space])
            .ok()
            .and_then(|n| n.parse().ok())
            .ok_or_else(bad)?;
        if len <= space + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad());
        }
        let record = &data[space + 1..len - 1];
        data = &data[len..];
        let eq = record.iter().position(|b| *b == b'=').ok_or_else(bad)?;
        let key = std::str::from_utf8(&record[..eq]).map_err(|_| bad())?;
        let value = std::str::from_utf8(&record[eq + 1..]).map_err(|_| bad())?;
        if key.starts_with("GNU.sparse.") {
            return Err(context("send a context with sparse files"));
        }
        match key {
            "path" => next.path = Some(value.to_owned()),
            "size" => next.size = Some(value.parse().map_err(|_| bad())?),
            _ => {}
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, typeflag: u8, size: usize, link: &str) -> Vec<u8> {
        let mut h = vec![0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        h[156] = typeflag;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    fn file(name: &str, typeflag: u8, data: &[u8], link: &str) -> Vec<u8> {
        let mut out = header(name, typeflag, data.len(), link);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        out
    }

    fn end() -> Vec<u8> {
        vec![0u8; 2 * BLOCK]
    }

    fn scan(parts: &[Vec<u8>], dockerfile: &str, chunk: usize) -> Result<bool, &'static str> {
        let query = dockgate_wire::query::Query::parse(Some(dockerfile)).unwrap();
        let mut s = ContextScanner::new(build::dockerfile_paths(&query), 1 << 20);
        let all = parts.concat();
        for piece in all.chunks(chunk) {
            s.feed(piece).map_err(|v| v.rule)?;
        }
        s.finish().map_err(|v| v.rule)?;
        Ok(s.settled())
    }

    const SAFE: &[u8] = b"FROM a\nADD x /x\n";
    const REMOTE: &[u8] = b"FROM a\nADD http://127.0.0.1:9/x /x\n";

    #[test]
    fn the_dockerfile_is_checked_at_any_chunking() {
        for chunk in [1, 7, 512, 4096] {
            let ctx = [
                file("a.txt", b'0', b"hello", ""),
                file("Dockerfile", b'0', REMOTE, ""),
                end(),
            ];
            assert_eq!(scan(&ctx, "", chunk), Err("build.add-remote"), "{chunk}");
            let ctx = [file("./Dockerfile", b'0', SAFE, ""), end()];
            assert_eq!(scan(&ctx, "", chunk), Ok(true));
        }
        let lower = [file("dockerfile", b'0', REMOTE, ""), end()];
        assert_eq!(scan(&lower, "", 100), Err("build.add-remote"));
        let named = [file("ci/Build.df", b'0', REMOTE, ""), end()];
        assert_eq!(
            scan(&named, "dockerfile=ci/./Build.df", 100),
            Err("build.add-remote")
        );
        assert_eq!(scan(&named, "", 100), Ok(true), "not the Dockerfile");
        let twice = [
            file("Dockerfile", b'0', SAFE, ""),
            file("a/../Dockerfile", b'0', REMOTE, ""),
            end(),
        ];
        assert_eq!(scan(&twice, "", 100), Err("build.add-remote"));
    }

    #[test]
    fn links_that_could_redirect_the_dockerfile_are_refused() {
        let cases = [
            vec![file("Dockerfile", b'2', b"", "evil"), end()],
            vec![file("Dockerfile", b'1', b"", "evil"), end()],
            vec![file("sub", b'2', b"", "other"), end()],
            vec![
                file("x", b'2', b"", "."),
                file("x/Dockerfile", b'0', SAFE, ""),
                end(),
            ],
            vec![
                file("x", b'2', b"", "."),
                file("x/y/z", b'0', b"", ""),
                end(),
            ],
        ];
        for (i, ctx) in cases.iter().enumerate() {
            let dockerfile = if i == 2 {
                "dockerfile=sub/Dockerfile"
            } else {
                ""
            };
            assert_eq!(scan(ctx, dockerfile, 512), Err("build.context"), "case {i}");
        }
        let unrelated = [
            file("link", b'2', b"", "target"),
            file("Dockerfile", b'0', SAFE, ""),
            end(),
        ];
        assert_eq!(scan(&unrelated, "", 512), Ok(true));
    }

    #[test]
    fn pax_and_gnu_names_place_the_entry() {
        let record = "path=Dockerfile\n";
        let record = format!("{} {record}", record.len() + 3);
        let ctx = [
            file("PaxHeaders/x", b'x', record.as_bytes(), ""),
            file("innocent", b'0', REMOTE, ""),
            end(),
        ];
        assert_eq!(scan(&ctx, "", 100), Err("build.add-remote"));
        let ctx = [
            file("././@LongLink", b'L', b"Dockerfile\0", ""),
            file("innocent", b'0', REMOTE, ""),
            end(),
        ];
        assert_eq!(scan(&ctx, "", 100), Err("build.add-remote"));
        let sparse = "GNU.sparse.major=1\n";
        let sparse = format!("{} {sparse}", sparse.len() + 3);
        let ctx = [
            file("p", b'x', sparse.as_bytes(), ""),
            file("a", b'0', b"x", ""),
            end(),
        ];
        assert_eq!(scan(&ctx, "", 100), Err("build.context"));
    }

    #[test]
    fn unreadable_contexts_are_refused() {
        let gzip = [vec![0x1F, 0x8B, 0x08, 0, 0, 0]];
        assert_eq!(scan(&gzip, "", 100), Err("build.context"));
        let mut bad_sum = file("Dockerfile", b'0', SAFE, "");
        bad_sum[0] = b'X';
        assert_eq!(scan(&[bad_sum], "", 100), Err("build.context"));
        let cut = file("Dockerfile", b'0', SAFE, "");
        assert_eq!(scan(&[cut[..600].to_vec()], "", 100), Err("build.context"));
        assert_eq!(scan(&[], "", 100), Ok(false));
        let sparse = [file("Dockerfile", b'S', SAFE, ""), end()];
        assert_eq!(scan(&sparse, "", 100), Err("build.context"));
    }

    #[test]
    fn holding_covers_the_first_block_and_the_dockerfile() {
        let ctx = [
            file("a", b'0', b"x", ""),
            file("Dockerfile", b'0', SAFE, ""),
            end(),
        ]
        .concat();
        let mut s = ContextScanner::new(vec!["Dockerfile".into()], 1 << 20);
        s.feed(&ctx[..100]).unwrap();
        assert!(s.holding());
        s.feed(&ctx[100..1024 + 512 + 3]).unwrap();
        assert!(s.holding(), "inside the Dockerfile");
        s.feed(&ctx[1024 + 512 + 3..]).unwrap();
        assert!(!s.holding() && s.settled());
    }
}
