//! One page of one listing → the resources on it that carry our names.
//!
//! Both versions name a user's resources the same way (`domain::names`); the original
//! also wrote the sidecar's log group `/ecs/foundry-<userId>`. What carries none of these
//! names is never a candidate.

use crate::actions::resources::{one, ResourceKind};
use crate::context::Services;
use crate::domain::names;
use crate::error::Result;
use crate::managers::{Listed, Page};

use super::token::Phase;
use super::verdict::{label_in_name, split_named, user_id_in_name, user_label, Candidate, OwnerKey};

const FOUNDRY: &str = "foundry-";
const SECRET_PREFIX: &str = "foundry-credentials-";
const LOG_PREFIX: &str = "/aws/ecs/foundry-";
const SIDECAR_LOG_PREFIX: &str = "/ecs/foundry-";
const EFS_ROOT: &str = "/foundry-instances/";

fn candidate(kind: ResourceKind, name: &str, target: &str, created_at: Option<i64>, owner: OwnerKey) -> Candidate {
    Candidate {
        kind,
        name: name.to_string(),
        target: target.to_string(),
        created_at,
        owner,
        sidecar_era: false,
    }
}

fn keep<T>(page: Page<T>, f: impl FnMut(T) -> Option<Candidate>) -> Page<Candidate> {
    Page {
        items: page.items.into_iter().filter_map(f).collect(),
        next: page.next,
    }
}

/// The name of a target group from its ARN (`…:targetgroup/<name>/<id>`).
fn target_group_name(arn: &str) -> Option<&str> {
    arn.split_once(":targetgroup/")?.1.split('/').next()
}

/// The candidates on the page `marker` of `phase`, and the listing's next page.
pub async fn page(svc: &Services, phase: Phase, marker: Option<&str>) -> Result<Page<Candidate>> {
    let aws = &svc.aws;
    let cfg = &svc.config;
    Ok(match phase {
        Phase::ListenerRules => {
            // One listener holds at most a few hundred rules: one listing, every page.
            let rules = aws.alb.list_rules(&cfg.alb_https_listener_arn).await?;
            let page = Page {
                items: rules,
                next: None,
            };
            keep(page, |rule| {
                rule.priority?;
                // Ours forwards to a user's target group, and names no operator's host.
                let san = rule
                    .target_group_arns
                    .iter()
                    .filter_map(|arn| target_group_name(arn)?.strip_prefix(FOUNDRY))
                    .find_map(label_in_name)?
                    .to_string();
                let hosts: Vec<&str> = rule.host_headers.iter().map(String::as_str).collect();
                if hosts.iter().any(|h| user_label(h, &cfg.domain_name).is_none()) {
                    return None;
                }
                let name = hosts.first().map(|h| h.to_string()).unwrap_or_else(|| rule.arn.clone());
                Some(candidate(
                    ResourceKind::ListenerRule,
                    &name,
                    &rule.arn,
                    None,
                    OwnerKey::Subdomain(san),
                ))
            })
        }
        Phase::DnsRecords => {
            let page = aws
                .route53
                .list_aliases_page(&cfg.route53_hosted_zone_id, marker)
                .await?;
            keep(page, |record| {
                // A record that does not alias our load balancer is never ours.
                if !one::is_alias_to_us(svc, &record) {
                    return None;
                }
                let label = user_label(&record.name, &cfg.domain_name)?.to_ascii_lowercase();
                Some(candidate(
                    ResourceKind::DnsRecord,
                    &record.name,
                    &label,
                    None,
                    OwnerKey::Subdomain(label.clone()),
                ))
            })
        }
        Phase::TargetGroups => {
            let page = aws.alb.list_target_groups_page(marker).await?;
            keep(page, |tg: Listed| {
                let san = label_in_name(tg.name.strip_prefix(FOUNDRY)?)?.to_string();
                let arn = tg.arn.clone()?;
                Some(candidate(
                    ResourceKind::TargetGroup,
                    &tg.name,
                    &arn,
                    None,
                    OwnerKey::Subdomain(san),
                ))
            })
        }
        Phase::AccessPoints => {
            let page = aws.efs.list_access_points_page(&cfg.file_system_id, marker).await?;
            keep(page, |ap| {
                if matches!(ap.state.as_str(), "deleting" | "deleted") {
                    return None;
                }
                let uid = user_id_in_name(ap.path.strip_prefix(EFS_ROOT)?)?.to_string();
                let name = format!("{} ({})", ap.id, ap.path);
                Some(candidate(
                    ResourceKind::AccessPoint,
                    &name,
                    &ap.id,
                    None,
                    OwnerKey::User(uid),
                ))
            })
        }
        Phase::Buckets => {
            let page = aws.s3.list_buckets_page(FOUNDRY, marker).await?;
            keep(page, |b| named(ResourceKind::S3Bucket, b))
        }
        Phase::IamUsers => {
            let page = aws.iam.list_users_page(names::IAM_USER_PATH, marker).await?;
            keep(page, |u| named(ResourceKind::IamUser, u))
        }
        Phase::Secrets => {
            let page = aws.secrets.list_secrets_page(SECRET_PREFIX, marker).await?;
            keep(page, |s| {
                let rest = s.name.strip_prefix(SECRET_PREFIX)?;
                let uid = user_id_in_name(rest.strip_suffix("-session").unwrap_or(rest))?.to_string();
                Some(candidate(
                    ResourceKind::Secret,
                    &s.name,
                    &s.name,
                    s.created_at,
                    OwnerKey::User(uid),
                ))
            })
        }
        Phase::TaskDefinitionFamilies => {
            let page = aws.ecs.list_families_page(FOUNDRY, marker).await?;
            keep(page, |family| {
                let uid = user_id_in_name(family.strip_prefix(FOUNDRY)?)?.to_string();
                Some(candidate(
                    ResourceKind::TaskDefinition,
                    &family,
                    &uid,
                    None,
                    OwnerKey::User(uid.clone()),
                ))
            })
        }
        Phase::LogGroups | Phase::SidecarLogGroups => {
            let prefix = if phase == Phase::LogGroups {
                LOG_PREFIX
            } else {
                SIDECAR_LOG_PREFIX
            };
            let page = aws.logs.list_log_groups_page(prefix, marker).await?;
            keep(page, |g| {
                let uid = user_id_in_name(g.name.strip_prefix(prefix)?)?.to_string();
                let mut c = candidate(
                    ResourceKind::LogGroup,
                    &g.name,
                    &g.name,
                    g.created_at,
                    OwnerKey::User(uid),
                );
                c.sidecar_era = phase == Phase::SidecarLogGroups;
                Some(c)
            })
        }
    })
}

/// A bucket or IAM user named `foundry-<san>-<last8>`.
fn named(kind: ResourceKind, item: Listed) -> Option<Candidate> {
    let (san, tail) = split_named(&item.name)?;
    Some(candidate(
        kind,
        &item.name,
        &item.name,
        item.created_at,
        OwnerKey::Named { san, tail },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_group_is_named_by_its_arn() {
        assert_eq!(
            target_group_name("arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/foundry-alice/0123abcd"),
            Some("foundry-alice")
        );
        assert_eq!(
            target_group_name("arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/x"),
            None
        );
    }
}
