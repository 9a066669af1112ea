//! `hookyard plugin run`: one event through one plugin, no router, the
//! actions printed as JSON, so a plugin author can test without a router.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::{Limits, PluginEvent, Runtime};

/// An event file: these fields (all optional but `body` or `body_base64`);
/// any other file is taken as the raw body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    id: Option<String>,
    source: Option<String>,
    received_at_ms: Option<u64>,
    method: Option<String>,
    path: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<String>,
    body_base64: Option<String>,
}

/// Reads `path` as an event file (a JSON object with `body` or
/// `body_base64`) or, failing that, as a raw body.
pub fn read_event(path: &Path, source: &str, raw: bool) -> anyhow::Result<PluginEvent> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let spec = (!raw)
        .then(|| serde_json::from_slice::<EventFile>(&bytes).ok())
        .flatten()
        .filter(|f| f.body.is_some() || f.body_base64.is_some());
    let Some(spec) = spec else {
        return Ok(PluginEvent {
            id: "evt_offline".into(),
            source: source.into(),
            received_at: 0,
            method: "POST".into(),
            path: format!("/webhooks/{source}"),
            headers: Vec::new(),
            body: bytes,
        });
    };
    let body = match (spec.body, spec.body_base64) {
        (Some(text), None) => text.into_bytes(),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .context("body_base64 is not base64")?,
        _ => anyhow::bail!("give either body or body_base64, not both"),
    };
    let source = spec.source.unwrap_or_else(|| source.into());
    Ok(PluginEvent {
        id: spec.id.unwrap_or_else(|| "evt_offline".into()),
        path: spec.path.unwrap_or_else(|| format!("/webhooks/{source}")),
        source,
        received_at: spec.received_at_ms.unwrap_or(0),
        method: spec.method.unwrap_or_else(|| "POST".into()),
        headers: spec
            .headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect(),
        body,
    })
}

/// Runs the plugin at `wasm` on `event` with `config`; returns the JSON to
/// print and whether the plugin handled the event.
pub fn run(
    wasm: &Path,
    event: &PluginEvent,
    config: &BTreeMap<String, String>,
) -> anyhow::Result<(serde_json::Value, bool)> {
    let bytes = std::fs::read(wasm).with_context(|| format!("reading {}", wasm.display()))?;
    let runtime = Runtime::new().context("starting the plugin runtime")?;
    let plugin = runtime
        .load(&bytes)
        .with_context(|| format!("{} is not a Hookyard plugin component", wasm.display()))?;
    let name = wasm
        .file_stem()
        .map_or_else(|| "plugin".into(), |s| s.to_string_lossy().into_owned());
    Ok(
        match runtime.run(&name, &plugin, config, Limits::default(), event) {
            Ok(actions) => (
                json!({ "plugin_version": plugin.version, "actions": actions }),
                true,
            ),
            Err(error) => (
                json!({ "plugin_version": plugin.version, "error": error.to_string() }),
                false,
            ),
        },
    )
}
