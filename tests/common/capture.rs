//! A capture SMTP server on loopback for the outbox to send to: accepts everything and records
//! each message (envelope and data, dot-unstuffed). `tests/outbox.rs` has its own, with refusal
//! modes and STARTTLS; this one is for tests that only need to see what left.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// One message as the capture server received it.
#[derive(Clone, Debug)]
pub struct Captured {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// Starts a capture server; returns its port and the messages received so far.
pub fn capture_smtp() -> (u16, Arc<Mutex<Vec<Captured>>>) {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let sink = messages.clone();
    let port = serve(Arc::new(move |m| sink.lock().unwrap().push(m)));
    (port, messages)
}

/// Starts a capture server that writes each message's data to `dir/<n>.eml` (renamed into
/// place once complete), for test programs in other languages to read. Returns its port.
pub fn capture_smtp_into(dir: PathBuf) -> u16 {
    let count = AtomicUsize::new(0);
    serve(Arc::new(move |m: Captured| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        let part = dir.join(format!("{n}.eml.part"));
        std::fs::write(&part, &m.data).unwrap();
        std::fs::rename(&part, dir.join(format!("{n}.eml"))).unwrap();
    }))
}

type Sink = Arc<dyn Fn(Captured) + Send + Sync>;

fn serve(sink: Sink) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let _ = session(stream, &*sink);
            });
        }
    });
    port
}

fn session(stream: TcpStream, sink: &(dyn Fn(Captured) + Send + Sync)) -> std::io::Result<()> {
    let mut out = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    out.write_all(b"220 capture.test ESMTP\r\n")?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let angle = |s: &str| s.split_once('<').and_then(|(_, r)| r.split_once('>')).map(|(a, _)| a.to_string()).unwrap_or_default();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_string();
        let upper = text.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            out.write_all(b"250-capture.test\r\n250 8BITMIME\r\n")?;
        } else if upper.starts_with("MAIL FROM:") {
            from = angle(&text);
            to.clear();
            out.write_all(b"250 2.1.0 Ok\r\n")?;
        } else if upper.starts_with("RCPT TO:") {
            to.push(angle(&text));
            out.write_all(b"250 2.1.5 Ok\r\n")?;
        } else if upper == "DATA" {
            out.write_all(b"354 go ahead\r\n")?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if reader.read_until(b'\n', &mut l)? == 0 {
                    return Ok(());
                }
                if l == b".\r\n" {
                    break;
                }
                data.extend_from_slice(if l.starts_with(b"..") { &l[1..] } else { &l });
            }
            sink(Captured { from: from.clone(), to: to.clone(), data: String::from_utf8_lossy(&data).into_owned() });
            out.write_all(b"250 2.0.0 Ok\r\n")?;
        } else if upper == "QUIT" {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            out.write_all(b"250 Ok\r\n")?;
        }
    }
}
