//! Docker-style error responses.
//!
//! The docker CLI and SDKs print the `message` field of a JSON error body, so
//! every refusal dockgate makes is shaped exactly like one from dockerd.

use http::{header, HeaderValue, Response, StatusCode};

use super::Body;

/// A response with `{"message": "…"}` and the given status.
pub fn respond(status: StatusCode, message: &str) -> Response<Body> {
    let body = serde_json::to_vec(&serde_json::json!({ "message": message }))
        .expect("a JSON object of one string serializes");
    let mut response = Response::new(Body::made(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Displays an error with its sources, which hyper's client errors need to
/// say anything useful ("client error (Connect)" alone does not).
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn body_is_docker_shaped_json() {
        let r = respond(StatusCode::BAD_GATEWAY, "daemon \"down\"");
        assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["message"], "daemon \"down\"");
    }
}
