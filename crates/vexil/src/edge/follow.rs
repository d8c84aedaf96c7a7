//! Following one deployment upstream: the relay stream says when its revision changes, and
//! the document is fetched with `If-None-Match`. Every (re)connection fetches first, so while
//! the stream cannot be opened the follower polls with the ETag, at the back-off's pace
//! (`vexil_sdk::backoff`: 100 ms doubling to 5 s, jittered). The stream's events are parsed by
//! `vexil_sdk::sse`.

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
    /// This deployment's place in `Edge::links`.
    pub index: usize,
    pub timeout: Duration,
}

/// Why following stopped for now.
enum Lost {
    /// The upstream could not be reached or answered with an error.
    Upstream(String),
}

impl Follower {
    pub(super) async fn run(self) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            let result = match self.fetch().await {
                Ok(()) => self.follow(&mut backoff).await,
                Err(lost) => Err(lost),
            };
            let why = match result {
                Ok(()) => "the relay stream ended".to_owned(),
                Err(Lost::Upstream(why)) => why,
            };
            {
                let mut link = self.edge.link(self.index);
                if link.connected {
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

    fn request(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.upstream))
            .header("Authorization", format!("Api-Key {}", self.key.expose()))
    }

    /// Fetches the document unless the ETag still matches, and serves what it describes.
    async fn fetch(&self) -> Result<(), Lost> {
        let etag = self.edge.link(self.index).etag.clone();
        let mut request = self
            .request("/sdk/relay/v1/deployment")
            .timeout(FETCH_TIMEOUT);
        if let Some(tag) = &etag {
            request = request.header("If-None-Match", tag);
        }
        let outcome = self.fetch_with(request).await;
        self.edge.fetch_done();
        outcome
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
    async fn follow(&self, backoff: &mut Backoff) -> Result<(), Lost> {
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
