//! The two host calls the SDK (0.2.5) wraps in ways the request path cannot afford: its
//! `set_property` builds the path in two fresh `Vec`s on every call, and its
//! `send_http_response` always passes empty response code details.

use proxy_wasm::types::Status;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;

    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> Status;
}

/// Sets a filter-state property at a one-segment path (no NUL separators to build, so nothing
/// is allocated per call).
pub fn set_property(path: &str, value: &[u8]) -> Status {
    // SAFETY: both slices are valid for the duration of the call; the host copies them.
    unsafe { proxy_set_property(path.as_ptr(), path.len(), value.as_ptr(), value.len()) }
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
    unsafe {
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
    }
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
