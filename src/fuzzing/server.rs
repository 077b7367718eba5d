//! A complete mailroom in a temporary data dir for the socket-level fuzz targets: the real
//! settings, store, group-commit writer, intake and SMTP/IMAP contexts, with the sessions served
//! over loopback sockets exactly as `mailroom serve` serves them.
//!
//! One instance lives per process (a fuzzer runs millions of inputs; starting a store for each
//! would measure SQLite, not the sessions). It is rebuilt every [`MAX_USES`] inputs so the
//! database does not grow without bound, and removed when the process exits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::access::Access;
use crate::config::Settings;
use crate::imap::ImapContext;
use crate::intake::{Directory, Envelope, Intake, Protocol};
use crate::shutdown::{self, ShutdownTrigger};
use crate::smtp::SmtpContext;
use crate::store::Store;

/// Inputs served before the store is thrown away and made afresh.
const MAX_USES: u64 = 20_000;
/// The staff user the IMAP target logs in as (supervisor: reads every queue).
pub const USER: &str = "fuzzer";
pub const PASSWORD: &str = "fuzzing-password-1";
pub const HOST: &str = "mx.example.com";

/// Small limits, so that inputs of a few hundred bytes reach every limit; short timeouts, so a
/// stuck session is noticed quickly. Throttling is off: the fuzzer guesses passwords on purpose.
const CONFIG: &str = r#"
[server]
hostname = "mx.example.com"
[smtp]
listen = []
[lmtp]
listen = []
[limits]
max_message_size = 4096
max_recipients = 4
max_command_line = 512
max_data_line = 1000
max_errors = 8
command_timeout = "5s"
data_timeout = "5s"
[imap]
max_literal = 2048
prelogin_timeout = "5s"
idle_timeout = "5s"
[access]
failure_delay = "0s"
max_failure_delay = "0s"
max_failures = 1000000000
lockout = "1s"
[authentication]
verify = "off"
[mail]
domains = ["example.com"]
recipient_delimiter = "+"
[[queues]]
name = "support"
addresses = ["support@example.com"]
default = true
[[queues]]
name = "sales"
addresses = ["sales@example.com"]
[[categories]]
code = "TSJJ"
name = "complaint"
[[rules]]
name = "complaints"
subject_regex = "(?i)complain|angry"
category = "TSJJ"
priority = "urgent"
tags = ["complaint"]
[[rules]]
name = "attachments to sales"
has_attachment = true
queue = "sales"
[[roles]]
name = "supervisor"
grants = { "*" = ["read", "act", "assign", "supervise"] }
"#;

/// Messages in the store before any input runs, so the IMAP target has something to SELECT,
/// FETCH and SEARCH: plain text, multipart with an attachment, an enclosed message, encoded
/// words and an unparseable blob.
const SEED_MESSAGES: &[&[u8]] = &[
    b"From: Ana <ana@customer.org>\r\nTo: support@example.com\r\nSubject: Order 42\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nMessage-ID: <a1@customer.org>\r\n\r\nWhere is my order?\r\n",
    b"From: =?utf-8?q?Caf=C3=A9?= <cafe@customer.org>\r\nTo: support@example.com\r\nCc: boss@customer.org\r\nSubject: =?utf-8?b?Q29tcGxhaW50?=\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nI complain.\r\n--XX\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Disposition: attachment; filename=x.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n",
    b"From: relay@customer.org\r\nTo: support@example.com\r\nSubject: Fwd\r\nIn-Reply-To: <a1@customer.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/html\r\n\r\n<p>see below</p>\r\n--b1\r\nContent-Type: message/rfc822\r\n\r\nFrom: inner@x.org\r\nSubject: inner\r\nContent-Type: multipart/alternative; boundary=b2\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\ninner text\r\n--b2--\r\n--b1--\r\n",
    b"\x00\xff not a message \r\n\r\n",
];

static SEQUENCE: AtomicU64 = AtomicU64::new(0);
static CURRENT_DIR: Mutex<Option<PathBuf>> = Mutex::new(None);

