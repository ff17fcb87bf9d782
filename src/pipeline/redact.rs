//! Redacts container environments for roles with `redact_env`.
//!
//! Environment variables are where CI secrets live, and a container
//! inspect answer lists them all (`Config.Env`). For a role with
//! `redact_env = true`, a successful `ContainerInspect` answer is read
//! whole (at most [`MAX_ANSWER`] bytes), each `KEY=value` entry becomes
//! `KEY=<redacted>`, and the answer is sent re-encoded. It fails closed: an
//! answer that is too large, compressed, or not the JSON object dockerd
//! writes becomes a 502, never the unredacted answer. Error answers carry
//! no environment and pass untouched.

use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::Either;
use http::{header, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

use super::{Allowed, BoxFuture, Outcome};
use crate::audit::Decision;
use crate::policy::Denial;
use crate::proxy::Body;
use crate::reload::Live;
use dockgate_wire::api::Operation;

/// The largest inspect answer redacted; larger ones are refused. Real ones
/// are a few KiB.
pub const MAX_ANSWER: usize = 8 << 20;

/// What an entry's value becomes.
pub const MARKER: &str = "<redacted>";

#[derive(Clone, Debug)]
pub struct RedactEnv<S> {
    inner: S,
    live: Arc<Live>,
}

impl<S> RedactEnv<S> {
    pub fn new(inner: S, live: Arc<Live>) -> RedactEnv<S> {
        RedactEnv { inner, live }
    }

    /// A container inspect by a role that redacts. A role the current
    /// policy no longer has is redacted too.
    fn redacts(&self, decision: &Decision) -> bool {
        if decision.operation != Some(Operation::ContainerInspect.as_str()) {
            return false;
        }
        let policy = self.live.policy.load();
        decision
            .role
            .as_deref()
            .and_then(|name| policy.roles.get(name))
            .is_none_or(|role| role.redact_env)
    }
}

impl<S> tower::Service<Allowed> for RedactEnv<S>
where
    S: tower::Service<Allowed, Response = Response<Body>, Error = Denial>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Denial;
    type Future = Either<S::Future, BoxFuture<Outcome>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Denial>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, allowed: Allowed) -> Self::Future {
        if !self.redacts(&allowed.decision) {
            return Either::Left(self.inner.call(allowed));
        }
        let decision = allowed.decision.clone();
        let response = self.inner.call(allowed);
        Either::Right(Box::pin(async move {
            let response = response.await?;
            if response.status() != StatusCode::OK {
                return Ok(response);
            }
            redacted(response).await.map_err(|e| {
                Denial::of(
                    &decision,
                    StatusCode::BAD_GATEWAY,
                    format!("dockgate: cannot redact the container's environment: {e}"),
                    "redact_env",
                )
            })
        }))
    }
}

/// The answer with its environment values replaced.
async fn redacted(response: Response<Body>) -> Result<Response<Body>, String> {
    let (mut parts, body) = response.into_parts();
    if parts.headers.contains_key(header::CONTENT_ENCODING) {
        return Err("the answer is encoded".into());
    }
    let bytes = Limited::new(body, MAX_ANSWER)
        .collect()
        .await
        .map_err(|e| match e.downcast::<http_body_util::LengthLimitError>() {
            Ok(_) => format!("the answer is larger than {MAX_ANSWER} bytes"),
            Err(e) => format!("cannot read the answer: {e}"),
        })?
        .to_bytes();
    let bytes = Bytes::from(redact_env(&bytes)?);
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, bytes.len().into());
    Ok(Response::from_parts(parts, Body::made(bytes)))
}

/// Replaces the value of every `Config.Env` entry of an inspect answer.
pub fn redact_env(answer: &[u8]) -> Result<Vec<u8>, String> {
    let mut inspect: Value =
        serde_json::from_slice(answer).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let Value::Object(container) = &mut inspect else {
        return Err("the answer is not a JSON object".into());
    };
    match container.get_mut("Config") {
        None | Some(Value::Null) => {}
        Some(Value::Object(config)) => match config.get_mut("Env") {
            None | Some(Value::Null) => {}
            Some(Value::Array(env)) => {
                for entry in env {
                    let Value::String(text) = entry else {
                        return Err("Config.Env holds a non-string".into());
                    };
                    if let Some((key, _)) = text.split_once('=') {
                        *text = format!("{key}={MARKER}");
                    }
                }
            }
            Some(_) => return Err("Config.Env is not a list".into()),
        },
        Some(_) => return Err("Config is not an object".into()),
    }
    serde_json::to_vec(&inspect).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_replaced_keys_kept() {
        let out = redact_env(
            br#"{"Id":"x","Config":{"Env":["TOKEN=s3cr=t","PATH=/bin","UNSET"],"Image":"i"}}"#,
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["Config"]["Env"],
            serde_json::json!(["TOKEN=<redacted>", "PATH=<redacted>", "UNSET"])
        );
        assert_eq!(v["Config"]["Image"], "i");
        assert!(redact_env(br#"{"Config":{"Env":null}}"#).is_ok());
        assert!(redact_env(br#"{"Id":"x"}"#).is_ok());
    }

    #[test]
    fn what_it_cannot_read_is_refused() {
        for answer in [
            &br#"{"Config":{"Env":"A=b"}}"#[..],
            br#"{"Config":{"Env":[1]}}"#,
            br#"{"Config":"A=b"}"#,
            br#"["A=b"]"#,
            br#"{"Config":{"Env":["A=b"]}"#,
            b"",
        ] {
            assert!(
                redact_env(answer).is_err(),
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
    }
}
