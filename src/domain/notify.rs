//! Notifications, in the domain's words: what is sent to a user about their server, keyed
//! by what caused it, and the rules of its delivery (nonce, backoff, age limit). Pure.
//!
//! A notification's id is derived from its cause (`ready#<taskArn>`,
//! `stopped#<taskArn>`, `session-reminder#<sessionId>`, …): the same cause always gives the
//! same id, so the outbox's conditional put lets a notification be recorded, and sent, once.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// One line of an embed: a name and a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub name: String,
    pub value: String,
}

/// One notification to one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    /// Stable, derived from the cause.
    pub id: String,
    /// The Discord user it is for.
    pub user_id: String,
    /// `ready`, `stopped`, `deadline-warning`, … (the id's first part).
    pub kind: String,
    pub title: String,
    pub description: String,
    /// The server's URL, where it applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<Line>,
}

/// The embed's colours: green (good news), amber (a warning), grey (an end), red (a failure).
const GREEN: u32 = 0x2e_cc_71;
const AMBER: u32 = 0xf1_c4_0f;
const GREY: u32 = 0x95_a5_a6;
const RED: u32 = 0xe7_4c_3c;

/// The longest text Discord accepts in an embed's title, description and field value.
const MAX_TITLE: usize = 256;
const MAX_DESCRIPTION: usize = 4096;
const MAX_FIELD: usize = 1024;

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

impl Notice {
    fn new(kind: &str, cause: &str, user_id: &str, title: &str, description: String) -> Self {
        Notice {
            id: format!("{kind}#{cause}"),
            user_id: user_id.to_string(),
            kind: kind.to_string(),
            title: title.to_string(),
            description,
            url: None,
            lines: Vec::new(),
        }
    }

    fn url(mut self, url: Option<&str>) -> Self {
        self.url = url
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .map(str::to_string);
        self
    }

    fn line(mut self, name: &str, value: impl Into<String>) -> Self {
        let value = value.into();
        if !value.is_empty() {
            self.lines.push(Line {
                name: name.to_string(),
                value,
            });
        }
        self
    }

    fn colour(&self) -> u32 {
        match self.kind.as_str() {
            "ready" | "session-ready" | "kofi-thanks" => GREEN,
            "deadline-warning" | "idle-warning" | "session-reminder" | "deadline-moved" => AMBER,
            "session-failed" => RED,
            "stopped" if self.lines.iter().any(|l| l.name == "Crash") => RED,
            _ => GREY,
        }
    }

    /// The embed Discord shows (title, description, the URL, the lines as fields).
    pub fn embed(&self) -> Value {
        let mut embed = json!({
            "title": clip(&self.title, MAX_TITLE),
            "description": clip(&self.description, MAX_DESCRIPTION),
            "color": self.colour(),
        });
        if let Some(url) = &self.url {
            embed["url"] = json!(url);
        }
        if !self.lines.is_empty() {
            embed["fields"] = Value::Array(
                self.lines
                    .iter()
                    .map(|l| json!({"name": clip(&l.name, MAX_TITLE), "value": clip(&l.value, MAX_FIELD), "inline": true}))
                    .collect(),
            );
        }
        embed
    }

    /// The body of `POST /channels/{id}/messages`: the embed, and a nonce that Discord
    /// enforces (a second message with the same nonce from the bot within a few minutes
    /// returns the first instead of creating another).
    pub fn dm_payload(&self) -> Value {
        json!({
            "embeds": [self.embed()],
            "nonce": nonce(&self.id),
            "enforce_nonce": true,
            "allowed_mentions": {"parse": []},
        })
    }

    /// The body of a webhook execution: the user mentioned (and only them), and the embed.
    pub fn webhook_payload(&self) -> Value {
        json!({
            "content": format!("<@{}>", self.user_id),
            "embeds": [self.embed()],
            "allowed_mentions": {"users": [self.user_id]},
        })
    }
}

/// The message nonce of notification `id`: at most 25 characters (Discord's limit), the
/// same for the same id in every process (FNV-1a, 64 bits, in hex).
pub fn nonce(id: &str) -> String {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("fl{hash:016x}")
}

/// When a notification whose attempt number `attempts` (1 = the first) did not go through
/// is tried again, in seconds after the attempt: 30 s, doubling, at most 15 minutes.
pub fn backoff(attempts: i64) -> i64 {
    let exp = u32::try_from((attempts - 1).clamp(0, 10)).unwrap_or(0);
    (30_i64 << exp).min(900)
}

