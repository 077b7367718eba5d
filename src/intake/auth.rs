//! Sender authentication: SPF, DKIM and DMARC (RFC 7208, 6376, 7489) with the mail-auth crate,
//! and the `Authentication-Results` header (RFC 8601) that records them on the stored message.
//!
//! The customer directory trusts a sender's tier only when the sender is authenticated: DMARC
//! pass, or a valid DKIM signature whose `d=` aligns with the `From:` domain
//! ([`AuthResults::sender_authenticated`]). Everything else is "possibly spoofed".
//!
//! DNS comes from one of two places:
//! - [`Authenticator::system`]: the system resolver (`/etc/resolv.conf`) with short timeouts, or
//!   [`Authenticator::with_resolvers`] for explicit name servers. A whole verification is bounded
//!   by [`Authenticator::with_timeout`]; whatever is still waiting then is `temperror`.
//! - [`Authenticator::with_records`]: recorded answers ([`StaticRecords`], built in code or loaded
//!   from TOML). Every answer is served from mail-auth's resolver caches, pre-filled; a name that
//!   is not recorded is NXDOMAIN at once. The resolver behind the caches has no name servers at
//!   all, so nothing can reach the network even by mistake. Used by tests and offline dry runs.
//!
//! Limits of recorded DNS (mail-auth's caches cannot hold every kind of answer):
//! - A/AAAA/MX/PTR caches cannot say NXDOMAIN, so an unrecorded name answers with an empty set
//!   (NODATA). For SPF `a`, `mx`, `ptr` this is the same as NXDOMAIN (no match). DMARC's `np=`
//!   (non-existent subdomain policy) therefore never applies offline; `sp=` does.
//! - SPF `exists:` would treat any cached name as existing, so recorded SPF records have each
//!   `exists:X` rewritten to the equivalent `a:X/0//0` (matches when X has an address). For an
//!   IPv6 client that checks X's AAAA records instead of its A records.
//! - What a TXT name holds is decided by its name: `_dmarc.*` is DMARC, `_report._domainkey.*` a
//!   DKIM report record, `*._domainkey.*` a DKIM key, `*._atps.*` ATPS, anything else SPF. SPF
//!   `exp=` explanation texts are not served.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::resolver::ToFqdn;
use mail_auth::common::to_a_label;
use mail_auth::common::verify::DomainKey;
use mail_auth::dkim::{Atps, DkimError, DomainKeyReport};
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::{Dmarc, Policy};
use mail_auth::hickory_resolver::TokioResolver;
use mail_auth::hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::net::runtime::TokioRuntimeProvider;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::spf::{Mechanism, Spf};
use mail_auth::{
    AuthenticatedMessage, DkimOutput, DkimResult, DmarcOutput, DmarcResult, DnsError, DnssecStatus, MX, MessageAuthenticator, Parameters,
    RecordSet, ResolverCache, SpfOutput, SpfResult, Txt,
};
use serde::{Deserialize, Serialize};

/// How long one whole verification (SPF + DKIM + DMARC, all lookups) may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Per-query timeout of the system resolver (one retry).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// DKIM signatures beyond this many are ignored (each costs a DNS lookup).
const MAX_DKIM_SIGNATURES: usize = 8;
/// `dkim=` entries written into the header at most.
const MAX_DKIM_ENTRIES: usize = 8;

/// One authentication result, named as in RFC 8601.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    SoftFail,
    Neutral,
    None,
    TempError,
    PermError,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::SoftFail => "softfail",
            Verdict::Neutral => "neutral",
            Verdict::None => "none",
            Verdict::TempError => "temperror",
            Verdict::PermError => "permerror",
        }
    }

    pub const ALL: [Verdict; 7] =
        [Verdict::Pass, Verdict::Fail, Verdict::SoftFail, Verdict::Neutral, Verdict::None, Verdict::TempError, Verdict::PermError];
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses the RFC 8601 names (`pass`, `softfail`, `temperror`, …), case-insensitively.
impl FromStr for Verdict {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        Verdict::ALL.into_iter().find(|v| v.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
            format!("unknown authentication result {s:?} (expected one of pass, fail, softfail, neutral, none, temperror, permerror)")
        })
    }
}

impl From<SpfResult> for Verdict {
    fn from(result: SpfResult) -> Self {
        match result {
            SpfResult::Pass => Verdict::Pass,
            SpfResult::Fail => Verdict::Fail,
            SpfResult::SoftFail => Verdict::SoftFail,
            SpfResult::Neutral => Verdict::Neutral,
            SpfResult::TempError => Verdict::TempError,
            SpfResult::PermError => Verdict::PermError,
            SpfResult::None => Verdict::None,
        }
    }
}

/// The outcome of SPF, DKIM and DMARC for one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResults {
    /// SPF for the MAIL FROM domain (the HELO name when MAIL FROM is null).
    pub spf: Verdict,
    /// `pass` if at least one DKIM signature verifies; otherwise the worst failure (or `none`
    /// when the message is not signed).
    pub dkim: Verdict,
    /// A passing signature's `d=` aligns (relaxed) with the `From:` domain.
    pub dkim_aligned: bool,
    pub dmarc: Verdict,
    /// The `From:` header's domain (lower-case A-labels); `None` when there is no `From:`
    /// address or its addresses name different domains.
    pub from_domain: Option<String>,
    /// `Authentication-Results: <hostname>; spf=…; dkim=…; dmarc=…`, folded, CRLF-terminated,
    /// ready to prepend to the message.
    pub header: String,
}

impl AuthResults {
    /// `spf=pass dkim=pass dmarc=pass` (no addresses or domains: safe to log).
    pub fn summary(&self) -> String {
        format!("spf={} dkim={} dmarc={}", self.spf, self.dkim, self.dmarc)
    }

    /// DMARC pass, or a valid DKIM signature aligned with the `From:` domain. Only then may a
    /// customer tier taken from the sender address be trusted.
    pub fn sender_authenticated(&self) -> bool {
        self.dmarc == Verdict::Pass || (self.dkim == Verdict::Pass && self.dkim_aligned)
    }

