//! Loading a module once and running plugin instances of it, one `Store` each.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use external_service_model::contract::{
    ALLOCATIONS_EXPORT, ALLOCATION_COUNTING_MODULE_PATH, MODULE_PATH,
};
use wasmtime::{Config, Engine, InstancePre, Store, WasmParams, WasmResults};

use crate::abi::{Action, LogLevel};
use crate::imports::linker_for;
use crate::state::{
    header_text, lossy_map, HostState, LocalResponse, LogEntry, Metric, MetricValue, StreamState,
};

const BUILD_HINT: &str = "build it with `make build` (or `cargo build --release --target wasm32-wasip1 -p external-service-filter`), or set EXTSVC_WASM to a built module";
const COUNTING_BUILD_HINT: &str = "build it with `make build` (or `cargo build --profile count-allocations --features count-allocations --target wasm32-wasip1 -p external-service-filter`)";

/// A compiled proxy-wasm module, ready to start any number of [`Plugin`]s.
///
/// Compiling is the slow part (seconds for the filter in a debug test build), so compile once
/// per process and clone (cheap: reference counted). Code is always compiled with fuel metering so
/// one compilation serves both plain runs and [`Plugin::fuel_consumed_by`].
#[derive(Clone)]
pub struct Module {
    pre: InstancePre<HostState>,
    path: Option<PathBuf>,
}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Module")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Module {
    /// Where the filter module is: `$EXTSVC_WASM`, else `<workspace>/`[`MODULE_PATH`].
    pub fn default_path() -> PathBuf {
        if let Some(path) = std::env::var_os("EXTSVC_WASM").filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        manifest.parent().unwrap_or(manifest).join(MODULE_PATH)
    }

    /// Loads and compiles the filter module from [`Module::default_path`].
    pub fn load_default() -> Result<Module> {
        Module::load(Module::default_path())
    }

    /// Loads and compiles the test build of the filter that counts its allocations
    /// (`<workspace>/`[`ALLOCATION_COUNTING_MODULE_PATH`]), for [`Plugin::allocations`].
    pub fn load_allocation_counting() -> Result<Module> {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
        let path = manifest
            .parent()
            .unwrap_or(manifest)
            .join(ALLOCATION_COUNTING_MODULE_PATH);
        Module::load_with_hint(&path, COUNTING_BUILD_HINT)
    }

    /// Loads and compiles a `.wasm` file; a missing file is an error that says how to build it.
    pub fn load(path: impl AsRef<Path>) -> Result<Module> {
        Module::load_with_hint(path.as_ref(), BUILD_HINT)
    }

    fn load_with_hint(path: &Path, hint: &str) -> Result<Module> {
        if !path.exists() {
            bail!("proxy-wasm module not found at {}: {hint}", path.display());
        }
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading the module {}", path.display()))?;
        let mut module = Module::from_binary(&bytes)
            .with_context(|| format!("compiling the module {}", path.display()))?;
        module.path = Some(path.to_path_buf());
        Ok(module)
    }

    /// Compiles a module from its binary form (e.g. `wat::parse_str(...)` output in tests).
    pub fn from_binary(bytes: &[u8]) -> Result<Module> {
        let mut config = Config::new();
        config.consume_fuel(true);
        // The module is already optimised by LLVM; this cuts the filter's compile time in a
        // debug test build from ~5.0 s to ~3.5 s.
        config.cranelift_opt_level(wasmtime::OptLevel::None);
        let engine = Engine::new(&config)?;
        let module = wasmtime::Module::new(&engine, bytes)?;
        let pre = linker_for(&module)?.instantiate_pre(&module)?;
        Ok(Module { pre, path: None })
    }

    /// The names the module exports, e.g. `proxy_on_request_headers`, in the module's order.
    pub fn exports(&self) -> Vec<String> {
        self.pre
            .module()
            .exports()
            .map(|e| e.name().to_owned())
            .collect()
    }

    /// The module's imports as `(module, name)`, e.g. `("env", "proxy_log")`.
    pub fn imports(&self) -> Vec<(String, String)> {
        self.pre
            .module()
            .imports()
            .map(|i| (i.module().to_owned(), i.name().to_owned()))
            .collect()
    }
}

