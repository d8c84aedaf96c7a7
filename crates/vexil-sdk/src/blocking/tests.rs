//! The blocking clients without a server: offline, against an address that refuses
//! connections, and made, used and dropped inside tokio runtimes of both flavours. The tests
//! against a real server are in `crates/vexil/tests/sdk_rust_blocking.rs`.

use std::time::Instant;

use serde_json::json;

use super::*;
use crate::EventsConfig;

const FLAGS: &str = r#"[{"key": "banner", "metadata": {"flagVersion": 1},
    "variants": {"on": {"key": "on", "value": "on"}, "off": {"key": "off", "metadata": {"default": true}}},
    "segments": [
        {"metadata": {"segmentName": "Canada"}, "variant": "on",
         "conditions": [[{"selector": ["context", "user", "country"], "op": "is", "values": ["CA"]}]]},
        {"metadata": {"segmentName": "All Other Users"}, "variant": "off"}]}]"#;

/// Refuses connections at once: every request fails without waiting.
const NOBODY: &str = "http://127.0.0.1:9";

fn users() -> Vec<User> {
    vec![
        User::new(),
        User::new().with_user_id("u1").with_field("country", "CA"),
        User::new().with_user_id("u2").with_field("country", "NZ"),
    ]
}

/// A client of [`NOBODY`] with `FLAGS` as its bootstrap and exposures on, retried for seconds.
fn unreachable() -> LocalConfig {
    let events = EventsConfig {
        flush_interval: Duration::from_secs(3600),
        retry_min: Duration::from_secs(1),
        max_attempts: 5,
        ..EventsConfig::default()
    };
    LocalConfig::new(NOBODY, "server-key")
        .bootstrap(FLAGS)
        .reconnect(Duration::from_millis(50), Duration::from_millis(200))
        .events(Some(events))
}

/// `f` returns within `bound` of when it was called.
fn within<T>(bound: Duration, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    assert!(
        started.elapsed() < bound,
        "took {:?}, more than {bound:?}",
        started.elapsed()
    );
    out
}

#[test]
fn clients_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<LocalClient>();
    check::<RemoteClient>();
    check::<Evaluation>();
}

/// From a plain thread (no runtime anywhere): the blocking client evaluates as the async one,
/// and shutting down leaves evaluation working and the runtime's calls refused.
#[test]
fn offline_from_a_plain_thread() {
    assert!(tokio::runtime::Handle::try_current().is_err());
    let client = LocalClient::start(LocalConfig::offline(FLAGS)).unwrap();
    let reference = crate::LocalClient::start(LocalConfig::offline(FLAGS)).unwrap();
    client.wait_until_ready(Duration::ZERO).unwrap();
    for user in users() {
        assert_eq!(client.all_variants(&user), reference.all_variants(&user));
        assert_eq!(
            client.detail(&user, "banner"),
            reference.detail(&user, "banner")
        );
        assert_eq!(
            client.string_variation(&user, "banner", "old"),
            reference.string_variation(&user, "banner", "old")
        );
        assert_eq!(
            client.evaluation(&user).is_enabled("banner"),
            reference.is_enabled(&user, "banner")
        );
    }
    let canadian = &users()[1];
    assert_eq!(client.string_variation(canadian, "banner", "old"), "on");
    assert_eq!(
        client.json_variation(canadian, "banner", json!(1)),
        json!("on")
    );
    assert!(!client.bool_variation(canadian, "ghost", false));
    client.flush(Duration::from_secs(1)).unwrap();
    client.shutdown(Duration::from_secs(1)).unwrap();
    assert_eq!(client.string_variation(canadian, "banner", "old"), "on");
    assert!(matches!(
        client.flush(Duration::from_secs(1)),
        Err(Error::ShutDown)
    ));
    client.shutdown(Duration::from_secs(1)).unwrap();
}

/// With Vexil unreachable, every waiting call gives up within its bound: a bootstrapped client
/// evaluates at once and is not ready; exposures that cannot be sent hold up neither `flush`
/// nor `shutdown` past their timeouts; a remote fetch fails after its retries.
fn unreachable_calls_are_bounded() {
    let client = LocalClient::start(unreachable()).unwrap();
    let canadian = &users()[1];
    assert_eq!(client.string_variation(canadian, "banner", "old"), "on");
    let wait = Duration::from_millis(200);
    let ready = within(wait + GRACE, || client.wait_until_ready(wait));
    assert!(matches!(ready, Err(Error::Timeout(_))), "{ready:?}");
    assert!(!client.is_ready());
    // The exposure is queued; the sender's first attempt fails and it waits a second or more
    // before the next.
    assert!(client.is_enabled(canadian, "banner"));
    let short = Duration::from_millis(300);
    let flushed = within(short + GRACE, || client.flush(short));
    assert!(matches!(flushed, Err(Error::Timeout(_))), "{flushed:?}");
    let shut = within(short + GRACE, || client.shutdown(short));
    assert!(matches!(shut, Err(Error::Timeout(_))), "{shut:?}");
    assert!(client.status().last_error.is_some());

    let config = RemoteConfig::new(NOBODY, "server-key")
        .timeout(Duration::from_millis(200))
        .retries(2);
    let remote = RemoteClient::new(config).unwrap();
    let fetched = within(remote.client.longest_fetch() + GRACE, || {
        remote.fetch_flags(canadian, &["banner"])
    });
    assert!(
        fetched.as_ref().is_err_and(Error::is_retryable),
        "{fetched:?}"
    );
}

#[test]
fn unreachable_from_a_plain_thread() {
    unreachable_calls_are_bounded();
}

/// Inside a runtime the blocking clients neither panic nor deadlock: made, waited on,
/// flushed, shut down and dropped (shut down or not) on the runtime's own thread, which on a
/// current-thread runtime is the only one.
fn inside_a_runtime() {
    assert!(tokio::runtime::Handle::try_current().is_ok());
    let offline = LocalClient::start(LocalConfig::offline(FLAGS)).unwrap();
    offline.wait_until_ready(Duration::from_secs(1)).unwrap();
    offline.flush(Duration::from_secs(1)).unwrap();
    assert!(offline.is_enabled(&users()[1], "banner"));
    drop(offline);
    unreachable_calls_are_bounded();
    // Dropped without a shutdown, with nothing queued: the drop's shutdown ends at once.
    let client = LocalClient::start(unreachable()).unwrap();
    assert!(!client.is_enabled(&users()[2], "banner"));
    within(GRACE, || drop(client));
    let remote = RemoteClient::new(RemoteConfig::new(NOBODY, "k").retries(0)).unwrap();
    drop(remote);
}

#[tokio::test(flavor = "current_thread")]
async fn inside_a_current_thread_runtime() {
    inside_a_runtime();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_multi_thread_runtime() {
    inside_a_runtime();
}
