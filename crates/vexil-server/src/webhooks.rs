//! The webhook delivery worker: a tokio task that claims a bounded batch of due events from
//! the outbox, posts each one signed to its webhook (a few at a time), and records every
//! attempt, which settles the event as delivered, due again after a backoff, or failed.
//!
//! Deliveries reach only public addresses unless the operator allows more (`guard`: no
//! loopback, private or metadata addresses by default), and never follow redirects.
//!
//! Delivery is at least once: an event is marked delivered only after a 2xx, and a claim is a
//! lease, so the events of a node that dies mid-delivery are taken up again when their lease
//! lapses. Receivers deduplicate by `Vexil-Webhook-Id`. The request path never waits for a
//! delivery: it only writes outbox rows, and a change wakes the worker.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use tokio::sync::{watch, Notify};
use vexil_core::service::{Attempt, ChangeListener, DueEvent, Outcome};
use vexil_core::webhooks::{signature_header, RetrySchedule};
use vexil_core::Services;

mod guard;

use guard::{Destinations, GuardedResolver};

use crate::metrics::Metrics;
use crate::proxy::IpNet;

/// The wait before claiming again after a claim failed.
const CLAIM_RETRY: Duration = Duration::from_secs(5);

/// The start of a receiver's answer kept in the delivery log.
const RESPONSE_EXCERPT: usize = 1024;

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// The waits between failed attempts; after the last one an event is marked failed.
    pub retry: RetrySchedule,
    /// How often the worker looks for due events when no change woke it (events due for a
    /// retry, test events, events other nodes queued).
    pub poll: Duration,
    /// The time a receiver has to answer.
    pub timeout: Duration,
    /// Events claimed at once (the worker's memory bound).
    pub batch: u32,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Delivered and failed events are forgotten after this long (the log stays).
    pub retention: Duration,
    /// Certificate authorities (PEM) trusted besides the public ones, for receivers behind an
    /// internal CA (`vexil serve --webhook-ca`).
    pub extra_roots: Vec<Vec<u8>>,
    /// Networks deliveries may reach although their addresses are loopback, private,
    /// link-local or otherwise special, which are refused otherwise (`vexil serve
    /// --webhook-allow-network`).
    pub allowed_networks: Vec<IpNet>,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            retry: RetrySchedule::default(),
            poll: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
            batch: 32,
            concurrency: 8,
            retention: Duration::from_secs(7 * 24 * 3600),
            extra_roots: Vec::new(),
            allowed_networks: Vec::new(),
        }
    }
}

/// Wakes the worker after every committed change, so that events go out at once.
struct Waker(Arc<Notify>);

impl ChangeListener for Waker {
    fn changed(&self, _project: &str) {
        self.0.notify_one();
    }
}

