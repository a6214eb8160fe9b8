//! Kuma's shared rules on a `default`'s fields, in its words.

use external_service_model::report::Violation;

use super::duration::Duration;

pub const NOT_NEGATIVE: &str = "must not be negative when defined";
pub const GREATER_THAN_ZERO: &str = "must be greater than zero when defined";
pub const DEFINED_AND_GREATER_THAN_ZERO: &str = "must be defined and greater than zero";
pub const NOT_EMPTY: &str = "must not be empty";
pub const DEFINED: &str = "must be defined";
pub const MUST_NOT_BE_DEFINED: &str = "must not be defined";
pub const PERCENTAGE: &str = "must be in inclusive range [0.0, 100.0]";
pub const STATUS_CODE: &str = "must be in inclusive range [100, 599]";

pub fn not_negative(path: &str, field: &str, d: Option<Duration>, out: &mut Vec<Violation>) {
    if d.is_some_and(Duration::is_negative) {
        out.push(Violation::new(format!("{path}.{field}"), NOT_NEGATIVE));
    }
}

/// The number in Kuma's IntOrString decimals (`1.9` or `"1.9"`), if it is one.
pub fn int_or_string(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Kuma's `ValidateIntegerGreaterThanZeroOrNil`.
pub fn positive(path: &str, field: &str, n: Option<u32>, out: &mut Vec<Violation>) {
    if n == Some(0) {
        out.push(Violation::new(
            format!("{path}.{field}"),
            "must be greater than 0",
        ));
    }
}

/// Kuma's `ValidateUInt32PercentageOrNil`.
pub fn percentage(path: &str, field: &str, n: Option<u32>, out: &mut Vec<Violation>) {
    if n.is_some_and(|n| n > 100) {
        out.push(Violation::new(
            format!("{path}.{field}"),
            "must be in inclusive range [0, 100]",
        ));
    }
}

pub fn greater_than_zero(path: &str, field: &str, d: Option<Duration>, out: &mut Vec<Violation>) {
    if d.is_some_and(|d| d.is_negative() || d.is_zero()) {
        out.push(Violation::new(format!("{path}.{field}"), GREATER_THAN_ZERO));
    }
}
