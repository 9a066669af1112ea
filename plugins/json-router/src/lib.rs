//! Routes JSON webhooks by the value of one field, configured entirely in
//! router.toml:
//!
//! ```toml
//! [plugins.json-router]
//! wasm = "plugins/target/wasm32-wasip2/release/json_router.wasm"
//! sinks = ["billing", "audit", "archive"]
//! config = { field = "data.object.status", "route.paid" = "billing,audit", default = "archive" }
//! ```
//!
//! `field` is a dotted path through JSON objects. `route.<value>` lists the
//! sinks (comma-separated) for events whose field is `<value>`: a string as
//! is, a number as the body wrote it, `true` or `false`. `default` lists the
//! sinks for everything else; without it the rest is dropped with a reason.
//! Each sink gets the body unchanged, keyed by the event id, with the value
//! as subject suffix when it is a string, number or boolean. The Python and
//! JavaScript twins in `examples/` do exactly the same.

use hookyard_guest::{config, export_plugin, Action, Delivery, Error, Event, Plugin};
use serde_json::Value;

struct JsonRouter;

impl Plugin for JsonRouter {
    fn handle(event: Event) -> Result<Vec<Action>, Error> {
        let field = config::get("field")
            .ok_or_else(|| Error::Rejected("config `field` is not set".into()))?;
        let body: Value = serde_json::from_slice(&event.body)
            .map_err(|e| Error::InvalidInput(format!("body is not JSON: {e}")))?;
        let found = field
            .split('.')
            .try_fold(&body, |value, segment| value.as_object()?.get(segment));
        let text = match found {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(Value::Bool(b)) => Ok(b.to_string()),
            Some(Value::Null) => Err(format!("{field} is null")),
            Some(Value::Array(_)) => Err(format!("{field} is an array")),
            Some(Value::Object(_)) => Err(format!("{field} is an object")),
            None => Err(format!("{field} is missing")),
        };
        let routed = text
            .as_ref()
            .ok()
            .and_then(|t| sinks(&format!("route.{t}")));
        let Some(chosen) = routed.or_else(|| sinks("default")) else {
            return Ok(vec![Action::Drop(match text {
                Ok(t) => format!("no route for {field} = {t}"),
                Err(why) => format!("no route: {why}"),
            })]);
        };
        Ok(chosen
            .into_iter()
            .map(|sink| {
                let delivery = Delivery::to(sink, event.body.clone())
                    .header("content-type", "application/json")
                    .key(event.id.as_str());
                Action::Deliver(match &text {
                    Ok(t) => delivery.subject_suffix(t.as_str()),
                    Err(_) => delivery,
                })
            })
            .collect())
    }
}

/// The sink names listed in config `key`, or `None` if it is unset or
/// names none.
fn sinks(key: &str) -> Option<Vec<String>> {
    let names: Vec<String> = config::get(key)?
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    (!names.is_empty()).then_some(names)
}

export_plugin!(JsonRouter);
