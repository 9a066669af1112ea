//! Why an operator's request did nothing: the explanations the CLI and the
//! admin API both give when a replay or a dead-letter retry of one id
//! changed no row.

use crate::store::{EventId, Store, StoreError};

/// Why nothing was done for one id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The id names nothing stored.
    NotFound(String),
    /// It exists but is not in a state the request applies to.
    Conflict(String),
}

impl Refusal {
    /// The explanation.
    pub(crate) fn message(&self) -> &str {
        match self {
            Self::NotFound(why) | Self::Conflict(why) => why,
        }
    }
}

/// Why event `id` was not queued for replay.
pub(crate) async fn why_not_replayed(
    store: &dyn Store,
    id: &EventId,
) -> Result<Refusal, StoreError> {
    Ok(match store.get_event(id).await? {
        None => Refusal::NotFound("no such event".into()),
        Some(e) if e.status == "received" => {
            Refusal::Conflict("it is already waiting for dispatch".into())
        }
        Some(e) if e.body_purged_at_ms.is_some() => {
            Refusal::Conflict("its body was purged by retention (store.body_retention_days)".into())
        }
        Some(e) => Refusal::Conflict(format!("its status is `{}`", e.status)),
    })
}

/// Why delivery `id` was not sent again.
pub(crate) async fn why_not_retried(store: &dyn Store, id: &str) -> Result<Refusal, StoreError> {
    Ok(match store.get_delivery(id).await? {
        None => Refusal::NotFound("no such delivery".into()),
        Some(d) => Refusal::Conflict(format!("its status is `{}`, not `dead`", d.status)),
    })
}
