//! Recorded DNS: answers written down (in code or TOML) and served from mail-auth's resolver
//! caches, so verification runs offline and reproducibly (tests, dry runs). See the module
//! documentation of `auth` for what recorded DNS cannot express.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::resolver::ToFqdn;
use mail_auth::common::verify::DomainKey;
use mail_auth::dkim::{Atps, DomainKeyReport};
use mail_auth::dmarc::Dmarc;
use mail_auth::hickory_resolver::proto::op::ResponseCode;
use mail_auth::spf::{Mechanism, Spf};
use mail_auth::{DnsError, DnssecStatus, MX, Parameters, RecordSet, ResolverCache, Txt};
use serde::{Deserialize, Serialize};

use super::*;

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

pub(super) fn default_mx_preference() -> u16 {
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

    pub(super) fn parse_toml(origin: &str, text: &str) -> Result<Self, AuthError> {
        let records: StaticRecords =
            toml::from_str(text).map_err(|e| AuthError::Records { origin: origin.to_string(), message: e.to_string() })?;
        records.validate().map_err(|message| AuthError::Records { origin: origin.to_string(), message })?;
        Ok(records)
    }

    pub(super) fn validate(&self) -> Result<(), String> {
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
pub(super) struct FixedCache<K, V> {
    map: HashMap<K, V>,
    miss: Option<V>,
}

impl<K, V> FixedCache<K, V> {
    pub(super) fn empty() -> Self {
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

pub(super) type TxtCache = FixedCache<Box<str>, Txt>;
pub(super) type MxCache = FixedCache<Box<str>, RecordSet<MX>>;
pub(super) type Ipv4Cache = FixedCache<Box<str>, RecordSet<Ipv4Addr>>;
pub(super) type Ipv6Cache = FixedCache<Box<str>, RecordSet<Ipv6Addr>>;
pub(super) type PtrCache = FixedCache<IpAddr, RecordSet<Box<str>>>;

/// The caches handed to every mail-auth call.
pub(super) struct Caches {
    txt: TxtCache,
    mx: MxCache,
    ipv4: Ipv4Cache,
    ipv6: Ipv6Cache,
    ptr: PtrCache,
}

impl Caches {
    /// Nothing cached: every lookup goes to the resolver (which caches by itself).
    pub(super) fn passthrough() -> Self {
        Caches {
            txt: FixedCache::empty(),
            mx: FixedCache::empty(),
            ipv4: FixedCache::empty(),
            ipv6: FixedCache::empty(),
            ptr: FixedCache::empty(),
        }
    }

    /// Everything answered from `records`; anything else is NXDOMAIN (TXT) or empty.
    pub(super) fn recorded(records: &StaticRecords) -> Self {
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
    pub(super) fn params<P>(&self, params: P) -> Parameters<'_, P, TxtCache, MxCache, Ipv4Cache, Ipv6Cache, PtrCache> {
        Parameters::new(params)
            .with_txt_cache(&self.txt)
            .with_mx_cache(&self.mx)
            .with_ipv4_cache(&self.ipv4)
            .with_ipv6_cache(&self.ipv6)
            .with_ptr_cache(&self.ptr)
    }
}

/// Lower-case, final dot: the form mail-auth looks names up by.
pub(super) fn fqdn(name: &str) -> String {
    name.trim().to_fqdn().into_owned()
}

/// What a resolver's TXT lookup would hand mail-auth for `name`: the first value that parses as
/// the record type the name implies (see the module documentation).
pub(super) fn parse_txt(name: &str, values: &[&str]) -> Txt {
    pub(super) fn first<T: TxtRecordParser>(values: &[&str]) -> mail_auth::Result<T> {
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
pub(super) fn rewrite_exists(spf: Spf) -> Spf {
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
