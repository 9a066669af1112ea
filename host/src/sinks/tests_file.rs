//! The file sink on a temporary directory: partitioning by source and day,
//! the line format, rotation without losing or repeating a line, and write
//! errors turned into retries that name the path.

use std::collections::BTreeSet;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use serde_json::Value;

use super::{rfc3339_ms, write_line, FileSink};
use crate::config::{FileSinkConfig, FsyncPolicy, RetryPolicy, SinkConfig, SinkKind};
use crate::sinks::{build, Outbound, SendOutcome, Sink};

/// 2025-11-29T10:00:00Z and the next day.
const DAY1: i64 = 1_764_410_400_000;
const DAY2: i64 = DAY1 + 86_400_000;

fn outbound(id: &str, source: &str, at_ms: i64, payload: &[u8]) -> Outbound {
    Outbound {
        id: id.into(),
        event_id: format!("evt_{id}"),
        source: source.into(),
        event_at_ms: at_ms,
        attempt: 1,
        payload: Bytes::copy_from_slice(payload),
        headers: vec![],
        subject_suffix: None,
        key: None,
    }
}

fn sink(dir: &Path, template: &str, fsync: FsyncPolicy, rotate_bytes: Option<u64>) -> FileSink {
    FileSink::new(
        "archive",
        &FileSinkConfig {
            path: dir.join(template),
            fsync,
            rotate_bytes,
        },
    )
    .unwrap()
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[tokio::test]
async fn sources_and_days_partition_into_files_with_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink(
        dir.path(),
        "{source}/{date}.jsonl",
        FsyncPolicy::Always,
        None,
    );
    // Pretty JSON with a number f64 cannot hold: kept byte for byte.
    let pretty = b"{\r\n  \"big\": 12345678901234567890123,\n  \"s\": \"a b\"\n}\n";
    let mut full = outbound("dlv_1", "github", DAY1, pretty);
    full.attempt = 3;
    full.headers = vec![
        ("x-event".into(), "push".into()),
        ("accept".into(), "a".into()),
        ("accept".into(), "b".into()),
    ];
    full.subject_suffix = Some("push".into());
    full.key = Some("repo-1".into());
    let binary = outbound("dlv_2", "stripe", DAY1, b"\xff\x00not json");
    let next_day = outbound("dlv_3", "github", DAY2, b"[1,2]");
    let same_file = outbound("dlv_4", "github", DAY1, b"\"just a string\"");

    let outcomes = sink
        .send(&[full.clone(), binary, next_day, same_file])
        .await;
    assert_eq!(outcomes, vec![SendOutcome::Delivered; 4]);

    let github1 = lines(&dir.path().join("github/2025-11-29.jsonl"));
    let stripe1 = lines(&dir.path().join("stripe/2025-11-29.jsonl"));
    let github2 = lines(&dir.path().join("github/2025-11-30.jsonl"));
    assert_eq!((github1.len(), stripe1.len(), github2.len()), (2, 1, 1));

    let line = &github1[0];
    assert_eq!(line["id"], "dlv_1");
    assert_eq!(line["event_id"], "evt_dlv_1");
    assert_eq!(line["source"], "github");
    assert_eq!(line["attempt"], 3);
    let at = line["at"].as_str().unwrap();
    assert!(
        at.len() == 24 && at.ends_with('Z') && &at[10..11] == "T",
        "{at}"
    );
    assert_eq!(line["headers"]["x-event"], "push");
    assert_eq!(line["headers"]["accept"], "a, b");
    assert_eq!(line["subject_suffix"], "push");
    assert_eq!(line["key"], "repo-1");
    assert_eq!(line["payload"]["s"], "a b");
    assert!(line.get("payload_base64").is_none());
    let raw = std::fs::read_to_string(dir.path().join("github/2025-11-29.jsonl")).unwrap();
    assert!(raw.contains("\"big\": 12345678901234567890123"), "{raw}");
    assert_eq!(github1[1]["id"], "dlv_4");
    assert_eq!(github1[1]["payload"], "just a string");
    assert!(github1[1].get("subject_suffix").is_none() && github1[1].get("key").is_none());

    let line = &stripe1[0];
    assert!(line.get("payload").is_none());
    let decoded = STANDARD
        .decode(line["payload_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, b"\xff\x00not json");
    assert_eq!(github2[0]["payload"], serde_json::json!([1, 2]));
}

#[tokio::test]
async fn rotation_keeps_every_line_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink(dir.path(), "{date}.jsonl", FsyncPolicy::Batch, Some(4096));
    let payload = format!("{{\"pad\":\"{}\"}}", "p".repeat(300));
    let mut sent = BTreeSet::new();
    for n in 0..40 {
        // Batches of one and of three, so rotation meets both.
        let size = if n % 2 == 0 { 1 } else { 3 };
        let batch: Vec<Outbound> = (0..size)
            .map(|i| outbound(&format!("dlv_{n}_{i}"), "s", DAY1, payload.as_bytes()))
            .collect();
        sent.extend(batch.iter().map(|o| o.id.clone()));
        let outcomes = sink.send(&batch).await;
        assert!(outcomes.iter().all(|o| *o == SendOutcome::Delivered));
    }
    sink.close().await;

    let mut seen = Vec::new();
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            std::fs::metadata(&path).unwrap().len() <= 4096,
            "{}",
            path.display()
        );
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        seen.extend(
            lines(&path)
                .iter()
                .map(|l| l["id"].as_str().unwrap().to_string()),
        );
    }
    assert!(names.contains(&"2025-11-29.jsonl".to_string()), "{names:?}");
    assert!(
        names.contains(&"2025-11-29.1.jsonl".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"2025-11-29.2.jsonl".to_string()),
        "{names:?}"
    );
    assert_eq!(seen.len(), sent.len(), "no line lost or repeated");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), sent);
}

