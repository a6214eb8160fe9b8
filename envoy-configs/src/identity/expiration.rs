//! How long a Dataplane's certificate lives: the Mesh CA backend's
//! `dpCert.rotation.expiration`, read as Kuma reads it (`ParseDuration` in
//! `pkg/core/resources/apis/mesh/mesh_helpers.go`, the same in 2.9 and 2.14).

use std::time::Duration;

/// Kuma's lifetime of a certificate whose backend names none
/// (`DefaultWorkloadCertValidityPeriod`).
pub const DEFAULT: Duration = Duration::from_secs(24 * 60 * 60);

/// Kuma's words for an expiration it cannot read (`mesh_validator.go`).
pub const INVALID: &str = "has to be a valid format";

/// Kuma's `ParseDuration`: `0`, or a whole number and one unit of `y` (365 days), `w`, `d`,
/// `h`, `m`, `s` or `ms`. Not Go's syntax: `1h30m` and `1.5h` are refused, as Kuma refuses
/// them. `None` for what Kuma refuses.
pub fn parse(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    const DAY: u64 = 24 * 60 * 60 * 1000;
    let millis_per_unit = match unit {
        "y" => 365 * DAY,
        "w" => 7 * DAY,
        "d" => DAY,
        "h" => 60 * 60 * 1000,
        "m" => 60 * 1000,
        "s" => 1000,
        "ms" => 1,
        _ => return None,
    };
    if number.is_empty() {
        return None;
    }
    // Kuma's Go arithmetic overflows past ~292 years; such a lifetime is "forever" here.
    let number = number.parse::<u64>().unwrap_or(u64::MAX);
    Some(Duration::from_millis(
        number.saturating_mul(millis_per_unit),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_as_kuma_reads_them() {
        let day = 24 * 60 * 60;
        let cases = [
            ("0", Some(Duration::ZERO)),
            ("10s", Some(Duration::from_secs(10))),
            ("250ms", Some(Duration::from_millis(250))),
            ("5m", Some(Duration::from_secs(300))),
            ("24h", Some(Duration::from_secs(day))),
            ("1d", Some(Duration::from_secs(day))),
            ("2w", Some(Duration::from_secs(14 * day))),
            ("1y", Some(Duration::from_secs(365 * day))),
            // Go's own syntax, which Kuma's does not take.
            ("1h30m", None),
            ("1.5h", None),
            ("-1h", None),
            ("10", None),
            ("h", None),
            ("", None),
            ("10 s", None),
            ("10S", None),
            ("1us", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text), want, "{text:?}");
        }
    }
}
