//! Encryption at rest: no customer data in clear in any file of the data dir (database, WAL,
//! SHM, anything else) nor in the server log, after SIGKILL and after SIGTERM; `message show`
//! decrypts; a tampered or swapped ciphertext fails with a clear error.

mod common;

use common::*;
use std::path::Path;

struct Sent {
    number: String,
    content: Vec<u8>,
}

/// Markers that must never appear in clear on disk.
struct Markers {
    subject: String,
    body: String,
    header: String,
    msgid: String,
    sender_local: String,
    sender: String,
}

impl Markers {
    fn new() -> Markers {
        let sender_local = unique_token("mk-sender-");
        Markers {
            subject: unique_token("MARKER-SUBJ-7f3a9c"),
            body: unique_token("MARKER-BODY-7f3a9c"),
            header: unique_token("MARKER-HDR-7f3a9c"),
            msgid: unique_token("marker-mid-7f3a9c"),
            sender: format!("{sender_local}@customer-marker.org"),
            sender_local,
        }
    }
    fn all(&self) -> Vec<(&'static str, String)> {
        vec![
            ("subject", self.subject.clone()),
            ("body", self.body.clone()),
            ("header", self.header.clone()),
            ("message-id", self.msgid.clone()),
            ("sender local part", self.sender_local.clone()),
            ("sender address", self.sender.clone()),
        ]
    }
}

fn send_marked(s: &Server, m: &Markers, round: u32) -> Vec<Sent> {
    let mut out = Vec::new();
    for i in (round * 10)..(round * 10 + 4) {
        let content = format!(
            "From: Customer <{sender}>\r\nTo: support@example.com\r\nSubject: {subj} #{i}\r\n\
             Message-ID: <{mid}-{i}@customer-marker.org>\r\nX-Account: {hdr}\r\n\r\n\
             Dear support,\r\nmy secret is {body} (message {i}).\r\n",
            sender = m.sender,
            subj = m.subject,
            mid = m.msgid,
            hdr = m.header,
            body = m.body,
        )
        .into_bytes();
        let number = match i % 10 {
            // Plain SMTP DATA.
            0 | 1 => s.smtp_session().send_message(&m.sender, &["support@example.com"], &content),
            // BDAT.
            2 => {
                let mut c = s.smtp_session();
                c.expect(&format!("MAIL FROM:<{}>", m.sender), "250 2.1.0 Sender OK");
                c.expect("RCPT TO:<sales@example.com>", "250 2.1.5 Recipient OK");
                let mut w = format!("BDAT {} LAST\r\n", content.len()).into_bytes();
                w.extend_from_slice(&content);
                c.send(&w);
                registered(c.reply().line())
            }
            // LMTP.
            _ => {
                let mut c = s.lmtp_session();
                c.expect(&format!("MAIL FROM:<{}>", m.sender), "250 2.1.0 Sender OK");
                c.expect("RCPT TO:<complaints@example.com>", "250 2.1.5 Recipient OK");
                c.expect("DATA", "354 End data with <CR><LF>.<CR><LF>");
                c.send(&data_wire(&content));
                let line = c.reply().line().to_string();
                line.strip_prefix("250 2.0.0 <complaints@example.com> Registered ")
                    .unwrap_or_else(|| panic!("LMTP reply {line:?}"))
                    .to_string()
            }
        };
        out.push(Sent { number, content });
    }
    out
}

/// Every file under `dir` (and the log) containing a marker, as raw bytes, case-insensitively.
fn hits(dir: &Path, log: &Path, m: &Markers) -> (Vec<String>, Vec<std::path::PathBuf>) {
    let mut files = all_files(dir);
    if !files.iter().any(|f| f == log) {
        files.push(log.to_path_buf());
    }
    let mut hits = Vec::new();
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else { continue };
        let lower: Vec<u8> = bytes.to_ascii_lowercase();
        for (what, marker) in m.all() {
            if find(&lower, marker.to_ascii_lowercase().as_bytes()).is_some() {
                hits.push(format!("{what} {marker:?} in {}", f.display()));
            }
        }
    }
    (hits, files)
}

