//! `type = "file"`: appends one JSON line per delivery to the file its path
//! template names (`{source}`, `{date}` = the event's UTC day), creating
//! parent directories as needed.
//!
//! # Line format
//!
//! One JSON object per line, fields in this order:
//!
//! | field | value |
//! | --- | --- |
//! | `id` | the delivery id (`dlv_…`): **deduplicate on it** |
//! | `event_id` | the event it came from |
//! | `source` | the event's source |
//! | `attempt` | the attempt that wrote the line, from 1 |
//! | `at` | when the line was written, RFC 3339 UTC with milliseconds (`2026-11-29T08:15:02.123Z`) |
//! | `headers` | the plugin's headers as `{name: value}` (a repeated name: values joined by `, `) |
//! | `subject_suffix` | only when the plugin set one |
//! | `key` | only when the plugin set one |
//! | `payload` | the payload itself when it is JSON: its exact bytes, except that line breaks (which JSON allows only as whitespace) become spaces |
//! | `payload_base64` | instead of `payload` when the payload is not JSON: standard base64 |
//!
//! # Delivery guarantees
//!
//! Sends queue their lines, and whichever send next holds the open files
//! writes everything queued: per file one `write_all` and, under
//! `fsync = "always"`, one fsync for all the batches that queued while the
//! previous write ran (a group commit, as the store does for events). So
//! the disk's fsync rate bounds the writes per second, not the deliveries:
//! measured in `bench/README.md` ("file sink group commit"). A delivery
//! is done once that write reached the OS (`fsync = "batch"`: a process
//! crash loses nothing, a power loss can lose about the last second, which a
//! background task fsyncs once a second) or once it was also fsynced
//! (`fsync = "always"`). A failed write or fsync retries every delivery of
//! that file in the batch; the file is truncated back to where the write
//! began when the OS allows, but a line can still be written twice (a
//! failed fsync after a good write, a crash before the answer is recorded,
//! a send cut off by the worker's time limit whose queued lines a later
//! write still carries), so consumers deduplicate on `id`.
//!
//! # Rotation
//!
//! With `rotate_bytes`, a non-empty file that a write would take past the
//! limit is first renamed to `<stem>.<n>.<ext>` (`2026-11-29.jsonl` becomes
//! `2026-11-29.1.jsonl`, with `n` the first free number from 1), and the
//! write starts a new file. One write (the batches queued together) is
//! never split, so a write larger than the limit makes one file larger
//! than the limit.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{oneshot, Mutex};

use super::file_line::{rfc3339_ms, write_line};
use super::{render, Outbound, SendOutcome, Sink, SinkError};
use crate::config::{FileSinkConfig, FsyncPolicy};

/// Open files kept; past it every handle is closed (after an fsync where
/// one is owed). Paths are per source and day, so this many is plenty.
const MAX_OPEN_FILES: usize = 64;
/// How often `fsync = "batch"` syncs what was written.
const SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Deliveries per send: big enough that a busy source costs one write a
/// batch, small enough that one batch's lines stay a few MiB at most.
const MAX_BATCH: usize = 256;

/// A file sink. Writers are serialised by one async lock over the open
/// files; the writing itself happens on the blocking pool, for every
/// batch queued by then.
#[derive(Debug)]
pub(crate) struct FileSink {
    /// The path template, checked to be UTF-8 (templates are rendered as text).
    template: String,
    fsync: FsyncPolicy,
    rotate_bytes: Option<u64>,
    /// An async lock, taken with `lock_owned` so the guard can move into
    /// `spawn_blocking`: a waiting writer parks a task, not a thread.
    state: Arc<Mutex<State>>,
    /// Batches waiting for the next holder of `state`, which writes them
    /// all. A plain lock: held only to push or to take the whole queue.
    queued: Arc<std::sync::Mutex<Vec<Queued>>>,
    /// Starts the once-a-second fsync task on the first send (a runtime is
    /// certain to exist there, not in `new`).
    syncer: Once,
}

/// The open files.
#[derive(Debug)]
struct State {
    /// The sink's name, for logs.
    sink: String,
    files: HashMap<PathBuf, Open>,
    /// Good fsyncs made by writes under `always`, for the group commit's tests.
    fsyncs: u64,
}

/// One send's lines, queued with where its results go.
#[derive(Debug)]
struct Queued {
    groups: Vec<Group>,
    answer: oneshot::Sender<Vec<GroupResult>>,
}

/// A group's deliveries (their positions in the send's batch) and the
/// result of the write that carried their lines.
type GroupResult = (Vec<usize>, Result<(), String>);

/// One open file.
#[derive(Debug)]
struct Open {
    file: File,
    /// Its size, to decide rotation without a `stat` per write.
    len: u64,
    /// Written since the last fsync.
    dirty: bool,
}

