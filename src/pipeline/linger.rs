//! Lingering on a refused request's body.
//!
//! A refusal often comes before the client has finished sending its body
//! (a `docker load`, a build context). If the connection then closes with
//! unread data, the kernel resets it, and the client may lose the refusal
//! and print a broken pipe instead of the rule that refused it. So the rest
//! of a refused body is read and dropped in the background, as nginx's
//! lingering close does, up to a bound in bytes and time; meanwhile hyper
//! sends the refusal.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;

use super::ClientBody;

/// At most this much of a refused body is read and dropped.
const LINGER_BYTES: usize = 64 << 20;
/// And for at most this long.
const LINGER_TIME: Duration = Duration::from_secs(10);

/// Reads and drops what is left of `body`, in the background.
pub fn linger(mut body: ClientBody) {
    tokio::spawn(async move {
        let mut left = LINGER_BYTES;
        let drain = async {
            while let Some(Ok(frame)) = body.frame().await {
                let len = frame.data_ref().map_or(0, Bytes::len);
                if len >= left {
                    return;
                }
                left -= len;
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}
