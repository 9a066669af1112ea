//! `type = "http"`: each delivery is one request to the configured URL, its
//! body the payload, and it is done when the receiver answers 2xx.
//!
//! Headers, in the order they are applied (a later one replaces an earlier
//! one of the same name): the plugin's headers, except hop-by-hop ones and
//! the ones set here; the sink's configured headers; `content-type:
//! application/json` if neither set one; `Idempotency-Key` and `webhook-id`,
//! both the delivery id, the same on every attempt; with `sign_secret`,
//! Standard Webhooks `webhook-timestamp` and `webhook-signature`.
//! `user-agent: hookyard/<version>` unless a header above set one.
//!
//! Outcomes: 2xx is delivered; 408, 429 and 5xx are retried, honouring
//! `Retry-After`; any other status is permanent, a redirect included
//! (following one would send the payload and credentials somewhere nobody
//! configured). Connection errors and timeouts are retried. Error texts name
//! the URL without userinfo or query (either can hold a token) and never
//! carry a configured header value or the signing secret.
//!
//! A batch is sent as concurrent requests, one per delivery, and answered
//! when its slowest request ends (at most the timeout), so `max_batch` is
//! the sink's `max_concurrency`.

use std::error::Error as _;
use std::fmt;
use std::io;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use reqwest::{Client, Method, Url};

use super::standard_webhooks::Signer;
use super::{Outbound, SendOutcome, Sink, SinkError};
use crate::config::HttpSinkConfig;

/// Response body bytes quoted in an error: enough for a receiver's reason.
const BODY_SNIPPET: usize = 200;
/// Most of a response body read to let the connection be reused; past it
/// the connection is dropped instead.
const DRAIN_LIMIT: usize = 64 * 1024;
/// The longest wait a `Retry-After` can ask for; longer asks are cut to it,
/// so a receiver's typo cannot park a delivery for months.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Plugin headers never forwarded: hop-by-hop ones (they describe the
/// router's connection, not the delivery) and the ones this sink owns.
const NOT_FROM_PLUGIN: [&str; 14] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "idempotency-key",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
const WEBHOOK_ID: HeaderName = HeaderName::from_static("webhook-id");
const WEBHOOK_TIMESTAMP: HeaderName = HeaderName::from_static("webhook-timestamp");
const WEBHOOK_SIGNATURE: HeaderName = HeaderName::from_static("webhook-signature");

/// An HTTP sink: one pooled client shared by every delivery.
pub(crate) struct HttpSink {
    client: Client,
    method: Method,
    url: Url,
    /// `url` without userinfo, query or fragment: the only form in errors.
    shown_url: String,
    /// The configured headers, values marked sensitive (their `Debug` hides them).
    headers: HeaderMap,
    timeout: Duration,
    signer: Option<Signer>,
    max_batch: usize,
}

