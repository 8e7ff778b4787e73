//! Outbound network as a capability (`--allow-net TARGET`), denied by
//! default, as Spin's allowed outbound hosts and Deno's `--allow-net` are.
//!
//! A [`NetPolicy`] is a pure value: the parsed targets, with every host name
//! target resolved once, when the policy is built (at startup). It governs
//! wasi:sockets (p2 and p3) through wasmtime-wasi's socket address check:
//!
//! - a TCP connect, or a UDP send, receive or connect, to a remote address is
//!   allowed when a target matches it: `IP` (any port), `IP:PORT`, `CIDR`
//!   (any port), `HOST` (any port of an address `HOST` resolved to at
//!   startup), `HOST:PORT` (that port of those addresses) or `*` (anything);
//! - a bind to the unspecified address with port 0 (what a connect or send
//!   does implicitly, to an ephemeral local port) is always allowed: it
//!   reaches nothing by itself; other binds, listening and accepting are
//!   inbound network, allowed only with `*`;
//! - name lookups (`wasi:sockets/ip-name-lookup`) answer for the names of
//!   `HOST` targets only (any name with `*`); a p2 lookup of another name is
//!   refused with `access-denied` and logged. (p3 lookups, which the host
//!   cannot filter by name, are turned on only with `*` or a `HOST` target,
//!   and what they resolve is still subject to the address rules above.)
//!
//! Outgoing wasi:http requests are not sockets of the guest's and are not
//! governed here.
//!
//! A denied attempt is logged once per instance and target, naming the
//! target and the flag that would allow it, and recorded in the instance's
//! [`Denials`] so that a failing `init` can say it too.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use wasmtime_wasi::sockets::SocketAddrUse;

/// One `--allow-net` value, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetTarget {
    /// `*`: every address, name, bind and listen.
    Any,
    /// `IP` (port `None`: any) or `IP:PORT`.
    Addr(IpAddr, Option<u16>),
    /// `IP/PREFIX`, any port.
    Cidr(IpAddr, u8),
    /// `HOST` or `HOST:PORT`; the name lower-cased, without a trailing dot.
    Host(String, Option<u16>),
}

/// Why an `--allow-net` value names no target; each holds the value as
/// written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NetTargetError {
    #[error("an empty target (write `IP`, `IP:PORT`, `CIDR`, `HOST[:PORT]` or `*`)")]
    Empty,
    /// A CIDR whose address part is not an IP address.
    #[error("`{text}`: `{ip}` is not an IP address")]
    CidrAddress { text: String, ip: String },
    #[error("`{text}`: the prefix length must be 0 to {max}")]
    CidrPrefix { text: String, max: u8 },
    #[error("`{text}`: `{port}` is not a port number")]
    Port { text: String, port: String },
    /// Port 0, which a connection cannot be made to.
    #[error("`{0}`: port 0 names no service")]
    PortZero(String),
    /// Neither an address nor a valid host name.
    #[error("`{0}` is not `IP`, `IP:PORT`, `CIDR`, `HOST[:PORT]` or `*`")]
    Unrecognized(String),
}

impl FromStr for NetTarget {
    type Err = NetTargetError;

    fn from_str(text: &str) -> Result<Self, NetTargetError> {
        let text = text.trim();
        if text == "*" {
            return Ok(NetTarget::Any);
        }
        if text.is_empty() {
            return Err(NetTargetError::Empty);
        }
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(NetTarget::Addr(
                addr.ip(),
                Some(nonzero_port(addr.port(), text)?),
            ));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(NetTarget::Addr(ip, None));
        }
        let unbracketed = text.strip_prefix('[').and_then(|t| t.strip_suffix(']'));
        if let Some(ip) = unbracketed.and_then(|t| t.parse::<IpAddr>().ok()) {
            return Ok(NetTarget::Addr(ip, None));
        }
        if let Some((ip, prefix)) = text.split_once('/') {
            let ip: IpAddr = ip.parse().map_err(|_| NetTargetError::CidrAddress {
                text: text.to_string(),
                ip: ip.to_string(),
            })?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let prefix = prefix
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| NetTargetError::CidrPrefix {
                    text: text.to_string(),
                    max,
                })?;
            return Ok(NetTarget::Cidr(ip, prefix));
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port)) => {
                let port = port.parse::<u16>().map_err(|_| NetTargetError::Port {
                    text: text.to_string(),
                    port: port.to_string(),
                })?;
                (host, Some(nonzero_port(port, text)?))
            }
            None => (text, None),
        };
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        let valid_label = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(valid_label) {
            return Err(NetTargetError::Unrecognized(text.to_string()));
        }
        // `10.0.0.1.` (with the root's dot) is still the address, not a
        // name: as a name it would print as `10.0.0.1`, another target.
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(NetTarget::Addr(ip, port));
        }
        Ok(NetTarget::Host(host, port))
    }
}

