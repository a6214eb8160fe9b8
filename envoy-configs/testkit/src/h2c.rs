//! A hand-made HTTP/2 client over cleartext (prior knowledge), for what curl cannot do: many
//! streams written at once on one connection, their frames interleaved, some reset by the
//! client (`RST_STREAM`) right after their headers. It only writes requests and waits for
//! every stream to end; what each stream got is for the server's access log to tell.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
/// `RST_STREAM`'s error code for a client that no longer wants the response.
const CANCEL: u32 = 0x8;

/// One request: `GET path` with this `:authority`; `reset` leaves the request open (no
/// `END_STREAM`) and cancels it right after the next stream's headers.
#[derive(Debug, Clone)]
pub struct H2Request {
    pub authority: String,
    pub path: String,
    pub reset: bool,
}

/// How a stream ended, seen from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The server ended it (`END_STREAM` on its headers or data).
    Answered,
    /// The server reset it.
    ResetByServer,
    /// The client reset it.
    ResetByClient,
}

/// Writes every request on one connection to `addr` (stream ids 1, 3, 5, ... in order, in one
/// write), then reads until each has ended or `limit` passes. The ends, in request order.
pub fn streams(
    addr: SocketAddr,
    requests: &[H2Request],
    limit: Duration,
) -> Result<Vec<StreamEnd>, String> {
    let mut conn = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    let id = |i: usize| 2 * i as u32 + 1;
    let mut out = PREFACE.to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    let mut ends: Vec<Option<StreamEnd>> = vec![None; requests.len()];
    let mut pending_reset: Option<usize> = None;
    for (i, r) in requests.iter().enumerate() {
        let flags = if r.reset {
            END_HEADERS
        } else {
            END_HEADERS | END_STREAM
        };
        frame(
            &mut out,
            HEADERS,
            flags,
            id(i),
            &header_block(&r.authority, &r.path),
        );
        if let Some(earlier) = pending_reset.take() {
            frame(&mut out, RST_STREAM, 0, id(earlier), &CANCEL.to_be_bytes());
            ends[earlier] = Some(StreamEnd::ResetByClient);
        }
        if r.reset {
            pending_reset = Some(i);
        }
    }
    if let Some(last) = pending_reset {
        frame(&mut out, RST_STREAM, 0, id(last), &CANCEL.to_be_bytes());
        ends[last] = Some(StreamEnd::ResetByClient);
    }
    conn.write_all(&out).map_err(|e| format!("{addr}: {e}"))?;
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    while ends.iter().any(Option::is_none) {
        if Instant::now() > deadline {
            return Err(format!("streams still open after {limit:?}: {ends:?}"));
        }
        let mut chunk = [0u8; 16384];
        match conn.read(&mut chunk) {
            Ok(0) => return Err(format!("{addr} closed the connection: {ends:?}")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(format!("{addr}: {e}")),
        }
        while buf.len() >= 9 {
            let len = usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let stream = u32::from_be_bytes([buf[5] & 0x7f, buf[6], buf[7], buf[8]]);
            let payload: Vec<u8> = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            let index = (stream as usize).checked_sub(1).map(|s| s / 2);
            let slot = index
                .and_then(|i| ends.get_mut(i))
                .filter(|_| stream % 2 == 1);
            match kind {
                SETTINGS if flags & ACK == 0 => {
                    let mut ack = Vec::new();
                    frame(&mut ack, SETTINGS, ACK, 0, &[]);
                    conn.write_all(&ack).map_err(|e| e.to_string())?;
                }
                PING if flags & ACK == 0 => {
                    let mut pong = Vec::new();
                    frame(&mut pong, PING, ACK, 0, &payload);
                    conn.write_all(&pong).map_err(|e| e.to_string())?;
                }
                GOAWAY => return Err(format!("{addr} sent GOAWAY: {ends:?}")),
                HEADERS | DATA if flags & END_STREAM != 0 => {
                    if let Some(end) = slot.filter(|e| e.is_none()) {
                        *end = Some(StreamEnd::Answered);
                    }
                }
                RST_STREAM => {
                    if let Some(end) = slot.filter(|e| e.is_none()) {
                        *end = Some(StreamEnd::ResetByServer);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(ends.into_iter().flatten().collect())
}

/// A frame: 24-bit length, type, flags, stream id, payload.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// HPACK without Huffman or the dynamic table: `:method GET` and `:scheme http` from the
/// static table, `:path` and `:authority` as literals with a static name.
fn header_block(authority: &str, path: &str) -> Vec<u8> {
    let mut b = vec![0x82, 0x86];
    for (name_index, value) in [(4u8, path), (1u8, authority)] {
        // Literal without indexing, name from the static table (4-bit prefix).
        b.push(name_index);
        literal(&mut b, value.as_bytes());
    }
    b
}

/// A string literal: its length as an HPACK integer with a 7-bit prefix, no Huffman.
fn literal(out: &mut Vec<u8>, value: &[u8]) {
    let mut n = value.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128 + 128) as u8);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_encoded_as_hpack_literals() {
        assert_eq!(
            header_block("a.mesh", "/x"),
            [&[0x82, 0x86, 0x04, 2][..], b"/x", &[0x01, 6], b"a.mesh"].concat()
        );
        let mut long = Vec::new();
        literal(&mut long, &[b'a'; 200]);
        assert_eq!(&long[..2], &[127, 73]);
        assert_eq!(long.len(), 2 + 200);
    }

    #[test]
    fn a_frame_has_its_nine_byte_head() {
        let mut out = Vec::new();
        frame(&mut out, RST_STREAM, 0, 5, &CANCEL.to_be_bytes());
        assert_eq!(out, [0, 0, 4, 3, 0, 0, 0, 0, 5, 0, 0, 0, 8]);
    }
}