/// Hours as the messages show them: one decimal, without a trailing `.0`.
pub fn hours_text(seconds: i64) -> String {
    let tenths = (seconds.max(0) + 180) / 360;
    if tenths % 10 == 0 {
        format!("{} h", tenths / 10)
    } else {
        format!("{}.{} h", tenths / 10, tenths % 10)
    }
}

/// `<t:unix:R>` (Discord shows it in the reader's own time zone, relative).
fn when(at: i64) -> String {
    format!("<t:{at}:R>")
}

/// The server is ready (`start`, a session's start or its `RUNNING` event).
pub fn ready(user_id: &str, run: &str, url: Option<&str>) -> Notice {
    Notice::new(
        "ready",
        run,
        user_id,
        "Your Foundry server is ready",
        "Your server is up and waiting for players.".to_string(),
    )
    .url(url)
}

/// Why a server stopped, as the stopped message says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopCause {
    /// The user's own `stop`.
    User,
    /// The auto-shutdown deadline (with the sweep's reason).
    Deadline(String),
    /// Nobody played for the idle time.
    Idle(String),
    /// An admin's force-shutdown (with the reason given, if any).
    Admin(Option<String>),
    /// System maintenance (with the reason given, if any).
    Maintenance(Option<String>),
    /// The task stopped by itself (with ECS's reason).
    Crash(Option<String>),
    /// Its session ended or was cancelled.
    Session,
    /// A scheduled session on its license is starting (the license runs one server).
    License,
    /// Another reason (a failed start, destroy, a refresh that found it gone).
    Other,
}

impl StopCause {
    fn text(&self) -> (&'static str, Option<String>) {
        match self {
            StopCause::User => ("Stopped at your request.", None),
            StopCause::Deadline(why) => ("Stopped at its auto-shutdown deadline.", Some(why.clone())),
            StopCause::Idle(why) => ("Stopped because nobody was playing.", Some(why.clone())),
            StopCause::Admin(why) => ("Stopped by an administrator.", why.clone()),
            StopCause::Maintenance(why) => ("Stopped for system maintenance.", why.clone()),
            StopCause::Crash(why) => ("Your server stopped unexpectedly.", why.clone()),
            StopCause::Session => ("Its session is over.", None),
            StopCause::License => ("A scheduled session on your license is starting.", None),
            StopCause::Other => ("Your server was stopped.", None),
        }
    }
}

/// The server stopped, with its cause and the hours the run booked.
pub fn stopped(user_id: &str, run: &str, cause: &StopCause, seconds: Option<i64>, url: Option<&str>) -> Notice {
    let (text, why) = cause.text();
    let mut n = Notice::new("stopped", run, user_id, "Your Foundry server stopped", text.to_string()).url(url);
    if let Some(why) = why.filter(|w| !w.trim().is_empty()) {
        let name = if matches!(cause, StopCause::Crash(_)) {
            "Crash"
        } else {
            "Reason"
        };
        n = n.line(name, why);
    }
    if let Some(s) = seconds {
        n = n.line("Hours", hours_text(s));
    }
    n
}

/// The run stops at its deadline in a few minutes.
pub fn deadline_warning(user_id: &str, run: &str, deadline: i64, url: Option<&str>) -> Notice {
    Notice::new(
        "deadline-warning",
        run,
        user_id,
        "Your Foundry server stops soon",
        format!("It reaches its auto-shutdown deadline {}.", when(deadline)),
    )
    .url(url)
}

/// Nobody is playing: the server stops for idleness soon.
pub fn idle_warning(user_id: &str, run: &str, stop_at: i64, url: Option<&str>) -> Notice {
    Notice::new(
        "idle-warning",
        run,
        user_id,
        "Nobody is playing on your Foundry server",
        format!("It stops {} unless a player connects.", when(stop_at)),
    )
    .url(url)
}

/// Players are connected, so the deadline moved (once per run).
pub fn deadline_moved(user_id: &str, run: &str, deadline: i64, url: Option<&str>) -> Notice {
    Notice::new(
        "deadline-moved",
        run,
        user_id,
        "Players are connected: your server keeps running",
        format!(
            "The auto-shutdown deadline follows play now; it is {} at the earliest.",
            when(deadline)
        ),
    )
    .url(url)
}

/// A booked session starts soon.
pub fn session_reminder(user_id: &str, session_id: &str, title: Option<&str>, start: i64) -> Notice {
    Notice::new(
        "session-reminder",
        session_id,
        user_id,
        "Your session starts soon",
        format!("{} starts {}.", title.unwrap_or("Your session"), when(start)),
    )
}