#[tokio::test]
async fn a_write_error_retries_only_that_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    // `blocked` is a regular file, so `blocked/<source>.jsonl` cannot exist.
    std::fs::write(dir.path().join("blocked"), b"").unwrap();
    let sink = sink(dir.path(), "{source}.jsonl", FsyncPolicy::Always, None);
    let outcomes = sink
        .send(&[
            outbound("dlv_1", "blocked/x", DAY1, b"{}"),
            outbound("dlv_2", "fine", DAY1, b"{}"),
            outbound("dlv_3", "blocked/x", DAY1, b"{}"),
        ])
        .await;
    assert_eq!(outcomes[1], SendOutcome::Delivered);
    for outcome in [&outcomes[0], &outcomes[2]] {
        let SendOutcome::Retry { error, retry_after } = outcome else {
            panic!("expected a retry: {outcome:?}");
        };
        assert!(retry_after.is_none());
        assert!(
            error.contains(&dir.path().join("blocked").display().to_string()),
            "{error}"
        );
        assert!(error.contains("failed: "), "{error}");
    }
    assert_eq!(lines(&dir.path().join("fine.jsonl")).len(), 1);
}

/// Sends that queue while a write runs share the next write and its
/// fsync (per file), and each still gets its own deliveries' outcomes:
/// 64 sends to two good files and a bad one make at most two fsyncs per
/// good file, where one write per send would make 128.
#[tokio::test]
async fn queued_sends_share_one_write_and_fsync_per_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("blocked"), b"").unwrap();
    let sink = sink(dir.path(), "{source}.jsonl", FsyncPolicy::Always, None);
    let batches: Vec<Vec<Outbound>> = (0..64)
        .map(|i| {
            vec![
                outbound(&format!("dlv_a{i}"), "a", DAY1, b"{}"),
                outbound(&format!("dlv_x{i}"), "blocked/x", DAY1, b"{}"),
                outbound(&format!("dlv_b{i}"), "b", DAY1, b"{}"),
            ]
        })
        .collect();
    let outcomes = futures::future::join_all(batches.iter().map(|batch| sink.send(batch))).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_eq!(outcome[0], SendOutcome::Delivered, "send {i}");
        assert_eq!(outcome[2], SendOutcome::Delivered, "send {i}");
        let SendOutcome::Retry { error, .. } = &outcome[1] else {
            panic!(
                "send {i}: expected a retry for the blocked file: {:?}",
                outcome[1]
            );
        };
        assert!(error.contains("blocked"), "{error}");
    }
    for (file, prefix) in [("a.jsonl", "dlv_a"), ("b.jsonl", "dlv_b")] {
        let ids: Vec<String> = lines(&dir.path().join(file))
            .iter()
            .map(|line| line["id"].as_str().unwrap().to_string())
            .collect();
        let expected: Vec<String> = (0..64).map(|i| format!("{prefix}{i}")).collect();
        assert_eq!(ids, expected, "{file}: every line once, in send order");
    }
    let fsyncs = sink.fsyncs().await;
    assert!(fsyncs <= 4, "{fsyncs} fsyncs for 64 sends to two files");
}

#[tokio::test]
async fn always_and_batch_both_write_before_answering() {
    // fsync itself cannot be observed; what both policies promise can: the
    // line is in the file when `send` answers (see the module docs for
    // what `always` adds).
    for fsync in [FsyncPolicy::Always, FsyncPolicy::Batch] {
        let dir = tempfile::tempdir().unwrap();
        let sink = sink(dir.path(), "out.jsonl", fsync, None);
        let outcomes = sink.send(&[outbound("dlv_1", "s", DAY1, b"{}")]).await;
        assert_eq!(outcomes, vec![SendOutcome::Delivered]);
        assert_eq!(lines(&dir.path().join("out.jsonl"))[0]["id"], "dlv_1");
        sink.close().await;
        // A send after close reopens the file and appends.
        sink.send(&[outbound("dlv_2", "s", DAY1, b"{}")]).await;
        assert_eq!(lines(&dir.path().join("out.jsonl")).len(), 2, "{fsync:?}");
    }
}

#[tokio::test]
async fn build_wires_the_file_sink() {
    let dir = tempfile::tempdir().unwrap();
    let sink = build(&SinkConfig {
        name: "archive".into(),
        kind: SinkKind::File(FileSinkConfig {
            path: dir.path().join("{source}.jsonl"),
            fsync: FsyncPolicy::Batch,
            rotate_bytes: None,
        }),
        max_concurrency: 512,
        rate_per_s: None,
        retry: RetryPolicy::default(),
    })
    .unwrap();
    assert_eq!(sink.max_batch(), 256);
    assert_eq!(
        sink.send(&[outbound("dlv_1", "s", DAY1, b"{}")]).await,
        vec![SendOutcome::Delivered]
    );
}

#[test]
fn lines_are_single_json_lines_and_times_are_rfc3339() {
    let mut out = Vec::new();
    write_line(
        &mut out,
        &outbound("dlv_1", "s", DAY1, b"\n\n{\"a\":\r\n1}\n"),
        "T",
    );
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.matches('\n').count(), 1);
    assert!(text.ends_with("}\n"));
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["payload"]["a"], 1);
    assert_eq!(rfc3339_ms(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
    assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339_ms(DAY1 + 61_005), "2025-11-29T10:01:01.005Z");
}