/// How to start a [`Plugin`]: what Envoy would pass in its `wasm` filter config, plus test knobs.
#[derive(Debug, Clone)]
pub struct PluginOptions {
    /// The plugin configuration (`configuration` in Envoy), read in `proxy_on_configure`.
    pub configuration: Vec<u8>,
    /// The VM configuration (`vm_config.configuration`), read in `proxy_on_vm_start`.
    pub vm_configuration: Vec<u8>,
    /// What `proxy_get_log_level` answers. Every `proxy_log` call is recorded whatever the level.
    pub log_level: LogLevel,
    /// Properties readable through `proxy_get_property`, by path segments.
    pub properties: Vec<(Vec<String>, Vec<u8>)>,
    /// Answers of `proxy_call_foreign_function` by name; other names answer `NotFound`.
    pub foreign_functions: Vec<(String, Vec<u8>)>,
    /// Fuel the plugin may burn in total before it traps; `None`: unlimited (still measured).
    pub fuel_limit: Option<u64>,
    /// A fixed clock for `proxy_get_current_time_nanoseconds` and WASI clocks; `None`: real time.
    pub current_time_nanos: Option<u64>,
    /// Also print each log line to stderr (captured by the test harness; on by default).
    pub echo_logs: bool,
}

impl Default for PluginOptions {
    fn default() -> Self {
        PluginOptions {
            configuration: Vec::new(),
            vm_configuration: Vec::new(),
            log_level: LogLevel::Info,
            properties: Vec::new(),
            foreign_functions: Vec::new(),
            fuel_limit: None,
            current_time_nanos: None,
            echo_logs: true,
        }
    }
}

impl PluginOptions {
    /// Options with this plugin configuration.
    pub fn with_configuration(configuration: impl Into<Vec<u8>>) -> Self {
        PluginOptions::default().configuration(configuration)
    }

    pub fn configuration(mut self, configuration: impl Into<Vec<u8>>) -> Self {
        self.configuration = configuration.into();
        self
    }

    pub fn vm_configuration(mut self, vm_configuration: impl Into<Vec<u8>>) -> Self {
        self.vm_configuration = vm_configuration.into();
        self
    }

    pub fn log_level(mut self, level: LogLevel) -> Self {
        self.log_level = level;
        self
    }

    /// Pre-sets property `path` (e.g. `&["xds", "cluster_name"]`).
    pub fn property(mut self, path: &[&str], value: impl Into<Vec<u8>>) -> Self {
        self.properties.push((property_key(path), value.into()));
        self
    }

    /// Makes foreign function `name` exist and answer `result`.
    pub fn foreign_function(mut self, name: &str, result: impl Into<Vec<u8>>) -> Self {
        self.foreign_functions
            .push((name.to_owned(), result.into()));
        self
    }

    pub fn fuel_limit(mut self, fuel: u64) -> Self {
        self.fuel_limit = Some(fuel);
        self
    }

    pub fn current_time_nanos(mut self, nanos: u64) -> Self {
        self.current_time_nanos = Some(nanos);
        self
    }

    /// Do not echo log lines to stderr.
    pub fn quiet(mut self) -> Self {
        self.echo_logs = false;
        self
    }
}

/// One HTTP stream (an HTTP context in the module), made by [`Plugin::new_http_context`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HttpStream(u32);

impl HttpStream {
    /// The context id the module sees.
    pub fn context_id(self) -> u32 {
        self.0
    }
}

/// Why [`Plugin::start`] did not give a running plugin.
#[derive(Debug)]
pub enum StartFailure {
    /// `proxy_on_vm_start` returned false.
    VmStartRejected,
    /// `proxy_on_configure` returned false: the configuration was refused.
    ConfigureRejected,
    /// Loading, linking or a trap (panic, unimplemented host function, ...).
    Error(anyhow::Error),
}

