//! Errors of the library and their mapping to response envelopes.
//!
//! This module owns the mapping from [`Error`] to a status code and a client-facing
//! message (see [`Error::status_code`] and [`Error::client_message`]). The envelope
//! itself is built in `response.rs`, from nowhere else.

use std::fmt;

/// What kind of failure an AWS call reported, as far as our policy cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// The resource does not exist (NoSuchBucket, NoSuchEntity, ResourceNotFound, …).
    NotFound,
    /// The resource already exists (EntityAlreadyExists, ResourceExists, …).
    AlreadyExists,
    /// A DynamoDB condition expression evaluated to false.
    ConditionFailed,
    /// A transaction was cancelled (one of its conditions failed, or it conflicted).
    TransactionCanceled,
    /// An ELBv2 listener-rule priority is taken.
    PriorityInUse,
    /// The resource is in use or in a state that forbids the call (ResourceInUse,
    /// DeleteConflict, InvalidRequest on a secret scheduled for deletion…).
    Conflict,
    /// A bucket still holds objects (BucketNotEmpty).
    NotEmpty,
    /// The function's role may not make the call (AccessDenied).
    AccessDenied,
    /// The request was refused as invalid (bad parameter, validation error).
    Invalid,
    /// Throttling, timeouts, network errors, 5xx: the call may succeed if retried.
    Transient,
    /// Anything else.
    Other,
}

/// An AWS call that failed, with enough context to log and to decide policy.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    pub kind: AwsErrorKind,
    /// The service's error code (e.g. `NoSuchBucket`), when it sent one.
    pub code: Option<String>,
    pub message: String,
}

impl AwsError {
    pub fn new(service: &'static str, operation: &'static str, kind: AwsErrorKind, message: impl Into<String>) -> Self {
        Self {
            service,
            operation,
            kind,
            code: None,
            message: message.into(),
        }
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == AwsErrorKind::NotFound
    }

    pub fn is_already_exists(&self) -> bool {
        self.kind == AwsErrorKind::AlreadyExists
    }

    pub fn is_condition_failed(&self) -> bool {
        matches!(
            self.kind,
            AwsErrorKind::ConditionFailed | AwsErrorKind::TransactionCanceled
        )
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) if !self.message.contains(code.as_str()) => {
                write!(f, "{}: {}", code, self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for AwsError {}

/// Every error an invocation can end with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The guard: `action` or `userId` is missing or empty (as JavaScript judges it).
    #[error("Missing required parameters: action, userId")]
    MissingParameters,
    /// The action name is not one we know.
    #[error("Unknown action: {0}")]
    UnknownAction(String),
    /// A request field has the wrong type or shape (the original crashed with a 500).
    #[error("Invalid request field '{field}': {reason}")]
    InvalidField { field: String, reason: String },
    /// The invocation is not something this function can handle (e.g. an unrecognised
    /// EventBridge event or an HTTP body that is neither JSON nor a Ko-fi form post).
    #[error("{0}")]
    BadRequest(String),
    /// The caller may not do this (new in the port; see README "Differences").
    #[error("{0}")]
    Forbidden(String),
    /// The action aborted with a message (the original's `throw new Error(msg)`).
    #[error("{0}")]
    Failed(String),
    /// An AWS call failed and the action has no better wording for it.
    #[error("{0}")]
    Aws(#[from] AwsError),
    /// A stored item could not be decoded into its type.
    #[error("Malformed {what} item: {reason}")]
    Data { what: &'static str, reason: String },
}

impl Error {
    /// `Error::Failed` from anything printable.
    pub fn failed(message: impl Into<String>) -> Self {
        Error::Failed(message.into())
    }

    /// The HTTP-style status code of the envelope.
    pub fn status_code(&self) -> u16 {
        match self {
            Error::MissingParameters | Error::UnknownAction(_) | Error::InvalidField { .. } | Error::BadRequest(_) => {
                400
            }
            Error::Forbidden(_) => 403,
            Error::Failed(_) | Error::Aws(_) | Error::Data { .. } => 500,
        }
    }

    /// The text of the envelope's `error` field. 500s carry the original's
    /// `Internal error: ` prefix; 4xx carry the message alone, as the original answered them.
    pub fn client_message(&self) -> String {
        if self.status_code() >= 500 {
            format!("Internal error: {self}")
        } else {
            self.to_string()
        }
    }

    /// The metric/log outcome class of this error.
    pub fn is_client_error(&self) -> bool {
        self.status_code() < 500
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_and_unknown_action_are_400_with_spec_wording() {
        assert_eq!(Error::MissingParameters.status_code(), 400);
        assert_eq!(
            Error::MissingParameters.client_message(),
            "Missing required parameters: action, userId"
        );
        let e = Error::UnknownAction("nope".into());
        assert_eq!(e.status_code(), 400);
        assert_eq!(e.client_message(), "Unknown action: nope");
    }

    #[test]
    fn failures_are_500_with_internal_error_prefix() {
        let e = Error::failed("Instance not found");
        assert_eq!(e.status_code(), 500);
        assert_eq!(e.client_message(), "Internal error: Instance not found");
    }

    #[test]
    fn aws_error_display_includes_code_once() {
        let e = AwsError::new(
            "s3",
            "DeleteBucket",
            AwsErrorKind::Conflict,
            "The bucket you tried to delete is not empty",
        )
        .with_code("BucketNotEmpty");
        assert_eq!(
            e.to_string(),
            "BucketNotEmpty: The bucket you tried to delete is not empty"
        );
        let e = AwsError::new("s3", "X", AwsErrorKind::Other, "BucketNotEmpty happened").with_code("BucketNotEmpty");
        assert_eq!(e.to_string(), "BucketNotEmpty happened");
    }

    #[test]
    fn forbidden_is_403_without_prefix() {
        let e = Error::Forbidden("Only admins may do this".into());
        assert_eq!(e.status_code(), 403);
        assert_eq!(e.client_message(), "Only admins may do this");
    }
}
