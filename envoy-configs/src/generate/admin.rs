//! Envoy's admin interface, and the read-only listener that serves its stats.
//!
//! The admin can stop Envoy (`/quitquitquit`), wipe the counters (`/reset_counters`), drain
//! the listeners and change the log level, so by default it is a Unix socket of mode 0600:
//! only Envoy's user and root can open it. Loopback is not captured by the transparent proxy,
//! so a TCP admin on 127.0.0.1 is open to every app. Prometheus gets [`stats_listener`]
//! instead: `GET /stats/prometheus` and `GET /ready`, passed to the admin; anything else 404.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::envoy::{
    Action, Address, Cluster, ClusterLoadAssignment, DiscoveryType, Endpoint, Extension,
    FilterChain, HeaderMatch, HeaderMatcher, HttpConnectionManager, HttpFilter, HttpFilterConfig,
    LbEndpoint, Listener, LocalReplyConfig, LocalityLbEndpoints, NetworkFilterConfig, PathMatch,
    Pipe, Route, RouteAction, RouteConfiguration, RouteMatch, Router, StringMatcher, VirtualHost,
};

use super::{cluster, http};

/// Where the stats listener is when the admin is a Unix socket and `--stats-listen` is not
/// given: the admin's old address, so that scrapers keep working.
pub const DEFAULT_STATS_LISTEN: &str = "127.0.0.1:9901";
/// The admin socket's file name, beside the configuration (`-o FILE`: `FILE`'s stem).
pub const DEFAULT_SOCKET_STEM: &str = "envoy";
/// The stats listener.
pub const STATS: &str = "stats";
/// The cluster through which the stats listener reaches the admin.
pub const ADMIN_CLUSTER: &str = "admin";
/// What the stats listener serves (GET only).
pub const STATS_PATHS: [&str; 2] = ["/stats/prometheus", "/ready"];
/// `srw-------`: Envoy's user (and root) only.
const SOCKET_MODE: u32 = 0o600;
/// `sockaddr_un.sun_path` holds 108 bytes, the terminating NUL included.
const MAX_SOCKET_PATH: usize = 107;

/// Where the admin listens: a Unix socket (`unix:PATH`, the default) or a TCP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminAddress {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl AdminAddress {
    /// A Unix socket at `path`, which the kernel must be able to bind.
    pub fn unix(path: PathBuf) -> Result<AdminAddress, String> {
        let len = path.as_os_str().len();
        if len == 0 {
            return Err("unix: needs a path (unix:/run/extsvc/admin.sock)".to_string());
        }
        if len > MAX_SOCKET_PATH {
            return Err(format!(
                "the admin socket path {} is {len} bytes long; a Unix socket's path holds at \
                 most {MAX_SOCKET_PATH}: give a shorter one with --admin unix:PATH",
                path.display()
            ));
        }
        Ok(AdminAddress::Unix(path))
    }

    /// The default: `<stem>.admin.sock` beside `output` (`envoy.admin.sock` in the current
    /// directory when the configuration goes to stdout).
    pub fn beside(output: Option<&Path>) -> Result<AdminAddress, String> {
        let stem = output
            .and_then(Path::file_stem)
            .map_or(DEFAULT_SOCKET_STEM.into(), |s| s.to_string_lossy());
        let dir = output.and_then(Path::parent).unwrap_or(Path::new(""));
        AdminAddress::unix(crate::pipeline::absolute(
            &dir.join(format!("{stem}.admin.sock")),
        ))
    }

    /// Where Envoy binds its admin: a Unix socket gets mode 0600.
    fn bound(&self) -> Address {
        match self {
            AdminAddress::Unix(path) => Address::Pipe(Pipe {
                path: path.display().to_string(),
                mode: Some(SOCKET_MODE),
            }),
            AdminAddress::Tcp(at) => Address::from(*at),
        }
    }

    /// Where the stats listener's cluster connects.
    fn endpoint(&self) -> Address {
        match self {
            AdminAddress::Unix(path) => Address::Pipe(Pipe {
                path: path.display().to_string(),
                mode: None,
            }),
            AdminAddress::Tcp(at) => Address::from(*at),
        }
    }
}

impl FromStr for AdminAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<AdminAddress, String> {
        match s.strip_prefix("unix:") {
            Some(path) => AdminAddress::unix(PathBuf::from(path)),
            None => s
                .parse()
                .map(AdminAddress::Tcp)
                .map_err(|_| format!("{s:?} is neither unix:PATH nor ADDR:PORT (127.0.0.1:9901)")),
        }
    }
}

impl fmt::Display for AdminAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AdminAddress::Unix(path) => write!(f, "unix:{}", path.display()),
            AdminAddress::Tcp(at) => at.fmt(f),
        }
    }
}

/// The bootstrap's `admin`.
pub fn admin(address: &AdminAddress) -> crate::envoy::Admin {
    crate::envoy::Admin {
        address: address.bound(),
    }
}

