//! MeshFaultInjection: `from[]`/`rules[]` `default.http[]` and Kuma's rules.

use external_service_model::report::Violation;
use external_service_model::resource::Kind;
use serde::Deserialize;
use serde_json::Value;

use super::duration::Duration;
use super::rules::{int_or_string, not_yet, NOT_NEGATIVE, PERCENTAGE, STATUS_CODE};
use super::Shape;

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Conf {
    #[serde(default)]
    pub http: Option<Vec<Fault>>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Fault {
    #[serde(default)]
    pub abort: Option<Abort>,
    #[serde(default)]
    pub delay: Option<Delay>,
    #[serde(default)]
    pub response_bandwidth: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Abort {
    #[serde(default)]
    pub http_status: i64,
    /// Kuma's IntOrString: `50`, `"12.5"`.
    #[serde(default)]
    pub percentage: Value,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Delay {
    #[serde(default)]
    pub value: Duration,
    #[serde(default)]
    pub percentage: Value,
}

impl Abort {
    pub fn share(&self) -> f64 {
        int_or_string(&self.percentage).unwrap_or_default()
    }
}

impl Delay {
    pub fn share(&self) -> f64 {
        int_or_string(&self.percentage).unwrap_or_default()
    }
}

impl super::Conf for Conf {
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
            not_yet(
                &path,
                "responseBandwidth",
                fault.response_bandwidth.is_some(),
                out,
            );
        }
        // One Envoy fault filter per route holds one abort and one delay.
        for (what, count) in [
            ("abort", faults.iter().filter(|f| f.abort.is_some()).count()),
            ("delay", faults.iter().filter(|f| f.delay.is_some()).count()),
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
        None => out.push(Violation::new(field, super::rules::DEFINED)),
        Some(p) if !(0.0..=100.0).contains(&p) => out.push(Violation::new(field, PERCENTAGE)),
        Some(_) => {}
    }
}
