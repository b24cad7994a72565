//! Usage costs: one user's month, and every user's.

use serde::Serialize;
use serde_json::Value;
use serde_with::skip_serializing_none;

use crate::context::Services;
use crate::domain::usage::{cost, js_max0, month_key};
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
    let c = cost(
        usage.hours_this_month.unwrap_or(0.0),
        usage.donations_this_month.unwrap_or(0.0),
        rate,
    );
    crate::response::to_body(&UserCosts {
        user_id,
        hours_used: c.hours,
        total_cost: c.total_cost,
        uncovered_cost: c.uncovered,
        donations_received: c.donations,
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

/// `get-all-costs`: every user's current UTC month, every page.
pub async fn get_all_costs(svc: &Services) -> Result<Value> {
    let suffix = format!("#{}", month_key(svc.now()));
    let rate = svc.config.instance_cost_per_hour;
    let mut total_users = 0u64;
    let mut total_hours = 0.0;
    let mut total_donations = 0.0;
    let mut contributors: Vec<Contributor> = Vec::new();
    for u in svc.store.usage.all().await? {
        if !u.usage_key.ends_with(&suffix) {
            continue;
        }
        let h = u.hours_this_month.unwrap_or(0.0);
        let d = u.donations_this_month.unwrap_or(0.0);
        if !(h > 0.0 || d > 0.0) {
            continue;
        }
        total_users += 1;
        total_hours += h;
        total_donations += d;
        contributors.push(Contributor {
            user_id: u.usage_key.split('#').next().unwrap_or("").to_string(),
            donations: d,
            uncovered: js_max0(h * rate - d),
        });
    }
    // Stable sort by donations, descending (NaN-safe).
    contributors.sort_by(|a, b| {
        b.donations
            .partial_cmp(&a.donations)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    contributors.truncate(10);
    let total_costs = total_hours * rate;
    crate::response::to_body(&AllCosts {
        total_users,
        total_hours,
        total_costs,
        total_donations,
        total_uncovered: js_max0(total_costs - total_donations),
        top_contributors: contributors,
    })
}