fn nonzero_port(port: u16, text: &str) -> Result<u16, NetTargetError> {
    if port == 0 {
        Err(NetTargetError::PortZero(text.to_string()))
    } else {
        Ok(port)
    }
}

impl fmt::Display for NetTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetTarget::Any => f.write_str("*"),
            NetTarget::Addr(ip, None) => write!(f, "{ip}"),
            NetTarget::Addr(ip, Some(port)) => write!(f, "{}", SocketAddr::new(*ip, *port)),
            NetTarget::Cidr(ip, prefix) => write!(f, "{ip}/{prefix}"),
            NetTarget::Host(host, None) => f.write_str(host),
            NetTarget::Host(host, Some(port)) => write!(f, "{host}:{port}"),
        }
    }
}

/// A range of remote addresses a guest may reach.
#[derive(Clone, Debug, PartialEq, Eq)]
struct AddrRule {
    net: IpAddr,
    prefix: u8,
    port: Option<u16>,
}

impl AddrRule {
    fn exact(ip: IpAddr, port: Option<u16>) -> Self {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        AddrRule {
            net: ip,
            prefix,
            port,
        }
    }

    fn matches(&self, addr: SocketAddr) -> bool {
        if self.port.is_some_and(|port| port != addr.port()) {
            return false;
        }
        match (self.net, addr.ip().to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_matches(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_matches(net: &[u8], ip: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if net[..full] != ip[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    net[full] & mask == ip[full] & mask
}

/// What the guests of one component may reach; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetPolicy {
    any: bool,
    rules: Vec<AddrRule>,
    /// Names a guest may look up (those of `HOST` targets).
    names: BTreeSet<String>,
    /// The targets as given, for messages.
    targets: Vec<NetTarget>,
}

/// How one socket operation fared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Denied; the `--allow-net` value that would allow it.
    Denied {
        allow_with: String,
    },
}

impl NetPolicy {
    /// No network at all (the default).
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// The policy of `targets`, with every host name resolved by `resolve`
    /// (given the name and the target's port, or 0). A name that does not
    /// resolve allows its lookups only; the returned warnings say so.
    pub fn new(
        targets: &[NetTarget],
        mut resolve: impl FnMut(&str, u16) -> std::io::Result<Vec<IpAddr>>,
    ) -> (Self, Vec<String>) {
        let mut policy = NetPolicy {
            targets: targets.to_vec(),
            ..Self::default()
        };
        let mut warnings = Vec::new();
        for target in targets {
            match target {
                NetTarget::Any => policy.any = true,
                NetTarget::Addr(ip, port) => {
                    policy.rules.push(AddrRule::exact(ip.to_canonical(), *port))
                }
                NetTarget::Cidr(ip, prefix) => policy.rules.push(AddrRule {
                    net: ip.to_canonical(),
                    prefix: if ip.to_canonical().is_ipv4() && ip.is_ipv6() {
                        prefix.saturating_sub(96)
                    } else {
                        *prefix
                    },
                    port: None,
                }),
                NetTarget::Host(host, port) => {
                    policy.names.insert(host.clone());
                    match resolve(host, port.unwrap_or(0)) {
                        Ok(ips) if !ips.is_empty() => {
                            for ip in ips {
                                let rule = AddrRule::exact(ip.to_canonical(), *port);
                                if !policy.rules.contains(&rule) {
                                    policy.rules.push(rule);
                                }
                            }
                        }
                        Ok(_) => warnings.push(format!(
                            "--allow-net {target}: `{host}` resolved to no address; guests may look it up but reach nothing through it"
                        )),
                        Err(e) => warnings.push(format!(
                            "--allow-net {target}: cannot resolve `{host}` ({e}); guests may look it up but reach nothing through it"
                        )),
                    }
                }
            }
        }
        (policy, warnings)
    }

    /// [`Self::new`] with the system resolver.
    pub fn resolved(targets: &[NetTarget]) -> (Self, Vec<String>) {
        Self::new(targets, |host, port| {
            Ok((host, port)
                .to_socket_addrs()?
                .map(|addr| addr.ip())
                .collect())
        })
    }

    /// Whether guests get no network at all.
    pub fn is_deny_all(&self) -> bool {
        !self.any && self.rules.is_empty() && self.names.is_empty()
    }

    /// The targets as given.
    pub fn targets(&self) -> &[NetTarget] {
        &self.targets
    }

    /// Whether name lookups are on at all (a `HOST` target or `*`).
    pub fn allows_some_lookup(&self) -> bool {
        self.any || !self.names.is_empty()
    }

    /// Whether a guest may look up `name`.
    pub fn check_lookup(&self, name: &str) -> Verdict {
        let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        if self.any || self.names.contains(&name) {
            Verdict::Allowed
        } else {
            Verdict::Denied { allow_with: name }
        }
    }

    /// Whether a guest may use `addr` for `usage`.
    pub fn check(&self, addr: SocketAddr, usage: SocketAddrUse) -> Verdict {
        if self.any {
            return Verdict::Allowed;
        }
        let remote = match usage {
            SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => true,
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                if addr.ip().is_unspecified() && addr.port() == 0 {
                    return Verdict::Allowed;
                }
                false
            }
            _ => false,
        };
        if remote && self.rules.iter().any(|rule| rule.matches(addr)) {
            return Verdict::Allowed;
        }
        Verdict::Denied {
            allow_with: if remote {
                let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
                addr.to_string()
            } else {
                "*".to_string()
            },
        }
    }
}

/// What one operation was, for messages.
pub fn describe_use(usage: SocketAddrUse) -> &'static str {
    match usage {
        SocketAddrUse::TcpConnect => "TCP connect to",
        SocketAddrUse::TcpBind => "TCP bind to",
        SocketAddrUse::TcpListen => "TCP listen on",
        SocketAddrUse::TcpAccept => "TCP accept from",
        SocketAddrUse::UdpBind => "UDP bind to",
        SocketAddrUse::UdpSend => "UDP send to",
        SocketAddrUse::UdpReceive => "UDP receive from",
        #[allow(unreachable_patterns)]
        _ => "socket use of",
    }
}

/// The network accesses one instance was denied, each logged once: what
/// was attempted and the `--allow-net` value that would allow it.
#[derive(Clone, Debug, Default)]
pub struct Denials(Arc<Mutex<Vec<(String, String)>>>);

impl Denials {
    /// Records a denial of `what` (e.g. `TCP connect to 10.0.0.1:5432`);
    /// true when it is new for this instance (and should be logged).
    pub fn record(&self, what: String, allow_with: String) -> bool {
        let mut denied = self.0.lock().unwrap();
        if denied.iter().any(|(w, _)| *w == what) {
            return false;
        }
        denied.push((what, allow_with));
        true
    }

