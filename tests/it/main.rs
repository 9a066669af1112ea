//! End-to-end tests: the real router on real sockets and real databases.
//! One integration test binary; one module per area.

mod admin;
mod allow_ips;
mod cli;
mod config_reload;
mod delivery;
mod delivery_processes;
mod dispatch;
mod durability;
mod errors;
mod handshakes;
mod hot_reload;
mod ingest;
mod languages;
mod plugins;
mod postgres;
mod presets;
mod retention;
mod shutdown;
mod tls;
