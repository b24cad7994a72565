//! Secrets Manager: the per-user credentials secret.

use async_trait::async_trait;

use crate::error::AwsError;
use crate::managers::{Listed, Page};
use crate::secret::Sensitive;

#[async_trait]
pub trait Secrets: Send + Sync {
    /// GetSecretValue → the SecretString. `Ok(None)` when the secret does not exist or is
    /// scheduled for deletion. Any other failure is an error (never "absent").
    async fn get_secret_string(&self, secret_id: &str) -> Result<Option<Sensitive>, AwsError>;

    /// CreateSecret → ARN. An existing secret is an `AlreadyExists` error; one scheduled for
    /// deletion is a `Conflict` error.
    async fn create_secret(
        &self,
        name: &str,
        description: &str,
        tags: &[(String, String)],
        value: &Sensitive,
    ) -> Result<String, AwsError>;

    /// UpdateSecret (new SecretString) → ARN. A secret scheduled for deletion is a `Conflict`.
    async fn update_secret(&self, secret_id: &str, value: &Sensitive) -> Result<String, AwsError>;

    /// RestoreSecret (cancels a scheduled deletion).
    async fn restore_secret(&self, secret_id: &str) -> Result<(), AwsError>;

    /// DeleteSecret; `force` = ForceDeleteWithoutRecovery. A missing secret is a `NotFound` error.
    async fn delete_secret(&self, secret_id: &str, force: bool) -> Result<(), AwsError>;

    /// ListSecrets, one item: a health probe (it needs no secret to exist).
    async fn list_one(&self) -> Result<(), AwsError>;

    /// One page of ListSecrets: the secrets whose name starts with `prefix` (not those
    /// scheduled for deletion), from `token`.
    async fn list_secrets_page(&self, prefix: &str, token: Option<&str>) -> Result<Page<Listed>, AwsError>;
}

/// The SDK adapter.
pub struct SdkSecrets {
    client: super::sdk::LazyClient<aws_sdk_secretsmanager::Client>,
}

impl SdkSecrets {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        SdkSecrets {
            client: super::sdk::LazyClient::new(sdk, |sdk| {
                let mut conf = aws_sdk_secretsmanager::config::Builder::from(sdk);
                conf.push_interceptor(instrument::interceptor());
                aws_sdk_secretsmanager::Client::from_conf(conf.build())
            }),
        }
    }
}

use aws_sdk_secretsmanager::types::Tag;

use crate::error::AwsErrorKind;
use crate::managers::{instrument, sdk_error};

const SERVICE: &str = "secretsmanager";

/// Whether an `InvalidRequestException` message says the secret is scheduled (marked) for
/// deletion. AWS says "…because it was marked for deletion" / "…scheduled for deletion";
/// moto says "…a secret that's currently marked deleted".
pub fn is_deletion_message(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("scheduled for deletion") || m.contains("marked for deletion") || m.contains("marked deleted")
}

/// Whether `err` means "this secret is (for our purposes) absent": it does not exist, or it
/// is scheduled for deletion.
fn is_absent(err: &AwsError) -> bool {
    match err.code.as_deref() {
        Some("ResourceNotFoundException") => true,
        Some("InvalidRequestException") => is_deletion_message(&err.message),
        _ => false,
    }
}

/// Refines the kind of a Secrets Manager error: a secret scheduled for deletion is a
/// `Conflict`, whatever wording the service used.
fn refine(mut err: AwsError) -> AwsError {
    if err.code.as_deref() == Some("InvalidRequestException") && is_deletion_message(&err.message) {
        err.kind = AwsErrorKind::Conflict;
    }
    err
}

fn arn_or_error(operation: &'static str, arn: Option<&str>) -> Result<String, AwsError> {
    arn.map(str::to_string).ok_or_else(|| {
        AwsError::new(
            SERVICE,
            operation,
            AwsErrorKind::Other,
            format!("{operation} returned no ARN"),
        )
    })
}

#[async_trait]
impl Secrets for SdkSecrets {
    /// A secret without a SecretString (binary only) is an `Invalid` error.
    async fn get_secret_string(&self, secret_id: &str) -> Result<Option<Sensitive>, AwsError> {
        const OP: &str = "GetSecretValue";
        match self.client.get_secret_value().secret_id(secret_id).send().await {
            Ok(out) => match out.secret_string {
                Some(s) => Ok(Some(Sensitive::new(s))),
                None => Err(AwsError::new(
                    SERVICE,
                    OP,
                    AwsErrorKind::Invalid,
                    format!("secret {secret_id} has no SecretString"),
                )),
            },
            Err(e) => {
                let err = sdk_error(SERVICE, OP, e);
                if is_absent(&err) {
                    Ok(None)
                } else {
                    Err(refine(err))
                }
            }
        }
    }

