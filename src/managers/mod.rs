//! One trait per AWS service, each with its SDK adapter (`SdkX`), and the one service
//! outside AWS, a Foundry server's status ([`foundry`], over the small [`http`] client).
//!
//! A manager performs one AWS operation, or a small idempotent group of them, and
//! maps AWS errors to [`AwsError`]. It never decides policy: whether "not found"
//! is fine, whether to retry, what to undo, is the action's business.

pub mod alb;
pub mod discord;
pub mod dynamodb;
pub mod ecs;
pub mod efs;
pub mod foundry;
pub mod http;
pub mod iam;
pub mod instrument;
pub mod logs;
pub mod route53;
pub mod s3;
pub mod sdk;
pub mod secrets;

use std::sync::Arc;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::{AwsError, AwsErrorKind};

pub use alb::Alb;
pub use dynamodb::Dynamo;
pub use ecs::Ecs;
pub use efs::Efs;
pub use foundry::FoundryStatus;
pub use iam::Iam;
pub use logs::Logs;
pub use route53::Route53;
pub use s3::S3;
pub use secrets::Secrets;

/// One page of a listing, and where the next page starts (`None`: this was the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Default for Page<T> {
    fn default() -> Self {
        Page {
            items: Vec::new(),
            next: None,
        }
    }
}

/// A resource as a listing shows it: its name, its ARN where it has one, and when it
/// was made where AWS says (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listed {
    pub name: String,
    pub arn: Option<String>,
    pub created_at: Option<i64>,
}

/// How many items one page of a listing asks for.
pub const LIST_PAGE: i32 = 100;

/// A token AWS sends back as it was: an empty one means "no more pages".
pub(crate) fn next_token(token: Option<&str>) -> Option<String> {
    token.filter(|t| !t.is_empty()).map(str::to_string)
}

/// Every AWS seam the actions use.
#[derive(Clone)]
pub struct Managers {
    pub ecs: Arc<dyn Ecs>,
    pub efs: Arc<dyn Efs>,
    pub s3: Arc<dyn S3>,
    pub iam: Arc<dyn Iam>,
    pub route53: Arc<dyn Route53>,
    pub alb: Arc<dyn Alb>,
    pub secrets: Arc<dyn Secrets>,
    pub logs: Arc<dyn Logs>,
    pub dynamo: Arc<dyn Dynamo>,
    /// Foundry's `/api/status` of a user's server (outside AWS).
    pub foundry: Arc<dyn FoundryStatus>,
    /// Discord's REST API (outside AWS): the notifications.
    pub discord: Arc<discord::Discord>,
}

impl Managers {
    /// The SDK adapters, all from one shared `SdkConfig` and one HTTPS client. Each SDK client
    /// is built on its first use, and the TLS connector once, at the first request ([`sdk`]):
    /// a cold start pays only for what its invocation uses.
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        let sdk = &sdk::with_shared_http_client(sdk);
        Managers {
            ecs: Arc::new(ecs::SdkEcs::new(sdk)),
            efs: Arc::new(efs::SdkEfs::new(sdk)),
            s3: Arc::new(s3::SdkS3::new(sdk)),
            iam: Arc::new(iam::SdkIam::new(sdk)),
            route53: Arc::new(route53::SdkRoute53::new(sdk)),
            alb: Arc::new(alb::SdkAlb::new(sdk)),
            secrets: Arc::new(secrets::SdkSecrets::new(sdk)),
            logs: Arc::new(logs::SdkLogs::new(sdk)),
            dynamo: Arc::new(dynamodb::SdkDynamo::new(sdk)),
            foundry: Arc::new(foundry::HttpFoundryStatus::new()),
            discord: Arc::new(discord::Discord::new()),
        }
    }
}

