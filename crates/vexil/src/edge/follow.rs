//! Following one deployment upstream: the relay stream says when its revision changes, and
//! the document is fetched with `If-None-Match`. Every (re)connection fetches first, so while
//! the stream cannot be opened the follower polls with the ETag, at the back-off's pace
//! (`vexil_sdk::backoff`: 100 ms doubling to 5 s, jittered). The stream's events are parsed by
//! `vexil_sdk::sse`.
//!
//! A client deployment's key cannot relay by itself (the upstream answers `403`
//! `relay_needs_server_key`): it is relayed with a server key of its project, named in
//! `Authorization`, the client key going in the `deployment` query parameter. The follower
//! tries the other `--key`s in order until the upstream takes one (`relay_other_project` and
//! the other refusals mean the next), keeps it while it works, and says in `/readyz` and the
//! log when none does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use vexil_core::sdk::persist;
use vexil_sdk::backoff::Backoff;
use vexil_sdk::sse::SseParser;

use super::Edge;

/// The longest line the relay stream may send (its events are small).
const MAX_LINE: usize = 64 << 10;
/// A fetch that takes longer than this is abandoned and retried.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) struct Follower {
    pub edge: Arc<Edge>,
    pub http: reqwest::Client,
    pub upstream: String,
    pub key: vexil_sdk::Secret,
    /// The other `--key`s, in order: the server keys a client deployment may be relayed with.
    pub others: Vec<vexil_sdk::Secret>,
    /// This deployment's place in `Edge::links`.
    pub index: usize,
    pub timeout: Duration,
    /// The server key `key` is relayed with, when it is a client deployment's; `None` relays
    /// with `key` itself.
    pub via: Option<vexil_sdk::Secret>,
}

/// Why following stopped for now.
enum Lost {
    /// The upstream could not be reached or answered with an error.
    Upstream(String),
    /// The upstream refused the credentials (`401` or `403`), with its code.
    Refused { status: StatusCode, code: String },
    /// `key` is a client deployment's, and no other key is a server key of its project.
    NoServerKey(String),
}

impl Lost {
    fn why(self) -> String {
        match self {
            Lost::Upstream(why) | Lost::NoServerKey(why) => why,
            Lost::Refused { status, code } => {
                format!("the upstream refused the key ({status}): {code}")
            }
        }
    }
}