/// A failed start, with everything the module logged until then.
#[derive(Debug)]
pub struct StartError {
    pub failure: StartFailure,
    pub logs: Vec<LogEntry>,
}

impl StartError {
    /// True when `proxy_on_configure` returned false (and nothing trapped).
    pub fn is_configure_rejected(&self) -> bool {
        matches!(self.failure, StartFailure::ConfigureRejected)
    }

    /// Messages logged at exactly `level`.
    pub fn logs(&self, level: LogLevel) -> Vec<String> {
        messages_at(&self.logs, level)
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.failure {
            StartFailure::VmStartRejected => write!(f, "proxy_on_vm_start returned false")?,
            StartFailure::ConfigureRejected => write!(f, "proxy_on_configure returned false")?,
            StartFailure::Error(e) => write!(f, "the plugin did not start: {e:#}")?,
        }
        write_log_tail(f, &self.logs)
    }
}

impl std::error::Error for StartError {}

/// A running plugin: one module instance, its root context and its HTTP streams, and the state
/// the host keeps for it (logs, metrics, properties, local responses...).
pub struct Plugin {
    store: Store<HostState>,
    instance: wasmtime::Instance,
    memory: Option<wasmtime::Memory>,
    next_context: u32,
    last_call_fuel: u64,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("root_context", &self.store.data().root_context)
            .finish_non_exhaustive()
    }
}

const ROOT_CONTEXT: u32 = 1;

impl Plugin {
    /// Instantiates `module`, runs `_initialize`, creates the root context, then calls
    /// `proxy_on_vm_start` and `proxy_on_configure`. Succeeds only if both returned true.
    pub fn start(module: &Module, options: PluginOptions) -> Result<Plugin, StartError> {
        let state = HostState {
            log_level: options.log_level,
            echo_logs: options.echo_logs,
            logs: Vec::new(),
            stdio_partial: [Vec::new(), Vec::new()],
            vm_configuration: options.vm_configuration,
            plugin_configuration: options.configuration,
            properties: options.properties.into_iter().collect::<BTreeMap<_, _>>(),
            metrics: Vec::new(),
            metric_index: HashMap::new(),
            foreign_answers: options.foreign_functions.into_iter().collect(),
            foreign_calls: Vec::new(),
            root_context: ROOT_CONTEXT,
            active_context: ROOT_CONTEXT,
            streams: BTreeMap::new(),
            tick_period_ms: 0,
            fixed_time_nanos: options.current_time_nanos,
            rng: 0x9E37_79B9_7F4A_7C15,
        };
        let mut store = Store::new(module.pre.module().engine(), state);
        let fail = |store: &Store<HostState>, e: anyhow::Error| StartError {
            failure: StartFailure::Error(e),
            logs: store.data().logs.clone(),
        };
        if let Err(e) = store.set_fuel(options.fuel_limit.unwrap_or(u64::MAX)) {
            return Err(fail(&store, e.into()));
        }
        let instance = match module.pre.instantiate(&mut store) {
            Ok(instance) => instance,
            Err(e) => {
                return Err(fail(
                    &store,
                    anyhow::Error::from(e).context("instantiating"),
                ))
            }
        };
        let memory = instance.get_memory(&mut store, "memory");
        let mut plugin = Plugin {
            store,
            instance,
            memory,
            next_context: ROOT_CONTEXT + 1,
            last_call_fuel: 0,
        };
        let outcome = plugin.boot();
        let logs = plugin.store.data().logs.clone();
        match outcome {
            Ok(None) => Ok(plugin),
            Ok(Some(failure)) => Err(StartError { failure, logs }),
            Err(e) => Err(StartError {
                failure: StartFailure::Error(e),
                logs,
            }),
        }
    }

