//! Every host call the filter makes: the `env.proxy_*` imports of the proxy-wasm ABI 0.2.1 it
//! uses, declared here and nowhere else, each behind a safe wrapper. The module exports its own
//! callbacks (lib.rs); only these imports are linked.

use std::ptr;

use external_service_model::contract::LogLevel;

/// `proxy_status_t`, as the host returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    NotFound,
    BadArgument,
    SerializationFailure,
    ParseFailure,
    Empty,
    CasMismatch,
    InternalFailure,
    Unimplemented,
    Other(u32),
}

impl Status {
    fn from_raw(raw: u32) -> Status {
        match raw {
            0 => Status::Ok,
            1 => Status::NotFound,
            2 => Status::BadArgument,
            3 => Status::SerializationFailure,
            4 => Status::ParseFailure,
            7 => Status::Empty,
            8 => Status::CasMismatch,
            10 => Status::InternalFailure,
            12 => Status::Unimplemented,
            other => Status::Other(other),
        }
    }
}

/// `proxy_metric_type_t`.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
}

/// `proxy_map_type_t` of the request headers.
const REQUEST_HEADERS: u32 = 0;
/// `proxy_buffer_type_t` of the plugin configuration.
const PLUGIN_CONFIGURATION: u32 = 7;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_log_level(return_level: *mut u32) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_data: *mut *mut u8,
        return_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    #[allow(clippy::too_many_arguments)]
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
}

/// Hands a module buffer the host filled to Rust. The host wrote `size` bytes into memory it
/// got from `proxy_on_memory_allocate` (a `Vec<u8>` of exactly that capacity, lib.rs), so the
/// bytes are taken over in place, not copied. A null pointer is no value.
///
/// # Safety
/// `data` is null or came from `proxy_on_memory_allocate(size)` and is owned by nobody else.
unsafe fn take_buffer(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        None
    } else {
        Some(Vec::from_raw_parts(data, size, size))
    }
}

pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the slice is valid for the call; the host copies it.
    unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

/// Envoy's level for the `wasm` log component; an unknown answer is `None`.
pub fn log_level() -> Option<LogLevel> {
    let mut level = 0u32;
    // SAFETY: the host writes one u32 through a pointer to a live local.
    let status = unsafe { proxy_get_log_level(&mut level) };
    if Status::from_raw(status) != Status::Ok {
        return None;
    }
    LogLevel::from_u32(level)
}

/// The plugin configuration (empty when there is none or the host refuses).
pub fn plugin_configuration() -> Vec<u8> {
    let (mut data, mut size) = (ptr::null_mut(), 0);
    // SAFETY: the host writes a pointer and a length through pointers to live locals; the
    // pointer is null or a buffer it allocated through `proxy_on_memory_allocate(size)`.
    unsafe {
        let status =
            proxy_get_buffer_bytes(PLUGIN_CONFIGURATION, 0, usize::MAX, &mut data, &mut size);
        match Status::from_raw(status) {
            Status::Ok => take_buffer(data, size).unwrap_or_default(),
            _ => Vec::new(),
        }
    }
}

/// A request header's value as the host passes it (bytes, not necessarily UTF-8); `None` when
/// absent or empty.
pub fn request_header(name: &str) -> Option<Vec<u8>> {
    let (mut data, mut size) = (ptr::null_mut(), 0);
    // SAFETY: as in `plugin_configuration`; the name is valid for the call.
    unsafe {
        let status = proxy_get_header_map_value(
            REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            &mut data,
            &mut size,
        );
        match Status::from_raw(status) {
            Status::Ok => take_buffer(data, size),
            _ => None,
        }
    }
}

/// Replaces (or adds) a request header.
pub fn set_request_header(name: &str, value: &str) -> Status {
    // SAFETY: both slices are valid for the call; the host copies them.
    let status = unsafe {
        proxy_replace_header_map_value(
            REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    };
    Status::from_raw(status)
}

/// Sets a filter-state property at a one-segment path (no NUL separators to build, so nothing
/// is allocated per call).
pub fn set_property(path: &str, value: &[u8]) -> Status {
    // SAFETY: both slices are valid for the duration of the call; the host copies them.
    let status =
        unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) };
    Status::from_raw(status)
}

/// A local reply whose `details` become Envoy's `%RESPONSE_CODE_DETAILS%`.
pub fn send_local_response(
    status: u32,
    details: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Status {
    let headers = serialize_headers(headers);
    // SAFETY: every pointer and length comes from a live slice; the host copies them.
    let status = unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            // No gRPC status: Envoy sends none.
            -1,
        )
    };
    Status::from_raw(status)
}

/// The metric's id, to increment or record.
pub fn define_metric(kind: MetricType, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    // SAFETY: the name is valid for the call; the host writes one u32 to a live local.
    let status = unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) };
    match Status::from_raw(status) {
        Status::Ok => Ok(id),
        other => Err(other),
    }
}

pub fn increment_metric(id: u32, offset: i64) -> Status {
    // SAFETY: plain values only.
    Status::from_raw(unsafe { proxy_increment_metric(id, offset) })
}

pub fn record_metric(id: u32, value: u64) -> Status {
    // SAFETY: plain values only.
    Status::from_raw(unsafe { proxy_record_metric(id, value) })
}

/// `proxy_on_tick` of the calling root context every `millis` milliseconds.
pub fn set_tick_period_milliseconds(millis: u32) -> Status {
    // SAFETY: a plain value only.
    Status::from_raw(unsafe { proxy_set_tick_period_milliseconds(millis) })
}

/// The proxy-wasm map form: the count, each key and value length, then each key and value
/// followed by NUL (all numbers little-endian u32).
fn serialize_headers(headers: &[(&str, &str)]) -> Vec<u8> {
    let len = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    let text: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(4 + 8 * headers.len() + text);
    out.extend_from_slice(&len(headers.len()));
    for (key, value) in headers {
        out.extend_from_slice(&len(key.len()));
        out.extend_from_slice(&len(value.len()));
    }
    for (key, value) in headers {
        for text in [key, value] {
            out.extend_from_slice(text.as_bytes());
            out.push(0);
        }
    }
    out
}
