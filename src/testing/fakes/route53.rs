//! The Route 53 fake: alias `A` records keyed by (zone, lower-cased name without the
//! trailing dot). Every hosted zone exists implicitly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{aws_err, lock, ops, Env};
use crate::error::{AwsError, AwsErrorKind};
use crate::managers::route53::{AliasRecord, Route53};
use crate::managers::Page;

const SERVICE: &str = "route53";

/// One accepted change, in order (for assertions on the change comments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordChange {
    /// `CREATE`, `UPSERT` or `DELETE`.
    pub action: &'static str,
    pub record: AliasRecord,
    pub comment: String,
}

#[derive(Default)]
struct State {
    records: BTreeMap<(String, String), AliasRecord>,
    changes: Vec<RecordChange>,
}

/// The in-memory Route 53.
pub struct FakeRoute53 {
    env: Arc<Env>,
    state: Mutex<State>,
}

fn norm(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn key(zone: &str, name: &str) -> (String, String) {
    (zone.to_string(), norm(name))
}

fn same_target(a: &AliasRecord, b: &AliasRecord) -> bool {
    norm(&a.target_dns_name) == norm(&b.target_dns_name) && a.target_hosted_zone_id == b.target_hosted_zone_id
}

fn validate(operation: &'static str, record: &AliasRecord) -> Result<(), AwsError> {
    let name = norm(&record.name);
    let bad_label = name.split('.').any(|l| {
        l.is_empty()
            || l.len() > 63
            || !l
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*')
    });
    if record.hosted_zone_id.is_empty()
        || name.is_empty()
        || name.len() > 253
        || bad_label
        || record.target_dns_name.is_empty()
        || record.target_hosted_zone_id.is_empty()
    {
        return Err(aws_err(
            SERVICE,
            operation,
            AwsErrorKind::Invalid,
            "InvalidInput",
            format!("Invalid resource record set [name='{}.', type='A']", record.name),
        ));
    }
    Ok(())
}

impl FakeRoute53 {
    pub const SERVICE: &'static str = SERVICE;
    pub const CREATE_ALIAS: &'static str = ops::CREATE_ALIAS;
    pub const DELETE_ALIAS: &'static str = ops::DELETE_ALIAS;
    pub const GET_ALIAS: &'static str = ops::GET_ALIAS;

    /// A standalone fake reporting to `faults`.
    pub fn new(faults: Arc<super::Faults>) -> Self {
        FakeRoute53::with_env(Env::new(faults))
    }

    pub(crate) fn with_env(env: Arc<Env>) -> Self {
        FakeRoute53 {
            env,
            state: Mutex::new(State::default()),
        }
    }

    /// Every record, sorted by (zone, name).
    pub fn records(&self) -> Vec<AliasRecord> {
        lock(&self.state).records.values().cloned().collect()
    }

    /// Writes `record` as it is, as an operator editing the zone behind the function's
    /// back would (not an AWS call of ours: not counted, never failed).
    pub fn put_record(&self, record: AliasRecord) {
        let mut st = lock(&self.state);
        st.records.insert(key(&record.hosted_zone_id, &record.name), record);
    }

    /// Every accepted change, in order.
    pub fn changes(&self) -> Vec<RecordChange> {
        lock(&self.state).changes.clone()
    }
}

#[async_trait]
impl Route53 for FakeRoute53 {
    async fn create_alias(&self, record: &AliasRecord, comment: &str) -> Result<(), AwsError> {
        const OP: &str = ops::CREATE_ALIAS;
        self.env.enter(SERVICE, OP).await?;
        validate(OP, record)?;
        let mut st = lock(&self.state);
        let k = key(&record.hosted_zone_id, &record.name);
        if st.records.contains_key(&k) {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::AlreadyExists,
                "InvalidChangeBatch",
                format!(
                    "[Tried to create resource record set [name='{}.', type='A'] but it already exists]",
                    k.1
                ),
            ));
        }
        st.records.insert(k, record.clone());
        st.changes.push(RecordChange {
            action: "CREATE",
            record: record.clone(),
            comment: comment.to_string(),
        });
        Ok(())
    }

    async fn upsert_alias(&self, record: &AliasRecord, comment: &str) -> Result<(), AwsError> {
        const OP: &str = ops::UPSERT_ALIAS;
        self.env.enter(SERVICE, OP).await?;
        validate(OP, record)?;
        let mut st = lock(&self.state);
        st.records
            .insert(key(&record.hosted_zone_id, &record.name), record.clone());
        st.changes.push(RecordChange {
            action: "UPSERT",
            record: record.clone(),
            comment: comment.to_string(),
        });
        Ok(())
    }

    async fn delete_alias(&self, record: &AliasRecord, comment: &str) -> Result<(), AwsError> {
        const OP: &str = ops::DELETE_ALIAS;
        self.env.enter(SERVICE, OP).await?;
        validate(OP, record)?;
        let mut st = lock(&self.state);
        let k = key(&record.hosted_zone_id, &record.name);
        match st.records.get(&k) {
            None => Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::NotFound,
                "InvalidChangeBatch",
                format!(
                    "[Tried to delete resource record set [name='{}.', type='A'] but it was not found]",
                    k.1
                ),
            )),
            Some(existing) if !same_target(existing, record) => Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "InvalidChangeBatch",
                format!(
                    "[Tried to delete resource record set [name='{}.', type='A'] but the values provided do not match the current values]",
                    k.1
                ),
            )),
            Some(_) => {
                st.records.remove(&k);
                st.changes.push(RecordChange {
                    action: "DELETE",
                    record: record.clone(),
                    comment: comment.to_string(),
                });
                Ok(())
            }
        }
    }

    async fn get_alias(&self, hosted_zone_id: &str, name: &str) -> Result<Option<AliasRecord>, AwsError> {
        self.env.enter(SERVICE, ops::GET_ALIAS).await?;
        Ok(lock(&self.state).records.get(&key(hosted_zone_id, name)).cloned())
    }

    async fn hosted_zone(&self, _hosted_zone_id: &str) -> Result<(), AwsError> {
        self.env.enter(SERVICE, ops::GET_HOSTED_ZONE).await?;
        Ok(())
    }

    async fn list_aliases_page(
        &self,
        hosted_zone_id: &str,
        start: Option<&str>,
    ) -> Result<Page<AliasRecord>, AwsError> {
        self.env.enter(SERVICE, ops::LIST_RESOURCE_RECORD_SETS).await?;
        let zone = crate::managers::route53::bare_zone_id(hosted_zone_id).to_string();
        let items = lock(&self.state)
            .records
            .iter()
            .filter(|((z, _), _)| crate::managers::route53::bare_zone_id(z) == zone)
            .map(|((_, name), r)| (name.clone(), r.clone()))
            .collect();
        Ok(self.env.page(items, start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Faults;

    fn rec(name: &str, target: &str) -> AliasRecord {
        AliasRecord {
            hosted_zone_id: "Z1".into(),
            name: name.into(),
            target_dns_name: target.into(),
            target_hosted_zone_id: "ZALB".into(),
        }
    }

    #[tokio::test]
    async fn create_twice_is_already_exists_and_delete_must_match() {
        let r53 = FakeRoute53::new(Arc::new(Faults::new()));
        r53.create_alias(&rec("alice.example.com", "alb.aws"), "c")
            .await
            .unwrap();
        let e = r53
            .create_alias(&rec("Alice.example.com.", "alb.aws"), "c")
            .await
            .unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::AlreadyExists);
        assert_eq!(
            r53.get_alias("Z1", "ALICE.example.com").await.unwrap(),
            Some(rec("alice.example.com", "alb.aws"))
        );
        assert_eq!(r53.get_alias("Z2", "alice.example.com").await.unwrap(), None);
        assert_eq!(
            r53.delete_alias(&rec("alice.example.com", "other.aws"), "d")
                .await
                .unwrap_err()
                .kind,
            AwsErrorKind::Invalid
        );
        r53.put_record(rec("alice.example.com", "other.aws"));
        r53.delete_alias(&rec("alice.example.com", "other.aws."), "d")
            .await
            .unwrap();
        assert!(r53.records().is_empty());
        assert_eq!(
            r53.delete_alias(&rec("alice.example.com", "other.aws"), "d")
                .await
                .unwrap_err()
                .kind,
            AwsErrorKind::NotFound
        );
        let actions: Vec<_> = r53.changes().iter().map(|c| c.action).collect();
        assert_eq!(actions, vec!["CREATE", "DELETE"]);
        assert_eq!(
            r53.create_alias(&rec("bad name.example.com", "x"), "c")
                .await
                .unwrap_err()
                .kind,
            AwsErrorKind::Invalid
        );
    }
}
