//! Delivery of notifications: exactly once, never in the way.
//!
//! [`notify`] is what an action calls with the notices it caused: each is recorded in the
//! outbox (a conditional put keyed by the notice's id, before anything is sent: a second
//! invocation for the same cause finds it and sends nothing), then the new ones are sent,
//! all within the deployment's time budget (`NOTIFY_BUDGET_MS`, real time). What is not
//! sent by then stays pending. [`retry_pending`] is what the sweeps call: the pending
//! notifications that are due are sent again (with backoff), up to an age limit after
//! which they are dropped and logged.
//!
//! Neither ever fails its caller: a Discord outage, a missing secret or a DynamoDB error
//! is logged, and the action answers as it would have without notifications.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::config::{NotifySettings, NotifyVia};
use crate::context::{Ctx, Services};
use crate::domain::notify::{backoff, Notice};
use crate::managers::discord::SendError;
use crate::store::Pending;

/// How many notifications are sent at once.
pub const SEND_CONCURRENCY: usize = 4;

/// How many budgets a sweep may spend on the pending notifications.
const SWEEP_BUDGETS: u32 = 5;

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Sent(&'static str),
    /// Left pending; not before this time when Discord said so.
    Later(Option<i64>, String),
    Dropped(String),
}

/// What one run of sends shares: the deadline, and whether Discord asked it to stop.
struct Run<'a> {
    svc: &'a Services,
    settings: &'a NotifySettings,
    deadline: Instant,
    rate_limited: AtomicBool,
}

tokio::task_local! {
    /// Set by [`record_only`]: the notices are recorded (and collected here), and left to
    /// [`retry_pending`].
    static RECORD_ONLY: Arc<Mutex<Vec<Pending>>>;
    /// Set by [`one_budget`]: the end of the invocation's time budget, fixed by its first
    /// notification.
    static BUDGET_ENDS: Mutex<Option<Instant>>;
}

/// Runs `invocation` with one time budget for all the notifications it causes, however many
/// times (and from however many places) it calls [`notify`]: the budget starts at its first
/// notification. (Outside this scope each call of [`notify`] has a budget of its own.)
pub async fn one_budget<F: std::future::Future>(invocation: F) -> F::Output {
    // Boxed: an invocation's future is large, and this scope must not put a second copy of
    // it on the stack.
    BUDGET_ENDS.scope(Mutex::new(None), Box::pin(invocation)).await
}

/// The deadline of the sends [`notify`] starts now.
fn budget_deadline(budget: Duration) -> Instant {
    let fresh = Instant::now() + budget;
    BUDGET_ENDS
        .try_with(|ends| *ends.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(fresh))
        .unwrap_or(fresh)
}

/// Runs `work` with every notification it causes recorded but not sent → its output, and
/// the notifications it recorded: a sweep that ends many runs then sends them with
/// [`retry_pending`], at most `NOTIFY_MAX_PER_RUN`, instead of each end of a run spending
/// its own budget. (They are handed over, not found again by the sweep's query: a global
/// index shows a new item only eventually.)
pub async fn record_only<F: std::future::Future>(work: F) -> (F::Output, Vec<Pending>) {
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let out = RECORD_ONLY.scope(recorded.clone(), Box::pin(work)).await;
    let items = std::mem::take(&mut *recorded.lock().unwrap_or_else(|e| e.into_inner()));
    (out, items)
}

fn recording_only() -> bool {
    RECORD_ONLY.try_with(|_| ()).is_ok()
}

fn keep_recorded(item: Pending) {
    let _ = RECORD_ONLY.try_with(|r| r.lock().unwrap_or_else(|e| e.into_inner()).push(item));
}