    fn boot(&mut self) -> Result<Option<StartFailure>> {
        let exports: Vec<String> = self
            .instance
            .exports(&mut self.store)
            .map(|e| e.name().to_owned())
            .collect();
        if !exports
            .iter()
            .any(|e| e == "proxy_abi_version_0_2_1" || e == "proxy_abi_version_0_2_0")
        {
            bail!("the module exports neither proxy_abi_version_0_2_1 nor proxy_abi_version_0_2_0: not a proxy-wasm 0.2 module");
        }
        if exports.iter().any(|e| e == "_initialize") {
            self.call::<(), ()>(ROOT_CONTEXT, "_initialize", ())?;
        }
        self.callback::<(u32, u32), ()>(
            ROOT_CONTEXT,
            "proxy_on_context_create",
            (ROOT_CONTEXT, 0),
            (),
        )?;
        let vm_config = wasm_len(self.store.data().vm_configuration.len())?;
        let plugin_config = wasm_len(self.store.data().plugin_configuration.len())?;
        if self.callback::<(u32, u32), u32>(
            ROOT_CONTEXT,
            "proxy_on_vm_start",
            (ROOT_CONTEXT, vm_config),
            1,
        )? == 0
        {
            return Ok(Some(StartFailure::VmStartRejected));
        }
        if self.callback::<(u32, u32), u32>(
            ROOT_CONTEXT,
            "proxy_on_configure",
            (ROOT_CONTEXT, plugin_config),
            1,
        )? == 0
        {
            return Ok(Some(StartFailure::ConfigureRejected));
        }
        Ok(None)
    }

    /// Calls callback `name` as [`Plugin::call`] does if the module exports it; otherwise does
    /// what Envoy (proxy-wasm-cpp-host) does for a callback a module lacks: skips it, and takes
    /// `absent` as its answer (true for `proxy_on_vm_start`, `proxy_on_configure` and
    /// `proxy_on_done`, Continue for a headers callback).
    fn callback<P: WasmParams, R: WasmResults>(
        &mut self,
        context: u32,
        name: &str,
        args: P,
        absent: R,
    ) -> Result<R> {
        if self.instance.get_func(&mut self.store, name).is_none() {
            self.last_call_fuel = 0;
            return Ok(absent);
        }
        self.call(context, name, args)
    }

