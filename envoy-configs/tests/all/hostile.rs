//! Hostile requests through real Envoy (the generated configuration, the real filter module),
//! passthrough off. Every request gets a clear answer, from Envoy's codec, from the filter (a
//! local reply with `x-external-service-denied`) or from the declared upstream, and none
//! reaches the undeclared upstream: its request counter stays 0.
//!
//! The undeclared upstream (`plain.test:<port>`, also 127.0.0.1 / ::ffff:127.0.0.1) is one a
//! leaked request would really reach, so a leak would show.
//!
//! The wildcard rows add a MeshPassthrough (`Matched`) that lets `*.wild.test` out, `http` to
//! upstream `wild` and `tls` (CONNECT) to upstream `wildtls`: every name they try resolves, so
//! a name let through by mistake would reach one of those and show, and what a name let
//! through reaches is its own upstream.
//!
//! Keep a test's files: `EXTSVC_KEEP_TEST_DIRS=1 cargo test -p extsvc --test all hostile::`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use extsvc_testkit as support;

use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use support::{
    ca_file, docs, https_service, mesh, test_dir, with_dns, Curl, Pki, Response, Sidecar, Upstream,
    UpstreamBuilder, WAIT,
};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// Envoy itself (codec or router), before or without the filter's word.
    Envoy,
    /// The filter's local reply (`x-external-service-denied`).
    Filter,
    /// The declared upstream (`x-upstream-name: tls`).
    Declared,
    /// The upstream of the wildcard's `http` match (`x-upstream-name: wild`).
    Wild,
    /// The upstream of the wildcard's `tls` match, through a CONNECT tunnel
    /// (`x-upstream-name: wildtls`).
    WildTls,
    /// No HTTP answer at all (connection closed or reset).
    Nobody,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: Option<u16>,
    who: Who,
    /// The filter's reason, if it answered.
    denied: Option<String>,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.status.map_or("-".to_string(), |s| s.to_string());
        match &self.denied {
            Some(d) => write!(f, "{status} {:?} ({d})", self.who),
            None => write!(f, "{status} {:?}", self.who),
        }
    }
}

fn of_curl(r: &Response) -> Answer {
    classify(
        Some(r.status),
        r.header("x-external-service-denied").map(str::to_string),
        r.header("x-upstream-name").map(str::to_string),
    )
}

fn of_raw(r: &Raw) -> Answer {
    classify(
        r.status,
        r.header("x-external-service-denied"),
        r.header("x-upstream-name"),
    )
}

fn classify(status: Option<u16>, denied: Option<String>, upstream: Option<String>) -> Answer {
    let who = match (status, &denied, upstream.as_deref()) {
        (None, _, _) => Who::Nobody,
        (_, Some(_), _) => Who::Filter,
        (_, None, Some("tls")) => Who::Declared,
        (_, None, Some("wild")) => Who::Wild,
        (_, None, Some("wildtls")) => Who::WildTls,
        (_, None, Some(other)) => panic!("answered by upstream listener {other:?}: a leak"),
        (_, None, None) => Who::Envoy,
    };
    Answer {
        status,
        who,
        denied,
    }
}

fn filter(status: u16, reason: &str) -> Answer {
    Answer {
        status: Some(status),
        who: Who::Filter,
        denied: Some(reason.to_string()),
    }
}

fn envoy(status: u16) -> Answer {
    Answer {
        status: Some(status),
        who: Who::Envoy,
        denied: None,
    }
}

fn reached(who: Who) -> Answer {
    Answer {
        status: Some(200),
        who,
        denied: None,
    }
}

fn declared() -> Answer {
    reached(Who::Declared)
}

fn nobody() -> Answer {
    Answer {
        status: None,
        who: Who::Nobody,
        denied: None,
    }
}

fn bad() -> Answer {
    filter(400, "bad-authority")
}

fn undeclared() -> Answer {
    filter(403, "undeclared-host")
}

fn not_matched() -> Answer {
    filter(403, "not-matched")
}

/// Envoy's 200 to a CONNECT: the tunnel is open. Where it leads, the access log says.
fn tunnel_opened() -> Answer {
    envoy(200)
}

// ---------------------------------------------------------------------------------------------
// Raw requests: bytes curl cannot send
// ---------------------------------------------------------------------------------------------

/// What came back on a raw connection.
#[derive(Debug, Clone)]
pub struct Raw {
    /// The status of the first response, `None` when nothing parseable came back.
    pub status: Option<u16>,
    /// The response head (status line and headers), lossy.
    pub head: String,
    pub body: String,
}

impl Raw {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Writes `request` as it is to 127.0.0.1:`port` and reads until Envoy closes the connection,
/// the first response is complete (by Content-Length) or 5 s pass.
pub fn raw_request(port: u16, request: &[u8]) -> Raw {
    raw_request_until(port, request, complete)
}

/// [`raw_request`] that stops reading at the end of the response head: Envoy's 200 to a
/// CONNECT has no body and keeps the tunnel open. The connection closes on return.
fn raw_head(port: u16, request: &[u8]) -> Raw {
    raw_request_until(port, request, |raw| {
        raw.windows(4).any(|w| w == b"\r\n\r\n")
    })
}

/// [`raw_request`], reading until `done` says what came back is enough.
fn raw_request_until(port: u16, request: &[u8], done: fn(&[u8]) -> bool) -> Raw {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to Envoy");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    s.set_write_timeout(Some(WAIT)).unwrap();
    // Envoy may answer and close before it read everything: a failed write is fine.
    let _ = s.write_all(request);
    let start = Instant::now();
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while start.elapsed() < WAIT {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        if done(&raw) {
            break;
        }
    }
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match split {
        Some(i) => (&raw[..i], &raw[i + 4..]),
        None => (&raw[..], &raw[raw.len()..]),
    };
    let head = String::from_utf8_lossy(head).to_string();
    let status = head
        .lines()
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok());
    Raw {
        status,
        head,
        body: String::from_utf8_lossy(body).to_string(),
    }
}

fn complete(raw: &[u8]) -> bool {
    let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..i]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    len.is_some_and(|n| raw.len() >= i + 4 + n)
}

// ---------------------------------------------------------------------------------------------
// The setup and the checks
// ---------------------------------------------------------------------------------------------

