//! Every preset through the running router: a request signed the way the
//! provider signs it is stored once under the documented idempotency key,
//! a tampered one is refused with 401 and stores nothing; the endpoint
//! checks of Zoom, Twitch and Discord are answered and not stored; and a
//! URL-signing source behind a proxy verifies against its `public_url`.

use hookyard_tests::sign::{self, Headers};
use hookyard_tests::sign_catalog as cat;
use hookyard_tests::{open_store, post, secrets, sqlite_url, InProcess};
use serde_json::Value;

/// Secrets of the catalog sources.
const SQUARE: &str = "square-signature-key";
const ZOOM: &str = "zoom-secret-token";
const TWITCH: &str = "twitch-eventsub-secret-0123";
const PADDLE: &str = "pdl_ntfset_test_secret";
const LINEAR: &str = "lin_wh_test_secret";
const TWILIO: &str = "twilio-auth-token";
const GITLAB: &str = "glwh-test-token";
const INTERCOM: &str = "intercom-client-secret";
const TYPEFORM: &str = "typeform-secret";
const HUBSPOT: &str = "hubspot-client-secret";
const MAILGUN: &str = "mailgun-signing-key";
const PUBLIC_TWILIO: &str = "https://hooks.example.com/twilio";

/// The harness' sources plus one per catalog preset.
fn config(dir: &std::path::Path) -> String {
    let mut text = hookyard_tests::config_toml(&sqlite_url(dir), "");
    let hmac = |name: &str, secret: &str| {
        format!("\n[sources.{name}]\nverify = \"{name}\"\nsecrets = [\"{secret}\"]\n")
    };
    for (name, secret) in [
        ("square", SQUARE),
        ("zoom", ZOOM),
        ("twitch", TWITCH),
        ("paddle", PADDLE),
        ("linear", LINEAR),
        ("twilio", TWILIO),
        ("gitlab", GITLAB),
        ("intercom", INTERCOM),
        ("typeform", TYPEFORM),
        ("hubspot", HUBSPOT),
        ("mailgun", MAILGUN),
    ] {
        text.push_str(&hmac(name, secret));
    }
    text.push_str(&format!(
        "\n[sources.discord]\nverify = \"discord\"\npublic_key = \"{}\"\n\
         \n[sources.sendgrid]\nverify = \"sendgrid\"\npublic_key = \"{}\"\n\
         \n[sources.twilio-proxied]\nverify = \"twilio\"\nsecrets = [\"{TWILIO}\"]\npublic_url = \"{PUBLIC_TWILIO}\"\n",
        cat::discord_public_key_hex(),
        cat::sendgrid_public_key(),
    ));
    text
}

/// One preset's valid request, its tampered twin and the key it must be stored under.
struct Probe {
    source: &'static str,
    headers: Headers,
    body: Vec<u8>,
    /// `None`: the body's SHA-256 (computed here).
    key: Option<String>,
    tampered: (Headers, Vec<u8>),
}

impl Probe {
    /// A probe whose tampered twin is the same headers with another body.
    fn signed(source: &'static str, headers: Headers, body: &[u8], key: Option<&str>) -> Self {
        let mut other = body.to_vec();
        other.extend_from_slice(b" ");
        Self {
            source,
            tampered: (headers.clone(), other),
            headers,
            body: body.to_vec(),
            key: key.map(str::to_owned),
        }
    }

    fn expected_key(&self) -> String {
        use sha2::Digest;
        self.key
            .clone()
            .unwrap_or_else(|| format!("sha256:{}", hex::encode(sha2::Sha256::digest(&self.body))))
    }
}