pub struct Server {
    rt: Option<tokio::runtime::Runtime>,
    dir: PathBuf,
    pub store: Store,
    /// The configuration the server was started with (the fuzz config in a fresh dir).
    pub settings: Arc<Settings>,
    smtp: Option<Arc<SmtpContext>>,
    smtp_listener: TcpListener,
    pub imap_addr: SocketAddr,
    pub tls_client: TlsConnector,
    writer_thread: Option<std::thread::JoinHandle<()>>,
    trigger: ShutdownTrigger,
    uses: u64,
}

/// The process's server, made by the first [`with`] that needs it.
static SERVER: Mutex<Option<Server>> = Mutex::new(None);

/// Runs `f` with the process's server, making (or remaking) it first when needed.
pub fn with<R>(f: impl FnOnce(&Server) -> R) -> R {
    // A panic while the server was borrowed is a finding, already reported; the server is fine.
    let mut slot = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if slot.as_ref().is_some_and(|s| s.uses >= MAX_USES) {
        *slot = None;
    }
    let server = slot.get_or_insert_with(Server::start);
    server.uses += 1;
    f(server)
}

/// Throws the process's server away: the next input starts on a fresh store holding only the
/// seed messages, as a fuzzer running one target does. The corpus replay calls it before each
/// target, so one target's registrations (thousands from the SMTP and DATA corpora) do not make
/// the next one's IMAP mailbox, and its time, depend on the order the targets ran in.
pub fn restart() {
    let old = SERVER.lock().unwrap_or_else(|e| e.into_inner()).take();
    drop(old);
}