    /// Calls export `name` with `context` as the active context, recording the fuel it burnt;
    /// a trap becomes an error that quotes what the module logged during the call.
    fn call<P: WasmParams, R: WasmResults>(
        &mut self,
        context: u32,
        name: &str,
        args: P,
    ) -> Result<R> {
        let func = self
            .instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!("the module has no export {name} with the ABI 0.2.1 signature")
            })?;
        self.store.data_mut().active_context = context;
        let logs_before = self.store.data().logs.len();
        let fuel_before = self.store.get_fuel()?;
        let result = func.call(&mut self.store, args);
        self.last_call_fuel = fuel_before.saturating_sub(self.store.get_fuel()?);
        self.store.data_mut().active_context = ROOT_CONTEXT;
        result.map_err(|e| {
            let state = self.store.data_mut();
            state.flush_stdio();
            let mut during = String::new();
            for entry in state.logs.iter().skip(logs_before) {
                during.push_str(&format!("\n  [{:?}] {}", entry.level, entry.message));
            }
            if during.is_empty() {
                during.push_str(" nothing");
            }
            anyhow::Error::from(e).context(format!(
                "{name} (context {context}) trapped; the module logged during the call:{during}"
            ))
        })
    }

    /// Creates an HTTP context (`proxy_on_context_create(id, root_id)`).
    pub fn new_http_context(&mut self) -> Result<HttpStream> {
        self.new_http_context_of(ROOT_CONTEXT)
    }

    /// Creates an HTTP context that names `root` as its root context: one the module never
    /// saw unless `root` is the plugin's own (a host bug the module must survive).
    pub fn new_http_context_of(&mut self, root: u32) -> Result<HttpStream> {
        let id = self.next_context;
        self.next_context += 1;
        self.store
            .data_mut()
            .streams
            .insert(id, StreamState::default());
        self.callback::<(u32, u32), ()>(id, "proxy_on_context_create", (id, root), ())?;
        Ok(HttpStream(id))
    }

    /// Gives the stream these request headers and calls `proxy_on_request_headers`.
    pub fn call_on_request_headers(
        &mut self,
        stream: HttpStream,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Action> {
        let bytes: Vec<(&str, &[u8])> = headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
        self.call_on_request_headers_bytes(stream, &bytes, end_of_stream)
    }

    /// Like [`Plugin::call_on_request_headers`], with values given as bytes: a value need not
    /// be UTF-8 (Envoy passes header values to the module as raw bytes).
    pub fn call_on_request_headers_bytes(
        &mut self,
        stream: HttpStream,
        headers: &[(&str, &[u8])],
        end_of_stream: bool,
    ) -> Result<Action> {
        self.stream_mut(stream)?.request_headers = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect();
        self.call_on_headers(
            stream,
            "proxy_on_request_headers",
            headers.len(),
            end_of_stream,
        )
    }

    /// Gives the stream these response headers and calls `proxy_on_response_headers`.
    pub fn call_on_response_headers(
        &mut self,
        stream: HttpStream,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Action> {
        self.stream_mut(stream)?.response_headers = owned(headers);
        self.call_on_headers(
            stream,
            "proxy_on_response_headers",
            headers.len(),
            end_of_stream,
        )
    }

    /// Calls a headers callback (`proxy_on_request_headers` or `proxy_on_response_headers`)
    /// once the stream holds the headers.
    fn call_on_headers(
        &mut self,
        stream: HttpStream,
        callback: &str,
        count: usize,
        end_of_stream: bool,
    ) -> Result<Action> {
        let n = wasm_len(count)?;
        let action = self.callback::<(u32, u32, u32), u32>(
            stream.0,
            callback,
            (stream.0, n, u32::from(end_of_stream)),
            0,
        )?;
        Action::from_u32(action)
    }

    /// Ends the stream as Envoy does: `proxy_on_done`, then, if it returned true,
    /// `proxy_on_log` and `proxy_on_delete`. Returns whether the context was deleted (a module
    /// that returns false from `proxy_on_done` waits for `proxy_done`, which this host does not
    /// drive further).
    pub fn complete_http_stream(&mut self, stream: HttpStream) -> Result<bool> {
        self.stream_mut(stream)?;
        let done = self.callback::<u32, u32>(stream.0, "proxy_on_done", stream.0, 1)?;
        if done == 0 {
            self.stream_mut(stream)?.awaiting_done = true;
            return Ok(false);
        }
        self.callback::<u32, ()>(stream.0, "proxy_on_log", stream.0, ())?;
        self.callback::<u32, ()>(stream.0, "proxy_on_delete", stream.0, ())?;
        self.stream_mut(stream)?.deleted = true;
        Ok(true)
    }

    /// Calls `proxy_on_tick` on the root context.
    pub fn call_on_tick(&mut self) -> Result<()> {
        self.call_on_tick_of(ROOT_CONTEXT)
    }

    /// Creates another root context in the same VM and configures it with `configuration`, as
    /// Envoy does for each plugin of one `vm_id` (each VIP listener of the transparent proxy);
    /// its id, and whether `proxy_on_configure` accepted it. The plugin's own configuration is
    /// what the host hands over again afterwards.
    pub fn new_root_context(&mut self, configuration: impl Into<Vec<u8>>) -> Result<(u32, bool)> {
        let id = self.next_context;
        self.next_context += 1;
        self.callback::<(u32, u32), ()>(id, "proxy_on_context_create", (id, 0), ())?;
        let own = std::mem::replace(
            &mut self.store.data_mut().plugin_configuration,
            configuration.into(),
        );
        let size = wasm_len(self.store.data().plugin_configuration.len());
        let accepted = size.and_then(|size| {
            self.callback::<(u32, u32), u32>(id, "proxy_on_configure", (id, size), 1)
        });
        self.store.data_mut().plugin_configuration = own;
        Ok((id, accepted? != 0))
    }

    /// Calls `proxy_on_tick` on root context `root`.
    pub fn call_on_tick_of(&mut self, root: u32) -> Result<()> {
        self.callback::<u32, ()>(root, "proxy_on_tick", root, ())
    }

    fn stream_mut(&mut self, stream: HttpStream) -> Result<&mut StreamState> {
        self.store
            .data_mut()
            .streams
            .get_mut(&stream.0)
            .with_context(|| format!("no HTTP stream with context id {}", stream.0))
    }

    fn stream(&self, stream: HttpStream) -> Option<&StreamState> {
        self.store.data().streams.get(&stream.0)
    }

    /// The request headers as the module left them.
    pub fn current_request_headers(&self, stream: HttpStream) -> Vec<(String, String)> {
        self.stream(stream)
            .map(|s| lossy_map(&s.request_headers))
            .unwrap_or_default()
    }

    /// The first request header `name` (ASCII case-insensitive), as the module left it.
    pub fn request_header(&self, stream: HttpStream, name: &str) -> Option<String> {
        let s = self.stream(stream)?;
        header_text(&s.request_headers, name)
    }

    /// The response headers as the module left them.
    pub fn current_response_headers(&self, stream: HttpStream) -> Vec<(String, String)> {
        self.stream(stream)
            .map(|s| lossy_map(&s.response_headers))
            .unwrap_or_default()
    }

    /// The first response header `name` (ASCII case-insensitive), as the module left it.
    pub fn response_header(&self, stream: HttpStream, name: &str) -> Option<String> {
        let s = self.stream(stream)?;
        header_text(&s.response_headers, name)
    }

    /// The local response the module sent on this stream (the last one if several).
    pub fn sent_local_response(&self, stream: HttpStream) -> Option<LocalResponse> {
        self.stream(stream)?.local_response.clone()
    }

    /// Whether `proxy_on_delete` ran for the stream.
    pub fn http_stream_deleted(&self, stream: HttpStream) -> bool {
        self.stream(stream).is_some_and(|s| s.deleted)
    }

    /// Messages logged at exactly `level` (stdout lines are `Info`, stderr lines `Error`).
    pub fn logs(&self, level: LogLevel) -> Vec<String> {
        messages_at(&self.store.data().logs, level)
    }

    /// Every log entry, in order.
    pub fn all_logs(&self) -> &[LogEntry] {
        &self.store.data().logs
    }

    /// Forgets the logs so far (e.g. after start, to look at one request's logs).
    pub fn clear_logs(&mut self) {
        self.store.data_mut().logs.clear();
    }

    /// The value of counter `name`, if the module defined it.
    pub fn counter(&self, name: &str) -> Option<u64> {
        self.metric(name).and_then(|m| match m.value {
            MetricValue::Counter(v) => Some(v),
            _ => None,
        })
    }

    /// The value of gauge `name`, if the module defined it.
    pub fn gauge(&self, name: &str) -> Option<u64> {
        self.metric(name).and_then(|m| match m.value {
            MetricValue::Gauge(v) => Some(v),
            _ => None,
        })
    }

    /// The samples recorded in histogram `name`, if the module defined it.
    pub fn histogram(&self, name: &str) -> Option<Vec<u64>> {
        self.metric(name).and_then(|m| match &m.value {
            MetricValue::Histogram(v) => Some(v.clone()),
            _ => None,
        })
    }

    fn metric(&self, name: &str) -> Option<&Metric> {
        self.store.data().metrics.iter().find(|m| m.name == name)
    }

    /// Every metric the module defined, in definition order.
    pub fn metrics(&self) -> &[Metric] {
        &self.store.data().metrics
    }

    /// Property `path` as pre-set, or as the module set it outside any stream.
    pub fn property(&self, path: &[&str]) -> Option<Vec<u8>> {
        self.store
            .data()
            .properties
            .get(&property_key(path))
            .cloned()
    }

    /// Property `path` as the module set it on this stream (in Envoy, the request's filter
    /// state, e.g. `contract::REQUESTED_AUTHORITY_PROPERTY`).
    pub fn stream_property(&self, stream: HttpStream, path: &[&str]) -> Option<Vec<u8>> {
        self.stream(stream)?
            .properties
            .get(&property_key(path))
            .cloned()
    }

    /// Sets property `path` for the calls that follow.
    pub fn set_property(&mut self, path: &[&str], value: impl Into<Vec<u8>>) {
        self.store
            .data_mut()
            .properties
            .insert(property_key(path), value.into());
    }

    /// Every `proxy_call_foreign_function` call as (name, arguments), known names or not.
    pub fn foreign_calls(&self) -> &[(String, Vec<u8>)] {
        &self.store.data().foreign_calls
    }

    /// Makes foreign function `name` exist and answer `result` from now on.
    pub fn set_foreign_function(&mut self, name: &str, result: impl Into<Vec<u8>>) {
        self.store
            .data_mut()
            .foreign_answers
            .insert(name.to_owned(), result.into());
    }

    /// The period set by `proxy_set_tick_period_milliseconds` (0: none).
    pub fn tick_period_ms(&self) -> u32 {
        self.store.data().tick_period_ms
    }

    /// Fixes the clock the module sees from now on.
    pub fn set_current_time_nanos(&mut self, nanos: u64) {
        self.store.data_mut().fixed_time_nanos = Some(nanos);
    }

    /// Changes what `proxy_get_log_level` answers.
    pub fn set_log_level(&mut self, level: LogLevel) {
        self.store.data_mut().log_level = level;
    }

    /// The size of the module's linear memory in bytes (it only grows: use it to spot leaks
    /// over many requests).
    pub fn memory_size_bytes(&self) -> usize {
        self.memory.map_or(0, |m| m.data_size(&self.store))
    }

    /// Fuel (roughly: wasm instructions) the last call into the module burnt; deterministic for
    /// a given module and input, unlike time.
    pub fn last_call_fuel(&self) -> u64 {
        self.last_call_fuel
    }

    /// How many allocations the module has made since it started, read through its export
    /// [`ALLOCATIONS_EXPORT`] (only the filter's `count-allocations` build has it).
    pub fn allocations(&mut self) -> Result<u64> {
        if self
            .instance
            .get_func(&mut self.store, ALLOCATIONS_EXPORT)
            .is_none()
        {
            bail!("the module does not export {ALLOCATIONS_EXPORT}: {COUNTING_BUILD_HINT}");
        }
        self.call::<(), u64>(ROOT_CONTEXT, ALLOCATIONS_EXPORT, ())
    }

    /// Runs `f` and returns its result with the fuel every call it made burnt in total.
    pub fn fuel_consumed_by<T>(
        &mut self,
        f: impl FnOnce(&mut Plugin) -> Result<T>,
    ) -> Result<(T, u64)> {
        let before = self.store.get_fuel()?;
        let value = f(self)?;
        Ok((value, before.saturating_sub(self.store.get_fuel()?)))
    }
}

fn property_key(path: &[&str]) -> Vec<String> {
    path.iter().map(|s| (*s).to_owned()).collect()
}

fn owned(headers: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

fn wasm_len(len: usize) -> Result<u32> {
    u32::try_from(len).context("length does not fit a wasm32 size_t")
}

fn messages_at(logs: &[LogEntry], level: LogLevel) -> Vec<String> {
    logs.iter()
        .filter(|e| e.level == level)
        .map(|e| e.message.clone())
        .collect()
}

fn write_log_tail(f: &mut fmt::Formatter<'_>, logs: &[LogEntry]) -> fmt::Result {
    if logs.is_empty() {
        return write!(f, " (the module logged nothing)");
    }
    write!(f, "; the module logged:")?;
    for entry in logs {
        write!(f, "\n  [{:?}] {}", entry.level, entry.message)?;
    }
    Ok(())
}