/// Records `notices` in the outbox and sends the new ones within the time budget. Never
/// fails; does nothing while notifications are off. Notices for users who turned
/// notifications off are not recorded.
pub async fn notify(svc: &Services, notices: Vec<Notice>) {
    let Some(settings) = svc.config.notifications.as_ref() else {
        return;
    };
    if notices.is_empty() {
        return;
    }
    let deadline = budget_deadline(Duration::from_millis(settings.budget_ms));
    let now = svc.now();
    let mut owned = Vec::new();
    for notice in notices {
        if opted_out(svc, &notice.user_id).await {
            tracing::info!(notification = %notice.id, "not sent: the user turned notifications off");
            continue;
        }
        let recorded = if recording_only() {
            svc.store.outbox.record(&notice, now, now, 0).await
        } else {
            svc.store.outbox.record(&notice, now, now + backoff(1), 1).await
        };
        match recorded {
            Ok(Some(item)) if item.attempts == 0 => {
                tracing::info!(notification = %notice.id, "recorded for the sweep to send");
                keep_recorded(item);
            }
            Ok(Some(item)) => owned.push(item),
            Ok(None) => tracing::info!(notification = %notice.id, "already recorded: not sent again"),
            Err(e) => tracing::warn!(notification = %notice.id, error = %e, "could not record the notification"),
        }
    }
    owned.truncate(settings.max_per_run);
    if Instant::now() >= deadline {
        // The invocation's budget is spent: what it recorded is the sweep's.
        tracing::info!(
            notifications = owned.len(),
            "the notification budget is spent: left to the sweep"
        );
        return;
    }
    send_all(svc, settings, owned, deadline).await;
}

/// One notice: [`notify`] of one.
pub async fn notify_one(svc: &Services, notice: Notice) {
    notify(svc, vec![notice]).await;
}

/// Whether `user_id` turned notifications off (a record that cannot be read: no).
async fn opted_out(svc: &Services, user_id: &str) -> bool {
    match svc.store.instances.get(user_id).await {
        Ok(Some(inst)) => inst.notifications_off == Some(true),
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the user's notification setting; sending");
            false
        }
    }
}

/// The sweeps' part: the notifications the sweep itself recorded (`fresh`, from
/// [`record_only`]), then the pending ones that are due, are sent (at most
/// `NOTIFY_MAX_PER_RUN`, within a few budgets and the invocation's deadline); those older
/// than `NOTIFY_MAX_AGE_MINUTES` are dropped and logged. Never fails.
pub async fn retry_pending(svc: &Services, ctx: &Ctx, fresh: Vec<Pending>) {
    let Some(settings) = svc.config.notifications.as_ref() else {
        return;
    };
    let now = svc.now();
    let mut due = fresh;
    match svc.store.outbox.due(now).await {
        Ok(d) => {
            let known: std::collections::HashSet<String> = due.iter().map(|p| p.notification_id.clone()).collect();
            due.extend(d.into_iter().filter(|p| !known.contains(&p.notification_id)));
        }
        Err(e) => tracing::warn!(error = %e, "could not read the pending notifications"),
    }
    if due.is_empty() {
        return;
    }
    let clock = &*svc.clock;
    let left_ms = u64::try_from((ctx.wait_until_ms(clock) - clock.now_ms()).max(0)).unwrap_or(0);
    let budget = Duration::from_millis(settings.budget_ms.saturating_mul(u64::from(SWEEP_BUDGETS)).min(left_ms));
    let deadline = Instant::now() + budget;
    let max_age = settings.max_age_minutes * 60;
    let mut owned = Vec::new();
    for item in due {
        if owned.len() >= settings.max_per_run {
            break;
        }
        if now - item.created_at > max_age {
            tracing::warn!(
                notification = %item.notification_id,
                kind = %item.kind,
                attempts = item.attempts,
                last_error = item.last_error.as_deref(),
                "notification dropped: not sent within the age limit"
            );
            if let Err(e) = svc.store.outbox.dropped(&item.notification_id, now, "too old").await {
                tracing::warn!(error = %e, "could not drop the notification");
            }
            continue;
        }
        match svc
            .store
            .outbox
            .claim(&item.notification_id, now, now + backoff(item.attempts + 1))
            .await
        {
            Ok(Some(claimed)) => owned.push(claimed),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "could not claim the notification"),
        }
    }
    send_all(svc, settings, owned, deadline).await;
}

