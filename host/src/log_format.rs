//! The human-readable log line (`--log-format pretty`, the default): the
//! very text `tracing_subscriber`'s default format writes
//! (`2026-12-05T06:47:27.087920Z  INFO target: message key=value ...`),
//! made with less of `core::fmt`.
//!
//! Why: every webhook logs a line (issue #2), and the default format spent
//! ~0.75 µs on it in a micro-benchmark, most of it in `core::fmt`
//! machinery (the timestamp's seven padded numbers, the level's padding,
//! a `write!` per field); this writes the same bytes in ~0.2 µs. The
//! timestamp's date and time of day are formatted once per second per
//! thread, integers and booleans are written directly, and plain strings
//! are copied between their quotes.
//!
//! Exactly the default's output is the contract (a test compares the two
//! on every kind of field): the message is escaped as the default escapes
//! it (terminal control characters), string fields are quoted as `{:?}`
//! quotes them, and anything else goes through `{:?}` as before. Events the
//! default would decorate further (inside a span, or carrying an error,
//! whose source chain it lists) are handed to the default format itself.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::time::SystemTime as DefaultTimer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The line format; see the module's documentation.
#[derive(Debug, Default)]
pub struct PlainLine {
    /// Writes the events this one does not (see [`needs_default`]).
    fallback: Format<Full, DefaultTimer>,
}

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if needs_default(ctx, &writer, event) {
            return self.fallback.format_event(ctx, writer, event);
        }
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(now) if now.as_secs() < MAX_FAST_SECS => {
                write_timestamp(&mut writer, now.as_secs(), now.subsec_micros())?;
            }
            // Before 1970 or after 9999: the default's own formatting.
            _ => {
                use tracing_subscriber::fmt::time::FormatTime as _;
                if DefaultTimer.format_time(&mut writer).is_err() {
                    writer.write_str("<unknown time>")?;
                }
            }
        }
        let meta = event.metadata();
        writer.write_char(' ')?;
        writer.write_str(level_label(*meta.level()))?;
        writer.write_char(' ')?;
        writer.write_str(meta.target())?;
        writer.write_str(": ")?;
        let sanitize = writer.sanitizes_ansi_escapes();
        let mut fields = Fields {
            writer: &mut writer,
            sanitize,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        #[cfg(test)]
        FAST_LINES.with(|n| n.set(n.get() + 1));
        writer.write_char('\n')
    }
}

#[cfg(test)]
thread_local! {
    /// Lines this format wrote itself (not through the fallback).
    static FAST_LINES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Whether the default format must write `event`: with colours on, inside
/// a span (it prints the span's name and fields), or with an error field
/// (it lists the error's sources).
fn needs_default<S, N>(ctx: &FmtContext<'_, S, N>, writer: &Writer<'_>, event: &Event<'_>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    if writer.has_ansi_escapes() || ctx.event_scope().is_some() {
        return true;
    }
    let mut probe = ErrorProbe(false);
    event.record(&mut probe);
    probe.0
}

/// Finds error fields without formatting anything.
struct ErrorProbe(bool);

impl Visit for ErrorProbe {
    fn record_error(&mut self, _field: &Field, _value: &(dyn std::error::Error + 'static)) {
        self.0 = true;
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}

/// The level as the default pads it: right-aligned in five columns.
fn level_label(level: Level) -> &'static str {
    match level {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => " INFO",
        Level::WARN => " WARN",
        Level::ERROR => "ERROR",
    }
}

/// 10000-01-01T00:00:00Z: from there on the default writes a five-digit year.
const MAX_FAST_SECS: u64 = 253_402_300_800;

thread_local! {
    /// The last second formatted on this thread, and its
    /// `YYYY-MM-DDTHH:MM:SS.` text.
    static SECOND: RefCell<(u64, [u8; 20])> = const { RefCell::new((u64::MAX, [0; 20])) };
}

/// Writes `secs.micros` since 1970 as `YYYY-MM-DDTHH:MM:SS.ffffffZ`, as the
/// default timer does (microseconds truncated). `secs` is below
/// [`MAX_FAST_SECS`].
fn write_timestamp(writer: &mut impl fmt::Write, secs: u64, micros: u32) -> fmt::Result {
    let mut line = [0u8; 27];
    let from_cache = SECOND.try_with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            *cached = (secs, second_text(secs));
        }
        line[..20].copy_from_slice(&cached.1);
    });
    // A line logged while the thread exits (a value's drop, after its
    // thread-locals are gone) formats the second afresh.
    if from_cache.is_err() {
        line[..20].copy_from_slice(&second_text(secs));
    }
    put_digits(&mut line[20..26], u64::from(micros));
    line[26] = b'Z';
    // All ASCII digits and separators.
    writer.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
}

