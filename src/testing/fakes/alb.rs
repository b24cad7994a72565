//! The ELBv2 fake: target groups with `ip` targets, and listener rules.
//!
//! A listener exists implicitly for any (non-empty) ARN, with a default rule
//! (priority `None`, no forward target) that cannot be deleted. DescribeRules lists the
//! rules by ascending priority, the default rule last.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{aws_err, lock, ops, Env, ACCOUNT_ID, HEX, REGION};
use crate::error::{AwsError, AwsErrorKind};
use crate::managers::alb::{Alb, RuleInfo, TargetGroupSpec};
use crate::managers::{Listed, Page};

const SERVICE: &str = "elasticloadbalancing";

/// A target group as the fake knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeTargetGroup {
    pub arn: String,
    pub spec: TargetGroupSpec,
    /// Registered `(ip, port)` targets, sorted.
    pub targets: Vec<(String, i32)>,
}

struct Rule {
    info: RuleInfo,
    tags: Vec<(String, String)>,
}

struct Group {
    arn: String,
    spec: TargetGroupSpec,
    targets: BTreeSet<(String, i32)>,
}

#[derive(Default)]
struct State {
    /// In creation order.
    groups: Vec<Group>,
    /// Listener ARN → its rules (the default rule first).
    listeners: BTreeMap<String, Vec<Rule>>,
}

impl State {
    fn listener(&mut self, listener_arn: &str) -> &mut Vec<Rule> {
        self.listeners.entry(listener_arn.to_string()).or_insert_with(|| {
            vec![Rule {
                info: RuleInfo {
                    arn: rule_arn(listener_arn),
                    priority: None,
                    host_headers: Vec::new(),
                    target_group_arns: Vec::new(),
                },
                tags: Vec::new(),
            }]
        })
    }

    fn group(&mut self, arn: &str) -> Option<&mut Group> {
        self.groups.iter_mut().find(|g| g.arn == arn)
    }
}

fn rule_arn(listener_arn: &str) -> String {
    let base = if listener_arn.contains(":listener/") {
        listener_arn.replacen(":listener/", ":listener-rule/", 1)
    } else {
        format!("{listener_arn}/rule")
    };
    format!("{base}/{}", super::random_from(HEX, 16))
}

/// The in-memory ELBv2.
pub struct FakeAlb {
    env: Arc<Env>,
    state: Mutex<State>,
}

fn valid_tg_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.starts_with("internal-")
}

fn same_settings(a: &TargetGroupSpec, b: &TargetGroupSpec) -> bool {
    TargetGroupSpec {
        tags: Vec::new(),
        ..a.clone()
    } == TargetGroupSpec {
        tags: Vec::new(),
        ..b.clone()
    }
}

fn tg_not_found(operation: &'static str, arn: &str) -> AwsError {
    aws_err(
        SERVICE,
        operation,
        AwsErrorKind::NotFound,
        "TargetGroupNotFound",
        format!("Target groups '{arn}' not found"),
    )
}

fn valid_ipv4(ip: &str) -> bool {
    ip.parse::<std::net::Ipv4Addr>().is_ok()
}

impl FakeAlb {
    pub const SERVICE: &'static str = SERVICE;
    pub const CREATE_TARGET_GROUP: &'static str = ops::CREATE_TARGET_GROUP;
    pub const DESCRIBE_TARGET_GROUPS: &'static str = ops::DESCRIBE_TARGET_GROUPS;
    pub const DELETE_TARGET_GROUP: &'static str = ops::DELETE_TARGET_GROUP;
    pub const REGISTER_TARGETS: &'static str = ops::REGISTER_TARGETS;
    pub const DEREGISTER_TARGETS: &'static str = ops::DEREGISTER_TARGETS;
    pub const DESCRIBE_RULES: &'static str = ops::DESCRIBE_RULES;
    pub const CREATE_RULE: &'static str = ops::CREATE_RULE;
    pub const DELETE_RULE: &'static str = ops::DELETE_RULE;

    /// A standalone fake reporting to `faults`.
    pub fn new(faults: Arc<super::Faults>) -> Self {
        FakeAlb::with_env(Env::new(faults))
    }

    pub(crate) fn with_env(env: Arc<Env>) -> Self {
        FakeAlb {
            env,
            state: Mutex::new(State::default()),
        }
    }

    /// Every target group, in creation order.
    pub fn target_groups(&self) -> Vec<FakeTargetGroup> {
        lock(&self.state)
            .groups
            .iter()
            .map(|g| FakeTargetGroup {
                arn: g.arn.clone(),
                spec: g.spec.clone(),
                targets: g.targets.iter().cloned().collect(),
            })
            .collect()
    }

