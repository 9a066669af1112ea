//! The plain line against the default format, event by event.

use std::io;
use std::sync::{Arc, Mutex};

use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

use super::*;

/// Collects what a subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// An error with a source, which the default lists as `error.sources=[...]`.
#[derive(Debug)]
struct Outer(io::Error);

impl fmt::Display for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("outer failed")
    }
}

impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Events the plain line writes itself.
const FAST_EVENTS: usize = 13;

/// Every kind of field the router logs, and some it does not; the last
/// three go to the default format (an error field, twice, and a span).
fn emit() {
    tracing::info!("plain message");
    tracing::info!(
        source = %"github", request_id = %"req_01M92FAA4S1CHVXBQYAHVJ2YA3", status = 200u16,
        event_id = %"evt_01M92FAA4SKSQSMQXMAHA07ZDT", duplicate = false, latency_us = 10_455u64,
        "Webhook acknowledged."
    );
    tracing::warn!(
        code = "not_found",
        n = -42i64,
        big = u64::MAX,
        min = i64::MIN,
        f = 1.5f64,
        zero = 0u64,
        yes = true,
        "Webhook refused."
    );
    tracing::error!(
        quoted = "a \"b\" \\ c",
        tab = "x\ty",
        unicode = "é ü",
        ctrl = "\x1b[31m",
        del = "\x7f",
        "strings"
    );
    tracing::info!("with args {} and {:?}", 7, "s");
    tracing::info!("escapes \x1b[31m bell \x07 bs \x08 ff \x0c del \x7f c1 \u{85} é tab\t");
    tracing::info!(message = "a message \x1b given as a field", other = 1);
    tracing::debug!(r#type = "push", "raw identifier");
    tracing::trace!(list = ?vec![1, 2], ip = %std::net::Ipv4Addr::LOCALHOST, "debug and display");
    tracing::info!(empty = "", "empty string");
    tracing::info!(only = 1, "");
    tracing::info!(a = 1, b = "two");
    tracing::info!(text = ?"debug of a str", "d");
    let outer = Outer(io::Error::other("inner cause"));
    tracing::error!(
        error = &outer as &(dyn std::error::Error + 'static),
        "with sources"
    );
    let plain = io::Error::other("no source");
    tracing::error!(
        error = &plain as &(dyn std::error::Error + 'static),
        "plain error"
    );
    let span = tracing::info_span!("request", id = 3);
    let _entered = span.enter();
    tracing::info!(inside = true, "in a span");
}

fn run(plain: bool) -> String {
    let out = Captured::default();
    let builder = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(Level::TRACE)
        .with_writer(out.clone());
    if plain {
        tracing::subscriber::with_default(
            builder.event_format(PlainLine::default()).finish(),
            emit,
        );
    } else {
        tracing::subscriber::with_default(builder.finish(), emit);
    }
    out.text()
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn is_timestamp(text: &str) -> bool {
    text.len() == 27
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'.',
            26 => b == b'Z',
            _ => b.is_ascii_digit(),
        })
}

#[test]
fn every_line_is_the_default_formats_line() {
    let before = FAST_LINES.with(std::cell::Cell::get);
    let plain = run(true);
    let fast = FAST_LINES.with(std::cell::Cell::get) - before;
    let default = run(false);
    let (plain, default): (Vec<_>, Vec<_>) = (plain.lines().collect(), default.lines().collect());
    assert_eq!(plain.len(), default.len(), "{plain:#?}\n{default:#?}");
    assert_eq!(plain.len(), FAST_EVENTS + 3);
    for (mine, theirs) in plain.iter().zip(&default) {
        assert!(is_timestamp(&mine[..27]), "{mine}");
        assert!(is_timestamp(&theirs[..27]), "{theirs}");
        assert_eq!(mine[27..], theirs[27..]);
    }
    // The comparison means something only if the plain line wrote them.
    assert_eq!(fast, FAST_EVENTS);
    assert!(
        default[13].contains("error.sources=[inner cause]"),
        "{}",
        default[13]
    );
    assert!(default[15].contains("request{id=3}: "), "{}", default[15]);
}

fn timestamp(secs: u64, micros: u32) -> String {
    let mut out = String::new();
    write_timestamp(&mut out, secs, micros).unwrap();
    out
}

#[test]
fn timestamps_are_utc_with_microseconds() {
    assert_eq!(timestamp(0, 0), "1970-01-01T00:00:00.000000Z");
    // 2000-02-29 is day 11,016: a leap day of a year divisible by 400.
    assert_eq!(
        timestamp(951_782_400 + 3_599, 999_999),
        "2000-02-29T00:59:59.999999Z"
    );
    assert_eq!(timestamp(4_102_444_799, 7), "2099-12-31T23:59:59.000007Z");
    assert_eq!(
        timestamp(MAX_FAST_SECS - 1, 123_456),
        "9999-12-31T23:59:59.123456Z"
    );
    // The per-second cache follows the clock both ways.
    assert_eq!(timestamp(1_764_806_847, 1), "2025-12-04T00:07:27.000001Z");
    assert_eq!(timestamp(1_764_806_848, 2), "2025-12-04T00:07:28.000002Z");
    assert_eq!(timestamp(1_764_806_847, 3), "2025-12-04T00:07:27.000003Z");
}

#[test]
fn integers_are_written_as_display_writes_them() {
    for value in [
        0,
        1,
        9,
        10,
        99,
        100,
        12_345,
        u64::from(u32::MAX),
        u64::MAX - 1,
        u64::MAX,
    ] {
        let mut out = String::new();
        write_u64(&mut out, value).unwrap();
        assert_eq!(out, value.to_string());
    }
}
