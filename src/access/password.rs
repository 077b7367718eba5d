//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane, as OWASP
//! recommends), run on the blocking pool so a login never stalls a protocol worker.
//!
//! Every verification needs a [`Slot`] from the [`Verifier`]. The slots are few (sized from
//! cores and memory, `[access] max_concurrent_logins`), and a login that gets none within
//! `login_queue_timeout` is told to try again later, so memory follows the number of slots, never
//! the number of clients. Argon2's 19 MiB are mapped for one verification (or hash) and unmapped
//! right after it: malloc would keep such blocks in per-thread arenas, and a burst of logins
//! would leave the process that much larger for good.

use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

use super::config::AccessConfig;

/// Shortest password accepted by `user add` / `user passwd`.
pub const MIN_LENGTH: usize = 12;

/// Working memory of one verification with the parameters we hash with (19 MiB).
pub const BYTES_PER_VERIFICATION: u64 = Params::DEFAULT_M_COST as u64 * 1024;

/// Automatic sizing: this many concurrent verifications per core …
const SLOTS_PER_CORE: usize = 4;
/// … using at most this fraction of the memory available at start …
const MEMORY_SHARE: u64 = 4;
/// … and never more than this many in all.
pub const MAX_SLOTS: usize = 256;

pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LENGTH {
        return Err(format!("a password must have at least {MIN_LENGTH} characters"));
    }
    if password.trim() != password || password.chars().any(char::is_control) {
        return Err("a password must not start or end with spaces or contain control characters".into());
    }
    Ok(())
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) with a fresh random salt, what
/// the crate's `hash_password` makes, computed in mapped memory like a verification.
pub fn hash(password: &str) -> Result<String, String> {
    let failed = |e: &dyn std::fmt::Display| format!("hashing the password failed: {e}");
    let mut salt = [0u8; Salt::RECOMMENDED_LENGTH];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| failed(&"no random numbers for the salt"))?;
    let params = Params::default();
    let mut memory = Scratch::new(params.block_count()).ok_or_else(|| failed(&"out of memory"))?;
    let mut out = Zeroizing::new([0u8; Params::DEFAULT_OUTPUT_LEN]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password.as_bytes(), &salt, out.as_mut_slice(), memory.blocks())
        .map_err(|e| failed(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
        salt: Some(Salt::new(&salt).map_err(|e| failed(&e))?),
        hash: Some(Output::new(out.as_slice()).map_err(|e| failed(&e))?),
    };
    Ok(phc.to_string())
}

/// Hands out the right to run one verification; one per server (cloned with `Access`).
pub struct Verifier {
    permits: Arc<Semaphore>,
    slots: usize,
    queue_timeout: Duration,
}

/// The right to run one verification; using it consumes it, dropping it gives it back.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl Verifier {
    pub fn new(config: &AccessConfig) -> Verifier {
        let slots = match config.max_concurrent_logins {
            0 => {
                let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
                automatic_slots(cores, available_memory())
            }
            n => n,
        };
        Verifier { permits: Arc::new(Semaphore::new(slots)), slots, queue_timeout: config.login_queue_timeout }
    }

    /// How many verifications may run at once.
    pub fn slots(&self) -> usize {
        self.slots
    }

    pub fn queue_timeout(&self) -> Duration {
        self.queue_timeout
    }

    /// Waits for a free slot, at most `login_queue_timeout`; None when the server is too busy.
    pub async fn slot(&self) -> Option<Slot> {
        let permit = tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned()).await.ok()?;
        permit.ok().map(|permit| Slot { _permit: permit })
    }
}

impl Slot {
    /// Constant-time verification (inside argon2). The slot moves into the blocking task, so it
    /// stays taken until the work is really over, even when the caller stops waiting for it.
    pub async fn verify(self, password: &str, phc: &str) -> bool {
        let (password, phc) = (Zeroizing::new(password.to_string()), phc.to_string());
        tokio::task::spawn_blocking(move || {
            let _slot = self;
            verify_now(password.as_bytes(), &phc)
        })
        .await
        .unwrap_or(false)
    }

    /// The cost of one verification, for unknown users: a failed login takes as long whether or
    /// not the name exists.
    pub async fn verify_dummy(self, password: &str) {
        let password = Zeroizing::new(password.to_string());
        let _ = tokio::task::spawn_blocking(move || {
            let _slot = self;
            static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
            let phc = DUMMY.get_or_init(|| hash("not a password of anyone here").unwrap_or_default());
            verify_now(password.as_bytes(), phc)
        })
        .await;
    }
}

/// Verifications per server when `max_concurrent_logins` is 0: `SLOTS_PER_CORE` per core, but
/// together at most a quarter of the memory available (when known), at least one.
pub fn automatic_slots(cores: usize, available_bytes: Option<u64>) -> usize {
    let by_cpu = cores.max(1).saturating_mul(SLOTS_PER_CORE);
    let by_memory =
        available_bytes.map_or(usize::MAX, |bytes| usize::try_from(bytes / MEMORY_SHARE / BYTES_PER_VERIFICATION).unwrap_or(usize::MAX));
    by_cpu.min(by_memory).clamp(1, MAX_SLOTS)
}

