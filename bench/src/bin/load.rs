//! `load`: signed GitHub `push` webhooks against a running router, for the
//! dispatch benchmark (see bench/README.md, "Dispatch benchmark").
//!
//! Two modes, both bounded in count and time:
//! - `mode=closed`: `conns` connections each send their next request as soon
//!   as the previous one is answered, for `duration` seconds: the most the
//!   router acknowledges (what `ingest.sh` measures with wrk).
//! - `mode=open`: `rate` requests per second for `duration` seconds, whatever
//!   the answers, as providers send: request k is due at `k / rate` after the
//!   start, and the next free connection of `conns` takes it. A request taken
//!   after it was due (every connection busy) has its latency counted from
//!   when it was due, so a slow router shows in the latency instead of
//!   silently lowering the rate.
//!
//! Usage: `load http://127.0.0.1:PORT/webhooks/SOURCE key=value...` with
//! `mode` (closed), `conns` (64), `rate` (1000, open mode), `duration` (10 s),
//! `secret` (bench-github-secret), `repo` (acme/api, the body's
//! `repository.full_name`), `nonce` (random: ids never repeat across runs),
//! `threads` (2, the runtime's workers), `timeout` (10 s per request).
//!
//! Each body is 1,024 bytes of JSON whose last field is the request's
//! delivery id (also `X-GitHub-Delivery`), signed with
//! `X-Hub-Signature-256`. Prints one line `LOAD {json}`: counts (`ok` is a
//! 2xx answer with `"duplicate":false`, i.e. a stored new event), rates,
//! latency percentiles in µs, and this process's CPU seconds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The body's length: the 1 KiB of the issue's figures.
const BODY_LEN: usize = 1024;
/// Length of a delivery id: `nnnnnnnn-cccc-4000-8000-kkkkkkkkkkkk`.
const ID_LEN: usize = 36;

/// What a run is asked to do.
struct Plan {
    url: hyper::Uri,
    authority: String,
    closed: bool,
    conns: usize,
    rate: f64,
    duration: Duration,
    timeout: Duration,
    nonce: u32,
    threads: usize,
    secret: String,
    repo: String,
}

/// What one connection saw.
#[derive(Default)]
struct Tally {
    ok: u64,
    duplicate: u64,
    non_2xx: u64,
    errors: u64,
    /// Open loop: requests taken after they were due (every connection busy).
    late: u64,
    latencies_us: Vec<u32>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.duplicate += other.duplicate;
        self.non_2xx += other.non_2xx;
        self.errors += other.errors;
        self.late += other.late;
        self.latencies_us.extend(other.latencies_us);
    }
}

/// Builds signed bodies: the body up to the id is fixed, so its HMAC state
/// is computed once and a request only hashes the id and the closing bytes.
#[derive(Clone)]
struct Signer {
    prefix: String,
    mac: HmacSha256,
}

