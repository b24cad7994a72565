//! What the reconcile may call an orphan: the names that make a resource ours, who owns
//! it, and the safety checks. Pure: no I/O.

use crate::actions::resources::ResourceKind;
use crate::domain::model::{Instance, InstanceStatus};
use crate::domain::names;
use crate::store::Lease;

/// The operator's own names under the domain: never a user's, whatever they point at.
pub const OPERATOR_LABELS: &[&str] = &["www", "mail"];

/// Names under `foundry-` that the deployment itself uses (its own log group
/// `/aws/ecs/foundry-vtt`), never a user id.
const RESERVED_IDS: &[&str] = &["vtt"];

/// How to find the instance records that may own a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerKey {
    /// A name that carries the user id (secret, task family, log group, access point).
    User(String),
    /// A name that carries the subdomain (target group, DNS record, listener rule).
    Subdomain(String),
    /// `foundry-<san>-<last8>` (bucket, IAM user): the subdomain and the user id's tail.
    Named { san: String, tail: String },
}

/// A resource a listing showed that carries one of our names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub kind: ResourceKind,
    /// As the report shows it.
    pub name: String,
    /// What its removal takes: an ARN, an id, a name, a user id or a subdomain.
    pub target: String,
    /// Unix seconds, where AWS gives a creation time.
    pub created_at: Option<i64>,
    pub owner: OwnerKey,
    /// The original's sidecar-era name (nothing of this version makes it).
    pub sidecar_era: bool,
}

/// What the reconcile makes of a candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An instance record owns it.
    Owned,
    /// Not touched, whoever owns it: why.
    Spared(&'static str),
    /// No instance record owns it: why.
    Orphan(String),
}

pub const YOUNG: &str = "younger than a create's lease: a create may be making it";
pub const LEASED: &str =
    "an instance record that names it is under a live lease (a create, start or destroy is at work)";

/// The verdict on `c`, given the instance records its names point at (`related`), at
/// `now`. The safety checks come first: a resource younger than `min_age` (a create's
/// lease) or named by a record under a live lease is never an orphan.
pub fn verdict(c: &Candidate, related: &[Instance], now: i64, min_age: i64) -> Verdict {
    if c.created_at.is_some_and(|t| now - t < min_age) {
        return Verdict::Spared(YOUNG);
    }
    if related.iter().any(|r| !Lease::is_free(r, now)) {
        return Verdict::Spared(LEASED);
    }
    if related.iter().any(|r| owns(r, c)) {
        return Verdict::Owned;
    }
    Verdict::Orphan(why_orphan(c, related))
}

/// Whether the record `r` (under no live lease) owns `c`.
fn owns(r: &Instance, c: &Candidate) -> bool {
    if r.status == InstanceStatus::Creating {
        // A create that died: of what it made, only what it recorded is its (its access
        // point, recorded at once); the rest is what the crash left.
        return c.kind == ResourceKind::AccessPoint && r.access_point_id.as_deref() == Some(c.target.as_str());
    }
    match &c.owner {
        OwnerKey::User(uid) if c.kind == ResourceKind::AccessPoint => {
            // A record owns the access point it names; one that names none, or a destroy
            // left unfinished, owns every one at the user's directory (the next destroy
            // deals with them).
            r.user_id == *uid
                && (r.access_point_id.is_none()
                    || r.access_point_id.as_deref() == Some(c.target.as_str())
                    || r.status == InstanceStatus::Destroying)
        }
        OwnerKey::User(uid) => r.user_id == *uid,
        OwnerKey::Subdomain(san) => r.sanitized_username.eq_ignore_ascii_case(san),
        OwnerKey::Named { .. } => match c.kind {
            ResourceKind::S3Bucket => {
                r.s3_bucket_name.as_deref() == Some(c.name.as_str())
                    || names::bucket_name(&r.sanitized_username, &r.user_id) == c.name
            }
            _ => names::iam_user_name(&r.sanitized_username, &r.user_id) == c.name,
        },
    }
}

fn why_orphan(c: &Candidate, related: &[Instance]) -> String {
    let died = related.iter().find(|r| r.status == InstanceStatus::Creating);
    let base = match &c.owner {
        _ if died.is_some() => format!(
            "left by a create that died: the record of user {} is still creating, its lease has expired, and it does not name this",
            died.map(|r| r.user_id.as_str()).unwrap_or_default()
        ),
        OwnerKey::User(uid) if !related.is_empty() => format!(
            "a second access point at the directory of user {uid}: the instance record names {}",
            related
                .iter()
                .find_map(|r| r.access_point_id.clone())
                .unwrap_or_default()
        ),
        OwnerKey::User(uid) => format!("no instance record for user {uid}"),
        OwnerKey::Subdomain(san) => format!("no instance uses the subdomain {san}"),
        OwnerKey::Named { san, tail } => {
            format!("no instance record has this name (subdomain {san}, user id ending in {tail})")
        }
    };
    if c.sidecar_era {
        format!("{base}; the original's sidecar wrote this log group, nothing writes it now")
    } else {
        base
    }
}

/// A user id as our names carry it: 1–64 letters or digits, and not a name of the
/// deployment's own.
pub fn user_id_in_name(s: &str) -> Option<&str> {
    (names::validate_user_id(s).is_ok() && !RESERVED_IDS.contains(&s)).then_some(s)
}

/// A subdomain label as our names carry it: letters, digits and inner hyphens, at most 63.
pub fn label_in_name(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    ok.then_some(s)
}

