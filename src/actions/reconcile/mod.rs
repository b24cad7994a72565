//! `admin-reconcile`: finds the per-user resources that no instance record owns (what the
//! original leaked on every partial failure, and what any crash leaves), reports them, and
//! with `apply` removes them through the same code `destroy` uses.
//!
//! * **What it looks at**: every listing of a kind of resource the function makes
//!   ([`token::Phase`]), a page at a time, and of each page only what carries our names
//!   ([`listing`]).
//! * **Safety** ([`verdict`]): a resource younger than a create's lease, or named by a record
//!   under a live lease, is never touched; a DNS record that does not alias our load
//!   balancer, and the operator's `www`, `mail` and apex, are never candidates. Right before
//!   each delete, the records are read again and the verdict is taken again.
//! * **Bounded**: deletions run a few at a time; the walk stops before the invocation's
//!   deadline (or once an answer holds [`MAX_REPORTED`] orphans) and answers a continuation
//!   token ([`token`]) with which the next call goes on.

mod listing;
mod token;
mod verdict;

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::actions::resources::{one, Leftovers, ResourceKind};
use crate::context::{duration_ms, Ctx, Services, DEFAULT_LEASE};
use crate::domain::model::Instance;
use crate::error::{Error, Result};
use crate::event::ReconcileFields;

use token::Cursor;
use verdict::{Candidate, OwnerKey, Verdict};

/// How many records are read, and resources deleted, at once.
const CONCURRENCY: usize = 8;
/// An answer lists at most about this many orphans (a page more at most); the rest come
/// with the next call.
pub const MAX_REPORTED: usize = 1_000;

/// One resource of the report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Reported {
    kind: &'static str,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    age_seconds: Option<i64>,
    reason: String,
    /// An IAM user's access keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    access_keys: Option<Vec<String>>,
    /// `orphan` (dry run), `deleted`, `failed`, `spared` (the second look found an
    /// owner or a lease) or `not-in-time`.
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Skipped {
    kind: &'static str,
    name: String,
    reason: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    success: bool,
    dry_run: bool,
    complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    continuation: Option<String>,
    scanned: usize,
    orphans: Vec<Reported>,
    spared: Vec<Skipped>,
    deleted: usize,
    failed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_by: Option<String>,
    message: String,
}

/// The minimum age of a resource the reconcile may touch: the longest a create holds its
/// lease.
fn min_age() -> i64 {
    duration_ms(DEFAULT_LEASE) / 1000
}

/// The records a candidate's names point at, read after every completed write (the
/// subdomain's claim and each record; the index by subdomain only adds users to read).
async fn related(svc: &Services, owner: &OwnerKey) -> Result<Vec<Instance>> {
    let san = match owner {
        OwnerKey::User(uid) => return Ok(svc.store.instances.get_latest(uid).await?.into_iter().collect()),
        OwnerKey::Subdomain(san) | OwnerKey::Named { san, .. } => san,
    };
    let mut users: Vec<String> = svc.store.claims.subdomain_owner(san).await?.into_iter().collect();
    for u in svc.store.instances.others_named(san, "").await? {
        if !users.contains(&u) {
            users.push(u);
        }
    }
    let mut found = Vec::new();
    for u in users {
        if let Some(r) = svc.store.instances.get_latest(&u).await? {
            found.push(r);
        }
    }
    Ok(found)
}

/// A verdict, with the records it was taken on.
type Judged = (Verdict, Vec<Instance>);

async fn judge(svc: &Services, c: &Candidate) -> Result<Judged> {
    let rel = related(svc, &c.owner).await?;
    let v = verdict::verdict(c, &rel, svc.now(), min_age());
    // A destroy with keepLicenseSharing keeps the owner's secret for the sessions booked on
    // the license: while the pool has an entry for it, the entry owns the secret.
    if let (Verdict::Orphan(_), ResourceKind::Secret, OwnerKey::User(uid)) = (&v, c.kind, &c.owner) {
        if c.name == crate::domain::names::secret_name(uid)
            && svc
                .store
                .pools
                .get(&crate::domain::names::license_id(uid))
                .await?
                .is_some()
        {
            return Ok((Verdict::Owned, rel));
        }
    }
    Ok((v, rel))
}

