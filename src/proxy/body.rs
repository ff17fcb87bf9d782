//! The response body on its way to the client.
//!
//! Almost always the daemon's own stream, handed through untouched, or a
//! small answer the gateway made itself (an error, a renewal, a filtered
//! list). The third kind is a stream the gateway filters as it passes (a
//! confined role's event stream), boxed because it is rare.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::Full;
use hyper::body::{Frame, Incoming, SizeHint};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug)]
pub enum Body {
    /// The daemon's answer, streamed through.
    Daemon(Incoming),
    /// An answer the gateway made, whole.
    Made(Full<Bytes>),
    /// The daemon's answer, filtered as it streams.
    Filtered(UnsyncBoxBody<Bytes, BoxError>),
}

impl Body {
    pub fn made(bytes: impl Into<Bytes>) -> Body {
        Body::Made(Full::new(bytes.into()))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Body::Daemon(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Body::Made(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            Body::Filtered(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Daemon(b) => b.is_end_stream(),
            Body::Made(b) => b.is_end_stream(),
            Body::Filtered(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Daemon(b) => b.size_hint(),
            Body::Made(b) => b.size_hint(),
            Body::Filtered(b) => b.size_hint(),
        }
    }
}
