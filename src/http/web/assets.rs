//! Static assets embedded in the binary (sites may be air-gapped: no CDN), served under a URL
//! that carries a hash of the content, so a browser may cache each one for a year and a new
//! release is fetched at once. Each is also kept gzip-compressed (once, at first use) for
//! browsers that accept it: htmx shrinks from about 51 KB to 16 KB. Only these static files are
//! compressed, never a page: a page holds the CSRF token next to text others can put there, the
//! mix a compression side channel (BREACH) reads.

use std::io::Write;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::{PageError, Problem};
use super::i18n::Lang;

/// One embedded file.
struct Asset {
    /// What templates call it (`chrome.asset("htmx")`).
    name: &'static str,
    ext: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const ASSETS: [Asset; 3] = [
    // htmx 2.0.11 from the npm tarball htmx.org@2.0.11 (dist/htmx.min.js), 0BSD: see
    // assets/htmx-2.0.11.LICENSE. 2.x on purpose: 4.x changes attribute inheritance.
    Asset {
        name: "htmx",
        ext: "js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../../assets/htmx-2.0.11.min.js"),
    },
    Asset { name: "app", ext: "css", content_type: "text/css; charset=utf-8", bytes: include_bytes!("../../../assets/app.css") },
    // The keyboard shortcuts; only pages of users who have them on load it.
    Asset { name: "keys", ext: "js", content_type: "text/javascript; charset=utf-8", bytes: include_bytes!("../../../assets/app.js") },
];

/// Immutable: the URL changes whenever the content does.
pub const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// Each asset's file name in URLs, `{name}-{hash}.{ext}` (the hash: 16 hex digits of SHA-256).
fn file_names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, asset.bytes);
                let hash: String = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("{}-{hash}.{}", asset.name, asset.ext)
            })
            .collect()
    })
}

/// Each asset gzip-compressed, in `ASSETS` order.
fn compressed() -> &'static [Vec<u8>] {
    static GZIPPED: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    GZIPPED.get_or_init(|| {
        ASSETS
            .iter()
            .map(|asset| {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                encoder.write_all(asset.bytes).expect("writing into memory");
                encoder.finish().expect("writing into memory")
            })
            .collect()
    })
}

/// Whether `Accept-Encoding` allows gzip (named without `q=0`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|item| {
        let mut fields = item.split(';').map(str::trim);
        let coding = fields.next().unwrap_or("");
        let refused = fields.any(|f| f.strip_prefix("q=").is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0)));
        coding.eq_ignore_ascii_case("gzip") && !refused
    })
}

/// The URL of the asset templates call `name`.
pub fn url(name: &str) -> String {
    let index = ASSETS.iter().position(|a| a.name == name).unwrap_or_else(|| panic!("no asset named {name}"));
    format!("/assets/{}", file_names()[index])
}

/// `GET /assets/{file}`: the asset whose current name is `file`; anything else (an old hash
/// included) is 404, so a stale URL never gets new content under an immutable cache.
pub async fn serve(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some(index) = file_names().iter().position(|name| *name == file) else {
        return PageError::new(Lang::negotiate(&headers), Problem::NotFound).into_response();
    };
    let asset = &ASSETS[index];
    let headers_of = |encoding| {
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL)),
            (header::VARY, HeaderValue::from_static("accept-encoding")),
            (header::CONTENT_ENCODING, HeaderValue::from_static(encoding)),
        ]
    };
    if accepts_gzip(&headers) {
        (headers_of("gzip"), compressed()[index].as_slice()).into_response()
    } else {
        (headers_of("identity"), asset.bytes).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_name_hash_and_extension() {
        let htmx = url("htmx");
        let re = regex::Regex::new(r"^/assets/htmx-[0-9a-f]{16}\.js$").unwrap();
        assert!(re.is_match(&htmx), "{htmx}");
        assert!(url("app").ends_with(".css"));
        assert_ne!(file_names()[0], file_names()[1]);
    }

    #[test]
    fn gzip_when_accepted_and_the_same_bytes_unpacked() {
        let accept = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
            accepts_gzip(&headers)
        };
        assert!(accept("gzip, deflate, br, zstd"));
        assert!(accept("br;q=1.0, GZIP;q=0.5"));
        assert!(!accept("gzip;q=0, br"));
        assert!(!accept("identity"));
        assert!(!accepts_gzip(&HeaderMap::new()));
        for (asset, packed) in ASSETS.iter().zip(compressed()) {
            let mut unpacked = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(packed.as_slice()), &mut unpacked).unwrap();
            assert_eq!(unpacked, asset.bytes, "{}", asset.name);
        }
        let htmx = compressed()[0].len();
        assert!(htmx < ASSETS[0].bytes.len() / 2, "htmx packs to {htmx} bytes");
    }

    #[test]
    fn the_vendored_htmx_is_2_0_11() {
        let text = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        assert!(text.contains("version:\"2.0.11\""), "htmx.min.js is not 2.0.11");
    }
}