fn probes(router: &InProcess) -> Vec<Probe> {
    let now = sign::now();
    let json = |tag: &str| format!(r#"{{"event":"{tag}","n":1}}"#).into_bytes();
    let mut out = vec![
        Probe::signed(
            "github",
            sign::github(secrets::GITHUB, "gh-1", &json("gh")),
            &json("gh"),
            Some("gh-1"),
        ),
        Probe::signed(
            "stripe",
            sign::stripe(secrets::STRIPE, now, br#"{"id":"evt_p1"}"#),
            br#"{"id":"evt_p1"}"#,
            Some("evt_p1"),
        ),
        Probe::signed(
            "slack",
            sign::slack(secrets::SLACK, now, &json("sl")),
            &json("sl"),
            None,
        ),
        Probe::signed(
            "shopify",
            sign::shopify(secrets::SHOPIFY, "shop-1", &json("sh")),
            &json("sh"),
            Some("shop-1"),
        ),
        Probe::signed(
            "standard",
            sign::standard("webhook", secrets::STANDARD, "msg_p1", now, &json("sw")),
            &json("sw"),
            Some("msg_p1"),
        ),
        Probe::signed(
            "svix",
            sign::standard("svix", secrets::STANDARD, "msg_p2", now, &json("sv")),
            &json("sv"),
            Some("msg_p2"),
        ),
        Probe::signed(
            "acme",
            sign::acme(secrets::ACME, "acme-1", &json("ac")),
            &json("ac"),
            Some("acme-1"),
        ),
        Probe::signed(
            "discord",
            cat::discord(now, br#"{"type":2,"id":"i1"}"#),
            br#"{"type":2,"id":"i1"}"#,
            None,
        ),
        Probe::signed(
            "square",
            cat::square(SQUARE, &router.webhook("square"), br#"{"event_id":"sq-1"}"#),
            br#"{"event_id":"sq-1"}"#,
            Some("sq-1"),
        ),
        Probe::signed(
            "zoom",
            cat::zoom(ZOOM, now, br#"{"event":"meeting.started"}"#),
            br#"{"event":"meeting.started"}"#,
            None,
        ),
        Probe::signed(
            "twitch",
            cat::twitch(TWITCH, "tw-1", now, "notification", &json("tw")),
            &json("tw"),
            Some("tw-1"),
        ),
        Probe::signed(
            "paddle",
            cat::paddle(PADDLE, now, br#"{"event_id":"evt_pd1"}"#),
            br#"{"event_id":"evt_pd1"}"#,
            Some("evt_pd1"),
        ),
        Probe::signed(
            "intercom",
            cat::intercom(INTERCOM, &json("ic")),
            &json("ic"),
            None,
        ),
        Probe::signed(
            "typeform",
            cat::typeform(TYPEFORM, &json("tf")),
            &json("tf"),
            None,
        ),
        Probe::signed(
            "sendgrid",
            cat::sendgrid(now, b"[{\"event\":\"open\"}]\r\n"),
            b"[{\"event\":\"open\"}]\r\n",
            None,
        ),
    ];
    let linear = format!(r#"{{"action":"create","webhookTimestamp":{}}}"#, now * 1000).into_bytes();
    out.push(Probe::signed(
        "linear",
        cat::linear(LINEAR, "lin-1", &linear),
        &linear,
        None,
    ));
    let hub_url = router.webhook("hubspot");
    let hub = json("hs");
    out.push(Probe::signed(
        "hubspot",
        cat::hubspot(HUBSPOT, "POST", &hub_url, &hub, now * 1000),
        &hub,
        None,
    ));

    let params = [
        ("CallSid", "CA1"),
        ("From", "+14158675310"),
        ("Body", "hi there"),
    ];
    let (headers, body) = cat::twilio(TWILIO, &router.webhook("twilio"), &params, "tw-idem-1");
    let (_, tampered) = cat::twilio(
        TWILIO,
        &router.webhook("twilio"),
        &[("CallSid", "CA2")],
        "x",
    );
    out.push(Probe {
        source: "twilio",
        tampered: (headers.clone(), tampered),
        headers,
        body,
        key: Some("tw-idem-1".into()),
    });
    // No body integrity: the tampered twin is a wrong token.
    out.push(Probe {
        source: "gitlab",
        headers: cat::gitlab(GITLAB, "gl-idem-1"),
        body: json("gl"),
        key: Some("gl-idem-1".into()),
        tampered: (cat::gitlab("not-the-token", "gl-idem-2"), json("gl2")),
    });
    // The event data is not signed: the tampered twin has a wrong signature.
    let mailgun = cat::mailgun_body(MAILGUN, now, "mg-token-1", "delivered");
    let forged: Value = serde_json::from_slice(&mailgun).unwrap();
    let mut forged = forged;
    forged["signature"]["signature"] = Value::from("0".repeat(64));
    out.push(Probe {
        source: "mailgun",
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: mailgun,
        key: Some("mg-token-1".into()),
        tampered: (vec![], forged.to_string().into_bytes()),
    });
    out
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}

#[tokio::test]
async fn every_preset_accepts_its_provider_and_refuses_a_forgery() {
    let tmp = tempfile::tempdir().unwrap();
    let router = InProcess::start_with(tmp.path(), &config(tmp.path())).await;
    let probes = probes(&router);
    let store = open_store(&sqlite_url(tmp.path())).await;
    for probe in &probes {
        let url = router.webhook(probe.source);
        let (status, refused) =
            json_of(post(&url, &probe.tampered.0, &probe.tampered.1).await).await;
        assert_eq!(status, 401, "{}: tampered request: {refused}", probe.source);

        let (status, first) = json_of(post(&url, &probe.headers, &probe.body).await).await;
        assert_eq!(status, 200, "{}: {first}", probe.source);
        assert_eq!(first["duplicate"], false, "{}", probe.source);
        let (_, again) = json_of(post(&url, &probe.headers, &probe.body).await).await;
        assert_eq!(
            (&again["id"], &again["duplicate"]),
            (&first["id"], &Value::from(true)),
            "{}",
            probe.source
        );

        let stored = store
            .find_event_by_key(probe.source, &probe.expected_key())
            .await
            .unwrap()
            .unwrap_or_else(|| {
                panic!(
                    "{}: not stored under {}",
                    probe.source,
                    probe.expected_key()
                )
            });
        assert_eq!(
            stored.id.as_str(),
            first["id"].as_str().unwrap(),
            "{}",
            probe.source
        );
        assert_eq!(stored.body, probe.body, "{}: raw body", probe.source);
    }
    assert_eq!(
        store.count_events().await.unwrap(),
        probes.len() as u64,
        "forgeries stored nothing"
    );
    store.close().await;
    router.stop().await.unwrap();
}

#[tokio::test]
async fn endpoint_checks_are_answered_and_not_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let router = InProcess::start_with(tmp.path(), &config(tmp.path())).await;
    let now = sign::now();

    let zoom = br#"{"event":"endpoint.url_validation","payload":{"plainToken":"pt-123"}}"#;
    let (status, answer) =
        json_of(post(&router.webhook("zoom"), &cat::zoom(ZOOM, now, zoom), zoom).await).await;
    assert_eq!(status, 200);
    let mac = {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(ZOOM.as_bytes()).unwrap();
        mac.update(b"pt-123");
        hex::encode(mac.finalize().into_bytes())
    };
    assert_eq!(
        answer,
        serde_json::json!({ "plainToken": "pt-123", "encryptedToken": mac })
    );

    let twitch = br#"{"challenge":"pogchamp-kappa","subscription":{"id":"s1"}}"#;
    let headers = cat::twitch(
        TWITCH,
        "tw-verify",
        now,
        "webhook_callback_verification",
        twitch,
    );
    let resp = post(&router.webhook("twitch"), &headers, twitch).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.text().await.unwrap(), "pogchamp-kappa");

    let ping = br#"{"type":1,"id":"ping-1"}"#;
    let (status, answer) =
        json_of(post(&router.webhook("discord"), &cat::discord(now, ping), ping).await).await;
    assert_eq!((status, answer), (200, serde_json::json!({ "type": 1 })));
    // Discord probes with bad signatures: a forged PING is refused.
    let mut forged = cat::discord(now, ping);
    forged[0].1 = "00".repeat(64);
    assert_eq!(
        post(&router.webhook("discord"), &forged, ping)
            .await
            .status(),
        401
    );

    let store = open_store(&sqlite_url(tmp.path())).await;
    assert_eq!(store.count_events().await.unwrap(), 0);
    store.close().await;
    router.stop().await.unwrap();
}

#[tokio::test]
async fn behind_a_proxy_url_signing_uses_the_public_url_and_the_request_query() {
    let tmp = tempfile::tempdir().unwrap();
    let router = InProcess::start_with(tmp.path(), &config(tmp.path())).await;
    let params = [("CallSid", "CA9"), ("To", "+18005551212")];
    let url = format!("{}?tenant=7", router.webhook("twilio-proxied"));
    // Twilio signed the URL it was configured with, not the one we see.
    let (headers, body) = cat::twilio(
        TWILIO,
        &format!("{PUBLIC_TWILIO}?tenant=7"),
        &params,
        "px-1",
    );
    let (status, ack) = json_of(post(&url, &headers, &body).await).await;
    assert_eq!(status, 200, "{ack}");
    // Signed for the listen address instead: refused on this source.
    let (headers, body) = cat::twilio(TWILIO, &url, &params, "px-2");
    assert_eq!(post(&url, &headers, &body).await.status(), 401);
    router.stop().await.unwrap();
}
