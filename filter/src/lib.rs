//! The filter module: the only proxy-wasm code. It moves bytes between Envoy and the model's
//! decision (`external_service_model::decide`) and applies what it says.
//!
//! The module speaks the proxy-wasm ABI 0.2.1 itself and exports only the callbacks it needs
//! (below, and `tests/filter_module.rs` of host-tests holds the list): Envoy skips a callback
//! a module does not export, and each one it calls is a trip into the VM on every request.
//! So there is no `proxy_on_response_headers`, `_body`, `proxy_on_log`, `proxy_on_done` (Envoy
//! treats a missing one as done, then deletes the context) or `proxy_on_delete` (the module
//! keeps nothing per stream: [`Contexts`]).
// Only the wasm32 build is a module; elsewhere (a native `cargo build --workspace`) it is empty.
#![cfg(target_arch = "wasm32")]

#[cfg(feature = "count-allocations")]
mod allocations;
mod host;

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use rustc_hash::FxHashMap;

use external_service_model::config::{self, Filter};
use external_service_model::contract::{
    self, LogLevel, DENIED_HEADER, REQUESTED_AUTHORITY_PROPERTY, UNCONFIGURED_DETAILS,
    VM_MEMORY_METRIC,
};
use external_service_model::decision::{self, Decision, Denial, Request};
use external_service_model::mesh_passthrough::PassthroughMode;

use host::MetricType;

/// How often the VM's linear memory size is published (`VM_MEMORY_METRIC`).
const MEMORY_REPORT_PERIOD: Duration = Duration::from_secs(10);

/// What a headers callback tells the host (`proxy_action_t`).
#[repr(u32)]
pub enum Action {
    Continue = 0,
    /// Stop iteration: the filter answered with a local reply.
    Pause = 1,
}

/// The configured filter and its metric ids, shared by every stream of its root context.
/// Forwarded and passed-through requests have no counter here: each goes to its own cluster,
/// whose stats (`cluster.<name>.upstream_rq_*`) Envoy keeps anyway.
struct Configured {
    filter: Filter,
    denied: [u32; Denial::ALL_REASONS.len()],
    /// `%RESPONSE_CODE_DETAILS%` of each reason's local reply.
    denied_details: [String; Denial::ALL_REASONS.len()],
    vm_memory: u32,
}

/// The VM's contexts. One VM holds several root contexts (one per plugin configuration: each
/// VIP listener of the transparent proxy has its own, bound to one service); each stream
/// belongs to one of them.
///
/// The module exports no `proxy_on_delete`, which Envoy would call once more per request: it
/// keeps nothing per stream. Envoy creates a stream's context in the same call that hands the
/// module its request headers (`Context::decodeHeaders`: `onCreate()`, then
/// `onRequestHeaders()`, on one thread), and the filter needs the stream's root only then, so
/// the last stream created is the one whose headers come next. A root context Envoy deletes
/// stops ticking (Envoy ticks only live root contexts), and is forgotten once the roots have
/// ticked [`STALE_TICKS`] times per root since it last did.
#[derive(Default)]
struct Contexts {
    /// Root context id -> its root.
    roots: FxHashMap<u32, Root>,
    /// The stream context Envoy created last, and its root context.
    last_stream: Option<(u32, u32)>,
    /// Ticks of every root context so far.
    ticks: u64,
}

/// A root context: its configuration, once `proxy_on_configure` accepted one, and the tick
/// count when it was created or last ticked.
struct Root {
    configured: Option<Rc<Configured>>,
    seen_at: u64,
}

/// A root context is forgotten when the others have ticked this many times per root since it
/// last did: a live one ticks once a period like the others, so it is never more than about one
/// tick per root behind; one Envoy deleted falls behind without end.
const STALE_TICKS: u64 = 3;

impl Contexts {
    fn root_mut(&mut self, id: u32) -> &mut Root {
        let seen_at = self.ticks;
        self.roots.entry(id).or_insert(Root {
            configured: None,
            seen_at,
        })
    }

    fn configured(&self, root: u32) -> Option<Rc<Configured>> {
        self.roots.get(&root)?.configured.clone()
    }

    /// The root of the stream whose request headers Envoy hands over: the last one created.
    fn root_of(&self, stream: u32) -> Option<u32> {
        match self.last_stream {
            Some((last, root)) if last == stream => Some(root),
            _ => None,
        }
    }

