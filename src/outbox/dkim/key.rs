//! DKIM private keys: read (PEM, PKCS#8 or PKCS#1; RSA or Ed25519) and generated (aws-lc-rs),
//! with the public half for the DNS record.
//!
//! The file's bytes are held in `Zeroizing` buffers only while parsing; the parsed key lives
//! inside aws-lc, which clears it when freed, and nothing here implements `Debug` with it.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use zeroize::Zeroizing;

use super::dns::KeyKind;

/// A private key ready for mail-auth's signer, with its public half.
pub enum PrivateKey {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

/// A loaded key: the signing half and the public key as the DNS record carries it.
pub struct LoadedKey {
    pub key: PrivateKey,
    pub kind: KeyKind,
    pub public_key: Vec<u8>,
}

/// RSA key sizes `dkim generate` offers (aws-lc-rs generates these; 1024 is too weak, RFC 8301).
pub const RSA_BITS: &[usize] = &[2048, 3072, 4096];

/// Reads and parses the key file. Refuses a file anyone may read or write (mode `o+r`/`o+w`):
/// whoever has the key can sign mail as the domain. The reason names the file.
pub fn load(path: &Path) -> Result<LoadedKey, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o006 != 0 {
        return Err(format!("{shown} is accessible to every user (mode {mode:04o}): chmod 600 (or 640) it"));
    }
    let pem = Zeroizing::new(std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?);
    parse_pem(&pem).map_err(|reason| format!("{shown}: {reason}"))
}

/// Parses a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, RSA or Ed25519) or PKCS#1
/// (`BEGIN RSA PRIVATE KEY`).
pub fn parse_pem(pem: &[u8]) -> Result<LoadedKey, String> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| "no PEM private key in it (expected BEGIN PRIVATE KEY)".to_string())?;
    let unusable = "not a usable RSA key (2048 to 8192 bits) or Ed25519 key";
    match &der {
        PrivateKeyDer::Pkcs1(pkcs1) => {
            let pair = aws_lc_rs::rsa::KeyPair::from_der(pkcs1.secret_pkcs1_der()).map_err(|_| unusable.to_string())?;
            rsa(der.clone_key(), &pair)
        }
        PrivateKeyDer::Pkcs8(pkcs8) => {
            if let Ok(pair) = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8.secret_pkcs8_der()) {
                return rsa(der.clone_key(), &pair);
            }
            let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der()).map_err(|_| {
                "key type not supported: DKIM signs with RSA (2048 to 8192 bits) or Ed25519 (this is neither, or a damaged key)".to_string()
            })?;
            let public_key = key.public_key();
            Ok(LoadedKey { key: PrivateKey::Ed25519(key), kind: KeyKind::Ed25519, public_key })
        }
        PrivateKeyDer::Sec1(_) => Err("key type not supported: an EC key (DKIM signs with RSA or Ed25519)".into()),
        _ => Err("key type not supported (DKIM signs with RSA or Ed25519)".into()),
    }
}

fn rsa(der: PrivateKeyDer<'static>, pair: &aws_lc_rs::rsa::KeyPair) -> Result<LoadedKey, String> {
    let spki: PublicKeyX509Der = pair.public_key().as_der().map_err(|_| "cannot encode the public key".to_string())?;
    let key = RsaKey::<Sha256>::from_key_der(der).map_err(|_| "not a usable RSA key".to_string())?;
    Ok(LoadedKey { key: PrivateKey::Rsa(key), kind: KeyKind::Rsa, public_key: spki.as_ref().to_vec() })
}

/// A new key as PKCS#8 PEM, with its public half (for the DNS record).
pub struct NewKey {
    pub pem: Zeroizing<String>,
    pub kind: KeyKind,
    pub public_key: Vec<u8>,
}

