//! The machine's services and the skip policy: without
//! `HOOKYARD_TEST_SERVICES=require` an unreachable service skips the test
//! with a loud `SKIP:` line; with it (CI), the test fails instead.

use sqlx::Connection;

/// Where the tests find PostgreSQL (trust auth on this machine).
pub const POSTGRES_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// True when CI demands every service.
pub fn required() -> bool {
    std::env::var("HOOKYARD_TEST_SERVICES").is_ok_and(|v| v == "require")
}

/// Skips (returns `None` after printing why) or panics, per the policy.
pub fn unavailable<T>(service: &str, why: &str) -> Option<T> {
    if required() {
        panic!("{service} is required (HOOKYARD_TEST_SERVICES=require) but unavailable: {why}");
    }
    eprintln!(
        "SKIP: {service} unavailable ({why}); set HOOKYARD_TEST_SERVICES=require to fail instead"
    );
    None
}

/// A fresh, empty Postgres database for one test; dropped by [`drop_database`].
pub async fn fresh_postgres() -> Option<String> {
    let mut admin = match sqlx::PgConnection::connect(POSTGRES_ADMIN_URL).await {
        Ok(c) => c,
        Err(e) => return unavailable("postgres", &e.to_string()),
    };
    let name = format!(
        "hookyard_it_{}",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    Some(format!("postgres://postgres@127.0.0.1:5432/{name}"))
}

/// Runs each statement of `sql` on the machine's Postgres as its admin
/// (outage tests: refusing and cutting a database's connections).
pub async fn postgres_admin(sql: &[&str]) {
    let mut admin = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL)
        .await
        .expect("connect to postgres as admin");
    for statement in sql {
        sqlx::query(statement)
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
}

/// Drops a database made by [`fresh_postgres`] (best effort).
pub async fn drop_database(url: &str) {
    let Some(name) = url.rsplit('/').next() else {
        return;
    };
    if let Ok(mut admin) = sqlx::PgConnection::connect(POSTGRES_ADMIN_URL).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
}
