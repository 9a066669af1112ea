//! Hot reload under traffic: a plugin's wasm replaced ten times (written in
//! place, renamed over, copied over) while events flow; no event is lost
//! or failed, and events after each swap run the new version. Broken files
//! (garbage, a core module that is not a component) never replace it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookyard::store::{EventId, Store};
use hookyard_tests::{open_store, plugins, post, sign, sqlite_url, InProcess};
use serde_json::Value;
use sha2::{Digest, Sha256};

const SECRET: &str = "reload-test-secret";

fn version_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The three ways a deploy replaces a file.
fn replace(path: &Path, bytes: &[u8], how: usize, scratch: &Path) {
    match how % 3 {
        0 => std::fs::write(path, bytes).unwrap(),
        1 => {
            let tmp = path.with_extension("wasm.tmp");
            std::fs::write(&tmp, bytes).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
        _ => {
            let src = scratch.join("staged.wasm");
            std::fs::write(&src, bytes).unwrap();
            std::fs::copy(&src, path).unwrap();
        }
    }
}

async fn send(url: &str, n: usize) -> EventId {
    let body = format!(r#"{{"n":{n},"repository":{{"full_name":"acme/api"}}}}"#);
    let mut headers = sign::github(SECRET, &format!("reload-{n}"), body.as_bytes());
    headers.push(("X-GitHub-Event".into(), "push".into()));
    let resp = post(url, &headers, body.as_bytes()).await;
    assert_eq!(resp.status(), 200);
    let ack: Value = resp.json().await.unwrap();
    EventId::from_string(ack["id"].as_str().unwrap().into())
}

/// The version that ran the event, once it is dispatched.
async fn ran_with(store: &Arc<dyn Store>, id: &EventId) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let event = store.get_event(id).await.unwrap().unwrap();
        if event.status != "received" {
            assert_eq!(event.status, "processed", "{id}: {:?}", event.status_reason);
            let runs = store.plugin_runs(id).await.unwrap();
            return runs.last().unwrap().version.clone();
        }
        assert!(Instant::now() < deadline, "{id} never dispatched");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_swaps_under_traffic_lose_nothing_and_broken_files_never_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let plugin_dir: PathBuf = dir.join("plugins");
    std::fs::create_dir_all(&plugin_dir).unwrap();
    let wasm = plugin_dir.join("router.wasm");
    let base = std::fs::read(plugins::wasm("github-router")).unwrap();
    let versions: Vec<Vec<u8>> = (0..=10).map(|n| plugins::version_bytes(&base, n)).collect();
    std::fs::write(&wasm, &versions[0]).unwrap();
    let text = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[store]
url = "{store}"
[sinks.archive]
type = "file"
path = "{dir}/archive.jsonl"
[plugins.router]
wasm = "plugins/router.wasm"
sinks = ["archive"]
config = {{ route_push = "archive" }}
[sources.github]
verify = "github"
secrets = ["{SECRET}"]
plugin = "router"
"#,
        store = sqlite_url(dir),
        dir = dir.display(),
    );
    let router = InProcess::start_with(dir, &text).await;
    let store = open_store(&sqlite_url(dir)).await;
    let url = router.webhook("github");

    // Steady traffic beside the swaps.
    let flowing = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let traffic = {
        let (flowing, sent, url) = (flowing.clone(), sent.clone(), url.clone());
        tokio::spawn(async move {
            let mut n = 1_000;
            while flowing.load(Ordering::Relaxed) {
                let id = send(&url, n).await;
                sent.lock().unwrap().push(id);
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    let mut probe = 0;
    assert_eq!(
        ran_with(&store, &send(&url, probe).await).await,
        version_of(&versions[0])
    );
    for i in 1..=10 {
        if i == 5 {
            // Broken files: the serving version stays and events still flow.
            for broken in [&b"definitely not wasm"[..], b"\0asm\x01\0\0\0"] {
                replace(&wasm, broken, i, dir);
                tokio::time::sleep(Duration::from_millis(600)).await;
                probe += 1;
                let id = send(&url, probe).await;
                assert_eq!(ran_with(&store, &id).await, version_of(&versions[4]));
            }
        }
        replace(&wasm, &versions[i], i, dir);
        let expected = version_of(&versions[i]);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            probe += 1;
            if ran_with(&store, &send(&url, probe).await).await == expected {
                break;
            }
            assert!(Instant::now() < deadline, "swap {i} never served");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    flowing.store(false, Ordering::Relaxed);
    traffic.await.unwrap();
    let sent = sent.lock().unwrap().clone();
    assert!(
        sent.len() > 50,
        "traffic flowed during the swaps ({})",
        sent.len()
    );
    let known: Vec<String> = versions.iter().map(|v| version_of(v)).collect();
    let mut seen = std::collections::BTreeSet::new();
    for id in &sent {
        let version = ran_with(&store, id).await;
        assert!(
            known.contains(&version),
            "{id} ran an unknown version {version}"
        );
        seen.insert(version);
    }
    assert!(seen.len() >= 6, "traffic saw most versions: {}", seen.len());
    let backlog = store.backlog().await.unwrap();
    assert_eq!(backlog.undispatched, 0);
    store.close().await;
    router.stop().await.unwrap();
}
