//! The admin listener as the tests meet it: waiting until it answers,
//! scraping `/metrics`, and reading one sample of the text.

use std::time::{Duration, Instant};

use crate::client;

/// Waits (up to 20 s) for the admin listener on `port` (it binds once the
/// store is open); returns its `/healthz` answer.
pub async fn admin_up(port: u16) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match client()
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
        {
            Ok(answer) => return answer,
            Err(error) => assert!(
                Instant::now() < deadline,
                "admin listener never up: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /metrics`, with `token` as the bearer token if given.
pub async fn scrape(port: u16, token: Option<&str>) -> reqwest::Response {
    let mut request = client().get(format!("http://127.0.0.1:{port}/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// The value of the sample named exactly `series` in `text` (0 when absent).
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// `series` as a scrape with `token` reads it now.
pub async fn metric(port: u16, token: &str, series: &str) -> f64 {
    let text = scrape(port, Some(token)).await.text().await.unwrap();
    sample(&text, series)
}

/// Scrapes until `series` reaches `at_least` (panics after `limit`);
/// returns that scrape's text.
pub async fn wait_for_sample(
    port: u16,
    token: &str,
    series: &str,
    at_least: f64,
    limit: Duration,
) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let text = scrape(port, Some(token)).await.text().await.unwrap();
        if sample(&text, series) >= at_least {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{series} never reached {at_least}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