    /// Counts `root`'s tick; once per round of every root, forgets the roots left behind.
    /// False for a root already forgotten: it was live after all, and its streams are now
    /// answered 500 (its configuration is gone).
    fn ticked(&mut self, root: u32) -> bool {
        self.ticks += 1;
        let ticks = self.ticks;
        let Some(known) = self.roots.get_mut(&root) else {
            return false;
        };
        known.seen_at = ticks;
        let roots = self.roots.len() as u64;
        if ticks.is_multiple_of(roots) {
            self.roots
                .retain(|_, r| ticks - r.seen_at <= STALE_TICKS * roots);
        }
        true
    }
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = RefCell::new(Contexts::default());
}

/// `log` records go to Envoy's log (`proxy_log`), at the same level.
struct HostLog;

impl log::Log for HostLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        match record.args().as_str() {
            Some(text) => host::log(level, text),
            None => host::log(level, &record.args().to_string()),
        }
    }

    fn flush(&self) {}
}

static HOST_LOG: HostLog = HostLog;

/// Called once when the VM starts (the WASI reactor entry point; a Rust cdylib has none of its
/// own): the logger, at trace until `proxy_on_configure` lowers it to Envoy's level, and a
/// panic hook that puts the panic in Envoy's log (the module aborts right after).
#[no_mangle]
pub extern "C" fn _initialize() {
    if log::set_logger(&HOST_LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
        std::panic::set_hook(Box::new(|panic| {
            host::log(LogLevel::Critical, &panic.to_string());
        }));
    }
}

#[no_mangle]
pub extern "C" fn proxy_abi_version_0_2_1() {}

/// The host writes a buffer it hands the module (a header value, the configuration) into
/// memory it asks for here; `host::take_buffer` takes it over as the `Vec` it is.
#[no_mangle]
pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
    let mut buffer = std::mem::ManuallyDrop::new(Vec::<u8>::with_capacity(size));
    buffer.as_mut_ptr()
}

#[no_mangle]
pub extern "C" fn proxy_on_vm_start(_root: u32, _vm_configuration_size: usize) -> u32 {
    1
}

/// A root context (`parent` 0) or a stream of root `parent`.
#[no_mangle]
pub extern "C" fn proxy_on_context_create(context: u32, parent: u32) {
    CONTEXTS.with_borrow_mut(|contexts| {
        if parent == 0 {
            contexts.root_mut(context);
        } else {
            contexts.last_stream = Some((context, parent));
        }
    });
}

/// False (Envoy then refuses the configuration) when the resources are not valid.
/// What leaves undeclared, for the configure log line.
fn passthrough_summary(catalog: &external_service_model::Catalog) -> String {
    match &catalog.mesh_passthrough {
        Some(policy) if catalog.passthrough && policy.mode == PassthroughMode::Matched => format!(
            "matched ({} MeshPassthrough matches)",
            policy.table.matches().len()
        ),
        _ if catalog.passthrough => "on".to_string(),
        _ => "off".to_string(),
    }
}

#[no_mangle]
pub extern "C" fn proxy_on_configure(root: u32, _plugin_configuration_size: usize) -> u32 {
    follow_host_log_level();
    let bytes = host::plugin_configuration();
    let configured = match config::configure(&bytes) {
        Ok(filter) => match define_metrics(filter) {
            Ok(configured) => configured,
            Err(e) => {
                log::error!("external-service filter: cannot define metrics: {e:?}");
                return 0;
            }
        },
        Err(e) => {
            for line in e.lines() {
                log::error!("{line}");
            }
            return 0;
        }
    };
    log::info!(
        "external-service filter: {} services of mesh {:?}, passthrough {}",
        configured.filter.catalog.services.len(),
        configured.filter.catalog.mesh,
        passthrough_summary(&configured.filter.catalog)
    );
    report_memory(configured.vm_memory);
    CONTEXTS
        .with_borrow_mut(|contexts| contexts.root_mut(root).configured = Some(Rc::new(configured)));
    let period = u32::try_from(MEMORY_REPORT_PERIOD.as_millis()).unwrap_or(u32::MAX);
    host::set_tick_period_milliseconds(period);
    1
}

