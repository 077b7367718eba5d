//! Password hashing with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane, as OWASP
//! recommends), run on the blocking pool so a login never stalls a protocol worker.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use zeroize::Zeroizing;

/// Shortest password accepted by `user add` / `user passwd`.
pub const MIN_LENGTH: usize = 12;

pub fn check_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_LENGTH {
        return Err(format!("a password must have at least {MIN_LENGTH} characters"));
    }
    if password.trim() != password || password.chars().any(char::is_control) {
        return Err("a password must not start or end with spaces or contain control characters".into());
    }
    Ok(())
}

/// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) with a fresh random salt.
pub fn hash(password: &str) -> Result<String, String> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| format!("hashing the password failed: {e}"))
}

/// Constant-time verification (inside argon2), off the async workers.
pub async fn verify(password: &str, phc: &str) -> bool {
    let (password, phc) = (Zeroizing::new(password.to_string()), phc.to_string());
    tokio::task::spawn_blocking(move || Argon2::default().verify_password(password.as_bytes(), phc.as_str()).is_ok()).await.unwrap_or(false)
}

/// The cost of one verification, for unknown users: a failed login takes as long whether or not
/// the name exists.
pub async fn verify_dummy(password: &str) {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let phc = DUMMY.get_or_init(|| hash("not a password of anyone here").unwrap_or_default()).clone();
    let _ = verify(password, &phc).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn right_password_verifies_wrong_one_does_not() {
        let phc = hash("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(verify("correct horse battery", &phc).await);
        assert!(!verify("correct horse batterY", &phc).await);
        assert!(!verify("", &phc).await);
        assert!(!verify("correct horse battery", "not a hash").await);
        assert_ne!(hash("correct horse battery").unwrap(), phc, "fresh salt each time");
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert!(check_strength("short").is_err());
        assert!(check_strength(" leading space ok?").is_err());
        assert!(check_strength("twelve chars").is_ok());
    }
}
