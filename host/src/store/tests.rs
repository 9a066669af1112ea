//! The store test suite: written once against `Arc<dyn Store>` and run on
//! both backends, as `store::tests::sqlite::<name>` and
//! `store::tests::postgres::<name>`.
//!
//! Postgres tests use the machine's server at [`PG_ADMIN_URL`] (trust
//! auth), each in a fresh database dropped afterwards. If the server is
//! unreachable they print `SKIP` and return, unless
//! `HOOKYARD_TEST_SERVICES=require`, where they fail.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;

use super::{
    open, redact_url, Cutoffs, EventId, EventQuery, GroupCommitConfig, HeaderValueRepr, NewEvent,
    Purged, Retention, SqliteSynchronous, Store, StoreConfig, StoreError,
};

/// The Postgres server the tests create their databases on.
const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// One test's private database.
#[derive(Clone)]
struct TestDb {
    url: String,
    /// Postgres: the database to drop at the end.
    pg_name: Option<String>,
    /// SQLite: the directory holding the file, removed on drop.
    _dir: Option<Arc<TempDir>>,
}

impl TestDb {
    /// A fresh database, or None when the backend's service is unreachable
    /// and not required (the skip is printed).
    async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                // A subdirectory that does not exist yet: open must create it.
                let url = format!("sqlite://{}/data/events.db", dir.path().display());
                Some(Self {
                    url,
                    pg_name: None,
                    _dir: Some(Arc::new(dir)),
                })
            }
            Backend::Postgres => {
                let mut admin = pg_admin().await?;
                let name = format!(
                    "hookyard_test_{}",
                    ulid::Ulid::new().to_string().to_lowercase()
                );
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut admin)
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
                Some(Self {
                    url,
                    pg_name: Some(name),
                    _dir: None,
                })
            }
        }
    }

    fn config(&self, group_commit: GroupCommitConfig) -> StoreConfig {
        StoreConfig {
            url: self.url.clone(),
            sqlite_synchronous: SqliteSynchronous::Full,
            group_commit,
            retention: Retention::default(),
        }
    }

    async fn open(&self) -> Arc<dyn Store> {
        self.open_with(GroupCommitConfig::default()).await
    }

    async fn open_with(&self, group_commit: GroupCommitConfig) -> Arc<dyn Store> {
        open(&self.config(group_commit)).await.expect("open store")
    }

    /// Drops the Postgres database (best effort: a leftover is harmless).
    async fn destroy(&self) {
        if let Some(name) = &self.pg_name {
            if let Some(mut admin) = pg_admin().await {
                let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                if let Err(e) = sqlx::query(&sql).execute(&mut admin).await {
                    eprintln!("warning: could not drop test database {name}: {e}");
                }
                let _ = admin.close().await;
            }
        }
    }
}

/// A connection to the admin database, or None (after printing SKIP) when
/// the server is unreachable and `HOOKYARD_TEST_SERVICES` is not `require`.
async fn pg_admin() -> Option<PgConnection> {
    let connect = PgConnection::connect(PG_ADMIN_URL);
    let error = match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(conn)) => return Some(conn),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out after 5 s".to_string(),
    };
    let url = redact_url(PG_ADMIN_URL);
    if std::env::var("HOOKYARD_TEST_SERVICES").as_deref() == Ok("require") {
        panic!("postgres unreachable at {url} ({error}) and HOOKYARD_TEST_SERVICES=require");
    }
    eprintln!("SKIP: postgres unreachable at {url} ({error})");
    None
}

/// Runs `test` on a fresh database of `backend`, then drops the database
/// even if the test panicked (the test runs in its own task for that).
async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let outcome = tokio::spawn(test(db.clone())).await;
    db.destroy().await;
    if let Err(error) = outcome {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("test task did not finish: {error}"),
        }
    }
}

/// Generates `sqlite::<name>` and `postgres::<name>` for each suite test.
/// The flavor is the tokio runtime the test needs.
macro_rules! suite {
    ($($flavor:tt $name:ident;)*) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = $flavor)]
                async fn $name() {
                    super::run(super::Backend::Sqlite, super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = $flavor)]
                async fn $name() {
                    super::run(super::Backend::Postgres, super::$name).await;
                }
            )*
        }
    };
}