    /// Every result `verdict`, with a header saying why (used when verification itself failed).
    fn all(hostname: &str, verdict: Verdict, reason: &str) -> AuthResults {
        let mut header = HeaderBuilder::new(hostname);
        for method in ["spf", "dkim", "dmarc"] {
            header.method(method, verdict, Some(reason), &[]);
        }
        AuthResults { spf: verdict, dkim: verdict, dkim_aligned: false, dmarc: verdict, from_domain: None, header: header.finish() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot set up the DNS resolver: {0}")]
    Resolver(String),
    #[error("{path}: {source}")]
    ReadRecords { path: String, source: std::io::Error },
    #[error("{origin}: {message}")]
    Records { origin: String, message: String },
}

// ---------------------------------------------------------------------------------------------
// Recorded DNS
// ---------------------------------------------------------------------------------------------

/// Recorded DNS answers, for tests and offline use. Names are case-insensitive, with or without
/// the final dot. In TOML:
///
/// ```toml
/// [[txt]]
/// name = "customer.org"
/// value = "v=spf1 ip4:192.0.2.0/24 mx -all"
///
/// [[a]]
/// name = "mail.customer.org"
/// ip = "192.0.2.25"
///
/// [[aaaa]]
/// name = "mail.customer.org"
/// ip = "2001:db8::25"
///
/// [[mx]]
/// name = "customer.org"
/// preference = 10          # optional, 10 by default
/// exchange = "mail.customer.org"
///
/// [[ptr]]
/// ip = "192.0.2.25"
/// name = "mail.customer.org"
/// ```
///
/// Several entries with the same name form one record set. A TXT value is the record's
/// character-strings joined (as a resolver hands them over).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticRecords {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub txt: Vec<TxtRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub a: Vec<ARecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aaaa: Vec<AaaaRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mx: Vec<MxRecord>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ptr: Vec<PtrRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxtRecord {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ARecord {
    pub name: String,
    pub ip: Ipv4Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AaaaRecord {
    pub name: String,
    pub ip: Ipv6Addr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MxRecord {
    pub name: String,
    #[serde(default = "default_mx_preference")]
    pub preference: u16,
    pub exchange: String,
}

fn default_mx_preference() -> u16 {
    10
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PtrRecord {
    pub ip: IpAddr,
    pub name: String,
}

impl StaticRecords {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_txt(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.txt.push(TxtRecord { name: name.into(), value: value.into() });
        self
    }

    pub fn with_a(mut self, name: impl Into<String>, ip: Ipv4Addr) -> Self {
        self.a.push(ARecord { name: name.into(), ip });
        self
    }

    pub fn with_aaaa(mut self, name: impl Into<String>, ip: Ipv6Addr) -> Self {
        self.aaaa.push(AaaaRecord { name: name.into(), ip });
        self
    }

    pub fn with_mx(mut self, name: impl Into<String>, preference: u16, exchange: impl Into<String>) -> Self {
        self.mx.push(MxRecord { name: name.into(), preference, exchange: exchange.into() });
        self
    }

    pub fn with_ptr(mut self, ip: IpAddr, name: impl Into<String>) -> Self {
        self.ptr.push(PtrRecord { ip, name: name.into() });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.txt.is_empty() && self.a.is_empty() && self.aaaa.is_empty() && self.mx.is_empty() && self.ptr.is_empty()
    }

    /// Loads records from a TOML file; errors name the file (and, for syntax errors, the line).
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<Self, AuthError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::ReadRecords { path: path.display().to_string(), source })?;
        Self::parse_toml(&path.display().to_string(), &text)
    }

    pub fn from_toml_str(text: &str) -> Result<Self, AuthError> {
        Self::parse_toml("DNS records", text)
    }

    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).expect("records always serialise to TOML")
    }

    fn parse_toml(origin: &str, text: &str) -> Result<Self, AuthError> {
        let records: StaticRecords =
            toml::from_str(text).map_err(|e| AuthError::Records { origin: origin.to_string(), message: e.to_string() })?;
        records.validate().map_err(|message| AuthError::Records { origin: origin.to_string(), message })?;
        Ok(records)
    }

    fn validate(&self) -> Result<(), String> {
        let names = self
            .txt
            .iter()
            .map(|r| ("txt", "name", &r.name))
            .chain(self.a.iter().map(|r| ("a", "name", &r.name)))
            .chain(self.aaaa.iter().map(|r| ("aaaa", "name", &r.name)))
            .chain(self.mx.iter().map(|r| ("mx", "name", &r.name)))
            .chain(self.mx.iter().map(|r| ("mx", "exchange", &r.exchange)))
            .chain(self.ptr.iter().map(|r| ("ptr", "name", &r.name)));
        let mut index: HashMap<(&str, &str), usize> = HashMap::new();
        for (table, key, name) in names {
            let i = index.entry((table, key)).or_default();
            *i += 1;
            let trimmed = name.trim().trim_end_matches('.');
            let bad = if trimmed.is_empty() {
                Some("is empty")
            } else if trimmed.len() > 253 {
                Some("is longer than 253 characters")
            } else if trimmed.split('.').any(|label| label.is_empty() || label.len() > 63) {
                Some("has an empty label or one longer than 63 characters")
            } else if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Some("contains white space")
            } else {
                None
            };
            if let Some(bad) = bad {
                return Err(format!("{table} entry {i}: {key} {name:?} {bad}"));
            }
        }
        Ok(())
    }
}

/// A mail-auth resolver cache that serves fixed answers: `map` for recorded names, `miss` for the
/// rest (`None` = ask the resolver). Inserts from mail-auth are ignored.
struct FixedCache<K, V> {
    map: HashMap<K, V>,
    miss: Option<V>,
}

impl<K, V> FixedCache<K, V> {
    fn empty() -> Self {
        FixedCache { map: HashMap::new(), miss: None }
    }
}

impl<K: Hash + Eq, V: Clone> ResolverCache<K, V> for FixedCache<K, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(name).cloned().or_else(|| self.miss.clone())
    }

    fn remove<Q>(&self, _: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, _: K, _: V, _: std::time::Instant) {}
}

type TxtCache = FixedCache<Box<str>, Txt>;
type MxCache = FixedCache<Box<str>, RecordSet<MX>>;
type Ipv4Cache = FixedCache<Box<str>, RecordSet<Ipv4Addr>>;
type Ipv6Cache = FixedCache<Box<str>, RecordSet<Ipv6Addr>>;
type PtrCache = FixedCache<IpAddr, RecordSet<Box<str>>>;

/// The caches handed to every mail-auth call.
struct Caches {
    txt: TxtCache,
    mx: MxCache,
    ipv4: Ipv4Cache,
    ipv6: Ipv6Cache,
    ptr: PtrCache,
}

impl Caches {
    /// Nothing cached: every lookup goes to the resolver (which caches by itself).
    fn passthrough() -> Self {
        Caches {
            txt: FixedCache::empty(),
            mx: FixedCache::empty(),
            ipv4: FixedCache::empty(),
            ipv6: FixedCache::empty(),
            ptr: FixedCache::empty(),
        }
    }

