//! Log retention: the values CloudWatch Logs accepts, a fact both the configuration and the
//! Logs adapter check against.

/// Every retention (in days) CloudWatch Logs accepts in PutRetentionPolicy.
pub const RETENTION_DAYS: [i32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

/// Whether CloudWatch Logs accepts `days` as a retention.
pub fn is_valid_retention(days: i32) -> bool {
    RETENTION_DAYS.contains(&days)
}
