//! The functions the host offers the module: `env.proxy_*` (ABI 0.2.1) and the few WASI
//! preview1 calls a Rust `wasm32-wasip1` cdylib imports.

use wasmtime::{bail, format_err, Caller, Extern, ExternType, Linker, Module, Result};

use crate::abi::{
    deserialize_map, serialize_map, split_property_path, BufferType, LogLevel, MapType, MetricType,
    Status,
};
use crate::state::{HostState, LocalResponse, Metric, MetricValue};

type Ctx<'a> = Caller<'a, HostState>;

const WASI: &str = "wasi_snapshot_preview1";
const ERRNO_SUCCESS: u32 = 0;
const ERRNO_BADF: u32 = 8;
const ERRNO_INVAL: u32 = 28;

/// A linker for `module`: every import it has links; the ones this host lacks trap with their
/// name when called.
pub(crate) fn linker_for(module: &Module) -> anyhow::Result<Linker<HostState>> {
    let mut linker = Linker::new(module.engine());
    linker.allow_shadowing(true);
    for import in module.imports() {
        let (from, name) = (import.module().to_owned(), import.name().to_owned());
        let ExternType::Func(ty) = import.ty() else {
            anyhow::bail!("the module imports {from}::{name}, which is not a function; host-tests provides only functions");
        };
        let shown = if from == "env" {
            name.clone()
        } else {
            format!("{from}::{name}")
        };
        linker.func_new(&from, &name, ty, move |_, _, _| {
            bail!("host function {shown} is not implemented by host-tests")
        })?;
    }
    // Real implementations shadow the stubs; a signature that differs from the import fails at
    // instantiation with wasmtime's "incompatible import type" message.
    add_proxy_functions(&mut linker)?;
    add_wasi_functions(&mut linker)?;
    Ok(linker)
}

fn status(s: Status) -> Result<u32> {
    Ok(s as u32)
}

fn add_proxy_functions(l: &mut Linker<HostState>) -> Result<()> {
    l.func_wrap(
        "env",
        "proxy_log",
        |mut c: Ctx<'_>, level: u32, ptr: u32, len: u32| {
            let Some(level) = LogLevel::from_u32(level) else {
                return status(Status::BadArgument);
            };
            let message = String::from_utf8_lossy(&read(&mut c, ptr, len)?).into_owned();
            c.data_mut().log(level, message);
            status(Status::Ok)
        },
    )?;
    l.func_wrap("env", "proxy_get_log_level", |mut c: Ctx<'_>, ret: u32| {
        let level = c.data().log_level as u32;
        write_u32(&mut c, ret, level)?;
        status(Status::Ok)
    })?;
    l.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Ctx<'_>, ret: u32| {
            let now = c.data().now_nanos();
            write(&mut c, ret, &now.to_le_bytes())?;
            status(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Ctx<'_>, period: u32| {
            c.data_mut().tick_period_ms = period;
            status(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: Ctx<'_>, id: u32| {
            let st = c.data_mut();
            if id == st.root_context || st.streams.contains_key(&id) {
                st.active_context = id;
                status(Status::Ok)
            } else {
                status(Status::BadArgument)
            }
        },
    )?;
    l.func_wrap("env", "proxy_done", |mut c: Ctx<'_>| {
        match c.data_mut().active_stream() {
            Some(s) if s.awaiting_done => {
                s.done_signalled = true;
                status(Status::Ok)
            }
            _ => status(Status::NotFound),
        }
    })?;
    l.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Ctx<'_>, kind: u32, start: u32, max: u32, ret_ptr: u32, ret_len: u32| {
            let st = c.data();
            let buffer = match BufferType::from_u32(kind) {
                Some(BufferType::VmConfiguration) => &st.vm_configuration,
                Some(BufferType::PluginConfiguration) => &st.plugin_configuration,
                Some(BufferType::RequestBody | BufferType::ResponseBody) => {
                    bail!("host function proxy_get_buffer_bytes is not implemented by host-tests for HTTP bodies")
                }
                None => return status(Status::BadArgument),
            };
            let start = start as usize;
            if start > buffer.len() {
                return status(Status::BadArgument);
            }
            let end = start.saturating_add(max as usize).min(buffer.len());
            let bytes = buffer[start..end].to_vec();
            if bytes.is_empty() {
                // As Envoy does: nothing written, so the module reads a null pointer as "no buffer".
                return status(Status::Ok);
            }
            return_bytes(&mut c, &bytes, ret_ptr, ret_len)?;
            status(Status::Ok)
        },
    )?;
    add_header_map_functions(l)?;
    l.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Ctx<'_>,
         code: u32,
         details_ptr: u32,
         details_len: u32,
         body_ptr: u32,
         body_len: u32,
         headers_ptr: u32,
         headers_len: u32,
         grpc_status: i32| {
            let details =
                String::from_utf8_lossy(&read(&mut c, details_ptr, details_len)?).into_owned();
            let body = read(&mut c, body_ptr, body_len)?;
            let Ok(pairs) = deserialize_map(&read(&mut c, headers_ptr, headers_len)?) else {
                return status(Status::ParseFailure);
            };
            let Some(stream) = c.data_mut().active_stream() else {
                return status(Status::BadArgument);
            };
            stream.local_response = Some(LocalResponse {
                status: code,
                body,
                headers: pairs
                    .into_iter()
                    .map(|(k, v)| (lossy(k), lossy(v)))
                    .collect(),
                details,
                grpc_status,
            });
            status(Status::Ok)
        },
    )?;
    add_metric_functions(l)?;
    l.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Ctx<'_>, path_ptr: u32, path_len: u32, ret_ptr: u32, ret_len: u32| {
            let path = split_property_path(&read(&mut c, path_ptr, path_len)?);
            let st = c.data_mut();
            let on_stream = st
                .active_stream()
                .and_then(|s| s.properties.get(&path).cloned());
            let Some(value) = on_stream.or_else(|| st.properties.get(&path).cloned()) else {
                return status(Status::NotFound);
            };
            return_bytes(&mut c, &value, ret_ptr, ret_len)?;
            status(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: Ctx<'_>, path_ptr: u32, path_len: u32, value_ptr: u32, value_len: u32| {
            let path = split_property_path(&read(&mut c, path_ptr, path_len)?);
            let value = read(&mut c, value_ptr, value_len)?;
            let st = c.data_mut();
            match st.active_stream() {
                Some(stream) => stream.properties.insert(path, value),
                None => st.properties.insert(path, value),
            };
            status(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |mut c: Ctx<'_>,
         name_ptr: u32,
         name_len: u32,
         args_ptr: u32,
         args_len: u32,
         ret_ptr: u32,
         ret_len: u32| {
            let name = String::from_utf8_lossy(&read(&mut c, name_ptr, name_len)?).into_owned();
            let args = read(&mut c, args_ptr, args_len)?;
            let st = c.data_mut();
            st.foreign_calls.push((name.clone(), args));
            let Some(answer) = st.foreign_answers.get(&name).cloned() else {
                return status(Status::NotFound);
            };
            return_bytes(&mut c, &answer, ret_ptr, ret_len)?;
            status(Status::Ok)
        },
    )?;
    Ok(())
}

