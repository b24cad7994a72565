//! Discord's REST API, over the small [`HttpClient`]: a direct message from the bot (open
//! the DM channel, post the message) and a webhook execution. Every call ends by a real-time
//! deadline. The bot's token and the webhook's URL are read from Secrets Manager once per
//! process and held as [`Sensitive`]: no error, log line or `Debug` shows them.
//!
//! Discord's facts this relies on:
//! - `POST /users/@me/channels` with `{"recipient_id"}` returns the DM channel (`id`),
//!   the same one every time;
//! - `POST /channels/{id}/messages` takes `embeds`, a `nonce` (at most 25 characters) and
//!   `enforce_nonce`: a second message with the same nonce from the same author within a
//!   few minutes returns the first one instead of creating another;
//! - error code 50007 ("Cannot send messages to this user"): the user accepts no DMs;
//! - HTTP 429 carries `retry_after` (seconds, fractional) in its JSON body, a `Retry-After`
//!   header and `global`; repeated 401/403/429 answers count toward the invalid-request
//!   limit, past which Cloudflare bans the caller for a while;
//! - a webhook is executed by `POST <webhook URL>?wait=true` (no token needed: the URL
//!   holds its own secret).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::http::{HttpClient, HttpFailure};
use super::Secrets;
use crate::secret::Sensitive;

/// The most of an answer's body that is read.
const MAX_BODY: usize = 16 * 1024;

/// How many times one request is made again after a 429 whose wait fits the deadline.
const RATE_LIMIT_RETRIES: usize = 2;

/// How long the process makes no request after Discord refused the bot's token (401): a
/// wrong token is an operator's mistake, and every refused request counts toward Discord's
/// invalid-request limit.
const REFUSED_TOKEN_PAUSE: Duration = Duration::from_secs(60);

/// Why a message did not go through. The texts never contain the token or a URL.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// 429: Discord asks for a wait longer than the time left (in seconds).
    #[error("rate limited (retry after {retry_after:.3} s{})", if *.global { ", global" } else { "" })]
    RateLimited { retry_after: f64, global: bool },
    /// Error 50007: the user accepts no direct messages.
    #[error("the user accepts no direct messages (50007)")]
    DmRefused,
    /// Refused for good (another 4xx): trying again would be refused again.
    #[error("refused: HTTP {status}{}", code.map(|c| format!(" (code {c})")).unwrap_or_default())]
    Rejected { status: u16, code: Option<i64> },
    /// Not now (5xx, timeout, network, a secret that cannot be read): worth another try.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// The Discord client of this process.
#[derive(Debug, Default)]
pub struct Discord {
    http: HttpClient,
    token: OnceCell<Sensitive>,
    webhook: OnceCell<Option<Sensitive>>,
    /// DM channel ids by user id (a DM channel never changes).
    dm_channels: Mutex<HashMap<String, String>>,
    /// Until when Discord asked this process to wait (a 429 that could not be waited for):
    /// no request is made before then, whichever invocation asks.
    blocked_until: Mutex<Option<Instant>>,
}

impl Discord {
    pub fn new() -> Self {
        Discord::default()
    }

    /// The bot's `Authorization` value, `Bot <token>`, read from `secret_id` once per
    /// process (a failed read is tried again next time).
    pub async fn authorization(&self, secrets: &dyn Secrets, secret_id: &str) -> Result<Sensitive, SendError> {
        self.token
            .get_or_try_init(|| async {
                match secrets.get_secret_string(secret_id).await {
                    Ok(Some(token)) if !token.expose().trim().is_empty() => {
                        Ok(Sensitive::new(format!("Bot {}", token.expose().trim())))
                    }
                    Ok(_) => Err(SendError::Unavailable(
                        "the bot token secret is missing or empty".into(),
                    )),
                    Err(e) => Err(SendError::Unavailable(format!(
                        "the bot token secret cannot be read ({:?})",
                        e.kind
                    ))),
                }
            })
            .await
            .cloned()
    }

    /// The fallback webhook's URL, read from `secret_id` once per process; `None` without
    /// one.
    pub async fn webhook(
        &self,
        secrets: &dyn Secrets,
        secret_id: Option<&str>,
    ) -> Result<Option<Sensitive>, SendError> {
        let Some(secret_id) = secret_id else { return Ok(None) };
        self.webhook
            .get_or_try_init(|| async {
                match secrets.get_secret_string(secret_id).await {
                    Ok(Some(url)) if url.expose().trim().starts_with("http") => {
                        Ok(Some(Sensitive::new(url.expose().trim())))
                    }
                    Ok(_) => Err(SendError::Unavailable(
                        "the webhook secret is missing or not a URL".into(),
                    )),
                    Err(e) => Err(SendError::Unavailable(format!(
                        "the webhook secret cannot be read ({:?})",
                        e.kind
                    ))),
                }
            })
            .await
            .cloned()
    }

