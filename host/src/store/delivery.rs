//! What the store keeps about delivery: due deliveries claimed per sink
//! under a lease, the result of every attempt, dead letters sent again, and
//! events queued for replay. The same types serve both backends.

use serde::Serialize;

use super::EventId;

/// A delivery a worker has claimed: everything a sink needs to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// `dlv_` + ULID: the idempotency key downstream.
    pub id: String,
    /// The event it came from.
    pub event_id: EventId,
    /// The event's source.
    pub source: String,
    /// When the event was received, unix milliseconds.
    pub event_at_ms: i64,
    /// The sink's name.
    pub sink: String,
    /// The bytes to deliver.
    pub payload: Vec<u8>,
    /// Headers or message attributes.
    pub headers: Vec<(String, String)>,
    /// Appended to the sink's subject or routing key.
    pub subject_suffix: Option<String>,
    /// The plugin's message key.
    pub msg_key: Option<String>,
    /// Attempts made before this claim (the next one is `attempts + 1`).
    pub attempts: u32,
    /// `attempts` when the current round of retries began (a dead letter
    /// sent again starts a new round with the sink's whole budget).
    pub round_start: u32,
}

/// How one attempt ended, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The sink confirmed it: `done`.
    Delivered,
    /// Failed, due again at `at_ms`.
    Retry {
        /// When a worker may take it again.
        at_ms: i64,
        /// What went wrong.
        error: String,
    },
    /// Failed for good (a permanent error, or the last attempt): `dead`.
    Dead {
        /// What went wrong.
        error: String,
    },
}

/// The result of one attempt at one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryResult {
    /// The delivery.
    pub id: String,
    /// Which attempt this was (`attempts + 1` of the claim).
    pub attempt: u32,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// When it ended, unix milliseconds.
    pub at_ms: i64,
    /// How long the send took.
    pub duration_us: u64,
}

/// A dead letter, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct DeadDelivery {
    /// The delivery's id (its idempotency key).
    pub id: String,
    /// Its event.
    pub event_id: String,
    /// The event's source.
    pub source: String,
    /// The sink.
    pub sink: String,
    /// Attempts made in all.
    pub attempts: i64,
    /// The last attempt's error.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at_ms: i64,
    /// When it died.
    pub died_at_ms: i64,
}

/// Which dead letters to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadQuery {
    /// Only this sink's.
    pub sink: Option<String>,
    /// At most this many (newest first).
    pub limit: usize,
}

/// Which dead deliveries to send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadSelector {
    /// One delivery by id.
    One(String),
    /// Every dead delivery, or every one of a sink.
    All {
        /// Only this sink's.
        sink: Option<String>,
    },
}

/// Which stored events to dispatch again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySelector {
    /// One event by id.
    One(EventId),
    /// Every event matching all of the given filters.
    Filter {
        /// Only this source's.
        source: Option<String>,
        /// Received at or after, unix milliseconds.
        since_ms: Option<i64>,
        /// Received before, unix milliseconds.
        until_ms: Option<i64>,
        /// Only events with this status (`processed`, `dropped`, `failed`).
        status: Option<String>,
    },
}

/// A failed attempt, as recorded (successful attempts show on the delivery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    /// The attempt's number, from 1.
    pub attempt: i64,
    /// When it ended.
    pub at_ms: i64,
    /// How long the send took.
    pub duration_us: i64,
    /// `retry` or `dead`.
    pub outcome: String,
    /// What went wrong.
    pub error: String,
}

impl AttemptOutcome {
    /// The delivery's `status` after this attempt.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Delivered => "done",
            Self::Retry { .. } => "pending",
            Self::Dead { .. } => "dead",
        }
    }

    /// The error, unless delivered.
    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Delivered => None,
            Self::Retry { error, .. } | Self::Dead { error } => Some(error),
        }
    }

    /// A failed attempt's `outcome` in its history: `dead` or `retry`.
    pub(super) fn history_outcome(&self) -> &'static str {
        match self {
            Self::Dead { .. } => "dead",
            Self::Delivered | Self::Retry { .. } => "retry",
        }
    }
}

impl DeliveryResult {
    /// When the delivery is due next: a retry's time, else the result's.
    pub(super) fn next_attempt_at_ms(&self) -> i64 {
        match &self.outcome {
            AttemptOutcome::Retry { at_ms, .. } => *at_ms,
            _ => self.at_ms,
        }
    }

    /// When the delivery finished: the result's time, unless a retry.
    pub(super) fn finished_at_ms(&self) -> Option<i64> {
        match self.outcome {
            AttemptOutcome::Retry { .. } => None,
            _ => Some(self.at_ms),
        }
    }
}

/// Rows changed per statement by bulk operations (dead-letter retry, bulk
/// replay): each chunk is its own short transaction, so a bulk request over
/// millions of rows never holds the write lock against ingest for long.
pub(super) const BULK_CHUNK: i64 = 1000;

