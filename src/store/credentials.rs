//! The user's secret as a record: its JSON schema, read and written through the Secrets
//! Manager adapter (GET-CREDENTIALS and STORE-CREDENTIALS of the original).

use crate::domain::model::Credentials;
use crate::domain::names;
use crate::error::{AwsErrorKind, Error, Result};
use crate::managers::Secrets;
use crate::secret::Sensitive;

/// The stored credentials of `user_id`. `None` only when the secret does not exist (or is
/// scheduled for deletion); an outage or malformed JSON is an error.
pub async fn get_credentials(secrets: &dyn Secrets, user_id: &str) -> Result<Option<Credentials>> {
    let name = names::secret_name(user_id);
    match secrets.get_secret_string(&name).await? {
        None => Ok(None),
        // The error names where the JSON went wrong, never what it holds there: that
        // may be a password.
        Some(text) => serde_json::from_str(text.expose()).map(Some).map_err(|e| {
            Error::Failed(format!(
                "Secret {name} does not hold valid credentials JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        }),
    }
}

/// Creates or updates the secret of `user_id` with `creds` → its ARN.
pub async fn store_credentials(secrets: &dyn Secrets, user_id: &str, creds: &Credentials) -> Result<String> {
    store_secret(secrets, &names::secret_name(user_id), user_id, creds).await
}

/// Creates or updates the secret `name` of `user_id` with `creds` → its ARN.
pub async fn store_secret(secrets: &dyn Secrets, name: &str, user_id: &str, creds: &Credentials) -> Result<String> {
    let name = name.to_string();
    let value = Sensitive::new(
        serde_json::to_string(creds).map_err(|e| Error::Failed(format!("Cannot encode credentials: {e}")))?,
    );
    let tags = vec![
        ("UserId".to_string(), user_id.to_string()),
        ("Application".to_string(), "FoundryVTT".to_string()),
    ];
    let description = format!("Foundry VTT credentials for user {user_id}");
    let err = match secrets.create_secret(&name, &description, &tags, &value).await {
        Ok(arn) => return Ok(arn),
        Err(e) => e,
    };
    let err = match err.kind {
        AwsErrorKind::AlreadyExists => match secrets.update_secret(&name, &value).await {
            Ok(arn) => return Ok(arn),
            Err(e) => e,
        },
        _ => err,
    };
    if err.kind != AwsErrorKind::Conflict {
        return Err(err.into());
    }
    // Scheduled for deletion: restore it, then write the new value.
    let restored = async {
        secrets.restore_secret(&name).await?;
        secrets.update_secret(&name, &value).await
    }
    .await;
    restored.map_err(|_| {
        Error::Failed(format!(
            "Secret {name} is scheduled for deletion and cannot be restored. Please try again in a few minutes, or contact an admin if this persists. Original error: {}",
            err.message
        ))
    })
}
