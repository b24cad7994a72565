//! Every name derived from a user, and its validation.
//!
//! Validation happens before the first AWS call: a name that some derived
//! resource cannot carry is refused with a clear message.

/// Longest `sanitizedUsername` that fits every derived name: the target group
/// `foundry-<san>` must stay within ELBv2's 32 characters.
pub const MAX_SANITIZED_USERNAME: usize = 24;

/// Longest user id accepted for a new instance (Discord ids have 17–20 digits).
pub const MAX_USER_ID: usize = 64;

/// `<san>` must be a DNS label of lower-case letters, digits and inner hyphens, at most
/// [`MAX_SANITIZED_USERNAME`] characters.
pub fn validate_sanitized_username(san: &str) -> Result<(), String> {
    let b = san.as_bytes();
    let ok_char = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    if b.is_empty() {
        return Err("Missing sanitized username".into());
    }
    if b.len() > MAX_SANITIZED_USERNAME || !b.iter().all(ok_char) || b[0] == b'-' || b[b.len() - 1] == b'-' {
        return Err(format!(
            "Invalid sanitized username '{san}': use 1-{MAX_SANITIZED_USERNAME} lower-case letters, digits and inner hyphens"
        ));
    }
    if san.starts_with("xn--") {
        return Err(format!(
            "Invalid sanitized username '{san}': it may not start with 'xn--'"
        ));
    }
    Ok(())
}

/// A user id that names per-user resources must be 1–64 ASCII letters or digits.
pub fn validate_user_id(user_id: &str) -> Result<(), String> {
    if user_id.is_empty() || user_id.len() > MAX_USER_ID || !user_id.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "Invalid userId '{user_id}': use 1-{MAX_USER_ID} ASCII letters or digits"
        ));
    }
    Ok(())
}

/// The last 8 characters of the user id (the whole id if shorter).
pub fn last8(user_id: &str) -> &str {
    let n = user_id.chars().count();
    if n <= 8 {
        return user_id;
    }
    let start = user_id.char_indices().nth(n - 8).map(|(i, _)| i).unwrap_or(0);
    &user_id[start..]
}

/// `foundry-<san>-<last8>`, lower-cased.
pub fn bucket_name(san: &str, user_id: &str) -> String {
    format!("foundry-{san}-{}", last8(user_id)).to_lowercase()
}

/// `https://<bucket>.s3.<region>.amazonaws.com`
pub fn bucket_url(bucket: &str, region: &str) -> String {
    format!("https://{bucket}.s3.{region}.amazonaws.com")
}

/// `foundry-<san>-<last8>` (not lower-cased).
pub fn iam_user_name(san: &str, user_id: &str) -> String {
    format!("foundry-{san}-{}", last8(user_id))
}

pub const IAM_USER_PATH: &str = "/foundry/";
pub const IAM_POLICY_NAME: &str = "FoundryS3BucketAccess";

/// `foundry-credentials-<userId>`
pub fn secret_name(user_id: &str) -> String {
    format!("foundry-credentials-{user_id}")
}

/// The secret a scheduled run on another owner's license reads its login from, for the
/// length of the run: `foundry-credentials-<userId>-session`.
pub fn session_secret_name(user_id: &str) -> String {
    format!("foundry-credentials-{user_id}-session")
}

/// `foundry-<san>`
pub fn target_group_name(san: &str) -> String {
    format!("foundry-{san}")
}

/// `<san>.<DOMAIN>`
pub fn host(san: &str, domain: &str) -> String {
    format!("{san}.{domain}")
}

/// `https://<san>.<DOMAIN>`
pub fn url(san: &str, domain: &str) -> String {
    format!("https://{}", host(san, domain))
}

/// ECS task family of the user's Foundry server: `foundry-<userId>`.
pub fn task_family(user_id: &str) -> String {
    format!("foundry-{user_id}")
}

/// CloudWatch log group of the user's Foundry container.
pub fn log_group(user_id: &str) -> String {
    format!("/aws/ecs/foundry-{user_id}")
}

/// The log group the original's configuration sidecar wrote to (never deleted by it).
pub fn legacy_log_group(user_id: &str) -> String {
    format!("/ecs/foundry-{user_id}")
}

/// EFS directory of the user: `/foundry-instances/<userId>`.
pub fn efs_path(user_id: &str) -> String {
    format!("/foundry-instances/{user_id}")
}

/// `byol-<ownerUserId>`
pub fn license_id(owner_user_id: &str) -> String {
    format!("byol-{owner_user_id}")
}

/// The owner of `byol-<owner>` (`^byol-(.+)$`).
pub fn license_owner(license_id: &str) -> Option<&str> {
    license_id.strip_prefix("byol-").filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_names_follow_the_spec() {
        let uid = "123456789012345678";
        assert_eq!(last8(uid), "12345678");
        assert_eq!(last8("42"), "42");
        assert_eq!(bucket_name("Alice", uid), "foundry-alice-12345678");
        assert_eq!(iam_user_name("Alice", uid), "foundry-Alice-12345678");
        assert_eq!(secret_name(uid), "foundry-credentials-123456789012345678");
        assert_eq!(target_group_name("alice"), "foundry-alice");
        assert_eq!(url("alice", "example.com"), "https://alice.example.com");
        assert_eq!(bucket_url("b", "eu-west-1"), "https://b.s3.eu-west-1.amazonaws.com");
        assert_eq!(task_family(uid), "foundry-123456789012345678");
        assert_eq!(license_id("7"), "byol-7");
        assert_eq!(license_owner("byol-7"), Some("7"));
        assert_eq!(license_owner("byol-"), None);
        assert_eq!(license_owner("pool-7"), None);
    }

    #[test]
    fn sanitized_username_must_fit_every_derived_name() {
        for ok in ["a", "alice", "a-b", "a1", "abcdefghijklmnopqrstuvwx"] {
            assert!(validate_sanitized_username(ok).is_ok(), "{ok}");
            assert!(target_group_name(ok).len() <= 32);
            assert!(bucket_name(ok, "12345678901234567890").len() <= 63);
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "a.b",
            "a b",
            "abcdefghijklmnopqrstuvwxy",
            "xn--a",
            "ä",
        ] {
            assert!(validate_sanitized_username(bad).is_err(), "{bad}");
        }
        assert_eq!(
            validate_sanitized_username("").unwrap_err(),
            "Missing sanitized username"
        );
    }

    #[test]
    fn user_ids_are_letters_and_digits() {
        assert!(validate_user_id("123456789012345678").is_ok());
        assert!(validate_user_id("").is_err());
        assert!(validate_user_id("../x").is_err());
        assert!(validate_user_id(&"1".repeat(65)).is_err());
    }
}