/// Scans the server's test dir (data dir, config, log, temp files) and, under PostgreSQL, a dump
/// of its database (where the SQLite file would be, in the dir).
fn scan(s: &Server, m: &Markers, when: &str) {
    let dir = s.root();
    let (mut hits, files) = hits(dir, &s.log, m);
    if s.is_postgres() {
        for (name, bytes) in s.store_contents() {
            let lower = bytes.to_ascii_lowercase();
            for (what, marker) in m.all() {
                if find(&lower, marker.to_ascii_lowercase().as_bytes()).is_some() {
                    hits.push(format!("{what} {marker:?} in the {name}"));
                }
            }
        }
    } else {
        assert!(files.iter().any(|p| p.file_name().unwrap() == "mailroom.db"), "no mailroom.db in {}: {files:?}", dir.display());
    }
    assert!(hits.is_empty(), "customer data in clear on disk ({when}):\n{}", hits.join("\n"));
    eprintln!("scanned {} files ({when}): clean: {:?}", files.len(), files);
}

#[test]
fn scanner_finds_a_planted_marker() {
    // Positive control for the scan above.
    let m = Markers::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sub")).unwrap();
    let mut blob = vec![0u8; 5000];
    blob.extend_from_slice(m.sender.to_ascii_uppercase().as_bytes());
    blob.extend_from_slice(&[0xff; 100]);
    std::fs::write(dir.path().join("sub/mailroom.db-wal"), &blob).unwrap();
    let (hits, _) = hits(dir.path(), &dir.path().join("no-log"), &m);
    assert_eq!(hits.len(), 2, "{hits:?}"); // sender address + its local part
}

fn check_readable(s: &Server, sent: &[Sent], m: &Markers) {
    for x in sent {
        let stored = s.stored_content(&x.number);
        assert_eq!(stored, x.content, "{}", x.number);
        assert!(find(&stored, m.body.as_bytes()).is_some());
    }
}

#[test]
fn no_clear_customer_data_on_disk() {
    let mut s = Server::start(Opts::default());
    let m = Markers::new();

    // Master key: outside the database, mode 0600.
    let key = s.data_dir.join("master.key");
    assert!(key.exists(), "master key file {} not generated", key.display());
    assert_eq!(file_mode(&key), 0o600, "master key must be mode 0600");

    let sent1 = send_marked(&s, &m, 0);
    // Read once while running (audited read), then scan the live files.
    check_readable(&s, &sent1, &m);
    scan(&s, &m, "while running");

    // Crash: whatever SQLite left in the WAL/SHM must be ciphertext too.
    s.kill9();
    scan(&s, &m, "after SIGKILL");
    s.restart();
    check_readable(&s, &sent1, &m);

    let sent2 = send_marked(&s, &m, 1);
    s.terminate();
    let st = s.wait_exit(std::time::Duration::from_secs(30));
    assert_eq!(st.code(), Some(0));
    scan(&s, &m, "after SIGTERM");

    // Readable after shutdown, without a server.
    check_readable(&s, &sent1, &m);
    check_readable(&s, &sent2, &m);
    assert_eq!(s.list_messages().len(), 8);
    // Reads are audited writes: still nothing in clear.
    scan(&s, &m, "after CLI reads");
}

/// A ciphertext column. Rows are addressed by `key` (SQLite's rowid, PostgreSQL's primary key); a
/// side table (e.g. `message_blobs`) is keyed by the message id, so its keys line up with those of
/// `messages`.
#[derive(Clone, Debug)]
struct Col {
    table: String,
    column: String,
    key: String,
}

/// Tables holding a column of that name.
fn find_column(s: &Server, column: &str) -> Vec<Col> {
    s.sql_tables_with_column(column)
        .into_iter()
        .map(|table| Col { key: s.sql_row_key(&table), table, column: column.to_string() })
        .collect()
}

/// (row key, storage class, hex) of every cell of a column.
type Cells = Vec<(i64, String, String)>;

fn cells(s: &Server, c: &Col) -> Cells {
    let query = format!(
        "SELECT {key}, {ty}, {hex} FROM {t} ORDER BY {key};",
        key = c.key,
        ty = s.sql_typeof(&c.column),
        hex = s.sql_hex(&c.column),
        t = c.table
    );
    s.sql_rows(&query).into_iter().map(|row| (row[0].parse().unwrap(), row[1].clone(), row[2].to_ascii_uppercase())).collect()
}