    /// Everything answered from `records`; anything else is NXDOMAIN (TXT) or empty.
    fn recorded(records: &StaticRecords) -> Self {
        fn set<T>(items: Vec<T>) -> RecordSet<T> {
            RecordSet { rrset: items.into(), dnssec_status: DnssecStatus::Indeterminate }
        }
        fn not_found(code: ResponseCode) -> Txt {
            Txt::Error(mail_auth::Error::Dns(DnsError::RecordNotFound(code)))
        }

        let mut txt: HashMap<String, Vec<&str>> = HashMap::new();
        for r in &records.txt {
            txt.entry(fqdn(&r.name)).or_default().push(&r.value);
        }
        let mut ipv4: HashMap<String, Vec<Ipv4Addr>> = HashMap::new();
        for r in &records.a {
            ipv4.entry(fqdn(&r.name)).or_default().push(r.ip);
        }
        let mut ipv6: HashMap<String, Vec<Ipv6Addr>> = HashMap::new();
        for r in &records.aaaa {
            ipv6.entry(fqdn(&r.name)).or_default().push(r.ip);
        }
        let mut mx: HashMap<String, Vec<(u16, Box<str>)>> = HashMap::new();
        for r in &records.mx {
            mx.entry(fqdn(&r.name)).or_default().push((r.preference, fqdn(&r.exchange).into()));
        }
        let mut ptr: HashMap<IpAddr, Vec<Box<str>>> = HashMap::new();
        for r in &records.ptr {
            ptr.entry(r.ip).or_default().push(fqdn(&r.name).into());
        }

        // A name that exists with other types but no TXT answers NODATA, not NXDOMAIN.
        let mut txt_map: HashMap<Box<str>, Txt> = HashMap::new();
        for name in ipv4.keys().chain(ipv6.keys()).chain(mx.keys()) {
            txt_map.insert(name.as_str().into(), not_found(ResponseCode::NoError));
        }
        for (name, values) in &txt {
            txt_map.insert(name.as_str().into(), parse_txt(name, values));
        }

        let mx_map = mx
            .into_iter()
            .map(|(name, mut entries)| {
                entries.sort_by_key(|(preference, _)| *preference);
                let mut grouped: Vec<MX> = Vec::new();
                for (preference, exchange) in entries {
                    match grouped.last_mut() {
                        Some(last) if last.preference == preference => {
                            let mut exchanges = std::mem::take(&mut last.exchanges).into_vec();
                            exchanges.push(exchange);
                            last.exchanges = exchanges.into_boxed_slice();
                        }
                        _ => grouped.push(MX { exchanges: vec![exchange].into_boxed_slice(), preference }),
                    }
                }
                (name.into_boxed_str(), set(grouped))
            })
            .collect();

        Caches {
            txt: FixedCache { map: txt_map, miss: Some(not_found(ResponseCode::NXDomain)) },
            mx: FixedCache { map: mx_map, miss: Some(set(Vec::new())) },
            ipv4: FixedCache { map: ipv4.into_iter().map(|(k, v)| (k.into_boxed_str(), set(v))).collect(), miss: Some(set(Vec::new())) },
            ipv6: FixedCache { map: ipv6.into_iter().map(|(k, v)| (k.into_boxed_str(), set(v))).collect(), miss: Some(set(Vec::new())) },
            ptr: FixedCache { map: ptr.into_iter().map(|(k, v)| (k, set(v))).collect(), miss: Some(set(Vec::new())) },
        }
    }

    #[allow(clippy::type_complexity)]
    fn params<P>(&self, params: P) -> Parameters<'_, P, TxtCache, MxCache, Ipv4Cache, Ipv6Cache, PtrCache> {
        Parameters::new(params)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }
}

/// Lower-case, final dot: the form mail-auth looks names up by.
fn fqdn(name: &str) -> String {
    name.trim().to_fqdn().into_owned()
}

/// What a resolver's TXT lookup would hand mail-auth for `name`: the first value that parses as
/// the record type the name implies (see the module documentation).
fn parse_txt(name: &str, values: &[&str]) -> Txt {
    fn first<T: TxtRecordParser>(values: &[&str]) -> mail_auth::Result<T> {
        let mut result = Err(mail_auth::Error::Dns(DnsError::InvalidRecordType));
        for value in values {
            result = T::parse(value.as_bytes());
            if result.is_ok() {
                break;
            }
        }
        result
    }
    let labels: Vec<&str> = name.trim_end_matches('.').split('.').collect();
    if labels.first() == Some(&"_dmarc") {
        first::<Dmarc>(values).into()
    } else if labels.starts_with(&["_report", "_domainkey"]) {
        first::<DomainKeyReport>(values).into()
    } else if labels.contains(&"_domainkey") {
        first::<DomainKey>(values).into()
    } else if labels.contains(&"_atps") {
        first::<Atps>(values).into()
    } else {
        first::<Spf>(values).map(rewrite_exists).into()
    }
}

/// `exists:X` → `a:X/0//0`: see the module documentation.
fn rewrite_exists(spf: Spf) -> Spf {
    let directives = spf
        .directives
        .into_vec()
        .into_iter()
        .map(|mut directive| {
            if let Mechanism::Exists { macro_string } = directive.mechanism {
                directive.mechanism = Mechanism::A { macro_string, ip4_mask: 0, ip6_mask: 0 };
            }
            directive
        })
        .collect();
    Spf { directives, ..spf }
}

// ---------------------------------------------------------------------------------------------
// The authenticator
// ---------------------------------------------------------------------------------------------

/// Verifies SPF, DKIM and DMARC for received messages. Cheap to clone; share one per server.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
    timeout: Duration,
}