impl Follower {
    pub(super) async fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let result = match self.fetch().await {
                Ok(()) => self.follow(&mut backoff).await,
                Err(lost) => Err(lost),
            };
            let unrelayable = matches!(result, Err(Lost::NoServerKey(_)));
            let why = match result {
                Ok(()) => "the relay stream ended".to_owned(),
                Err(lost) => lost.why(),
            };
            {
                let mut link = self.edge.link(self.index);
                if unrelayable && link.error.as_ref() != Some(&why) {
                    tracing::error!(key = self.index + 1, deployment = ?link.id, "{why}");
                } else if link.connected {
                    tracing::warn!(deployment = ?link.id, reason = %why, "lost the upstream; serving the last snapshot");
                }
                link.connected = false;
                link.error = Some(why);
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.edge.nudge.notified() => {}
            }
        }
    }

    /// A request for the deployment of `key`: with `key` itself, or with the server key it is
    /// relayed with.
    fn request(&self, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(format!("{}{path}", self.upstream));
        match &self.via {
            None => request.header("Authorization", format!("Api-Key {}", self.key.expose())),
            Some(server) => request
                .header("Authorization", format!("Api-Key {}", server.expose()))
                .query(&[("deployment", self.key.expose())]),
        }
    }

    /// Fetches the document unless the ETag still matches, and serves what it describes. A
    /// client deployment's key that the upstream refuses alone, or a server key it was relayed
    /// with that no longer works, sends the follower looking for a server key.
    async fn fetch(&mut self) -> Result<(), Lost> {
        let outcome = match self.fetch_once().await {
            Err(Lost::Refused { status, code })
                if self.via.is_some() || code == "relay_needs_server_key" =>
            {
                tracing::debug!(%status, %code, key = self.index + 1, "looking for a server key to relay a client deployment with");
                self.find_server_key().await
            }
            other => other,
        };
        self.edge.fetch_done();
        outcome
    }

    /// Tries the other keys, in order, as the server key to relay `key` with, until the
    /// upstream takes one; refusals of the credentials (`relay_other_project`: a server key of
    /// another project; `relay_needs_server_key`: a client key; `invalid_deployment_key`) mean
    /// the next. Any other failure stops the search until the next attempt.
    async fn find_server_key(&mut self) -> Result<(), Lost> {
        let mut refusals = Vec::new();
        for candidate in self.others.clone() {
            self.via = Some(candidate);
            match self.fetch_once().await {
                Err(Lost::Refused { code, .. }) => refusals.push(code),
                other => return other,
            }
        }
        self.via = None;
        let answers = if refusals.is_empty() {
            "no other --key was given".to_owned()
        } else {
            format!(
                "the upstream refused each of the others: {}",
                refusals.join(", ")
            )
        };
        Err(Lost::NoServerKey(format!(
            "--key number {} is a client deployment's key, which is relayed only with a server \
             key of its project, and {answers}; add a server deployment key of that project with \
             --key",
            self.index + 1
        )))
    }

    async fn fetch_once(&self) -> Result<(), Lost> {
        let etag = self.edge.link(self.index).etag.clone();
        let mut request = self
            .request("/sdk/relay/v1/deployment")
            .timeout(FETCH_TIMEOUT);
        if let Some(tag) = &etag {
            request = request.header("If-None-Match", tag);
        }
        self.fetch_with(request).await
    }

    async fn fetch_with(&self, request: reqwest::RequestBuilder) -> Result<(), Lost> {
        let response = request
            .send()
            .await
            .map_err(|e| Lost::Upstream(format!("fetching the deployment: {e}")))?;
        let status = response.status();
        let etag = response
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if status == StatusCode::NOT_MODIFIED {
            self.contact(None, etag);
            return Ok(());
        }
        if status != StatusCode::OK {
            let body = response.text().await.unwrap_or_default();
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                let code = serde_json::from_str::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("code")?.as_str().map(str::to_owned))
                    .unwrap_or_else(|| "no code".to_owned());
                return Err(Lost::Refused { status, code });
            }
            return Err(Lost::Upstream(format!(
                "the upstream answered {status}: {}",
                body.chars().take(200).collect::<String>()
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Lost::Upstream(format!("reading the deployment: {e}")))?;
        let edge = self.edge.clone();
        // Building a snapshot compiles every flag: off the async threads.
        let built = tokio::task::spawn_blocking(move || {
            let (data, snapshot) = persist::unbundle(&bytes, &|key| edge.properties(key))?;
            let id = format!("{}/{}", snapshot.project.key, snapshot.deployment.key);
            let revision = snapshot.revision;
            edge.install(data, snapshot);
            Ok::<_, vexil_core::sdk::PersistError>((id, revision))
        })
        .await
        .map_err(|e| Lost::Upstream(format!("building the snapshot: {e}")))?;
        match built {
            Ok((id, revision)) => {
                tracing::debug!(deployment = %id, revision, "following the upstream's new revision");
                self.contact(Some(id), etag);
                Ok(())
            }
            Err(err) => Err(Lost::Upstream(format!(
                "the upstream's document cannot be served: {}",
                vexil_core::error::chain(&err)
            ))),
        }
    }

    fn contact(&self, id: Option<String>, etag: Option<String>) {
        let mut link = self.edge.link(self.index);
        if id.is_some() {
            link.id = id;
        }
        if etag.is_some() {
            link.etag = etag;
        }
        link.last_contact = Some(Instant::now());
        link.error = None;
    }

    /// Follows the relay stream until it ends; every revision event whose ETag differs from
    /// the one served fetches the document.
    async fn follow(&mut self, backoff: &mut Backoff) -> Result<(), Lost> {
        let mut response = self
            .request("/sdk/relay/v1/stream")
            .header("Accept", "text/event-stream")
            .send()
            .await
            .map_err(|e| Lost::Upstream(format!("opening the relay stream: {e}")))?;
        if response.status() != StatusCode::OK {
            return Err(Lost::Upstream(format!(
                "the relay stream answered {}",
                response.status()
            )));
        }
        {
            let mut link = self.edge.link(self.index);
            if !link.connected {
                tracing::info!(deployment = ?link.id, "following the upstream");
            }
            link.connected = true;
            link.last_contact = Some(Instant::now());
            link.error = None;
        }
        backoff.reset();
        let mut parser = SseParser::new(MAX_LINE);
        loop {
            let chunk = tokio::select! {
                chunk = tokio::time::timeout(self.timeout, response.chunk()) => chunk,
                () = self.edge.nudge.notified() => {
                    self.fetch().await?;
                    continue;
                }
            };
            let chunk = match chunk {
                Err(_) => return Err(Lost::Upstream("the relay stream went silent".into())),
                Ok(Err(e)) => return Err(Lost::Upstream(format!("the relay stream broke: {e}"))),
                Ok(Ok(None)) => return Err(Lost::Upstream("the relay stream ended".into())),
                Ok(Ok(Some(chunk))) => chunk,
            };
            self.edge.link(self.index).last_contact = Some(Instant::now());
            let events = parser
                .push(&chunk)
                .map_err(|e| Lost::Upstream(e.to_string()))?;
            for event in events {
                if event.event.as_deref() != Some("revision") {
                    continue;
                }
                let etag = serde_json::from_str::<serde_json::Value>(&event.data)
                    .ok()
                    .and_then(|v| v.get("etag").and_then(|e| e.as_str()).map(str::to_owned));
                let current = self.edge.link(self.index).etag.clone();
                if etag.is_none() || etag != current {
                    self.fetch().await?;
                }
            }
        }
    }
}
