//! `mailroom serve`: opens the store, binds every listener, runs until SIGTERM/SIGINT, then shuts
//! down in order: stop accepting → let transactions finish (up to `limits.shutdown_grace`) → 421
//! to the rest → drain the writer → checkpoint the WAL.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::Settings;
use crate::intake::{Intake, Protocol};
use crate::net::Pool;
use crate::shutdown::{self, Phase};
use crate::smtp::{self, SmtpContext};
use crate::store::{Store, writer};

/// How often committed WAL pages are moved into the database file: often, so that each
/// checkpoint's fsync of the database file is small and never stalls a commit for long.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// The customer directory is re-read every this many checkpoint ticks (2 s).
const DIRECTORY_REFRESH_TICKS: u64 = 10;
/// The session purge (every `server.session_purge_every`, the first time at the first tick: what
/// a stopped node left behind goes at once) is a singleton job (one node at a time, see
/// `store::leases`): its lease lasts this many purge periods, so a live holder keeps it by
/// renewing at each purge, and a dead one's passes to another node within one period more.
const SESSION_PURGE_LEASE_PERIODS: u32 = 5;

pub async fn serve(settings: Arc<Settings>) -> anyhow::Result<()> {
    // Before anything is created: every file private to us, and a data dir nobody else can enter.
    crate::store::private_umask();
    crate::store::prepare_data_dir(&settings.data_dir)?;
    // At once: a SIGHUP before the handler exists would end the process (the default action).
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let config = &settings.config;
    for warning in &settings.warnings {
        tracing::warn!("config: {warning}");
    }
    // First, so that everything recorded from here on is in the metrics (none without a listener).
    let metrics = match config.metrics.listen {
        Some(_) => Some(crate::telemetry::recorder::install()?),
        None => None,
    };
    raise_fd_limit(config.limits.max_connections + config.imap.max_connections + config.http.max_connections);
    return_large_blocks();
    // A file left by a killed predecessor names ports that are no longer ours.
    let listeners_file = settings.data_dir.join("listeners.json");
    let _ = std::fs::remove_file(&listeners_file);
    let node = config.server.node_name();
    let store = Store::open_as(settings.store_options(), &node).await.context("opening the store")?;
    tracing::info!(node = %node, engine = store.engine(), "store open");
    if !store.audit_head_verifies().await.context("reading the audit log")? {
        anyhow::bail!(
            "the key file {} is not the one this database was written with: the newest audit entry does not verify under it. \
             Every node needs a copy of the same key file (docs/deploy-postgres.md); if this is the right one, the newest audit \
             entry was altered: run `mailroom audit verify`",
            settings.store_options().master_key_path.display()
        );
    }
    let tls = crate::tls::server_config(&config.tls, &settings.data_dir, &config.server.hostname).context("setting up TLS")?;
    let (writer, writer_thread) =
        writer::spawn(store.clone(), Arc::new(settings.policy.reg_format.clone()), config.registration.duplicate_window)
            .context("starting the writer")?;

    let directory = crate::intake::Directory::default();
    directory.replace(store.customer_tiers().await.context("loading the customer directory")?);
    let (trigger, shutdown) = shutdown::channel();
    let ctx = Arc::new(SmtpContext {
        hostname: config.server.hostname.clone(),
        limits: config.limits.clone(),
        lmtp: config.lmtp.clone(),
        memory: crate::smtp::memory::MessageMemory::new(config.limits.message_memory),
        intake: Intake::new(
            store.keys.clone(),
            writer,
            settings.policy.clone(),
            crate::intake::authenticator(&config.authentication, &config.server.hostname, &settings.data_dir)
                .context("setting up SPF/DKIM/DMARC checks")?,
            directory.clone(),
        ),
        tls: TlsAcceptor::from(tls),
        shutdown: shutdown.clone(),
    });

    // Bind everything before announcing anything: a port conflict fails the start, not half of it.
    let mut bound: BTreeMap<&str, Vec<SocketAddr>> = BTreeMap::new();
    let mut listeners = Vec::new();
    for (name, protocol, addrs) in
        [("smtp", Protocol::Smtp, &settings.config.smtp.listen), ("lmtp", Protocol::Lmtp, &settings.config.lmtp.listen)]
    {
        for addr in addrs {
            listeners.push((bind(name, name, addr, &mut bound).await?, protocol));
        }
    }
    // Staff views: IMAP (STARTTLS and implicit TLS) and HTTP.
    let access = settings.access(store.clone());
    tracing::info!(slots = access.login_slots(), "logins: at most {} password checks at once", access.login_slots());
    access.seed_roles().await.context("creating the roles named in the configuration")?;
    if settings.config.access.grant_approval == crate::config::GrantApproval::None {
        tracing::warn!(
            "access.grant_approval = \"none\": an officer's change that opens a queue's mail applies without a second person's approval (one-person organisations only)"
        );
    }
    let mut imap_listeners = Vec::new();
    for (name, implicit_tls, addrs) in
        [("imap", false, &settings.config.imap.listen_starttls), ("imaps", true, &settings.config.imap.listen_tls)]
    {
        for addr in addrs {
            imap_listeners.push((bind(name, name, addr, &mut bound).await?, implicit_tls));
        }
    }
    let mut http_listeners = Vec::new();
    for addr in &settings.config.http.listen {
        http_listeners.push(bind("http", if settings.config.http.tls { "https" } else { "http" }, addr, &mut bound).await?);
    }
    let metrics_listener = match &settings.config.metrics.listen {
        Some(addr) => {
            if !addr.ip().is_loopback() && settings.metrics_token.is_none() {
                tracing::warn!(addr = %addr, "metrics.listen is not a loopback address and no bearer token is set: anyone who reaches it can scrape");
            }
            Some(bind("metrics", "metrics", addr, &mut bound).await?)
        }
        None => None,
    };

    // One pool per service; each reserves limits.reserved_percent for addresses without a
    // connection. IMAP has a second, smaller pool for connections not logged in yet.
    let reserve = settings.config.limits.reserved_percent;
    let connections = Pool::new("smtp", settings.config.limits.max_connections, reserve);
    let imap = &settings.config.imap;
    let imap_pools = Arc::new(crate::imap::ImapPools {
        sessions: Pool::new("imap", imap.max_connections, reserve),
        // Full of connections not logged in: a newcomer evicts the oldest of the address with the most.
        unauthenticated: Pool::evicting("imap-prelogin", imap.max_unauthenticated.min(imap.max_connections), reserve),
    });
    let http_connections = Pool::new("http", settings.config.http.max_connections, reserve);
    let mut accept_tasks = Vec::new();
    for (listener, protocol) in listeners {
        accept_tasks.push(tokio::spawn(smtp::listen(listener, protocol, ctx.clone(), connections.clone())));
    }
    let cases = crate::cases::Cases::new(access.clone(), settings.case_settings());
    let imap_ctx = Arc::new(crate::imap::ImapContext {
        settings: settings.imap_settings(),
        access: access.clone(),
        cases: cases.clone(),
        tls: ctx.tls.clone(),
        shutdown: shutdown.clone(),
    });
    let mut staff_tasks = Vec::new();
    for (listener, implicit_tls) in imap_listeners {
        staff_tasks.push(tokio::spawn(crate::imap::listen(listener, implicit_tls, imap_ctx.clone(), imap_pools.clone())));
    }
    let dkim: crate::outbox::DkimSlot = Arc::new(arc_swap::ArcSwapOption::new(settings.dkim.clone()));
    let reloader = tokio::spawn(reload_on_hangup(
        hangups,
        settings.clone(),
        Reloadable { policy: ctx.intake.policy_slot(), cases: cases.clone(), access: access.clone(), dkim: dkim.clone() },
        shutdown.clone(),
    ));
    // PostgreSQL: colleagues on the other nodes show on case pages too.
    let other_nodes_presence = {
        let mut shutdown = shutdown.clone();
        cases.follow_other_nodes(async move { shutdown.reached(Phase::Draining).await })
    };
    let http_ctx = Arc::new(crate::http::HttpContext {
        settings: settings.http_settings(),
        access: access.clone(),
        cases: cases.clone(),
        tls: settings.config.http.tls.then(|| ctx.tls.clone()),
        shutdown: shutdown.clone(),
    });
    for listener in http_listeners {
        staff_tasks.push(tokio::spawn(crate::http::serve(listener, http_ctx.clone(), http_connections.clone())));
    }
    if let (Some(listener), Some(handle)) = (metrics_listener, metrics) {
        let telemetry = crate::telemetry::Telemetry::new(
            handle,
            store.clone(),
            settings.metrics_token.as_deref().cloned(),
            settings.queue_names(),
            vec![
                ("smtp", vec![connections.clone()]),
                ("imap", vec![imap_pools.sessions.clone()]),
                ("http", vec![http_connections.clone()]),
            ],
            settings.data_dir.clone(),
            settings.config.metrics.min_free_disk,
            settings.config.limits.max_message_size as u64,
            shutdown.clone(),
        );
        let pool = Pool::new("metrics", settings.config.metrics.max_connections, 0);
        staff_tasks.push(tokio::spawn(crate::telemetry::serve(listener, Arc::new(telemetry), pool)));
    }
    write_atomically(&listeners_file, &serde_json::to_vec(&bound)?)?;

    // This process among the nodes, as a lease holder (the pid: two processes never share one).
    let lease_holder = format!("{node}/{}", std::process::id());
    let purge_every = config.server.session_purge_every;
    let purge_ticks = (purge_every.as_millis() / CHECKPOINT_EVERY.as_millis()).max(1) as u64;
    let purge_lease = purge_every * SESSION_PURGE_LEASE_PERIODS;
    let checkpointer = {
        let (store, mut shutdown, directory, access) = (store.clone(), shutdown.clone(), directory.clone(), access.clone());
        let lease_holder = lease_holder.clone();
        tokio::spawn(async move {
            let mut ticks = 0u64;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(CHECKPOINT_EVERY) => {}
                    _ = shutdown.reached(Phase::Draining) => break,
                }
                // Per node: the WAL of this node's SQLite file (nothing on PostgreSQL).
                if let Err(e) = store.checkpoint().await {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
                // The directory is small and changes by admin import: re-read it now and then.
                ticks += 1;
                if (ticks - 1).is_multiple_of(purge_ticks)
                    && holds_lease(&store, SESSION_PURGE, &lease_holder, purge_lease).await
                    && let Err(e) = access.purge_sessions().await
                {
                    tracing::warn!(error = %e, "purging expired sessions failed");
                }
                if ticks.is_multiple_of(DIRECTORY_REFRESH_TICKS) {
                    match store.customer_tiers().await {
                        Ok(tiers) => directory.replace(tiers),
                        Err(e) => tracing::warn!(error = %e, "reloading the customer directory failed"),
                    }
                }
            }
            // Bounded: an unreachable database must not hold up the stop (the lease expires anyway).
            let release = crate::store::leases::release(&store, SESSION_PURGE, &lease_holder);
            match tokio::time::timeout(Duration::from_secs(2), release).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "releasing the session purge lease failed (it expires by itself)"),
                Err(_) => tracing::debug!("releasing the session purge lease timed out (it expires by itself)"),
            }
        })
    };
    // PostgreSQL: other nodes' commits wake this node's IDLE sessions too.
    let other_nodes = {
        let mut shutdown = shutdown.clone();
        store.watch_other_nodes(async move { shutdown.reached(Phase::Draining).await })
    };
    let outbox = settings.config.outbox.clone().map(|config| {
        tokio::spawn(crate::outbox::run(store.clone(), config, settings.config.server.hostname.clone(), dkim.clone(), shutdown.clone()))
    });
    let escalation = settings.escalation.clone().map(|policy| {
        let escalator = crate::cases::escalation::Escalator::new(store.clone(), policy, cases.clone(), config.server.hostname.clone());
        tokio::spawn(run_escalation(escalator, store.clone(), lease_holder.clone(), shutdown.clone()))
    });
    let retention = (!settings.config.retention.is_empty()).then(|| {
        let policies = settings.config.retention.clone();
        tokio::spawn(run_retention(store.clone(), policies, config.server.retention_every, lease_holder.clone(), shutdown.clone()))
    });
    let departures = tokio::spawn(run_departure_prune(store.clone(), config.imap.departures_kept, lease_holder.clone(), shutdown.clone()));
    tracing::info!(data_dir = %settings.data_dir.display(), config = %settings.source, "mailroom ready");

    wait_for_signal().await;
    tracing::info!("shutting down: no new connections; open transactions may finish");
    trigger.set(Phase::Draining);
    // The accept loops end at once; then every service drains the same way.
    for task in accept_tasks.into_iter().chain(staff_tasks) {
        let _ = task.await;
    }
    let pools = [connections, imap_pools.sessions.clone(), http_connections];
    crate::net::drain::drain(&pools, settings.config.limits.shutdown_grace, &trigger).await;
    drop((imap_ctx, http_ctx));
    // The last Intake (and with it the writer's channel) goes with the context.
    drop(ctx);
    let _ = checkpointer.await;
    let _ = reloader.await;
    for task in [other_nodes, other_nodes_presence].into_iter().flatten() {
        let _ = task.await;
    }
    let _ = departures.await;
    for task in [outbox, escalation, retention].into_iter().flatten() {
        let _ = task.await;
    }
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    let _ = std::fs::remove_file(&listeners_file);
    tracing::info!("mailroom stopped");
    Ok(())
}

