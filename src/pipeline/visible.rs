//! What a confined caller's lists and event streams show: only containers
//! and tags the ownership records give it.
//!
//! The daemon already filters them by the owner label (see
//! [`crate::policy::ownership`]), but containers and images inherit labels
//! from images (see [`crate::policy::records`]), so a label match alone
//! would list an administrator's build container made from a confined
//! identity's image. These filters drop what the record does not give the
//! caller. They read whole lists up to a bound and events line by line,
//! and fail closed: an answer they cannot read is an error, never passed
//! through unfiltered.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{header, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};

use crate::policy::records::{Owners, Records};
use crate::policy::reference;
use crate::proxy::{error, Body, BoxError};

/// Largest list answer read to filter it.
const LIST_LIMIT: usize = 32 << 20;
/// Longest single event line.
const EVENT_LIMIT: usize = 1 << 20;

/// Filters a `ContainerList` or `ImageList` answer to what `owner` owns.
pub async fn list(
    response: Response<Body>,
    owner: &str,
    records: &Records,
    images: bool,
) -> Response<Body> {
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let read = http_body_util::Limited::new(body, LIST_LIMIT)
        .collect()
        .await
        .ok()
        .and_then(|c| serde_json::from_slice::<serde_json::Value>(&c.to_bytes()).ok());
    let Some(serde_json::Value::Array(items)) = read else {
        return unfilterable();
    };
    let kept: Vec<serde_json::Value> = if images {
        items
            .into_iter()
            .filter_map(|item| owned_tags_only(item, owner, records))
            .collect()
    } else {
        items
            .into_iter()
            .filter(|item| {
                item.get("Id")
                    .and_then(serde_json::Value::as_str)
                    .and_then(|id| records.container(id))
                    .as_deref()
                    == Some(owner)
            })
            .collect()
    };
    let Ok(bytes) = serde_json::to_vec(&kept) else {
        return unfilterable();
    };
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, bytes.len().into());
    Response::from_parts(parts, Body::made(bytes))
}

/// An image list entry showing only the caller's tags (and the digests of
/// their repositories), or `None` when it has none: another owner's tag on
/// the same image is another owner's business.
fn owned_tags_only(
    mut item: serde_json::Value,
    owner: &str,
    records: &Records,
) -> Option<serde_json::Value> {
    let tags: Vec<serde_json::Value> = item
        .get("RepoTags")?
        .as_array()?
        .iter()
        .filter(|t| {
            t.as_str()
                .and_then(reference::normalize)
                .and_then(|tag| records.tag(&tag))
                .as_deref()
                == Some(owner)
        })
        .cloned()
        .collect();
    if tags.is_empty() {
        return None;
    }
    let repositories: Vec<&str> = tags
        .iter()
        .filter_map(|t| t.as_str().map(reference::repository))
        .collect();
    let digests: Vec<serde_json::Value> = item
        .get("RepoDigests")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter(|d| {
            d.as_str()
                .is_some_and(|d| repositories.contains(&reference::repository(d)))
        })
        .cloned()
        .collect();
    let object = item.as_object_mut()?;
    object.insert("RepoTags".into(), tags.into());
    object.insert("RepoDigests".into(), digests.into());
    Some(item)
}

/// Filters a `SystemEvents` stream: container events only for containers
/// `owner` owns by the record; other events as the daemon's label filter
/// left them. An event line too long to read ends the stream.
pub fn events(response: Response<Body>, owner: &str, records: Arc<Records>) -> Response<Body> {
    if !response.status().is_success() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Body::Daemon(inner) = body else {
        return unfilterable();
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    let filtered = Events {
        inner,
        owner: owner.to_owned(),
        records,
        partial: BytesMut::new(),
        ready: VecDeque::new(),
        done: false,
    };
    Response::from_parts(parts, Body::Filtered(UnsyncBoxBody::new(filtered)))
}

fn unfilterable() -> Response<Body> {
    error::respond(
        StatusCode::BAD_GATEWAY,
        "dockgate: cannot filter the daemon's answer for a confined role",
    )
}

struct Events {
    inner: Incoming,
    owner: String,
    records: Arc<Records>,
    /// An event line not yet complete.
    partial: BytesMut,
    /// Complete lines that passed, waiting to be sent.
    ready: VecDeque<Bytes>,
    done: bool,
}

impl Events {
    /// Whether one event (a JSON line) may be shown to the owner.
    fn shows(&self, line: &[u8]) -> bool {
        let Ok(event) = serde_json::from_slice::<serde_json::Value>(line) else {
            return false;
        };
        if event.get("Type").and_then(serde_json::Value::as_str) != Some("container") {
            return true;
        }
        event
            .pointer("/Actor/ID")
            .and_then(serde_json::Value::as_str)
            .and_then(|id| self.records.container(id))
            .as_deref()
            == Some(self.owner.as_str())
    }

    fn take_lines(&mut self) {
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line = self.partial.split_to(end + 1).freeze();
            if self.shows(&line) {
                self.ready.push_back(line);
            }
        }
    }
}

impl hyper::body::Body for Events {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if let Some(line) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(Frame::data(line))));
            }
            if self.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => self.done = true,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.partial.extend_from_slice(&data);
                        self.take_lines();
                        if self.partial.len() > EVENT_LIMIT {
                            return Poll::Ready(Some(Err("dockgate: event line too long".into())));
                        }
                    }
                }
            }
        }
    }
}
