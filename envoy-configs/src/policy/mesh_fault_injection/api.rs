//! MeshFaultInjection: `from[]`/`rules[]` `default.http[]` and Kuma's rules.

use external_service_model::report::Violation;
use external_service_model::resource::Kind;
use serde::Deserialize;
use serde_json::Value;

use crate::policy::duration::Duration;
use crate::policy::rules::{int_or_string, DEFINED, NOT_NEGATIVE, PERCENTAGE, STATUS_CODE};
use crate::policy::Shape;

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {
    pub http: Option<Vec<Fault>>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Fault {
    pub abort: Option<Abort>,
    pub delay: Option<Delay>,
    pub response_bandwidth: Option<ResponseBandwidth>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Abort {
    pub http_status: i64,
    /// Kuma's IntOrString: `50`, `"12.5"`.
    pub percentage: Value,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Delay {
    pub value: Duration,
    pub percentage: Value,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ResponseBandwidth {
    /// `50kbps`, `1 Mbps`, `2Gbps`.
    pub limit: String,
    pub percentage: Value,
}

/// A validated percentage (an abort's, a delay's, a bandwidth limit's) as a number.
pub fn share(percentage: &Value) -> f64 {
    int_or_string(percentage).unwrap_or_default()
}

impl ResponseBandwidth {
    /// The limit in kbps (Envoy's `limit_kbps`, as Kuma passes it on), if it reads.
    pub fn kbps(&self) -> Option<u64> {
        let unit_at = self.limit.find(|c: char| !c.is_ascii_digit())?;
        let (digits, unit) = self.limit.split_at(unit_at);
        let factor = match unit.strip_prefix(' ').unwrap_or(unit) {
            "kbps" => 1,
            "Mbps" => 1_000,
            "Gbps" => 1_000_000,
            _ => return None,
        };
        digits.parse::<u64>().ok()?.checked_mul(factor)
    }
}

impl crate::policy::Conf for Conf {
    const KIND: Kind = Kind::MeshFaultInjection;
    const SHAPE: Shape = Shape::From;

    fn validate(&self, path: &str, out: &mut Vec<Violation>) {
        let faults = self.http.as_deref().unwrap_or_default();
        for (i, fault) in faults.iter().enumerate() {
            let path = format!("{path}.http[{i}]");
            if let Some(abort) = &fault.abort {
                let path = format!("{path}.abort");
                if !(100..=599).contains(&abort.http_status) {
                    out.push(Violation::new(format!("{path}.httpStatus"), STATUS_CODE));
                }
                percentage(&path, &abort.percentage, out);
            }
            if let Some(delay) = &fault.delay {
                let path = format!("{path}.delay");
                if delay.value.is_negative() {
                    out.push(Violation::new(format!("{path}.value"), NOT_NEGATIVE));
                }
                percentage(&path, &delay.percentage, out);
            }
            if let Some(bandwidth) = &fault.response_bandwidth {
                let path = format!("{path}.responseBandwidth");
                let limit = format!("{path}.limit");
                match bandwidth.kbps() {
                    _ if bandwidth.limit.is_empty() => out.push(Violation::new(limit, DEFINED)),
                    None => out.push(Violation::new(limit, "must be in kbps/Mbps/Gbps units")),
                    // Envoy's floor: 1 KiB/s.
                    Some(0) => out.push(Violation::new(limit, "must be greater than 0")),
                    Some(_) => {}
                }
                percentage(&path, &bandwidth.percentage, out);
            }
        }
        // One Envoy fault filter per route holds one abort, one delay and one bandwidth limit.
        for (what, count) in [
            ("abort", faults.iter().filter(|f| f.abort.is_some()).count()),
            ("delay", faults.iter().filter(|f| f.delay.is_some()).count()),
            (
                "responseBandwidth",
                faults
                    .iter()
                    .filter(|f| f.response_bandwidth.is_some())
                    .count(),
            ),
        ] {
            if count > 1 {
                out.push(Violation::new(
                    format!("{path}.http"),
                    format!("not supported yet by extsvc: more than one {what}"),
                ));
            }
        }
    }
}

fn percentage(path: &str, value: &Value, out: &mut Vec<Violation>) {
    let field = format!("{path}.percentage");
    match int_or_string(value) {
        None if value.is_string() => {
            out.push(Violation::new(field, "string must be a valid number"))
        }
        None => out.push(Violation::new(field, DEFINED)),
        Some(p) if !(0.0..=100.0).contains(&p) => out.push(Violation::new(field, PERCENTAGE)),
        Some(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bandwidth_limit_reads_in_kumas_units_only() {
        let kbps = |limit: &str| {
            ResponseBandwidth {
                limit: limit.to_string(),
                ..ResponseBandwidth::default()
            }
            .kbps()
        };
        let found: Vec<(&str, Option<u64>)> = [
            "50kbps", "1 Mbps", "2Gbps", "0kbps", "1mbps", "kbps", "5  kbps", "1.5Mbps", "-1kbps",
            "50",
        ]
        .into_iter()
        .map(|l| (l, kbps(l)))
        .collect();
        assert_eq!(
            found,
            [
                ("50kbps", Some(50)),
                ("1 Mbps", Some(1_000)),
                ("2Gbps", Some(2_000_000)),
                ("0kbps", Some(0)),
                ("1mbps", None),
                ("kbps", None),
                ("5  kbps", None),
                ("1.5Mbps", None),
                ("-1kbps", None),
                ("50", None),
            ]
        );
    }
}
