//! The benchmark's mail, generated deterministically from a seed: what an organisation's customer
//! mailbox receives, not smtp-source's lines of `X` (which compress ~50× and flatter any store
//! that compresses).
//!
//! Kinds: plain text (2–5 KB, English, Russian or Chinese in UTF-8), plain text in a legacy
//! charset (GB2312 or KOI8-R, with encoded words in Subject and From), text + HTML alternatives
//! (~10 KB), and mail with a base64 attachment of random, incompressible bytes (10 KB, 100 KB,
//! 1 MB). Bodies come from a pool of variants per kind; every message gets its own headers
//! (Message-ID, Date, Subject), so no two messages are the same.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Body variants per kind: enough that a store cannot profit from repetition across messages
/// (each message is compressed and encrypted on its own anyway).
const VARIANTS: usize = 16;

/// A small, fast, deterministic generator (xorshift64*): the same seed gives the same corpus.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn between(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// text/plain, UTF-8, 2–5 KB.
    Plain,
    /// text/plain in GB2312 or KOI8-R, 2–5 KB, encoded words in the header.
    Legacy,
    /// multipart/alternative: text/plain + text/html, ~10 KB.
    Alternative,
    /// multipart/mixed with a base64 attachment of this many random bytes.
    Attachment(usize),
    /// smtp-source's payload: lines of `X`, this many bytes.
    X(usize),
}

impl Kind {
    pub fn name(self) -> String {
        match self {
            Kind::Plain => "plain 2-5 KB".into(),
            Kind::Legacy => "GB2312/KOI8-R 2-5 KB".into(),
            Kind::Alternative => "text+HTML ~10 KB".into(),
            Kind::Attachment(n) => format!("attachment {} KB", n / 1024),
            Kind::X(n) => format!("X payload {n} B"),
        }
    }
}

/// Which kinds a run sends, with weights (per mille).
pub fn mix(name: &str, size: usize) -> Result<Vec<(Kind, u32)>, String> {
    // The realistic ~10 KB mix: what a support mailbox mostly gets.
    let ten_k = vec![(Kind::Plain, 200), (Kind::Legacy, 150), (Kind::Alternative, 350), (Kind::Attachment(10 * 1024), 300)];
    match name {
        "10k" | "realistic" => Ok(ten_k),
        // The full mix: the same, plus larger attachments and a few 1 MB ones.
        "full" => Ok(vec![
            (Kind::Plain, 190),
            (Kind::Legacy, 140),
            (Kind::Alternative, 330),
            (Kind::Attachment(10 * 1024), 278),
            (Kind::Attachment(100 * 1024), 60),
            (Kind::Attachment(1024 * 1024), 2),
        ]),
        "x" => Ok(vec![(Kind::X(size), 1000)]),
        other => Err(format!("unknown mix {other:?} (10k, full or x)")),
    }
}

pub struct Corpus {
    kinds: Vec<(Kind, u32)>,
    bodies: Vec<Vec<Body>>,
    seed: u64,
}

/// Everything of a message after its per-message headers.
pub struct Body {
    /// Header fields that depend on the body (MIME, Subject, From), CRLF-terminated.
    pub headers: String,
    /// Blank line, body, CRLF-terminated, no line starting with '.' (no dot-stuffing needed).
    pub bytes: Vec<u8>,
}

impl Corpus {
    pub fn new(kinds: Vec<(Kind, u32)>, seed: u64) -> Corpus {
        let mut rng = Rng::new(seed);
        let bodies = kinds.iter().map(|(kind, _)| (0..VARIANTS).map(|_| body(*kind, &mut rng)).collect()).collect();
        Corpus { kinds, bodies, seed }
    }