    async fn create_secret(
        &self,
        name: &str,
        description: &str,
        tags: &[(String, String)],
        value: &Sensitive,
    ) -> Result<String, AwsError> {
        const OP: &str = "CreateSecret";
        let tags: Option<Vec<Tag>> = (!tags.is_empty()).then(|| {
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect()
        });
        let out = self
            .client
            .create_secret()
            .name(name)
            .description(description)
            .set_tags(tags)
            .secret_string(value.expose())
            .send()
            .await
            .map_err(|e| refine(sdk_error(SERVICE, OP, e)))?;
        arn_or_error(OP, out.arn())
    }

    async fn update_secret(&self, secret_id: &str, value: &Sensitive) -> Result<String, AwsError> {
        const OP: &str = "UpdateSecret";
        let out = self
            .client
            .update_secret()
            .secret_id(secret_id)
            .secret_string(value.expose())
            .send()
            .await
            .map_err(|e| refine(sdk_error(SERVICE, OP, e)))?;
        arn_or_error(OP, out.arn())
    }

    async fn restore_secret(&self, secret_id: &str) -> Result<(), AwsError> {
        self.client
            .restore_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| refine(sdk_error(SERVICE, "RestoreSecret", e)))?;
        Ok(())
    }

    /// Note: with `force`, AWS (and moto) answer success for a secret that does not exist,
    /// so `NotFound` only comes back without `force`.
    async fn delete_secret(&self, secret_id: &str, force: bool) -> Result<(), AwsError> {
        let mut req = self.client.delete_secret().secret_id(secret_id);
        if force {
            req = req.force_delete_without_recovery(true);
        }
        req.send()
            .await
            .map_err(|e| refine(sdk_error(SERVICE, "DeleteSecret", e)))?;
        Ok(())
    }

    async fn list_one(&self) -> Result<(), AwsError> {
        const OP: &str = "ListSecrets";
        self.client
            .list_secrets()
            .max_results(1)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        Ok(())
    }

    async fn list_secrets_page(&self, prefix: &str, token: Option<&str>) -> Result<Page<Listed>, AwsError> {
        use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
        let out = self
            .client
            .list_secrets()
            .filters(Filter::builder().key(FilterNameStringType::Name).values(prefix).build())
            .max_results(crate::managers::LIST_PAGE)
            .set_next_token(token.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "ListSecrets", e))?;
        Ok(Page {
            items: out
                .secret_list()
                .iter()
                .filter(|s| s.deleted_date().is_none())
                .filter_map(|s| {
                    let name = s.name()?;
                    name.starts_with(prefix).then(|| Listed {
                        name: name.to_string(),
                        arn: s.arn().map(str::to_string),
                        created_at: s.created_date().map(|d| d.secs()),
                    })
                })
                .collect(),
            next: crate::managers::next_token(out.next_token()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: &str, message: &str) -> AwsError {
        AwsError::new(
            SERVICE,
            "GetSecretValue",
            crate::managers::classify(code, message),
            message,
        )
        .with_code(code)
    }

    #[test]
    fn missing_and_deleted_secrets_are_absent() {
        assert!(is_absent(&err(
            "ResourceNotFoundException",
            "Secrets Manager can't find the specified secret."
        )));
        assert!(is_absent(&err(
            "InvalidRequestException",
            "You can't perform this operation on the secret because it was marked for deletion."
        )));
        assert!(is_absent(&err(
            "InvalidRequestException",
            "You tried to perform the operation on a secret that's currently marked deleted."
        )));
    }

    #[test]
    fn other_errors_are_not_absent() {
        assert!(!is_absent(&err("InvalidRequestException", "Something else is wrong")));
        assert!(!is_absent(&err("AccessDeniedException", "not allowed")));
        assert!(!is_absent(&err("InternalServiceError", "boom")));
    }

    #[test]
    fn deletion_errors_are_conflicts() {
        let e = refine(err(
            "InvalidRequestException",
            "You tried to perform the operation on a secret that's currently marked deleted.",
        ));
        assert_eq!(e.kind, AwsErrorKind::Conflict);
        let e = refine(err("InvalidRequestException", "bad"));
        assert_eq!(e.kind, AwsErrorKind::Invalid);
    }
}