impl Server {
    fn start() -> Server {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let dir = fresh_dir();
        let settings = Arc::new(Settings::from_str("fuzz.toml", CONFIG, &dir).expect("the fuzz configuration is valid"));
        let (trigger, shutdown) = shutdown::channel();
        let (store, smtp, writer_thread, smtp_listener, imap_addr) = rt.block_on(async {
            let store = Store::open(settings.store_options()).await.expect("opening the store");
            let tls = TlsAcceptor::from(
                crate::tls::server_config(&settings.config.tls, &settings.data_dir, &settings.config.server.hostname).expect("TLS setup"),
            );
            let (writer, writer_thread) = crate::store::writer::spawn(
                store.clone(),
                Arc::new(settings.policy.reg_format.clone()),
                settings.config.registration.duplicate_window,
            )
            .expect("starting the writer");
            let intake = Intake::new(store.keys.clone(), writer, settings.policy.clone(), None, Directory::default());
            let smtp = Arc::new(SmtpContext {
                hostname: settings.config.server.hostname.clone(),
                limits: settings.config.limits.clone(),
                lmtp: settings.config.lmtp.clone(),
                memory: crate::smtp::memory::MessageMemory::new(settings.config.limits.message_memory),
                intake,
                tls: tls.clone(),
                shutdown: shutdown.clone(),
            });
            let access = settings.access(store.clone());
            access.seed_roles().await.expect("seeding roles");
            add_user(&access).await;
            for (i, message) in SEED_MESSAGES.iter().enumerate() {
                let envelope = Envelope {
                    mail_from: format!("seed{i}@customer.org"),
                    recipients: vec![("support@example.com".into(), "support".into())],
                    helo: "seed.customer.org".into(),
                    client_ip: [127, 0, 0, 1].into(),
                    protocol: Protocol::Smtp,
                    tls: None,
                };
                smtp.intake.register(&envelope, message.to_vec()).await.expect("registering a seed message");
            }
            let smtp_listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the SMTP listener");
            let imap_listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the IMAP listener");
            let imap_addr = imap_listener.local_addr().expect("IMAP address");
            let cases = crate::cases::Cases::new(access.clone(), settings.case_settings());
            let imap = Arc::new(ImapContext { settings: settings.imap_settings(), access, cases, tls, shutdown });
            let pools = Arc::new(crate::imap::ImapPools {
                sessions: crate::net::Pool::new("imap", 64, 0),
                unauthenticated: crate::net::Pool::evicting("imap-prelogin", 64, 0),
            });
            tokio::spawn(crate::imap::listen(imap_listener, true, imap, pools));
            (store, smtp, writer_thread, smtp_listener, imap_addr)
        });
        let tls_client = TlsConnector::from(client_config(&settings));
        Server {
            rt: Some(rt),
            dir,
            store,
            settings,
            smtp: Some(smtp),
            smtp_listener,
            imap_addr,
            tls_client,
            writer_thread: Some(writer_thread),
            trigger,
            uses: 0,
        }
    }

    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.as_ref().expect("runtime").block_on(f)
    }

    pub fn smtp(&self) -> &Arc<SmtpContext> {
        self.smtp.as_ref().expect("SMTP context")
    }

    /// A connected pair: our client end, and the server's end with the client's address.
    pub async fn smtp_pair(&self) -> (TcpStream, TcpStream, SocketAddr) {
        let addr = self.smtp_listener.local_addr().expect("SMTP address");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), self.smtp_listener.accept());
        let client = client.expect("connecting to the SMTP listener");
        let (server, peer) = accepted.expect("accepting");
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        (client, server, peer)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.trigger.set(shutdown::Phase::Forced);
        if let Some(rt) = self.rt.take() {
            rt.block_on(self.store.close());
            // Sessions and the IMAP listener hold the contexts; they go with the runtime.
            rt.shutdown_timeout(Duration::from_secs(5));
        }
        // The last writer handle goes with the SMTP context; the writer then drains and stops.
        self.smtp = None;
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        *CURRENT_DIR.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The staff user, with a deliberately cheap password hash: every IMAP input logs in, and the
/// real cost (19 MiB, 2 passes) would make the fuzzer measure argon2. Verification reads the
/// parameters from the stored hash, so the login path is otherwise the real one.
async fn add_user(access: &Access) {
    use argon2::password_hash::PasswordHasher;
    access.add_user(USER, PASSWORD, &["supervisor".to_string()], "fuzz").await.expect("adding the fuzz user");
    let params = argon2::Params::new(argon2::Params::MIN_M_COST, 1, 1, None).expect("argon2 parameters");
    let cheap = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password(PASSWORD.as_bytes())
        .expect("hashing")
        .to_string();
    crate::store::users::replace_hash(&access.store, USER, &cheap).await.expect("setting the cheap hash");
}

/// A TLS client that trusts exactly the certificate the server generated in its data dir.
fn client_config(settings: &Settings) -> Arc<rustls::ClientConfig> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let (cert_path, _, _) = crate::tls::cert_paths(&settings.config.tls, &settings.data_dir);
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(&cert_path).expect("reading the generated certificate") {
        roots.add(cert.expect("a PEM certificate")).expect("a usable root");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A new, empty data dir in memory when possible (/dev/shm), so commits do not wait for a disk.
/// Directories left by processes that are gone (a crash aborts without cleaning up) are removed.
fn fresh_dir() -> PathBuf {
    static CLEANUP: std::sync::Once = std::sync::Once::new();
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    CLEANUP.call_once(|| {
        remove_stale(&base);
        // SAFETY: registers a plain function without arguments; it only touches our own dir.
        unsafe { libc::atexit(remove_current_dir) };
    });
    let pid = std::process::id();
    let dir = base.join(format!("mailroom-fuzz-{pid}-{}", SEQUENCE.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the fuzz data dir");
    *CURRENT_DIR.lock().unwrap_or_else(|e| e.into_inner()) = Some(dir.clone());
    dir
}

fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("mailroom-fuzz-").and_then(|rest| rest.split('-').next()) else { continue };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

extern "C" fn remove_current_dir() {
    if let Ok(current) = CURRENT_DIR.try_lock()
        && let Some(dir) = current.as_ref()
    {
        let _ = std::fs::remove_dir_all(dir);
    }
}