    /// Message `i` of the run: its kind and its body, the same for every run with this seed.
    pub fn pick(&self, i: u64) -> (usize, &Body) {
        let mut rng = Rng::new(self.seed ^ (i.wrapping_add(1)).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let total: u32 = self.kinds.iter().map(|(_, w)| w).sum();
        let mut roll = (rng.next() % u64::from(total)) as u32;
        let mut k = 0;
        while roll >= self.kinds[k].1 {
            roll -= self.kinds[k].1;
            k += 1;
        }
        (k, &self.bodies[k][rng.below(VARIANTS)])
    }

    pub fn kind(&self, k: usize) -> Kind {
        self.kinds[k].0
    }

    pub fn kinds(&self) -> usize {
        self.kinds.len()
    }
}

const EN: &[&str] = &[
    "the",
    "order",
    "invoice",
    "delivery",
    "account",
    "refund",
    "please",
    "thanks",
    "regarding",
    "your",
    "our",
    "we",
    "customer",
    "support",
    "request",
    "issue",
    "since",
    "yesterday",
    "still",
    "not",
    "received",
    "payment",
    "attached",
    "document",
    "kind",
    "regards",
    "could",
    "would",
    "update",
    "status",
    "problem",
    "contract",
];
const RU: &[&str] = &[
    "здравствуйте",
    "заказ",
    "счёт",
    "доставка",
    "возврат",
    "пожалуйста",
    "спасибо",
    "клиент",
    "поддержка",
    "вопрос",
    "оплата",
    "договор",
    "документ",
    "вложение",
    "вчера",
    "ещё",
    "не",
    "получили",
    "наш",
    "ваш",
    "номер",
    "статус",
    "проблема",
    "прошу",
    "срочно",
    "ответить",
];
const ZH: &[&str] = &[
    "您好", "订单", "发票", "退款", "请", "谢谢", "客户", "支持", "问题", "付款", "合同", "更新", "状态", "附件", "文件", "昨天", "还",
    "没有", "收到", "我们", "你们", "账户", "号码", "交付", "尽快", "回复",
];

#[derive(Clone, Copy)]
enum Lang {
    En,
    Ru,
    Zh,
}

fn sentence(rng: &mut Rng, lang: Lang) -> String {
    let (words, sep, end) = match lang {
        Lang::En => (EN, " ", "."),
        Lang::Ru => (RU, " ", "."),
        Lang::Zh => (ZH, "", "。"),
    };
    let n = rng.between(6, 14);
    let mut s: String = (0..n).map(|_| words[rng.below(words.len())]).collect::<Vec<_>>().join(sep);
    s.push_str(end);
    s
}

/// Lines of text of about `bytes` bytes (UTF-8), each under 76 characters where words allow.
fn text(rng: &mut Rng, lang: Lang, bytes: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut len = 0;
    let mut line = String::new();
    while len < bytes {
        let s = sentence(rng, lang);
        for word in s.split_inclusive(' ') {
            if line.chars().count() + word.chars().count() > 70 {
                len += line.len() + 2;
                lines.push(std::mem::take(&mut line).trim_end().to_string());
            }
            line.push_str(word);
        }
        line.push(' ');
        if rng.below(5) == 0 {
            len += line.len() + 2;
            lines.push(std::mem::take(&mut line).trim_end().to_string());
            lines.push(String::new());
        }
    }
    if !line.trim().is_empty() {
        lines.push(line.trim_end().to_string());
    }
    lines
}

fn crlf(lines: &[String]) -> String {
    let mut s = lines.join("\r\n");
    s.push_str("\r\n");
    s
}

fn base64_lines(bytes: &[u8]) -> String {
    let encoded = STANDARD.encode(bytes);
    let mut out = String::with_capacity(encoded.len() + encoded.len() / 38 + 2);
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
        out.push_str("\r\n");
    }
    out
}

/// Quoted-printable (RFC 2045) with soft line breaks, for UTF-8 text parts.
fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for line in text.split("\r\n") {
        let mut col = 0;
        for &b in line.as_bytes() {
            let piece = if (b == b' ' || b.is_ascii_graphic()) && b != b'=' { (b as char).to_string() } else { format!("={b:02X}") };
            if col + piece.len() > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            col += piece.len();
            out.push_str(&piece);
        }
        out.push_str("\r\n");
    }
    out.truncate(out.len() - 2);
    out
}

