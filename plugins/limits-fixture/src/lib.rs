//! Test fixture for the host's limits: config `mode` picks the misbehaviour
//! (`spin`: loop forever; `grow`: allocate without end; `panic`; `big`:
//! return a payload of `bytes` bytes; `error`: an internal error; `none`: no
//! action; `count`: deliver how many events this instance has handled, this
//! one included, so a test can tell a reused instance from a fresh one;
//! `clock`: deliver the WASI wall clock in milliseconds); anything else
//! delivers the body to `out` once.

use std::sync::atomic::{AtomicU32, Ordering};

use hookyard_guest::{config, export_plugin, Action, Delivery, Error, Event, Plugin};

struct Fixture;

impl Plugin for Fixture {
    fn handle(event: Event) -> Result<Vec<Action>, Error> {
        match config::get("mode").as_deref() {
            Some("spin") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("grow") => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            Some("panic") => panic!("the fixture panics on purpose"),
            Some("big") => {
                let bytes = config::get("bytes")
                    .and_then(|b| b.parse().ok())
                    .unwrap_or(0);
                Ok(vec![Action::Deliver(Delivery::to(
                    "out",
                    vec![b'x'; bytes],
                ))])
            }
            Some("error") => Err(Error::Internal("the fixture fails on purpose".into())),
            Some("none") => Ok(Vec::new()),
            Some("count") => {
                static HANDLED: AtomicU32 = AtomicU32::new(0);
                let handled = HANDLED.fetch_add(1, Ordering::Relaxed) + 1;
                Ok(vec![Action::Deliver(Delivery::to(
                    "out",
                    handled.to_string().into_bytes(),
                ))])
            }
            Some("clock") => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                Ok(vec![Action::Deliver(Delivery::to(
                    "out",
                    now.as_millis().to_string().into_bytes(),
                ))])
            }
            _ => Ok(vec![Action::Deliver(Delivery::to("out", event.body))]),
        }
    }
}

export_plugin!(Fixture);