/// What a configuration reload replaces in the running server.
struct Reloadable {
    policy: crate::intake::PolicySlot,
    cases: crate::cases::Cases,
    access: crate::access::Access,
    dkim: crate::outbox::DkimSlot,
}

/// On each SIGHUP, reads the configuration file again ([`Settings::reload`]) and puts what a
/// running server can change in force: intake's policy (routing, rules, SLA, acknowledgements),
/// the case service's settings (reply templates, review, calendar), the roles (new ones are
/// created) and the DKIM signer (a new key or selector signs the next message sent). Sessions stay open; a message is decided by the policy in force when its DATA
/// ends. A bad file is refused with its file/line/key error and nothing changes.
async fn reload_on_hangup(
    mut hangups: tokio::signal::unix::Signal,
    mut running: Arc<Settings>,
    reloadable: Reloadable,
    mut shutdown: shutdown::Shutdown,
) {
    loop {
        tokio::select! {
            got = hangups.recv() => if got.is_none() { break },
            _ = shutdown.reached(Phase::Draining) => break,
        }
        let current = running.clone();
        let reload = match tokio::task::spawn_blocking(move || current.reload()).await {
            Ok(Ok(reload)) => reload,
            Ok(Err(e)) => {
                metrics::counter!("mailroom_config_reloads_total", "result" => "refused").increment(1);
                tracing::error!("configuration reload refused, the running configuration stays in force: {e}");
                continue;
            }
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed");
                continue;
            }
        };
        let settings = Arc::new(reload.settings);
        reloadable.policy.store(settings.policy.clone());
        reloadable.cases.replace_settings(settings.case_settings());
        reloadable.access.replace_roles(settings.config.roles.clone());
        reloadable.dkim.store(settings.dkim.clone());
        if let Err(e) = reloadable.access.seed_roles().await {
            tracing::warn!(error = %e, "creating the roles named in the reloaded configuration failed (retried at the next reload)");
        }
        metrics::counter!("mailroom_config_reloads_total", "result" => "ok").increment(1);
        tracing::info!(
            config = %settings.source,
            rules = settings.policy.rules.len(),
            templates = settings.config.templates.len(),
            "configuration reloaded"
        );
        if !reload.restart_needed.is_empty() {
            tracing::warn!(
                sections = %reload.restart_needed.join(", "),
                "these sections changed in the file but keep their running values until mailroom restarts"
            );
        }
        running = settings;
    }
}

