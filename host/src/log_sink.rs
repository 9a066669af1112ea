//! Where formatted log lines go: appended to one shared buffer that a
//! single thread writes out in batches, so a log line costs its caller a
//! short lock and a copy (no allocation once the two buffers have grown to
//! the load), never a wait for a slow stderr, and at most one wake-up of
//! that thread per 10 ms batch.
//!
//! Why not `tracing-appender`'s non-blocking writer, as before: it hands
//! every line to its thread through a channel (a fresh `Vec` per line) and
//! wakes that thread whenever it has gone idle, hundreds of times a second
//! under load; the thread's receive loop alone was ~3% of the router's CPU
//! in the ingest benchmark (bench/README.md, "Profile and experiments").
//! Here the writer thread is woken by the first line after a flush only,
//! lets the next 10 ms of lines join it, and writes them with one call;
//! with nothing to write it sleeps without a timer.
//!
//! The promise is the same: a request never blocks on logging. When the
//! buffer is full (the output is stuck or slower than the lines), lines are
//! dropped, counted, and the count is written as a line of its own once
//! the output takes writes again.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long a line can wait in the buffer before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(10);

/// Bytes buffered at most (about 16,000 request lines); past it lines are dropped.
const DEFAULT_CAPACITY: usize = 4 << 20;

/// The shared buffer and what the writer thread needs to know.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Lines refused since the last flush because the buffer was full.
    dropped: u64,
    /// Set by [`LogSinkGuard`]'s drop: write what is left and stop.
    closing: bool,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer thread: for the first line after a flush, and at shutdown.
    wake: Condvar,
    capacity: usize,
}

impl Shared {
    /// The buffer, also after a panic elsewhere while it was held: a log
    /// line is never worth a second panic.
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The `tracing_subscriber` writer: each event's formatted line is
/// appended to the shared buffer in one piece.
#[derive(Debug, Clone)]
pub struct LogSink {
    shared: Arc<Shared>,
}

/// Writes what is still buffered and stops the writer thread when dropped:
/// keep it alive until the process is about to exit.
#[derive(Debug)]
#[must_use = "dropping the guard stops the log writer"]
pub struct LogSinkGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl LogSink {
    /// A sink whose thread writes to `output` (stderr in the router).
    pub fn new(output: impl Write + Send + 'static) -> (Self, LogSinkGuard) {
        Self::with_capacity(output, DEFAULT_CAPACITY)
    }

    fn with_capacity(output: impl Write + Send + 'static, capacity: usize) -> (Self, LogSinkGuard) {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
            capacity,
        });
        let thread = std::thread::Builder::new()
            .name("hookyard-log".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || write_out(&shared, output)
            })
            // At start, before anything is served: no thread, no router.
            .expect("cannot start the log writer thread");
        let guard = LogSinkGuard {
            shared: Arc::clone(&shared),
            thread: Some(thread),
        };
        (Self { shared }, guard)
    }
}

impl Drop for LogSinkGuard {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer thread: asleep while nothing is buffered; once a line
/// arrives, it waits [`FLUSH_EVERY`] for more, then swaps the buffer for an
/// empty one and writes it out with one call. Until closed and drained.
fn write_out(shared: &Shared, mut output: impl Write) {
    // The two buffers trade places, so steady logging allocates nothing.
    let mut batch = Vec::new();
    loop {
        let (dropped, closing) = {
            let mut pending = shared.lock();
            // Idle: no timer, so an idle router's log thread never wakes.
            while pending.bytes.is_empty() && pending.dropped == 0 && !pending.closing {
                pending = shared
                    .wake
                    .wait(pending)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            // Under load, the lines of the next few milliseconds join this
            // one and leave in the same write.
            if !pending.closing {
                pending = shared
                    .wake
                    .wait_timeout_while(pending, FLUSH_EVERY, |p| !p.closing)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
            }
            std::mem::swap(&mut pending.bytes, &mut batch);
            (std::mem::take(&mut pending.dropped), pending.closing)
        };
        // Errors have nowhere to go: stderr is where they would be reported.
        if !batch.is_empty() {
            let _ = output.write_all(&batch);
        }
        if dropped > 0 {
            let _ = writeln!(
                output,
                "hookyard: {dropped} log lines dropped: the log output could not keep up"
            );
        }
        let _ = output.flush();
        batch.clear();
        if closing {
            return;
        }
    }
}

/// One event's writer: appends whole, or drops whole when the buffer is full.
#[derive(Debug)]
pub struct LineWriter<'a> {
    shared: &'a Shared,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.shared.lock();
        // Only the first line after a flush wakes the writer thread.
        let first = pending.bytes.is_empty() && pending.dropped == 0;
        if pending.bytes.len() + line.len() > self.shared.capacity {
            pending.dropped += 1;
        } else {
            pending.bytes.extend_from_slice(line);
        }
        drop(pending);
        if first {
            self.shared.wake.notify_one();
        }
        // Claimed written either way: a dropped line is counted, not retried.
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            shared: &self.shared,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// An output the test can read, and can make hang.
    #[derive(Clone, Default)]
    struct Output {
        bytes: Arc<Mutex<Vec<u8>>>,
        stuck: Arc<AtomicBool>,
        flushes: Arc<AtomicUsize>,
    }

    impl Write for Output {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            while self.stuck.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            self.bytes.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            self.flushes.fetch_add(1, Ordering::AcqRel);
            Ok(())
        }
    }