impl Signer {
    fn new(secret: &str, repo: &str) -> anyhow::Result<Self> {
        let mut prefix = format!(
            r#"{{"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","repository":{{"id":1296269,"full_name":"{repo}","private":false}},"pusher":{{"name":"octocat","email":"octocat@example.com"}},"commits":["#
        );
        let mut n = 0;
        while prefix.len() < 700 {
            prefix.push_str(&format!(
                r#"{{"id":"{n:040x}","message":"Commit {n}","author":"octocat"}},"#
            ));
            n += 1;
        }
        prefix.pop();
        prefix.push_str(r#"],"head_commit":null,"padding":""#);
        // The tail is `","delivery":"<id>"}`: pad so the whole is BODY_LEN.
        let tail = r#"","delivery":""#.len() + ID_LEN + 2;
        if prefix.len() + tail > BODY_LEN {
            bail!("repo name too long for a {BODY_LEN}-byte body");
        }
        while prefix.len() + tail < BODY_LEN {
            prefix.push('x');
        }
        prefix.push_str(r#"","delivery":""#);
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).context("HMAC key")?;
        mac.update(prefix.as_bytes());
        Ok(Self { prefix, mac })
    }

    /// The body for delivery `id` and its `X-Hub-Signature-256` value.
    fn sign(&self, id: &str) -> (Bytes, String) {
        let mut body = String::with_capacity(BODY_LEN);
        body.push_str(&self.prefix);
        body.push_str(id);
        body.push_str("\"}");
        let mut mac = self.mac.clone();
        mac.update(&body.as_bytes()[self.prefix.len()..]);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        (Bytes::from(body), signature)
    }
}

fn main() -> anyhow::Result<()> {
    let plan = plan()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(plan.threads)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let plan = Arc::new(plan);
    let signer = Signer::new(&plan.secret, &plan.repo)?;
    assert_eq!(signer.sign(&"0".repeat(ID_LEN)).0.len(), BODY_LEN);
    let cpu_before = cpu_seconds();
    let (tally, elapsed, scheduled) = runtime.block_on(run(plan.clone(), signer))?;
    let cpu = cpu_seconds() - cpu_before;
    report(&plan, &tally, elapsed, scheduled, cpu);
    Ok(())
}

/// Parses `URL key=value...`.
fn plan() -> anyhow::Result<Plan> {
    let mut args = std::env::args().skip(1);
    let url: hyper::Uri = args
        .next()
        .context("usage: load URL [key=value...]")?
        .parse()
        .context("URL")?;
    if url.scheme_str() != Some("http") {
        bail!("only http:// URLs");
    }
    let authority = url.authority().context("URL without host")?.to_string();
    let mut opts = BTreeMap::new();
    for arg in args {
        let (k, v) = arg.split_once('=').context("arguments are key=value")?;
        opts.insert(k.to_string(), v.to_string());
    }
    let mut take = |key: &str, default: &str| opts.remove(key).unwrap_or_else(|| default.into());
    let mode = take("mode", "closed");
    let nonce = match opts_nonce(&take("nonce", "")) {
        Some(n) => n,
        None => random_nonce(),
    };
    let plan = Plan {
        url,
        authority,
        closed: match mode.as_str() {
            "closed" => true,
            "open" => false,
            other => bail!("mode={other}: closed or open"),
        },
        conns: take("conns", "64").parse().context("conns")?,
        rate: take("rate", "1000").parse().context("rate")?,
        duration: Duration::from_secs_f64(take("duration", "10").parse().context("duration")?),
        timeout: Duration::from_secs_f64(take("timeout", "10").parse().context("timeout")?),
        nonce,
        threads: take("threads", "2").parse().context("threads")?,
        secret: take("secret", "bench-github-secret"),
        repo: take("repo", "acme/api"),
    };
    if let Some(key) = opts.keys().next() {
        bail!("unknown option {key}");
    }
    if plan.conns == 0 || plan.threads == 0 || plan.rate.is_nan() || plan.rate <= 0.0 {
        bail!("conns, threads and rate must be positive");
    }
    Ok(plan)
}

fn opts_nonce(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 16).ok()
}

/// Distinct per run, so ids never repeat across runs on one database.
fn random_nonce() -> u32 {
    let bytes = std::fs::read("/proc/sys/kernel/random/uuid").unwrap_or_default();
    let text: String = String::from_utf8_lossy(&bytes)
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(8)
        .collect();
    u32::from_str_radix(&text, 16).unwrap_or_else(|_| std::process::id())
}

/// Connects every connection first, then runs them until the plan is done.
async fn run(plan: Arc<Plan>, signer: Signer) -> anyhow::Result<(Tally, Duration, u64)> {
    let mut senders = Vec::with_capacity(plan.conns);
    for _ in 0..plan.conns {
        senders.push(connect(&plan).await?);
    }
    // Open loop: exactly rate x duration requests; closed: until the deadline.
    let scheduled = if plan.closed {
        u64::MAX
    } else {
        (plan.rate * plan.duration.as_secs_f64()).round() as u64
    };
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(plan.conns);
    for (conn, sender) in senders.into_iter().enumerate() {
        let (plan, signer, next) = (plan.clone(), signer.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            connection(&plan, &signer, &next, start, scheduled, conn, sender).await
        }));
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.context("connection task")?);
    }
    let elapsed = start.elapsed();
    let scheduled = if plan.closed {
        tally.ok + tally.duplicate + tally.non_2xx + tally.errors
    } else {
        scheduled
    };
    Ok((tally, elapsed, scheduled))
}