/// The setup: `httpbin` declared (TLS upstream `httpbin.test`), `plain.test` undeclared.
struct World {
    up: Upstream,
    s: Sidecar,
    plain: u16,
    /// The test CA, which signed every TLS upstream's certificate.
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

fn world() -> World {
    world_with(0)
}

/// [`world`], with `outbounds` Dataplane http outbounds bound to `httpbin` (`s.outbound`).
fn world_with(outbounds: usize) -> World {
    start_world(outbounds, |b, _| b, |_| Vec::new())
}

/// Every name the wildcard rows send, let through or not, so that a name let through by
/// mistake reaches an upstream and shows. `A.WILD.TEST` as well: the test's DNS server
/// compares names byte for byte (envoyproxy/envoy#45381), as a real resolver does not.
const WILD_NAMES: [&str; 8] = [
    "a.wild.test",
    "A.WILD.TEST",
    "b.a.wild.test",
    "xn--80a.wild.test",
    "wild.test",
    "evilwild.test",
    "a.wild.test.evil.test",
    "a.xn--wld-jhd.test",
];

/// [`world`] (passthrough off) with a MeshPassthrough, `Matched`, that lets `*.wild.test` out:
/// `http` on the port of upstream `wild`, `tls` on the port of upstream `wildtls`.
fn wildcard_world() -> World {
    start_world(
        0,
        |b, p| with_dns(b.plain("wild").tls("wildtls", &p.server), &WILD_NAMES),
        |up| {
            vec![format!(
                "type: MeshPassthrough\nname: wild\nmesh: default\nspec:\n  targetRef: {{kind: Mesh}}\n  default:\n    passthroughMode: Matched\n    appendMatch:\n    - {{type: Domain, value: '*.wild.test', port: {}, protocol: http}}\n    - {{type: Domain, value: '*.wild.test', port: {}, protocol: tls}}\n",
                up.port("wild"),
                up.port("wildtls"),
            )]
        },
    )
}

/// The setup of [`world`], with more upstream listeners and names (`upstreams`) and more
/// resources, which may name the upstream's ports (`resources`).
fn start_world(
    outbounds: usize,
    upstreams: impl FnOnce(UpstreamBuilder, &Pki) -> UpstreamBuilder,
    resources: impl FnOnce(&Upstream) -> Vec<String>,
) -> World {
    let dir = test_dir();
    let d = dir.path();
    // `*.wild.test` for [`wildcard_world`]'s `wildtls`.
    let p = Pki::for_names(d, &["httpbin.test", "*.wild.test"]);
    let base = UpstreamBuilder::new()
        .tls("tls", &p.server)
        .plain("plain")
        .dns("httpbin.test", &[LOCALHOST])
        .dns("plain.test", &[LOCALHOST]);
    let up = upstreams(base, &p).start(d);
    let real = format!("httpbin.test:{}", up.port("tls"));
    let more = resources(&up);
    let s = Sidecar::start_with_outbounds(d, up.dns_addr(), outbounds, &[], |ports| {
        let mut resources = vec![
            mesh(false),
            https_service("httpbin", "http", &real, &[ca_file(&p.ca)]),
        ];
        resources.extend(more.iter().cloned());
        resources.extend(
            ports
                .iter()
                .map(|&port| support::dataplane(port, "httpbin")),
        );
        docs(&resources)
    });
    let plain = up.port("plain");
    World {
        up,
        s,
        plain,
        ca: p.ca.ca_path().to_path_buf(),
        _dir: dir,
    }
}

impl World {
    /// `GET /get` with exactly this Host header (bytes as they are).
    fn host(&self, host: &[u8]) -> Answer {
        self.raw(&get_with_host(host))
    }

    /// [`World::host`] as a row for [`check`], labelled `Host: <h>`.
    fn host_row(&self, h: &str, want: Answer) -> Row {
        (format!("Host: {h}"), self.host(h.as_bytes()), want)
    }

    fn raw(&self, request: &[u8]) -> Answer {
        of_raw(&raw_request(self.s.listen, request))
    }

    /// [`World::host_row`] for [`wildcard_world`]: where the wildcard's `http` upstream
    /// answers, it saw the request under the name the filter let through.
    fn wild_host_row(&self, h: &str, want: Answer) -> Row {
        self.wild_row(format!("Host: {h}"), &get_with_host(h.as_bytes()), h, want)
    }

    /// `request` as a row labelled `label`; where the wildcard's `http` upstream answers, it
    /// saw the authority `judged`.
    fn wild_row(&self, label: String, request: &[u8], judged: &str, want: Answer) -> Row {
        let raw = raw_request(self.s.listen, request);
        let got = of_raw(&raw);
        if got.who == Who::Wild {
            assert_eq!(
                raw.header("x-seen-host").as_deref(),
                Some(judged),
                "{label}"
            );
        }
        (label, got, want)
    }

    /// An `https` request through the proxy port (so a CONNECT tunnel and the app's own TLS),
    /// as a row labelled `label`; where the wildcard's `tls` upstream answers, it saw the SNI
    /// `sni`.
    fn tunnel_row(&self, label: &str, c: Curl, sni: &str, want: Answer) -> Row {
        let (got, seen) = match c.proxy(self.s.proxy()).send() {
            Ok(r) => (of_curl(&r), r.header("x-seen-sni").map(str::to_string)),
            Err(e) => {
                eprintln!("{label}: no answer: {e}");
                (nobody(), None)
            }
        };
        if got.who == Who::WildTls {
            assert_eq!(seen.as_deref(), Some(sni), "{label}");
        }
        (label.to_string(), got, want)
    }

    fn curl(&self, c: Curl) -> Answer {
        match c.send() {
            Ok(r) => of_curl(&r),
            Err(e) => {
                eprintln!("no answer: {e}");
                nobody()
            }
        }
    }

