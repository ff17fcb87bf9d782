//! `dockgate policy explain`: one request through the real decision code,
//! with no daemon. Ownership lookups are answered "yours", so the result is
//! what a client of the role gets when acting on its own objects.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Uri};

use super::confine::{self, Daemon};
use super::context::ContextScanner;
use super::ownership::OWNER_LABEL;
use super::records::Owners;
use super::rules::{self, BodyRule};
use super::{Next, Policy, Verdict};
use dockgate_wire::api::Operation;

/// The outcome, printable as a short report.
#[derive(Debug)]
pub struct Explained {
    pub allowed: bool,
    lines: Vec<String>,
}

impl fmt::Display for Explained {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

const OWNER: &str = "cn=explain";

/// Answers every lookup with an object owned by [`OWNER`].
struct AssumeOwned;

impl Owners for AssumeOwned {
    fn container(&self, _: &str) -> Option<Arc<str>> {
        Some(OWNER.into())
    }

    fn tag(&self, _: &str) -> Option<Arc<str>> {
        Some(OWNER.into())
    }
}

impl Daemon for AssumeOwned {
    async fn get_json(&self, path: &str) -> Result<Option<serde_json::Value>, String> {
        // Lists (the only reads with a query) are empty.
        if path.contains('?') {
            return Ok(Some(serde_json::json!([])));
        }
        let labels = serde_json::json!({ OWNER_LABEL: OWNER });
        Ok(Some(serde_json::json!({
            "Id": path.split('/').nth(2).unwrap_or_default(),
            "ContainerID": "explained",
            "Labels": labels,
            "Config": { "Labels": labels },
        })))
    }
}

pub async fn explain(
    policy: &Policy,
    role: &str,
    method: &Method,
    uri: &Uri,
    body: Option<Vec<u8>>,
) -> Result<Explained, String> {
    let role = policy
        .roles
        .get(role)
        .ok_or_else(|| format!("no role {role:?} in the config"))?;
    let mut lines = vec![
        format!("request:   {method} {uri}"),
        format!("role:      {}", role.name),
    ];
    let (decision, next) = match policy.decide_for(role, OWNER, method, uri) {
        Verdict::Deny(denial) => {
            lines.push(format!(
                "operation: {}",
                denial.decision.operation.unwrap_or("-")
            ));
            lines.push(format!("decision:  deny ({})", denial.status));
            lines.push(format!("rule:      {}", denial.decision.rule));
            lines.push(format!("message:   {}", denial.message));
            return Ok(Explained {
                allowed: false,
                lines,
            });
        }
        Verdict::Allow { decision, next } => (decision, next),
    };
    lines.push(format!(
        "operation: {}",
        decision.operation.unwrap_or("- (unrouted)")
    ));
    let Next::Confine(confined) = next else {
        lines.push("decision:  allow".into());
        lines.push(format!("rule:      {}", decision.rule));
        if role.redact_env && decision.operation == Some(Operation::ContainerInspect.as_str()) {
            lines.push("answer:    Config.Env values redacted (redact_env)".into());
        }
        return Ok(Explained {
            allowed: true,
            lines,
        });
    };
    let mut headers = HeaderMap::new();
    let streamed = body.clone().unwrap_or_default();
    let body = match (rules::body_rule(confined.operation), body) {
        (BodyRule::Inspect, None) => {
            return Err(format!(
                "{} inspects the request body: pass it with --body FILE",
                confined.operation
            ));
        }
        (BodyRule::Inspect, Some(body)) => {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            Some(Bytes::from(body))
        }
        (_, Some(body)) if !body.is_empty() => {
            headers.insert(header::CONTENT_LENGTH, body.len().into());
            None
        }
        _ => None,
    };
    let defaults = match (&confined.containers, confined.operation, &body) {
        (Some(containers), Operation::ContainerCreate, Some(body)) => {
            containers.create(body).ok().flatten()
        }
        _ => None,
    };
    match confine::confine(
        &confined,
        &decision,
        uri,
        &headers,
        body,
        &AssumeOwned,
        &AssumeOwned,
    )
    .await
    {
        Ok(rewrite) => {
            if let Some(dockerfiles) = rewrite.dockerfiles {
                // A classic build's context, checked as the gateway checks
                // it while it streams.
                let mut scanner = ContextScanner::new(dockerfiles, policy.inspect_limit);
                if let Err(v) = scanner.feed(&streamed).and_then(|()| scanner.finish()) {
                    lines.push("decision:  deny (403)".into());
                    lines.push(format!("rule:      {}", v.rule));
                    lines.push(format!(
                        "message:   dockgate: role {} may not {} (rule {})",
                        role.name, v.what, v.rule
                    ));
                    return Ok(Explained {
                        allowed: false,
                        lines,
                    });
                }
            }
            lines.push("decision:  allow (confined; referenced objects assumed yours)".into());
            lines.push(format!("rule:      {}", decision.rule));
            if let Some(target) = rewrite.target {
                lines.push(format!("forwards:  {method} {target}"));
            }
            if rewrite.reply.is_some() {
                lines.push(
                    "answers:   itself, from the daemon's answer scoped to the caller's objects"
                        .into(),
                );
            }
            if rewrite.body.is_some() {
                lines.push(format!(
                    "labels:    {OWNER_LABEL}=<owner> added to the body"
                ));
            }
            if let Some((member, json)) = defaults {
                lines.push(format!("defaults:  {member} {json} added to the body"));
            }
            Ok(Explained {
                allowed: true,
                lines,
            })
        }
        Err(denial) => {
            lines.push(format!("decision:  deny ({})", denial.status));
            lines.push(format!("rule:      {}", denial.decision.rule));
            lines.push(format!("message:   {}", denial.message));
            Ok(Explained {
                allowed: false,
                lines,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    async fn run(role: &str, method: &str, uri: &str, body: Option<&str>) -> Explained {
        let policy = Policy::new(&Config::default()).unwrap();
        explain(
            &policy,
            role,
            &method.parse().unwrap(),
            &uri.parse().unwrap(),
            body.map(|b| b.as_bytes().to_vec()),
        )
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn ci_privileged_create_is_denied_with_its_rule() {
        let e = run(
            "ci",
            "POST",
            "/v1.41/containers/create",
            Some(r#"{"Image":"x","HostConfig":{"Privileged":true}}"#),
        )
        .await;
        assert!(!e.allowed);
        assert!(e.to_string().contains("host.privileged"), "{e}");
    }

    #[tokio::test]
    async fn readonly_inspect_is_redacted() {
        let e = run("readonly", "GET", "/v1.41/containers/web/json", None).await;
        assert!(e.allowed, "{e}");
        assert!(e.to_string().contains("Config.Env values redacted"), "{e}");
    }

    #[tokio::test]
    async fn ci_plain_create_is_allowed_and_labelled() {
        let e = run(
            "ci",
            "POST",
            "/v1.41/containers/create",
            Some(r#"{"Image":"x"}"#),
        )
        .await;
        assert!(e.allowed, "{e}");
        assert!(e.to_string().contains("labels:"), "{e}");
        assert!(
            e.to_string()
                .contains(r#"defaults:  HostConfig {"OomScoreAdj":0,"PidsLimit":4096,"SecurityOpt":["no-new-privileges"]}"#),
            "{e}"
        );
    }

    #[tokio::test]
    async fn readonly_may_not_exec_and_admin_may() {
        assert!(
            !run("readonly", "POST", "/containers/web/exec", Some("{}"))
                .await
                .allowed
        );
        assert!(
            run("admin", "POST", "/containers/web/exec", None)
                .await
                .allowed
        );
    }

    #[tokio::test]
    async fn ci_info_is_answered_by_dockgate_and_start_takes_no_checkpoint() {
        let e = run("ci", "GET", "/v1.41/info", None).await;
        assert!(e.allowed && e.to_string().contains("answers:"), "{e}");
        let e = run(
            "ci",
            "POST",
            "/v1.41/containers/web/start?checkpoint=c1",
            None,
        )
        .await;
        assert!(
            !e.allowed && e.to_string().contains("confined.query"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn ci_builds_are_checked_down_to_the_dockerfile() {
        let policy = Policy::new(&Config::default()).unwrap();
        let context = |dockerfile: &str| {
            let mut context = vec![0u8; 512];
            context[..10].copy_from_slice(b"Dockerfile");
            context[100..107].copy_from_slice(b"0000644");
            let size = format!("{:011o}", dockerfile.len());
            context[124..135].copy_from_slice(size.as_bytes());
            context[156] = b'0';
            context[148..156].copy_from_slice(b"        ");
            let sum: u32 = context.iter().map(|b| u32::from(*b)).sum();
            context[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            context.extend_from_slice(dockerfile.as_bytes());
            context.resize(context.len().div_ceil(512) * 512 + 1024, 0);
            Some(context)
        };
        let build = |query: &str| format!("/v1.41/build?{query}").parse::<Uri>().unwrap();
        let remote = context("FROM x\nADD http://127.0.0.1/ /x\n");
        let e = explain(&policy, "ci", &Method::POST, &build("t=app"), remote)
            .await
            .unwrap();
        assert!(
            !e.allowed && e.to_string().contains("build.add-remote"),
            "{e}"
        );
        let plain = context("FROM x\nRUN true\n");
        let e = explain(&policy, "ci", &Method::POST, &build("t=app"), plain.clone())
            .await
            .unwrap();
        assert!(e.allowed && e.to_string().contains("nocache=1"), "{e}");
        let e = explain(&policy, "ci", &Method::POST, &build("version=2"), plain)
            .await
            .unwrap();
        assert!(
            !e.allowed && e.to_string().contains("build.buildkit"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn ci_lists_are_filtered() {
        let e = run("ci", "GET", "/v1.41/containers/json?all=1", None).await;
        assert!(e.allowed);
        assert!(
            e.to_string().contains("dockgate.owner%3Dcn%3Dexplain"),
            "{e}"
        );
    }
}
