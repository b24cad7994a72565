//! Usage costs (spec/SCHEDULING.md §9.4–§9.5).

use serde_json::Value;

use super::Obj;
use crate::app::App;
use crate::domain::usage::{cost, js_max0, month_key, usage_key};
use crate::error::Result;

/// `get-user-costs` (§4.27): the caller's current UTC month.
pub async fn get_user_costs(app: &App, user_id: &str) -> Result<Value> {
    let now = app.clock.now();
    let usage = app.store.get_usage(&usage_key(user_id, now)).await?.unwrap_or_default();
    let rate = app.config.instance_cost_per_hour;
    let c = cost(
        usage.hours_this_month.unwrap_or(0.0),
        usage.donations_this_month.unwrap_or(0.0),
        rate,
    );
    Ok(Obj::new()
        .set("userId", user_id)
        .num("hoursUsed", c.hours)
        .num("totalCost", c.total_cost)
        .num("uncoveredCost", c.uncovered)
        .num("donationsReceived", c.donations)
        .opt("lastDonorName", usage.last_donor_name)
        .num("costPerHour", rate)
        .build())
}

/// `get-all-costs` (§4.28): every user's current UTC month, all pages.
pub async fn get_all_costs(app: &App) -> Result<Value> {
    let now = app.clock.now();
    let suffix = format!("#{}", month_key(now));
    let rate = app.config.instance_cost_per_hour;
    let mut total_users = 0u64;
    let mut total_hours = 0.0;
    let mut total_donations = 0.0;
    let mut contributors: Vec<(String, f64, f64)> = Vec::new();
    for u in app.store.scan_usage().await? {
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
        let user = u.usage_key.split('#').next().unwrap_or("").to_string();
        contributors.push((user, d, js_max0(h * rate - d)));
    }
    // Stable sort by donations, descending (NaN-safe).
    contributors.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    let top: Vec<Value> = contributors
        .into_iter()
        .take(10)
        .map(|(user, d, u)| {
            Obj::new()
                .set("userId", user)
                .num("donations", d)
                .num("uncovered", u)
                .build()
        })
        .collect();
    let total_costs = total_hours * rate;
    Ok(Obj::new()
        .set("totalUsers", total_users)
        .num("totalHours", total_hours)
        .num("totalCosts", total_costs)
        .num("totalDonations", total_donations)
        .num("totalUncovered", js_max0(total_costs - total_donations))
        .set("topContributors", top)
        .build())
}