    /// No request so far reached the undeclared upstream.
    fn assert_no_leak(&self) {
        assert_eq!(
            self.up.envoy.counter("http.plain.downstream_rq_total"),
            0,
            "a request reached the undeclared upstream"
        );
        assert_eq!(
            self.up.envoy.counter("http.plain.downstream_cx_total"),
            0,
            "a connection reached the undeclared upstream"
        );
    }
}

/// `GET /get` with exactly this Host header (bytes as they are).
fn get_with_host(host: &[u8]) -> Vec<u8> {
    [
        b"GET /get HTTP/1.1\r\nHost: ",
        host,
        b"\r\nConnection: close\r\n\r\n",
    ]
    .concat()
}

/// A table row: what was sent, what came back, what should have.
type Row = (String, Answer, Answer);

/// Runs every row, then reports all mismatches at once (label, got, wanted).
fn check(w: &World, rows: Vec<Row>) {
    let wrong = mismatches(&rows);
    w.assert_no_leak();
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// [`check`] for [`wildcard_world`]: also, the wildcard's upstreams saw exactly the requests
/// of the rows they should have answered, and nothing more.
fn check_wild(w: &World, rows: Vec<Row>) {
    let wanted = |who: Who| rows.iter().filter(|(_, _, want)| want.who == who).count() as u64;
    let (web, tls) = (wanted(Who::Wild), wanted(Who::WildTls));
    check(w, rows);
    assert_eq!(w.up.envoy.counter("http.wild.downstream_rq_total"), web);
    assert_eq!(w.up.envoy.counter("http.wildtls.downstream_rq_total"), tls);
}

/// [`check`] without a [`World`].
fn assert_rows(rows: &[Row]) {
    let wrong = mismatches(rows);
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

/// Prints every row; the ones whose answer is not the one wanted.
fn mismatches(rows: &[Row]) -> Vec<String> {
    let mut wrong = Vec::new();
    for (label, got, want) in rows {
        eprintln!("{label:60} -> {got}");
        if got != want {
            wrong.push(format!("{label}: got {got}, want {want}"));
        }
    }
    wrong
}

/// Names: case, trailing dots, suffixes, `#`, userinfo; and the undeclared upstream by every
/// spelling of its name and address.
#[test]
fn names_case_dots_suffixes_fragments_userinfo() {
    let w = world();
    let p = w.plain;
    let mut rows = Vec::new();
    let mut host = |h: String, want: Answer| rows.push(w.host_row(&h, want));
    host("HTTPBIN.MESH".into(), declared());
    host("HttpBin.Mesh".into(), declared());
    host("httpbin.mesh.".into(), declared());
    host("HTTPBIN.MESH.".into(), declared());
    host("httpbin.mesh..".into(), bad());
    host("httpbin.mesh.evil.example".into(), undeclared());
    host(format!("httpbin.mesh.plain.test:{p}"), undeclared());
    // `#` is not a Host character: Envoy's codec refuses it before the filter.
    host("evil.example#httpbin.mesh".into(), envoy(400));
    host(format!("plain.test:{p}#httpbin.mesh"), envoy(400));
    host("user@httpbin.mesh".into(), bad());
    host(format!("httpbin.mesh@plain.test:{p}"), bad());
    host(format!("plain.test:{p}"), undeclared());
    host(format!("PLAIN.TEST:{p}"), undeclared());
    host(format!("plain.test.:{p}"), undeclared());
    host(format!("127.0.0.1:{p}"), undeclared());
    host(format!("localhost:{p}"), undeclared());
    // curl's proxy form: userinfo in the URL goes to Authorization, never into Host.
    let got = w.curl(Curl::get("http://user:pw@httpbin.mesh/get").proxy(w.s.proxy()));
    rows.push((
        "curl -x .. http://user:pw@httpbin.mesh/get".into(),
        got,
        declared(),
    ));
    let got = w.curl(Curl::get(format!("http://user@plain.test:{p}/get")).proxy(w.s.proxy()));
    rows.push((
        format!("curl -x .. http://user@plain.test:{p}/get"),
        got,
        undeclared(),
    ));
    check(&w, rows);
}

/// Two Host headers, absolute-form URIs whose host differs from Host, userinfo in the
/// absolute form, HTTP/1.0 and HTTP/1.1 without Host.
#[test]
fn host_header_tricks_and_request_line_forms() {
    let w = world();
    let p = w.plain;
    let mut rows = Vec::new();
    let mut raw = |label: &str, req: String, want: Answer| {
        let got = w.raw(req.as_bytes());
        rows.push((label.to_string(), got, want));
    };
    raw(
        "two Host: declared first, undeclared second",
        format!("GET /get HTTP/1.1\r\nHost: httpbin.mesh\r\nHost: plain.test:{p}\r\n\r\n"),
        bad(),
    );
    raw(
        "two Host: undeclared first, declared second",
        format!("GET /get HTTP/1.1\r\nHost: plain.test:{p}\r\nHost: httpbin.mesh\r\n\r\n"),
        bad(),
    );
    raw(
        "two Host: the same twice",
        "GET /get HTTP/1.1\r\nHost: httpbin.mesh\r\nHost: httpbin.mesh\r\n\r\n".into(),
        bad(),
    );
    raw(
        "absolute-form undeclared URI, Host: httpbin.mesh",
        format!("GET http://plain.test:{p}/get HTTP/1.1\r\nHost: httpbin.mesh\r\nConnection: close\r\n\r\n"),
        undeclared(),
    );
    raw(
        "absolute-form http://httpbin.mesh/get, undeclared Host",
        format!("GET http://httpbin.mesh/get HTTP/1.1\r\nHost: plain.test:{p}\r\nConnection: close\r\n\r\n"),
        declared(),
    );
    raw(
        "absolute-form with userinfo http://user@plain.test",
        format!("GET http://user@plain.test:{p}/get HTTP/1.1\r\nHost: httpbin.mesh\r\nConnection: close\r\n\r\n"),
        undeclared(),
    );
    raw(
        "absolute-form https://plain.test, Host: httpbin.mesh",
        format!("GET https://plain.test:{p}/get HTTP/1.1\r\nHost: httpbin.mesh\r\nConnection: close\r\n\r\n"),
        filter(403, "https-url-not-served"),
    );
    raw(
        "HTTP/1.0 without Host",
        "GET /get HTTP/1.0\r\n\r\n".into(),
        envoy(426),
    );
    raw(
        "HTTP/1.0 with Host: httpbin.mesh",
        "GET /get HTTP/1.0\r\nHost: httpbin.mesh\r\n\r\n".into(),
        envoy(426),
    );
    raw(
        "HTTP/1.1 without Host",
        "GET /get HTTP/1.1\r\nConnection: close\r\n\r\n".into(),
        envoy(400),
    );
    raw(
        "HTTP/1.1 empty Host",
        "GET /get HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n".into(),
        bad(),
    );
    check(&w, rows);
}

/// Sizes and bytes curl cannot send: 64 KiB, 8 KiB, NUL, non-ASCII, not UTF-8, control bytes.
#[test]
fn oversized_and_binary_authorities() {
    let w = world();
    let mut rows = Vec::new();
    let mut host = |label: &str, h: Vec<u8>, want: Answer| {
        let got = w.host(&h);
        rows.push((label.to_string(), got, want));
    };
    host("64 KiB Host", vec![b'a'; 64 * 1024], envoy(431));
    let mut big = b"a.".repeat(4 * 1024);
    big.extend_from_slice(b"httpbin.mesh");
    host("8 KiB Host ending in .httpbin.mesh", big, bad());
    host(
        "254-byte name",
        [&[b'a'; 249][..], b".mesh"].concat(),
        bad(),
    );
    host(
        "NUL inside",
        b"httpbin.mesh\0.plain.test".to_vec(),
        envoy(400),
    );
    host("NUL at the end", b"httpbin.mesh\0".to_vec(), envoy(400));
    // Envoy's HTTP/1 codec checks Host characters: these never reach the filter (which
    // refuses them too, see host-tests/tests/hostile.rs).
    host(
        "non-ASCII UTF-8 (httpb\u{ed}n.mesh)",
        "httpbín.mesh".as_bytes().to_vec(),
        envoy(400),
    );
    host(
        "not UTF-8 (\\xff)",
        b"httpbin.mesh\xff".to_vec(),
        envoy(400),
    );
    host(
        "zero-width space",
        "httpbin.mesh\u{200b}".as_bytes().to_vec(),
        envoy(400),
    );
    host("DEL byte", b"httpbin.mesh\x7f".to_vec(), envoy(400));
    host("vertical tab", b"httpbin\x0b.mesh".to_vec(), envoy(400));
    host("space inside", b"httpbin .mesh".to_vec(), envoy(400));
    host("percent-encoded", b"%68ttpbin.mesh".to_vec(), bad());
    check(&w, rows);
}

/// Ports and IPv6 forms.
#[test]
fn ports_and_ipv6() {
    let w = world();
    let p = w.plain;
    let mut rows = Vec::new();
    let mut host = |h: String, want: Answer| rows.push(w.host_row(&h, want));
    host("httpbin.mesh:0".into(), bad());
    host("httpbin.mesh:99999".into(), bad());
    host("httpbin.mesh:080".into(), bad());
    host("httpbin.mesh:".into(), bad());
    host("httpbin.mesh:-1".into(), bad());
    host("httpbin.mesh:80".into(), declared());
    // The service is on a random port, not 443: `.mesh` on 443 is not it.
    host("httpbin.mesh:443".into(), undeclared());
    host(format!("[::1]:{p}"), undeclared());
    host(format!("[::ffff:127.0.0.1]:{p}"), undeclared());
    host(format!("[0:0:0:0:0:0:0:1]:{p}"), undeclared());
    host("[::1]".into(), undeclared());
    host("::1".into(), bad());
    host(format!("::1:{p}"), bad());
    host("[::1".into(), bad());
    host(format!("[fe80::1%25lo]:{p}"), bad());
    host(format!("127.1:{p}"), bad());
    host(format!("2130706433:{p}"), bad());
    // A DNS name as far as the rules go (not dotted-quad): undeclared, so refused.
    host(format!("0x7f.0.0.1:{p}"), undeclared());
    check(&w, rows);
}

/// CONNECT: to an undeclared host it is refused by the filter; to a declared one it is not
/// tunnelled either: no route matches CONNECT, and Envoy's reply is a 403 with what to do
/// instead. Nothing goes around the rules.
#[test]
fn connect_never_tunnels() {
    let w = world();
    let p = w.plain;
    let tls = w.up.port("tls");
    let mut rows = Vec::new();
    let mut raw = |label: String, req: String, want: Answer| {
        let got = w.raw(req.as_bytes());
        rows.push((label, got, want));
    };
    raw(
        format!("CONNECT plain.test:{p}"),
        format!("CONNECT plain.test:{p} HTTP/1.1\r\nHost: plain.test:{p}\r\n\r\n"),
        undeclared(),
    );
    raw(
        format!("CONNECT 127.0.0.1:{p}"),
        format!("CONNECT 127.0.0.1:{p} HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\n\r\n"),
        undeclared(),
    );
    raw(
        format!("CONNECT plain.test:{p}, Host: httpbin.mesh"),
        format!("CONNECT plain.test:{p} HTTP/1.1\r\nHost: httpbin.mesh\r\n\r\n"),
        undeclared(),
    );
    raw(
        "CONNECT httpbin.mesh:80 (declared)".into(),
        "CONNECT httpbin.mesh:80 HTTP/1.1\r\nHost: httpbin.mesh:80\r\n\r\n".into(),
        filter(403, "connect-not-served"),
    );
    raw(
        format!("CONNECT httpbin.test:{tls} (declared, real name)"),
        format!("CONNECT httpbin.test:{tls} HTTP/1.1\r\nHost: httpbin.test:{tls}\r\n\r\n"),
        filter(403, "connect-not-served"),
    );
    // HTTP/2 CONNECT through curl is not possible; h2c extended CONNECT is off in Envoy by
    // default.
    check(&w, rows);
    let refusal = raw_request(
        w.s.listen,
        b"CONNECT httpbin.mesh:80 HTTP/1.1\r\nHost: httpbin.mesh:80\r\n\r\n",
    );
    assert_eq!(
        refusal.body,
        "CONNECT (https_proxy) is not served here: send plain HTTP through the proxy \
         (http_proxy=http://...), and Envoy originates TLS to the service; an app that speaks TLS \
         itself connects to a tcp service's listener (a Dataplane outbound)\n"
    );
    // The declared upstream saw no CONNECT either.
    assert_eq!(w.up.envoy.counter("http.tls.downstream_rq_total"), 0);
}

/// A MeshPassthrough wildcard, `*.wild.test` (`http`), by Host and by absolute-form URI: case
/// and one trailing dot are the same name, and a label under the wildcard is one whatever it
/// spells (punycode included); two trailing dots, the wildcard itself, `*.`, the bare parent,
/// a name that only ends alike or holds the wildcard's name in the middle, a look-alike
/// (Cyrillic `і`, which Envoy's codec refuses as it is, or its punycode) are not, nor is the
/// wildcard on another port. A name let through reaches the wildcard's own upstream, under
/// that name.
#[test]
fn wildcard_names_case_dots_and_lookalikes() {
    let w = wildcard_world();
    let (p, web, tls) = (w.plain, w.up.port("wild"), w.up.port("wildtls"));
    let mut rows = Vec::new();
    let mut host = |h: String, want: Answer| rows.push(w.wild_host_row(&h, want));
    host(format!("a.wild.test:{web}"), reached(Who::Wild));
    host(format!("b.a.wild.test:{web}"), reached(Who::Wild));
    host(format!("A.WILD.TEST:{web}"), reached(Who::Wild));
    host(format!("a.wild.test.:{web}"), reached(Who::Wild));
    host(format!("xn--80a.wild.test:{web}"), reached(Who::Wild));
    host(format!("a.wild.test..:{web}"), bad());
    host(format!("wild.test.:{web}"), not_matched());
    host(format!("wild.test:{web}"), not_matched());
    host(format!("*.:{web}"), bad());
    host(format!("*.wild.test:{web}"), bad());
    host(format!("evilwild.test:{web}"), not_matched());
    host(format!("a.wild.test.evil.test:{web}"), not_matched());
    host(format!("a.w\u{456}ld.test:{web}"), envoy(400));
    host(format!("a.xn--wld-jhd.test:{web}"), not_matched());
    host(format!("a.wild.test:{p}"), not_matched());
    host(format!("a.wild.test:{tls}"), not_matched());
    host("a.wild.test".into(), not_matched());
    host(format!("plain.test:{p}"), not_matched());
    rows.push(w.wild_row(
        "absolute-form http://a.wild.test, Host: plain.test".into(),
        format!("GET http://a.wild.test:{web}/get HTTP/1.1\r\nHost: plain.test:{p}\r\nConnection: close\r\n\r\n").as_bytes(),
        &format!("a.wild.test:{web}"),
        reached(Who::Wild),
    ));
    rows.push(w.wild_row(
        "absolute-form http://plain.test, Host: a.wild.test".into(),
        format!("GET http://plain.test:{p}/get HTTP/1.1\r\nHost: a.wild.test:{web}\r\nConnection: close\r\n\r\n").as_bytes(),
        "-",
        not_matched(),
    ));
    check_wild(&w, rows);
}

/// CONNECT against the wildcard's `tls` match is judged by its target alone: a Host header
/// that names another host, or an SNI inside the tunnel that names another host (even the
/// undeclared one), changes neither what is allowed nor where the tunnel goes, which is the
/// target's own upstream; the target's case and one trailing dot do not either. A target the
/// wildcard does not allow is refused before any byte goes anywhere, as is a CONNECT to the
/// wildcard's `http` port.
#[test]
fn wildcard_connect_is_judged_by_its_target_not_its_host_or_sni() {
    let w = wildcard_world();
    let (p, web, tls) = (w.plain, w.up.port("wild"), w.up.port("wildtls"));
    let https = |host: &str, port: u16| Curl::get(format!("https://{host}:{port}/get"));
    // curl lower-cases the target it sends: the raw rows below send the others.
    let mut rows = vec![
        w.tunnel_row(
            "CONNECT a.wild.test, SNI a.wild.test",
            https("a.wild.test", tls).cacert(&w.ca),
            "a.wild.test",
            reached(Who::WildTls),
        ),
        w.tunnel_row(
            "CONNECT a.wild.test, Host: plain.test",
            https("a.wild.test", tls)
                .cacert(&w.ca)
                .proxy_header("Host", &format!("plain.test:{p}")),
            "a.wild.test",
            reached(Who::WildTls),
        ),
        w.tunnel_row(
            "CONNECT a.wild.test, SNI and inner Host plain.test",
            https("plain.test", p)
                .connect_to("plain.test", p, "a.wild.test", tls)
                .insecure(),
            "plain.test",
            reached(Who::WildTls),
        ),
    ];
    let mut connect = |target: String, host: String, want: Answer| {
        let request = format!("CONNECT {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let got = of_raw(&raw_head(w.s.listen, request.as_bytes()));
        rows.push((format!("CONNECT {target}, Host: {host}"), got, want));
    };
    let allowed = format!("a.wild.test:{tls}");
    let (upper, dot) = (format!("A.WILD.TEST:{tls}"), format!("a.wild.test.:{tls}"));
    connect(upper.clone(), upper.clone(), tunnel_opened());
    connect(dot.clone(), dot.clone(), tunnel_opened());
    connect(format!("plain.test:{p}"), allowed.clone(), not_matched());
    connect(format!("127.0.0.1:{p}"), allowed.clone(), not_matched());
    connect(
        format!("a.wild.test:{web}"),
        format!("a.wild.test:{web}"),
        not_matched(),
    );
    for target in [
        format!("wild.test:{tls}"),
        format!("evilwild.test:{tls}"),
        format!("a.wild.test.evil.test:{tls}"),
        format!("a.xn--wld-jhd.test:{tls}"),
    ] {
        connect(target.clone(), target, not_matched());
    }
    let dots = format!("a.wild.test..:{tls}");
    connect(dots.clone(), dots, bad());
    // A CONNECT target is an authority to Envoy's codec, which refuses `*` and non-ASCII in
    // it before the filter.
    for target in [
        format!("*.wild.test:{tls}"),
        format!("a.w\u{456}ld.test:{tls}"),
    ] {
        connect(target.clone(), target, envoy(400));
    }
    let answered = rows.len();
    check_wild(&w, rows);
    // Every tunnel was judged under the target it names, whatever its Host header said, and
    // led to the wildcard's `tls` upstream.
    let log = w.s.access_log(answered);
    let mut tunnels: Vec<(&str, &str)> = log
        .iter()
        .filter(|l| l["method"] == "CONNECT" && l["response_code"] == 200)
        .filter_map(|l| Some((l["authority"].as_str()?, l["upstream_host"].as_str()?)))
        .collect();
    tunnels.sort_unstable();
    let wildtls = format!("127.0.0.1:{tls}");
    let mut want: Vec<(&str, &str)> = [&upper, &dot, &allowed, &allowed, &allowed]
        .iter()
        .map(|target| (target.as_str(), wildtls.as_str()))
        .collect();
    want.sort_unstable();
    assert_eq!(tunnels, want, "{log:?}");
}

/// HTTP/2 clients (h2c, prior knowledge): the same rules.
#[test]
fn http2_clients() {
    let w = world();
    let p = w.plain;
    let h2 = |host: &str| {
        Curl::get(format!("{}/get", w.s.proxy()))
            .host(host)
            .http2_prior_knowledge()
    };
    let mut rows = Vec::new();
    for (host, want) in [
        ("httpbin.mesh".to_string(), declared()),
        ("HTTPBIN.MESH.".to_string(), declared()),
        (format!("plain.test:{p}"), undeclared()),
        (format!("127.0.0.1:{p}"), undeclared()),
        ("httpbin.mesh.evil.example".to_string(), undeclared()),
        // Envoy's HTTP/2 codec resets a stream whose :authority has userinfo or `#`.
        ("user@httpbin.mesh".to_string(), nobody()),
        ("evil.example#httpbin.mesh".to_string(), nobody()),
        ("httpbin.mesh:99999".to_string(), bad()),
        ("httpbin.mesh:080".to_string(), bad()),
        ("httpbin.mesh:0".to_string(), bad()),
    ] {
        let got = w.curl(h2(&host));
        rows.push((format!("h2c :authority {host}"), got, want));
    }
    // (curl speaks HTTP/1.1 to a proxy even with --http2-prior-knowledge: no h2c proxy form.)
    check(&w, rows);
    // Ten lines: the two streams Envoy's codec reset are logged as such (`DPE`, with
    // `http2.invalid...` details), the others as HTTP/2 answers.
    let log = w.s.access_log(10);
    for l in &log {
        if l["response_code"] == 0 {
            assert_eq!(l["response_flags"], "DPE", "{l}");
            assert!(
                l["response_code_details"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("http2.")),
                "{l}"
            );
        } else {
            assert_eq!(l["protocol"], "HTTP/2", "{l}");
        }
    }
}

/// What each stream of [`concurrent_http2_streams_are_each_decided_by_their_own_authority`]
/// asks for, by its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamKind {
    /// `httpbin.mesh`: forwarded, rewritten, its requested authority kept.
    Mesh,
    /// An undeclared host: refused by the filter.
    Undeclared,
    /// The real authority: forwarded as it is, no requested authority.
    Real,
    /// `httpbin.mesh`, its request left open and reset by the client after the next stream's
    /// headers.
    MeshReset,
}

impl StreamKind {
    fn of(i: usize) -> StreamKind {
        [
            StreamKind::Mesh,
            StreamKind::Undeclared,
            StreamKind::MeshReset,
            StreamKind::Real,
        ][i % 4]
    }
}

/// Many HTTP/2 streams written at once on one connection, a quarter of them reset by the
/// client between other streams' headers: each is decided by its own `:authority` and logged
/// with it. The module keeps no table of streams (no `proxy_on_delete`): it takes a stream's
/// root from the stream Envoy created last, which holds only because Envoy creates each
/// stream's context in the call that hands over its request headers, however the streams'
/// frames interleave. A stream decided out of that order would show here as a 500
/// (`UNCONFIGURED_DETAILS`), another stream's answer, or another stream's
/// `requested_authority`.
#[test]
fn concurrent_http2_streams_are_each_decided_by_their_own_authority() {
    use support::h2c::{self, H2Request, StreamEnd};

    const STREAMS: usize = 64;
    let w = world();
    let real = format!("httpbin.test:{}", w.up.port("tls"));
    let undeclared = format!("plain.test:{}", w.plain);
    let requests: Vec<H2Request> = (0..STREAMS)
        .map(|i| {
            let kind = StreamKind::of(i);
            let authority = match kind {
                StreamKind::Mesh | StreamKind::MeshReset => "httpbin.mesh",
                StreamKind::Undeclared => &undeclared,
                StreamKind::Real => &real,
            };
            H2Request {
                authority: authority.to_string(),
                path: format!("/stream-{i}"),
                reset: kind == StreamKind::MeshReset,
            }
        })
        .collect();
    let proxy = std::net::SocketAddr::from((LOCALHOST, w.s.listen));
    let ends = h2c::streams(proxy, &requests, WAIT).unwrap();
    for (i, end) in ends.iter().enumerate() {
        let want = match StreamKind::of(i) {
            StreamKind::MeshReset => StreamEnd::ResetByClient,
            _ => StreamEnd::Answered,
        };
        assert_eq!(*end, want, "stream {i}: {ends:?}");
    }
    let log = w.s.access_log(STREAMS);
    let mut seen = vec![false; STREAMS];
    for l in &log {
        let i: usize = l["path"]
            .as_str()
            .and_then(|p| p.strip_prefix("/stream-"))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not one of the streams: {l}"));
        seen[i] = true;
        assert_eq!(l["protocol"], "HTTP/2", "{l}");
        let requested = &l["requested_authority"];
        match StreamKind::of(i) {
            StreamKind::Mesh => {
                assert_eq!(l["response_code"], 200, "{l}");
                assert_eq!(l["authority"], real.as_str(), "{l}");
                assert_eq!(requested, "httpbin.mesh", "{l}");
                assert_eq!(l["external_service"], "httpbin", "{l}");
            }
            StreamKind::Undeclared => {
                assert_eq!(l["response_code"], 403, "{l}");
                assert_eq!(l["denied"], "undeclared-host", "{l}");
                assert!(requested.is_null(), "{l}");
            }
            StreamKind::Real => {
                assert_eq!(l["response_code"], 200, "{l}");
                assert!(requested.is_null(), "{l}");
                assert_eq!(l["external_service"], "httpbin", "{l}");
            }
            StreamKind::MeshReset => {
                // Decided (rewritten, its name kept), then reset before any answer.
                assert_eq!(l["response_code"], 0, "{l}");
                assert_eq!(l["authority"], real.as_str(), "{l}");
                assert_eq!(requested, "httpbin.mesh", "{l}");
            }
        }
    }
    assert!(seen.iter().all(|s| *s), "streams never logged: {seen:?}");
    // They were streams of one connection.
    assert_eq!(
        w.s.envoy
            .counter("http.outbound_http.downstream_cx_http2_total"),
        1
    );
    assert_eq!(
        w.s.envoy
            .counter("http.outbound_http.downstream_rq_http2_total"),
        STREAMS as u64
    );
    w.assert_no_leak();
}

/// The transparent proxy's VIP listeners: whatever the app sends to a service's VIP reaches
/// that service or nothing. A `Host` naming another service or an undeclared host, a request
/// in proxy form for another host, and bytes that are not HTTP at all never reach anyone else.
#[test]
fn a_vip_listener_reaches_its_own_service_whatever_the_request_names() {
    let w = crate::transparent::World::start(false, true);
    let from_httpbin = |r: &support::Response| {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.header("x-upstream-name"), Some("httpbin"), "{r:?}");
        assert_eq!(r.header("x-seen-host"), Some("httpbin.test:8443"), "{r:?}");
    };
    from_httpbin(&w.curl("http://httpbin.mesh/").host("plain.test:8080").run());
    from_httpbin(&w.curl("http://httpbin.mesh/").host("other.test:8081").run());
    from_httpbin(
        &w.curl("http://other.test:8081/")
            .proxy("http://httpbin.mesh:80")
            .run(),
    );

    let garbage = w.tcp_exchange("httpbin.mesh", 80, r"\x16\x03\x01\x02\x00garbage\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage:?}");

    assert_eq!(w.world_stat("http.httpbin.downstream_rq_total"), 3);
    assert_eq!(w.world_stat("http.plainweb.downstream_cx_total"), 0);
    assert_eq!(w.world_stat("http.undeclared.downstream_cx_total"), 0);
}

// ---------------------------------------------------------------------------------------------
// Upgrades, Envoy's internal headers, and the refusals Envoy makes itself
// ---------------------------------------------------------------------------------------------

/// A declared upstream that answers every request `101 Switching Protocols` and then writes
/// `TUNNEL-OPEN`: were Envoy to pass the 101 on, the connection would be a byte pipe the filter
/// never sees again. Counts the requests and the bytes that came after a head.
struct Upgrading {
    addr: std::net::SocketAddr,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    tunnelled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Upgrading {
    fn start() -> Upgrading {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let tunnelled = Arc::new(AtomicUsize::new(0));
        let (r, t) = (requests.clone(), tunnelled.clone());
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                let (r, t) = (r.clone(), t.clone());
                std::thread::spawn(move || {
                    s.set_read_timeout(Some(WAIT)).unwrap();
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match s.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                    let _ = s.write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\
                          Upgrade: CONNECT\r\n\r\nTUNNEL-OPEN\n",
                    );
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = s.read(&mut buf) {
                        t.fetch_add(n, Ordering::SeqCst);
                    }
                });
            }
        });
        Upgrading {
            addr,
            requests,
            tunnelled,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn tunnelled(&self) -> usize {
        self.tunnelled.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// No upgrade is served, on the proxy listener and on a Dataplane http outbound alike: Envoy
/// refuses `Upgrade: CONNECT` (any spelling), websocket and any other token with 403
/// `upgrade-not-served`, and CONNECT with 403 `connect-not-served`, before the filter and
/// before any upstream, even a declared one that would answer 101. `Upgrade: h2c` is not an
/// upgrade for Envoy (it drops the header): the request is a plain GET, and the upstream's 101
/// to it opens no tunnel either. Each refusal is logged and counted with its reason.
#[test]
fn upgrades_never_become_tunnels() {
    let up = Upgrading::start();
    let dir = test_dir();
    let s = Sidecar::start_with_outbounds(dir.path(), None, 1, &[], |ports| {
        docs(&[
            mesh(false),
            support::http_service("ws", &up.addr.to_string()),
            support::dataplane(ports[0], "ws"),
        ])
    });
    let upgrade = |port: u16, token: &str| {
        raw_request(
            port,
            format!(
                "GET /chat HTTP/1.1\r\nHost: ws.mesh\r\nConnection: Upgrade\r\nUpgrade: {token}\r\n\r\nbytes for a tunnel\n"
            )
            .as_bytes(),
        )
    };
    let tokens = [
        "CONNECT",
        "connect",
        "CONNECT ",
        "websocket",
        "WebSocket",
        "x-anything",
    ];
    let mut rows = Vec::new();
    for (listener, port) in [("proxy", s.listen), ("outbound", s.outbound[0])] {
        for token in tokens {
            let got = upgrade(port, token);
            assert!(!got.body.contains("TUNNEL-OPEN"), "{got:?}");
            rows.push((
                format!("{listener}: Upgrade: {token:?}"),
                of_raw(&got),
                filter(403, "upgrade-not-served"),
            ));
        }
        let connect = raw_request(
            port,
            format!("CONNECT {0} HTTP/1.1\r\nHost: {0}\r\n\r\n", up.addr).as_bytes(),
        );
        rows.push((
            format!("{listener}: CONNECT {}", up.addr),
            of_raw(&connect),
            filter(403, "connect-not-served"),
        ));
    }
    assert_rows(&rows);
    assert_eq!(up.requests(), 0, "an upgrade reached the upstream");

    // h2c: a plain GET for Envoy; the upstream's 101 to it reaches the app as a bare status
    // line, with neither the upstream's bytes after it nor a way to send any more.
    let h2c = raw_request(
        s.listen,
        b"GET /h2c HTTP/1.1\r\nHost: ws.mesh\r\nConnection: Upgrade, HTTP2-Settings\r\n\
          Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\nbytes for a tunnel\n",
    );
    eprintln!("h2c -> {h2c:?}");
    assert!(!h2c.body.contains("TUNNEL-OPEN"), "{h2c:?}");
    assert!(
        !h2c.head.to_ascii_lowercase().contains("upgrade"),
        "{h2c:?}"
    );
    assert_eq!(up.requests(), 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(up.tunnelled(), 0, "bytes went through a tunnel");

    let refusals = 2 * tokens.len() + 2;
    let log = s.access_log(refusals + 1);
    for line in &log[..refusals] {
        // No route matches CONNECT; every other upgrade is refused as such.
        let want = if line["method"] == "CONNECT" {
            ("connect-not-served", 403, "route_not_found")
        } else {
            ("upgrade-not-served", 403, "upgrade_failed")
        };
        let got = (
            line["denied"].as_str().unwrap_or("-"),
            line["response_code"].as_u64().unwrap_or(0),
            line["response_code_details"].as_str().unwrap_or("-"),
        );
        assert_eq!(got, want, "{line}");
    }
    for prefix in [
        "outbound_http".to_string(),
        format!("outbound_127_0_0_1_{}", s.outbound[0]),
    ] {
        s.expect_counter(
            &format!("http.{prefix}.downstream_rq_ws_on_non_ws_route"),
            tokens.len() as u64,
        );
    }
}

/// Envoy's internal headers from the app: every client is external, so Envoy strips what it
/// would honour (a retry policy, a timeout) and what the access log reads
/// (`x-envoy-original-path`), also when the app claims to be loopback in `x-forwarded-for`;
/// none reaches the upstream, and Envoy adds none about the app (`x-envoy-external-address`).
#[test]
fn envoy_internal_headers_from_the_app_are_not_trusted() {
    let dir = test_dir();
    let d = dir.path();
    let up = UpstreamBuilder::new()
        .plain("web")
        .echo_request_header("x-envoy-original-path")
        .echo_request_header("x-envoy-external-address")
        .echo_request_header("x-envoy-internal")
        .start(d);
    let failing = support::Scripted::start(vec![support::Reply::status(500)]);
    let slow = support::Scripted::start(vec![
        support::Reply::status(200).after(Duration::from_millis(300))
    ]);
    let s = Sidecar::start(
        d,
        None,
        &docs(&[
            mesh(false),
            support::http_service("web", &up.addr("web").to_string()),
            support::http_service("failing", &failing.addr().to_string()),
            support::http_service("slow", &slow.addr().to_string()),
        ]),
        &[],
    );
    let spoofed = |url: &str| {
        s.via_proxy(url)
            .header("x-forwarded-for", "127.0.0.1")
            .header("x-envoy-internal", "true")
            .header("x-envoy-original-path", "/healthz")
    };

    let r = spoofed("http://web.mesh/real").run();
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-seen-x-envoy-original-path"), None, "{r:?}");
    assert_eq!(r.header("x-seen-x-envoy-external-address"), None, "{r:?}");
    assert_eq!(r.header("x-seen-x-envoy-internal"), None, "{r:?}");
    let r = spoofed("http://undeclared.test/refused").run();
    assert_eq!(r.status, 403, "{r:?}");

    // Honoured, `x-envoy-retry-on` would make 4 attempts, and the 1 ms timeout a 504.
    let r = spoofed("http://failing.mesh/")
        .header("x-envoy-retry-on", "5xx")
        .header("x-envoy-max-retries", "3")
        .run();
    assert_eq!(r.status, 500, "{r:?}");
    assert_eq!(failing.requests(), 1);
    for timeout in [
        "x-envoy-upstream-rq-timeout-ms",
        "x-envoy-upstream-rq-per-try-timeout-ms",
    ] {
        let r = spoofed("http://slow.mesh/").header(timeout, "1").run();
        assert_eq!(r.status, 200, "{timeout}: {r:?}");
    }

    let log = s.access_log(5);
    assert_eq!(log[0]["path"], "/real", "{}", log[0]);
    assert_eq!(log[1]["path"], "/refused", "{}", log[1]);
    assert_eq!(log[1]["denied"], "undeclared-host", "{}", log[1]);
}

/// Every refusal carries its reason, in the reply (`x-external-service-denied`) and the access
/// log's `denied`, and is counted, whichever layer makes it: Envoy's codec and connection
/// manager (an upgrade, CONNECT, a path that is not absolute: counted by Envoy), or the filter
/// (`denied.<reason>`), a gRPC request's refusal included, which is HTTP 200 with
/// `grpc-status: 7` as gRPC wants and logs that status and its reason.
#[test]
fn every_refusal_is_logged_and_counted_with_its_reason() {
    let w = world();
    let p = w.plain;
    let mut rows = Vec::new();
    let mut raw = |label: &str, req: String, want: Answer| {
        rows.push((label.to_string(), w.raw(req.as_bytes()), want));
    };
    raw(
        "websocket to a declared host",
        "GET /chat HTTP/1.1\r\nHost: httpbin.mesh\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n".into(),
        filter(403, "upgrade-not-served"),
    );
    raw(
        "OPTIONS *",
        "OPTIONS * HTTP/1.1\r\nHost: httpbin.mesh\r\n\r\n".into(),
        filter(404, "bad-path"),
    );
    raw(
        "CONNECT to a declared host",
        "CONNECT httpbin.mesh:80 HTTP/1.1\r\nHost: httpbin.mesh:80\r\n\r\n".into(),
        filter(403, "connect-not-served"),
    );
    raw(
        "gRPC to an undeclared host",
        format!(
            "POST /pkg.Service/Method HTTP/1.1\r\nHost: plain.test:{p}\r\ncontent-type: application/grpc\r\ncontent-length: 0\r\n\r\n"
        ),
        filter(200, "undeclared-host"),
    );
    check(&w, rows);

    let log = w.s.access_log(4);
    let seen: Vec<(String, u64, Option<u64>)> = log
        .iter()
        .map(|l| {
            (
                l["denied"].as_str().unwrap_or("-").to_string(),
                l["response_code"].as_u64().unwrap_or(0),
                l["grpc_status"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("upgrade-not-served".to_string(), 403, None),
            ("bad-path".to_string(), 404, None),
            ("connect-not-served".to_string(), 403, None),
            ("undeclared-host".to_string(), 200, Some(7)),
        ],
        "{log:?}"
    );
    w.s.expect_counter("http.outbound_http.downstream_rq_ws_on_non_ws_route", 1);
    w.s.expect_counter("http.outbound_http.downstream_rq_non_relative_path", 1);
    w.s.expect_counter("http.outbound_http.no_route", 1);
    w.s.denied("undeclared-host", 1);
}

/// A Dataplane http outbound is bound to one service: the filter does not judge the
/// authority there (the listener names the service), it sends every request to that service
/// with the service's own authority. A malformed or undeclared `Host` reaches nobody else,
/// and the upstream never sees it.
#[test]
fn a_dataplane_http_outbound_sends_any_authority_to_its_service_as_its_own() {
    let w = world_with(1);
    let p = w.plain;
    let real = format!("httpbin.test:{}", w.up.port("tls"));
    let outbound = w.s.outbound[0];
    let mut rows = Vec::new();
    for host in [
        format!("user@plain.test:{p}"),
        format!("httpbin.mesh@plain.test:{p}"),
        format!("plain.test:{p}"),
        "httpbin.mesh:0".to_string(),
        "[::1".to_string(),
        "".to_string(),
    ] {
        let got = raw_request(
            outbound,
            format!("GET /get HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(
            got.header("x-seen-host"),
            Some(real.clone()),
            "{host}: {got:?}"
        );
        rows.push((format!("outbound, Host: {host}"), of_raw(&got), declared()));
    }
    check(&w, rows);
}

/// Request smuggling and pipelining: a second request hidden in a first one's body
/// (`Content-Length` against `Transfer-Encoding`, a bad chunk, `Transfer-Encoding` spelled
/// oddly) or sent right after it on one connection is judged as a request of its own, or
/// refused with the first: it never reaches the undeclared upstream.
#[test]
fn smuggled_and_pipelined_requests_are_judged_each() {
    let w = world();
    let p = w.plain;
    let hidden = format!("GET /get HTTP/1.1\r\nHost: plain.test:{p}\r\n\r\n");
    let mut rows = Vec::new();
    let mut raw = |label: &str, req: String, want: Answer| {
        rows.push((label.to_string(), w.raw(req.as_bytes()), want));
    };
    raw(
        "CL.TE: Content-Length and Transfer-Encoding: chunked",
        format!(
            "POST /post HTTP/1.1\r\nHost: httpbin.mesh\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{hidden}",
            5 + hidden.len()
        ),
        envoy(400),
    );
    raw(
        "TE.CL: a chunk that holds a request",
        format!(
            "POST /post HTTP/1.1\r\nHost: httpbin.mesh\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{:x}\r\n{hidden}\r\n0\r\n\r\n",
            hidden.len()
        ),
        envoy(400),
    );
    raw(
        "Transfer-Encoding: xchunked",
        format!(
            "POST /post HTTP/1.1\r\nHost: httpbin.mesh\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{hidden}"
        ),
        envoy(501),
    );
    raw(
        "two Content-Length",
        format!(
            "POST /post HTTP/1.1\r\nHost: httpbin.mesh\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{hidden}",
            hidden.len()
        ),
        envoy(400),
    );
    check(&w, rows);

    // Pipelined: declared, then undeclared, on one connection; each gets its own answer.
    let mut s = TcpStream::connect(("127.0.0.1", w.s.listen)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(
        format!(
            "GET /get HTTP/1.1\r\nHost: httpbin.mesh\r\n\r\nGET /get HTTP/1.1\r\nHost: plain.test:{p}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut answers = String::new();
    let _ = s.read_to_string(&mut answers);
    let statuses: Vec<&str> = answers
        .lines()
        .filter(|l| l.starts_with("HTTP/1.1 "))
        .collect();
    assert_eq!(
        statuses,
        ["HTTP/1.1 200 OK", "HTTP/1.1 403 Forbidden"],
        "{answers}"
    );
    assert!(
        answers.contains("x-external-service-denied: undeclared-host"),
        "{answers}"
    );
    w.assert_no_leak();
}
