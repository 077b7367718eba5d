//! Raw header blocks: where they end, their fields as sent, HEADER.FIELDS(.NOT).

/// End of the header block (after the blank line), or the whole input when there is none.
pub(super) fn header_end(data: &[u8]) -> usize {
    let mut pos = 0;
    while pos < data.len() {
        let line_end = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i + 1);
        let line = &data[pos..line_end];
        if line == b"\r\n" || line == b"\n" {
            return line_end;
        }
        pos = line_end;
    }
    data.len()
}

/// One header field of a header block: its bytes (with continuation lines and the line break),
/// its name and its raw value.
struct Field<'a> {
    raw: &'a [u8],
    name: &'a [u8],
    value: &'a [u8],
}

fn fields(block: &[u8]) -> Vec<Field<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < block.len() && block[pos] != b'\n' && !block[pos..].starts_with(b"\r\n") {
        let start = pos;
        loop {
            pos = memchr::memchr(b'\n', &block[pos..]).map_or(block.len(), |i| pos + i + 1);
            if pos >= block.len() || !matches!(block[pos], b' ' | b'\t') {
                break;
            }
        }
        let raw = &block[start..pos];
        let colon = memchr::memchr(b':', raw).unwrap_or(raw.len());
        let name = raw[..colon].trim_ascii_end();
        let value = raw.get(colon + 1..).unwrap_or_default();
        out.push(Field { raw, name, value });
    }
    out
}

/// HEADER.FIELDS (`keep`) or HEADER.FIELDS.NOT: the chosen fields as they are, then the blank
/// line that ends a header.
pub(super) fn filter_fields(block: &[u8], names: &[imap_codec::imap_types::core::AString], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields(block) {
        let listed = names.iter().any(|n| n.as_ref().eq_ignore_ascii_case(f.name));
        if listed == keep {
            out.extend_from_slice(f.raw);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The first field named `name`, unfolded and trimmed (ENVELOPE shows header values raw).
pub(super) fn raw_value(block: &[u8], name: &str) -> Option<Vec<u8>> {
    let f = fields(block).into_iter().find(|f| f.name.eq_ignore_ascii_case(name.as_bytes()))?;
    let unfolded: Vec<u8> = f.value.iter().copied().filter(|b| *b != b'\r' && *b != b'\n').collect();
    Some(unfolded.trim_ascii().to_vec())
}
