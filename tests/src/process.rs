//! The real `hookyard` binary as a child process: started on port 0, its
//! address read from stdout, its stderr (logs) captured to a file.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use std::io::{BufRead, BufReader};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Path of the router binary Cargo built for this test crate: beside the
/// `deps/` folder that holds the running test executable.
pub fn bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join(format!("hookyard-e2e{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not built; run the tests with cargo test",
        bin.display()
    );
    bin
}

/// A running `hookyard serve`.
#[derive(Debug)]
pub struct Router {
    child: Child,
    /// `http://127.0.0.1:PORT` (or `https://`).
    pub url: String,
    /// The file its stderr goes to.
    pub log_path: PathBuf,
    // Kept open so a later write to stdout never hits a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Router {
    /// Runs `hookyard serve --config <dir>/router.toml` with `text` as the
    /// config, in `dir`, and waits until it listens.
    pub fn start(dir: &Path, text: &str, extra_args: &[&str]) -> Self {
        let config = dir.join("router.toml");
        std::fs::write(&config, text).expect("write config");
        let log_path = dir.join(format!("router-{}.log", ulid::Ulid::new()));
        let log = std::fs::File::create(&log_path).expect("log file");
        let mut child = Command::new(bin())
            .arg("--config")
            .arg(&config)
            .args(extra_args)
            .arg("serve")
            .current_dir(dir)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn hookyard");
        let stdout = child.stdout.take().expect("stdout");
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read stdout");
        let url = line
            .trim()
            .strip_prefix("hookyard listening on ")
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                panic!("router did not start: stdout {line:?}, log:\n{log}")
            })
            .to_string();
        Self {
            child,
            url,
            log_path,
            _stdout: stdout,
        }
    }

    /// `url` + `/webhooks/{source}`.
    pub fn webhook(&self, source: &str) -> String {
        format!("{}/webhooks/{source}", self.url)
    }

    /// Sends a signal to the process.
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("kill");
    }

    /// SIGKILL: the process dies at once, as in a crash or power loss of the process.
    pub fn kill9(&mut self) {
        self.signal(Signal::SIGKILL);
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "router did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Everything it logged, once `ready` holds for it or after 5 s (then
    /// the caller's assertion shows what was there). The router writes its
    /// log in batches every 10 ms, so a line can trail the effect it
    /// reports (a metric, an answer).
    pub async fn logs_when(&self, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let logs = self.logs();
            if ready(&logs) || Instant::now() >= deadline {
                return logs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        // Never leave a router running after a test, pass or fail.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