/// The lease of the expired-sessions purge.
const SESSION_PURGE: &str = "session-purge";
/// The lease of the SLA sweep; held for this many sweep periods (renewed at each sweep).
const ESCALATION: &str = "escalation";
const ESCALATION_LEASE_PERIODS: u32 = 5;

/// The SLA sweep (`cases::escalation`): every `escalation.sweep_every`, the first time at once, on
/// the node holding its lease. Each event is its own transaction with a once-only mark, so a
/// sweep cut short by a crash or a stop is finished by the next one, here or on another node.
async fn run_escalation(
    escalator: crate::cases::escalation::Escalator,
    store: Store,
    holder: String,
    mut shutdown: crate::shutdown::Shutdown,
) {
    let every = escalator.policy().sweep_every;
    loop {
        if holds_lease(&store, ESCALATION, &holder, every * ESCALATION_LEASE_PERIODS).await {
            match escalator.sweep(crate::store::now_millis()).await {
                Ok(done) if done != Default::default() => tracing::info!(
                    warnings = done.warnings,
                    breaches = done.breaches,
                    new_cases = done.arrivals,
                    notified = done.notified,
                    mailed = done.mailed,
                    "SLA sweep"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "the SLA sweep failed (the next one retries)"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.reached(Phase::Draining) => break,
        }
    }
    let release = crate::store::leases::release(&store, ESCALATION, &holder);
    let _ = tokio::time::timeout(Duration::from_secs(2), release).await;
}

/// The lease of the retention job; held for this many periods (renewed at each run).
const RETENTION: &str = "retention";
const RETENTION_LEASE_PERIODS: u32 = 3;

/// The retention policies (`cases::retention`): every `server.retention_every`, the first time a
/// minute after the start (not in the middle of a restart's recovery), on the node holding its
/// lease. Each policy's purge is one transaction: a run cut short is finished by the next one.
async fn run_retention(
    store: Store,
    policies: Vec<crate::cases::retention::RetentionPolicy>,
    every: Duration,
    holder: String,
    mut shutdown: crate::shutdown::Shutdown,
) {
    let mut wait = every.min(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.reached(Phase::Draining) => break,
        }
        wait = every;
        if !holds_lease(&store, RETENTION, &holder, every * RETENTION_LEASE_PERIODS).await {
            continue;
        }
        let now = crate::store::now_millis();
        match crate::cases::retention::run(&store, &policies, now, "system:retention", false, false).await {
            Ok(reports) => {
                for r in reports.iter().filter(|r| !r.messages.is_empty() || !r.held.is_empty()) {
                    tracing::info!(policy = %r.purged_by, purged = r.messages.len(), cases = r.cases, held = r.held.len(), "retention");
                }
            }
            Err(e) => tracing::warn!(error = %e, "the retention run failed (the next one retries)"),
        }
    }
    let release = crate::store::leases::release(&store, RETENTION, &holder);
    let _ = tokio::time::timeout(Duration::from_secs(2), release).await;
}

/// The lease of the IMAP departure-record prune; held for this many periods.
const DEPARTURES: &str = "mailbox_departures";
const DEPARTURES_LEASE_PERIODS: u32 = 3;

/// Prunes the IMAP view's departure records (`Store::prune_mailbox_departures`) every
/// `imap.departures_kept`, on the node holding its lease, so `mailbox_expunged` holds one to two
/// periods of transfers and purges instead of every one since the start.
async fn run_departure_prune(store: Store, every: Duration, holder: String, mut shutdown: crate::shutdown::Shutdown) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.reached(Phase::Draining) => break,
        }
        if !holds_lease(&store, DEPARTURES, &holder, every * DEPARTURES_LEASE_PERIODS).await {
            continue;
        }
        match store.prune_mailbox_departures().await {
            Ok(pruned) => tracing::debug!(pruned, "IMAP departure records pruned"),
            Err(e) => tracing::warn!(error = %e, "pruning the IMAP departure records failed (the next period retries)"),
        }
    }
    let release = crate::store::leases::release(&store, DEPARTURES, &holder);
    let _ = tokio::time::timeout(Duration::from_secs(2), release).await;
}

