//! Image references as dockerd builds them from request parameters.
//!
//! Pull, push and tag take a name and a separate `tag` parameter. dockerd
//! parses the name (Go's `reference.ParseNormalizedNamed`) and then applies
//! the parameter with `WithTag` (or `WithDigest` for a digest), which
//! *replaces* any tag or digest the name carried. A reference left with
//! neither means every tag of the repository to pull and push. Checking
//! ownership of anything but the reference dockerd acts on checks the wrong
//! image.

use dockgate_wire::query::Query;

/// The reference dockerd acts on for `name` and a `tag` parameter.
pub fn with_tag(name: &str, tag: Option<&str>) -> String {
    match tag {
        Some(tag) if !tag.is_empty() => {
            let separator = if tag.contains(':') { '@' } else { ':' };
            format!("{}{separator}{tag}", repository(name))
        }
        _ => name.to_owned(),
    }
}

/// `name` without its tag or digest.
pub fn repository(name: &str) -> &str {
    let name = name.split('@').next().unwrap_or(name);
    match name.rsplit_once(':') {
        // A ':' before the last '/' is a registry's port, not a tag.
        Some((repo, tag)) if !tag.contains('/') => repo,
        _ => name,
    }
}

/// Whether a reference names one image rather than a whole repository.
pub fn names_one_image(reference: &str) -> bool {
    repository(reference).len() != reference.len()
}

/// The canonical form of an image reference, as dockerd's reference store
/// keys tags (`ParseNormalizedNamed` then `TagNameOnly`): `alpine` is
/// `docker.io/library/alpine:latest`, `localhost:5000/app` keeps its
/// registry and gets `:latest`. `None` for what is not a reference by name
/// (an image ID, an ID prefix, an invalid name), which dockerd would not
/// resolve through a tag either.
pub fn normalize(reference: &str) -> Option<String> {
    if reference.is_empty() || reference.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (name, suffix) = match reference.find('@') {
        Some(at) => reference.split_at(at),
        None => match reference.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, &reference[repo.len()..]),
            _ => (reference, ""),
        },
    };
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest.to_owned())
        }
        _ => ("docker.io", name.to_owned()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io"
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let valid_path = !path.is_empty()
        && path.split('/').all(|component| {
            !component.is_empty()
                && component.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
                })
        });
    if !valid_path {
        return None;
    }
    let suffix = if suffix.is_empty() { ":latest" } else { suffix };
    Some(format!("{domain}/{path}{suffix}"))
}

/// The tags (normalized) a request of `operation` creates: build `t`,
/// tag `repo` and `tag`, pull `fromImage` and `tag`.
pub fn tags_created(operation: &str, query: &Query) -> Vec<String> {
    match operation {
        "ImageBuild" => query.all("t").filter_map(normalize).collect(),
        "ImageTag" => normalize(&with_tag(
            query.get("repo").unwrap_or_default(),
            query.get("tag"),
        ))
        .into_iter()
        .collect(),
        "ImageCreate" if query.get("fromSrc").is_none() => {
            let image = query.get("fromImage").unwrap_or_default();
            let image = image.strip_suffix(':').unwrap_or(image);
            normalize(&with_tag(image, query.get("tag")))
                .into_iter()
                .collect()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_normalize_as_the_daemon_keys_tags() {
        for (given, canonical) in [
            ("alpine", "docker.io/library/alpine:latest"),
            ("alpine:3", "docker.io/library/alpine:3"),
            ("library/alpine", "docker.io/library/alpine:latest"),
            ("docker.io/alpine:3", "docker.io/library/alpine:3"),
            (
                "index.docker.io/library/alpine",
                "docker.io/library/alpine:latest",
            ),
            ("user/app:1", "docker.io/user/app:1"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("localhost/app:2", "localhost/app:2"),
            (
                "registry.example:5000/team/app:1",
                "registry.example:5000/team/app:1",
            ),
            ("app@sha256:abc", "docker.io/library/app@sha256:abc"),
        ] {
            assert_eq!(normalize(given).as_deref(), Some(canonical), "{given}");
        }
        for not_a_name in ["", "3f2a", "App", "a//b", "/x"] {
            assert_eq!(normalize(not_a_name), None, "{not_a_name}");
        }
    }

    #[test]
    fn tag_parameters_replace_the_tag_as_dockerd_does() {
        assert_eq!(with_tag("victim:foo", Some("bar")), "victim:bar");
        assert_eq!(with_tag("victim", Some("bar")), "victim:bar");
        assert_eq!(with_tag("victim", None), "victim");
        assert_eq!(with_tag("victim:foo", Some("")), "victim:foo");
        assert_eq!(
            with_tag("localhost:5000/app:1", Some("2")),
            "localhost:5000/app:2"
        );
        assert_eq!(
            with_tag("app@sha256:aa", Some("sha256:bb")),
            "app@sha256:bb"
        );
        assert_eq!(with_tag("app:1", Some("sha256:bb")), "app@sha256:bb");
    }

    #[test]
    fn whole_repositories_are_told_from_single_images() {
        for one in ["app:1", "localhost:5000/app:1", "app@sha256:aa", "a/b:c"] {
            assert!(names_one_image(one), "{one}");
        }
        for all in ["app", "localhost:5000/app", "docker.io/library/busybox", ""] {
            assert!(!names_one_image(all), "{all}");
        }
    }
}