fn add_header_map_functions(l: &mut Linker<HostState>) -> Result<()> {
    l.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Ctx<'_>, map: u32, ret_ptr: u32, ret_len: u32| {
            let Some(pairs) = with_map(&mut c, map, |m| m.clone()) else {
                return status(Status::BadArgument);
            };
            return_bytes(&mut c, &serialize_map(&pairs), ret_ptr, ret_len)?;
            status(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Ctx<'_>, map: u32, ptr: u32, len: u32| {
            let Ok(pairs) = deserialize_map(&read(&mut c, ptr, len)?) else {
                return status(Status::ParseFailure);
            };
            let pairs: Vec<_> = pairs.into_iter().map(|(k, v)| (lower(k), v)).collect();
            match with_map(&mut c, map, |m| *m = pairs) {
                Some(()) => status(Status::Ok),
                None => status(Status::BadArgument),
            }
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Ctx<'_>, map: u32, key_ptr: u32, key_len: u32, ret_ptr: u32, ret_len: u32| {
            let key = lossy(read(&mut c, key_ptr, key_len)?);
            let found = with_map(&mut c, map, |m| {
                m.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&key))
                    .map(|(_, v)| v.clone())
            });
            match found {
                None => status(Status::BadArgument),
                Some(None) => status(Status::NotFound),
                Some(Some(value)) => {
                    return_bytes(&mut c, &value, ret_ptr, ret_len)?;
                    status(Status::Ok)
                }
            }
        },
    )?;
    wrap_edit_map(l, "proxy_replace_header_map_value", set_copy)?;
    wrap_edit_map(l, "proxy_add_header_map_value", |m, key, value| {
        m.push((key, value))
    })?;
    l.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Ctx<'_>, map: u32, key_ptr: u32, key_len: u32| {
            let key = lossy(read(&mut c, key_ptr, key_len)?);
            let done = with_map(&mut c, map, |m| {
                m.retain(|(k, _)| !k.eq_ignore_ascii_case(&key))
            });
            status(done.map_or(Status::BadArgument, |()| Status::Ok))
        },
    )?;
    Ok(())
}