struct Inner {
    resolver: MessageAuthenticator,
    caches: Caches,
    hostname: String,
    recorded: bool,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("hostname", &self.inner.hostname)
            .field("dns", &if self.inner.recorded { "recorded" } else { "resolver" })
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Authenticator {
    /// Uses the system resolver configuration (`/etc/resolv.conf`), with a 2 s query timeout
    /// and one retry; a whole verification is bounded by [`DEFAULT_TIMEOUT`].
    pub fn system(hostname: &str) -> Result<Self, AuthError> {
        let (config, mut options) = mail_auth::hickory_resolver::system_conf::read_system_conf()
            .map_err(|e| AuthError::Resolver(format!("reading the system resolver configuration: {e}")))?;
        options.timeout = QUERY_TIMEOUT;
        options.attempts = 1;
        Self::resolving(hostname, config, options)
    }

    /// Uses the given name servers (UDP, then TCP), otherwise like [`Authenticator::system`].
    pub fn with_resolvers(hostname: &str, servers: &[SocketAddr]) -> Result<Self, AuthError> {
        if servers.is_empty() {
            return Err(AuthError::Resolver("no name servers given".into()));
        }
        let name_servers = servers
            .iter()
            .map(|server| {
                let (mut udp, mut tcp) = (ConnectionConfig::udp(), ConnectionConfig::tcp());
                udp.port = server.port();
                tcp.port = server.port();
                NameServerConfig::new(server.ip(), true, vec![udp, tcp])
            })
            .collect();
        let mut options = ResolverOpts::default();
        options.timeout = QUERY_TIMEOUT;
        options.attempts = 1;
        options.use_hosts_file = ResolveHosts::Never;
        Self::resolving(hostname, ResolverConfig::from_name_servers(name_servers), options)
    }

    /// Answers every lookup from `records`; names not recorded are NXDOMAIN at once. Never
    /// touches the network (the resolver underneath has no name servers).
    pub fn with_records(hostname: &str, records: StaticRecords) -> Self {
        let mut options = ResolverOpts::default();
        options.use_hosts_file = ResolveHosts::Never;
        options.attempts = 0;
        options.timeout = Duration::from_millis(1);
        let resolver = build_resolver(ResolverConfig::from_name_servers(Vec::new()), options)
            .expect("a resolver without name servers needs nothing that can fail");
        Authenticator {
            inner: Arc::new(Inner { resolver, caches: Caches::recorded(&records), hostname: hostname.to_string(), recorded: true }),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    fn resolving(hostname: &str, config: ResolverConfig, options: ResolverOpts) -> Result<Self, AuthError> {
        let resolver = build_resolver(config, options)?;
        Ok(Authenticator {
            inner: Arc::new(Inner { resolver, caches: Caches::passthrough(), hostname: hostname.to_string(), recorded: false }),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// Bounds one whole verification (at most an hour); lookups still pending then give
    /// `temperror`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.min(MAX_TIMEOUT);
        self
    }

    pub fn hostname(&self) -> &str {
        &self.inner.hostname
    }

    /// Checks SPF for `mail_from` (the HELO name if it is null) from `client_ip`, every DKIM
    /// signature of `raw_message`, and DMARC for its `From:` domain. Never fails: unusable input
    /// gives `none`/`permerror`, DNS trouble and time-outs `temperror`.
    pub async fn verify(&self, client_ip: IpAddr, helo: &str, mail_from: &str, raw_message: &[u8]) -> AuthResults {
        let job = Job {
            inner: self.inner.clone(),
            client_ip,
            helo: helo.trim().to_string(),
            mail_from: clean_reverse_path(mail_from),
            raw: raw_message.to_vec(),
            deadline: tokio::time::Instant::now() + self.timeout,
        };
        // Own task: a panic on hostile input inside mail-auth costs this check, not the session.
        let mut task = tokio::spawn(job.run());
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), &mut task).await {
            Ok(Ok(results)) => results,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "sender authentication failed");
                AuthResults::all(&self.inner.hostname, Verdict::PermError, "internal error")
            }
            Err(_) => {
                task.abort();
                AuthResults::all(&self.inner.hostname, Verdict::TempError, "timed out")
            }
        }
    }
}

fn build_resolver(config: ResolverConfig, options: ResolverOpts) -> Result<MessageAuthenticator, AuthError> {
    // Our own TLS settings, so building never depends on the platform certificate store: DNS
    // from resolv.conf is plain UDP/TCP, and opportunistic encryption stays off.
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| AuthError::Resolver(e.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options)
        .with_tls_config(tls)
        .build()
        .map_err(|e| AuthError::Resolver(e.to_string()))?;
    Ok(MessageAuthenticator(resolver))
}

/// `<a@b>` → `a@b`; `<>` → empty.
fn clean_reverse_path(mail_from: &str) -> String {
    let s = mail_from.trim();
    let s = s.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(s);
    s.trim().to_string()
}

/// Lower-case A-label domain without the final dot.
fn normalize_domain(domain: &str) -> String {
    to_a_label(domain.trim().trim_end_matches('.')).to_ascii_lowercase()
}

/// Relaxed alignment without a public-suffix list: equal, or one is a parent of the other and
/// has at least two labels. Sibling subdomains align only through a DMARC pass.
fn relaxed_aligned(signing_domain: &str, from_domain: &str) -> bool {
    let (d, f) = (normalize_domain(signing_domain), normalize_domain(from_domain));
    if d.is_empty() || f.is_empty() {
        return false;
    }
    if d == f {
        return true;
    }
    let (short, long) = if d.len() < f.len() { (&d, &f) } else { (&f, &d) };
    short.contains('.') && long.strip_suffix(short.as_str()).is_some_and(|prefix| prefix.ends_with('.'))
}

fn dkim_verdict(result: &DkimResult) -> (Verdict, Option<String>) {
    match result {
        DkimResult::Pass => (Verdict::Pass, None),
        // mail-auth says "neutral" for a body-hash mismatch; RFC 6376/8601 call it a failure.
        DkimResult::Neutral(mail_auth::Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            (Verdict::Fail, Some("body hash did not verify".into()))
        }
        DkimResult::Neutral(e) => (Verdict::Neutral, Some(e.to_string())),
        DkimResult::Fail(e) => (Verdict::Fail, Some(e.to_string())),
        DkimResult::PermError(e) => (Verdict::PermError, Some(e.to_string())),
        DkimResult::TempError(e) => (Verdict::TempError, Some(e.to_string())),
        DkimResult::None => (Verdict::None, None),
    }
}

fn dmarc_verdict(result: &DmarcResult) -> (Verdict, Option<String>) {
    match result {
        DmarcResult::Pass => (Verdict::Pass, None),
        DmarcResult::Fail(e) => (Verdict::Fail, Some(e.to_string())),
        DmarcResult::TempError(e) => (Verdict::TempError, Some(e.to_string())),
        DmarcResult::PermError(e) => (Verdict::PermError, Some(e.to_string())),
        DmarcResult::None => (Verdict::None, None),
    }
}

/// The DKIM verdict of a message: pass if any signature passes, else the most telling failure.
fn aggregate_dkim(verdicts: &[Verdict]) -> Verdict {
    [Verdict::Pass, Verdict::Fail, Verdict::TempError, Verdict::PermError, Verdict::Neutral]
        .into_iter()
        .find(|v| verdicts.contains(v))
        .unwrap_or(Verdict::None)
}

struct Job {
    inner: Arc<Inner>,
    client_ip: IpAddr,
    helo: String,
    mail_from: String,
    raw: Vec<u8>,
    deadline: tokio::time::Instant,
}

impl Job {
    async fn run(self) -> AuthResults {
        let Job { inner, client_ip, helo, mail_from, raw, deadline } = self;
        let (resolver, caches, hostname) = (&inner.resolver, &inner.caches, inner.hostname.as_str());

        // The SPF identity, and the domain DMARC aligns it with: MAIL FROM, or HELO if null.
        let spf_domain = match mail_from.rsplit_once('@') {
            Some((_, domain)) => normalize_domain(domain),
            None => normalize_domain(&helo),
        };

        let mut message = AuthenticatedMessage::parse(&raw);
        if let Some(message) = &mut message {
            message.dkim_headers.truncate(MAX_DKIM_SIGNATURES);
        }
        let from_domain = message.as_ref().and_then(|m| {
            let mut domains = m.from.iter().filter_map(|a| a.rsplit_once('@')).map(|(_, d)| normalize_domain(d));
            let first = domains.next().filter(|d| !d.is_empty())?;
            domains.all(|d| d == first).then_some(first)
        });

        let spf = async {
            let params = caches.params(SpfParameters::verify_mail_from(client_ip, &helo, hostname, &mail_from));
            tokio::time::timeout_at(deadline, resolver.verify_spf(params))
                .await
                .unwrap_or_else(|_| SpfOutput::new(spf_domain.clone()).with_result(SpfResult::TempError))
        };
        let dkim = async {
            match &message {
                Some(message) => tokio::time::timeout_at(deadline, resolver.verify_dkim(caches.params(message))).await.ok(),
                None => Some(Vec::new()),
            }
        };
        let (spf, dkim): (SpfOutput, Option<Vec<DkimOutput<'_>>>) = tokio::join!(spf, dkim);

        let dmarc: Result<Option<DmarcOutput>, ()> = match (&message, &dkim) {
            (None, _) => Ok(None),
            (Some(_), None) => Err(()),
            (Some(message), Some(dkim)) => {
                let params = caches.params(DmarcParameters::new(message, dkim, &spf_domain, &spf));
                tokio::time::timeout_at(deadline, resolver.verify_dmarc(params)).await.map(Some).map_err(|_| ())
            }
        };

        // Assemble the verdicts and the header.
        let mut header = HeaderBuilder::new(hostname);
        let spf_verdict = Verdict::from(spf.result());
        let spf_props: Vec<(&str, String)> = if mail_from.is_empty() || !mail_from.contains('@') {
            vec![("smtp.helo", pvalue(&helo))]
        } else {
            vec![("smtp.mailfrom", pvalue(&spf_domain))]
        };
        header.method("spf", spf_verdict, None, &spf_props);

        let dmarc_dkim_pass = matches!(&dmarc, Ok(Some(out)) if *out.dkim_result() == DmarcResult::Pass);
        let (dkim_verdict_all, dkim_aligned) = match &dkim {
            None => {
                header.method("dkim", Verdict::TempError, Some("timed out"), &[]);
                (Verdict::TempError, false)
            }
            Some(outputs) if outputs.is_empty() => {
                header.method("dkim", Verdict::None, None, &[]);
                (Verdict::None, false)
            }
            Some(outputs) => {
                let mut verdicts = Vec::with_capacity(outputs.len());
                let mut aligned = false;
                for (i, output) in outputs.iter().enumerate() {
                    let (verdict, reason) = dkim_verdict(output.result());
                    verdicts.push(verdict);
                    let mut props = Vec::new();
                    if let Some(signature) = output.signature() {
                        if verdict == Verdict::Pass
                            && let Some(from) = &from_domain
                        {
                            aligned |= dmarc_dkim_pass || relaxed_aligned(&signature.d, from);
                        }
                        props.push(("header.d", pvalue(&signature.d)));
                        props.push(("header.s", pvalue(&signature.s)));
                        if let Some(prefix) = signature.b.get(..6) {
                            // RFC 6008; base64's '+' and '/' are not token characters.
                            use base64::Engine;
                            let b = base64::engine::general_purpose::STANDARD.encode(prefix);
                            props.push(("header.b", if b.contains(['+', '/']) { format!("\"{b}\"") } else { b }));
                        }
                    }
                    if i < MAX_DKIM_ENTRIES {
                        header.method("dkim", verdict, reason.as_deref(), &props);
                    }
                }
                (aggregate_dkim(&verdicts), aligned)
            }
        };

        let dmarc_verdict_all = match &dmarc {
            Err(()) => {
                header.method("dmarc", Verdict::TempError, Some("timed out"), &[]);
                Verdict::TempError
            }
            Ok(None) => {
                header.method("dmarc", Verdict::None, None, &[]);
                Verdict::None
            }
            Ok(Some(out)) => {
                let (verdict, reason) = dmarc_verdict(&out.result());
                let mut props = Vec::new();
                if !out.domain().is_empty() {
                    props.push(("header.from", pvalue(out.domain())));
                }
                if out.dmarc_record().is_some() {
                    let policy = match out.policy() {
                        Policy::Reject => "reject",
                        Policy::Quarantine => "quarantine",
                        Policy::None | Policy::Unspecified => "none",
                    };
                    props.push(("policy.dmarc", policy.to_string()));
                }
                header.method("dmarc", verdict, reason.as_deref(), &props);
                verdict
            }
        };

        AuthResults {
            spf: spf_verdict,
            dkim: dkim_verdict_all,
            dkim_aligned,
            dmarc: dmarc_verdict_all,
            from_domain,
            header: header.finish(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Authentication-Results (RFC 8601)
// ---------------------------------------------------------------------------------------------

/// Builds `Authentication-Results: host;\r\n\tmethod=result reason="…" prop=value;…\r\n`.
/// Every value written is reduced to a safe character set, so hostile input cannot inject
/// header lines or forge results.
struct HeaderBuilder {
    text: String,
}

impl HeaderBuilder {
    fn new(hostname: &str) -> Self {
        let host = pvalue(hostname);
        let host = if host.is_empty() { "localhost".to_string() } else { host };
        HeaderBuilder { text: format!("Authentication-Results: {host}") }
    }

    fn method(&mut self, method: &str, verdict: Verdict, reason: Option<&str>, props: &[(&str, String)]) {
        self.text.push_str(";\r\n\t");
        self.text.push_str(method);
        self.text.push('=');
        self.text.push_str(verdict.as_str());
        if let Some(reason) = reason {
            let reason: String = reason.chars().filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\').take(100).collect();
            if !reason.trim().is_empty() {
                self.text.push_str(" reason=\"");
                self.text.push_str(reason.trim());
                self.text.push('"');
            }
        }
        for (name, value) in props {
            if !value.is_empty() {
                self.text.push(' ');
                self.text.push_str(name);
                self.text.push('=');
                self.text.push_str(value);
            }
        }
    }

    fn finish(mut self) -> String {
        self.text.push_str("\r\n");
        self.text
    }
}

/// A property value: domain-name characters only (letters, digits, `.`, `-`, `_`), at most 255.
fn pvalue(value: &str) -> String {
    value.trim().trim_end_matches('.').chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')).take(255).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;
    use std::time::Instant;

    const HOST: &str = "mx.mailroom.test";
    const SELECTOR: &str = "mr2026";

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    fn message(from: &str, body: &str) -> Vec<u8> {
        format!(
            "From: Customer <{from}>\r\nTo: support@example.com\r\nSubject: Order 42\r\n\
             Date: Mon, 6 Apr 2026 10:00:00 +0000\r\nMessage-ID: <42@customer.org>\r\n\r\n{body}"
        )
        .into_bytes()
    }

    /// A message for customer.org signed with a fresh Ed25519 key, and the records that publish
    /// that key, SPF (192.0.2.0/24) and DMARC p=reject.
    fn signed_customer() -> (Vec<u8>, StaticRecords) {
        let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
        let public = b64(&key.public_key());
        let msg = message("alice@customer.org", "Hello, where is my order?\r\n");
        let signature = DkimSigner::from_key(key)
            .domain("customer.org")
            .selector(SELECTOR)
            .headers(["From", "To", "Subject", "Date", "Message-ID"])
            .sign(&msg)
            .unwrap();
        let mut signed = signature.to_header().into_bytes();
        signed.extend_from_slice(&msg);
        let records = StaticRecords::new()
            .with_txt("customer.org", "v=spf1 ip4:192.0.2.0/24 -all")
            .with_txt(format!("{SELECTOR}._domainkey.customer.org"), format!("v=DKIM1; k=ed25519; p={public}"))
            .with_txt("_dmarc.customer.org", "v=DMARC1; p=reject");
        (signed, records)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test]
    async fn signed_message_from_authorised_ip_passes_everything() {
        let (msg, records) = signed_customer();
        let auth = Authenticator::with_records(HOST, records);
        let start = Instant::now();
        let r = auth.verify(ip("192.0.2.10"), "mail.customer.org", "alice@customer.org", &msg).await;
        assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::Pass, Verdict::Pass, Verdict::Pass), "{}", r.header);
        assert!(r.dkim_aligned);
        assert!(r.sender_authenticated());
        assert_eq!(r.from_domain.as_deref(), Some("customer.org"));
        assert_eq!(r.summary(), "spf=pass dkim=pass dmarc=pass");
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn altered_body_fails_dkim_and_dmarc() {
        let (msg, records) = signed_customer();
        let auth = Authenticator::with_records(HOST, records);
        let text = String::from_utf8(msg).unwrap().replace("where is my order?", "please wire 10,000 EUR to IBAN XX00");
        let r = auth.verify(ip("198.51.100.7"), "mail.evil.test", "alice@customer.org", text.as_bytes()).await;
        assert_eq!(r.spf, Verdict::Fail, "{}", r.header);
        assert_eq!(r.dkim, Verdict::Fail, "{}", r.header);
        assert_eq!(r.dmarc, Verdict::Fail, "{}", r.header);
        assert!(!r.dkim_aligned);
        assert!(!r.sender_authenticated());
        assert!(r.header.contains("dkim=fail reason=\"body hash did not verify\""), "{}", r.header);
    }

    #[tokio::test]
    async fn altered_signed_header_fails_dkim() {
        let (msg, records) = signed_customer();
        let auth = Authenticator::with_records(HOST, records);
        let text = String::from_utf8(msg).unwrap().replace("Subject: Order 42", "Subject: Order 43");
        let r = auth.verify(ip("192.0.2.10"), "mail.customer.org", "alice@customer.org", text.as_bytes()).await;
        assert_eq!(r.dkim, Verdict::Fail, "{}", r.header);
        // SPF still passes and aligns, so DMARC passes (as RFC 7489 says).
        assert_eq!((r.spf, r.dmarc), (Verdict::Pass, Verdict::Pass));
        assert!(r.sender_authenticated());
    }

    #[tokio::test]
    async fn spoofed_from_without_signature_fails_dmarc() {
        let (_, records) = signed_customer();
        let auth = Authenticator::with_records(HOST, records);
        let msg = message("ceo@customer.org", "Urgent: pay this invoice today.\r\n");
        // Envelope from the attacker's own (unpublished) domain: SPF none, unaligned.
        let r = auth.verify(ip("203.0.113.9"), "mx.attacker.test", "bounce@attacker.test", &msg).await;
        assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::None, Verdict::None, Verdict::Fail), "{}", r.header);
        assert!(!r.sender_authenticated());
        // Envelope claiming customer.org: SPF fails.
        let r = auth.verify(ip("203.0.113.9"), "mx.attacker.test", "ceo@customer.org", &msg).await;
        assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::Fail, Verdict::None, Verdict::Fail), "{}", r.header);
        assert!(!r.sender_authenticated());
        assert!(r.header.contains("policy.dmarc=reject"), "{}", r.header);
    }