/// `YYYY-MM-DDTHH:MM:SS.` of the second `secs` after 1970-01-01T00:00:00Z.
fn second_text(secs: u64) -> [u8; 20] {
    let days = (secs / 86_400) as i64;
    let of_day = secs % 86_400;
    let (year, month, day) = crate::civil::civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00.";
    put_digits(&mut text[0..4], year as u64);
    put_digits(&mut text[5..7], month as u64);
    put_digits(&mut text[8..10], day as u64);
    put_digits(&mut text[11..13], of_day / 3600);
    put_digits(&mut text[14..16], of_day / 60 % 60);
    put_digits(&mut text[17..19], of_day % 60);
    text
}

/// Writes `value`'s last `out.len()` decimal digits into `out`, zero-padded.
fn put_digits(out: &mut [u8], mut value: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// `value` in decimal, as `{}` writes it.
fn write_u64(writer: &mut impl fmt::Write, value: u64) -> fmt::Result {
    let mut digits = [0u8; 20];
    let len = value.checked_ilog10().map_or(1, |log| log as usize + 1);
    put_digits(&mut digits[..len], value);
    writer.write_str(std::str::from_utf8(&digits[..len]).map_err(|_| fmt::Error)?)
}

/// Writes an event's fields as the default's `DefaultVisitor` does: the
/// message bare (escaped), then `name=value` pairs, separated by spaces.
struct Fields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    /// Escape terminal control characters in the message (the default's
    /// ANSI sanitisation).
    sanitize: bool,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    /// Starts a field: `false` if it is not written at all (the `log.`
    /// fields `tracing-log` adds, which the default also skips); else the
    /// separator, and `name=` unless it is the message.
    fn start(&mut self, field: &Field) -> bool {
        if self.result.is_err() {
            return false;
        }
        let name = field.name();
        if name.starts_with("log.") {
            return false;
        }
        if self.first {
            self.first = false;
        } else {
            self.result = self.writer.write_char(' ');
        }
        if name != "message" {
            let shown = name.strip_prefix("r#").unwrap_or(name);
            self.result = self
                .result
                .and_then(|()| self.writer.write_str(shown))
                .and_then(|()| self.writer.write_char('='));
        }
        self.result.is_ok()
    }

    /// The message's text, through the default's escaping when it is on.
    fn message(&mut self, args: fmt::Arguments<'_>) {
        self.result = if self.sanitize {
            Escaping(&mut *self.writer).write_fmt(args)
        } else {
            self.writer.write_fmt(args)
        };
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !self.start(field) {
            return;
        }
        if field.name() == "message" {
            self.message(format_args!("{value}"));
        } else if value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
        {
            // What `{:?}` writes for a string that needs no escape.
            self.result = self
                .writer
                .write_char('"')
                .and_then(|()| self.writer.write_str(value))
                .and_then(|()| self.writer.write_char('"'));
        } else {
            self.result = write!(self.writer, "{value:?}");
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.start(field) {
            self.result = write_u64(&mut *self.writer, value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.start(field) {
            if value < 0 {
                self.result = self.writer.write_char('-');
            }
            self.result = self
                .result
                .and_then(|()| write_u64(&mut *self.writer, value.unsigned_abs()));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field) {
            self.result = self.writer.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if !self.start(field) {
            return;
        }
        if field.name() == "message" {
            self.message(format_args!("{value:?}"));
        } else {
            self.result = write!(self.writer, "{value:?}");
        }
    }
}

/// The default's message escaping (`tracing_subscriber`'s `EscapeGuard`):
/// ESC, BEL, BS, FF and DEL as `\xNN`, C1 controls as `\u{NN}`, everything
/// else as is.
struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !s
            .bytes()
            .any(|b| matches!(b, 0x07 | 0x08 | 0x0c | 0x1b | 0x7f) || b >= 0x80)
        {
            return self.0.write_str(s);
        }
        for ch in s.chars() {
            match ch {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                '\u{80}'..='\u{9f}' => write!(self.0, "\\u{{{:x}}}", ch as u32)?,
                _ => self.0.write_char(ch)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
