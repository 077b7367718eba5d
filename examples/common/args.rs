//! What the in-process benches (`extractbench`, `intakebench`) read from their command line:
//! `--name value` pairs, and the mail that `--mix`, `--seed` and `--messages` choose.

/// The value after `name` on the command line, else `default`.
pub fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.to_string())
}

/// `name`'s value as a number, else `default`.
pub fn number<T: std::str::FromStr>(name: &str, default: &str) -> T {
    arg(name, default).parse().unwrap_or_else(|_| panic!("{name} is a number"))
}

/// The run's mail: `--mix` (default `10k`), `--seed` (1), `--messages` (20,000) and the corpus.
pub struct Mail {
    pub mix: String,
    pub seed: u64,
    pub messages: u64,
    pub corpus: crate::corpus::Corpus,
}

impl Mail {
    /// Message `i` as a session hands it to intake (without the trace header intake adds): its
    /// kind and its bytes, with a distinct Message-ID.
    pub fn message(&self, i: u64, to: &str) -> (usize, Vec<u8>) {
        let (kind, body) = self.corpus.pick(i);
        let seed = self.seed;
        let mut raw =
            format!("Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{i}.{seed}@bench.example>\r\nTo: {to}\r\n{}", body.headers)
                .into_bytes();
        raw.extend_from_slice(&body.bytes);
        (kind, raw)
    }
}

pub fn mail() -> Mail {
    let mix = arg("--mix", "10k");
    let seed = number("--seed", "1");
    let kinds = crate::corpus::mix(&mix, 0).unwrap_or_else(|e| panic!("{e}"));
    Mail { corpus: crate::corpus::Corpus::new(kinds, seed), mix, seed, messages: number("--messages", "20000") }
}