fn report(svc: &Services, c: &Candidate, reason: String, outcome: &'static str) -> Reported {
    Reported {
        kind: c.kind.metric(),
        name: c.name.clone(),
        created_at: c.created_at,
        age_seconds: c.created_at.map(|t| svc.now() - t),
        reason,
        access_keys: None,
        outcome,
        error: None,
    }
}

/// Removes one orphan, after reading its records again → its outcome.
async fn remove(svc: &Services, ctx: &Ctx, until_ms: i64, c: &Candidate, mut r: Reported) -> Reported {
    if svc.clock.now_ms() >= until_ms {
        r.outcome = "not-in-time";
        return r;
    }
    let related = match judge(svc, c).await {
        Ok((Verdict::Orphan(_), related)) => related,
        Ok((Verdict::Owned, _)) => {
            r.outcome = "spared";
            r.error = Some("an instance record owns it now".into());
            return r;
        }
        Ok((Verdict::Spared(why), _)) => {
            r.outcome = "spared";
            r.error = Some(why.into());
            return r;
        }
        Err(e) => {
            r.outcome = "failed";
            r.error = Some(format!("reading its instance records again: {e}"));
            return r;
        }
    };
    let mut left = Leftovers::default();
    match c.kind {
        ResourceKind::S3Bucket => one::remove_bucket(svc, until_ms, &c.target, &mut left).await,
        ResourceKind::IamUser => one::remove_iam_user(svc, &c.target, None, &mut left).await,
        ResourceKind::Secret => one::remove_secret_named(svc, &c.target, &mut left).await,
        ResourceKind::TargetGroup => one::remove_target_group_arn(svc, &c.target, &mut left).await,
        ResourceKind::ListenerRule => one::remove_rule(svc, &c.target, &mut left).await,
        ResourceKind::DnsRecord => one::remove_alias_to_us(svc, &c.target, &mut left).await,
        ResourceKind::AccessPoint => {
            let OwnerKey::User(uid) = &c.owner else {
                return r;
            };
            // The files at the directory are erased only when no record is the user's:
            // a second access point of a living instance goes alone.
            one::remove_access_point(svc, ctx, uid, &c.target, related.is_empty(), &mut left).await
        }
        ResourceKind::TaskDefinition => one::remove_task_definitions(svc, until_ms, &c.target, &mut left).await,
        ResourceKind::LogGroup => one::remove_log_group(svc, &c.target, &mut left).await,
        ResourceKind::Task => {}
    }
    if left.is_empty() {
        r.outcome = "deleted";
        tracing::info!(kind = r.kind, name = %r.name, "reconcile removed an orphan");
    } else {
        r.outcome = "failed";
        r.error = Some(left.describe());
        tracing::warn!(kind = r.kind, name = %r.name, left = %left.describe(), "reconcile could not remove an orphan");
    }
    r
}