/// Classifies an AWS error code (and, for codes that are overloaded, its message).
pub fn classify(code: &str, message: &str) -> AwsErrorKind {
    use AwsErrorKind::*;
    let lower = message.to_ascii_lowercase();
    match code {
        "NoSuchBucket"
        | "NotFound"
        | "NoSuchKey"
        | "NoSuchEntity"
        | "ResourceNotFoundException"
        | "AccessPointNotFound"
        | "FileSystemNotFound"
        | "TargetGroupNotFound"
        | "RuleNotFound"
        | "ListenerNotFound"
        | "LoadBalancerNotFound"
        | "NoSuchHostedZone"
        | "NoSuchLifecycleConfiguration"
        | "TaskDefinitionNotFound" => NotFound,
        "EntityAlreadyExists"
        | "ResourceExistsException"
        | "BucketAlreadyOwnedByYou"
        | "BucketAlreadyExists"
        | "AccessPointAlreadyExists"
        | "DuplicateTargetGroupName"
        | "DuplicateListener" => AlreadyExists,
        "ConditionalCheckFailedException" => ConditionFailed,
        "TransactionCanceledException" | "TransactionConflictException" => TransactionCanceled,
        "PriorityInUse" => PriorityInUse,
        "ResourceInUse"
        | "ResourceInUseException"
        | "DeleteConflict"
        | "ConflictException"
        | "AccessPointLimitExceeded"
        | "IncorrectFileSystemLifeCycleState" => Conflict,
        "BucketNotEmpty" => NotEmpty,
        "AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" => AccessDenied,
        "InvalidChangeBatch" => {
            if lower.contains("not found") {
                NotFound
            } else if lower.contains("already exists") {
                AlreadyExists
            } else {
                Invalid
            }
        }
        "InvalidRequestException" => {
            if lower.contains("scheduled for deletion")
                || lower.contains("marked for deletion")
                // moto's wording
                || lower.contains("marked deleted")
            {
                Conflict
            } else {
                Invalid
            }
        }
        "ClientException" | "InvalidParameterException" => {
            // ECS reports unknown tasks/definitions as client errors.
            if lower.contains("not found") || lower.contains("unable to describe task definition") {
                NotFound
            } else {
                Invalid
            }
        }
        "ValidationException"
        | "ValidationError"
        | "InvalidParameterValue"
        | "InvalidInput"
        | "InvalidTarget"
        | "MalformedPolicyDocument"
        | "InvalidParameterValueException"
        | "BadRequest" => Invalid,
        "Throttling"
        | "ThrottlingException"
        | "ProvisionedThroughputExceededException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "InternalError"
        | "InternalServerError"
        | "InternalFailure"
        | "InternalServiceError"
        | "SlowDown"
        | "RequestTimeout"
        | "PriorRequestNotComplete"
        | "ServerException"
        | "ServiceException"
        | "ThrottledException" => Transient,
        _ => Other,
    }
}

/// Maps any SDK error to an [`AwsError`] for `service`/`operation`.
pub fn sdk_error<E, R>(service: &'static str, operation: &'static str, err: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let code = e.code().unwrap_or("Unknown").to_string();
            let message = e.message().map(str::to_string).unwrap_or_else(|| {
                // Some errors (e.g. S3 HeadBucket 404) carry no message.
                let display = aws_smithy_types::error::display::DisplayErrorContext(e).to_string();
                if display.is_empty() {
                    code.clone()
                } else {
                    display
                }
            });
            let kind = classify(&code, &message);
            AwsError::new(service, operation, kind, message).with_code(code)
        }
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => AwsError::new(
            service,
            operation,
            AwsErrorKind::Transient,
            format!(
                "{service} {operation} failed: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            ),
        ),
        _ => AwsError::new(
            service,
            operation,
            AwsErrorKind::Other,
            format!(
                "{service} {operation} failed: {}",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_codes_our_policy_depends_on() {
        assert_eq!(classify("NoSuchBucket", ""), AwsErrorKind::NotFound);
        assert_eq!(classify("EntityAlreadyExists", ""), AwsErrorKind::AlreadyExists);
        assert_eq!(
            classify("ConditionalCheckFailedException", ""),
            AwsErrorKind::ConditionFailed
        );
        assert_eq!(classify("PriorityInUse", ""), AwsErrorKind::PriorityInUse);
        assert_eq!(classify("BucketNotEmpty", ""), AwsErrorKind::NotEmpty);
        assert_eq!(classify("AccessDeniedException", ""), AwsErrorKind::AccessDenied);
        assert_eq!(
            classify(
                "InvalidChangeBatch",
                "Tried to delete resource record set [name='a.example.com.', type='A'] but it was not found"
            ),
            AwsErrorKind::NotFound
        );
        assert_eq!(
            classify(
                "InvalidChangeBatch",
                "Tried to create resource record set [name='a.example.com.', type='A'] but it already exists"
            ),
            AwsErrorKind::AlreadyExists
        );
        assert_eq!(
            classify(
                "InvalidRequestException",
                "You can't perform this operation on the secret because it was scheduled for deletion."
            ),
            AwsErrorKind::Conflict
        );
        assert_eq!(classify("ThrottlingException", ""), AwsErrorKind::Transient);
        assert_eq!(classify("SomethingNew", ""), AwsErrorKind::Other);
    }
}
