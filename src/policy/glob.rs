//! Operation globs: `*` matches any run of characters and `{A,B}` lists
//! alternatives, so `Container*` and `Image{List,Inspect}` name sets of
//! swagger operationIds. Braces do not nest.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    /// The brace-expanded patterns; each may contain `*`.
    alternatives: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum GlobError {
    Unbalanced(String),
    Empty,
}

impl std::fmt::Display for GlobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GlobError::Unbalanced(g) => write!(f, "unbalanced or nested braces in {g:?}"),
            GlobError::Empty => write!(f, "empty operation pattern"),
        }
    }
}

impl Glob {
    pub fn parse(source: &str) -> Result<Glob, GlobError> {
        if source.is_empty() {
            return Err(GlobError::Empty);
        }
        let unbalanced = || GlobError::Unbalanced(source.to_owned());
        let mut alternatives = vec![String::new()];
        let mut rest = source;
        while let Some(open) = rest.find(['{', '}']) {
            if rest.as_bytes()[open] == b'}' {
                return Err(unbalanced());
            }
            let close = rest[open..].find('}').ok_or_else(unbalanced)? + open;
            let inner = &rest[open + 1..close];
            if inner.contains('{') {
                return Err(unbalanced());
            }
            let prefix = &rest[..open];
            alternatives = alternatives
                .iter()
                .flat_map(|a| {
                    inner
                        .split(',')
                        .map(move |choice| format!("{a}{prefix}{choice}"))
                })
                .collect();
            rest = &rest[close + 1..];
        }
        for a in &mut alternatives {
            a.push_str(rest);
        }
        Ok(Glob { alternatives })
    }

    pub fn matches(&self, name: &str) -> bool {
        self.alternatives
            .iter()
            .any(|p| wildcard(p.as_bytes(), name.as_bytes()))
    }
}

/// Iterative `*` matching with single-star backtracking: linear in practice
/// and never recursive.
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|b| *b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(g: &str, name: &str) -> bool {
        Glob::parse(g).unwrap().matches(name)
    }

    #[test]
    fn stars_and_braces() {
        assert!(m("*", "ContainerCreate"));
        assert!(m("Container*", "ContainerCreate"));
        assert!(!m("Container*", "ImageCreate"));
        assert!(m("Image{List,Inspect}", "ImageList"));
        assert!(m("Image{List,Inspect}", "ImageInspect"));
        assert!(!m("Image{List,Inspect}", "ImageInspectX"));
        assert!(m("{Container,Exec}*{Start,Inspect}", "ExecInspect"));
        assert!(m("*Prune", "ContainerPrune"));
        assert!(!m("ContainerList", "ContainerListX"));
        assert!(m("C*r*e", "ContainerCreate"));
    }

    #[test]
    fn malformed_patterns() {
        assert!(Glob::parse("").is_err());
        assert!(Glob::parse("Image{List").is_err());
        assert!(Glob::parse("Image}List").is_err());
        assert!(Glob::parse("Image{{List}}").is_err());
    }
}
