//! `hookyard-guest`: the crate a Rust plugin author depends on.
//!
//! Placeholder until the plugin issue (#4) lands the WIT bindings, the plain
//! types and the export macro. It compiles so the workspace layout is final.
