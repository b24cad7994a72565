//! Idle detection: what a Foundry server's `GET /api/status` says, and when auto-shutdown
//! stops a server nobody plays on, or lets a deadline follow play.
//!
//! Everything here is pure: the sweep (`actions::idle`) probes, reads and writes; this
//! module only reads answers and decides.

use super::model::{Instance, InstanceStatus};
use super::schedule::{shutdown_deadline, shutdown_reason};

/// The most of a status answer that is read; a longer body is not Foundry's status.
pub const MAX_STATUS_BODY: usize = 64 * 1024;

/// What one probe of a server's status found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The server answered with its status: this many players are connected (0 when no
    /// world is active: nobody can be playing).
    Players(u32),
    /// Nothing can be said (timeout, refused, an error status, a body that is not
    /// Foundry's status JSON, no time left to ask). Never idleness.
    Unknown(String),
}

impl Probe {
    /// The connected players, when known.
    pub fn players(&self) -> Option<u32> {
        match self {
            Probe::Players(n) => Some(*n),
            Probe::Unknown(_) => None,
        }
    }

    /// The short outcome the record keeps (`lastProbeResult`): `ok`, or why it failed.
    pub fn outcome(&self) -> &str {
        match self {
            Probe::Players(_) => "ok",
            Probe::Unknown(why) => why,
        }
    }
}

/// Reads an HTTP answer of `GET /api/status`: status `code`, `body` (at most
/// [`MAX_STATUS_BODY`] bytes were read).
///
/// Foundry answers a JSON object with `active` (whether a world is running), `version`,
/// and, while a world is active, `world`, `system` and `users` (the connected players).
/// Only a 2xx answer whose body is such an object counts: `users` a whole number ≥ 0, or
/// `active: false` (no world, so nobody plays). Anything else is unknown.
pub fn read_status(code: u16, body: &[u8]) -> Probe {
    if !(200..300).contains(&code) {
        return Probe::Unknown(format!("http-{code}"));
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Probe::Unknown("not-json".into());
    };
    let Some(obj) = value.as_object() else {
        return Probe::Unknown("not-status".into());
    };
    if let Some(users) = obj.get("users").and_then(serde_json::Value::as_u64) {
        return Probe::Players(u32::try_from(users).unwrap_or(u32::MAX));
    }
    if obj.get("active").and_then(serde_json::Value::as_bool) == Some(false) {
        return Probe::Players(0);
    }
    Probe::Unknown("not-status".into())
}

/// The URL of the status of `inst`'s server from `template`: `{sanitizedUsername}`,
/// `{userId}`, `{domain}` and `{taskPrivateIp}` are replaced → `None` when the template
/// names something the record lacks (no private IP yet).
pub fn status_url(template: &str, inst: &Instance, domain: &str) -> Option<String> {
    let mut url = template
        .replace("{sanitizedUsername}", &inst.sanitized_username)
        .replace("{userId}", &inst.user_id)
        .replace("{domain}", domain);
    if url.contains("{taskPrivateIp}") {
        url = url.replace("{taskPrivateIp}", inst.task_private_ip.as_deref()?);
    }
    Some(url)
}

/// The placeholders a status URL template may use.
pub const URL_PLACEHOLDERS: &[&str] = &["{sanitizedUsername}", "{userId}", "{domain}", "{taskPrivateIp}"];

/// Whether `template` is a usable status URL template → the problem, if any.
pub fn check_url_template(template: &str) -> Result<(), String> {
    if !(template.starts_with("http://") || template.starts_with("https://")) {
        return Err("must start with http:// or https://".into());
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let tail = &rest[open..];
        let Some(close) = tail.find('}') else {
            return Err("has an unclosed '{'".into());
        };
        let name = &tail[..=close];
        if !URL_PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "names an unknown placeholder {name} (known: {})",
                URL_PLACEHOLDERS.join(", ")
            ));
        }
        rest = &tail[close + 1..];
    }
    Ok(())
}

