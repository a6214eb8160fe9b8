//! The filter module: the only proxy-wasm code. It moves bytes between Envoy and the model's
//! decision (`external_service_model::decide`) and applies what it says.
// Only the wasm32 build is a module; elsewhere (a native `cargo build --workspace`) it is empty.
#![cfg(target_arch = "wasm32")]

#[cfg(feature = "count-allocations")]
mod allocations;
mod host;

use std::cell::OnceCell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType};

use external_service_model::config::{self, Filter};
use external_service_model::contract::{
    self, DENIED_HEADER, REQUESTED_AUTHORITY_PROPERTY, VM_MEMORY_METRIC,
};
use external_service_model::decision::{self, Decision, Denial, Request};

/// How often the VM's linear memory size is published (`VM_MEMORY_METRIC`).
const MEMORY_REPORT_PERIOD: Duration = Duration::from_secs(10);

proxy_wasm::main! {{
    // Installs the logger and a panic hook that logs; `on_configure` lowers the level to Envoy's.
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// The configured filter and its metric ids, shared by every stream of the VM. Forwarded and
/// passed-through requests have no counter here: each goes to its own cluster, whose stats
/// (`cluster.<name>.upstream_rq_*`) Envoy keeps anyway.
struct Configured {
    filter: Filter,
    denied: [u32; Denial::ALL_REASONS.len()],
    /// `%RESPONSE_CODE_DETAILS%` of each reason's local reply.
    denied_details: [String; Denial::ALL_REASONS.len()],
    vm_memory: u32,
}

#[derive(Default)]
struct Root {
    configured: Option<Rc<Configured>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        follow_host_log_level();
        let bytes = self.get_plugin_configuration().unwrap_or_default();
        match config::configure(&bytes) {
            Ok(filter) => match define_metrics(filter) {
                Ok(configured) => {
                    log::info!(
                        "external-service filter: {} services of mesh {:?}, passthrough {}",
                        configured.filter.catalog.services.len(),
                        configured.filter.catalog.mesh,
                        if configured.filter.catalog.passthrough {
                            "on"
                        } else {
                            "off"
                        }
                    );
                    report_memory(configured.vm_memory);
                    self.configured = Some(Rc::new(configured));
                    self.set_tick_period(MEMORY_REPORT_PERIOD);
                    true
                }
                Err(e) => {
                    log::error!("external-service filter: cannot define metrics: {e:?}");
                    false
                }
            },
            Err(e) => {
                for line in e.lines() {
                    log::error!("{line}");
                }
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let configured = Rc::clone(self.configured.as_ref()?);
        Some(Box::new(Stream { configured }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn on_tick(&mut self) {
        if let Some(configured) = &self.configured {
            report_memory(configured.vm_memory);
        }
    }
}

/// A soak can watch this gauge to see that requests leave the VM's memory flat.
fn report_memory(gauge: u32) {
    let bytes = core::arch::wasm32::memory_size(0) * 65536;
    let _ = hostcalls::record_metric(gauge, bytes as u64);
}

/// Formatting a debug line costs even when Envoy drops it: let `log` skip it up front.
fn follow_host_log_level() {
    let level = match hostcalls::get_log_level() {
        Ok(LogLevel::Trace) => log::LevelFilter::Trace,
        Ok(LogLevel::Debug) => log::LevelFilter::Debug,
        Ok(LogLevel::Info) => log::LevelFilter::Info,
        Ok(LogLevel::Warn) => log::LevelFilter::Warn,
        Ok(LogLevel::Error | LogLevel::Critical) | Err(_) => log::LevelFilter::Error,
    };
    log::set_max_level(level);
}

fn define_metrics(filter: Filter) -> Result<Configured, proxy_wasm::types::Status> {
    let mut denied = [0; Denial::ALL_REASONS.len()];
    for (id, reason) in denied.iter_mut().zip(Denial::ALL_REASONS) {
        *id = hostcalls::define_metric(MetricType::Counter, &contract::denied_metric(reason))?;
    }
    let vm_memory = hostcalls::define_metric(MetricType::Gauge, VM_MEMORY_METRIC)?;
    Ok(Configured {
        filter,
        denied,
        denied_details: Denial::ALL_REASONS.map(contract::denied_details),
        vm_memory,
    })
}

struct Stream {
    configured: Rc<Configured>,
}

impl Context for Stream {}

/// The request as the decision sees it; the content-type is read only if asked for.
struct Headers<'s> {
    stream: &'s Stream,
    authority: Option<String>,
    content_type: OnceCell<Option<String>>,
}

impl Request for Headers<'_> {
    fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }

    fn content_type(&self) -> Option<&str> {
        self.content_type
            .get_or_init(|| request_header(self.stream, "content-type"))
            .as_deref()
    }
}

/// A request header as text. The SDK's `get_http_request_header` panics on bytes that are
/// not UTF-8; here they become U+FFFD, which no rule accepts.
fn request_header(stream: &Stream, name: &str) -> Option<String> {
    let bytes = stream.get_http_request_header_bytes(name)?;
    Some(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let configured = Rc::clone(&self.configured);
        let filter = &configured.filter;
        let request = Headers {
            stream: self,
            authority: request_header(self, ":authority"),
            content_type: OnceCell::new(),
        };
        match decision::decide(&filter.catalog, filter.bound, &request) {
            Decision::Forward(_, service) => {
                log::debug!(
                    "forward {:?} to service {:?} as {:?}",
                    request.authority(),
                    service.name,
                    service.authority
                );
                // The service is the route's name and the cluster in the access log, and the
                // cluster's stats count it: only a changed authority needs the filter. Envoy
                // picks the route again after a filter changes a request header, so the route
                // for the real authority applies (proven end to end in
                // envoy-configs/tests/all/e2e.rs).
                match request.authority() {
                    Some(requested) if requested == service.authority => {}
                    requested => {
                        self.set_http_request_header(":authority", Some(&service.authority));
                        // What Envoy no longer knows after the rewrite: the name the app used.
                        if let Some(requested) = requested {
                            host::set_property(REQUESTED_AUTHORITY_PROPERTY, requested.as_bytes());
                        }
                    }
                }
                Action::Continue
            }
            Decision::Passthrough => {
                log::debug!("passthrough {:?}", request.authority());
                Action::Continue
            }
            Decision::Deny(denial) => {
                let body = denial.body(&filter.catalog, &request);
                log::info!("denied ({}): {}", denial.reason(), body.trim_end());
                let reason = denial.reason_index();
                let _ = hostcalls::increment_metric(configured.denied[reason], 1);
                host::send_local_response(
                    denial.status(),
                    &configured.denied_details[reason],
                    &[
                        (DENIED_HEADER, denial.reason()),
                        ("content-type", "text/plain; charset=utf-8"),
                    ],
                    body.as_bytes(),
                );
                Action::Pause
            }
        }
    }
}
