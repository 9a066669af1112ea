//! Routes GitHub webhooks by event type and repository, configured entirely
//! in router.toml:
//!
//! ```toml
//! [plugins.github-router]
//! wasm = "plugins/target/wasm32-wasip2/release/github_router.wasm"
//! sinks = ["archive", "ops"]
//! config = { repos = "acme/api,acme/web", route_push = "archive", route_issues = "ops" }
//! ```
//!
//! `route_<event>` names the sink for an event type (`X-GitHub-Event`);
//! `repos` (optional) lists the repositories whose events are routed.
//! Anything else is dropped with a reason. The payload is the body as
//! received; the delivery id is the key, the event type the subject suffix.

use hookyard_guest::{config, export_plugin, Action, Delivery, Error, Event, Plugin};

struct GithubRouter;

impl Plugin for GithubRouter {
    fn handle(event: Event) -> Result<Vec<Action>, Error> {
        let kind = event
            .header("x-github-event")
            .ok_or_else(|| Error::InvalidInput("no X-GitHub-Event header".into()))?
            .to_string();
        let Some(sink) = config::get(&format!("route_{kind}")) else {
            return Ok(vec![Action::Drop(format!("no route for `{kind}` events"))]);
        };
        if let Some(repos) = config::get("repos") {
            let repo = repository(&event)
                .ok_or_else(|| Error::InvalidInput("no repository.full_name in the body".into()))?;
            if !repos.split(',').any(|r| r.trim() == repo) {
                return Ok(vec![Action::Drop(format!(
                    "repository {repo} is not routed"
                ))]);
            }
        }
        let delivery = Delivery::to(sink, event.body.clone())
            .header("content-type", "application/json")
            .header("x-github-event", kind.as_str())
            .subject_suffix(kind.as_str());
        let delivery = match event.header("x-github-delivery") {
            Some(id) => delivery.key(id),
            None => delivery.key(event.id.as_str()),
        };
        Ok(vec![Action::Deliver(delivery)])
    }
}

/// `repository.full_name` of a GitHub payload, found without a JSON parser
/// (keeps the component small): the value of the first `"full_name"` after
/// `"repository"`.
fn repository(event: &Event) -> Option<String> {
    let text = event.text()?;
    let after = &text[text.find("\"repository\"")?..];
    let after = &after[after.find("\"full_name\"")? + "\"full_name\"".len()..];
    let start = after.find('"')? + 1;
    let end = start + after[start..].find('"')?;
    Some(after[start..end].to_string())
}

export_plugin!(GithubRouter);
