//! Test fixture for the host's limits: config `mode` picks the misbehaviour
//! (`spin`: loop forever; `grow`: allocate without end; `panic`; `big`:
//! return a payload of `bytes` bytes; `error`: an internal error; `none`: no
//! action); anything else delivers the body to `sink` once.

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
            _ => Ok(vec![Action::Deliver(Delivery::to("out", event.body))]),
        }
    }
}

export_plugin!(Fixture);
