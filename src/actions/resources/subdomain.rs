//! The user's subdomain `<username>.<DOMAIN>`: claimed for one user, routed by an alias
//! record to our load balancer, and removed with the instance.

use crate::context::Services;
use crate::domain::model::{Instance, InstanceStatus};
use crate::domain::names;
use crate::error::{AwsErrorKind, Error, Result};
use crate::managers::route53::AliasRecord;

use super::kind::{Leftovers, ResourceKind};

/// The alias record that routes `<username>.<DOMAIN>` to our load balancer.
fn our_alias(svc: &Services, username: &str) -> AliasRecord {
    let cfg = &svc.config;
    AliasRecord {
        hosted_zone_id: cfg.route53_hosted_zone_id.clone(),
        name: names::host(username, &cfg.domain_name),
        target_dns_name: cfg.alb_dns_name.clone(),
        target_hosted_zone_id: cfg.alb_zone_id.clone(),
    }
}

/// Whether `record` is an alias to the deployment's load balancer (the kind of record a
/// create of ours makes). Names compare case-insensitively, without trailing dots and
/// the `dualstack.` prefix Route 53 adds to ELB aliases.
fn aliases_our_alb(svc: &Services, record: &AliasRecord) -> bool {
    let norm = |name: &str| {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name.strip_prefix("dualstack.").map(str::to_string).unwrap_or(name)
    };
    let zone = |id: &str| crate::managers::route53::bare_zone_id(id).to_ascii_uppercase();
    norm(&record.target_dns_name) == norm(&svc.config.alb_dns_name)
        && zone(&record.target_hosted_zone_id) == zone(&svc.config.alb_zone_id)
}

/// Claims `<username>.<DOMAIN>`: first the claim item (a conditional put, exact for two
/// concurrent creates), then a Route 53 CREATE, which also succeeds for one caller only. A
/// record that already exists is ours only when it is an alias to our load balancer and
/// no other user's instance has the name (a create of ours made it and died before
/// finishing). Any other record (an operator's `www`, a record pointing elsewhere) is
/// never touched: it is read first, so that the refusal does not depend on how strictly
/// Route 53 (or a stand-in for it) checks a CREATE.
pub async fn claim_subdomain(svc: &Services, user_id: &str, username: &str) -> Result<()> {
    let record = our_alias(svc, username);
    let comment = format!("Create DNS record for Foundry user {username}");
    let in_use = || {
        Error::Failed(format!(
            "The subdomain '{username}' is already in use by another DNS record; choose another username"
        ))
    };
    let taken = || {
        Error::Failed(format!(
            "The subdomain '{username}' is already taken by another user; choose another username"
        ))
    };
    // The claim item gives the name to one user of this version, exactly; the index read
    // below still guards the names of instances the original made, which have none.
    let now = svc.now();
    if let Some(holder) = svc.store.claims.claim_subdomain(username, user_id, now).await? {
        // A holder without an instance (its create died after claiming) lets go of it.
        let holder_lives = !holder.is_empty() && svc.store.instances.get_latest(&holder).await?.is_some();
        if holder_lives
            || !svc
                .store
                .claims
                .take_over_subdomain(username, user_id, &holder, now)
                .await?
        {
            return Err(taken());
        }
    }
    match svc.aws.route53.get_alias(&record.hosted_zone_id, &record.name).await? {
        Some(existing) if !aliases_our_alb(svc, &existing) => return Err(in_use()),
        Some(_) => {
            return if svc.store.instances.others_named(username, user_id).await?.is_empty() {
                Ok(())
            } else {
                Err(taken())
            };
        }
        None => {}
    }
    match svc.aws.route53.create_alias(&record, &comment).await {
        Ok(()) => {
            ResourceKind::DnsRecord.created();
            Ok(())
        }
        // Someone made it since we looked.
        Err(e) if e.kind == AwsErrorKind::AlreadyExists => {
            if !svc.store.instances.others_named(username, user_id).await?.is_empty() {
                return Err(taken());
            }
            match svc.aws.route53.get_alias(&record.hosted_zone_id, &record.name).await? {
                Some(existing) if aliases_our_alb(svc, &existing) => Ok(()),
                // Route 53 may answer "already exists" for a record deleted a moment ago;
                // with no record there, there is nothing of anyone's to overwrite.
                None => {
                    svc.aws.route53.upsert_alias(&record, &comment).await?;
                    ResourceKind::DnsRecord.created();
                    Ok(())
                }
                Some(_) => Err(in_use()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The DNS record of the user's subdomain, exactly as it is (Route 53 deletes a record
/// only when the values match, and the load balancer may have been replaced, or the
/// record edited). A creating record deletes it only when it is an alias to our load
/// balancer: its claim may have failed on someone else's record.
pub(super) async fn remove_dns_record(svc: &Services, inst: &Instance, left: &mut Leftovers) {
    let ours = our_alias(svc, &inst.sanitized_username);
    let comment = format!("Delete DNS record for Foundry user {}", inst.sanitized_username);
    if inst.status != InstanceStatus::Creating {
        // Usually the record is the one we made: delete it as made, and read it only when
        // Route 53 answers that the values differ.
        match svc.aws.route53.delete_alias(&ours, &comment).await {
            Ok(()) => {
                ResourceKind::DnsRecord.deleted();
                return;
            }
            Err(e) if e.is_not_found() => return,
            Err(e) if e.kind == AwsErrorKind::Invalid => {
                tracing::info!(error = %e, "the DNS record differs from the one we made; deleting it as it is");
            }
            Err(e) => {
                left.push(format!("{}: {e}", ResourceKind::DnsRecord.label()));
                return;
            }
        }
    }
    let found = match svc.aws.route53.get_alias(&ours.hosted_zone_id, &ours.name).await {
        Ok(found) => found,
        Err(e) => {
            left.push(format!("{}: {e}", ResourceKind::DnsRecord.label()));
            return;
        }
    };
    if let Some(record) = found {
        if inst.status != InstanceStatus::Creating || aliases_our_alb(svc, &record) {
            left.note(
                ResourceKind::DnsRecord,
                svc.aws.route53.delete_alias(&record, &comment).await,
            );
        }
    }
}

/// The alias record of `<username>.<DOMAIN>`, read as it is and deleted only when it is an
/// alias to our load balancer (any other record there is not ours).
pub(crate) async fn remove_alias_to_us(svc: &Services, username: &str, left: &mut Leftovers) {
    let ours = our_alias(svc, username);
    let comment = format!("Delete DNS record for Foundry user {username}");
    match svc.aws.route53.get_alias(&ours.hosted_zone_id, &ours.name).await {
        Ok(Some(record)) if aliases_our_alb(svc, &record) => {
            left.note(
                ResourceKind::DnsRecord,
                svc.aws.route53.delete_alias(&record, &comment).await,
            );
        }
        Ok(_) => {}
        Err(e) => left.push(format!("{}: {e}", ResourceKind::DnsRecord.label())),
    }
}

/// Whether `record` is an alias to the deployment's load balancer.
pub(crate) fn is_alias_to_us(svc: &Services, record: &AliasRecord) -> bool {
    aliases_our_alb(svc, record)
}