/// `admin-reconcile`.
pub async fn admin_reconcile(svc: &Services, ctx: &Ctx, f: &ReconcileFields) -> Result<Value> {
    let apply = match (f.apply, f.dry_run) {
        (Some(true), Some(true)) => {
            return Err(Error::BadRequest(
                "dryRun and apply contradict each other: send apply: true alone to delete".into(),
            ))
        }
        (Some(true), _) => true,
        _ => false,
    };
    let mut cursor = match f.continuation.as_deref() {
        Some(t) => Cursor::decode(t)?,
        None => Cursor::start(),
    };
    let until = ctx.wait_until_ms(svc.clock.as_ref());
    let mut answer = Answer {
        success: true,
        dry_run: !apply,
        complete: false,
        continuation: None,
        scanned: 0,
        orphans: Vec::new(),
        spared: Vec::new(),
        deleted: 0,
        failed: 0,
        stopped_by: None,
        message: String::new(),
    };
    let mut done = false;
    while svc.clock.now_ms() < until && answer.orphans.len() < MAX_REPORTED {
        let page = match listing::page(svc, cursor.phase, cursor.marker.as_deref()).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(listing = cursor.phase.name(), error = %e, "reconcile: a listing failed");
                answer.stopped_by = Some(format!("listing {}: {e}", cursor.phase.name()));
                break;
            }
        };
        answer.scanned += page.items.len();
        let judged: Vec<(Candidate, Result<Judged>)> = stream::iter(page.items)
            .map(|c| async move {
                let v = judge(svc, &c).await;
                (c, v)
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut orphans = Vec::new();
        let mut unreadable = None;
        for (c, v) in judged {
            match v {
                Ok((Verdict::Orphan(why), _)) => {
                    if let Some(found) = reported(svc, c, why).await {
                        orphans.push(found);
                    }
                }
                Ok((Verdict::Spared(why), _)) => answer.spared.push(Skipped {
                    kind: c.kind.metric(),
                    name: c.name.clone(),
                    reason: why,
                }),
                Ok((Verdict::Owned, _)) => {}
                Err(e) => unreadable = Some(format!("reading the instance records of {}: {e}", c.name)),
            }
        }
        if let Some(why) = unreadable {
            // Nothing of a page is judged on a partial read: the next call reads it again.
            answer.stopped_by = Some(why);
            break;
        }
        let mut finished = true;
        if apply {
            let removed: Vec<Reported> = stream::iter(orphans)
                .map(|(c, r)| async move { remove(svc, ctx, until, &c, r).await })
                .buffered(CONCURRENCY)
                .collect()
                .await;
            for r in removed {
                match r.outcome {
                    "deleted" => answer.deleted += 1,
                    "failed" => answer.failed += 1,
                    "not-in-time" => finished = false,
                    _ => {}
                }
                answer.orphans.push(r);
            }
        } else {
            answer.orphans.extend(orphans.into_iter().map(|(_, r)| r));
        }
        if !finished {
            // The page is read again by the next call; what is gone by then is not listed.
            break;
        }
        match cursor.after(page.next) {
            Some(next) => cursor = next,
            None => {
                done = true;
                break;
            }
        }
    }
    answer.complete = done;
    if !done {
        answer.continuation = Some(cursor.encode());
    }
    let found = answer.orphans.len();
    answer.message = match (apply, done) {
        (false, true) => {
            format!("Dry run: {found} orphaned resources found. Call again with apply: true to delete them.")
        }
        (false, false) => {
            format!("Dry run: {found} orphaned resources found so far. Call again with the continuation to go on.")
        }
        (true, true) => format!(
            "{} orphaned resources deleted, {} failed.",
            answer.deleted, answer.failed
        ),
        (true, false) => format!(
            "{} orphaned resources deleted, {} failed so far. Call again with the continuation to go on.",
            answer.deleted, answer.failed
        ),
    };
    crate::response::to_body(&answer)
}

/// The report of an orphan (with an IAM user's access keys) → `None` for a task-definition
/// family without an active revision (nothing left to deregister).
async fn reported(svc: &Services, c: Candidate, why: String) -> Option<(Candidate, Reported)> {
    let mut r = report(svc, &c, why, "orphan");
    match c.kind {
        ResourceKind::IamUser => match svc.aws.iam.access_key_ids(&c.target).await {
            Ok(keys) => r.access_keys = Some(keys),
            Err(e) => tracing::warn!(user = %c.target, error = %e, "reconcile: could not list the access keys"),
        },
        ResourceKind::TaskDefinition => {
            let family = crate::domain::names::task_family(&c.target);
            if svc
                .aws
                .ecs
                .list_task_definitions(&family)
                .await
                .is_ok_and(|arns| arns.is_empty())
            {
                return None;
            }
        }
        _ => {}
    }
    Some((c, r))
}