/// The running worker.
pub(crate) struct Worker {
    stop: watch::Sender<bool>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Worker {
    /// Starts the worker on the current tokio runtime.
    pub(crate) fn start(
        services: Services,
        options: WebhookOptions,
        metrics: Arc<Metrics>,
    ) -> vexil_core::Result<Worker> {
        let mut builder = reqwest::Client::builder();
        for pem in &options.extra_roots {
            let certificate = reqwest::Certificate::from_pem(pem)
                .map_err(|e| vexil_core::Error::Internal(Box::new(e)))?;
            builder = builder.add_root_certificate(certificate);
        }
        let destinations = Arc::new(Destinations::new(options.allowed_networks.clone()));
        let client = builder
            .dns_resolver(Arc::new(GuardedResolver::new(destinations.clone())))
            .timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::none())
            // Each delivery opens its own connection: receivers come and go (and move behind
            // load balancers), and an idle pooled connection to a stopped one would only fail.
            .pool_max_idle_per_host(0)
            .user_agent(concat!("Vexil-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| vexil_core::Error::Internal(Box::new(e)))?;
        let wake = Arc::new(Notify::new());
        services.subscribe(Arc::new(Waker(wake.clone())));
        let (stop, stopped) = watch::channel(false);
        let sender = Sender {
            client,
            destinations,
            metrics,
        };
        let task =
            tokio::runtime::Handle::current().spawn(run(services, options, sender, wake, stopped));
        Ok(Worker {
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops the worker. Deliveries in flight are abandoned; their events are taken up again
    /// when their lease lapses (by this node's next start or another node).
    pub(crate) async fn stop(&self) {
        let _ = self.stop.send(true);
        let task = match self.task.lock() {
            Ok(mut t) => t.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What posts the deliveries: the client, whose resolver applies the destinations policy to
/// host names, the policy for addresses written in URLs, and the metrics it counts attempts in.
struct Sender {
    client: reqwest::Client,
    destinations: Arc<Destinations>,
    metrics: Arc<Metrics>,
}

async fn run(
    services: Services,
    options: WebhookOptions,
    sender: Sender,
    wake: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    // A claim outlives the slowest delivery of a batch with a margin, so that it does not
    // lapse while this node still works on it.
    let lease = millis(options.timeout.saturating_mul(2) + Duration::from_secs(30));
    let mut last_purge = Instant::now();
    loop {
        if *stopped.borrow() {
            return;
        }
        let claim = {
            let services = services.clone();
            let batch = options.batch;
            tokio::task::spawn_blocking(move || services.webhooks.claim_due(now_ms(), lease, batch))
                .await
        };
        let due = match claim {
            Ok(Ok(due)) => Some(due),
            Ok(Err(err)) => {
                tracing::warn!(error = %vexil_core::error::chain(&err), "claiming webhook events failed; trying again in a few seconds");
                None
            }
            Err(err) => {
                tracing::error!(error = %err, "the webhook claim task failed");
                None
            }
        };
        let Some(due) = due else {
            // While the store is unreachable, try again less often than the poll interval, so
            // that an outage is not one warning per poll.
            tokio::select! {
                _ = tokio::time::sleep(options.poll.max(CLAIM_RETRY)) => {}
                _ = stopped.changed() => return,
            }
            continue;
        };
        if due.is_empty() {
            if last_purge.elapsed() > Duration::from_secs(3600) {
                last_purge = Instant::now();
                purge(&services, &options).await;
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(options.poll) => {}
                _ = stopped.changed() => return,
            }
            continue;
        }
        let batch = futures_util::stream::iter(due)
            .for_each_concurrent(options.concurrency, |due| {
                deliver_and_record(&services, &options, &sender, due)
            });
        tokio::select! {
            _ = batch => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn purge(services: &Services, options: &WebhookOptions) {
    let services = services.clone();
    let before = now_ms().saturating_sub(millis(options.retention));
    match tokio::task::spawn_blocking(move || services.webhooks.purge(before)).await {
        Ok(Ok(n)) if n > 0 => tracing::debug!(events = n, "forgot old webhook events"),
        Ok(Ok(_)) => {}
        Ok(Err(err)) => {
            tracing::warn!(error = %vexil_core::error::chain(&err), "purging old webhook events failed")
        }
        Err(err) => tracing::warn!(error = %err, "the webhook purge task failed"),
    }
}

async fn deliver_and_record(
    services: &Services,
    options: &WebhookOptions,
    sender: &Sender,
    due: DueEvent,
) {
    let (attempt, refused) = deliver(sender, &due).await;
    let services = services.clone();
    let retry = options.retry.clone();
    let (id, url) = (due.event.id.clone(), due.url.clone());
    let recorded = tokio::task::spawn_blocking(move || {
        services.webhooks.record_attempt(&due, attempt, &retry)
    })
    .await;
    if let Ok(Ok(outcome)) = &recorded {
        sender.metrics.webhook_attempt(*outcome, refused);
    }
    match recorded {
        Ok(Ok(Outcome::Delivered)) => tracing::debug!(event = %id, %url, "webhook delivered"),
        Ok(Ok(Outcome::Retry(at))) => {
            tracing::info!(event = %id, %url, retry_at = at, "webhook delivery failed; will retry")
        }
        Ok(Ok(Outcome::Failed)) => {
            tracing::warn!(event = %id, %url, "webhook delivery failed for good; no retries left")
        }
        Ok(Ok(Outcome::Gone)) => {}
        // The attempt was made but not recorded: the lease lapses and the event is sent
        // again, which at-least-once delivery allows.
        Ok(Err(err)) => {
            tracing::warn!(event = %id, error = %vexil_core::error::chain(&err), "recording a webhook attempt failed")
        }
        Err(err) => tracing::error!(event = %id, error = %err, "the webhook record task failed"),
    }
}

/// Posts one event and reports what came back, reading at most [`RESPONSE_EXCERPT`] bytes of
/// the answer, and whether the destinations guard refused it (an attempt without an answer).
async fn deliver(sender: &Sender, due: &DueEvent) -> (Attempt, bool) {
    let at = now_ms();
    let started = Instant::now();
    let timestamp = at / 1000;
    let body = due.event.payload.as_bytes();
    let finish = |status: Option<u16>, response: String, error: Option<String>| Attempt {
        at,
        status,
        response,
        error,
        duration_ms: millis(started.elapsed()),
    };
    if let Err(refused) = guard::check_url(&sender.destinations, &due.url) {
        return (finish(None, String::new(), Some(refused.to_string())), true);
    }
    let signature = match signature_header(&due.secrets, timestamp, body) {
        Ok(s) => s,
        Err(err) => {
            let error = vexil_core::error::chain(&err);
            return (finish(None, String::new(), Some(error)), false);
        }
    };
    let sent = sender
        .client
        .post(&due.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Vexil-Webhook-Id", &due.event.id)
        .header("Vexil-Webhook-Timestamp", timestamp.to_string())
        .header("Vexil-Signature", signature)
        .body(due.event.payload.clone())
        .send()
        .await;
    let mut response = match sent {
        Ok(r) => r,
        Err(err) => {
            let refused = guard::refused_in(&err);
            let error = vexil_core::error::chain(&err);
            return (finish(None, String::new(), Some(error)), refused);
        }
    };
    let status = response.status().as_u16();
    let mut excerpt = Vec::new();
    // An answer cut short still has its status, which decides the outcome; what arrived of
    // its body is kept.
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = RESPONSE_EXCERPT - excerpt.len();
        excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if excerpt.len() >= RESPONSE_EXCERPT {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&excerpt).into_owned();
    (finish(Some(status), answer, None), false)
}
