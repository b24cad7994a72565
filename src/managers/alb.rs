//! ELBv2: the per-user target group and listener rule.

use async_trait::async_trait;

use crate::error::AwsError;
use crate::managers::{Listed, Page};

/// A target group: HTTP on a port, `ip` targets, and its health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupSpec {
    pub name: String,
    pub vpc_id: String,
    pub port: i32,
    pub health_check_path: String,
    pub health_check_interval_seconds: i32,
    pub health_check_timeout_seconds: i32,
    pub healthy_threshold: i32,
    pub unhealthy_threshold: i32,
    /// Matcher HTTP codes, e.g. `200,302`.
    pub matcher: String,
    pub tags: Vec<(String, String)>,
}

/// A listener rule as far as we care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    pub arn: String,
    /// `None` for the listener's default rule.
    pub priority: Option<i32>,
    /// Values of its `host-header` conditions.
    pub host_headers: Vec<String>,
    /// Target groups its forward actions point at.
    pub target_group_arns: Vec<String>,
}

#[async_trait]
pub trait Alb: Send + Sync {
    /// CreateTargetGroup → ARN. (ELBv2 returns the existing group when one with the same
    /// name and settings exists.)
    async fn create_target_group(&self, spec: &TargetGroupSpec) -> Result<String, AwsError>;

    /// DescribeTargetGroups by name → ARN, or `None`.
    async fn find_target_group(&self, name: &str) -> Result<Option<String>, AwsError>;

    /// DeleteTargetGroup. A missing group is a `NotFound` error.
    async fn delete_target_group(&self, target_group_arn: &str) -> Result<(), AwsError>;

    /// RegisterTargets with one `ip` target.
    async fn register_target(&self, target_group_arn: &str, ip: &str, port: i32) -> Result<(), AwsError>;

    /// DeregisterTargets for one `ip` target.
    async fn deregister_target(&self, target_group_arn: &str, ip: &str, port: i32) -> Result<(), AwsError>;

    /// Every rule of the listener (paginated DescribeRules).
    async fn list_rules(&self, listener_arn: &str) -> Result<Vec<RuleInfo>, AwsError>;

    /// CreateRule: one `host-header` condition, forward to the target group, tags.
    /// A taken priority is a `PriorityInUse` error.
    async fn create_rule(
        &self,
        listener_arn: &str,
        priority: i32,
        host: &str,
        target_group_arn: &str,
        tags: &[(String, String)],
    ) -> Result<String, AwsError>;

    /// DeleteRule. A missing rule is a `NotFound` error.
    async fn delete_rule(&self, rule_arn: &str) -> Result<(), AwsError>;

    /// DescribeListeners of one listener: a health probe. A missing listener is a
    /// `NotFound` error.
    async fn describe_listener(&self, listener_arn: &str) -> Result<(), AwsError>;

    /// One page of DescribeTargetGroups (every group of the account and region), from
    /// `marker`: names and ARNs (ELBv2 gives no creation time).
    async fn list_target_groups_page(&self, marker: Option<&str>) -> Result<Page<Listed>, AwsError>;
}

/// The SDK adapter.
pub struct SdkAlb {
    client: super::sdk::LazyClient<aws_sdk_elasticloadbalancingv2::Client>,
    rules_page_size: Option<i32>,
}

impl SdkAlb {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        SdkAlb {
            client: super::sdk::LazyClient::new(sdk, |sdk| {
                let mut conf = aws_sdk_elasticloadbalancingv2::config::Builder::from(sdk);
                conf.push_interceptor(instrument::interceptor());
                aws_sdk_elasticloadbalancingv2::Client::from_conf(conf.build())
            }),
            rules_page_size: None,
        }
    }

    /// Sets `PageSize` on every DescribeRules page (tests use it to force pagination);
    /// without it the service default applies.
    pub fn with_rules_page_size(mut self, page_size: i32) -> Self {
        self.rules_page_size = Some(page_size);
        self
    }
}

use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, HostHeaderConditionConfig, Matcher, ProtocolEnum, Rule, RuleCondition, Tag,
    TargetDescription, TargetTypeEnum,
};

use crate::error::AwsErrorKind;
use crate::managers::{instrument, sdk_error};

const SERVICE: &str = "elasticloadbalancing";

fn tags_of(tags: &[(String, String)]) -> Option<Vec<Tag>> {
    (!tags.is_empty()).then(|| {
        tags.iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect()
    })
}

