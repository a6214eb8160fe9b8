//! A plain HTTP/1.1 upstream that misbehaves on purpose: each request gets the next reply of
//! a script (a status and a delay; the last one repeats; [`Scripted::play`] starts another),
//! and every request's path is kept, so a test sees what reached the upstream (retries and
//! health checks included). One connection per request.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

#[derive(Default)]
struct State {
    script: Vec<Reply>,
    /// Requests answered from the current script.
    played: usize,
    /// The path of every request, in order of arrival.
    paths: Vec<String>,
}

impl Scripted {
    /// Listens on 127.0.0.1 (a free port) and answers by `script`, which must not be empty.
    pub fn start(script: Vec<Reply>) -> Scripted {
        assert!(!script.is_empty(), "a script needs at least one reply");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(Mutex::new(State {
            script,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopping) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let state = shared.clone();
                thread::spawn(move || answer(stream, &state));
            }
        });
        Scripted { addr, state, stop }
    }

    /// Answers the following requests by `script` (not empty), from its first reply.
    pub fn play(&self, script: Vec<Reply>) {
        assert!(!script.is_empty(), "a script needs at least one reply");
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.script = script;
        state.played = 0;
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests arrived so far.
    pub fn requests(&self) -> usize {
        self.paths().len()
    }

    /// The path of each request so far, in order of arrival.
    pub fn paths(&self) -> Vec<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.paths.clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn answer(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // The rest of the head; a body is not expected.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line == "\r\n" {
            break;
        }
        line.clear();
    }
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let (reply, number) = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let reply = state.script[state.played.min(state.script.len() - 1)];
        state.played += 1;
        state.paths.push(path);
        (reply, state.paths.len())
    };
    thread::sleep(reply.delay);
    let body = format!("reply {number}\n");
    let _ = write!(
        &stream,
        "HTTP/1.1 {} Scripted\r\ncontent-length: {}\r\nx-request-number: {number}\r\nconnection: close\r\n\r\n{body}",
        reply.status,
        body.len()
    );
}