/// A listener at `at` that passes `GET` [`STATS_PATHS`] (query strings included) to the admin
/// and answers anything else 404, with no access log (scrapes are not egress).
pub fn stats_listener(at: SocketAddr) -> Listener {
    let get = HeaderMatcher {
        name: ":method".to_string(),
        matcher: HeaderMatch::StringMatch(StringMatcher::Exact("GET".to_string())),
    };
    let routes = STATS_PATHS
        .iter()
        .map(|path| Route {
            name: None,
            route_match: RouteMatch {
                path: PathMatch::Path((*path).to_string()),
                headers: vec![get.clone()],
            },
            action: Action::Route(RouteAction::to(ADMIN_CLUSTER)),
            typed_per_filter_config: None,
        })
        .collect();
    let router: HttpFilter = Extension {
        name: "envoy.filters.http.router",
        typed_config: HttpFilterConfig::Router(Router {}),
    };
    let hcm = Extension {
        name: "envoy.filters.network.http_connection_manager",
        typed_config: NetworkFilterConfig::HttpConnectionManager(HttpConnectionManager {
            stat_prefix: STATS.to_string(),
            access_log: Vec::new(),
            route_config: RouteConfiguration {
                name: STATS.to_string(),
                virtual_hosts: vec![VirtualHost {
                    name: STATS.to_string(),
                    domains: vec!["*".to_string()],
                    routes,
                }],
                validate_clusters: None,
                internal_only_headers: Vec::new(),
                request_headers_to_remove: Vec::new(),
            },
            http_filters: vec![router],
            use_remote_address: true,
            skip_xff_append: true,
            internal_address_config: http::no_internal_client(),
            local_reply_config: LocalReplyConfig {
                mappers: Vec::new(),
            },
            upgrade_configs: Vec::new(),
        }),
    };
    Listener {
        name: STATS.to_string(),
        address: Address::from(at),
        filter_chains: vec![FilterChain {
            filter_chain_match: None,
            filters: vec![hcm],
            ..FilterChain::default()
        }],
        ..Listener::default()
    }
}

/// The admin as an upstream of the stats listener.
pub fn admin_cluster(admin: &AdminAddress) -> Cluster {
    Cluster {
        name: ADMIN_CLUSTER.to_string(),
        discovery_type: Some(DiscoveryType::Static),
        connect_timeout: cluster::CONNECT_TIMEOUT,
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: ADMIN_CLUSTER.to_string(),
            endpoints: vec![LocalityLbEndpoints {
                priority: 0,
                lb_endpoints: vec![LbEndpoint {
                    endpoint: Endpoint {
                        address: admin.endpoint(),
                        hostname: None,
                    },
                    metadata: None,
                }],
            }],
        }),
        ..Cluster::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn an_admin_address_is_a_unix_socket_or_a_tcp_address() {
        assert_eq!(
            "unix:/run/a.sock".parse(),
            Ok(AdminAddress::Unix("/run/a.sock".into()))
        );
        assert_eq!(
            "127.0.0.1:9901".parse(),
            Ok(AdminAddress::Tcp("127.0.0.1:9901".parse().unwrap()))
        );
        for bad in ["unix:", "localhost:9901", "/run/a.sock", "9901"] {
            assert!(bad.parse::<AdminAddress>().is_err(), "{bad}");
        }
        let long = format!("unix:/{}", "a".repeat(MAX_SOCKET_PATH));
        let err = long.parse::<AdminAddress>().unwrap_err();
        assert!(err.contains("at most 107"), "{err}");
        assert!(format!("unix:/{}", "a".repeat(MAX_SOCKET_PATH - 1))
            .parse::<AdminAddress>()
            .is_ok());
    }

    #[test]
    fn the_default_socket_is_beside_the_configuration() {
        assert_eq!(
            AdminAddress::beside(Some(Path::new("/etc/extsvc/envoy.yaml"))),
            Ok(AdminAddress::Unix("/etc/extsvc/envoy.admin.sock".into()))
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            AdminAddress::beside(None),
            Ok(AdminAddress::Unix(cwd.join("envoy.admin.sock")))
        );
        assert_eq!(
            AdminAddress::beside(Some(Path::new("sidecar.json"))),
            Ok(AdminAddress::Unix(cwd.join("sidecar.admin.sock")))
        );
    }

    #[test]
    fn the_admin_socket_is_private_and_the_cluster_only_connects_to_it() {
        let unix = AdminAddress::Unix("/run/a.sock".into());
        assert_eq!(
            serde_json::to_value(admin(&unix)).unwrap(),
            serde_json::json!({"address": {"pipe": {"path": "/run/a.sock", "mode": 384}}})
        );
        let cluster = serde_json::to_value(admin_cluster(&unix)).unwrap();
        assert_eq!(
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
            serde_json::json!({"pipe": {"path": "/run/a.sock"}})
        );
    }
}
