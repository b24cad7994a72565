//! Usage costs: one user's month, and every user's.

use serde::Serialize;
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::context::Services;
use crate::domain::money::{self, exact, number, Decimal};
use crate::domain::usage::month_key;
use crate::error::Result;

/// The answer of `get-user-costs`. Numbers that JavaScript would print as `NaN` (a
/// non-numeric rate) are `null`.
#[skip_serializing_none]
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct UserCosts<'a> {
    user_id: &'a str,
    hours_used: f64,
    total_cost: f64,
    uncovered_cost: f64,
    donations_received: f64,
    last_donor_name: Option<String>,
    cost_per_hour: f64,
}

/// `get-user-costs`: the caller's current UTC month.
pub async fn get_user_costs(svc: &Services, user_id: &str) -> Result<Value> {
    let usage = svc.store.usage.month_of(user_id, svc.now()).await?.unwrap_or_default();
    let rate = svc.config.instance_cost_per_hour;
    let c = money::cost(
        usage.hours_this_month.unwrap_or(0.0),
        usage.donations_this_month.unwrap_or(0.0),
        exact(rate),
    );
    crate::response::to_body(&UserCosts {
        user_id,
        hours_used: number(c.hours),
        total_cost: number(c.total),
        uncovered_cost: number(c.uncovered),
        donations_received: number(c.donations),
        last_donor_name: usage.last_donor_name,
        cost_per_hour: rate,
    })
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Contributor {
    user_id: String,
    donations: f64,
    uncovered: f64,
}

/// The answer of `get-all-costs`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AllCosts {
    total_users: u64,
    total_hours: f64,
    total_costs: f64,
    total_donations: f64,
    total_uncovered: f64,
    top_contributors: Vec<Contributor>,
}

/// `get-all-costs`: every user's current UTC month, every page, in exact decimals.
pub async fn get_all_costs(svc: &Services) -> Result<Value> {
    let suffix = format!("#{}", month_key(svc.now()));
    let rate = exact(svc.config.instance_cost_per_hour);
    let mut total_users = 0u64;
    let mut total_hours = Some(Decimal::ZERO);
    let mut total_donations = Some(Decimal::ZERO);
    let mut contributors: Vec<(String, Option<Decimal>, Option<Decimal>)> = Vec::new();
    for u in svc.store.usage.all().await? {
        if !u.usage_key.ends_with(&suffix) {
            continue;
        }
        let h = u.hours_this_month.unwrap_or(0.0);
        let d = u.donations_this_month.unwrap_or(0.0);
        if !(h > 0.0 || d > 0.0) {
            continue;
        }
        let c = money::cost(h, d, rate);
        total_users += 1;
        total_hours = sum(total_hours, c.hours);
        total_donations = sum(total_donations, c.donations);
        let user = u.usage_key.split('#').next().unwrap_or("").to_string();
        contributors.push((user, c.donations, c.uncovered));
    }
    // Donations, largest first; ties keep their order.
    contributors.sort_by_key(|c| std::cmp::Reverse(c.1.unwrap_or_default()));
    let top = contributors
        .into_iter()
        .take(10)
        .map(|(user_id, d, u)| Contributor {
            user_id,
            donations: number(d),
            uncovered: number(u),
        })
        .collect();
    let total_costs = match (total_hours, rate) {
        (Some(h), Some(r)) => h.checked_mul(r),
        _ => None,
    };
    let uncovered = match (total_costs, total_donations) {
        (Some(c), Some(d)) => money::at_least_zero(Some(c - d)),
        _ => None,
    };
    crate::response::to_body(&AllCosts {
        total_users,
        total_hours: number(total_hours),
        total_costs: number(total_costs),
        total_donations: number(total_donations),
        total_uncovered: number(uncovered),
        top_contributors: top,
    })
}

fn sum(a: Option<Decimal>, b: Option<Decimal>) -> Option<Decimal> {
    a?.checked_add(b?)
}