    /// Sends `payload` to `user_id` as a direct message, by `deadline`.
    pub async fn send_dm(
        &self,
        base: &str,
        auth: &Sensitive,
        user_id: &str,
        payload: &Value,
        deadline: Instant,
    ) -> Result<(), SendError> {
        let cached = self
            .dm_channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user_id)
            .cloned();
        let channel = match cached {
            Some(c) => c,
            None => {
                let body = self
                    .post(
                        &format!("{base}/users/@me/channels"),
                        Some(auth),
                        &json!({ "recipient_id": user_id }),
                        deadline,
                    )
                    .await?;
                let id = serde_json::from_slice::<Value>(&body)
                    .ok()
                    .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
                    .ok_or_else(|| SendError::Unavailable("the DM channel answer has no id".into()))?;
                self.dm_channels
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(user_id.to_string(), id.clone());
                id
            }
        };
        self.post(
            &format!("{base}/channels/{channel}/messages"),
            Some(auth),
            payload,
            deadline,
        )
        .await
        .map(|_| ())
    }

    /// Executes the webhook at `url` with `payload`, by `deadline`.
    pub async fn send_webhook(&self, url: &Sensitive, payload: &Value, deadline: Instant) -> Result<(), SendError> {
        let sep = if url.expose().contains('?') { '&' } else { '?' };
        let target = format!("{}{sep}wait=true", url.expose());
        self.post(&target, None, payload, deadline).await.map(|_| ())
    }

    /// One POST, made again after a 429 whose wait fits before `deadline` → the answer's
    /// body on a 2xx.
    async fn post(
        &self,
        url: &str,
        auth: Option<&Sensitive>,
        payload: &Value,
        deadline: Instant,
    ) -> Result<Vec<u8>, SendError> {
        let body = serde_json::to_vec(payload).map_err(|e| SendError::Unavailable(e.to_string()))?;
        let mut tries = 0;
        loop {
            let blocked = *self.blocked_until.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(until) = blocked.filter(|u| *u > Instant::now()) {
                let wait = until.saturating_duration_since(Instant::now());
                if wait < deadline.saturating_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                } else {
                    return Err(SendError::RateLimited {
                        retry_after: wait.as_secs_f64(),
                        global: false,
                    });
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(SendError::Unavailable("timeout".into()));
            }
            let answer = match self.http.post_json(url, auth, body.clone(), left, MAX_BODY).await {
                Ok(a) => a,
                Err(HttpFailure::InvalidUrl) => {
                    return Err(SendError::Rejected { status: 0, code: None });
                }
                Err(f) => return Err(SendError::Unavailable(f.to_string())),
            };
            let json: Option<Value> = serde_json::from_slice(&answer.body).ok();
            match answer.status {
                200..=299 => return Ok(answer.body),
                429 => {
                    let retry_after = json
                        .as_ref()
                        .and_then(|v| v.get("retry_after"))
                        .and_then(Value::as_f64)
                        .or_else(|| answer.retry_after.as_deref().and_then(|h| h.trim().parse().ok()))
                        .unwrap_or(1.0)
                        .max(0.0);
                    let global = json
                        .as_ref()
                        .and_then(|v| v.get("global"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let wait = Duration::from_secs_f64(retry_after.min(3_600.0));
                    let left = deadline.saturating_duration_since(Instant::now());
                    if tries < RATE_LIMIT_RETRIES && wait < left {
                        tries += 1;
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    *self.blocked_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + wait);
                    return Err(SendError::RateLimited { retry_after, global });
                }
                401 => {
                    *self.blocked_until.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(Instant::now() + REFUSED_TOKEN_PAUSE);
                    return Err(SendError::Unavailable("the bot token was refused (401)".into()));
                }
                status => {
                    let code = json.as_ref().and_then(|v| v.get("code")).and_then(Value::as_i64);
                    return Err(match (status, code) {
                        (_, Some(50007)) => SendError::DmRefused,
                        (400..=499, _) if status != 408 => SendError::Rejected { status, code },
                        _ => SendError::Unavailable(format!("HTTP {status}")),
                    });
                }
            }
        }
    }
}
