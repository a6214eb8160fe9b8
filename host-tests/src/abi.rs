//! Values and encodings of the proxy-wasm ABI 0.2.1, as the host sees them.

use anyhow::{bail, Context as _, Result};

pub use external_service_model::contract::LogLevel;

/// `proxy_status_t`: what every `proxy_*` host function returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
}

/// What a `proxy_on_*_headers` / `proxy_on_*_body` callback asked the host to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// 0: carry on with the stream.
    Continue,
    /// 1: stop iteration (e.g. after a local response).
    Pause,
}

impl Action {
    pub(crate) fn from_u32(value: u32) -> Result<Action> {
        match value {
            0 => Ok(Action::Continue),
            1 => Ok(Action::Pause),
            other => bail!("the module returned action {other}, which ABI 0.2.1 does not define"),
        }
    }
}

/// `proxy_metric_type_t`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

impl MetricType {
    pub(crate) fn from_u32(value: u32) -> Option<MetricType> {
        Some(match value {
            0 => MetricType::Counter,
            1 => MetricType::Gauge,
            2 => MetricType::Histogram,
            _ => return None,
        })
    }
}

/// `proxy_map_type_t` values this host keeps per HTTP stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MapType {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
}

impl MapType {
    pub(crate) fn from_u32(value: u32) -> Option<MapType> {
        Some(match value {
            0 => MapType::RequestHeaders,
            1 => MapType::RequestTrailers,
            2 => MapType::ResponseHeaders,
            3 => MapType::ResponseTrailers,
            _ => return None,
        })
    }
}

/// `proxy_buffer_type_t` values this host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BufferType {
    RequestBody,
    ResponseBody,
    VmConfiguration,
    PluginConfiguration,
}

impl BufferType {
    pub(crate) fn from_u32(value: u32) -> Option<BufferType> {
        Some(match value {
            0 => BufferType::RequestBody,
            1 => BufferType::ResponseBody,
            6 => BufferType::VmConfiguration,
            7 => BufferType::PluginConfiguration,
            _ => return None,
        })
    }
}

/// Encodes header pairs the way ABI 0.2.1 passes maps: a little-endian `u32` count, then a
/// `(u32 key_len, u32 value_len)` pair per entry, then each key and value followed by a NUL.
pub fn serialize_map<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let data: usize = pairs
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2)
        .sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data);
    out.extend_from_slice(&len_u32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len_u32(k.as_ref().len()).to_le_bytes());
        out.extend_from_slice(&len_u32(v.as_ref().len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

fn len_u32(len: usize) -> u32 {
    // Maps in a 32-bit linear memory cannot exceed u32::MAX bytes.
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Decodes the format of [`serialize_map`], checking every length and terminator. An empty input
/// is an empty map (some modules send nothing for an empty map).
pub fn deserialize_map(bytes: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let count = read_u32(bytes, 0)? as usize;
    let header_end = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(4))
        .filter(|&n| n <= bytes.len())
        .with_context(|| {
            format!(
                "serialized map claims {count} entries but has {} bytes",
                bytes.len()
            )
        })?;
    let mut pos = header_end;
    let mut pairs = Vec::with_capacity(count);
    for i in 0..count {
        let key_len = read_u32(bytes, 4 + i * 8)? as usize;
        let value_len = read_u32(bytes, 8 + i * 8)? as usize;
        let key = take_terminated(bytes, &mut pos, key_len)
            .with_context(|| format!("key of entry {i}"))?;
        let value = take_terminated(bytes, &mut pos, value_len)
            .with_context(|| format!("value of entry {i}"))?;
        pairs.push((key.to_vec(), value.to_vec()));
    }
    if pos != bytes.len() {
        bail!("serialized map has {} trailing bytes", bytes.len() - pos);
    }
    Ok(pairs)
}

fn read_u32(bytes: &[u8], at: usize) -> Result<u32> {
    let word = bytes
        .get(at..at + 4)
        .with_context(|| format!("serialized map truncated at byte {at}"))?;
    let mut le = [0u8; 4];
    le.copy_from_slice(word);
    Ok(u32::from_le_bytes(le))
}

fn take_terminated<'a>(bytes: &'a [u8], pos: &mut usize, len: usize) -> Result<&'a [u8]> {
    let start = *pos;
    let end = start.checked_add(len).context("length overflows")?;
    let field = bytes
        .get(start..end)
        .with_context(|| format!("{len} bytes at {start} run past the end"))?;
    if bytes.get(end) != Some(&0) {
        bail!("missing NUL terminator at byte {end}");
    }
    *pos = end + 1;
    Ok(field)
}

/// Splits a property path: segments separated by NUL. A trailing NUL is an empty last segment,
/// as in Envoy, where `proxy_set_property` keys filter state by the path's bytes as given.
pub fn split_property_path(bytes: &[u8]) -> Vec<String> {
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_layout_is_count_then_lengths_then_terminated_bytes() {
        let bytes = serialize_map(&[(":path", "/a"), ("x", "")]);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            2, 0, 0, 0,
            5, 0, 0, 0, 2, 0, 0, 0,
            1, 0, 0, 0, 0, 0, 0, 0,
            b':', b'p', b'a', b't', b'h', 0, b'/', b'a', 0,
            b'x', 0, 0,
        ];
        assert_eq!(bytes, expected);
    }

    #[test]
    fn map_round_trips_and_keeps_order_and_duplicates() {
        let pairs = vec![
            (b":authority".to_vec(), b"httpbin.mesh".to_vec()),
            (b"x-dup".to_vec(), b"1".to_vec()),
            (b"x-dup".to_vec(), b"2".to_vec()),
            (b"empty".to_vec(), Vec::new()),
        ];
        assert_eq!(deserialize_map(&serialize_map(&pairs)).unwrap(), pairs);
        assert_eq!(serialize_map::<&str, &str>(&[]), [0, 0, 0, 0]);
        assert!(deserialize_map(&[]).unwrap().is_empty());
    }

    #[test]
    fn malformed_maps_are_errors() {
        let good = serialize_map(&[("k", "v")]);
        assert!(deserialize_map(&good[..good.len() - 1]).is_err());
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'!';
        assert!(deserialize_map(&no_nul).is_err());
        assert!(deserialize_map(&[9, 0, 0, 0]).is_err());
        let mut trailing = good;
        trailing.push(0);
        assert!(deserialize_map(&trailing).is_err());
    }

    #[test]
    fn property_paths_split_on_nul() {
        assert_eq!(
            split_property_path(b"xds\0cluster_name"),
            ["xds", "cluster_name"]
        );
        assert_eq!(split_property_path(b"node\0id\0"), ["node", "id", ""]);
        assert!(split_property_path(b"").is_empty());
    }
}