/// Our view of one rule. A priority that is neither `default` nor a number is an error.
pub fn rule_info(rule: &Rule) -> Result<RuleInfo, AwsError> {
    let arn = rule.rule_arn().unwrap_or_default().to_string();
    let priority = match rule.priority() {
        None | Some("default") => None,
        Some(p) => Some(p.trim().parse::<i32>().map_err(|_| {
            AwsError::new(
                SERVICE,
                "DescribeRules",
                AwsErrorKind::Other,
                format!("rule {arn} has an unexpected priority {p:?}"),
            )
        })?),
    };
    let priority = if rule.is_default() == Some(true) {
        None
    } else {
        priority
    };
    let mut host_headers: Vec<String> = Vec::new();
    for c in rule.conditions() {
        if c.field() != Some("host-header") {
            continue;
        }
        let from_config = c.host_header_config().map(|h| h.values()).unwrap_or_default();
        for v in from_config.iter().chain(c.values()) {
            if !host_headers.contains(v) {
                host_headers.push(v.clone());
            }
        }
    }
    let mut target_group_arns: Vec<String> = Vec::new();
    for a in rule.actions() {
        if a.r#type() != Some(&ActionTypeEnum::Forward) {
            continue;
        }
        let from_config = a
            .forward_config()
            .map(|f| f.target_groups())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t.target_group_arn());
        for tg in a.target_group_arn().into_iter().chain(from_config) {
            if !target_group_arns.iter().any(|x| x == tg) {
                target_group_arns.push(tg.to_string());
            }
        }
    }
    Ok(RuleInfo {
        arn,
        priority,
        host_headers,
        target_group_arns,
    })
}

#[async_trait]
impl Alb for SdkAlb {
    async fn create_target_group(&self, spec: &TargetGroupSpec) -> Result<String, AwsError> {
        const OP: &str = "CreateTargetGroup";
        let out = self
            .client
            .create_target_group()
            .name(&spec.name)
            .protocol(ProtocolEnum::Http)
            .port(spec.port)
            .vpc_id(&spec.vpc_id)
            .target_type(TargetTypeEnum::Ip)
            .health_check_enabled(true)
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_port(spec.port.to_string())
            .health_check_path(&spec.health_check_path)
            .health_check_interval_seconds(spec.health_check_interval_seconds)
            .health_check_timeout_seconds(spec.health_check_timeout_seconds)
            .healthy_threshold_count(spec.healthy_threshold)
            .unhealthy_threshold_count(spec.unhealthy_threshold)
            .matcher(Matcher::builder().http_code(&spec.matcher).build())
            .set_tags(tags_of(&spec.tags))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        out.target_groups()
            .iter()
            .find_map(|tg| tg.target_group_arn())
            .map(str::to_string)
            .ok_or_else(|| AwsError::new(SERVICE, OP, AwsErrorKind::Other, "CreateTargetGroup returned no ARN"))
    }

    async fn find_target_group(&self, name: &str) -> Result<Option<String>, AwsError> {
        const OP: &str = "DescribeTargetGroups";
        match self.client.describe_target_groups().names(name).send().await {
            Ok(out) => Ok(out
                .target_groups()
                .iter()
                .find(|tg| tg.target_group_name() == Some(name))
                .and_then(|tg| tg.target_group_arn())
                .map(str::to_string)),
            Err(e) => {
                let err = sdk_error(SERVICE, OP, e);
                if err.code.as_deref() == Some("TargetGroupNotFound") {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    async fn list_target_groups_page(&self, marker: Option<&str>) -> Result<Page<Listed>, AwsError> {
        let out = self
            .client
            .describe_target_groups()
            .page_size(crate::managers::LIST_PAGE)
            .set_marker(marker.map(str::to_string))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "DescribeTargetGroups", e))?;
        Ok(Page {
            items: out
                .target_groups()
                .iter()
                .filter_map(|tg| {
                    Some(Listed {
                        name: tg.target_group_name()?.to_string(),
                        arn: Some(tg.target_group_arn()?.to_string()),
                        created_at: None,
                    })
                })
                .collect(),
            next: crate::managers::next_token(out.next_marker()),
        })
    }

    async fn delete_target_group(&self, target_group_arn: &str) -> Result<(), AwsError> {
        self.client
            .delete_target_group()
            .target_group_arn(target_group_arn)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "DeleteTargetGroup", e))?;
        Ok(())
    }