fn set_cell(s: &Server, c: &Col, key: i64, ty: &str, hex_value: &str) {
    let bytes: Vec<u8> = (0..hex_value.len() / 2).map(|i| u8::from_str_radix(&hex_value[2 * i..2 * i + 2], 16).unwrap()).collect();
    let lit = match ty {
        "blob" => s.sql_blob_literal(&bytes),
        "text" => sql_quote(&String::from_utf8(bytes).expect("a text cell is UTF-8")),
        other => panic!("unexpected type of {}.{}: {other}", c.table, c.column),
    };
    assert_eq!(s.sql_changes(&format!("UPDATE {} SET {} = {lit} WHERE {} = {key}", c.table, c.column, c.key)), 1);
}

fn flip_hex_byte(hex_value: &str, ty: &str) -> String {
    let mut bytes: Vec<u8> = (0..hex_value.len() / 2).map(|i| u8::from_str_radix(&hex_value[2 * i..2 * i + 2], 16).unwrap()).collect();
    let i = bytes.len() / 2;
    if ty == "text" {
        // Keep it valid base64/hex text: swap between two alphabet characters.
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    } else {
        bytes[i] ^= 0x01;
    }
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn show_fails_with_decryption_error(s: &Server, number: &str, what: &str) {
    let out = s.cli(&["message", "show", number]);
    assert!(!out.status.success(), "{what}: `message show {number}` must fail, printed {} bytes", out.stdout.len());
    assert!(out.stdout.is_empty(), "{what}: no plaintext may be printed on failure");
    let err = out.stderr.to_ascii_lowercase();
    assert!(
        err.contains("decrypt") || err.contains("authenticat") || err.contains("integrity"),
        "{what}: error must mention decryption/authentication: {:?}",
        out.stderr
    );
}

/// `message show` for every message: the numbers that fail (others must be byte-exact).
fn failing(s: &Server, sent: &[(String, Vec<u8>)], what: &str) -> Vec<String> {
    let mut failed = Vec::new();
    for (n, content) in sent {
        let out = s.cli(&["message", "show", n]);
        if out.status.success() {
            let (_, got) = split_received(&out.stdout);
            assert_eq!(got, &content[..], "{what}: {n} decrypted to something else");
        } else {
            failed.push(n.clone());
        }
    }
    failed
}

fn all_readable(s: &Server, sent: &[(String, Vec<u8>)], what: &str) {
    for (n, content) in sent {
        assert_eq!(&s.stored_content(n), content, "{what}: {n}");
    }
}

#[test]
fn tampered_or_swapped_ciphertext_fails_to_decrypt() {
    let mut s = Server::start(Opts::default());
    let mut c = s.smtp_session();
    let mut sent = Vec::new();
    for i in 0..3 {
        let content = simple_message(&format!("tamper {i}"), &format!("body {i} {}", "x".repeat(200)));
        let n = c.send_message("a@client.example.org", &["support@example.com"], &content);
        sent.push((n, content));
    }
    drop(c);
    assert_eq!(s.terminate_and_wait().code(), Some(0));
    let raw = find_column(&s, "raw_ct");
    assert_eq!(raw.len(), 1, "exactly one table must hold raw_ct: {raw:?}");
    let raw = raw[0].clone();
    let orig = cells(&s, &raw);
    assert_eq!(orig.len(), 3, "{orig:?}");
    all_readable(&s, &sent, "before tampering");

    // 1. Flip one byte of the middle message's raw ciphertext: exactly that message fails.
    let (rowid, ty, hex_value) = orig[1].clone();
    set_cell(&s, &raw, rowid, &ty, &flip_hex_byte(&hex_value, &ty));
    let failed = failing(&s, &sent, "flipped raw_ct byte");
    assert_eq!(failed, vec![sent[1].0.clone()], "exactly the tampered message must fail");
    show_fails_with_decryption_error(&s, &failed[0], "flipped raw_ct byte");
    set_cell(&s, &raw, rowid, &ty, &hex_value);
    all_readable(&s, &sent, "raw_ct restored");

    // 2. The same for every other ciphertext / wrapped key column of a message.
    let mut others = Vec::new();
    for name in ["trace_ct", "wrapped_key"] {
        // Other tables (outbox, customers) hold columns of the same names; these are the message's.
        others.extend(find_column(&s, name).into_iter().filter(|c| c.table == "messages"));
    }
    for col in &others {
        let cur = cells(&s, col);
        let (rowid, ty, hex_value) = cur[2].clone();
        set_cell(&s, col, rowid, &ty, &flip_hex_byte(&hex_value, &ty));
        let what = format!("flipped byte in {}.{}", col.table, col.column);
        let failed = failing(&s, &sent, &what);
        assert_eq!(failed, vec![sent[2].0.clone()], "{what}");
        show_fails_with_decryption_error(&s, &failed[0], &what);
        set_cell(&s, col, rowid, &ty, &hex_value);
    }
    all_readable(&s, &sent, "all restored");

    // 3. Swap the raw ciphertexts of two messages: both fail.
    let (r0, t0, h0) = orig[0].clone();
    let (r2, t2, h2) = orig[2].clone();
    set_cell(&s, &raw, r0, &t0, &h2);
    set_cell(&s, &raw, r2, &t2, &h0);
    let failed = failing(&s, &sent, "swapped raw_ct");
    assert_eq!(failed, vec![sent[0].0.clone(), sent[2].0.clone()], "both swapped messages must fail");
    for n in &failed {
        show_fails_with_decryption_error(&s, n, "swapped raw_ct");
    }
    set_cell(&s, &raw, r0, &t0, &h0);
    set_cell(&s, &raw, r2, &t2, &h2);
    all_readable(&s, &sent, "swap undone");

    // 4. Swap EVERYTHING encrypted (wrapped data key + all *_ct) between two rows, so each
    //    ciphertext still has its own key: only the row identity bound as associated data can
    //    catch this.
    let mut cols = vec![raw.clone()];
    cols.extend(others.iter().cloned());
    {
        let name = "fields_ct";
        cols.extend(find_column(&s, name));
    }
    let saved: Vec<(Col, Cells)> = cols.iter().map(|c| (c.clone(), cells(&s, c))).collect();
    for (col, rows) in &saved {
        let (r0, t0, h0) = rows[0].clone();
        let (r2, t2, h2) = rows[2].clone();
        set_cell(&s, col, r0, &t0, &h2);
        set_cell(&s, col, r2, &t2, &h0);
    }
    let failed = failing(&s, &sent, "swapped all ciphertext columns");
    assert_eq!(failed, vec![sent[0].0.clone(), sent[2].0.clone()], "row identity must be bound into the ciphertexts (swapped {cols:?})");
    for n in &failed {
        show_fails_with_decryption_error(&s, n, "swapped all ciphertext columns");
    }
    for (col, rows) in &saved {
        for (rowid, ty, hex_value) in rows {
            set_cell(&s, col, *rowid, ty, hex_value);
        }
    }
    all_readable(&s, &sent, "full swap undone");

    // 5. A server started on a tampered store still runs; reads still fail for that row.
    let (rowid, ty, hex_value) = orig[0].clone();
    set_cell(&s, &raw, rowid, &ty, &flip_hex_byte(&hex_value, &ty));
    s.restart();
    let mut c = s.smtp_session();
    let n4 = c.send_message("a@client.example.org", &["support@example.com"], &simple_message("after tamper", "y"));
    assert_eq!(parse_number(&n4).seq, 4);
    show_fails_with_decryption_error(&s, &sent[0].0, "flipped byte, server running");
}

#[test]
fn wrong_master_key_fails_to_decrypt() {
    let mut s = Server::start(Opts::default());
    let mut c = s.smtp_session();
    let content = simple_message("key test", "z");
    let n = c.send_message("a@client.example.org", &["support@example.com"], &content);
    drop(c);
    assert_eq!(s.terminate_and_wait().code(), Some(0));
    let key = s.data_dir.join("master.key");
    let orig = std::fs::read(&key).unwrap();
    // Same length and format, different key: change one character / byte in the middle.
    let mut other = orig.clone();
    let i = other.len() / 2;
    other[i] = if other[i].is_ascii_hexdigit() || other[i].is_ascii_alphanumeric() {
        if other[i] == b'A' { b'B' } else { b'A' }
    } else {
        other[i] ^ 1
    };
    std::fs::write(&key, &other).unwrap();
    let out = s.cli(&["message", "show", &n]);
    assert!(!out.status.success(), "a wrong master key must not decrypt");
    assert!(out.stdout.is_empty(), "no plaintext on failure");
    std::fs::write(&key, &orig).unwrap();
    assert_eq!(s.stored_content(&n), content);
}