impl fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL's userinfo and query, header values and the key stay out.
        f.debug_struct("HttpSink")
            .field("method", &self.method)
            .field("url", &self.shown_url)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("signed", &self.signer.is_some())
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl HttpSink {
    /// Builds the client; no connection is made until the first send.
    pub(crate) fn new(
        name: &str,
        config: &HttpSinkConfig,
        max_concurrency: usize,
    ) -> Result<Self, SinkError> {
        let error = |reason: String| SinkError {
            sink: name.to_string(),
            reason,
        };
        let url = Url::parse(&config.url).map_err(|e| error(format!("url is invalid: {e}")))?;
        let shown_url = shown_url(&url);
        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                error(format!(
                    "header `{name}` has a value that is not visible ASCII"
                ))
            })?;
            value.set_sensitive(true);
            headers.append(name.clone(), value);
        }
        let signer = config
            .sign_secret
            .as_ref()
            .map(Signer::new)
            .transpose()
            .map_err(|reason| error(reason.to_string()))?;
        let client = Client::builder()
            .use_rustls_tls()
            // A redirect is a permanent failure, reported with its status.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            // Keep as many idle connections as deliveries may be in flight,
            // so a steady stream never reconnects.
            .pool_max_idle_per_host(max_concurrency)
            .user_agent(concat!("hookyard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| error(format!("cannot build the HTTP client: {}", cause(&e))))?;
        Ok(Self {
            client,
            method: config.method.clone(),
            url,
            shown_url,
            headers,
            timeout: config.timeout,
            signer,
            // A batch is sent as that many concurrent requests, so it is
            // never larger than what the sink may have in flight.
            max_batch: max_concurrency.max(1),
        })
    }

    /// Sends one delivery and classifies the answer.
    async fn send_one(&self, outbound: &Outbound) -> SendOutcome {
        let headers = match self.headers_for(outbound) {
            Ok(headers) => headers,
            Err(error) => return SendOutcome::Permanent { error },
        };
        let request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(headers)
            .body(outbound.payload.clone());
        match request.send().await {
            Ok(response) => self.classify(response).await,
            Err(e) => SendOutcome::retry(self.describe(&e)),
        }
    }

    /// The request headers for `outbound` (see the module docs for the order).
    fn headers_for(&self, outbound: &Outbound) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in &outbound.headers {
            let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
                return Err(format!(
                    "plugin header name {:?} is not a valid HTTP header name",
                    truncate(name, 64)
                ));
            };
            if NOT_FROM_PLUGIN.contains(&name.as_str()) {
                continue;
            }
            // Bytes, not `from_str`: UTF-8 (obs-text) passes, controls do not.
            let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) else {
                return Err(format!(
                    "plugin header `{name}` has a control character in its value"
                ));
            };
            headers.append(name, value);
        }
        for name in self.headers.keys() {
            headers.remove(name);
        }
        for (name, value) in &self.headers {
            headers.append(name, value.clone());
        }
        if !headers.contains_key(header::CONTENT_TYPE) {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        let id = HeaderValue::from_str(&outbound.id)
            .map_err(|_| "delivery id is not a valid header value".to_string())?;
        headers.insert(IDEMPOTENCY_KEY, id.clone());
        headers.insert(WEBHOOK_ID, id);
        if let Some(signer) = &self.signer {
            let timestamp = crate::clock::now_ms().div_euclid(1000);
            let signature = signer.sign(&outbound.id, timestamp, &outbound.payload);
            headers.insert(WEBHOOK_TIMESTAMP, HeaderValue::from(timestamp));
            let mut signature = HeaderValue::from_str(&signature)
                .map_err(|_| "signature is not a valid header value".to_string())?;
            signature.set_sensitive(true);
            headers.insert(WEBHOOK_SIGNATURE, signature);
        }
        Ok(headers)
    }

    /// The outcome of a received answer.
    async fn classify(&self, mut response: reqwest::Response) -> SendOutcome {
        let status = response.status();
        if status.is_success() {
            // The receiver has it; reading the rest of a small body lets
            // the connection go back to the pool, and its errors are moot.
            let _ = read_prefix(&mut response, DRAIN_LIMIT).await;
            return SendOutcome::Delivered;
        }
        let retry = status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error();
        let retry_after = if retry {
            response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, SystemTime::now()))
        } else {
            None
        };
        let mut error = status_line(status);
        if status.is_redirection() {
            let location = if response.headers().contains_key(header::LOCATION) {
                "a Location header"
            } else {
                "no Location header"
            };
            error.push_str(&format!(
                " (redirects are not followed; the answer has {location})"
            ));
        } else {
            let body = read_prefix(&mut response, BODY_SNIPPET).await;
            let snippet = one_line(&body[..body.len().min(BODY_SNIPPET)]);
            if !snippet.is_empty() {
                error.push_str(": ");
                error.push_str(&snippet);
            }
        }
        if retry {
            SendOutcome::Retry { error, retry_after }
        } else {
            SendOutcome::Permanent { error }
        }
    }

    /// A short text for a failed request: what failed and the OS reason.
    fn describe(&self, e: &reqwest::Error) -> String {
        // Connect first: a connect timeout is also a timeout, but naming
        // the host says more than the request timeout would.
        if e.is_connect() {
            let host = self.url.host_str().unwrap_or("?");
            let port = self.url.port_or_known_default().unwrap_or(0);
            return format!("connect to {host}:{port} failed: {}", cause(e));
        }
        if e.is_timeout() {
            return format!("timed out after {} ms", self.timeout.as_millis());
        }
        format!("request to {} failed: {}", self.shown_url, cause(e))
    }
}