/// The idle rule's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdleRule {
    /// How long a server may go without a player before it is stopped; 0: idle
    /// detection is off (only deadlines apply, and nothing is probed).
    pub idle_seconds: i64,
    /// The longest an on-demand run may last when its deadline follows play.
    pub max_run_seconds: i64,
}

impl IdleRule {
    pub fn on(&self) -> bool {
        self.idle_seconds > 0
    }
}

/// What the sweep does with one running instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Stop it, for this reason.
    Stop(String),
    /// Players are connected near its deadline: the deadline moves to this time.
    Extend(i64),
    /// Leave it running.
    Keep,
}

/// When the idle time of `inst` is counted from: the later of the run's start (a
/// scheduled session's start, `session_start`, for a session's server) and the last time a
/// player was seen during this run.
pub fn idle_anchor(inst: &Instance, session_start: Option<i64>) -> Option<i64> {
    let start = session_start.or(inst.started_at)?;
    let seen = inst.last_players_seen_at.filter(|t| *t >= start);
    Some(seen.map_or(start, |s| s.max(start)))
}

/// The players the last probe of the current run of `inst` counted (`None` when it does
/// not run, before its first probe, or when the last probe failed).
pub fn players_now(inst: &Instance) -> Option<i64> {
    if inst.status != InstanceStatus::Running {
        return None;
    }
    let start = inst.started_at?;
    inst.players.filter(|_| inst.last_probe_at.is_some_and(|t| t >= start))
}

/// Since when the server of `inst` has had no player, as the last probe of its current
/// run saw it (`None` while players are connected, when the last probe failed, or before
/// the first probe). Counted from the run's start, or the last player seen.
pub fn idle_since(inst: &Instance) -> Option<i64> {
    match players_now(inst) {
        Some(0) => idle_anchor(inst, None),
        _ => None,
    }
}