/// A session's server is ready.
pub fn session_ready(user_id: &str, session_id: &str, title: Option<&str>, url: Option<&str>) -> Notice {
    Notice::new(
        "session-ready",
        session_id,
        user_id,
        "Your session's server is ready",
        format!("{}: the server is up.", title.unwrap_or("Your session")),
    )
    .url(url)
}

/// A session could not start.
pub fn session_failed(user_id: &str, session_id: &str, title: Option<&str>, why: &str) -> Notice {
    Notice::new(
        "session-failed",
        session_id,
        user_id,
        "Your session could not start",
        format!("{} could not start.", title.unwrap_or("Your session")),
    )
    .line("Reason", why)
}

/// A session was cancelled by its license's owner or an admin.
pub fn session_cancelled(user_id: &str, session_id: &str, title: Option<&str>, by: &str) -> Notice {
    Notice::new(
        "session-cancelled",
        session_id,
        user_id,
        "Your session was cancelled",
        format!("{} was cancelled by {by}.", title.unwrap_or("Your session")),
    )
}

/// Thanks for a Ko-fi payment: what was credited and what it covers this month.
pub fn kofi_thanks(user_id: &str, transaction: &str, amount: &str, covers: &str) -> Notice {
    Notice::new(
        "kofi-thanks",
        transaction,
        user_id,
        "Thank you for your support!",
        "Your Ko-fi payment was credited.".to_string(),
    )
    .line("Credited", amount)
    .line("This month", covers)
}

/// What the bot asks `send-notification` to send, by its type.
pub fn requested(kind: &str, cause: &str, user_id: &str, session_id: Option<&str>, url: Option<&str>) -> Notice {
    let (title, text) = match kind {
        "session-ready" => ("Your session's server is ready", "The server is up."),
        "session-failed" => ("Your session could not start", "The session could not start."),
        "instance-shutdown" => ("Your Foundry server stopped", "Your server was stopped."),
        _ => ("Foundry server notice", "There is news about your Foundry server."),
    };
    let mut n = Notice::new(kind, cause, user_id, title, text.to_string()).url(url);
    if let Some(s) = session_id {
        n = n.line("Session", s);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_cause_and_nonces_fit_discords_limit() {
        let n = ready(
            "u1",
            "arn:aws:ecs:us-east-1:1:task/c/abc",
            Some("https://a.example.com"),
        );
        assert_eq!(n.id, "ready#arn:aws:ecs:us-east-1:1:task/c/abc");
        assert_eq!(nonce(&n.id), nonce(&n.id.clone()));
        assert_ne!(nonce(&n.id), nonce("ready#other"));
        assert!(nonce(&n.id).len() <= 25);
        assert_eq!(n.dm_payload()["enforce_nonce"], true);
        assert_eq!(n.embed()["url"], "https://a.example.com");
    }

    #[test]
    fn backoff_doubles_from_30_seconds_to_15_minutes() {
        assert_eq!(
            (1..=7).map(backoff).collect::<Vec<_>>(),
            vec![30, 60, 120, 240, 480, 900, 900]
        );
        assert_eq!(backoff(0), 30);
        assert_eq!(backoff(i64::MAX), 900);
    }

    #[test]
    fn stopped_says_why_and_for_how_long() {
        let n = stopped(
            "u",
            "t",
            &StopCause::Crash(Some("OutOfMemory".into())),
            Some(5_400),
            None,
        );
        assert_eq!(n.lines[0].name, "Crash");
        assert_eq!(n.lines[1].value, "1.5 h");
        assert_eq!(n.embed()["color"], RED);
        assert_eq!(hours_text(7_200), "2 h");
        assert_eq!(hours_text(0), "0 h");
    }

    #[test]
    fn the_webhook_mentions_only_the_user() {
        let n = kofi_thanks("42", "tx", "5.00 USD", "30 hours");
        let p = n.webhook_payload();
        assert_eq!(p["content"], "<@42>");
        assert_eq!(p["allowed_mentions"]["users"][0], "42");
    }

    #[test]
    fn long_text_is_clipped_to_discords_limits() {
        let n = session_failed("u", "s", None, &"x".repeat(5_000));
        assert_eq!(
            n.embed()["fields"][0]["value"].as_str().unwrap().chars().count(),
            MAX_FIELD
        );
    }
}