suite! {
    "multi_thread" insert_then_get_round_trips_every_field;
    "multi_thread" events_are_listed_newest_first_filtered_and_paged;
    "multi_thread" duplicate_key_returns_the_first_id;
    "multi_thread" same_key_in_another_source_is_another_event;
    "multi_thread" concurrent_inserts_are_each_answered_correctly;
    "multi_thread" rows_and_duplicates_survive_close_and_reopen;
    // current_thread: the burst below is sent before the writer can run.
    "current_thread" a_full_queue_sheds_load;
    "multi_thread" find_event_by_key_finds_the_stored_event;
    "multi_thread" ping_answers_until_closed;
    "multi_thread" purged_bodies_keep_their_keys_until_key_retention;
    "multi_thread" retention_goes_by_receive_time_not_by_id_alone;
    "multi_thread" claims_lease_events_and_outcomes_land_with_runs_and_deliveries;
    "multi_thread" an_event_twice_in_one_batch_applies_its_first_outcome_only;
    "multi_thread" a_new_event_is_due_for_a_sweep_only_after_the_grace;
    "multi_thread" concurrent_claimers_never_share_an_event;
    "multi_thread" a_delivery_twice_in_one_batch_applies_in_order;
    "multi_thread" deliveries_are_claimed_per_sink_under_a_lease_and_finished_with_history;
    "multi_thread" dead_letters_are_listed_and_sent_again_with_a_fresh_budget;
    "multi_thread" released_deliveries_are_due_at_once;
    "multi_thread" deliveries_handed_off_in_memory_are_leased_from_the_start;
    "multi_thread" replays_queue_finished_events_for_dispatch_again;
    "multi_thread" retention_purges_done_deliveries_only;
    "multi_thread" concurrent_delivery_claimers_never_share_a_delivery;
}

#[path = "tests_delivery.rs"]
mod delivery_cases;
use delivery_cases::{
    a_delivery_twice_in_one_batch_applies_in_order,
    concurrent_delivery_claimers_never_share_a_delivery,
    dead_letters_are_listed_and_sent_again_with_a_fresh_budget,
    deliveries_are_claimed_per_sink_under_a_lease_and_finished_with_history,
    deliveries_handed_off_in_memory_are_leased_from_the_start, released_deliveries_are_due_at_once,
    replays_queue_finished_events_for_dispatch_again, retention_purges_done_deliveries_only,
};

#[path = "tests_dispatch.rs"]
mod dispatch_cases;
use dispatch_cases::{
    a_new_event_is_due_for_a_sweep_only_after_the_grace,
    an_event_twice_in_one_batch_applies_its_first_outcome_only,
    claims_lease_events_and_outcomes_land_with_runs_and_deliveries,
    concurrent_claimers_never_share_an_event,
};

