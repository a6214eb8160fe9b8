//! The shared scenario table, natively: each column derived from the model's decision.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use external_service_conformance::checks::Plain;
use external_service_conformance::scenarios::{self, plugin_config, Outcome, Reply, Setup};
use external_service_model::config::{self, Filter};
use external_service_model::contract::{denied_details, denied_metric};
use external_service_model::{decide, Decision};

fn filter(setup: Setup) -> Filter {
    let bytes = plugin_config(setup).to_string();
    config::configure(bytes.as_bytes()).unwrap()
}

#[test]
fn every_scenario() {
    let mut filters: HashMap<String, Filter> = HashMap::new();
    scenarios::run(|case| {
        let filter = filters
            .entry(format!("{:?}", case.setup))
            .or_insert_with(|| filter(case.setup));
        let request = Plain {
            authority: case.authority.as_deref(),
            content_type: case.content_type.as_deref(),
        };
        let untouched = case.authority.clone();
        match decide(&filter.catalog, filter.bound, &request) {
            Decision::Forward(_, service) => Outcome {
                authority: Some(service.authority.clone()),
                filter_state: untouched.filter(|r| service.keeps_requested(Some(r.as_str()))),
                counter: None,
                reply: None,
            },
            Decision::Passthrough => Outcome {
                authority: untouched,
                filter_state: None,
                counter: None,
                reply: None,
            },
            Decision::Deny(denial) => Outcome {
                authority: untouched,
                filter_state: None,
                counter: Some(denied_metric(denial.reason())),
                reply: Some(Reply {
                    status: denial.status(),
                    denied: denial.reason().to_owned(),
                    details: denied_details(denial.reason()),
                    body: denial.body(&filter.catalog, &request),
                }),
            },
        }
    });
}