#[no_mangle]
pub extern "C" fn proxy_on_tick(root: u32) {
    let (known, configured) =
        CONTEXTS.with_borrow_mut(|contexts| (contexts.ticked(root), contexts.configured(root)));
    if !known {
        log::error!(
            "external-service filter: root context {root} ticked after it was taken for deleted; its requests are answered 500"
        );
    }
    if let Some(configured) = configured {
        report_memory(configured.vm_memory);
    }
}

/// A soak can watch this gauge to see that requests leave the VM's memory flat.
fn report_memory(gauge: u32) {
    let bytes = core::arch::wasm32::memory_size(0) * 65536;
    let _ = host::record_metric(gauge, bytes as u64);
}

/// Formatting a debug line costs even when Envoy drops it: let `log` skip it up front.
fn follow_host_log_level() {
    let level = match host::log_level() {
        Some(LogLevel::Trace) => log::LevelFilter::Trace,
        Some(LogLevel::Debug) => log::LevelFilter::Debug,
        Some(LogLevel::Info) => log::LevelFilter::Info,
        Some(LogLevel::Warn) => log::LevelFilter::Warn,
        Some(LogLevel::Error | LogLevel::Critical) | None => log::LevelFilter::Error,
    };
    log::set_max_level(level);
}

fn define_metrics(filter: Filter) -> Result<Configured, host::Status> {
    let mut denied = [0; Denial::ALL_REASONS.len()];
    for (id, reason) in denied.iter_mut().zip(Denial::ALL_REASONS) {
        *id = host::define_metric(MetricType::Counter, &contract::denied_metric(reason))?;
    }
    let vm_memory = host::define_metric(MetricType::Gauge, VM_MEMORY_METRIC)?;
    Ok(Configured {
        filter,
        denied,
        denied_details: Denial::ALL_REASONS.map(contract::denied_details),
        vm_memory,
    })
}

/// The request as the decision sees it; the content-type and method are read only if asked
/// for.
struct Headers {
    authority: Option<String>,
    content_type: OnceCell<Option<String>>,
    method: OnceCell<Option<String>>,
}

impl Request for Headers {
    fn authority(&self) -> Option<&str> {
        self.authority.as_deref()
    }

    fn content_type(&self) -> Option<&str> {
        self.content_type
            .get_or_init(|| request_header("content-type"))
            .as_deref()
    }

    fn is_connect(&self) -> bool {
        self.method
            .get_or_init(|| request_header(":method"))
            .as_deref()
            == Some("CONNECT")
    }
}

/// A request header as text: bytes that are not UTF-8 become U+FFFD, which no rule accepts.
/// The host-written buffer becomes the `String` in place when it is valid UTF-8.
fn request_header(name: &str) -> Option<String> {
    let bytes = host::request_header(name)?;
    Some(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

#[no_mangle]
pub extern "C" fn proxy_on_request_headers(stream: u32, _headers: u32, _end: u32) -> Action {
    let configured =
        CONTEXTS.with_borrow(|contexts| contexts.configured(contexts.root_of(stream)?));
    match configured {
        Some(configured) => configured.on_http_request_headers(),
        None => unconfigured(stream),
    }
}

/// A stream of no known root context, or of one without a configuration, or whose headers do
/// not follow its creation (not Envoy's order): never forwarded open, answered as a filter
/// failure.
#[cold]
fn unconfigured(stream: u32) -> Action {
    log::error!("external-service filter: stream {stream} has no configuration; answered 500");
    host::send_local_response(
        500,
        UNCONFIGURED_DETAILS,
        &[("content-type", "text/plain; charset=utf-8")],
        b"external-service filter: no configuration for this request\n",
    );
    Action::Pause
}

impl Configured {
    fn on_http_request_headers(&self) -> Action {
        let filter = &self.filter;
        let request = Headers {
            authority: request_header(":authority"),
            content_type: OnceCell::new(),
            method: OnceCell::new(),
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
                // envoy-configs/tests/all/e2e/names.rs).
                let requested = request.authority();
                if service.rewrites(requested) {
                    host::set_request_header(":authority", &service.authority);
                }
                if let Some(requested) = requested.filter(|_| service.keeps_requested(requested)) {
                    host::set_property(REQUESTED_AUTHORITY_PROPERTY, requested.as_bytes());
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
                let _ = host::increment_metric(self.denied[reason], 1);
                host::send_local_response(
                    denial.status(),
                    &self.denied_details[reason],
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
