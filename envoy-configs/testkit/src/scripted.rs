//! A plain HTTP/1.1 upstream that misbehaves on purpose: each request gets the next reply of
//! a script (a status and a delay; the last one repeats), and every request is counted, so a
//! test sees what reached the upstream (retries included). One connection per request.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// One answer: this status, after this delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
}

impl Reply {
    pub const fn status(status: u16) -> Reply {
        Reply {
            status,
            delay: Duration::ZERO,
        }
    }

    pub const fn after(self, delay: Duration) -> Reply {
        Reply { delay, ..self }
    }
}

/// The running upstream; stops when dropped.
pub struct Scripted {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Scripted {
    /// Listens on 127.0.0.1 (a free port) and answers by `script`, which must not be empty.
    pub fn start(script: Vec<Reply>) -> Scripted {
        assert!(!script.is_empty(), "a script needs at least one reply");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counter, stopping) = (requests.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let reply = script[n.min(script.len() - 1)];
                thread::spawn(move || answer(stream, reply, n + 1));
            }
        });
        Scripted {
            addr,
            requests,
            stop,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests arrived so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn answer(stream: TcpStream, reply: Reply, number: usize) {
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    // The request head; a body is not expected.
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line == "\r\n" {
            break;
        }
        line.clear();
    }
    thread::sleep(reply.delay);
    let body = format!("reply {number}\n");
    let _ = write!(
        &stream,
        "HTTP/1.1 {} Scripted\r\ncontent-length: {}\r\nx-request-number: {number}\r\nconnection: close\r\n\r\n{body}",
        reply.status,
        body.len()
    );
}