fn event(source: &str, key: &str) -> NewEvent {
    NewEvent {
        id: EventId::generate(),
        source: source.into(),
        idem_key: key.into(),
        method: "POST".into(),
        path: format!("/webhooks/{source}"),
        headers: vec![(
            "content-type".into(),
            HeaderValueRepr::Text("application/json".into()),
        )],
        body: Bytes::from(format!(r#"{{"key":"{key}"}}"#)),
        received_at_ms: 1_700_000_000_000,
        verification: "github".into(),
        dispatch: true,
    }
}

/// `ev` as received at `ms`, with an id made the way ingest makes it.
fn received_at(mut ev: NewEvent, ms: i64) -> NewEvent {
    ev.received_at_ms = ms;
    ev.id = EventId::received_at(ms);
    ev
}

async fn insert_then_get_round_trips_every_field(db: TestDb) {
    let store = db.open().await;
    let mut ev = event("github", "delivery-1");
    ev.method = "PUT".into();
    ev.path = "/webhooks/github?x=1&y=%20".into();
    ev.headers = vec![
        (
            "x-github-event".into(),
            HeaderValueRepr::Text("push".into()),
        ),
        (
            "x-raw".into(),
            HeaderValueRepr::Bytes(vec![0xff, 0x00, 0x80]),
        ),
        ("x-empty".into(), HeaderValueRepr::Text(String::new())),
        (
            "x-github-event".into(),
            HeaderValueRepr::Text("repeated, kept in order".into()),
        ),
    ];
    // Not UTF-8, with a NUL: bodies are stored as bytes, never as text.
    ev.body = Bytes::from_static(&[0x00, 0xff, 0xfe, b'{', 0xc3, 0x28, 0x00]);
    ev.received_at_ms = 1_712_345_678_901;
    ev.verification = "hmac-sha256".into();

    let inserted = store.insert_event(ev.clone()).await.unwrap();
    assert_eq!(inserted.id, ev.id);
    assert!(!inserted.duplicate);

    let stored = store
        .get_event(&ev.id)
        .await
        .unwrap()
        .expect("stored event");
    assert_eq!(stored.id, ev.id);
    assert_eq!(stored.source, ev.source);
    assert_eq!(stored.idem_key, ev.idem_key);
    assert_eq!(stored.method, ev.method);
    assert_eq!(stored.path, ev.path);
    assert_eq!(stored.headers, ev.headers);
    assert_eq!(stored.body, ev.body.to_vec());
    assert_eq!(stored.received_at_ms, ev.received_at_ms);
    assert_eq!(stored.verification, ev.verification);
    assert_eq!(stored.status, "received");

    let unknown = EventId::generate();
    assert_eq!(store.get_event(&unknown).await.unwrap(), None);
    store.close().await;
}

async fn events_are_listed_newest_first_filtered_and_paged(db: TestDb) {
    let store = db.open().await;
    let mut ids = Vec::new();
    for (i, source) in ["github", "stripe", "github", "github", "stripe"]
        .iter()
        .enumerate()
    {
        let mut ev = event(source, &format!("list-{i}"));
        // Ids sort by creation: generate them in order, a millisecond apart.
        ev.id = EventId::from_string(format!(
            "evt_{}",
            ulid::Ulid::from_parts(1_000 + i as u64, 0)
        ));
        ev.received_at_ms = 1_700_000_000_000 + i as i64 * 1_000;
        ids.push(store.insert_event(ev).await.unwrap().id);
    }
    let list = |q: EventQuery| {
        let store = store.clone();
        async move {
            store
                .list_events(q)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        }
    };
    let id = |i: usize| ids[i].as_str().to_string();
    let page = list(EventQuery {
        limit: 2,
        ..EventQuery::default()
    })
    .await;
    assert_eq!(page, [id(4), id(3)], "newest first");
    let next = list(EventQuery {
        limit: 2,
        before_id: Some(id(3)),
        ..EventQuery::default()
    })
    .await;
    assert_eq!(
        next,
        [id(2), id(1)],
        "the cursor continues where the page ended"
    );
    let github = list(EventQuery {
        source: Some("github".into()),
        limit: 10,
        ..EventQuery::default()
    })
    .await;
    assert_eq!(github, [id(3), id(2), id(0)]);
    let window = list(EventQuery {
        since_ms: Some(1_700_000_001_000),
        until_ms: Some(1_700_000_003_000),
        limit: 10,
        ..EventQuery::default()
    })
    .await;
    assert_eq!(window, [id(2), id(1)], "since inclusive, until exclusive");
    let none = list(EventQuery {
        status: Some("processed".into()),
        limit: 10,
        ..EventQuery::default()
    })
    .await;
    assert!(none.is_empty());
    let first = store
        .list_events(EventQuery {
            limit: 1,
            ..EventQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(first[0].source, "stripe");
    assert_eq!(first[0].status, "received");
    assert_eq!(first[0].body_bytes, r#"{"key":"list-4"}"#.len() as i64);
    store.close().await;
}

async fn duplicate_key_returns_the_first_id(db: TestDb) {
    let store = db.open().await;
    let first = event("stripe", "evt_1");
    let mut retry = event("stripe", "evt_1");
    retry.body = Bytes::from_static(b"a different body");

    let a = store.insert_event(first.clone()).await.unwrap();
    let b = store.insert_event(retry.clone()).await.unwrap();
    assert_eq!((a.id.clone(), a.duplicate), (first.id.clone(), false));
    assert_eq!((b.id, b.duplicate), (first.id.clone(), true));
    assert_eq!(store.count_events().await.unwrap(), 1);
    // Nothing of the retry was written.
    assert_eq!(store.get_event(&retry.id).await.unwrap(), None);
    let stored = store.get_event(&first.id).await.unwrap().unwrap();
    assert_eq!(stored.body, first.body.to_vec());
    store.close().await;
}

async fn same_key_in_another_source_is_another_event(db: TestDb) {
    let store = db.open().await;
    let a = store.insert_event(event("github", "same")).await.unwrap();
    let b = store.insert_event(event("shopify", "same")).await.unwrap();
    assert!(!a.duplicate && !b.duplicate);
    assert_ne!(a.id, b.id);
    assert_eq!(store.count_events().await.unwrap(), 2);
    store.close().await;
}

/// Inserts `n` events from concurrent tasks; every fifth one repeats the
/// previous key (20% duplicates). Returns (key, answer) pairs.
async fn insert_concurrently(
    store: &Arc<dyn Store>,
    source: &str,
    n: usize,
) -> Vec<(String, Result<super::Inserted, StoreError>)> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            let key = format!("k{}", if i % 5 == 4 { i - 1 } else { i });
            let ev = event(source, &key);
            tokio::spawn(async move {
                let answer = store.insert_event(ev).await;
                (key, answer)
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

async fn concurrent_inserts_are_each_answered_correctly(db: TestDb) {
    let store = db.open().await;
    let answers = insert_concurrently(&store, "load", 200).await;

    let mut by_key: HashMap<String, Vec<super::Inserted>> = HashMap::new();
    for (key, answer) in answers {
        by_key.entry(key).or_default().push(answer.expect("insert"));
    }
    assert_eq!(by_key.len(), 160);
    let mut ids = HashSet::new();
    for (key, answers) in &by_key {
        let firsts = answers.iter().filter(|a| !a.duplicate).count();
        assert_eq!(
            firsts, 1,
            "key {key}: exactly one insert stores it: {answers:?}"
        );
        assert!(
            answers.iter().all(|a| a.id == answers[0].id),
            "key {key}: one id: {answers:?}"
        );
        let stored = store.find_event_by_key("load", key).await.unwrap().unwrap();
        assert_eq!(stored.id, answers[0].id);
        assert!(ids.insert(stored.id), "distinct keys have distinct ids");
    }
    assert_eq!(store.count_events().await.unwrap(), 160);
    store.close().await;
}

async fn rows_and_duplicates_survive_close_and_reopen(db: TestDb) {
    let store = db.open().await;
    let ev = event("github", "persisted");
    store.insert_event(ev.clone()).await.unwrap();
    store.close().await;
    assert!(matches!(
        store.insert_event(event("github", "late")).await,
        Err(StoreError::Closed)
    ));
    drop(store);

    let store = db.open().await;
    let stored = store
        .get_event(&ev.id)
        .await
        .unwrap()
        .expect("row survives reopen");
    assert_eq!(stored.body, ev.body.to_vec());
    let again = store
        .insert_event(event("github", "persisted"))
        .await
        .unwrap();
    assert_eq!((again.id, again.duplicate), (ev.id, true));
    assert_eq!(store.count_events().await.unwrap(), 1);
    store.close().await;
}

async fn a_full_queue_sheds_load(db: TestDb) {
    // One queued insert at most, one row per batch.
    let store = db
        .open_with(GroupCommitConfig {
            max_batch: 1,
            queue_capacity: 1,
        })
        .await;
    // On a current-thread runtime join_all polls every insert once before
    // the writer task can run: the first fills the queue, the rest are shed.
    let burst = (0..20).map(|i| store.insert_event(event("burst", &format!("b{i}"))));
    let answers = futures::future::join_all(burst).await;
    let stored = answers.iter().filter(|a| a.is_ok()).count();
    let shed = answers
        .iter()
        .filter(|a| matches!(a, Err(StoreError::Overloaded)))
        .count();
    assert_eq!(stored + shed, 20, "only stored or shed: {answers:?}");
    assert!(shed >= 1 && stored >= 1, "stored {stored}, shed {shed}");
    assert_eq!(store.count_events().await.unwrap(), stored as u64);
    // Shedding is momentary: once the queue drains, inserts succeed again.
    assert!(store.insert_event(event("burst", "after")).await.is_ok());
    store.close().await;
}

async fn find_event_by_key_finds_the_stored_event(db: TestDb) {
    let store = db.open().await;
    let ev = event("slack", "sha256:abc");
    store.insert_event(ev.clone()).await.unwrap();
    let found = store
        .find_event_by_key("slack", "sha256:abc")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, ev.id);
    assert_eq!(found.headers, ev.headers);
    assert_eq!(
        store
            .find_event_by_key("slack", "sha256:other")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_event_by_key("github", "sha256:abc")
            .await
            .unwrap(),
        None
    );
    store.close().await;
}

async fn ping_answers_until_closed(db: TestDb) {
    let store = db.open().await;
    store.ping().await.unwrap();
    store.close().await;
    assert!(store.ping().await.is_err());
}

#[test]
fn redact_url_hides_passwords() {
    assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(redact_url("sqlite://data/x.db"), "sqlite://data/x.db");
}

#[test]
fn synchronous_parses_config_spellings() {
    assert_eq!(
        SqliteSynchronous::parse("full"),
        Some(SqliteSynchronous::Full)
    );
    assert_eq!(
        SqliteSynchronous::parse("normal"),
        Some(SqliteSynchronous::Normal)
    );
    assert_eq!(
        SqliteSynchronous::parse("off"),
        Some(SqliteSynchronous::Off)
    );
    assert_eq!(SqliteSynchronous::parse("FULL"), None);
    assert_eq!(SqliteSynchronous::default(), SqliteSynchronous::Full);
}

#[tokio::test]
async fn in_memory_sqlite_is_refused() {
    let config = StoreConfig {
        url: "sqlite::memory:".into(),
        sqlite_synchronous: SqliteSynchronous::Full,
        group_commit: GroupCommitConfig::default(),
        retention: Retention::default(),
    };
    assert!(matches!(open(&config).await, Err(StoreError::Open { .. })));
}

#[tokio::test]
async fn postgres_errors_never_show_the_password() {
    let config = StoreConfig {
        // Port 1: nothing listens, the connect fails fast.
        url: "postgres://user:hunter2@127.0.0.1:1/db".into(),
        sqlite_synchronous: SqliteSynchronous::Full,
        group_commit: GroupCommitConfig::default(),
        retention: Retention::default(),
    };
    let error = open(&config).await.unwrap_err();
    let mut chain = format!("{error} {error:?}");
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        chain.push_str(&format!(" {cause} {cause:?}"));
        source = cause.source();
    }
    assert!(!chain.contains("hunter2"), "{chain}");
}

/// Timing of 1000 concurrent inserts (not an assertion: machines are noisy).
/// Run with `cargo test -p hookyard --lib store::tests::timing -- --ignored --nocapture`.
async fn time_concurrent_inserts(backend: Backend) {
    run(backend, move |db| async move {
        let store = db.open().await;
        // A lone insert pays a whole commit (one fsync on SQLite FULL).
        let start = Instant::now();
        for i in 0..50 {
            store
                .insert_event(event("sequential", &format!("s{i}")))
                .await
                .unwrap();
        }
        eprintln!(
            "{backend:?}: one insert at a time, {:?} each",
            start.elapsed() / 50
        );
        for round in 0..3 {
            let start = Instant::now();
            // A source per round, so every round stores 800 new rows.
            let answers = insert_concurrently(&store, &format!("round{round}"), 1000).await;
            let elapsed = start.elapsed();
            assert!(answers.iter().all(|(_, a)| a.is_ok()));
            eprintln!("{backend:?} round {round}: 1000 concurrent inserts in {elapsed:?}");
        }
        store.close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "timing, run by hand"]
async fn timing_sqlite_1000_concurrent_inserts() {
    time_concurrent_inserts(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "timing, run by hand"]
async fn timing_postgres_1000_concurrent_inserts() {
    time_concurrent_inserts(Backend::Postgres).await;
}

/// SQLite's purges find candidates by id (ids carry their receive time),
/// but the receive time decides: an id whose time is a little off its
/// `received_at_ms` (ids made before they were derived from it) is purged
/// on time, and an event received after the cutoff is never purged early,
/// whatever its id says.
async fn retention_goes_by_receive_time_not_by_id_alone(db: TestDb) {
    let store = db.open().await;
    let mut skewed = event("github", "id-300ms-later");
    skewed.received_at_ms = 1_000;
    skewed.id = EventId::received_at(1_300);
    skewed.dispatch = false;
    let mut late = event("github", "received-after-the-cutoff");
    late.received_at_ms = 5_000;
    late.id = EventId::received_at(500);
    late.dispatch = false;
    let skewed_id = store.insert_event(skewed).await.unwrap().id;
    let late_id = store.insert_event(late).await.unwrap().id;
    let cutoffs = Cutoffs {
        now_ms: 9_000,
        bodies_before_ms: Some(2_000),
        rows_before_ms: None,
        deliveries_before_ms: None,
    };
    assert_eq!(
        store.purge(cutoffs).await.unwrap(),
        Purged {
            bodies: 1,
            ..Purged::default()
        }
    );
    let skewed = store.get_event(&skewed_id).await.unwrap().unwrap();
    assert_eq!(skewed.body_purged_at_ms, Some(9_000));
    let late = store.get_event(&late_id).await.unwrap().unwrap();
    assert_eq!(late.body_purged_at_ms, None, "received after the cutoff");
    let rows = Cutoffs {
        rows_before_ms: Some(2_000),
        ..cutoffs
    };
    assert_eq!(store.purge(rows).await.unwrap().rows, 1);
    assert!(store.get_event(&skewed_id).await.unwrap().is_none());
    assert!(store.get_event(&late_id).await.unwrap().is_some());
    store.close().await;
}

/// Retention drops the raw request first and the key (the row) later: a
/// replay of a purged event is still a duplicate until its row is gone.
async fn purged_bodies_keep_their_keys_until_key_retention(db: TestDb) {
    let store = db.open().await;
    let mut old = received_at(event("github", "old-delivery"), 1_000);
    old.dispatch = false;
    let mut recent = received_at(event("github", "recent-delivery"), 5_000);
    recent.dispatch = false;
    // As old, but still waiting for dispatch: retention leaves it alone.
    let waiting = received_at(event("github", "waiting-delivery"), 1_000);
    let old_id = store.insert_event(old.clone()).await.unwrap().id;
    let recent_id = store.insert_event(recent).await.unwrap().id;
    let waiting_id = store.insert_event(waiting).await.unwrap().id;

    let bodies_only = Cutoffs {
        now_ms: 9_000,
        bodies_before_ms: Some(2_000),
        rows_before_ms: None,
        deliveries_before_ms: None,
    };
    assert_eq!(
        store.purge(bodies_only).await.unwrap(),
        Purged {
            bodies: 1,
            ..Purged::default()
        }
    );
    let purged = store.get_event(&old_id).await.unwrap().expect("row kept");
    assert!(purged.body.is_empty() && purged.headers.is_empty());
    assert_eq!(purged.body_purged_at_ms, Some(9_000));
    assert_eq!(
        (purged.source.as_str(), purged.idem_key.as_str()),
        ("github", "old-delivery")
    );
    let kept = store.get_event(&recent_id).await.unwrap().unwrap();
    assert!(!kept.body.is_empty());
    assert_eq!(kept.body_purged_at_ms, None);
    // Purging again finds nothing new.
    assert_eq!(store.purge(bodies_only).await.unwrap(), Purged::default());

    let mut replay = old.clone();
    replay.id = EventId::generate();
    let again = store.insert_event(replay.clone()).await.unwrap();
    assert_eq!((again.id, again.duplicate), (old_id.clone(), true));

    let keys_too = Cutoffs {
        rows_before_ms: Some(2_000),
        ..bodies_only
    };
    assert_eq!(
        store.purge(keys_too).await.unwrap(),
        Purged {
            rows: 1,
            ..Purged::default()
        }
    );
    assert!(store.get_event(&old_id).await.unwrap().is_none());
    assert!(store.get_event(&recent_id).await.unwrap().is_some());
    let waiting = store.get_event(&waiting_id).await.unwrap().expect("kept");
    assert!(
        !waiting.body.is_empty(),
        "undispatched events keep their body"
    );
    // Past key retention the same delivery is new again (documented).
    let after = store.insert_event(replay).await.unwrap();
    assert!(!after.duplicate);
    store.close().await;
}

/// Two processes (here: two stores) opening one new SQLite file at once
/// must not both apply the migrations (the second would fail on "table
/// events already exists").
#[tokio::test(flavor = "multi_thread")]
async fn two_stores_opening_one_new_sqlite_file_at_once_both_succeed() {
    for _ in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            url: format!("sqlite://{}/events.db", dir.path().display()),
            sqlite_synchronous: SqliteSynchronous::Full,
            group_commit: GroupCommitConfig::default(),
            retention: Retention::default(),
        };
        let (a, b) = futures::join!(
            tokio::spawn({
                let config = config.clone();
                async move { open(&config).await }
            }),
            tokio::spawn({
                let config = config.clone();
                async move { open(&config).await }
            })
        );
        let (a, b) = (
            a.unwrap().expect("first open"),
            b.unwrap().expect("second open"),
        );
        a.close().await;
        b.close().await;
    }
}
