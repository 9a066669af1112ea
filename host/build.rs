//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds
//! the migrations folder at compile time but cannot tell Cargo to watch it.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
