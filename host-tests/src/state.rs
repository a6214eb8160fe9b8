//! Everything the host remembers for one plugin instance; lives in `Store<HostState>`.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::abi::{LogLevel, MapType, MetricType};

/// An ordered header map that may hold a name more than once.
pub type HeaderMap = Vec<(String, String)>;

/// A stream's header map as the host keeps it: values are bytes, as in Envoy, so a test can
/// hand the module a value that is not UTF-8.
pub(crate) type RawHeaderMap = Vec<(String, Vec<u8>)>;

/// Property values by path segments (`["xds", "cluster_name"]`).
pub(crate) type Properties = BTreeMap<Vec<String>, Vec<u8>>;

/// One line the module logged, through `proxy_log` or by writing to stdout/stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub level: LogLevel,
    pub message: String,
}

/// A response the module asked the host to send instead of forwarding the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    pub body: Vec<u8>,
    pub headers: HeaderMap,
    /// The `status_code_details` argument (`%RESPONSE_CODE_DETAILS%` in Envoy; may be empty).
    pub details: String,
    /// `-1` when the response is not a gRPC one.
    pub grpc_status: i32,
}

impl LocalResponse {
    /// The body as text (lossy), for assertions.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A metric the module defined, with its current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metric {
    pub name: String,
    pub kind: MetricType,
    pub value: MetricValue,
}

/// The value of a [`Metric`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricValue {
    Counter(u64),
    Gauge(u64),
    /// Every recorded sample, in order.
    Histogram(Vec<u64>),
}

#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub request_headers: RawHeaderMap,
    pub request_trailers: RawHeaderMap,
    pub response_headers: RawHeaderMap,
    pub response_trailers: RawHeaderMap,
    pub local_response: Option<LocalResponse>,
    /// Properties the module set while this stream was active: Envoy keeps them in the
    /// request's filter state, not beside the plugin.
    pub properties: Properties,
    /// `proxy_on_done` returned false and `proxy_done` was not called yet.
    pub awaiting_done: bool,
    /// `proxy_done` was called while `awaiting_done`.
    pub done_signalled: bool,
    pub deleted: bool,
}

impl StreamState {
    pub fn map_mut(&mut self, map: MapType) -> &mut RawHeaderMap {
        match map {
            MapType::RequestHeaders => &mut self.request_headers,
            MapType::RequestTrailers => &mut self.request_trailers,
            MapType::ResponseHeaders => &mut self.response_headers,
            MapType::ResponseTrailers => &mut self.response_trailers,
        }
    }
}

pub(crate) struct HostState {
    pub log_level: LogLevel,
    pub echo_logs: bool,
    pub logs: Vec<LogEntry>,
    /// Unterminated output on fd 1 and fd 2.
    pub stdio_partial: [Vec<u8>; 2],
    pub vm_configuration: Vec<u8>,
    pub plugin_configuration: Vec<u8>,
    /// Pre-set properties, and those set outside any stream.
    pub properties: Properties,
    /// Index + 1 is the metric id handed to the module.
    pub metrics: Vec<Metric>,
    /// Position in `metrics` by name and kind, so defining 10,000 metrics stays linear.
    pub metric_index: HashMap<(String, MetricType), usize>,
    pub foreign_answers: HashMap<String, Vec<u8>>,
    pub foreign_calls: Vec<(String, Vec<u8>)>,
    pub root_context: u32,
    /// The context host calls act on: the callee of the current callback, or what
    /// `proxy_set_effective_context` chose.
    pub active_context: u32,
    pub streams: BTreeMap<u32, StreamState>,
    pub tick_period_ms: u32,
    pub fixed_time_nanos: Option<u64>,
    pub rng: u64,
}

impl HostState {
    pub fn log(&mut self, level: LogLevel, message: String) {
        if self.echo_logs {
            // Captured by the test harness: shows up next to a failing test only.
            eprintln!("[wasm {level:?}] {message}");
        }
        self.logs.push(LogEntry { level, message });
    }

    pub fn now_nanos(&self) -> u64 {
        self.fixed_time_nanos.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0)
        })
    }

    /// xorshift64: deterministic bytes for `random_get`, so runs repeat exactly.
    pub fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }

    pub fn active_stream(&mut self) -> Option<&mut StreamState> {
        let id = self.active_context;
        self.streams.get_mut(&id)
    }

    pub fn metric_mut(&mut self, id: u32) -> Option<&mut Metric> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.metrics.get_mut(index)
    }

    /// Appends `bytes` written to fd 1 or 2; whole lines become log entries.
    pub fn write_stdio(&mut self, fd: usize, bytes: &[u8]) {
        let level = stdio_level(fd);
        let Some(partial) = self.stdio_partial.get_mut(fd - 1) else {
            return;
        };
        partial.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(nl) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=nl).collect();
            lines.push(String::from_utf8_lossy(&line[..nl]).into_owned());
        }
        for line in lines {
            self.log(level, line);
        }
    }

    /// Turns unterminated stdout/stderr output into log entries (e.g. before a trap is reported).
    pub fn flush_stdio(&mut self) {
        for fd in 1..=2 {
            if self.stdio_partial[fd - 1].is_empty() {
                continue;
            }
            let rest = std::mem::take(&mut self.stdio_partial[fd - 1]);
            self.log(stdio_level(fd), String::from_utf8_lossy(&rest).into_owned());
        }
    }
}

/// What a line on stdout (fd 1) or stderr (fd 2) is logged as.
fn stdio_level(fd: usize) -> LogLevel {
    if fd == 1 {
        LogLevel::Info
    } else {
        LogLevel::Error
    }
}

pub(crate) fn find_header<'a>(map: &'a HeaderMap, name: &str) -> Option<&'a str> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A raw header map as text (lossy), for the string-typed accessors.
pub(crate) fn lossy_map(map: &RawHeaderMap) -> HeaderMap {
    map.iter()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect()
}

/// The first value of header `name` (ASCII case-insensitive) as text (lossy).
pub(crate) fn header_text(map: &RawHeaderMap, name: &str) -> Option<String> {
    map.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}
