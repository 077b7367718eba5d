//! How a raw message is laid out inside its ciphertext: one codec byte, then the bytes.
//!
//! Compression happens before encryption (ciphertext does not compress). LZ4 is chosen for speed:
//! it costs a few microseconds per 10 KB, while every byte saved is a byte not written twice
//! (WAL, then checkpoint) and not fsynced. A message that does not shrink is stored as is, and one
//! whose samples do not shrink (mostly base64 of compressed files) is not even tried.
//! Compressing before encrypting means the stored length reflects compressibility; that is
//! visible only to someone who can already read the database file, and who would also need to
//! inject chosen text into the same message to learn anything from it.

use serde::Deserialize;

const RAW: u8 = 0;
const LZ4: u8 = 1;
/// A stored message never claims to be larger than this when decompressed.
const MAX_UNPACKED: usize = 1 << 31;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    #[default]
    Lz4,
}

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("stored message has an unknown codec {0}")]
    UnknownCodec(u8),
    #[error("stored message does not decompress: {0}")]
    Corrupt(String),
}

/// Samples of this size, taken at a quarter, half and three quarters of a message, tell whether
/// compressing the whole message is worth its CPU.
const SAMPLE: usize = 1024;

/// Whether LZ4 is likely to shrink `raw` by a useful share. Customer mail is often mostly base64
/// attachments of already-compressed files (PDF, JPEG, ZIP): LZ4 finds nothing in them, and
/// compressing a whole message only to store it raw would cost more CPU than anything else
/// in intake.
fn worth_compressing(raw: &[u8]) -> bool {
    if raw.len() < 4 * SAMPLE {
        return true;
    }
    let mut sample = Vec::with_capacity(3 * SAMPLE);
    for quarter in 1..=3 {
        let start = raw.len() * quarter / 4;
        sample.extend_from_slice(&raw[start..start + SAMPLE]);
    }
    lz4_flex::compress(&sample).len() < sample.len() * 9 / 10
}

pub fn pack(raw: &[u8], compression: Compression) -> Vec<u8> {
    if compression == Compression::Lz4 && worth_compressing(raw) {
        // Compressed straight behind the codec byte and the size (`compress_prepend_size`'s
        // layout), instead of into a buffer of its own that would then be copied.
        let mut out = vec![0u8; 1 + 4 + lz4_flex::block::get_maximum_output_size(raw.len())];
        out[0] = LZ4;
        out[1..5].copy_from_slice(&(raw.len() as u32).to_le_bytes());
        if let Ok(written) = lz4_flex::block::compress_into(raw, &mut out[5..])
            && 4 + written < raw.len()
        {
            out.truncate(5 + written);
            return out;
        }
    }
    let mut out = Vec::with_capacity(1 + raw.len());
    out.push(RAW);
    out.extend_from_slice(raw);
    out
}

pub fn unpack(mut packed: Vec<u8>) -> Result<Vec<u8>, CodecError> {
    match packed.first().copied() {
        Some(RAW) => {
            packed.remove(0);
            Ok(packed)
        }
        Some(LZ4) => {
            let body = &packed[1..];
            let claimed = body.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize).unwrap_or(usize::MAX);
            if claimed > MAX_UNPACKED {
                return Err(CodecError::Corrupt("implausible size".into()));
            }
            lz4_flex::decompress_size_prepended(body).map_err(|e| CodecError::Corrupt(e.to_string()))
        }
        Some(other) => Err(CodecError::UnknownCodec(other)),
        None => Err(CodecError::Corrupt("empty".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_both_ways() {
        let text = b"Subject: hello\r\n\r\n".iter().chain(b"the same line again\r\n".repeat(200).iter()).copied().collect::<Vec<u8>>();
        let mut random = vec![0u8; 5000];
        aws_lc_rs::rand::fill(&mut random).unwrap();
        for (data, compression) in
            [(&text, Compression::Lz4), (&random, Compression::Lz4), (&text, Compression::None), (&Vec::new(), Compression::Lz4)]
        {
            let packed = pack(data, compression);
            assert_eq!(&unpack(packed).unwrap(), data);
        }
        assert!(pack(&text, Compression::Lz4).len() < text.len() / 4, "repetitive text must shrink");
        assert_eq!(pack(&random, Compression::Lz4)[0], RAW, "incompressible data is stored as is");
        assert_eq!(pack(&text, Compression::None).len(), text.len() + 1);
        // Stored bodies keep `compress_prepend_size`'s layout, whatever buffer they are built in.
        assert_eq!(pack(&text, Compression::Lz4)[1..], lz4_flex::compress_prepend_size(&text)[..]);
    }

    #[test]
    fn a_message_of_mostly_random_base64_is_not_compressed_but_text_is() {
        use base64::Engine as _;
        let mut random = vec![0u8; 30_000];
        aws_lc_rs::rand::fill(&mut random).unwrap();
        let mut mail = b"Subject: scan\r\n\r\nPlease find the scan attached.\r\n".to_vec();
        mail.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(&random).as_bytes());
        assert!(!worth_compressing(&mail));
        assert_eq!(pack(&mail, Compression::Lz4)[0], RAW);
        let html = b"<p>Dear support, my order has not arrived yet.</p>\r\n".repeat(400);
        assert!(worth_compressing(&html));
        assert_eq!(pack(&html, Compression::Lz4)[0], LZ4);
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        assert!(matches!(unpack(vec![9, 1, 2]), Err(CodecError::UnknownCodec(9))));
        assert!(unpack(vec![LZ4, 0xff, 0xff, 0xff, 0xff, 1]).is_err());
        assert!(unpack(vec![LZ4, 10, 0, 0, 0, 0x50]).is_err());
        assert!(unpack(Vec::new()).is_err());
    }
}
