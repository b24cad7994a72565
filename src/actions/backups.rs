//! `list-backups`: a user's world backups, newest first (see `domain::backup` for where they
//! live). An admin may name another user with `targetUserId` (checked in `auth`).

use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use serde_json::Value;

use crate::context::{Ctx, Services};
use crate::domain::backup;
use crate::error::{Error, Result};

/// How many versions' metadata are read at once.
const CONCURRENCY: usize = 8;

/// One backup in the answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BackupView {
    /// The backup's id: the version id of the user's backup object.
    backup_id: String,
    /// When it was made (Unix seconds).
    created_at: i64,
    /// Size of the archive in bytes.
    size: i64,
    /// What caused it (`run-end`), or `unknown` when its metadata could not be read.
    cause: String,
    /// The latest backup.
    latest: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct BackupList {
    user_id: String,
    backups: Vec<BackupView>,
    count: usize,
}

/// `list-backups`: the backups of `target` (the caller, unless an admin named another user),
/// newest first, with time, size and cause.
pub async fn list_backups(svc: &Services, ctx: &Ctx, caller: &str, target: Option<&str>) -> Result<Value> {
    let Some(settings) = svc.config.backups.as_ref() else {
        return Err(Error::BadRequest(
            "Backups are not enabled in this deployment (BACKUPS is off)".into(),
        ));
    };
    let user_id = target.filter(|t| !t.is_empty()).unwrap_or(caller);
    crate::domain::names::validate_user_id(user_id).map_err(Error::BadRequest)?;
    let key = backup::object_key(user_id);
    let mut versions = svc.aws.s3.list_versions(&settings.bucket, &key).await?;
    versions.sort_by(|a, b| {
        b.last_modified
            .cmp(&a.last_modified)
            .then(b.is_latest.cmp(&a.is_latest))
    });
    let wait_until = ctx.wait_until_ms(svc.clock.as_ref());
    let backups: Vec<BackupView> = stream::iter(versions)
        .map(|v| {
            let (bucket, key) = (&settings.bucket, &key);
            async move {
                // Past the deadline, a cause is left unread rather than the answer lost.
                let cause = if svc.clock.now_ms() >= wait_until {
                    None
                } else {
                    match svc.aws.s3.head_object(bucket, key, Some(&v.version_id)).await {
                        Ok(head) => head.and_then(|h| h.metadata.get(backup::CAUSE_METADATA).cloned()),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not read a backup's metadata");
                            None
                        }
                    }
                };
                BackupView {
                    backup_id: v.version_id,
                    created_at: v.last_modified,
                    size: v.size,
                    cause: cause.unwrap_or_else(|| "unknown".into()),
                    latest: v.is_latest,
                }
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await;
    crate::response::to_body(&BackupList {
        user_id: user_id.to_string(),
        count: backups.len(),
        backups,
    })
}
