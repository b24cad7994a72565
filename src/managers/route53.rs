//! Route 53: the per-user alias A record.

use async_trait::async_trait;

use crate::error::AwsError;
use crate::managers::Page;

/// An alias `A` record pointing at the ALB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRecord {
    pub hosted_zone_id: String,
    /// Fully qualified name without the trailing dot, e.g. `alice.example.com`.
    pub name: String,
    pub target_dns_name: String,
    pub target_hosted_zone_id: String,
}

#[async_trait]
pub trait Route53: Send + Sync {
    /// ChangeResourceRecordSets `CREATE`. An existing record of that name and type is an
    /// `AlreadyExists` error (this is how a subdomain is claimed atomically).
    async fn create_alias(&self, record: &AliasRecord, comment: &str) -> Result<(), AwsError>;

    /// ChangeResourceRecordSets `UPSERT`.
    async fn upsert_alias(&self, record: &AliasRecord, comment: &str) -> Result<(), AwsError>;

    /// ChangeResourceRecordSets `DELETE` of exactly `record`: Route 53 refuses a DELETE
    /// whose values differ from the record's, so pass the record [`Route53::get_alias`]
    /// read. A missing record is a `NotFound` error on AWS (InvalidChangeBatch "not
    /// found"); moto answers InvalidInput, so callers read before they delete.
    async fn delete_alias(&self, record: &AliasRecord, comment: &str) -> Result<(), AwsError>;

    /// The alias `A` record called `name` in the zone, if there is one.
    async fn get_alias(&self, hosted_zone_id: &str, name: &str) -> Result<Option<AliasRecord>, AwsError>;

    /// GetHostedZone: a health probe. A missing zone is a `NotFound` error.
    async fn hosted_zone(&self, hosted_zone_id: &str) -> Result<(), AwsError>;

    /// One page of ListResourceRecordSets from `start` (a token of an earlier page):
    /// the alias `A` records on it (every other record is skipped). Names come without
    /// the trailing dot and with Route 53's escapes decoded.
    async fn list_aliases_page(&self, hosted_zone_id: &str, start: Option<&str>)
        -> Result<Page<AliasRecord>, AwsError>;
}

/// The SDK adapter.
pub struct SdkRoute53 {
    client: super::sdk::LazyClient<aws_sdk_route53::Client>,
}

impl SdkRoute53 {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        SdkRoute53 {
            client: super::sdk::LazyClient::new(sdk, |sdk| {
                let mut conf = aws_sdk_route53::config::Builder::from(sdk);
                conf.push_interceptor(instrument::interceptor());
                aws_sdk_route53::Client::from_conf(conf.build())
            }),
        }
    }
}

use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecordSet, RrType};

use crate::error::AwsErrorKind;
use crate::managers::{instrument, sdk_error};

const SERVICE: &str = "route53";

/// A hosted zone id without its `/hostedzone/` prefix (both forms are accepted).
pub fn bare_zone_id(id: &str) -> &str {
    let id = id.trim();
    id.strip_prefix("/hostedzone/")
        .or_else(|| id.strip_prefix("hostedzone/"))
        .unwrap_or(id)
}

