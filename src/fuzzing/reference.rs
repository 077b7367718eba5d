//! The end-of-data rule of RFC 5321 §4.1.1.4 and §4.5.2, written the obvious way (split at CRLF,
//! look for a line that is exactly "."), as the oracle the streaming receiver is checked against.

/// Where the data ends: the offset just after the terminating `.CRLF`, if the data has one.
pub fn data_end(data: &[u8]) -> Option<usize> {
    let mut line = 0;
    loop {
        if data[line..].starts_with(b".\r\n") {
            return Some(line + 3);
        }
        line += data[line..].windows(2).position(|w| w == b"\r\n")? + 2;
    }
}

/// The message carried by `data` (which stops before the terminating line): each CRLF line
/// loses one leading dot.
pub fn unstuff(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for line in lines(data) {
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
    }
    out
}

/// The length of the longest unstuffed line, CRLF included.
pub fn longest_line(data: &[u8]) -> usize {
    lines(data).map(|line| line.len() - usize::from(line.starts_with(b"."))).max().unwrap_or(0)
}

/// CRLF-terminated lines (the last one may lack its CRLF).
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.windows(2).position(|w| w == b"\r\n").map_or(rest.len(), |p| p + 2);
        let (line, next) = rest.split_at(end);
        rest = next;
        Some(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_itself() {
        assert_eq!(data_end(b".\r\n"), Some(3));
        assert_eq!(data_end(b"a\r\n.\r\nb"), Some(6));
        assert_eq!(data_end(b"a\n.\r\n"), None);
        assert_eq!(data_end(b"a\r\n.\n"), None);
        assert_eq!(data_end(b"a\r\n..\r\n"), None);
        assert_eq!(unstuff(b"..a\r\nb\r\n.\r"), b".a\r\nb\r\n\r");
        assert_eq!(longest_line(b"..a\r\nbcde\r\n"), 6);
    }
}
