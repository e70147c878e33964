//! The JWT secret and the admin token: given by the environment or the
//! config file, or else generated once and kept in the data dir.

use crate::config::StoreSettings;
use anyhow::{Context, Result};
use rand::Rng;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const JWT_SECRET_FILE: &str = "jwt_secret";
pub const ADMIN_TOKEN_FILE: &str = "admin_token";

pub struct Secret {
    pub value: String,
    /// The file it was read from or written to; `None` when given directly.
    pub file: Option<PathBuf>,
}

/// `given` if set, else the data dir's file, created with a fresh random
/// value (readable by the owner only) when missing.
pub fn load_or_generate(data_dir: &Path, name: &str, given: Option<String>) -> Result<Secret> {
    if let Some(value) = given.filter(|v| !v.is_empty()) {
        return Ok(Secret { value, file: None });
    }
    let path = data_dir.join(name);
    if !path.exists() {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(&path) {
            Ok(mut file) => file
                .write_all(value.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?,
            // Another process created it first: use theirs.
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(error) => {
                return Err(error).with_context(|| format!("creating {}", path.display()));
            }
        }
    }
    read_existing(&path)
}

/// The secret kept in `path`; an error says how to create it.
pub fn read_existing(path: &Path) -> Result<Secret> {
    let value = std::fs::read_to_string(path)
        .with_context(|| {
            format!(
                "reading {} (run `seckill serve` once to create it)",
                path.display()
            )
        })?
        .trim()
        .to_string();
    anyhow::ensure!(!value.is_empty(), "{} is empty", path.display());
    Ok(Secret {
        value,
        file: Some(path.to_path_buf()),
    })
}

/// The JWT secret of an existing engine, for tools that mint user tokens:
/// `SECKILL_JWT_SECRET`, else the config file, else the data dir's file.
pub fn existing_jwt_secret(store: &StoreSettings) -> Result<String> {
    match given(store.jwt_secret.as_ref(), "SECKILL_JWT_SECRET") {
        Some(secret) => Ok(secret),
        None => Ok(read_existing(&store.data_dir.join(JWT_SECRET_FILE))?.value),
    }
}

/// The admin token of an existing engine, if it can be found the same way.
pub fn existing_admin_token(store: &StoreSettings) -> Option<String> {
    given(store.admin_token.as_ref(), "SECKILL_ADMIN_TOKEN").or_else(|| {
        read_existing(&store.data_dir.join(ADMIN_TOKEN_FILE))
            .ok()
            .map(|secret| secret.value)
    })
}

/// A secret from the environment, else from the config file; empty is unset.
pub fn given(from_file: Option<&String>, env: &str) -> Option<String> {
    std::env::var(env)
        .ok()
        .or_else(|| from_file.cloned())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_once_then_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(dir.path(), "s", None).unwrap();
        let again = load_or_generate(dir.path(), "s", None).unwrap();
        assert_eq!(first.value.len(), 64);
        assert_eq!(first.value, again.value);
        assert_eq!(first.file.as_deref(), Some(dir.path().join("s").as_path()));
    }

    #[test]
    fn a_given_secret_wins_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let given = load_or_generate(dir.path(), "s", Some("abc".into())).unwrap();
        assert_eq!(given.value, "abc");
        assert!(given.file.is_none());
        assert!(!dir.path().join("s").exists());
    }
}