    impl Output {
        fn text(&self) -> String {
            String::from_utf8(self.bytes.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn lines_from_many_threads_arrive_whole_and_all_by_the_guards_drop() {
        let output = Output::default();
        let (sink, guard) = LogSink::new(output.clone());
        std::thread::scope(|scope| {
            for t in 0..4 {
                let sink = &sink;
                scope.spawn(move || {
                    for i in 0..500 {
                        let line = format!("thread {t} line {i} {}\n", "x".repeat(100));
                        sink.make_writer().write_all(line.as_bytes()).unwrap();
                    }
                });
            }
        });
        drop(guard);
        let text = output.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2000);
        for t in 0..4 {
            for i in 0..500 {
                let line = format!("thread {t} line {i} {}", "x".repeat(100));
                assert!(lines.contains(&line.as_str()), "missing or torn: {line}");
            }
        }
    }

    #[test]
    fn lines_are_written_within_a_flush_interval_without_a_shutdown() {
        let output = Output::default();
        let (sink, _guard) = LogSink::new(output.clone());
        sink.make_writer().write_all(b"early line\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !output.text().contains("early line") {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn an_idle_writer_thread_stays_asleep_until_a_line_arrives() {
        let output = Output::default();
        let (sink, _guard) = LogSink::new(output.clone());
        std::thread::sleep(FLUSH_EVERY * 10);
        assert_eq!(
            output.flushes.load(Ordering::Acquire),
            0,
            "woke with nothing to write"
        );
        sink.make_writer().write_all(b"one line\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while output.flushes.load(Ordering::Acquire) == 0 {
            assert!(std::time::Instant::now() < deadline, "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(FLUSH_EVERY * 10);
        assert_eq!(
            output.flushes.load(Ordering::Acquire),
            1,
            "one line, one write"
        );
        assert_eq!(output.text(), "one line\n");
    }

    #[test]
    fn a_stuck_output_never_blocks_a_caller_and_the_dropped_lines_are_counted() {
        let output = Output::default();
        output.stuck.store(true, Ordering::Release);
        let (sink, guard) = LogSink::with_capacity(output.clone(), 1000);
        // All 100 lines arrive within the writer's 10 ms wait: what fits in
        // the buffer is kept, the rest is dropped, and the writer then hangs
        // on the stuck output until the test frees it.
        let started = std::time::Instant::now();
        for i in 0..100 {
            sink.make_writer()
                .write_all(format!("line {i:02} padding to 50 bytes........\n").as_bytes())
                .unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "callers waited for a stuck output: {:?}",
            started.elapsed()
        );
        output.stuck.store(false, Ordering::Release);
        drop(guard);
        let text = output.text();
        let kept = text.lines().filter(|l| l.starts_with("line ")).count();
        let dropped_line = text
            .lines()
            .find(|l| l.contains("log lines dropped"))
            .expect("the drop is reported");
        let dropped: usize = dropped_line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .expect("a count");
        assert!(kept >= 20, "a full buffer's worth is kept: {kept}");
        assert!(dropped > 0);
        assert_eq!(kept + dropped, 100, "{text}");
    }
}