    /// A sentence naming every denial, or `None`.
    pub fn explanation(&self) -> Option<String> {
        let denied = self.0.lock().unwrap();
        if denied.is_empty() {
            return None;
        }
        let parts: Vec<String> = denied
            .iter()
            .map(|(what, allow)| format!("{what} (allow it with `--allow-net {allow}`)"))
            .collect();
        Some(format!("network access denied: {}", parts.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> NetTarget {
        text.parse().unwrap()
    }

    fn policy(targets: &[&str]) -> NetPolicy {
        let targets: Vec<NetTarget> = targets.iter().map(|t| parse(t)).collect();
        NetPolicy::new(&targets, |host, _| match host {
            "redis.internal" => Ok(vec![
                "10.1.2.3".parse().unwrap(),
                "::ffff:10.1.2.4".parse().unwrap(),
            ]),
            "empty.internal" => Ok(vec![]),
            _ => Err(std::io::Error::other("no such host")),
        })
        .0
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn targets_parse_and_print_back() {
        for text in [
            "*",
            "10.0.0.1",
            "10.0.0.1:6379",
            "::1",
            "[::1]:80",
            "10.0.0.0/8",
            "fd00::/16",
            "db.example.com",
            "db.example.com:5432",
            "localhost",
        ] {
            assert_eq!(parse(text).to_string(), text, "{text}");
        }
        assert_eq!(
            parse("[::1]"),
            NetTarget::Addr("::1".parse().unwrap(), None)
        );
        assert_eq!(
            parse("DB.Example.COM."),
            NetTarget::Host("db.example.com".into(), None)
        );
        assert_eq!(
            parse("10.0.0.0/8"),
            NetTarget::Cidr("10.0.0.0".parse().unwrap(), 8)
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "x/8",
            "host:port",
            "host:0",
            "1.2.3.4:0",
            "a..b",
            "sp ace",
            "a:b:c",
        ] {
            assert!(bad.parse::<NetTarget>().is_err(), "{bad}");
        }
    }

    #[test]
    fn an_address_with_a_trailing_dot_is_the_address() {
        // Found by the `flags` fuzz target: `10.0.10.0.` parsed as the host
        // name `10.0.10.0`, which printed as text that parses as an address.
        let ip: IpAddr = "10.0.10.0".parse().unwrap();
        assert_eq!(parse("10.0.10.0."), NetTarget::Addr(ip, None));
        assert_eq!(parse("10.0.10.0.:80"), NetTarget::Addr(ip, Some(80)));
        for text in ["10.0.10.0.", "10.0.10.0.:80", "10.0.10.0:80", "10.0.10.a."] {
            let target = parse(text);
            assert_eq!(parse(&target.to_string()), target, "{text}");
        }
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let none = NetPolicy::deny_all();
        assert!(none.is_deny_all());
        assert!(!none.allows_some_lookup());
        assert_eq!(
            none.check(addr("127.0.0.1:6379"), SocketAddrUse::TcpConnect),
            Verdict::Denied {
                allow_with: "127.0.0.1:6379".into()
            }
        );
        assert_eq!(
            none.check_lookup("Example.com."),
            Verdict::Denied {
                allow_with: "example.com".into()
            }
        );
        // Implicit binds reach nothing and are never what is denied.
        assert_eq!(
            none.check(addr("0.0.0.0:0"), SocketAddrUse::TcpBind),
            Verdict::Allowed
        );
        assert_eq!(
            none.check(addr("[::]:0"), SocketAddrUse::UdpBind),
            Verdict::Allowed
        );
    }

    #[test]
    fn addresses_ports_and_ranges() {
        let p = policy(&["127.0.0.1:6379", "10.0.0.0/8", "192.168.1.5", "fd00::/16"]);
        let allowed = |a: &str, u| p.check(addr(a), u) == Verdict::Allowed;
        assert!(allowed("127.0.0.1:6379", SocketAddrUse::TcpConnect));
        assert!(!allowed("127.0.0.1:6380", SocketAddrUse::TcpConnect));
        assert!(allowed(
            "[::ffff:127.0.0.1]:6379",
            SocketAddrUse::TcpConnect
        ));
        assert!(allowed("10.200.3.4:1", SocketAddrUse::UdpSend));
        assert!(allowed("10.200.3.4:1", SocketAddrUse::UdpReceive));
        assert!(!allowed("11.0.0.1:1", SocketAddrUse::TcpConnect));
        assert!(allowed("192.168.1.5:443", SocketAddrUse::TcpConnect));
        assert!(!allowed("192.168.1.6:443", SocketAddrUse::TcpConnect));
        assert!(allowed("[fd00:1::2]:53", SocketAddrUse::UdpSend));
        assert!(!allowed("[fe00::2]:53", SocketAddrUse::UdpSend));
        // Binding a chosen port and listening are inbound: only `*`.
        assert!(!allowed("0.0.0.0:8080", SocketAddrUse::TcpBind));
        assert!(!allowed("127.0.0.1:6379", SocketAddrUse::TcpListen));
        assert_eq!(
            p.check(addr("0.0.0.0:8080"), SocketAddrUse::TcpListen),
            Verdict::Denied {
                allow_with: "*".into()
            }
        );
        assert!(!p.allows_some_lookup());
    }

    #[test]
    fn host_names_resolve_at_startup_and_may_be_looked_up() {
        let p = policy(&["redis.internal:6379", "other.internal"]);
        let allowed = |a: &str| p.check(addr(a), SocketAddrUse::TcpConnect) == Verdict::Allowed;
        assert!(allowed("10.1.2.3:6379"));
        assert!(allowed("10.1.2.4:6379"));
        assert!(!allowed("10.1.2.3:6380"));
        assert!(p.allows_some_lookup());
        assert_eq!(p.check_lookup("REDIS.internal"), Verdict::Allowed);
        // A name that did not resolve may still be looked up.
        assert_eq!(p.check_lookup("other.internal"), Verdict::Allowed);
        assert_ne!(p.check_lookup("evil.example"), Verdict::Allowed);
        let (_, warnings) = NetPolicy::new(&[parse("empty.internal")], |_, _| Ok(vec![]));
        assert!(
            warnings[0].contains("resolved to no address"),
            "{warnings:?}"
        );
    }

    #[test]
    fn star_allows_everything() {
        let p = policy(&["*"]);
        assert_eq!(
            p.check(addr("8.8.8.8:53"), SocketAddrUse::UdpSend),
            Verdict::Allowed
        );
        assert_eq!(
            p.check(addr("0.0.0.0:80"), SocketAddrUse::TcpListen),
            Verdict::Allowed
        );
        assert_eq!(p.check_lookup("anything.example"), Verdict::Allowed);
    }

    #[test]
    fn denials_are_recorded_once_and_explained() {
        let denials = Denials::default();
        assert!(denials.explanation().is_none());
        assert!(denials.record("TCP connect to 1.2.3.4:5".into(), "1.2.3.4:5".into()));
        assert!(!denials.record("TCP connect to 1.2.3.4:5".into(), "1.2.3.4:5".into()));
        assert_eq!(
            denials.explanation().unwrap(),
            "network access denied: TCP connect to 1.2.3.4:5 (allow it with `--allow-net 1.2.3.4:5`)"
        );
    }
}

/// `wasi:sockets/ip-name-lookup@0.2` answering only for the names the
/// policy lists (wasmtime-wasi can only turn lookups on or off as a whole):
/// it replaces wasmtime-wasi's own functions in `linker`, which it calls for
/// allowed names.
pub fn add_lookup_filter(
    linker: &mut wasmtime::component::Linker<crate::runtime::instance::InstanceState>,
) -> wasmtime::Result<()> {
    use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup;
    linker.allow_shadowing(true);
    let added = ip_name_lookup::add_to_linker::<_, FilteredLookupData>(
        linker,
        crate::runtime::instance::InstanceState::lookup,
    );
    linker.allow_shadowing(false);
    added
}

struct FilteredLookupData;

impl wasmtime::component::HasData for FilteredLookupData {
    type Data<'a> = FilteredLookup<'a>;
}

/// wasi:sockets of one instance, with its policy, for name lookups.
pub struct FilteredLookup<'a> {
    pub(crate) sockets: wasmtime_wasi::sockets::WasiSocketsCtxView<'a>,
    pub(crate) policy: Arc<NetPolicy>,
    pub(crate) denials: Denials,
    pub(crate) instance: crate::runtime::instance::InstanceId,
}

mod lookup_impl {
    use super::{FilteredLookup, Verdict};
    use wasmtime::component::Resource;
    use wasmtime_wasi::p2::DynPollable;
    use wasmtime_wasi::p2::SocketError;
    use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
        Host, HostResolveAddressStream, ResolveAddressStream,
    };
    use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};

    impl Host for FilteredLookup<'_> {
        fn resolve_addresses(
            &mut self,
            network: Resource<Network>,
            name: String,
        ) -> Result<Resource<ResolveAddressStream>, SocketError> {
            if let Verdict::Denied { allow_with } = self.policy.check_lookup(&name) {
                let what = format!("name lookup of `{name}`");
                if self.denials.record(what.clone(), allow_with.clone()) {
                    tracing::warn!(
                        instance = self.instance,
                        "network access denied: {what}; allow it with `--allow-net {allow_with}`"
                    );
                }
                return Err(ErrorCode::AccessDenied.into());
            }
            Host::resolve_addresses(&mut self.sockets, network, name)
        }
    }

    impl HostResolveAddressStream for FilteredLookup<'_> {
        fn resolve_next_address(
            &mut self,
            stream: Resource<ResolveAddressStream>,
        ) -> Result<Option<IpAddress>, SocketError> {
            HostResolveAddressStream::resolve_next_address(&mut self.sockets, stream)
        }

        fn subscribe(
            &mut self,
            stream: Resource<ResolveAddressStream>,
        ) -> wasmtime::Result<Resource<DynPollable>> {
            HostResolveAddressStream::subscribe(&mut self.sockets, stream)
        }

        fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
            HostResolveAddressStream::drop(&mut self.sockets, stream)
        }
    }

    impl network::Host for FilteredLookup<'_> {
        fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
            network::Host::convert_error_code(&mut self.sockets, error)
        }

        fn network_error_code(
            &mut self,
            err: Resource<wasmtime::Error>,
        ) -> wasmtime::Result<Option<ErrorCode>> {
            network::Host::network_error_code(&mut self.sockets, err)
        }
    }

    impl network::HostNetwork for FilteredLookup<'_> {
        fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
            network::HostNetwork::drop(&mut self.sockets, network)
        }
    }
}
