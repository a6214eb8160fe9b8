//! A test upstream made of a second Envoy: HTTP / TLS / mTLS / HTTP/2 / TCP listeners that
//! echo what they saw, plus an optional DNS server (UDP `envoy.filters.udp.dns_filter`).
//!
//! Every HTTP listener answers 200 with body `hello from <listener>\n` and these headers:
//!
//! | header | value |
//! |---|---|
//! | `x-upstream-name` | the listener name |
//! | `x-seen-sni` | `%REQUESTED_SERVER_NAME%` (SNI; absent without TLS or SNI) |
//! | `x-seen-host` | `%REQ(:AUTHORITY)%` |
//! | `x-seen-path` | `%REQ(:PATH)%` |
//! | `x-seen-method` | `%REQ(:METHOD)%` |
//! | `x-seen-protocol` | `%PROTOCOL%` (`HTTP/1.1`, `HTTP/2`) |
//! | `x-seen-peer-subject` | `%DOWNSTREAM_PEER_SUBJECT%` (client cert subject, e.g. `CN=app`) |
//! | `x-seen-tls-version` | `%DOWNSTREAM_TLS_VERSION%` (`TLSv1.2`, `TLSv1.3`) |
//! | `x-seen-<h>` | `%REQ(<h>)%` for each [`UpstreamBuilder::echo_request_header`] |
//!
//! Envoy leaves out a header whose value is empty, so "absent" means "none seen".
//! The DNS server logs each query's name on stdout (`{"dns_query":"<name>"}`).
//! TCP listeners echo every byte back (`envoy.filters.network.echo`). A TLS listener with
//! the network `direct_response` filter loses its answer (it writes before the handshake),
//! hence echo.
//! All listeners bind port 0 on 127.0.0.1 unless [`UpstreamBuilder::at`] says otherwise; ask
//! [`Upstream::port`] for the real port.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use crate::certs::{Ca, CertKey};
use crate::envoy::{Envoy, EnvoyOptions};

const DNS_LISTENER: &str = "__dns";

#[derive(Clone, Debug)]
enum Kind {
    Plain,
    Tls {
        cert: CertKey,
    },
    /// HTTPS that offers TLS 1.2 only.
    Tls12 {
        cert: CertKey,
    },
    Mtls {
        cert: CertKey,
        client_ca: String,
    },
    H2 {
        cert: CertKey,
    },
    Tcp,
    TcpTls {
        cert: CertKey,
    },
}

/// Builds the upstream Envoy's listeners.
#[derive(Clone, Debug, Default)]
pub struct UpstreamBuilder {
    listeners: Vec<(String, Kind)>,
    dns: Vec<(String, Vec<IpAddr>)>,
    echo: Vec<String>,
    /// Listeners that bind somewhere else than 127.0.0.1:0.
    addresses: BTreeMap<String, SocketAddr>,
    /// No `x-seen-*` / `x-upstream-name` headers ([`UpstreamBuilder::without_echo`]).
    bare: bool,
}