/// Sends the attempts this invocation owns, a few at a time, each by `deadline`, and
/// records what became of each.
async fn send_all(svc: &Services, settings: &NotifySettings, owned: Vec<Pending>, deadline: Instant) {
    if owned.is_empty() {
        return;
    }
    let run = Run {
        svc,
        settings,
        deadline,
        rate_limited: AtomicBool::new(false),
    };
    stream::iter(owned)
        .map(|item| {
            let run = &run;
            async move {
                let outcome = if run.rate_limited.load(Ordering::SeqCst) {
                    Outcome::Later(None, "not tried: rate limited".into())
                } else {
                    // The budget bounds the whole attempt, secret reads included.
                    match tokio::time::timeout_at(run.deadline, attempt(run, &item)).await {
                        Ok(o) => o,
                        Err(_) => Outcome::Later(None, "timeout".into()),
                    }
                };
                record(run.svc, &item, outcome).await;
            }
        })
        .buffer_unordered(SEND_CONCURRENCY)
        .collect::<Vec<()>>()
        .await;
}

/// One attempt at sending `item`.
async fn attempt(run: &Run<'_>, item: &Pending) -> Outcome {
    let notice = match item.notice() {
        Ok(n) => n,
        Err(e) => return Outcome::Dropped(format!("unreadable: {e}")),
    };
    let svc = run.svc;
    let discord = &svc.aws.discord;
    let secrets = &*svc.aws.secrets;
    let webhook = || discord.webhook(secrets, run.settings.webhook_secret.as_deref());
    let result = match run.settings.via {
        NotifyVia::Channel => match webhook().await {
            Ok(Some(url)) => discord
                .send_webhook(&url, &notice.webhook_payload(), run.deadline)
                .await
                .map(|()| "webhook"),
            Ok(None) => Err(SendError::Rejected { status: 0, code: None }),
            Err(e) => Err(e),
        },
        NotifyVia::Dm => {
            let sent = match discord.authorization(secrets, &run.settings.token_secret).await {
                Ok(auth) => {
                    discord
                        .send_dm(
                            &run.settings.api_base_url,
                            &auth,
                            &notice.user_id,
                            &notice.dm_payload(),
                            run.deadline,
                        )
                        .await
                }
                Err(e) => Err(e),
            };
            match sent {
                Err(SendError::DmRefused) => match webhook().await {
                    Ok(Some(url)) => discord
                        .send_webhook(&url, &notice.webhook_payload(), run.deadline)
                        .await
                        .map(|()| "webhook"),
                    Ok(None) => Err(SendError::DmRefused),
                    Err(e) => Err(e),
                },
                other => other.map(|()| "dm"),
            }
        }
    };
    match result {
        Ok(via) => Outcome::Sent(via),
        Err(SendError::RateLimited { retry_after, global }) => {
            // Nothing more is sent by this run: a sweep must never hammer a limit.
            run.rate_limited.store(true, Ordering::SeqCst);
            let wait = retry_after.ceil().clamp(1.0, 86_400.0) as i64;
            let why = SendError::RateLimited { retry_after, global }.to_string();
            Outcome::Later(Some(svc.now() + wait.max(backoff(item.attempts))), why)
        }
        Err(e @ (SendError::DmRefused | SendError::Rejected { .. })) => Outcome::Dropped(e.to_string()),
        Err(e @ SendError::Unavailable(_)) => Outcome::Later(None, e.to_string()),
    }
}

/// Records what became of `item`'s attempt, and logs it (never the message's secrets:
/// only its id, kind and the outcome).
async fn record(svc: &Services, item: &Pending, outcome: Outcome) {
    let id = &item.notification_id;
    let now = svc.now();
    let written = match &outcome {
        Outcome::Sent(via) => {
            tracing::info!(notification = %id, kind = %item.kind, via, "notification sent");
            svc.store.outbox.sent(id, now, via).await
        }
        Outcome::Later(at, why) => {
            tracing::info!(notification = %id, kind = %item.kind, why = %why, "notification left pending");
            svc.store.outbox.deferred(id, *at, why).await
        }
        Outcome::Dropped(why) => {
            tracing::warn!(notification = %id, kind = %item.kind, why = %why, "notification dropped");
            svc.store.outbox.dropped(id, now, why).await
        }
    };
    if let Err(e) = written {
        tracing::warn!(notification = %id, error = %e, "could not record the notification's outcome");
    }
}