impl FileSink {
    /// Checks the template; files are opened on first use.
    pub(crate) fn new(name: &str, config: &FileSinkConfig) -> Result<Self, SinkError> {
        let Some(template) = config.path.to_str() else {
            return Err(SinkError {
                sink: name.to_string(),
                reason: format!("path {} is not valid UTF-8", config.path.display()),
            });
        };
        Ok(Self {
            template: template.to_string(),
            fsync: config.fsync,
            rotate_bytes: config.rotate_bytes,
            state: Arc::new(Mutex::new(State {
                sink: name.to_string(),
                files: HashMap::new(),
                fsyncs: 0,
            })),
            queued: Arc::default(),
            syncer: Once::new(),
        })
    }

    /// Fsyncs made by writes under `fsync = "always"` so far.
    #[cfg(test)]
    async fn fsyncs(&self) -> u64 {
        self.state.lock().await.fsyncs
    }

    /// Spawns the task that fsyncs dirty files once a second. It holds only
    /// a weak reference, so it ends when the sink is dropped.
    fn start_syncer(&self) {
        if self.fsync != FsyncPolicy::Batch {
            return;
        }
        self.syncer.call_once(|| {
            tokio::spawn(sync_every_second(Arc::downgrade(&self.state)));
        });
    }
}

#[async_trait::async_trait]
impl Sink for FileSink {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    async fn send(&self, batch: &[Outbound]) -> Vec<SendOutcome> {
        self.start_syncer();
        let at = rfc3339_ms(crate::clock::now_ms());
        // Group lines by target file, in the order files first appear.
        let mut groups: Vec<Group> = Vec::new();
        for (index, outbound) in batch.iter().enumerate() {
            let path = PathBuf::from(render(
                &self.template,
                &outbound.source,
                outbound.event_at_ms,
            ));
            let group = match groups.iter().position(|g| g.path == path) {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(Group {
                        path,
                        indices: Vec::new(),
                        bytes: Vec::new(),
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            group.indices.push(index);
            write_line(&mut group.bytes, outbound, &at);
        }
        let (answer, answered) = oneshot::channel();
        self.queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Queued { groups, answer });
        // Whoever holds the files next writes every batch queued by then,
        // this one included unless an earlier holder already took it.
        let guard = Arc::clone(&self.state).lock_owned().await;
        let queued =
            std::mem::take(&mut *self.queued.lock().unwrap_or_else(PoisonError::into_inner));
        if queued.is_empty() {
            drop(guard);
        } else {
            let (fsync, rotate_bytes) = (self.fsync, self.rotate_bytes);
            let task = tokio::task::spawn_blocking(move || {
                let mut state = guard;
                state.write_queued(queued, fsync, rotate_bytes);
            });
            // A failed task dropped its batches' answers: each send sees
            // that below, this one included.
            let _ = task.await;
        }
        let mut outcomes = vec![SendOutcome::Delivered; batch.len()];
        match answered.await {
            Ok(results) => {
                for (indices, result) in results {
                    if let Err(error) = result {
                        for i in indices {
                            outcomes[i] = SendOutcome::retry(error.clone());
                        }
                    }
                }
            }
            Err(_) => outcomes.fill(SendOutcome::retry(
                "file write task ended without an answer".to_string(),
            )),
        }
        outcomes
    }

    async fn close(&self) {
        let guard = Arc::clone(&self.state).lock_owned().await;
        let _ = tokio::task::spawn_blocking(move || {
            let mut state = guard;
            state.sync_dirty();
            state.files.clear();
        })
        .await;
    }
}

/// The lines of one batch bound for one file.
#[derive(Debug)]
struct Group {
    path: PathBuf,
    /// Positions in the batch of the deliveries whose lines these are.
    indices: Vec<usize>,
    bytes: Vec<u8>,
}

impl State {
    /// Writes the queued batches: per file, their lines in queue order with
    /// one write (and one fsync), then answers each batch per file.
    fn write_queued(&mut self, queued: Vec<Queued>, fsync: FsyncPolicy, rotate_bytes: Option<u64>) {
        let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
        let mut answers = Vec::with_capacity(queued.len());
        for Queued { groups, answer } in queued {
            let mut slots = Vec::with_capacity(groups.len());
            for group in groups {
                let slot = match files.iter().position(|(path, _)| *path == group.path) {
                    Some(slot) => {
                        files[slot].1.extend_from_slice(&group.bytes);
                        slot
                    }
                    None => {
                        files.push((group.path, group.bytes));
                        files.len() - 1
                    }
                };
                slots.push((group.indices, slot));
            }
            answers.push((answer, slots));
        }
        let results: Vec<Result<(), String>> = files
            .iter()
            .map(|(path, bytes)| self.write(path, bytes, fsync, rotate_bytes))
            .collect();
        for (answer, slots) in answers {
            let _ = answer.send(
                slots
                    .into_iter()
                    .map(|(indices, slot)| (indices, results[slot].clone()))
                    .collect(),
            );
        }
    }

