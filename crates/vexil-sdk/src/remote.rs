//! [`RemoteClient`]: remote evaluation through `POST /sdk/v2/vardata` (`sdk-protocol.md` §A5),
//! with a timeout per attempt and retries with back-off on network errors, 429 and 5xx.

use std::collections::BTreeMap;

use base64::Engine;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::backoff::Backoff;
use crate::config::{base_url, RemoteConfig, LIBRARY};
use crate::{Error, User, Variant};

/// Asks Vexil for each evaluation.
#[derive(Debug, Clone)]
pub struct RemoteClient {
    config: RemoteConfig,
    url: String,
    http: reqwest::Client,
}

impl RemoteClient {
    /// A client for `config` (no request is made yet).
    pub fn new(config: RemoteConfig) -> Result<RemoteClient, Error> {
        let url = format!("{}/sdk/v2/vardata", base_url(&config.server_url)?);
        let http = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            .user_agent(LIBRARY)
            .build()
            .map_err(Error::Client)?;
        Ok(RemoteClient { config, url, http })
    }

    /// The longest [`RemoteClient::fetch_flags`] can take: every attempt timing out, with the
    /// longest wait between attempts.
    #[cfg(feature = "blocking")]
    pub(crate) fn longest_fetch(&self) -> std::time::Duration {
        let c = &self.config;
        let attempts = c.retries.saturating_add(1);
        c.timeout
            .saturating_mul(attempts)
            .saturating_add(c.retry_max.max(c.retry_min).saturating_mul(c.retries))
    }

    /// Every flag's variant for `user` (`off` results included).
    pub async fn fetch(&self, user: &User) -> Result<BTreeMap<String, Variant>, Error> {
        self.fetch_flags(user, &[]).await
    }

    /// The variants of `flag_keys` and their ancestors for `user` (all flags when empty).
    pub async fn fetch_flags(
        &self,
        user: &User,
        flag_keys: &[&str],
    ) -> Result<BTreeMap<String, Variant>, Error> {
        let body = serde_json::to_vec(&user.to_json()).map_err(Error::Json)?;
        let keys = (!flag_keys.is_empty()).then(|| {
            let json = serde_json::Value::from(flag_keys.to_vec()).to_string();
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
        });
        let mut backoff = Backoff::new(self.config.retry_min, self.config.retry_max);
        let mut attempt = 0;
        loop {
            let result = self.attempt(&body, keys.as_deref()).await;
            match result {
                Err(e) if e.is_retryable() && attempt < self.config.retries => {
                    let mut delay = backoff.next_delay();
                    if let Error::Status {
                        retry_after: Some(after),
                        ..
                    } = &e
                    {
                        // Waiting past the longest back-off would stall the caller: give up.
                        if *after > self.config.retry_max {
                            return Err(e);
                        }
                        delay = delay.max(*after);
                    }
                    attempt += 1;
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    async fn attempt(
        &self,
        body: &[u8],
        keys: Option<&str>,
    ) -> Result<BTreeMap<String, Variant>, Error> {
        let track = |on: bool| if on { "track" } else { "no-track" };
        let mut request = self
            .http
            .post(&self.url)
            .timeout(self.config.timeout)
            .header(
                AUTHORIZATION,
                format!("Api-Key {}", self.config.deployment_key.expose()),
            )
            .header(CONTENT_TYPE, "application/json;charset=utf-8")
            .header("X-Amp-Exp-Library", LIBRARY)
            .header("X-Amp-Exp-Track", track(self.config.track_assignments))
            .header(
                "X-Amp-Exp-Exposure-Track",
                track(self.config.track_exposures),
            )
            .body(body.to_vec());
        if let Some(keys) = keys {
            request = request.header("X-Amp-Exp-Flag-Keys", keys);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                Error::Timeout(self.config.timeout)
            } else {
                Error::Http(e)
            }
        })?;
        let status = response.status().as_u16();
        if status != 200 {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(std::time::Duration::from_secs);
            return Err(Error::Status {
                status,
                retry_after,
            });
        }
        let bytes = response.bytes().await.map_err(Error::Http)?;
        serde_json::from_slice(&bytes).map_err(Error::Json)
    }
}