#[async_trait::async_trait]
impl Sink for HttpSink {
    fn max_batch(&self) -> usize {
        self.max_batch
    }

    async fn send(&self, batch: &[Outbound]) -> Vec<SendOutcome> {
        futures::future::join_all(batch.iter().map(|o| self.send_one(o))).await
    }
}

/// `url` as errors (and the admin API) may show it: no userinfo, query or
/// fragment.
pub(crate) fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// The innermost reason of an error chain, without reqwest's own top-level
/// text (which quotes the full URL, query included). An OS error is named by
/// its kind ("connection refused"), the same on every platform.
fn cause(e: &reqwest::Error) -> String {
    let mut deepest: Option<&(dyn std::error::Error + 'static)> = None;
    let mut next = e.source();
    while let Some(err) = next {
        deepest = Some(err);
        next = err.source();
    }
    match deepest {
        Some(err) => match err.downcast_ref::<io::Error>() {
            Some(io) if io.raw_os_error().is_some() => io.kind().to_string(),
            _ => err.to_string(),
        },
        None if e.is_body() => "the request body could not be sent".into(),
        None if e.is_decode() => "the response could not be read".into(),
        None => "request failed".into(),
    }
}

/// `HTTP 503 Service Unavailable`.
fn status_line(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("HTTP {} {reason}", status.as_u16()),
        None => format!("HTTP {}", status.as_u16()),
    }
}

/// Up to `limit` bytes of the response body (fewer if it ends or breaks).
async fn read_prefix(response: &mut reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body
}

/// `bytes` as one trimmed line of text: invalid UTF-8 replaced, control
/// characters (newlines included) turned into spaces.
fn one_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    line.trim().to_string()
}

/// At most `max` characters of `s`.
fn truncate(s: &str, max: usize) -> &str {
    s.char_indices().nth(max).map_or(s, |(i, _)| &s[..i])
}

/// A `Retry-After` value as a wait from `now`: delta-seconds or an
/// HTTP-date (IMF-fixdate, RFC 850 or asctime, as RFC 9110 asks a recipient
/// to accept). A date in the past means now; waits are capped at a day;
/// anything unparsable is ignored.
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // An absurdly long number still means "a long time".
        let secs = value.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = parse_http_date(value)?;
    let now = i64::try_from(now.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
    let wait = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
    Some(Duration::from_secs(wait).min(MAX_RETRY_AFTER))
}

/// An HTTP-date as unix seconds.
fn parse_http_date(value: &str) -> Option<i64> {
    let parts: Vec<&str> = value.split_ascii_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        // IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
        [_, day, month, year, time, "GMT"] => (*day, *month, year.parse().ok()?, *time),
        // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`. Two-digit years 70-99
        // are the 1900s, the rest the 2000s: exact enough for a retry hint.
        [_, date, time, "GMT"] => {
            let mut fields = date.split('-');
            let (day, month, year) = (fields.next()?, fields.next()?, fields.next()?);
            let year: i64 = year.parse().ok()?;
            let year = match year {
                0..=69 => 2000 + year,
                70..=99 => 1900 + year,
                _ => year,
            };
            (day, month, year, *time)
        }
        // asctime: `Sun Nov  6 08:49:37 1994`.
        [_, month, day, time, year] => (*day, *month, year.parse().ok()?, *time),
        _ => return None,
    };
    let day: i64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == month)? as i64
        + 1;
    let mut hms = time.split(':').map(|f| f.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some()
        || !(1..=31).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..=60).contains(&s)
        || !(1970..=9999).contains(&year)
    {
        return None;
    }
    Some(crate::civil::days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
#[path = "tests_http.rs"]
mod tests;