fn encoded_word(charset: &str, bytes: &[u8]) -> String {
    format!("=?{charset}?B?{}?=", STANDARD.encode(bytes))
}

fn lang_of(rng: &mut Rng) -> Lang {
    match rng.below(3) {
        0 => Lang::En,
        1 => Lang::Ru,
        _ => Lang::Zh,
    }
}

fn subject(rng: &mut Rng, lang: Lang) -> String {
    let s = sentence(rng, lang);
    s.chars().take(40).collect()
}

fn body(kind: Kind, rng: &mut Rng) -> Body {
    match kind {
        Kind::Plain => {
            let lang = lang_of(rng);
            // Base64 grows the text by 4/3; headers take ~400 bytes.
            let target = (rng.between(2048, 5120) - 400) * 3 / 4;
            let text = crlf(&text(rng, lang, target));
            let subj = subject(rng, lang);
            Body {
                headers: format!(
                    "Subject: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
                     Content-Transfer-Encoding: base64\r\n",
                    encoded_word("utf-8", subj.as_bytes())
                ),
                bytes: format!("\r\n{}", base64_lines(text.as_bytes())).into_bytes(),
            }
        }
        Kind::Legacy => {
            let (lang, charset, encoding) =
                if rng.below(2) == 0 { (Lang::Zh, "gb2312", encoding_rs::GBK) } else { (Lang::Ru, "koi8-r", encoding_rs::KOI8_R) };
            // Counted in UTF-8: KOI8-R halves Cyrillic; GB2312 takes 2 of UTF-8's 3 bytes per
            // character, and base64 adds a third back.
            let target = rng.between(2048, 5120) - 400;
            let target = if charset == "koi8-r" { target * 9 / 5 } else { target * 9 / 10 };
            let text = crlf(&text(rng, lang, target));
            let (encoded, _, unmappable) = encoding.encode(&text);
            assert!(!unmappable, "the word lists fit their legacy charsets");
            let subj = subject(rng, lang);
            let (subj, _, _) = encoding.encode(&subj);
            let name = match lang {
                Lang::Zh => "王小明",
                _ => "Иван Петров",
            };
            let (name, _, _) = encoding.encode(name);
            // GB2312 travels base64 (its bytes are 8-bit); KOI8-R as 8bit, as Russian mail does.
            let (cte, body) =
                if charset == "gb2312" { ("base64", base64_lines(&encoded).into_bytes()) } else { ("8bit", encoded.into_owned()) };
            let mut bytes = b"\r\n".to_vec();
            bytes.extend_from_slice(&body);
            Body {
                headers: format!(
                    "Subject: {}\r\nX-Sender-Name: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset={charset}\r\n\
                     Content-Transfer-Encoding: {cte}\r\n",
                    encoded_word(charset, &subj),
                    encoded_word(charset, &name)
                ),
                bytes,
            }
        }
        Kind::Alternative => {
            let lang = lang_of(rng);
            // Quoted-printable triples every non-ASCII byte: the same ~10 KB in every language.
            let lines = text(rng, lang, if matches!(lang, Lang::En) { 3600 } else { 1400 });
            let plain = quoted_printable(&crlf(&lines));
            let mut html = String::from(
                "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><style>body{font-family:Arial,sans-serif;font-size:14px}\
                 p{margin:0 0 12px 0}.sig{color:#666}</style></head><body>\r\n",
            );
            for line in lines.iter().filter(|l| !l.is_empty()) {
                html.push_str("<p>");
                html.push_str(line);
                html.push_str("</p>\r\n");
            }
            html.push_str("<div class=\"sig\">--<br>Customer Name<br>Street 1<br>City</div></body></html>\r\n");
            let subj = subject(rng, lang);
            let bytes = format!(
                "\r\n--alt\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
                 {plain}\r\n--alt\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
                 {}\r\n--alt--\r\n",
                quoted_printable(&html)
            );
            Body {
                headers: format!(
                    "Subject: {}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n",
                    encoded_word("utf-8", subj.as_bytes())
                ),
                bytes: bytes.into_bytes(),
            }
        }
        Kind::Attachment(size) => {
            let lang = lang_of(rng);
            let text = crlf(&text(rng, lang, 600));
            let subj = subject(rng, lang);
            let attachment = base64_lines(&rng.bytes(size));
            let name = ["scan.pdf", "invoice.pdf", "photo.jpg", "contract.docx"][rng.below(4)];
            let bytes = format!(
                "\r\n--mix\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\
                 \r\n--mix\r\nContent-Type: application/octet-stream; name=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\
                 Content-Disposition: attachment; filename=\"{name}\"\r\n\r\n{attachment}--mix--\r\n",
                base64_lines(text.as_bytes())
            );
            Body {
                headers: format!(
                    "Subject: {}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"mix\"\r\n",
                    encoded_word("utf-8", subj.as_bytes())
                ),
                bytes: bytes.into_bytes(),
            }
        }
        Kind::X(size) => {
            // Like smtp-source -l: lines of X, 78 bytes of payload per line.
            let mut bytes = b"\r\n".to_vec();
            let mut left = size;
            while left > 0 {
                let n = left.min(78);
                bytes.extend(std::iter::repeat_n(b'X', n));
                bytes.extend_from_slice(b"\r\n");
                left -= n;
            }
            Body { headers: "Subject: benchmark\r\n".into(), bytes }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &Body) -> Vec<u8> {
        let mut m = b"From: <a@example.org>\r\nMessage-ID: <1@x>\r\n".to_vec();
        m.extend_from_slice(body.headers.as_bytes());
        m.extend_from_slice(&body.bytes);
        m
    }

    #[test]
    fn every_kind_is_mail_a_client_reads_with_its_charset() {
        let corpus = Corpus::new(mix("full", 0).unwrap(), 3);
        let mut seen = vec![0; corpus.kinds()];
        for i in 0..400 {
            let (k, body) = corpus.pick(i);
            seen[k] += 1;
            let raw = message(body);
            assert!(!raw.windows(3).any(|w| w == b"\n.\r" || w == b"\n.."), "no line may start with a dot");
            let parsed = mail_parser::MessageParser::default().parse(&raw).expect("parses");
            let subject = parsed.subject().expect("a subject").to_string();
            let text = parsed.body_text(0).map(|t| t.to_string()).unwrap_or_default();
            let non_ascii = |s: &str| s.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c) || ('\u{4E00}'..='\u{9FFF}').contains(&c));
            match corpus.kind(k) {
                Kind::Legacy => {
                    assert!(non_ascii(&subject), "encoded word decodes: {subject}");
                    assert!(non_ascii(&text), "GB2312/KOI8-R body decodes");
                    assert!((1500..6000).contains(&raw.len()), "{}", raw.len());
                }
                Kind::Plain => assert!((1500..7000).contains(&raw.len()), "{}", raw.len()),
                Kind::Alternative => {
                    assert!(parsed.body_html(0).is_some() && !text.is_empty());
                    assert!((6000..14000).contains(&raw.len()), "{}", raw.len());
                }
                Kind::Attachment(n) => {
                    let a = parsed.attachments().next().expect("an attachment");
                    assert_eq!(a.contents().len(), n);
                }
                Kind::X(_) => unreachable!(),
            }
        }
        assert!(seen.iter().take(5).all(|n| *n > 0), "each common kind is sent: {seen:?}");
    }

    #[test]
    fn same_seed_same_corpus() {
        let a = Corpus::new(mix("full", 0).unwrap(), 7);
        let b = Corpus::new(mix("full", 0).unwrap(), 7);
        for i in 0..200 {
            assert_eq!(a.pick(i).1.bytes, b.pick(i).1.bytes);
        }
    }
}