fn add_metric_functions(l: &mut Linker<HostState>) -> Result<()> {
    l.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Ctx<'_>, kind: u32, name_ptr: u32, name_len: u32, ret: u32| {
            let Some(kind) = MetricType::from_u32(kind) else {
                return status(Status::BadArgument);
            };
            let name = lossy(read(&mut c, name_ptr, name_len)?);
            let state = c.data_mut();
            // Defining a name again hands back the same metric, as Envoy does.
            let index = match state.metric_index.get(&(name.clone(), kind)) {
                Some(&i) => i,
                None => {
                    let value = match kind {
                        MetricType::Counter => MetricValue::Counter(0),
                        MetricType::Gauge => MetricValue::Gauge(0),
                        MetricType::Histogram => MetricValue::Histogram(Vec::new()),
                    };
                    state
                        .metric_index
                        .insert((name.clone(), kind), state.metrics.len());
                    state.metrics.push(Metric { name, kind, value });
                    state.metrics.len() - 1
                }
            };
            let id = u32::try_from(index + 1).map_err(|_| format_err!("too many metrics"))?;
            write_u32(&mut c, ret, id)?;
            status(Status::Ok)
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_increment_metric",
        |mut c: Ctx<'_>, id: u32, offset: i64| {
            update_metric(&mut c, id, |value| match value {
                MetricValue::Counter(v) if offset >= 0 => {
                    *v = v.saturating_add(offset.unsigned_abs());
                    Status::Ok
                }
                MetricValue::Gauge(v) => {
                    *v = v.saturating_add_signed(offset);
                    Status::Ok
                }
                _ => Status::BadArgument,
            })
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_record_metric",
        |mut c: Ctx<'_>, id: u32, value: u64| {
            update_metric(&mut c, id, |metric| {
                match metric {
                    // Envoy adds the value to a counter and sets a gauge.
                    MetricValue::Counter(v) => *v = v.saturating_add(value),
                    MetricValue::Gauge(v) => *v = value,
                    MetricValue::Histogram(samples) => samples.push(value),
                }
                Status::Ok
            })
        },
    )?;
    l.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: Ctx<'_>, id: u32, ret: u32| {
            let Some(metric) = c.data_mut().metric_mut(id) else {
                return status(Status::NotFound);
            };
            let value = match &metric.value {
                MetricValue::Counter(v) | MetricValue::Gauge(v) => *v,
                MetricValue::Histogram(_) => return status(Status::BadArgument),
            };
            write(&mut c, ret, &value.to_le_bytes())?;
            status(Status::Ok)
        },
    )?;
    Ok(())
}

/// Runs `f` on the value of metric `id`; an unknown id is `NotFound`.
fn update_metric(
    c: &mut Ctx<'_>,
    id: u32,
    f: impl FnOnce(&mut MetricValue) -> Status,
) -> Result<u32> {
    match c.data_mut().metric_mut(id) {
        Some(metric) => status(f(&mut metric.value)),
        None => status(Status::NotFound),
    }
}

fn add_wasi_functions(l: &mut Linker<HostState>) -> Result<()> {
    // No environment variables and no arguments: both lists are empty.
    for (sizes_get, get) in [
        ("environ_sizes_get", "environ_get"),
        ("args_sizes_get", "args_get"),
    ] {
        l.func_wrap(WASI, sizes_get, |mut c: Ctx<'_>, count: u32, size: u32| {
            write_u32(&mut c, count, 0)?;
            write_u32(&mut c, size, 0)?;
            Ok(ERRNO_SUCCESS)
        })?;
        l.func_wrap(WASI, get, |_: Ctx<'_>, _list: u32, _buf: u32| {
            Ok(ERRNO_SUCCESS)
        })?;
    }
    l.func_wrap(
        WASI,
        "fd_write",
        |mut c: Ctx<'_>, fd: u32, iovs: u32, iovs_len: u32, written: u32| {
            if fd != 1 && fd != 2 {
                return Ok(ERRNO_BADF);
            }
            let table = read(&mut c, iovs, iovs_len.saturating_mul(8))?;
            let mut bytes = Vec::new();
            for iov in table.chunks_exact(8) {
                let ptr = u32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                let len = u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                bytes.extend(read(&mut c, ptr, len)?);
            }
            c.data_mut().write_stdio(fd as usize, &bytes);
            let total =
                u32::try_from(bytes.len()).map_err(|_| format_err!("fd_write too large"))?;
            write_u32(&mut c, written, total)?;
            Ok(ERRNO_SUCCESS)
        },
    )?;
    l.func_wrap(
        WASI,
        "proc_exit",
        |mut c: Ctx<'_>, code: u32| -> Result<()> {
            c.data_mut().flush_stdio();
            bail!("the module called proc_exit({code})")
        },
    )?;
    l.func_wrap(
        WASI,
        "clock_time_get",
        |mut c: Ctx<'_>, clock: u32, _precision: u64, ret: u32| {
            if clock > 3 {
                return Ok(ERRNO_INVAL);
            }
            let now = c.data().now_nanos();
            write(&mut c, ret, &now.to_le_bytes())?;
            Ok(ERRNO_SUCCESS)
        },
    )?;
    l.func_wrap(WASI, "random_get", |mut c: Ctx<'_>, buf: u32, len: u32| {
        let mut bytes = Vec::with_capacity(len as usize + 8);
        while bytes.len() < len as usize {
            let word = c.data_mut().next_random();
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.truncate(len as usize);
        write(&mut c, buf, &bytes)?;
        Ok(ERRNO_SUCCESS)
    })?;
    l.func_wrap(WASI, "sched_yield", |_: Ctx<'_>| Ok(ERRNO_SUCCESS))?;
    Ok(())
}