    /// The registered `(ip, port)` targets of a group (empty when no such group).
    pub fn targets(&self, target_group_arn: &str) -> Vec<(String, i32)> {
        lock(&self.state)
            .groups
            .iter()
            .find(|g| g.arn == target_group_arn)
            .map(|g| g.targets.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The rules we created on a listener (not its default rule), by priority.
    pub fn rules(&self, listener_arn: &str) -> Vec<RuleInfo> {
        let st = lock(&self.state);
        let mut rules: Vec<RuleInfo> = st
            .listeners
            .get(listener_arn)
            .map(|rs| {
                rs.iter()
                    .filter(|r| r.info.priority.is_some())
                    .map(|r| r.info.clone())
                    .collect()
            })
            .unwrap_or_default();
        rules.sort_by_key(|r| r.priority);
        rules
    }

    /// The tags of a rule.
    pub fn rule_tags(&self, rule_arn: &str) -> Option<Vec<(String, String)>> {
        let st = lock(&self.state);
        st.listeners
            .values()
            .flatten()
            .find(|r| r.info.arn == rule_arn)
            .map(|r| r.tags.clone())
    }
}

#[async_trait]
impl Alb for FakeAlb {
    async fn create_target_group(&self, spec: &TargetGroupSpec) -> Result<String, AwsError> {
        const OP: &str = ops::CREATE_TARGET_GROUP;
        self.env.enter(SERVICE, OP).await?;
        let bad = |m: String| aws_err(SERVICE, OP, AwsErrorKind::Invalid, "ValidationError", m);
        if !valid_tg_name(&spec.name) {
            return Err(bad(format!("Target group name '{}' is not valid", spec.name)));
        }
        if !(1..=65535).contains(&spec.port) {
            return Err(bad(format!("Port '{}' is not valid", spec.port)));
        }
        if spec.vpc_id.is_empty() {
            return Err(bad("A VPC ID must be specified".into()));
        }
        if !(5..=300).contains(&spec.health_check_interval_seconds)
            || !(2..=120).contains(&spec.health_check_timeout_seconds)
            || spec.health_check_timeout_seconds >= spec.health_check_interval_seconds
            || !(2..=10).contains(&spec.healthy_threshold)
            || !(2..=10).contains(&spec.unhealthy_threshold)
            || !spec.health_check_path.starts_with('/')
        {
            return Err(bad("Health check settings are not valid".into()));
        }
        let mut st = lock(&self.state);
        if let Some(existing) = st.groups.iter().find(|g| g.spec.name == spec.name) {
            if same_settings(&existing.spec, spec) {
                return Ok(existing.arn.clone());
            }
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::AlreadyExists,
                "DuplicateTargetGroupName",
                "A target group with the same name exists, but with different settings",
            ));
        }
        let arn = format!(
            "arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT_ID}:targetgroup/{}/{}",
            spec.name,
            super::random_from(HEX, 16)
        );
        st.groups.push(Group {
            arn: arn.clone(),
            spec: spec.clone(),
            targets: BTreeSet::new(),
        });
        Ok(arn)
    }

    async fn find_target_group(&self, name: &str) -> Result<Option<String>, AwsError> {
        self.env.enter(SERVICE, ops::DESCRIBE_TARGET_GROUPS).await?;
        Ok(lock(&self.state)
            .groups
            .iter()
            .find(|g| g.spec.name == name)
            .map(|g| g.arn.clone()))
    }

