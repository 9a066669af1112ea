//! Reading the raw body under the configured limit, and turning request
//! headers into what the store keeps.

use axum::body::Body;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::IngestError;
use crate::store::HeaderValueRepr;

/// Reads the whole body as bytes, refusing more than `limit` bytes. A
/// declared `Content-Length` over the limit is refused before reading
/// anything, so an oversized upload costs nothing.
pub(super) async fn raw_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, IngestError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(IngestError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(IngestError::BodyTooLarge { limit })
        }
        Err(e) => Err(IngestError::BodyRead(axum::Error::new(e))),
    }
}

/// Headers whose values are credentials: stored as `[redacted]` so an
/// operator sees they were sent, without the database holding the secret.
const REDACTED: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-gitlab-token",
];

/// The value stored in place of a redacted header.
pub(super) const REDACTED_VALUE: &str = "[redacted]";

/// Headers in arrival order with lowercase names (the `http` crate already
/// lowercases them), credentials redacted, non-UTF-8 values kept as bytes.
pub(super) fn stored_headers(headers: &HeaderMap) -> Vec<(String, HeaderValueRepr)> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = name.as_str();
            let value = if REDACTED.contains(&name) {
                HeaderValueRepr::Text(REDACTED_VALUE.to_string())
            } else {
                match std::str::from_utf8(value.as_bytes()) {
                    Ok(text) => HeaderValueRepr::Text(text.to_string()),
                    Err(_) => HeaderValueRepr::Bytes(value.as_bytes().to_vec()),
                }
            };
            (name.to_string(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_and_bytes_kept() {
        let mut h = HeaderMap::new();
        h.insert("Authorization", "Bearer abc".parse().unwrap());
        h.insert("cookie", "session=1".parse().unwrap());
        h.insert("x-other", http::HeaderValue::from_bytes(b"\xffok").unwrap());
        let stored = stored_headers(&h);
        let get = |n: &str| stored.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(
            get("authorization"),
            Some(HeaderValueRepr::Text(REDACTED_VALUE.into()))
        );
        assert_eq!(
            get("cookie"),
            Some(HeaderValueRepr::Text(REDACTED_VALUE.into()))
        );
        assert_eq!(
            get("x-other"),
            Some(HeaderValueRepr::Bytes(b"\xffok".to_vec()))
        );
    }

    #[tokio::test]
    async fn body_over_the_limit_is_refused() {
        let h = HeaderMap::new();
        let err = raw_body(&h, Body::from(vec![0u8; 11]), 10)
            .await
            .unwrap_err();
        assert!(matches!(err, IngestError::BodyTooLarge { limit: 10 }));
        let ok = raw_body(&h, Body::from(vec![0u8; 10]), 10).await.unwrap();
        assert_eq!(ok.len(), 10);
    }
}