/// Envoy's setCopy: the name ends up with exactly this one value; we keep its place.
fn set_copy(m: &mut crate::state::RawHeaderMap, key: String, value: Vec<u8>) {
    match m.iter().position(|(k, _)| k.eq_ignore_ascii_case(&key)) {
        Some(first) => {
            m[first].1 = value;
            let mut index = 0;
            m.retain(|(k, _)| {
                let keep = index <= first || !k.eq_ignore_ascii_case(&key);
                index += 1;
                keep
            });
        }
        None => m.push((key, value)),
    }
}

/// Defines the host call `name(map, name_ptr, name_len, value_ptr, value_len)`: it reads the
/// header name (lower-cased) and value the module passed and hands them to `edit` with header
/// map `map` of the active stream.
fn wrap_edit_map(
    l: &mut Linker<HostState>,
    name: &str,
    edit: fn(&mut crate::state::RawHeaderMap, String, Vec<u8>),
) -> Result<()> {
    l.func_wrap(
        "env",
        name,
        move |mut c: Ctx<'_>,
              map: u32,
              key_ptr: u32,
              key_len: u32,
              value_ptr: u32,
              value_len: u32| {
            let key = lower(read(&mut c, key_ptr, key_len)?);
            let value = read(&mut c, value_ptr, value_len)?;
            let done = with_map(&mut c, map, |m| edit(m, key, value));
            status(done.map_or(Status::BadArgument, |()| Status::Ok))
        },
    )?;
    Ok(())
}

/// Runs `f` on header map `map` of the active HTTP stream; `None` when there is none.
fn with_map<R>(
    c: &mut Ctx<'_>,
    map: u32,
    f: impl FnOnce(&mut crate::state::RawHeaderMap) -> R,
) -> Option<R> {
    let map = MapType::from_u32(map)?;
    let stream = c.data_mut().active_stream()?;
    Some(f(stream.map_mut(map)))
}

fn lossy(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Header names set by the module are stored lower-case, as Envoy's `LowerCaseString` does.
fn lower(bytes: Vec<u8>) -> String {
    lossy(bytes).to_ascii_lowercase()
}

fn memory(c: &mut Ctx<'_>) -> Result<wasmtime::Memory> {
    match c.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => bail!("the module does not export its linear memory as `memory`"),
    }
}

pub(crate) fn read(c: &mut Ctx<'_>, ptr: u32, len: u32) -> Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let mem = memory(c)?;
    let start = ptr as usize;
    mem.data(&*c)
        .get(start..start + len as usize)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format_err!("the module passed {len} bytes at {ptr:#x}, outside its memory"))
}

fn write(c: &mut Ctx<'_>, ptr: u32, bytes: &[u8]) -> Result<()> {
    let mem = memory(c)?;
    mem.write(&mut *c, ptr as usize, bytes)
        .map_err(|_| format_err!("the module asked for a write at {ptr:#x}, outside its memory"))
}

fn write_u32(c: &mut Ctx<'_>, ptr: u32, value: u32) -> Result<()> {
    write(c, ptr, &value.to_le_bytes())
}

/// Copies `bytes` into memory the module allocates (`proxy_on_memory_allocate`) and stores the
/// pointer and size at `ret_ptr` / `ret_len`; the module owns and frees that memory.
fn return_bytes(c: &mut Ctx<'_>, bytes: &[u8], ret_ptr: u32, ret_len: u32) -> Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| format_err!("value too large for wasm32"))?;
    if len == 0 {
        write_u32(c, ret_ptr, 0)?;
        return write_u32(c, ret_len, 0);
    }
    let Some(Extern::Func(alloc)) = c.get_export("proxy_on_memory_allocate") else {
        bail!("the module does not export proxy_on_memory_allocate");
    };
    let ptr = alloc.typed::<u32, u32>(&*c)?.call(&mut *c, len)?;
    if ptr == 0 {
        bail!("proxy_on_memory_allocate({len}) returned null");
    }
    write(c, ptr, bytes)?;
    write_u32(c, ret_ptr, ptr)?;
    write_u32(c, ret_len, len)
}