/// Takes or renews lease `name` for `holder` (see `store::leases`): whether this node runs the
/// job now. A database error counts as not holding it (the job waits for the next period).
async fn holds_lease(store: &Store, name: &str, holder: &str, ttl: Duration) -> bool {
    match crate::store::leases::acquire(store, name, holder, crate::store::now_millis(), ttl.as_millis() as i64).await {
        Ok(held) => {
            if !held {
                tracing::debug!(job = name, "another node holds the lease");
            }
            held
        }
        Err(e) => {
            tracing::warn!(job = name, error = %e, "taking the lease failed");
            false
        }
    }
}

/// Binds one listener and records the address it got (port 0 resolved) under `name` for
/// listeners.json; `protocol` is what the log calls it.
async fn bind(
    name: &'static str,
    protocol: &str,
    addr: &SocketAddr,
    bound: &mut BTreeMap<&'static str, Vec<SocketAddr>>,
) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {name} listener {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(protocol, addr = %local, "listening");
    bound.entry(name).or_default().push(local);
    Ok(listener)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// Messages are the only large allocations: make glibc map each block of 1 MiB or more on its
/// own and unmap it when freed. By default glibc raises that threshold to the largest block freed
/// so far (up to 32 MiB), after which message buffers come from per-thread arenas that keep their
/// peak: measured with bench/flood.py (300 × 10 MB, `limits.message_memory` 256 MiB), peak RSS
/// 426 MiB with the default, 283 MiB with this, so RSS follows the memory budget.
fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tuning parameter of the C allocator; any value is valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}

/// Each connection is a file descriptor: make sure `max_connections` of them can be open.
fn raise_fd_limit(max_connections: usize) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let wanted = (max_connections as libc::rlim_t + 256).min(limit.rlim_max);
        if limit.rlim_cur < wanted {
            limit.rlim_cur = wanted;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
        if (limit.rlim_cur as usize) < max_connections + 64 {
            tracing::warn!(
                open_files = limit.rlim_cur,
                max_connections,
                "the open-file limit is below the connection limits (limits, imap and http max_connections)"
            );
        }
    }
}
