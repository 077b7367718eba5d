//! Byte-level helpers: DATA dot-stuffing and its reference inverse, printable bytes, search.

/// Dot-stuff `content` for DATA and append the terminator. `content` must end in CRLF (or be
/// empty). Only dots at the very start or after CRLF are stuffed (the server's policy).
pub fn data_wire(content: &[u8]) -> Vec<u8> {
    assert!(content.is_empty() || content.ends_with(b"\r\n"));
    let mut out = Vec::with_capacity(content.len() + 8);
    let mut at_line_start = true;
    for (i, &b) in content.iter().enumerate() {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n' && i > 0 && content[i - 1] == b'\r';
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// Reference dot-unstuffing: drop a '.' at the very start or right after CRLF (bare CR/LF are
/// content). Input excludes the final `.CRLF` terminator.
pub fn unstuff(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    let mut at_line_start = true;
    for (i, &b) in wire.iter().enumerate() {
        let drop = at_line_start && b == b'.';
        at_line_start = b == b'\n' && i > 0 && wire[i - 1] == b'\r';
        if !drop {
            out.push(b);
        }
    }
    out
}

pub fn show_bytes(b: &[u8]) -> String {
    let mut s = String::new();
    for &c in b {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}
