//! Image references as dockerd builds them from request parameters.
//!
//! Pull, push and tag take a name and a separate `tag` parameter. dockerd
//! parses the name (Go's `reference.ParseNormalizedNamed`) and then applies
//! the parameter with `WithTag` (or `WithDigest` for a digest), which
//! *replaces* any tag or digest the name carried. A reference left with
//! neither means every tag of the repository to pull and push. Checking
//! ownership of anything but the reference dockerd acts on checks the wrong
//! image.

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

#[cfg(test)]
mod tests {
    use super::*;

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
