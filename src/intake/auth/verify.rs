//! The authenticator: SPF, DKIM and DMARC verification through mail-auth, bounded in time, with
//! the verdicts reduced to what routing and the stored header need.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use mail_auth::common::to_a_label;
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::hickory_resolver::TokioResolver;
use mail_auth::hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use mail_auth::hickory_resolver::net::runtime::TokioRuntimeProvider;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{AuthenticatedMessage, DkimOutput, DkimResult, DmarcOutput, DmarcResult, MessageAuthenticator, SpfOutput, SpfResult};

use super::*;

/// Verifies SPF, DKIM and DMARC for received messages. Cheap to clone; share one per server.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
    pub(super) timeout: Duration,
}

pub(super) struct Inner {
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

    pub(super) fn resolving(hostname: &str, config: ResolverConfig, options: ResolverOpts) -> Result<Self, AuthError> {
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

pub(super) fn build_resolver(config: ResolverConfig, options: ResolverOpts) -> Result<MessageAuthenticator, AuthError> {
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
pub(super) fn clean_reverse_path(mail_from: &str) -> String {
    let s = mail_from.trim();
    let s = s.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(s);
    s.trim().to_string()
}

/// Lower-case A-label domain without the final dot.
pub(super) fn normalize_domain(domain: &str) -> String {
    to_a_label(domain.trim().trim_end_matches('.')).to_ascii_lowercase()
}

/// Relaxed alignment without a public-suffix list: equal, or one is a parent of the other and
/// has at least two labels. Sibling subdomains align only through a DMARC pass.
pub(super) fn relaxed_aligned(signing_domain: &str, from_domain: &str) -> bool {
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

pub(super) fn dkim_verdict(result: &DkimResult) -> (Verdict, Option<String>) {
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

pub(super) fn dmarc_verdict(result: &DmarcResult) -> (Verdict, Option<String>) {
    match result {
        DmarcResult::Pass => (Verdict::Pass, None),
        DmarcResult::Fail(e) => (Verdict::Fail, Some(e.to_string())),
        DmarcResult::TempError(e) => (Verdict::TempError, Some(e.to_string())),
        DmarcResult::PermError(e) => (Verdict::PermError, Some(e.to_string())),
        DmarcResult::None => (Verdict::None, None),
    }
}

/// The DKIM verdict of a message: pass if any signature passes, else the most telling failure.
pub(super) fn aggregate_dkim(verdicts: &[Verdict]) -> Verdict {
    [Verdict::Pass, Verdict::Fail, Verdict::TempError, Verdict::PermError, Verdict::Neutral]
        .into_iter()
        .find(|v| verdicts.contains(v))
        .unwrap_or(Verdict::None)
}

pub(super) struct Job {
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
