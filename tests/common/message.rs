//! Test messages: unique tokens (Message-IDs, markers) and a small but real message.

/// A unique-ish token for this process and call (no rand crate needed).
pub fn unique_token(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut x = t ^ ((std::process::id() as u64) << 32) ^ n.wrapping_mul(0x9e3779b97f4a7c15);
    // splitmix64
    x = x.wrapping_add(0x9e3779b97f4a7c15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^= z >> 31;
    format!("{prefix}{z:016x}{n:04x}")
}

/// A small but real message.
pub fn simple_message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Customer <customer@client.example.org>\r\n\
         To: support@example.com\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{}@client.example.org>\r\n\
         Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\
         \r\n\
         {body}\r\n",
        unique_token("mid-")
    )
    .into_bytes()
}