/// A DNS name without its trailing dot.
fn without_trailing_dot(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

/// Decodes Route 53's `\DDD` (three octal digits) escapes, e.g. `\052` → `*`.
/// Anything that is not a complete escape is kept as it is.
pub fn unescape_dns_name(name: &str) -> String {
    let bytes = name.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let value = digits.iter().fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(b) = u8::try_from(value) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether the name Route 53 returned is the record `wanted` (case-insensitive, trailing
/// dots ignored, Route 53 escapes decoded; nothing else is fuzzy).
pub fn same_dns_name(returned: &str, wanted: &str) -> bool {
    let returned = unescape_dns_name(without_trailing_dot(returned));
    returned.eq_ignore_ascii_case(without_trailing_dot(wanted))
}

fn build_error(operation: &'static str, e: aws_smithy_types::error::operation::BuildError) -> AwsError {
    AwsError::new(SERVICE, operation, AwsErrorKind::Invalid, e.to_string())
}

impl SdkRoute53 {
    async fn change(&self, action: ChangeAction, record: &AliasRecord, comment: &str) -> Result<(), AwsError> {
        const OP: &str = "ChangeResourceRecordSets";
        let alias = AliasTarget::builder()
            .hosted_zone_id(bare_zone_id(&record.target_hosted_zone_id))
            .dns_name(&record.target_dns_name)
            .evaluate_target_health(false)
            .build()
            .map_err(|e| build_error(OP, e))?;
        let rrset = ResourceRecordSet::builder()
            .name(without_trailing_dot(&record.name))
            .r#type(RrType::A)
            .alias_target(alias)
            .build()
            .map_err(|e| build_error(OP, e))?;
        let change = Change::builder()
            .action(action)
            .resource_record_set(rrset)
            .build()
            .map_err(|e| build_error(OP, e))?;
        let batch = ChangeBatch::builder()
            .comment(comment)
            .changes(change)
            .build()
            .map_err(|e| build_error(OP, e))?;
        self.client
            .change_resource_record_sets()
            .hosted_zone_id(bare_zone_id(&record.hosted_zone_id))
            .change_batch(batch)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        Ok(())
    }
}

#[async_trait]
impl Route53 for SdkRoute53 {
    async fn create_alias(&self, record: &AliasRecord, comment: &str) -> Result<(), AwsError> {
        self.change(ChangeAction::Create, record, comment).await
    }

    async fn upsert_alias(&self, record: &AliasRecord, comment: &str) -> Result<(), AwsError> {
        self.change(ChangeAction::Upsert, record, comment).await
    }

    async fn delete_alias(&self, record: &AliasRecord, comment: &str) -> Result<(), AwsError> {
        self.change(ChangeAction::Delete, record, comment).await
    }

    /// ListResourceRecordSets from `name`/`A`, one item. Returns `None` when the first
    /// record at or after that position is another name or type, or is a plain (non-alias)
    /// `A` record. The returned record carries `hosted_zone_id` and `name` as given (minus a
    /// trailing dot on the name) and the alias target without its trailing dot.
    async fn get_alias(&self, hosted_zone_id: &str, name: &str) -> Result<Option<AliasRecord>, AwsError> {
        const OP: &str = "ListResourceRecordSets";
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(bare_zone_id(hosted_zone_id))
            // Route 53 names are case-insensitive and listed in lower case.
            .start_record_name(without_trailing_dot(name).to_ascii_lowercase())
            .start_record_type(RrType::A)
            .max_items(1)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        let found = out
            .resource_record_sets()
            .iter()
            .find(|r| *r.r#type() == RrType::A && same_dns_name(r.name(), name));
        Ok(found.and_then(|r| r.alias_target()).map(|alias| AliasRecord {
            hosted_zone_id: hosted_zone_id.to_string(),
            name: without_trailing_dot(name).to_string(),
            target_dns_name: without_trailing_dot(alias.dns_name()).to_string(),
            target_hosted_zone_id: alias.hosted_zone_id().to_string(),
        }))
    }

    async fn list_aliases_page(
        &self,
        hosted_zone_id: &str,
        start: Option<&str>,
    ) -> Result<Page<AliasRecord>, AwsError> {
        const OP: &str = "ListResourceRecordSets";
        // The token is the next record's name, type and set identifier, tab-separated.
        let mut parts = start.unwrap_or_default().split('\t');
        let name = parts.next().filter(|s| !s.is_empty());
        let rtype = parts.next().filter(|s| !s.is_empty()).map(RrType::from);
        let ident = parts.next().filter(|s| !s.is_empty());
        let out = self
            .client
            .list_resource_record_sets()
            .hosted_zone_id(bare_zone_id(hosted_zone_id))
            .set_start_record_name(name.map(str::to_string))
            .set_start_record_type(rtype)
            .set_start_record_identifier(ident.map(str::to_string))
            .max_items(crate::managers::LIST_PAGE)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        let items = out
            .resource_record_sets()
            .iter()
            .filter(|r| *r.r#type() == RrType::A)
            .filter_map(|r| {
                let alias = r.alias_target()?;
                Some(AliasRecord {
                    hosted_zone_id: hosted_zone_id.to_string(),
                    name: unescape_dns_name(without_trailing_dot(r.name())),
                    target_dns_name: without_trailing_dot(alias.dns_name()).to_string(),
                    target_hosted_zone_id: alias.hosted_zone_id().to_string(),
                })
            })
            .collect();
        let next = if out.is_truncated() {
            out.next_record_name().map(|n| {
                format!(
                    "{n}\t{}\t{}",
                    out.next_record_type().map(|t| t.as_str()).unwrap_or_default(),
                    out.next_record_identifier().unwrap_or_default()
                )
            })
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn hosted_zone(&self, hosted_zone_id: &str) -> Result<(), AwsError> {
        const OP: &str = "GetHostedZone";
        self.client
            .get_hosted_zone()
            .id(bare_zone_id(hosted_zone_id))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_ids_are_accepted_with_or_without_prefix() {
        assert_eq!(bare_zone_id("/hostedzone/Z123"), "Z123");
        assert_eq!(bare_zone_id("hostedzone/Z123"), "Z123");
        assert_eq!(bare_zone_id("Z123"), "Z123");
    }

    #[test]
    fn returned_names_match_case_insensitively_without_trailing_dot() {
        assert!(same_dns_name("alice.example.com.", "alice.example.com"));
        assert!(same_dns_name("Alice.Example.com.", "alice.example.com"));
        assert!(same_dns_name("alice.example.com", "alice.example.com."));
        assert!(!same_dns_name("alice2.example.com.", "alice.example.com"));
        assert!(!same_dns_name("bob.example.com.", "alice.example.com"));
    }

    #[test]
    fn route53_octal_escapes_are_decoded_before_comparing() {
        assert_eq!(unescape_dns_name("\\052.example.com."), "*.example.com.");
        assert!(same_dns_name("\\052.example.com.", "*.example.com"));
        assert!(!same_dns_name("\\052.example.com.", "x.example.com"));
        // Incomplete or non-octal escapes stay as they are.
        assert_eq!(unescape_dns_name("a\\05"), "a\\05");
        assert_eq!(unescape_dns_name("a\\089b"), "a\\089b");
        assert_eq!(unescape_dns_name("a\\"), "a\\");
    }
}