/// A new RSA key of `bits` (one of [`RSA_BITS`]).
pub fn generate_rsa(bits: usize) -> Result<NewKey, String> {
    use aws_lc_rs::rsa::KeySize;
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        _ => return Err(format!("--bits must be one of {RSA_BITS:?}")),
    };
    let pair = aws_lc_rs::rsa::KeyPair::generate(size).map_err(|_| "RSA key generation failed".to_string())?;
    let pkcs8: Pkcs8V1Der = pair.as_der().map_err(|_| "cannot encode the private key".to_string())?;
    let spki: PublicKeyX509Der = pair.public_key().as_der().map_err(|_| "cannot encode the public key".to_string())?;
    Ok(NewKey { pem: pem("PRIVATE KEY", pkcs8.as_ref()), kind: KeyKind::Rsa, public_key: spki.as_ref().to_vec() })
}

/// A new Ed25519 key (RFC 8463; not every receiver verifies these yet: sign with RSA as well, or alone).
pub fn generate_ed25519() -> Result<NewKey, String> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| "Ed25519 key generation failed".to_string())?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| "Ed25519 key generation failed".to_string())?;
    let public_key = pair.public_key().as_ref().to_vec();
    Ok(NewKey { pem: pem("PRIVATE KEY", pkcs8.as_ref()), kind: KeyKind::Ed25519, public_key })
}

/// PEM armour: base64 in lines of 64 characters (RFC 7468).
fn pem(label: &str, der: &[u8]) -> Zeroizing<String> {
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = Zeroizing::new(format!("-----BEGIN {label}-----\n"));
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes a new key file, mode 0600; never replaces an existing file.
pub fn write_new(path: &Path, pem: &str) -> Result<(), String> {
    let shown = path.display();
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => format!("{shown} exists: refusing to overwrite a key (choose another --key-file)"),
        _ => format!("cannot create {shown}: {e}"),
    })?;
    // The umask may have narrowed the mode further, never widened it; make it exact all the same.
    file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|e| format!("cannot chmod {shown}: {e}"))?;
    file.write_all(pem.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| format!("cannot write {shown}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_back_with_the_same_public_key() {
        let new = generate_rsa(2048).unwrap();
        assert!(new.pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(new.pem.lines().all(|l| l.len() <= 64));
        let loaded = parse_pem(new.pem.as_bytes()).unwrap();
        assert_eq!((loaded.kind, &loaded.public_key), (KeyKind::Rsa, &new.public_key));
        assert!(matches!(loaded.key, PrivateKey::Rsa(_)));

        let new = generate_ed25519().unwrap();
        let loaded = parse_pem(new.pem.as_bytes()).unwrap();
        assert_eq!((loaded.kind, loaded.public_key.len()), (KeyKind::Ed25519, 32));
        assert_eq!(loaded.public_key, new.public_key);
        assert!(generate_rsa(1024).is_err());
    }

    #[test]
    fn bad_keys_are_refused_with_a_reason() {
        assert!(parse_pem(b"hello").err().unwrap().contains("no PEM private key"));
        let garbled = "-----BEGIN PRIVATE KEY-----\nAAAAAAAA\n-----END PRIVATE KEY-----\n";
        assert!(parse_pem(garbled.as_bytes()).err().unwrap().contains("not supported"));
        let ec = aws_lc_rs::signature::EcdsaKeyPair::generate(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let ec_pem = pem("PRIVATE KEY", ec.to_pkcs8v1().unwrap().as_ref());
        assert!(parse_pem(ec_pem.as_bytes()).err().unwrap().contains("not supported"));
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let new = generate_ed25519().unwrap();
        write_new(&path, &new.pem).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(write_new(&path, "x").unwrap_err().contains("refusing to overwrite"));
        assert_eq!(load(&path).unwrap().public_key, new.public_key);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(load(&path).is_ok(), "group-readable is allowed (a mailroom group)");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&path).err().unwrap().contains("every user"));
        assert!(load(&dir.path().join("none.pem")).err().unwrap().contains("cannot read"));
    }
}