/// One chunk of a replay: the filters (SQL NULL = no filter) and the
/// cursor (events after `after_id`, in id order).
#[derive(Debug, Clone)]
pub(super) struct ReplayChunk {
    pub(super) after_id: String,
    pub(super) only_id: Option<String>,
    pub(super) source: Option<String>,
    pub(super) since_ms: Option<i64>,
    pub(super) until_ms: Option<i64>,
    pub(super) status: Option<String>,
    pub(super) limit: i64,
}

/// Runs a replay as chunks of at most [`BULK_CHUNK`] events (`chunk` queues
/// one and returns the ids it queued), walking the events in id order so
/// that an event replayed, dispatched and finished meanwhile is not taken
/// a second time.
pub(super) async fn replay_in_chunks<F, Fut>(
    which: ReplaySelector,
    mut chunk: F,
) -> Result<u64, super::StoreError>
where
    F: FnMut(ReplayChunk) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>, super::StoreError>>,
{
    let mut next = match which {
        ReplaySelector::One(id) => ReplayChunk {
            after_id: String::new(),
            only_id: Some(id.as_str().to_string()),
            source: None,
            since_ms: None,
            until_ms: None,
            status: None,
            limit: 1,
        },
        ReplaySelector::Filter {
            source,
            since_ms,
            until_ms,
            status,
        } => ReplayChunk {
            after_id: String::new(),
            only_id: None,
            source,
            since_ms,
            until_ms,
            status,
            limit: BULK_CHUNK,
        },
    };
    let mut total = 0u64;
    loop {
        let ids = chunk(next.clone()).await?;
        total += ids.len() as u64;
        if (ids.len() as i64) < next.limit || next.only_id.is_some() {
            return Ok(total);
        }
        match ids.into_iter().max() {
            Some(last) => next.after_id = last,
            None => return Ok(total),
        }
    }
}

/// The columns a claim returns, in [`ClaimRow`]'s order.
macro_rules! claim_columns {
    () => {
        "id, event_id, source, event_at_ms, sink, payload, headers, subject_suffix, msg_key, \
         attempts, round_start"
    };
}
pub(super) use claim_columns;

/// A claimed `deliveries` row (the same columns on both backends).
#[derive(sqlx::FromRow)]
pub(super) struct ClaimRow {
    pub(super) id: String,
    pub(super) event_id: String,
    pub(super) source: String,
    pub(super) event_at_ms: i64,
    pub(super) sink: String,
    pub(super) payload: Vec<u8>,
    pub(super) headers: String,
    pub(super) subject_suffix: Option<String>,
    pub(super) msg_key: Option<String>,
    pub(super) attempts: i64,
    pub(super) round_start: i64,
}

impl ClaimRow {
    pub(super) fn decode(
        self,
        backend: &'static str,
    ) -> Result<ClaimedDelivery, super::StoreError> {
        let headers =
            serde_json::from_str(&self.headers).map_err(|e| super::StoreError::Corrupt {
                backend,
                id: self.id.clone(),
                reason: format!("delivery headers are not a JSON list of pairs: {e}"),
            })?;
        Ok(ClaimedDelivery {
            id: self.id,
            event_id: EventId::from_string(self.event_id),
            source: self.source,
            event_at_ms: self.event_at_ms,
            sink: self.sink,
            payload: self.payload,
            headers,
            subject_suffix: self.subject_suffix,
            msg_key: self.msg_key,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            round_start: u32::try_from(self.round_start).unwrap_or(0),
        })
    }
}

/// A `deliveries` row as the dead-letter list reads it.
#[derive(sqlx::FromRow)]
pub(super) struct DeadRow {
    id: String,
    event_id: String,
    source: String,
    sink: String,
    attempts: i64,
    last_error: Option<String>,
    created_at_ms: i64,
    finished_at_ms: Option<i64>,
}

impl DeadRow {
    pub(super) fn into_record(self) -> DeadDelivery {
        DeadDelivery {
            id: self.id,
            event_id: self.event_id,
            source: self.source,
            sink: self.sink,
            attempts: self.attempts,
            last_error: self.last_error,
            created_at_ms: self.created_at_ms,
            died_at_ms: self.finished_at_ms.unwrap_or(self.created_at_ms),
        }
    }
}

/// A `delivery_attempts` row.
#[derive(sqlx::FromRow)]
pub(super) struct AttemptRow {
    attempt: i64,
    at_ms: i64,
    duration_us: i64,
    outcome: String,
    error: String,
}

impl AttemptRow {
    pub(super) fn into_record(self) -> AttemptRecord {
        AttemptRecord {
            attempt: self.attempt,
            at_ms: self.at_ms,
            duration_us: self.duration_us,
            outcome: self.outcome,
            error: self.error,
        }
    }
}