/// `foundry-<san>-<last8>` → (san, tail). The tail is the last 1–8 letters or digits of a
/// user id, so a longer last part (`foundry-vtt-artifacts-123456789012`) is not ours.
pub fn split_named(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix("foundry-")?;
    let (san, tail) = rest.rsplit_once('-')?;
    let tail_ok = (1..=8).contains(&tail.len()) && tail.bytes().all(|c| c.is_ascii_alphanumeric());
    (tail_ok && label_in_name(san).is_some()).then(|| (san.to_string(), tail.to_string()))
}

/// `<label>.<domain>` (one label, not the operator's) → the label.
pub fn user_label<'a>(host: &'a str, domain: &str) -> Option<&'a str> {
    let host = host.trim_end_matches('.');
    let domain = domain.trim_end_matches('.');
    if host.len() <= domain.len() + 1 {
        return None;
    }
    let (label, rest) = host.split_at(host.len() - domain.len() - 1);
    if !rest[1..].eq_ignore_ascii_case(domain) || !rest.starts_with('.') || label.contains('.') {
        return None;
    }
    let label = label_in_name(label)?;
    (!OPERATOR_LABELS.iter().any(|o| o.eq_ignore_ascii_case(label))).then_some(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_767_225_600;
    const LEASE: i64 = 900;

    fn bucket(name: &str, created_at: Option<i64>) -> Candidate {
        let (san, tail) = split_named(name).unwrap();
        Candidate {
            kind: ResourceKind::S3Bucket,
            name: name.into(),
            target: name.into(),
            created_at,
            owner: OwnerKey::Named { san, tail },
            sidecar_era: false,
        }
    }

    fn record(uid: &str, san: &str) -> Instance {
        Instance {
            user_id: uid.into(),
            sanitized_username: san.into(),
            status: InstanceStatus::Stopped,
            ..Instance::default()
        }
    }

    #[test]
    fn an_old_resource_no_record_names_is_an_orphan() {
        let c = bucket("foundry-bob-12345678", Some(NOW - 86_400));
        assert_eq!(
            verdict(&c, &[], NOW, LEASE),
            Verdict::Orphan("no instance record has this name (subdomain bob, user id ending in 12345678)".into())
        );
        // Another user of the subdomain does not own it.
        assert!(matches!(
            verdict(&c, &[record("99999999999", "bob")], NOW, LEASE),
            Verdict::Orphan(_)
        ));
        assert_eq!(verdict(&c, &[record("912345678", "bob")], NOW, LEASE), Verdict::Owned);
    }

    #[test]
    fn a_resource_younger_than_a_lease_is_spared() {
        let c = bucket("foundry-bob-12345678", Some(NOW - LEASE + 1));
        assert_eq!(verdict(&c, &[], NOW, LEASE), Verdict::Spared(YOUNG));
        let c = bucket("foundry-bob-12345678", Some(NOW - LEASE));
        assert!(matches!(verdict(&c, &[], NOW, LEASE), Verdict::Orphan(_)));
    }

    #[test]
    fn a_record_under_a_live_lease_spares_what_it_does_not_name_yet() {
        // A create made a second access point and has not recorded it yet.
        let c = Candidate {
            kind: ResourceKind::AccessPoint,
            name: "fsap-new".into(),
            target: "fsap-new".into(),
            created_at: None,
            owner: OwnerKey::User("42".into()),
            sidecar_era: false,
        };
        let mut r = record("42", "alice");
        r.access_point_id = Some("fsap-old".into());
        assert!(matches!(verdict(&c, &[r.clone()], NOW, LEASE), Verdict::Orphan(_)));
        r.lease_until = Some(NOW + 60);
        assert_eq!(verdict(&c, &[r.clone()], NOW, LEASE), Verdict::Spared(LEASED));
        r.lease_until = Some(NOW - 1);
        assert!(matches!(verdict(&c, &[r], NOW, LEASE), Verdict::Orphan(_)));
    }

    #[test]
    fn a_create_that_died_owns_only_what_it_recorded() {
        let c = bucket("foundry-bob-12345678", Some(NOW - 86_400));
        let mut r = record("912345678", "bob");
        r.status = InstanceStatus::Creating;
        r.lease_until = Some(NOW - 1);
        assert!(
            matches!(verdict(&c, &[r.clone()], NOW, LEASE), Verdict::Orphan(why) if why.starts_with("left by a create that died"))
        );
        // While its lease lives, the create is at work: nothing of it is touched.
        r.lease_until = Some(NOW + 1);
        assert_eq!(verdict(&c, &[r], NOW, LEASE), Verdict::Spared(LEASED));
    }

    #[test]
    fn names_that_are_not_ours_are_not_candidates() {
        assert_eq!(
            split_named("foundry-alice-12345678"),
            Some(("alice".into(), "12345678".into()))
        );
        assert_eq!(split_named("foundry-a-b-42"), Some(("a-b".into(), "42".into())));
        assert_eq!(split_named("foundry-vtt-artifacts-123456789012"), None);
        assert_eq!(split_named("foundry-12345678"), None);
        assert_eq!(split_named("other-alice-12345678"), None);
        assert_eq!(user_id_in_name("123"), Some("123"));
        assert_eq!(user_id_in_name("vtt"), None);
        assert_eq!(user_id_in_name("efs-cleanup"), None);
        assert_eq!(user_label("alice.example.com", "example.com"), Some("alice"));
        assert_eq!(user_label("Alice.Example.com.", "example.com"), Some("Alice"));
        assert_eq!(user_label("www.example.com", "example.com"), None);
        assert_eq!(user_label("mail.example.com", "example.com"), None);
        assert_eq!(user_label("example.com", "example.com"), None);
        assert_eq!(user_label("a.b.example.com", "example.com"), None);
        assert_eq!(user_label("alice.example.org", "example.com"), None);
        assert_eq!(user_label("aliceexample.com", "example.com"), None);
    }
}