/// Memory this process may still use: the kernel's MemAvailable, lowered by a cgroup v2 limit.
fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let available = meminfo.as_deref().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|kib| kib * 1024)
    });
    let read_number = |path: &str| std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse::<u64>().ok());
    let cgroup =
        read_number("/sys/fs/cgroup/memory.max").map(|max| max.saturating_sub(read_number("/sys/fs/cgroup/memory.current").unwrap_or(0)));
    match (available, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// Argon2 over the parameters and salt of the PHC string, compared in constant time.
fn verify_now(password: &[u8], phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(hash.algorithm.as_str()) else { return false };
    let Ok(version) = hash.version.map_or(Ok(Version::default()), Version::try_from) else { return false };
    let Ok(params) = Params::try_from(&hash) else { return false };
    let Some(mut memory) = Scratch::new(params.block_count()) else {
        tracing::error!(bytes = params.block_count() * Block::SIZE, "login: no memory for a password check");
        return false;
    };
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    if Argon2::new(algorithm, version, params).hash_password_into_with_memory(password, salt, &mut out, memory.blocks()).is_err() {
        return false;
    }
    // Output's equality is constant-time.
    Output::new(&out).is_ok_and(|computed| &computed == expected)
}

/// Argon2's working memory for one verification, mapped from the kernel and unmapped on drop:
/// the pages go back at once (and come back zeroed, so nothing derived from a password lingers).
struct Scratch {
    ptr: NonNull<Block>,
    len: usize,
}

impl Scratch {
    fn new(len: usize) -> Option<Scratch> {
        let bytes = len.checked_mul(Block::SIZE).filter(|b| *b > 0)?;
        // SAFETY: an anonymous private mapping with no address hint; the result is checked.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), bytes, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Scratch { ptr: NonNull::new(ptr.cast())?, len })
    }

    fn blocks(&mut self) -> &mut [Block] {
        // SAFETY: the mapping is page-aligned (Block needs 64), `len` blocks long, zero-filled
        // (a valid Block), and exclusively ours until drop.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`, which nothing borrows any more.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len * Block::SIZE);
        }
    }
}

/// Plain verification without a slot, for tests of the hash format.
#[cfg(test)]
fn verify_unbounded(password: &str, phc: &str) -> bool {
    use argon2::password_hash::PasswordVerifier;
    Argon2::default().verify_password(password.as_bytes(), phc).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier(slots: usize, queue_timeout: Duration) -> Verifier {
        Verifier::new(&AccessConfig { max_concurrent_logins: slots, login_queue_timeout: queue_timeout, ..Default::default() })
    }

    #[tokio::test]
    async fn right_password_verifies_wrong_one_does_not() {
        let v = verifier(2, Duration::from_secs(5));
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_unbounded("correct horse battery", &phc), "the crate's own verifier accepts our hashes");
        assert!(!verify_unbounded("correct horse batterY", &phc));
        assert!(v.slot().await.unwrap().verify("correct horse battery", &phc).await);
        assert!(!v.slot().await.unwrap().verify("correct horse batterY", &phc).await);
        assert!(!v.slot().await.unwrap().verify("", &phc).await);
        assert!(!v.slot().await.unwrap().verify("correct horse battery", "not a hash").await);
        assert_ne!(hash("correct horse battery").unwrap(), phc, "fresh salt each time");
        // The mapped-memory path agrees with the crate's own verifier, also for other parameters.
        let params = Params::new(1024, 1, 2, None).unwrap();
        let other = {
            use argon2::password_hash::PasswordHasher;
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params).hash_password(b"another secret").unwrap().to_string()
        };
        assert!(verify_unbounded("another secret", &other));
        assert!(verify_now(b"another secret", &other));
        assert!(!verify_now(b"another secreT", &other));
    }

    #[tokio::test]
    async fn slots_bound_concurrent_verifications_and_the_queue_times_out() {
        let v = verifier(2, Duration::from_millis(100));
        assert_eq!(v.slots(), 2);
        let (a, b) = (v.slot().await.unwrap(), v.slot().await.unwrap());
        let started = std::time::Instant::now();
        assert!(v.slot().await.is_none(), "a third verification waits, then gives up");
        assert!(started.elapsed() >= Duration::from_millis(100));
        // A slot in use is released when its verification ends.
        let phc = hash("correct horse battery").unwrap();
        assert!(a.verify("correct horse battery", &phc).await);
        assert!(v.slot().await.is_some());
        drop(b);
        let (_c, _d) = (v.slot().await.unwrap(), v.slot().await.unwrap());
    }

    #[test]
    fn automatic_slots_follow_cores_and_memory() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(BYTES_PER_VERIFICATION, 19 * MIB);
        assert_eq!(automatic_slots(2, None), 8, "4 per core");
        assert_eq!(automatic_slots(2, Some(64 * 1024 * MIB)), 8);
        assert_eq!(automatic_slots(0, None), 4, "at least one core");
        // A quarter of 304 MiB is 76 MiB: four verifications of 19 MiB.
        assert_eq!(automatic_slots(16, Some(304 * MIB)), 4);
        assert_eq!(automatic_slots(16, Some(10 * MIB)), 1, "always at least one");
        assert_eq!(automatic_slots(1000, None), MAX_SLOTS);
        assert!(available_memory().is_some_and(|b| b > 0), "readable on Linux");
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert!(check_strength("short").is_err());
        assert!(check_strength(" leading space ok?").is_err());
        assert!(check_strength("twelve chars").is_ok());
    }
}