async fn connect(plan: &Plan) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(&plan.authority)
        .await
        .with_context(|| format!("connecting to {}", plan.authority))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake")?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; a broken
        // connection shows as an error on the next request.
        let _ = conn.await;
    });
    Ok(sender)
}

/// One connection's loop: take the next request number, wait until it is
/// due (open loop), send it, record the answer.
async fn connection(
    plan: &Plan,
    signer: &Signer,
    next: &AtomicU64,
    start: Instant,
    scheduled: u64,
    conn: usize,
    mut sender: SendRequest<Full<Bytes>>,
) -> Tally {
    let mut tally = Tally::default();
    let deadline = start + plan.duration;
    // Open loop: requests still due this long after the end are not sent
    // (the router is far behind; the run has failed anyway).
    let hard_stop = deadline + plan.timeout;
    let mut counter: u64 = 0;
    loop {
        let k = next.fetch_add(1, Ordering::Relaxed);
        if k >= scheduled {
            break;
        }
        let sent_from = if plan.closed {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            now
        } else {
            let due = start + Duration::from_secs_f64(k as f64 / plan.rate);
            let now = Instant::now();
            if now >= hard_stop {
                break;
            }
            if now < due {
                // Waiting for it: latency starts when it is sent, so the
                // timer's millisecond granularity is not charged to the router.
                tokio::time::sleep_until(due.into()).await;
                Instant::now()
            } else {
                if now.duration_since(due) > Duration::from_millis(1) {
                    tally.late += 1;
                }
                due
            }
        };
        let id = format!(
            "{:08x}-{:04x}-4000-8000-{:012x}",
            plan.nonce, conn as u16, counter
        );
        counter += 1;
        let (body, signature) = signer.sign(&id);
        let request = hyper::Request::post(plan.url.clone())
            .header(hyper::header::HOST, plan.authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header("x-github-event", "push")
            .header("x-github-delivery", id.as_str())
            .header("x-hub-signature-256", signature)
            .header("user-agent", "GitHub-Hookshot/bench")
            .body(Full::new(body))
            .expect("a valid request");
        let answer = tokio::time::timeout(plan.timeout, async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        })
        .await;
        let took = sent_from.elapsed();
        match answer {
            Ok(Ok((status, body))) if status.is_success() => {
                if contains(&body, br#""duplicate":false"#) {
                    tally.ok += 1;
                } else {
                    tally.duplicate += 1;
                }
                tally
                    .latencies_us
                    .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
            }
            Ok(Ok(_)) => tally.non_2xx += 1,
            Ok(Err(_)) | Err(_) => {
                tally.errors += 1;
                // The connection is in an unknown state: start a new one.
                match connect(plan).await {
                    Ok(fresh) => sender = fresh,
                    Err(_) => break,
                }
            }
        }
    }
    tally
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// This process's user + system CPU seconds (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    // USER_HZ is 100 on every Linux this runs on.
    ticks / 100.0
}

fn report(plan: &Plan, tally: &Tally, elapsed: Duration, scheduled: u64, cpu: f64) {
    let mut lat = tally.latencies_us.clone();
    lat.sort_unstable();
    let at = |q: f64| {
        if lat.is_empty() {
            0
        } else {
            lat[((lat.len() - 1) as f64 * q).round() as usize]
        }
    };
    let answered = tally.ok + tally.duplicate;
    let secs = elapsed.as_secs_f64();
    println!(
        "LOAD {{\"mode\":\"{}\",\"conns\":{},\"rate\":{},\"duration_s\":{},\"nonce\":\"{:08x}\",\
         \"scheduled\":{},\"ok\":{},\"duplicate\":{},\"non_2xx\":{},\"errors\":{},\"late\":{},\
         \"elapsed_s\":{:.3},\"rps\":{:.1},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"max_us\":{},\
         \"cpu_s\":{:.2}}}",
        if plan.closed { "closed" } else { "open" },
        plan.conns,
        if plan.closed { 0.0 } else { plan.rate },
        plan.duration.as_secs_f64(),
        plan.nonce,
        scheduled,
        tally.ok,
        tally.duplicate,
        tally.non_2xx,
        tally.errors,
        tally.late,
        secs,
        answered as f64 / secs,
        at(0.5),
        at(0.9),
        at(0.99),
        lat.last().copied().unwrap_or(0),
        cpu,
    );
}