    async fn register_target(&self, target_group_arn: &str, ip: &str, port: i32) -> Result<(), AwsError> {
        self.client
            .register_targets()
            .target_group_arn(target_group_arn)
            .targets(TargetDescription::builder().id(ip).port(port).build())
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "RegisterTargets", e))?;
        Ok(())
    }

    async fn deregister_target(&self, target_group_arn: &str, ip: &str, port: i32) -> Result<(), AwsError> {
        self.client
            .deregister_targets()
            .target_group_arn(target_group_arn)
            .targets(TargetDescription::builder().id(ip).port(port).build())
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "DeregisterTargets", e))?;
        Ok(())
    }

    async fn list_rules(&self, listener_arn: &str) -> Result<Vec<RuleInfo>, AwsError> {
        const OP: &str = "DescribeRules";
        let mut pages = self
            .client
            .describe_rules()
            .listener_arn(listener_arn)
            .set_page_size(self.rules_page_size)
            .into_paginator()
            .send();
        let mut rules = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk_error(SERVICE, OP, e))?;
            for rule in page.rules() {
                rules.push(rule_info(rule)?);
            }
        }
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
        const OP: &str = "CreateRule";
        let condition = RuleCondition::builder()
            .field("host-header")
            .host_header_config(HostHeaderConditionConfig::builder().values(host).build())
            .build();
        let action = Action::builder()
            .r#type(ActionTypeEnum::Forward)
            .target_group_arn(target_group_arn)
            .build();
        let out = self
            .client
            .create_rule()
            .listener_arn(listener_arn)
            .priority(priority)
            .conditions(condition)
            .actions(action)
            .set_tags(tags_of(tags))
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        out.rules()
            .iter()
            .find_map(|r| r.rule_arn())
            .map(str::to_string)
            .ok_or_else(|| AwsError::new(SERVICE, OP, AwsErrorKind::Other, "CreateRule returned no rule ARN"))
    }

    async fn delete_rule(&self, rule_arn: &str) -> Result<(), AwsError> {
        self.client
            .delete_rule()
            .rule_arn(rule_arn)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, "DeleteRule", e))?;
        Ok(())
    }

    async fn describe_listener(&self, listener_arn: &str) -> Result<(), AwsError> {
        const OP: &str = "DescribeListeners";
        let out = self
            .client
            .describe_listeners()
            .listener_arns(listener_arn)
            .send()
            .await
            .map_err(|e| sdk_error(SERVICE, OP, e))?;
        if out.listeners().is_empty() {
            return Err(
                AwsError::new(SERVICE, OP, AwsErrorKind::NotFound, "listener not found").with_code("ListenerNotFound")
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_elasticloadbalancingv2::types::{ForwardActionConfig, TargetGroupTuple};

    fn rule(priority: &str, is_default: bool) -> aws_sdk_elasticloadbalancingv2::types::builders::RuleBuilder {
        Rule::builder()
            .rule_arn("arn:rule")
            .priority(priority)
            .is_default(is_default)
    }

    #[test]
    fn default_rule_has_no_priority() {
        let info = rule_info(&rule("default", true).build()).unwrap();
        assert_eq!(info.priority, None);
        assert_eq!(info.arn, "arn:rule");
    }

    #[test]
    fn numeric_priorities_parse_and_others_are_errors_not_panics() {
        assert_eq!(rule_info(&rule("110", false).build()).unwrap().priority, Some(110));
        let err = rule_info(&rule("high", false).build()).unwrap_err();
        assert!(err.message.contains("high"), "{err}");
    }

    #[test]
    fn host_headers_and_forward_targets_are_collected_once() {
        let r = rule("100", false)
            .conditions(
                RuleCondition::builder()
                    .field("host-header")
                    .values("alice.example.com")
                    .host_header_config(HostHeaderConditionConfig::builder().values("alice.example.com").build())
                    .build(),
            )
            .conditions(RuleCondition::builder().field("path-pattern").values("/x").build())
            .actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn("arn:tg1")
                    .forward_config(
                        ForwardActionConfig::builder()
                            .target_groups(TargetGroupTuple::builder().target_group_arn("arn:tg1").build())
                            .target_groups(TargetGroupTuple::builder().target_group_arn("arn:tg2").build())
                            .build(),
                    )
                    .build(),
            )
            .actions(Action::builder().r#type(ActionTypeEnum::FixedResponse).build())
            .build();
        let info = rule_info(&r).unwrap();
        assert_eq!(info.host_headers, vec!["alice.example.com".to_string()]);
        assert_eq!(
            info.target_group_arns,
            vec!["arn:tg1".to_string(), "arn:tg2".to_string()]
        );
    }

    #[test]
    fn empty_tags_are_not_sent() {
        assert!(tags_of(&[]).is_none());
        assert_eq!(tags_of(&[("a".into(), "b".into())]).map(|t| t.len()), Some(1));
    }
}