/// What the sweep does at `now` with the running instance `inst`, whose server `probe`
/// just answered (`session_start`: the start of the scheduled session it runs for).
///
/// * Idle detection off: its deadline alone decides.
/// * Players connected: if it is an on-demand run (no session) whose deadline is less
///   than the idle time away (or past), the deadline moves to `now` + the idle time, but
///   never past the run's start + `max_run_seconds`; at that cap it is stopped.
/// * Its deadline has passed (and no extension): stopped, for the deadline's reason.
/// * No player connected (a successful probe that counts 0), for the idle time or more
///   since the later of the run's (session's) start and the last player seen: stopped,
///   `Auto-shutdown: idle for N minutes`.
/// * A failed probe is never idleness: only the deadline applies.
pub fn decide(inst: &Instance, probe: &Probe, session_start: Option<i64>, now: i64, rule: &IdleRule) -> Decision {
    let deadline = shutdown_deadline(inst);
    let past_deadline = deadline.is_some_and(|t| t <= now);
    if !rule.on() {
        return if past_deadline {
            Decision::Stop(shutdown_reason(inst, now))
        } else {
            Decision::Keep
        };
    }
    if probe.players().is_some_and(|n| n > 0) && inst.linked_session_id.is_none() {
        if let Some(deadline) = deadline.filter(|t| *t - now < rule.idle_seconds) {
            let run_start = inst.started_at.or(inst.updated_at).unwrap_or(now);
            let cap = run_start.saturating_add(rule.max_run_seconds);
            if now >= cap {
                return Decision::Stop(format!(
                    "Auto-shutdown: run reached its {} hour limit",
                    rule.max_run_seconds / 3600
                ));
            }
            let until = now.saturating_add(rule.idle_seconds).min(cap);
            return if until > deadline {
                Decision::Extend(until)
            } else {
                Decision::Keep
            };
        }
    }
    if past_deadline {
        return Decision::Stop(shutdown_reason(inst, now));
    }
    if probe.players() == Some(0) {
        if let Some(anchor) = idle_anchor(inst, session_start) {
            let idle = now - anchor;
            if idle >= rule.idle_seconds {
                return Decision::Stop(format!("Auto-shutdown: idle for {} minutes", idle / 60));
            }
        }
    }
    Decision::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: IdleRule = IdleRule {
        idle_seconds: 1_800,
        max_run_seconds: 43_200,
    };

    fn running(started: i64) -> Instance {
        Instance {
            user_id: "1".into(),
            sanitized_username: "alice".into(),
            status: InstanceStatus::Running,
            license_type: Some("byol".into()),
            started_at: Some(started),
            auto_shutdown_at: Some(started + 21_600),
            task_arn: Some("arn:task".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_status_answer_is_read_as_players_or_unknown() {
        let status = br#"{"active":true,"version":"13.348","world":"w","system":"dnd5e","users":3,"uptime":12.5}"#;
        assert_eq!(read_status(200, status), Probe::Players(3));
        assert_eq!(read_status(200, br#"{"active":true,"users":0}"#), Probe::Players(0));
        assert_eq!(
            read_status(200, br#"{"active":false,"version":"13.348"}"#),
            Probe::Players(0)
        );
        assert_eq!(read_status(500, status), Probe::Unknown("http-500".into()));
        assert_eq!(read_status(302, b""), Probe::Unknown("http-302".into()));
        assert_eq!(
            read_status(200, b"<html>Foundry</html>"),
            Probe::Unknown("not-json".into())
        );
        assert_eq!(read_status(200, b"[1,2]"), Probe::Unknown("not-status".into()));
        assert_eq!(
            read_status(200, br#"{"active":true,"users":-1}"#),
            Probe::Unknown("not-status".into())
        );
        assert_eq!(
            read_status(200, br#"{"active":true,"users":"2"}"#),
            Probe::Unknown("not-status".into())
        );
        assert_eq!(
            read_status(200, br#"{"active":true}"#),
            Probe::Unknown("not-status".into())
        );
    }

    #[test]
    fn the_status_url_follows_the_template() {
        let mut i = running(0);
        let t = "https://{sanitizedUsername}.{domain}/api/status";
        assert_eq!(
            status_url(t, &i, "foundry.example.com").as_deref(),
            Some("https://alice.foundry.example.com/api/status")
        );
        let p = "http://{taskPrivateIp}:30000/api/status?u={userId}";
        assert_eq!(status_url(p, &i, "d"), None);
        i.task_private_ip = Some("10.0.0.5".into());
        assert_eq!(
            status_url(p, &i, "d").as_deref(),
            Some("http://10.0.0.5:30000/api/status?u=1")
        );
        assert!(check_url_template(t).is_ok());
        assert!(check_url_template(p).is_ok());
        assert!(check_url_template("ftp://x/").is_err());
        assert!(check_url_template("https://{user}.x/").unwrap_err().contains("{user}"));
        assert!(check_url_template("https://{userId.x/").is_err());
    }

    #[test]
    fn a_server_without_players_for_the_idle_time_is_stopped() {
        let i = running(1_000);
        assert_eq!(
            decide(&i, &Probe::Players(0), None, 1_000 + 1_799, &RULE),
            Decision::Keep
        );
        assert_eq!(
            decide(&i, &Probe::Players(0), None, 1_000 + 1_800, &RULE),
            Decision::Stop("Auto-shutdown: idle for 30 minutes".into())
        );
        // Counted from the last player seen, when later than the start.
        let seen = Instance {
            last_players_seen_at: Some(5_000),
            ..running(1_000)
        };
        assert_eq!(decide(&seen, &Probe::Players(0), None, 6_000, &RULE), Decision::Keep);
        assert_eq!(
            decide(&seen, &Probe::Players(0), None, 5_000 + 2_700, &RULE),
            Decision::Stop("Auto-shutdown: idle for 45 minutes".into())
        );
        // A sighting from an earlier run does not count.
        let old = Instance {
            last_players_seen_at: Some(500),
            ..running(1_000)
        };
        assert_eq!(idle_anchor(&old, None), Some(1_000));
    }

    #[test]
    fn a_failed_probe_is_never_idleness() {
        let i = running(1_000);
        for why in ["timeout", "http-500", "refused", "not-json"] {
            assert_eq!(
                decide(&i, &Probe::Unknown(why.into()), None, 1_000 + 10_000, &RULE),
                Decision::Keep,
                "{why}"
            );
        }
        // Only the deadline applies.
        assert_eq!(
            decide(&i, &Probe::Unknown("timeout".into()), None, 1_000 + 21_600, &RULE),
            Decision::Stop(shutdown_reason(&i, 1_000 + 21_600))
        );
    }

    #[test]
    fn a_session_is_idle_from_its_start_not_its_end() {
        let i = Instance {
            linked_session_id: Some("s".into()),
            auto_shutdown_at: Some(100_000),
            ..running(1_000)
        };
        let session_start = 1_300;
        assert_eq!(
            decide(&i, &Probe::Players(0), Some(session_start), 3_099, &RULE),
            Decision::Keep
        );
        assert_eq!(
            decide(&i, &Probe::Players(0), Some(session_start), 3_100, &RULE),
            Decision::Stop("Auto-shutdown: idle for 30 minutes".into())
        );
        // Players at a session's deadline do not extend it (the license may be booked next).
        assert_eq!(
            decide(&i, &Probe::Players(4), Some(session_start), 100_000, &RULE),
            Decision::Stop(shutdown_reason(&i, 100_000))
        );
    }

    #[test]
    fn a_deadline_follows_play_up_to_the_cap() {
        let i = running(0);
        let deadline = 21_600;
        // Players connected, the deadline still far: nothing changes.
        assert_eq!(decide(&i, &Probe::Players(2), None, 10_000, &RULE), Decision::Keep);
        // Within the idle time of the deadline, or past it: it moves to now + the idle time.
        assert_eq!(
            decide(&i, &Probe::Players(2), None, deadline - 600, &RULE),
            Decision::Extend(deadline - 600 + 1_800)
        );
        assert_eq!(
            decide(&i, &Probe::Players(1), None, deadline + 60, &RULE),
            Decision::Extend(deadline + 60 + 1_800)
        );
        // Never past the cap, and at the cap it stops.
        let late = Instance {
            auto_shutdown_at: Some(43_000),
            ..running(0)
        };
        assert_eq!(
            decide(&late, &Probe::Players(1), None, 42_000, &RULE),
            Decision::Extend(43_200)
        );
        let capped = Instance {
            auto_shutdown_at: Some(43_200),
            ..running(0)
        };
        assert_eq!(
            decide(&capped, &Probe::Players(1), None, 43_200, &RULE),
            Decision::Stop("Auto-shutdown: run reached its 12 hour limit".into())
        );
        // Nobody there at the deadline: it stops for its deadline.
        assert_eq!(
            decide(&i, &Probe::Players(0), None, deadline, &RULE),
            Decision::Stop(shutdown_reason(&i, deadline))
        );
    }

    #[test]
    fn with_idle_detection_off_only_the_deadline_decides() {
        let off = IdleRule {
            idle_seconds: 0,
            ..RULE
        };
        let i = running(0);
        assert_eq!(decide(&i, &Probe::Players(0), None, 20_000, &off), Decision::Keep);
        assert_eq!(
            decide(&i, &Probe::Players(3), None, 21_600, &off),
            Decision::Stop(shutdown_reason(&i, 21_600))
        );
    }

    #[test]
    fn idle_since_is_shown_only_after_a_probe_of_this_run_that_saw_nobody() {
        let mut i = running(1_000);
        assert_eq!(idle_since(&i), None);
        i.last_probe_at = Some(2_000);
        i.players = Some(0);
        assert_eq!(idle_since(&i), Some(1_000));
        i.last_players_seen_at = Some(1_500);
        assert_eq!(idle_since(&i), Some(1_500));
        i.players = Some(2);
        assert_eq!(idle_since(&i), None);
        assert_eq!(players_now(&i), Some(2));
        i.players = Some(0);
        i.last_probe_at = Some(900); // a probe of an earlier run
        assert_eq!(idle_since(&i), None);
        assert_eq!(players_now(&i), None);
        i.last_probe_at = Some(2_000);
        i.status = InstanceStatus::Stopped;
        assert_eq!((players_now(&i), idle_since(&i)), (None, None));
    }
}
