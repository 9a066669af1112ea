//! Reduces Stripe events to a compact message for a queue and keeps the full
//! event in an archive, configured in router.toml:
//!
//! ```toml
//! [plugins.stripe-reducer]
//! wasm = "plugins/target/wasm32-wasip2/release/stripe_reducer.wasm"
//! sinks = ["queue", "archive"]
//! config = { queue = "queue", archive = "archive", types = "invoice.,charge.succeeded" }
//! ```
//!
//! Events whose type starts with one of `types` (every event if unset) go to
//! the `queue` sink as `{id, type, created, livemode, object_id, object,
//! amount, amount_due, amount_paid, currency, customer, status}`: the event's
//! own fields (`null` when absent), then those of `data.object` that are
//! present. Charges and payment intents carry `amount`; invoices carry
//! `amount_due` and `amount_paid` instead, so both are copied as Stripe
//! wrote them rather than folded into one field whose meaning would depend
//! on the object. Every event goes to the `archive` sink unchanged. Both are
//! keyed by the Stripe event id; the queue message's subject suffix is the
//! event type.

use hookyard_guest::{config, export_plugin, Action, Delivery, Error, Event, Plugin};
use serde_json::Value;

struct StripeReducer;

impl Plugin for StripeReducer {
    fn handle(event: Event) -> Result<Vec<Action>, Error> {
        let body: Value = serde_json::from_slice(&event.body)
            .map_err(|e| Error::InvalidInput(format!("body is not JSON: {e}")))?;
        let text = |key: &str| {
            body.get(key)
                .and_then(Value::as_str)
                .ok_or_else(|| Error::InvalidInput(format!("no string `{key}` in the event")))
        };
        let (id, kind) = (text("id")?, text("type")?);
        let mut actions = Vec::with_capacity(2);
        if queued(kind) {
            let queue = config::get("queue").unwrap_or_else(|| "queue".into());
            let delivery = Delivery::to(queue, compact(&body))
                .header("content-type", "application/json")
                .subject_suffix(kind)
                .key(id);
            actions.push(Action::Deliver(delivery));
        }
        let archive = config::get("archive").unwrap_or_else(|| "archive".into());
        let delivery = Delivery::to(archive, event.body)
            .header("content-type", "application/json")
            .key(id);
        actions.push(Action::Deliver(delivery));
        Ok(actions)
    }
}

/// Whether an event of type `kind` goes to the queue: config `types` lists
/// type prefixes; unset, every type does.
fn queued(kind: &str) -> bool {
    config::get("types").is_none_or(|types| {
        types
            .split(',')
            .map(str::trim)
            .any(|prefix| !prefix.is_empty() && kind.starts_with(prefix))
    })
}

/// The compact message, its keys in a fixed order (written by hand: a
/// `serde_json::Map` would sort them).
fn compact(event: &Value) -> String {
    let object = &event["data"]["object"];
    let mut fields: Vec<(&str, &Value)> = ["id", "type", "created", "livemode"]
        .into_iter()
        .map(|key| (key, event.get(key).unwrap_or(&Value::Null)))
        .collect();
    for (name, key) in [
        ("object_id", "id"),
        ("object", "object"),
        ("amount", "amount"),
        ("amount_due", "amount_due"),
        ("amount_paid", "amount_paid"),
        ("currency", "currency"),
        ("customer", "customer"),
        ("status", "status"),
    ] {
        if let Some(value) = object.get(key) {
            fields.push((name, value));
        }
    }
    let members: Vec<String> = fields
        .into_iter()
        .map(|(name, value)| format!("{}:{value}", Value::from(name)))
        .collect();
    format!("{{{}}}", members.join(","))
}

export_plugin!(StripeReducer);
