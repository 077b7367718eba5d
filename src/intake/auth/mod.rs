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

use std::fmt;
use std::hash::Hash;
use std::str::FromStr;
use std::time::Duration;

use mail_auth::SpfResult;
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

mod header;
mod recorded;
#[cfg(test)]
mod tests;
mod verify;

use header::*;
use recorded::*;
pub use recorded::{ARecord, AaaaRecord, MxRecord, PtrRecord, StaticRecords, TxtRecord};
pub use verify::Authenticator;