    #[tokio::test]
    async fn domain_without_records_is_none_and_fast() {
        // No name servers and nothing recorded: if anything tried the network it would fail
        // (temperror), not give none.
        let auth = Authenticator::with_records(HOST, StaticRecords::new());
        let msg = message("someone@unknown-domain.test", "Hi\r\n");
        let start = Instant::now();
        let r = auth.verify(ip("192.0.2.99"), "mail.unknown-domain.test", "someone@unknown-domain.test", &msg).await;
        assert!(start.elapsed() < Duration::from_millis(200), "took {:?}", start.elapsed());
        assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::None, Verdict::None, Verdict::None), "{}", r.header);
        assert!(!r.dkim_aligned);
        assert!(!r.sender_authenticated());

        // A signature whose key is not published: permerror, not a hang.
        let (signed, _) = signed_customer();
        let start = Instant::now();
        let r = auth.verify(ip("192.0.2.10"), "mail.customer.org", "alice@customer.org", &signed).await;
        assert!(start.elapsed() < Duration::from_millis(200));
        assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::None, Verdict::PermError, Verdict::None), "{}", r.header);
        assert!(!r.sender_authenticated());
    }

    #[tokio::test]
    async fn header_names_hostname_and_results() {
        let (msg, records) = signed_customer();
        let auth = Authenticator::with_records(HOST, records);
        let r = auth.verify(ip("192.0.2.10"), "mail.customer.org", "alice@customer.org", &msg).await;
        let h = &r.header;
        assert!(h.starts_with(&format!("Authentication-Results: {HOST};\r\n\t")), "{h}");
        assert!(h.ends_with("\r\n") && !h.ends_with("\r\n\r\n"), "{h:?}");
        assert!(h.contains("spf=pass smtp.mailfrom=customer.org"), "{h}");
        assert!(h.contains(&format!("dkim=pass header.d=customer.org header.s={SELECTOR} header.b=")), "{h}");
        assert!(h.contains("dmarc=pass header.from=customer.org policy.dmarc=reject"), "{h}");
        // Every line break is CRLF followed by a tab (a folded header), and no address leaks.
        assert_eq!(h.matches('\n').count(), h.matches("\r\n").count());
        assert_eq!(h.matches("\r\n").count(), 4);
        assert_eq!(h.matches("\r\n\t").count(), 3);
        assert!(!h.contains("alice"));
        // Prepended, it parses as a header of the message.
        let mut full = h.clone().into_bytes();
        full.extend_from_slice(&msg);
        let parsed = mail_parser::MessageParser::default().parse(&full).unwrap();
        let value = parsed.header_raw("Authentication-Results").unwrap();
        assert!(value.contains("dmarc=pass"));
        assert_eq!(parsed.subject(), Some("Order 42"));
    }

    #[tokio::test]
    async fn hostile_values_cannot_inject_header_lines() {
        let auth = Authenticator::with_records("mx.test\r\nX-Evil: 1", StaticRecords::new());
        let msg = b"From: a@b.test\r\nDKIM-Signature: v=1; a=rsa-sha256; d=x.test\r\n evil; s=\"sel\r\n\r\nbody";
        let r = auth.verify(ip("::1"), "helo;\r\n\tdmarc=pass", "", msg).await;
        assert!(r.header.starts_with("Authentication-Results: mx.testX-Evil1;\r\n\t"), "{}", r.header);
        assert_eq!(r.header.matches("dmarc=").count(), 1, "{}", r.header);
        assert_eq!(r.header.matches("\r\n").count(), r.header.matches("\r\n\t").count() + 1, "{}", r.header);
    }

    #[tokio::test]
    async fn static_records_toml_round_trip() {
        let (_, records) = signed_customer();
        let records = records
            .with_a("mail.customer.org", Ipv4Addr::new(192, 0, 2, 25))
            .with_aaaa("mail.customer.org", "2001:db8::25".parse().unwrap())
            .with_mx("customer.org", 10, "mail.customer.org")
            .with_ptr(ip("192.0.2.25"), "mail.customer.org");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("records.toml");
        std::fs::write(&path, records.to_toml_string()).unwrap();
        let loaded = StaticRecords::from_toml_file(&path).unwrap();
        assert_eq!(loaded, records);

        // Errors name the file and the place.
        std::fs::write(&path, "[[txt]]\nname = \"a.test\"\nvalu = \"x\"\n").unwrap();
        let e = StaticRecords::from_toml_file(&path).unwrap_err().to_string();
        assert!(e.contains("records.toml") && e.contains("line 3") && e.contains("valu"), "{e}");
        std::fs::write(&path, "[[a]]\nname = \"a.test\"\nip = \"2001:db8::1\"\n").unwrap();
        assert!(StaticRecords::from_toml_file(&path).is_err());
        std::fs::write(&path, "[[mx]]\nname = \"a.test\"\nexchange = \"\"\n").unwrap();
        let e = StaticRecords::from_toml_file(&path).unwrap_err().to_string();
        assert!(e.contains("mx entry 1: exchange"), "{e}");
        let e = StaticRecords::from_toml_file(dir.path().join("missing.toml")).unwrap_err().to_string();
        assert!(e.contains("missing.toml"), "{e}");
    }

    #[tokio::test]
    async fn fixture_file_drives_a_mx_and_include() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/auth/records.toml");
        let auth = Authenticator::with_records(HOST, StaticRecords::from_toml_file(&path).unwrap());
        let msg = message("info@example.org", "Hi\r\n");
        let spf = |ip_s: &'static str, from: &'static str| {
            let (auth, msg) = (auth.clone(), msg.clone());
            async move { auth.verify(ip(ip_s), "mail.example.org", from, &msg).await.spf }
        };
        assert_eq!(spf("192.0.2.25", "info@example.org").await, Verdict::Pass); // a
        assert_eq!(spf("2001:db8::25", "info@example.org").await, Verdict::Pass); // a (AAAA)
        assert_eq!(spf("192.0.2.26", "info@example.org").await, Verdict::Pass); // mx
        assert_eq!(spf("198.51.100.1", "info@example.org").await, Verdict::Pass); // include
        assert_eq!(spf("203.0.113.1", "info@example.org").await, Verdict::SoftFail);
        assert_eq!(spf("203.0.113.1", "x@exists.example.org").await, Verdict::Fail);
        assert_eq!(spf("192.0.2.77", "x@exists.example.org").await, Verdict::Pass); // exists
        assert_eq!(spf("203.0.113.1", "x@broken.example.org").await, Verdict::PermError);
        assert_eq!(spf("203.0.113.1", "x@dangling.example.org").await, Verdict::PermError); // include: NXDOMAIN
        assert_eq!(spf("203.0.113.1", "x@neutral.example.org").await, Verdict::Neutral);
        // Null sender: the HELO identity is checked.
        assert_eq!(spf("192.0.2.25", "").await, Verdict::Pass);
    }

    #[tokio::test]
    async fn dkim_alignment_without_dmarc_record() {
        let (msg, records) = signed_customer();
        // No DMARC record: DKIM alone decides, if aligned.
        let records = StaticRecords { txt: records.txt.into_iter().filter(|r| !r.name.starts_with("_dmarc")).collect(), ..records };
        let auth = Authenticator::with_records(HOST, records.clone());
        let r = auth.verify(ip("203.0.113.9"), "mail.customer.org", "alice@customer.org", &msg).await;
        assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::Fail, Verdict::Pass, Verdict::None), "{}", r.header);
        assert!(r.dkim_aligned && r.sender_authenticated());

        // Signed by customer.org but From: another domain: valid signature, not aligned.
        let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
        let public = b64(&key.public_key());
        let body = message("news@other.test", "Newsletter\r\n");
        let sig = DkimSigner::from_key(key).domain("mailer.test").selector("s1").headers(["From", "Subject"]).sign(&body).unwrap();
        let mut signed = sig.to_header().into_bytes();
        signed.extend_from_slice(&body);
        let auth =
            Authenticator::with_records(HOST, records.with_txt("s1._domainkey.mailer.test", format!("v=DKIM1; k=ed25519; p={public}")));
        let r = auth.verify(ip("203.0.113.9"), "mail.mailer.test", "bounce@mailer.test", &signed).await;
        assert_eq!(r.dkim, Verdict::Pass);
        assert!(!r.dkim_aligned && !r.sender_authenticated());
    }

    #[tokio::test]
    async fn rsa_signature_verifies() {
        use aws_lc_rs::encoding::AsDer;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let der = pair.as_der().unwrap().as_ref().to_vec();
        let key = RsaKey::<Sha256>::from_key_der(rustls_pki_types::PrivateKeyDer::Pkcs8(der.into())).unwrap();
        let public = b64(&key.public_key());
        let msg = message("bob@customer.org", "RSA-signed\r\n");
        let sig = DkimSigner::from_key(key).domain("customer.org").selector("rsa").headers(["From", "To", "Subject"]).sign(&msg).unwrap();
        let mut signed = sig.to_header().into_bytes();
        signed.extend_from_slice(&msg);
        let records = StaticRecords::new()
            .with_txt("rsa._domainkey.customer.org", format!("v=DKIM1; k=rsa; p={public}"))
            .with_txt("_dmarc.customer.org", "v=DMARC1; p=quarantine");
        let auth = Authenticator::with_records(HOST, records);
        let r = auth.verify(ip("203.0.113.9"), "x.test", "bounce@elsewhere.test", &signed).await;
        assert_eq!((r.dkim, r.dmarc), (Verdict::Pass, Verdict::Pass), "{}", r.header);
        assert!(r.sender_authenticated());
    }

    #[tokio::test]
    async fn garbage_never_panics() {
        let (signed, records) = signed_customer();
        let auth = Authenticator::with_records(HOST, records);
        let long = format!("x@{}.test", "a".repeat(300));
        let inputs: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"\r\n\r\n".to_vec(),
            vec![0xff, 0xfe, 0x00, 0x80, b'\n'],
            b"From:\r\n\r\n".to_vec(),
            b"From: <@>\r\nFrom: a@b.test, c@d.test\r\n\r\nx".to_vec(),
            b"DKIM-Signature: v=1; a=ed25519-sha256; d=customer.org; s=mr2026; b=!!!; bh=???\r\nFrom: a@customer.org\r\n\r\n".to_vec(),
            b"DKIM-Signature: v=1; a=rsa-sha256; l=99999999999999999999; d=; s=; h=; bh=; b=\r\nFrom: a@customer.org\r\n\r\n".to_vec(),
            signed[..signed.len() / 2].to_vec(),
            [b"DKIM-Signature: x\r\n".repeat(500), b"From: a@customer.org\r\n\r\n".to_vec()].concat(),
        ];
        for input in &inputs {
            for (client, helo, from) in [
                ("192.0.2.1", "", ""),
                ("::1", "[192.0.2.1]", "<>"),
                ("2001:db8::1", "a..b", "@@@"),
                ("192.0.2.1", "mail.customer.org", "x@"),
                ("192.0.2.1", long.as_str(), long.as_str()),
                ("192.0.2.1", "ünïcode.test", "ü@ünïcode.test"),
            ] {
                let r = auth.verify(ip(client), helo, from, input).await;
                assert!(!r.sender_authenticated(), "{input:?} {helo} {from}: {}", r.header);
                assert!(r.header.starts_with("Authentication-Results: ") && r.header.ends_with("\r\n"));
            }
        }
        let r = auth.verify(ip("192.0.2.1"), "h", "a@b.test", &inputs[4]).await;
        assert_eq!(r.from_domain, None); // two From domains: none trusted
    }

    #[tokio::test]
    async fn unanswered_dns_is_temperror_not_a_hang() {
        // A "name server" that never answers (loopback only; nothing leaves the machine).
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let auth = Authenticator::with_resolvers(HOST, &[silent.local_addr().unwrap()]).unwrap().with_timeout(Duration::from_millis(300));
        let (msg, _) = signed_customer();
        let start = Instant::now();
        let r = auth.verify(ip("192.0.2.10"), "mail.customer.org", "alice@customer.org", &msg).await;
        assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
        assert_eq!((r.spf, r.dkim, r.dmarc), (Verdict::TempError, Verdict::TempError, Verdict::TempError), "{}", r.header);
        assert!(!r.sender_authenticated());
    }

    #[test]
    fn system_resolver_builds_without_lookups() {
        // Reads /etc/resolv.conf only; no query is sent.
        if Path::new("/etc/resolv.conf").exists() {
            let auth = Authenticator::system(HOST).unwrap().with_timeout(Duration::MAX);
            assert_eq!(auth.hostname(), HOST);
            assert_eq!(auth.timeout, MAX_TIMEOUT);
        }
        assert!(Authenticator::with_resolvers(HOST, &[]).is_err());
    }

    #[test]
    fn verdict_names_round_trip() {
        for v in Verdict::ALL {
            assert_eq!(v.as_str().parse::<Verdict>().unwrap(), v);
            assert_eq!(v.as_str().to_uppercase().parse::<Verdict>().unwrap(), v);
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{}\"", v.as_str()));
        }
        assert!("passed".parse::<Verdict>().is_err());
    }

    #[test]
    fn alignment_rules() {
        assert!(relaxed_aligned("customer.org", "customer.org"));
        assert!(relaxed_aligned("Customer.ORG.", "customer.org"));
        assert!(relaxed_aligned("mail.customer.org", "customer.org"));
        assert!(relaxed_aligned("customer.org", "news.customer.org"));
        assert!(!relaxed_aligned("customer.org.evil.test", "customer.org"));
        assert!(!relaxed_aligned("evilcustomer.org", "customer.org"));
        assert!(!relaxed_aligned("org", "customer.org"));
        assert!(!relaxed_aligned("", "customer.org"));
        assert_eq!(clean_reverse_path(" <a@b.test> "), "a@b.test");
        assert_eq!(clean_reverse_path("<>"), "");
    }
}