    /// Appends `bytes` to `path` (rotating first if due) and, with
    /// `Always`, fsyncs it. The error names the path and the OS reason.
    fn write(
        &mut self,
        path: &Path,
        bytes: &[u8],
        fsync: FsyncPolicy,
        rotate_bytes: Option<u64>,
    ) -> Result<(), String> {
        if let Some(limit) = rotate_bytes {
            let len = match self.files.get(path) {
                Some(open) => Some(open.len),
                None => fs::metadata(path).ok().map(|m| m.len()),
            };
            if len.is_some_and(|len| len > 0 && len + bytes.len() as u64 > limit) {
                self.rotate(path)?;
            }
        }
        let open = self.open(path)?;
        let start = open.len;
        if let Err(e) = open.file.write_all(bytes) {
            // Cut a partial line off so the next append starts a fresh
            // line; if even that fails, the handle is dropped and the
            // size re-read on the next open.
            if open.file.set_len(start).is_err() {
                self.files.remove(path);
            }
            return Err(format!("write to {} failed: {e}", path.display()));
        }
        open.len += bytes.len() as u64;
        open.dirty = true;
        if fsync == FsyncPolicy::Always {
            if let Err(e) = open.file.sync_data() {
                // After a failed fsync the kernel may have dropped the
                // pages; nothing about this handle can be trusted.
                self.files.remove(path);
                return Err(format!("fsync of {} failed: {e}", path.display()));
            }
            open.dirty = false;
            self.fsyncs += 1;
        }
        Ok(())
    }

    /// The cached handle for `path`, opening (and creating) it if needed.
    fn open(&mut self, path: &Path) -> Result<&mut Open, String> {
        if !self.files.contains_key(path) {
            if self.files.len() >= MAX_OPEN_FILES {
                // Dropping a handle does not fsync: settle what is owed first.
                self.sync_dirty();
                self.files.clear();
            }
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)
                    .map_err(|e| format!("create directory {} failed: {e}", parent.display()))?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("open {} failed: {e}", path.display()))?;
            let len = file
                .metadata()
                .map_err(|e| format!("stat of {} failed: {e}", path.display()))?
                .len();
            self.files.insert(
                path.to_path_buf(),
                Open {
                    file,
                    len,
                    dirty: false,
                },
            );
        }
        Ok(self.files.get_mut(path).expect("inserted above"))
    }

    /// Moves `path` aside to the first free `<stem>.<n>.<ext>`.
    fn rotate(&mut self, path: &Path) -> Result<(), String> {
        if let Some(open) = self.files.remove(path) {
            if open.dirty {
                // Its last second of lines must not escape the fsync policy.
                open.file
                    .sync_data()
                    .map_err(|e| format!("fsync of {} failed: {e}", path.display()))?;
            }
        }
        let stem = path.file_stem().unwrap_or_default().to_string_lossy();
        let ext = path.extension().map(|e| e.to_string_lossy());
        for n in 1u32.. {
            let name = match &ext {
                Some(ext) => format!("{stem}.{n}.{ext}"),
                None => format!("{stem}.{n}"),
            };
            let target = path.with_file_name(name);
            if fs::symlink_metadata(&target).is_ok() {
                continue;
            }
            return fs::rename(path, &target).map_err(|e| {
                format!(
                    "rotate {} to {} failed: {e}",
                    path.display(),
                    target.display()
                )
            });
        }
        unreachable!("u32 ran out of rotation numbers")
    }

    /// Fsyncs every file written since its last fsync. A failure is logged
    /// (the deliveries were already answered) and the handle dropped.
    fn sync_dirty(&mut self) {
        let mut failed = Vec::new();
        for (path, open) in &mut self.files {
            if !open.dirty {
                continue;
            }
            match open.file.sync_data() {
                Ok(()) => open.dirty = false,
                Err(error) => {
                    tracing::error!(
                        sink = %self.sink,
                        path = %path.display(),
                        %error,
                        "Fsync failed; lines written in the last second may be lost on power failure."
                    );
                    failed.push(path.clone());
                }
            }
        }
        for path in failed {
            self.files.remove(&path);
        }
    }
}

/// `fsync = "batch"`: fsyncs dirty files every [`SYNC_INTERVAL`] until the
/// sink is gone.
async fn sync_every_second(state: Weak<Mutex<State>>) {
    let mut tick = tokio::time::interval(SYNC_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(state) = state.upgrade() else {
            return;
        };
        let guard = state.lock_owned().await;
        let _ = tokio::task::spawn_blocking(move || {
            let mut state = guard;
            state.sync_dirty();
        })
        .await;
    }
}

#[cfg(test)]
#[path = "tests_file.rs"]
mod tests;
