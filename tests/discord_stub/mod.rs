//! A stub of Discord's REST API on 127.0.0.1 for the tests: it records every request
//! (method, path, `Authorization`, JSON body) and answers as it is told: 200, error 50007,
//! 429 with `retry_after`, 500, or never.
//!
//! `POST …/users/@me/channels` answers the DM channel `dm-<recipient_id>`; a message
//! post answers a message; anything under `/webhooks/` is a webhook execution.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the stub answers one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Ok,
    /// 403 with error code 50007 (the user accepts no DMs).
    DmRefused,
    /// 429 with this `retry_after` (seconds).
    RateLimited(f64),
    /// 500.
    Fails,
    /// 401 (the token is refused).
    Unauthorized,
    /// Never answers.
    Hangs,
}

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
    /// Everything as it arrived (for the redaction checks).
    pub raw: String,
}

impl Request {
    pub fn is_message(&self) -> bool {
        self.path.contains("/channels/") && self.path.ends_with("/messages")
    }
    pub fn is_webhook(&self) -> bool {
        self.path.contains("/webhooks/")
    }
}

#[derive(Clone, Default)]
pub struct Stub {
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    /// One answer per message or webhook post, in order; then `default`.
    script: Arc<Mutex<VecDeque<Answer>>>,
    default: Arc<Mutex<Option<Answer>>>,
}

impl Stub {
    /// The API's base URL (`DISCORD_API_BASE_URL`).
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}/api/v10", self.port)
    }

    /// A webhook URL on the stub (its last segment is the webhook's secret token).
    pub fn webhook(&self) -> String {
        format!("http://127.0.0.1:{}/api/webhooks/1234/webhook-secret-token", self.port)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The message posts and webhook executions so far.
    pub fn deliveries(&self) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.is_message() || r.is_webhook())
            .collect()
    }

    /// The embeds' titles delivered so far, in order.
    pub fn titles(&self) -> Vec<String> {
        self.deliveries()
            .iter()
            .map(|r| r.body["embeds"][0]["title"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The next message or webhook posts answer these, in order.
    pub fn script(&self, answers: &[Answer]) {
        self.script.lock().unwrap().extend(answers.iter().cloned());
    }

    /// Every message or webhook post answers this (until set again).
    pub fn always(&self, answer: Answer) {
        *self.default.lock().unwrap() = Some(answer);
    }

    fn next_answer(&self) -> Answer {
        self.script
            .lock()
            .unwrap()
            .pop_front()
            .or_else(|| self.default.lock().unwrap().clone())
            .unwrap_or(Answer::Ok)
    }
}

/// Starts the stub on a free port of 127.0.0.1.
pub async fn start() -> Stub {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the stub");
    let stub = Stub {
        port: listener.local_addr().expect("its address").port(),
        ..Stub::default()
    };
    let serving = stub.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let stub = serving.clone();
            tokio::spawn(async move {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&data[..head_end]).to_string();
                let header = |name: &str| {
                    head.lines().find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                    })
                };
                let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                while data.len() < head_end + length {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                }
                let body_text = String::from_utf8_lossy(&data[head_end..]).to_string();
                let mut first = head.lines().next().unwrap_or_default().split_whitespace();
                let method = first.next().unwrap_or_default().to_string();
                let path = first.next().unwrap_or_default().to_string();
                let request = Request {
                    method,
                    path: path.clone(),
                    authorization: header("authorization"),
                    body: serde_json::from_str(&body_text).unwrap_or(Value::Null),
                    raw: format!("{head}{body_text}"),
                };
                stub.requests.lock().unwrap().push(request.clone());
                let (status, extra, body) = if path.ends_with("/users/@me/channels") {
                    let to = request.body["recipient_id"].as_str().unwrap_or("0").to_string();
                    ("200 OK", String::new(), json!({"id": format!("dm-{to}"), "type": 1}))
                } else {
                    match stub.next_answer() {
                        Answer::Ok => ("200 OK", String::new(), json!({"id": "1", "channel_id": "c"})),
                        Answer::DmRefused => (
                            "403 Forbidden",
                            String::new(),
                            json!({"message": "Cannot send messages to this user", "code": 50007}),
                        ),
                        Answer::RateLimited(after) => (
                            "429 Too Many Requests",
                            format!("retry-after: {}\r\n", after.ceil()),
                            json!({"message": "You are being rate limited.", "retry_after": after, "global": false}),
                        ),
                        Answer::Fails => ("500 Internal Server Error", String::new(), json!({"message": "boom"})),
                        Answer::Unauthorized => (
                            "401 Unauthorized",
                            String::new(),
                            json!({"message": "401: Unauthorized", "code": 0}),
                        ),
                        Answer::Hangs => {
                            std::future::pending::<()>().await;
                            unreachable!()
                        }
                    }
                };
                let body = body.to_string();
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    stub
}