impl UpstreamBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Plain HTTP (HTTP/1.1, and HTTP/2 with prior knowledge).
    pub fn plain(mut self, name: &str) -> Self {
        self.listeners.push((name.to_string(), Kind::Plain));
        self
    }

    /// HTTPS with this server certificate (TLS 1.2..1.3, no ALPN: HTTP/1.1).
    pub fn tls(mut self, name: &str, cert: &CertKey) -> Self {
        let cert = cert.clone();
        self.listeners.push((name.to_string(), Kind::Tls { cert }));
        self
    }

    /// HTTPS that offers TLS 1.2 and nothing newer (a client that asks for TLS 1.3 only is
    /// refused).
    pub fn tls12_only(mut self, name: &str, cert: &CertKey) -> Self {
        let cert = cert.clone();
        self.listeners
            .push((name.to_string(), Kind::Tls12 { cert }));
        self
    }

    /// HTTPS that requires a client certificate signed by `client_ca`.
    pub fn mtls(mut self, name: &str, cert: &CertKey, client_ca: &Ca) -> Self {
        let kind = Kind::Mtls {
            cert: cert.clone(),
            client_ca: client_ca.ca_path().display().to_string(),
        };
        self.listeners.push((name.to_string(), kind));
        self
    }

    /// HTTPS offering ALPN `h2,http/1.1`.
    pub fn h2(mut self, name: &str, cert: &CertKey) -> Self {
        let cert = cert.clone();
        self.listeners.push((name.to_string(), Kind::H2 { cert }));
        self
    }

    /// Raw TCP echo.
    pub fn tcp(mut self, name: &str) -> Self {
        self.listeners.push((name.to_string(), Kind::Tcp));
        self
    }

    /// Raw TCP echo inside TLS with this certificate.
    pub fn tcp_tls(mut self, name: &str, cert: &CertKey) -> Self {
        let cert = cert.clone();
        self.listeners
            .push((name.to_string(), Kind::TcpTls { cert }));
        self
    }

    /// Also serve DNS (UDP, A/AAAA from an inline table): `name` resolves to `ips`.
    pub fn dns(mut self, name: &str, ips: &[IpAddr]) -> Self {
        self.dns.push((name.to_string(), ips.to_vec()));
        self
    }

    /// Binds the DNS server to `address` instead of 127.0.0.1:0.
    pub fn dns_at(mut self, address: SocketAddr) -> Self {
        self.addresses.insert(DNS_LISTENER.to_string(), address);
        self
    }

    /// Binds the listener added last to `address` instead of 127.0.0.1:0, e.g. a well-known
    /// port (443, 80) on a loopback address of its own (`127.x.y.z`), so that tests running at
    /// the same time do not meet. Privileged ports need root (see [`loopback_ports_bindable`]).
    pub fn at(mut self, address: SocketAddr) -> Self {
        let (name, _) = self.listeners.last().expect("at() follows a listener");
        self.addresses.insert(name.clone(), address);
        self
    }

    /// Echo this request header back as `x-seen-<name>` on every HTTP listener.
    pub fn echo_request_header(mut self, name: &str) -> Self {
        self.echo.push(name.to_ascii_lowercase());
        self
    }

    /// HTTP listeners answer without the echo headers: the cheapest upstream, for the bench.
    pub fn without_echo(mut self) -> Self {
        self.bare = true;
        self
    }

    /// The bootstrap YAML (admin and every listener on 127.0.0.1 port 0).
    pub fn yaml(&self) -> String {
        let mut y = String::from(
            "admin:\n  address: {socket_address: {address: 127.0.0.1, port_value: 0}}\n\
             static_resources:\n  listeners:\n",
        );
        for (name, kind) in &self.listeners {
            y.push_str(&self.listener_yaml(name, kind));
        }
        if !self.dns.is_empty() {
            let dns = self
                .addresses
                .get(DNS_LISTENER)
                .copied()
                .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
            let _ = write!(
                y,
                "  - name: {DNS_LISTENER}\n    address: {{socket_address: {{protocol: UDP, address: \"{}\", port_value: {}}}}}\n    listener_filters:\n    - name: envoy.filters.udp.dns_filter\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.filters.udp.dns_filter.v3.DnsFilterConfig\n        stat_prefix: test_dns\n        access_log:\n        - name: envoy.access_loggers.stdout\n          typed_config:\n            \"@type\": type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog\n            log_format: {{json_format: {{dns_query: \"%QUERY_NAME%\"}}}}\n        server_config:\n          inline_dns_table:\n            virtual_domains:\n",
                dns.ip(),
                dns.port()
            );
            for (name, ips) in &self.dns {
                let ips: Vec<String> = ips.iter().map(|ip| format!("\"{ip}\"")).collect();
                let _ = writeln!(
                    y,
                    "            - name: {name}\n              endpoint: {{address_list: {{address: [{}]}}}}",
                    ips.join(", ")
                );
            }
        }
        y
    }

    fn listener_yaml(&self, name: &str, kind: &Kind) -> String {
        let tls = match kind {
            Kind::Plain | Kind::Tcp => None,
            Kind::Tls { cert } | Kind::TcpTls { cert } => {
                Some(downstream_tls(cert, None, false, TLS_1_3))
            }
            Kind::Tls12 { cert } => Some(downstream_tls(cert, None, false, "TLSv1_2")),
            Kind::Mtls { cert, client_ca } => {
                Some(downstream_tls(cert, Some(client_ca), false, TLS_1_3))
            }
            Kind::H2 { cert } => Some(downstream_tls(cert, None, true, TLS_1_3)),
        };
        let address = self
            .addresses
            .get(name)
            .copied()
            .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)));
        let mut y = format!(
            "  - name: {name}\n    address: {{socket_address: {{address: \"{}\", port_value: {}}}}}\n",
            address.ip(),
            address.port()
        );
        if tls.is_some() {
            // Without tls_inspector, %REQUESTED_SERVER_NAME% stays empty.
            y.push_str(
                "    listener_filters:\n    - name: envoy.filters.listener.tls_inspector\n      typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector}\n",
            );
        }
        y.push_str("    filter_chains:\n    - filters:\n");
        match kind {
            Kind::Tcp | Kind::TcpTls { .. } => {
                y.push_str(
                    "      - name: envoy.filters.network.echo\n        typed_config: {\"@type\": type.googleapis.com/envoy.extensions.filters.network.echo.v3.Echo}\n",
                );
            }
            _ => {
                let mut headers = String::new();
                let mut add = |k: &str, v: &str| {
                    let _ = writeln!(
                        headers,
                        "              - header: {{key: {k}, value: \"{v}\"}}"
                    );
                };
                add("x-upstream-name", name);
                add("x-seen-sni", "%REQUESTED_SERVER_NAME%");
                add("x-seen-host", "%REQ(:AUTHORITY)%");
                add("x-seen-path", "%REQ(:PATH)%");
                add("x-seen-method", "%REQ(:METHOD)%");
                add("x-seen-protocol", "%PROTOCOL%");
                add("x-seen-peer-subject", "%DOWNSTREAM_PEER_SUBJECT%");
                add("x-seen-tls-version", "%DOWNSTREAM_TLS_VERSION%");
                for h in &self.echo {
                    add(&format!("x-seen-{h}"), &format!("%REQ({h})%"));
                }
                if self.bare {
                    // `response_headers_to_add:` with nothing after it is null: no headers.
                    headers.clear();
                }
                let _ = write!(
                    y,
                    "      - name: envoy.filters.network.http_connection_manager
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {name}
          codec_type: AUTO
          route_config:
            virtual_hosts:
            - name: all
              domains: [\"*\"]
              routes:
              - match: {{prefix: \"/\"}}
                direct_response: {{status: 200, body: {{inline_string: \"hello from {name}\\n\"}}}}
              response_headers_to_add:
{headers}          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"
                );
            }
        }
        if let Some(tls) = tls {
            y.push_str(&tls);
        }
        y
    }

    /// Starts the upstream Envoy in `dir` (files `upstream.*`).
    pub fn start(self, dir: &Path) -> Upstream {
        self.start_named(dir, "upstream")
    }

    /// Starts it under another name (for several upstreams in one test).
    pub fn start_named(self, dir: &Path, name: &str) -> Upstream {
        let envoy = Envoy::try_start(dir, name, &self.yaml(), &EnvoyOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let addrs = envoy.listeners();
        Upstream { envoy, addrs }
    }
}

/// The newest TLS version a listener offers, unless it says otherwise.
const TLS_1_3: &str = "TLSv1_3";

fn downstream_tls(cert: &CertKey, client_ca: Option<&String>, h2: bool, max: &str) -> String {
    let mut y = String::from(
        "      transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
",
    );
    if client_ca.is_some() {
        y.push_str("          require_client_certificate: true\n");
    }
    let _ = write!(
        y,
        "          common_tls_context:
            tls_params: {{tls_minimum_protocol_version: TLSv1_2, tls_maximum_protocol_version: {max}}}
            tls_certificates:
            - certificate_chain: {{filename: \"{}\"}}
              private_key: {{filename: \"{}\"}}
",
        cert.cert_path.display(),
        cert.key_path.display()
    );
    if h2 {
        y.push_str("            alpn_protocols: [\"h2\", \"http/1.1\"]\n");
    }
    if let Some(ca) = client_ca {
        let _ = writeln!(
            y,
            "            validation_context: {{trusted_ca: {{filename: \"{ca}\"}}}}"
        );
    }
    y
}

/// A running upstream Envoy.
pub struct Upstream {
    pub envoy: Envoy,
    addrs: BTreeMap<String, SocketAddr>,
}

impl Upstream {
    /// The port of a listener.
    pub fn port(&self, listener: &str) -> u16 {
        self.addr(listener).port()
    }

    /// The address a listener is bound to (`127.0.0.1:<port>` unless [`UpstreamBuilder::at`]).
    pub fn addr(&self, listener: &str) -> SocketAddr {
        *self
            .addrs
            .get(listener)
            .unwrap_or_else(|| panic!("upstream has no listener '{listener}'"))
    }

    /// The DNS server's UDP address, when [`UpstreamBuilder::dns`] was used.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.addrs.get(DNS_LISTENER).copied()
    }
}

/// The `typed_dns_resolver_config` block that points Envoy's c-ares resolver at `dns`,
/// indented by `indent` spaces. Valid at the top of the bootstrap (default for every
/// cluster and DNS cache), in a `Cluster`, or in a dynamic forward proxy `dns_cache_config`.
pub fn dns_resolver_yaml(dns: SocketAddr, indent: usize) -> String {
    let pad = " ".repeat(indent);
    format!(
        "{pad}typed_dns_resolver_config:
{pad}  name: envoy.network.dns_resolver.cares
{pad}  typed_config:
{pad}    \"@type\": type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig
{pad}    resolvers:
{pad}    - socket_address: {{address: \"{}\", port_value: {}}}
{pad}    use_resolvers_as_fallback: false
{pad}    dns_resolver_options: {{use_tcp_for_dns_lookups: false, no_default_search_domain: true}}
",
        dns.ip(),
        dns.port()
    )
}

/// A loopback address of this process's own (`127.<a>.<b>.<c>`, never 127.0.0.1) on which TCP
/// `ports` can all be bound right now, or `None` (e.g. privileged ports without root). For
/// upstreams that must sit on well-known ports.
pub fn loopback_ports_bindable(ports: &[u16]) -> Option<IpAddr> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    for _ in 0..20 {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let ip = Ipv4Addr::new(
            127,
            u8::try_from(20 + pid % 200).unwrap_or(20),
            u8::try_from((pid / 200) % 250).unwrap_or(0),
            u8::try_from(1 + n % 250).unwrap_or(1),
        );
        let all = ports
            .iter()
            .all(|p| std::net::TcpListener::bind((ip, *p)).is_ok());
        if all {
            return Some(IpAddr::V4(ip));
        }
    }
    None
}
