//! The process's metrics recorder (metrics-exporter-prometheus, rendered by our own router) and
//! the catalogue of every metric mailroom exports, with its help text.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Durations (seconds): from a fast commit to a slow one waiting behind a full disk.
const SECONDS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// Messages per commit: 1 to `storage.max_batch` (1000 at most).
const MESSAGES: [f64; 11] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1000.0];

/// (name, kind, help): every metric, in the order the README lists them.
pub const CATALOGUE: &[(&str, Kind, &str)] = &[
    (
        "mailroom_smtp_sessions_total",
        Kind::Counter,
        "SMTP/LMTP sessions ended, by protocol and the last reply code (221 after QUIT, 421 when closed by us)",
    ),
    ("mailroom_smtp_recipients_total", Kind::Counter, "RCPT commands answered, by protocol and reply code"),
    (
        "mailroom_smtp_transactions_total",
        Kind::Counter,
        "Mail transactions ended, by protocol, final reply code and result (registered, duplicate, refused, tempfail)",
    ),
    ("mailroom_smtp_received_bytes_total", Kind::Counter, "Message bytes received at end of data, by protocol"),
    (
        "mailroom_smtp_registration_duration_seconds",
        Kind::Histogram,
        "End of data to the 250 reply (parse, classify, seal, commit), by protocol",
    ),
    (
        "mailroom_smtp_memory_in_flight_bytes",
        Kind::Gauge,
        "Budget bytes (limits.message_memory) held now by SMTP/LMTP transactions for their message data",
    ),
    (
        "mailroom_smtp_memory_refusals_total",
        Kind::Counter,
        "Transactions answered 452 4.3.1 because limits.message_memory was full, by protocol and where (mail, data_command: \
         before the data while a grower waits, data: after it, bdat)",
    ),
    (
        "mailroom_smtp_memory_waits_total",
        Kind::Counter,
        "Times a growing transaction waited (its turn by age) for message memory to be given back instead of failing",
    ),
    ("mailroom_store_commits_total", Kind::Counter, "Group commits of the writer, by result"),
    ("mailroom_store_commit_duration_seconds", Kind::Histogram, "Duration of one group commit (begin to durable commit)"),
    ("mailroom_store_commit_messages", Kind::Histogram, "Messages registered per group commit"),
    ("mailroom_queue_cases", Kind::Gauge, "Active cases by queue and status (new, open, waiting)"),
    ("mailroom_queue_overdue_cases", Kind::Gauge, "New or open cases past their due time, by queue"),
    ("mailroom_outbox_messages", Kind::Gauge, "Outgoing mail by status (pending, sending, failed)"),
    (
        "mailroom_escalations_total",
        Kind::Counter,
        "SLA sweep events handled, by kind (warning: due time near, breach: escalated, new: a new urgent or VIP case announced)",
    ),
    (
        "mailroom_notifications_total",
        Kind::Counter,
        "Staff notifications made by the SLA sweep, by kind and channel (web: listed for the user, mail: also queued to his address)",
    ),
    ("mailroom_logins_total", Kind::Counter, "Staff logins by interface (imap, http, web) and result"),
    ("mailroom_login_lockouts_total", Kind::Counter, "Lockouts after repeated failed logins, by scope (user, source address)"),
    ("mailroom_connections_total", Kind::Counter, "Connections accepted, by listener and whether the limits admitted them"),
    ("mailroom_connections_open", Kind::Gauge, "Connections open now, by service (smtp for SMTP and LMTP, imap, http)"),
    ("mailroom_store_size_bytes", Kind::Gauge, "The store on disk: SQLite's file and WAL, or PostgreSQL's pg_database_size"),
    ("mailroom_store_used_bytes", Kind::Gauge, "The store's pages in use (what storage.max_database_size counts)"),
    ("mailroom_store_max_bytes", Kind::Gauge, "storage.max_database_size, when set"),
    ("mailroom_disk_free_bytes", Kind::Gauge, "Bytes free to mailroom on the data dir's filesystem"),
    ("mailroom_config_reloads_total", Kind::Counter, "Configuration reloads on SIGHUP, by result (ok, refused)"),
    (
        "mailroom_retention_purged_total",
        Kind::Counter,
        "Registrations crypto-shredded by the retention policies, by policy (the [[retention]] name)",
    ),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Installs the recorder for this process (histograms with fixed buckets) and describes every
/// metric; the handle renders the text format. Fails if a recorder is installed already.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS)?
        .set_buckets_for_metric(Matcher::Full("mailroom_store_commit_messages".into()), &MESSAGES)?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| anyhow::anyhow!("installing the metrics recorder: {e}"))?;
    for (name, kind, help) in CATALOGUE {
        let unit = if name.ends_with("_bytes") || name.ends_with("_bytes_total") {
            Unit::Bytes
        } else if name.ends_with("_seconds") {
            Unit::Seconds
        } else {
            Unit::Count
        };
        match kind {
            Kind::Counter => describe_counter!(*name, unit, *help),
            Kind::Gauge => describe_gauge!(*name, unit, *help),
            Kind::Histogram => describe_histogram!(*name, unit, *help),
        }
    }
    // Series of fixed label sets start at 0, so a dashboard shows "none yet" rather than
    // "no data" (and rate() sees the first increment).
    for via in ["imap", "http", "web"] {
        for result in ["success", "invalid", "locked", "throttled", "busy", "code_required", "wrong_code"] {
            metrics::counter!("mailroom_logins_total", "via" => via, "result" => result).increment(0);
        }
    }
    for scope in ["user", "source"] {
        metrics::counter!("mailroom_login_lockouts_total", "scope" => scope).increment(0);
    }
    for result in ["ok", "failed"] {
        metrics::counter!("mailroom_store_commits_total", "result" => result).increment(0);
    }
    metrics::gauge!("mailroom_smtp_memory_in_flight_bytes").set(0.0);
    metrics::counter!("mailroom_smtp_memory_waits_total").increment(0);
    for protocol in ["smtp", "lmtp"] {
        for at in ["mail", "data_command", "data", "bdat"] {
            metrics::counter!("mailroom_smtp_memory_refusals_total", "protocol" => protocol, "at" => at).increment(0);
        }
    }
    for kind in ["warning", "breach", "new"] {
        metrics::counter!("mailroom_escalations_total", "kind" => kind).increment(0);
        for channel in ["web", "mail"] {
            metrics::counter!("mailroom_notifications_total", "kind" => kind, "channel" => channel).increment(0);
        }
    }
    Ok(handle)
}
