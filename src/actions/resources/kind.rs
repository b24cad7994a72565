//! The kinds of per-user AWS resources, counting what was made and removed, and what a
//! removal left.

use crate::context::Services;
use crate::error::AwsError;

/// The kinds of per-user AWS resources, for messages and the `Resources*` metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    AccessPoint,
    S3Bucket,
    IamUser,
    Secret,
    TargetGroup,
    DnsRecord,
    ListenerRule,
    Task,
    TaskDefinition,
    LogGroup,
}

impl ResourceKind {
    /// The kind in words, for messages.
    pub fn label(self) -> &'static str {
        match self {
            ResourceKind::AccessPoint => "access point",
            ResourceKind::S3Bucket => "S3 bucket",
            ResourceKind::IamUser => "IAM user",
            ResourceKind::Secret => "secret",
            ResourceKind::TargetGroup => "target group",
            ResourceKind::DnsRecord => "DNS record",
            ResourceKind::ListenerRule => "listener rule",
            ResourceKind::Task => "task",
            ResourceKind::TaskDefinition => "task definition",
            ResourceKind::LogGroup => "log group",
        }
    }

    /// The `ResourceKind` dimension value of the metrics.
    pub fn metric(self) -> &'static str {
        match self {
            ResourceKind::AccessPoint => "AccessPoint",
            ResourceKind::S3Bucket => "S3Bucket",
            ResourceKind::IamUser => "IamUser",
            ResourceKind::Secret => "Secret",
            ResourceKind::TargetGroup => "TargetGroup",
            ResourceKind::DnsRecord => "DnsRecord",
            ResourceKind::ListenerRule => "ListenerRule",
            ResourceKind::Task => "Task",
            ResourceKind::TaskDefinition => "TaskDefinition",
            ResourceKind::LogGroup => "LogGroup",
        }
    }

    pub fn created(self) {
        crate::telemetry::resource_created(self.metric());
    }

    pub fn deleted(self) {
        crate::telemetry::resource_deleted(self.metric());
    }
}

/// Runs a delete → `Ok(true)` when it removed something (counted in the metrics),
/// `Ok(false)` when AWS said "not found" (already gone), an error otherwise.
pub fn removed(kind: ResourceKind, result: std::result::Result<(), AwsError>) -> std::result::Result<bool, AwsError> {
    match result {
        Ok(()) => {
            kind.deleted();
            Ok(true)
        }
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// What a removal could not remove, and why. Each step is tried; "not found" is done.
#[derive(Debug, Default)]
pub struct Leftovers(Vec<String>);

impl Leftovers {
    /// Records the outcome of removing a `kind` → whether it is gone.
    pub fn note(&mut self, kind: ResourceKind, result: std::result::Result<(), AwsError>) -> bool {
        match removed(kind, result) {
            Ok(_) => true,
            Err(e) => {
                self.0.push(format!("{}: {e}", kind.label()));
                false
            }
        }
    }

    pub fn push(&mut self, why: impl Into<String>) {
        self.0.push(why.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Everything left, in one sentence.
    pub fn describe(&self) -> String {
        self.0.join("; ")
    }
}

/// Whether the invocation still has time for the next step; if not, says so in `left`
/// (the next call of the action goes on from there).
pub(super) fn in_time(svc: &Services, until_ms: i64, next: &str, left: &mut Leftovers) -> bool {
    if svc.clock.now_ms() < until_ms {
        return true;
    }
    left.push(format!("time ran out before removing {next}"));
    false
}