    async fn delete_target_group(&self, target_group_arn: &str) -> Result<(), AwsError> {
        const OP: &str = ops::DELETE_TARGET_GROUP;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        if !st.groups.iter().any(|g| g.arn == target_group_arn) {
            return Err(tg_not_found(OP, target_group_arn));
        }
        let in_use = st
            .listeners
            .values()
            .flatten()
            .any(|r| r.info.target_group_arns.iter().any(|a| a == target_group_arn));
        if in_use {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Conflict,
                "ResourceInUse",
                format!("Target group '{target_group_arn}' is currently in use by a listener or a rule"),
            ));
        }
        st.groups.retain(|g| g.arn != target_group_arn);
        Ok(())
    }

    async fn register_target(&self, target_group_arn: &str, ip: &str, port: i32) -> Result<(), AwsError> {
        const OP: &str = ops::REGISTER_TARGETS;
        self.env.enter(SERVICE, OP).await?;
        if !valid_ipv4(ip) || !(1..=65535).contains(&port) {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "InvalidTarget",
                format!("The IP address '{ip}' is not a valid IPv4 address"),
            ));
        }
        let mut st = lock(&self.state);
        let group = st
            .group(target_group_arn)
            .ok_or_else(|| tg_not_found(OP, target_group_arn))?;
        group.targets.insert((ip.to_string(), port));
        Ok(())
    }

    async fn deregister_target(&self, target_group_arn: &str, ip: &str, port: i32) -> Result<(), AwsError> {
        const OP: &str = ops::DEREGISTER_TARGETS;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        let group = st
            .group(target_group_arn)
            .ok_or_else(|| tg_not_found(OP, target_group_arn))?;
        if !group.targets.remove(&(ip.to_string(), port)) {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "InvalidTarget",
                format!("The following targets are not registered in target group: 'Id: {ip}, Port: {port}'"),
            ));
        }
        Ok(())
    }

    async fn list_rules(&self, listener_arn: &str) -> Result<Vec<RuleInfo>, AwsError> {
        const OP: &str = ops::DESCRIBE_RULES;
        self.env.enter(SERVICE, OP).await?;
        if listener_arn.is_empty() {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::Invalid,
                "ValidationError",
                "A listener ARN must be specified",
            ));
        }
        let mut st = lock(&self.state);
        let mut rules: Vec<RuleInfo> = st.listener(listener_arn).iter().map(|r| r.info.clone()).collect();
        // Ascending priority, the default rule (None) last.
        rules.sort_by_key(|r| (r.priority.is_none(), r.priority));
        Ok(rules)
    }

    async fn create_rule(
        &self,
        listener_arn: &str,
        priority: i32,
        host: &str,
        target_group_arn: &str,
        tags: &[(String, String)],
    ) -> Result<String, AwsError> {
        const OP: &str = ops::CREATE_RULE;
        self.env.enter(SERVICE, OP).await?;
        let bad = |m: String| aws_err(SERVICE, OP, AwsErrorKind::Invalid, "ValidationError", m);
        if listener_arn.is_empty() {
            return Err(bad("A listener ARN must be specified".into()));
        }
        if !(1..=50000).contains(&priority) {
            return Err(bad(format!("Priority '{priority}' must be between 1 and 50000")));
        }
        if host.is_empty() || host.len() > 128 {
            return Err(bad("A host-header value must be 1 to 128 characters".into()));
        }
        let mut st = lock(&self.state);
        if !st.groups.iter().any(|g| g.arn == target_group_arn) {
            return Err(tg_not_found(OP, target_group_arn));
        }
        let rules = st.listener(listener_arn);
        if rules.iter().any(|r| r.info.priority == Some(priority)) {
            return Err(aws_err(
                SERVICE,
                OP,
                AwsErrorKind::PriorityInUse,
                "PriorityInUse",
                format!("Priority '{priority}' is currently in use"),
            ));
        }
        let arn = rule_arn(listener_arn);
        rules.push(Rule {
            info: RuleInfo {
                arn: arn.clone(),
                priority: Some(priority),
                host_headers: vec![host.to_string()],
                target_group_arns: vec![target_group_arn.to_string()],
            },
            tags: tags.to_vec(),
        });
        Ok(arn)
    }

    async fn delete_rule(&self, rule_arn: &str) -> Result<(), AwsError> {
        const OP: &str = ops::DELETE_RULE;
        self.env.enter(SERVICE, OP).await?;
        let mut st = lock(&self.state);
        for rules in st.listeners.values_mut() {
            if let Some(i) = rules.iter().position(|r| r.info.arn == rule_arn) {
                if rules[i].info.priority.is_none() {
                    return Err(aws_err(
                        SERVICE,
                        OP,
                        AwsErrorKind::Other,
                        "OperationNotPermitted",
                        "Default rule cannot be deleted",
                    ));
                }
                rules.remove(i);
                return Ok(());
            }
        }
        Err(aws_err(
            SERVICE,
            OP,
            AwsErrorKind::NotFound,
            "RuleNotFound",
            format!("Rule '{rule_arn}' not found"),
        ))
    }

    async fn describe_listener(&self, _listener_arn: &str) -> Result<(), AwsError> {
        self.env.enter(SERVICE, ops::DESCRIBE_LISTENERS).await?;
        Ok(())
    }

    async fn list_target_groups_page(&self, marker: Option<&str>) -> Result<Page<Listed>, AwsError> {
        self.env.enter(SERVICE, ops::DESCRIBE_TARGET_GROUPS).await?;
        let items = lock(&self.state)
            .groups
            .iter()
            .map(|g| {
                (
                    g.spec.name.clone(),
                    Listed {
                        name: g.spec.name.clone(),
                        arn: Some(g.arn.clone()),
                        created_at: None,
                    },
                )
            })
            .collect();
        Ok(self.env.page(items, marker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Faults;

    const LISTENER: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/alb/1/2";

    fn spec(name: &str) -> TargetGroupSpec {
        TargetGroupSpec {
            name: name.into(),
            vpc_id: "vpc-1".into(),
            port: 30000,
            health_check_path: "/".into(),
            health_check_interval_seconds: 30,
            health_check_timeout_seconds: 5,
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            matcher: "200,302".into(),
            tags: vec![],
        }
    }

    #[tokio::test]
    async fn target_group_name_reuse_returns_the_same_arn() {
        let alb = FakeAlb::new(Arc::new(Faults::new()));
        let a = alb.create_target_group(&spec("foundry-alice")).await.unwrap();
        let mut tagged = spec("foundry-alice");
        tagged.tags = vec![("k".into(), "v".into())];
        assert_eq!(alb.create_target_group(&tagged).await.unwrap(), a);
        assert!(a.starts_with("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/foundry-alice/"));
        let mut other = spec("foundry-alice");
        other.port = 8080;
        assert_eq!(
            alb.create_target_group(&other).await.unwrap_err().kind,
            AwsErrorKind::AlreadyExists
        );
        assert_eq!(alb.target_groups().len(), 1);
        assert_eq!(alb.find_target_group("foundry-alice").await.unwrap(), Some(a.clone()));
        assert_eq!(alb.find_target_group("nope").await.unwrap(), None);
        assert_eq!(
            alb.create_target_group(&spec("-bad")).await.unwrap_err().kind,
            AwsErrorKind::Invalid
        );
    }

    #[tokio::test]
    async fn rules_priorities_and_in_use_groups() {
        let alb = FakeAlb::new(Arc::new(Faults::new()));
        let tg = alb.create_target_group(&spec("foundry-alice")).await.unwrap();
        let tg2 = alb.create_target_group(&spec("foundry-bob")).await.unwrap();
        let r = alb
            .create_rule(LISTENER, 7, "alice.example.com", &tg, &[])
            .await
            .unwrap();
        let e = alb
            .create_rule(LISTENER, 7, "bob.example.com", &tg2, &[])
            .await
            .unwrap_err();
        assert_eq!(e.kind, AwsErrorKind::PriorityInUse);
        alb.create_rule(LISTENER, 3, "bob.example.com", &tg2, &[])
            .await
            .unwrap();
        let listed = alb.list_rules(LISTENER).await.unwrap();
        let prios: Vec<_> = listed.iter().map(|r| r.priority).collect();
        assert_eq!(prios, vec![Some(3), Some(7), None]);
        assert_eq!(alb.rules(LISTENER).len(), 2);
        assert_eq!(
            alb.delete_rule(&listed[2].arn).await.unwrap_err().code.as_deref(),
            Some("OperationNotPermitted")
        );
        assert_eq!(
            alb.delete_target_group(&tg).await.unwrap_err().kind,
            AwsErrorKind::Conflict
        );
        alb.delete_rule(&r).await.unwrap();
        assert_eq!(alb.delete_rule(&r).await.unwrap_err().kind, AwsErrorKind::NotFound);
        alb.delete_target_group(&tg).await.unwrap();
        assert_eq!(
            alb.delete_target_group(&tg).await.unwrap_err().kind,
            AwsErrorKind::NotFound
        );
        assert_eq!(
            alb.create_rule(LISTENER, 9, "x.example.com", &tg, &[])
                .await
                .unwrap_err()
                .kind,
            AwsErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn targets_register_and_deregister() {
        let alb = FakeAlb::new(Arc::new(Faults::new()));
        let tg = alb.create_target_group(&spec("foundry-alice")).await.unwrap();
        alb.register_target(&tg, "10.0.0.5", 30000).await.unwrap();
        alb.register_target(&tg, "10.0.0.5", 30000).await.unwrap();
        assert_eq!(alb.targets(&tg), vec![("10.0.0.5".to_string(), 30000)]);
        assert_eq!(
            alb.register_target(&tg, "not-an-ip", 30000).await.unwrap_err().kind,
            AwsErrorKind::Invalid
        );
        alb.deregister_target(&tg, "10.0.0.5", 30000).await.unwrap();
        assert!(alb.targets(&tg).is_empty());
        assert_eq!(
            alb.deregister_target(&tg, "10.0.0.5", 30000).await.unwrap_err().kind,
            AwsErrorKind::Invalid
        );
        assert_eq!(
            alb.register_target("arn:nope", "10.0.0.5", 30000)
                .await
                .unwrap_err()
                .kind,
            AwsErrorKind::NotFound
        );
    }
}
