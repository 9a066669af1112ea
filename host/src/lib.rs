//! Hookyard: a webhook router. Providers POST events; Hookyard verifies each
//! request on its raw bytes, stores it durably exactly once, and acknowledges.
//!
//! # Layout
//! In the order an event travels:
//! - [`config`]: router.toml schema, `${NAME}` interpolation, validation into typed values.
//! - [`ingest`]: the `POST /webhooks/{source}` handler, body limit, error responses.
//! - [`verify`]: one file per signature scheme behind the `Verifier` trait; no I/O.
//! - [`store`]: the `Store` trait with SQLite and Postgres backends and group commit.
//! - [`dispatch`]: after the ack, each stored event through its source's plugin
//!   (or to its sinks); outcomes, plugin runs and pending deliveries written together.
//! - [`plugin`]: the wasmtime runtime for plugin components (`wit/`), with limits,
//!   the registry of loaded plugins; `hookyard plugin run`.
//! - [`deliver`]: per-sink workers that claim due deliveries, send them, and
//!   retry with backoff or dead-letter them; [`sinks`]: HTTP, file, NATS,
//!   Redis and RabbitMQ behind the `Sink` trait.
//! - [`app`]: wiring, the listener (plain or TLS), graceful shutdown.
//! - [`cli`]: the `hookyard` command line (`serve`, `check`, `plugin run`,
//!   `replay`, `dlq`).
//!
//! Around them: [`secret`] (values that never print), [`cidr`] (IP allow-lists), [`telemetry`] (logs, written by [`log_sink`]),
//! [`tls`] (rustls acceptor), [`shutdown`] (signals).

pub mod admin;
mod admin_client;
pub mod app;
pub mod backlog;
pub mod cidr;
mod civil;
pub mod cli;
mod cli_events;
mod cli_ops;
mod cli_send;
mod cli_time;
pub mod clock;
pub mod config;
pub mod config_reload;
pub mod deliver;
pub mod dispatch;
pub mod ingest;
pub mod live;
pub mod log_format;
pub mod log_sink;
mod ops;
pub mod plugin;
pub mod secret;
pub mod shutdown;
pub mod sinks;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod verify;
#[cfg(test)]
mod wit_contract;
