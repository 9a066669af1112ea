//! `hookyard-guest`: write Hookyard plugins in plain Rust.
//!
//! A plugin is a type implementing [`Plugin`], exported with
//! [`export_plugin!`], built for `wasm32-wasip2`. Authors never see the
//! generated WIT bindings: events, actions and errors are plain Rust types.
//!
//! ```no_run
//! use hookyard_guest::{export_plugin, Action, Delivery, Error, Event, Plugin};
//!
//! /// Forwards push events to the `archive` sink, drops everything else.
//! struct Pushes;
//!
//! impl Plugin for Pushes {
//!     fn handle(event: Event) -> Result<Vec<Action>, Error> {
//!         match event.header("x-github-event") {
//!             Some("push") => Ok(vec![Action::Deliver(
//!                 Delivery::to("archive", event.body.clone()).key(&event.id),
//!             )]),
//!             Some(other) => Ok(vec![Action::Drop(format!("ignoring {other} events"))]),
//!             None => Err(Error::InvalidInput("no X-GitHub-Event header".into())),
//!         }
//!     }
//! }
//!
//! export_plugin!(Pushes);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`; the
//! `.wasm` under `target/wasm32-wasip2/release/` is the component that
//! router.toml's `[plugins.NAME] wasm = "..."` names.

use std::marker::PhantomData;

/// The generated bindings of `wit/` (world `plugin`). Used by
/// [`export_plugin!`]; plugin code has no need to touch them.
#[doc(hidden)]
pub mod bindings {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    wit_bindgen::generate!({
        path: "../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "hookyard_guest::bindings",
    });
}

use bindings::exports::hookyard::router::handler::Guest;
use bindings::hookyard::router::types as wit;

/// One stored webhook request, as the router hands it to a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `evt_` + ULID; the same on every retry and replay.
    pub id: String,
    /// The source's name in router.toml.
    pub source: String,
    /// Receive time, milliseconds since the Unix epoch (a plugin's only clock).
    pub received_at_ms: u64,
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers in arrival order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The raw body, byte for byte.
    pub body: Vec<u8>,
}

impl Event {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text, if it is UTF-8.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

/// One message for one sink granted to the plugin in router.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The sink's name in router.toml.
    pub sink: String,
    /// The bytes to deliver.
    pub payload: Vec<u8>,
    /// HTTP or message headers.
    pub headers: Vec<(String, String)>,
    /// Appended to the sink's subject or routing key.
    pub subject_suffix: Option<String>,
    /// Dedupe id (NATS JetStream) or stream key (Redis Streams).
    pub key: Option<String>,
}

impl Delivery {
    /// A delivery of `payload` to `sink`, without headers or details.
    pub fn to(sink: impl Into<String>, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            sink: sink.into(),
            payload: payload.into(),
            headers: Vec::new(),
            subject_suffix: None,
            key: None,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the subject or routing-key suffix.
    pub fn subject_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.subject_suffix = Some(suffix.into());
        self
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

/// What to do with an event. Return at least one: an empty list fails the
/// event, so discarding is always explicit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Deliver a message.
    Deliver(Delivery),
    /// Discard the event on purpose, with the reason.
    Drop(String),
}

/// Why a plugin did not handle an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Refused by policy: dead-lettered, not retried.
    Rejected(String),
    /// Cannot be handled as it is: dead-lettered, not retried.
    InvalidInput(String),
    /// A failure that may pass: retried with backoff.
    Internal(String),
}

/// A plugin: one function from an event to actions.
pub trait Plugin {
    /// Handles one event.
    fn handle(event: Event) -> Result<Vec<Action>, Error>;
}

/// Lines into the router's log, tagged with the plugin and the event.
pub mod log {
    use super::bindings::hookyard::router::log::{log, Level};

    /// Detail for diagnosing a plugin (off by default).
    pub fn debug(message: &str) {
        log(Level::Debug, message);
    }
    /// Normal operation.
    pub fn info(message: &str) {
        log(Level::Info, message);
    }
    /// Something unexpected that the plugin handled.
    pub fn warn(message: &str) {
        log(Level::Warn, message);
    }
    /// Something the plugin could not handle.
    pub fn error(message: &str) {
        log(Level::Error, message);
    }
}

/// The plugin's own `config` table from router.toml.
pub mod config {
    use super::bindings::hookyard::router::config as wit;

    /// The value of `key`, if set.
    pub fn get(key: &str) -> Option<String> {
        wit::get(key)
    }

    /// Every key and value, sorted by key.
    pub fn all() -> Vec<(String, String)> {
        wit::all()
    }
}

/// Connects a [`Plugin`] to the generated export. Used by [`export_plugin!`].
#[doc(hidden)]
pub struct Adapter<P>(PhantomData<P>);

impl<P: Plugin> Guest for Adapter<P> {
    fn handle(event: wit::Event) -> Result<Vec<wit::Action>, wit::PluginError> {
        let event = Event {
            id: event.id,
            source: event.source,
            received_at_ms: event.received_at,
            method: event.method,
            path: event.path,
            headers: event.headers,
            body: event.body,
        };
        match P::handle(event) {
            Ok(actions) => Ok(actions.into_iter().map(into_wit).collect()),
            Err(Error::Rejected(why)) => Err(wit::PluginError::Rejected(why)),
            Err(Error::InvalidInput(why)) => Err(wit::PluginError::InvalidInput(why)),
            Err(Error::Internal(why)) => Err(wit::PluginError::Internal(why)),
        }
    }
}

fn into_wit(action: Action) -> wit::Action {
    match action {
        Action::Deliver(d) => wit::Action::Deliver(wit::Delivery {
            sink: d.sink,
            payload: d.payload,
            headers: d.headers,
            subject_suffix: d.subject_suffix,
            key: d.key,
        }),
        Action::Drop(why) => wit::Action::Drop(why),
    }
}

/// Exports a [`Plugin`] as the component's `handler`. Use it once, at the
/// crate root of a `cdylib` built for `wasm32-wasip2`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        type __HookyardExported = $crate::Adapter<$plugin>;
        $crate::bindings::__export_plugin_world!(
            __HookyardExported with_types_in $crate::bindings
        );
    };
}
