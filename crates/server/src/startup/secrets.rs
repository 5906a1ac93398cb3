//! The gateway's two secrets: the master key that seals sessions and the admin token. Each
//! comes from its environment variable or, when absent, from a file in the data dir that is
//! created with mode 0600 on first start and reused after.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use bzapper_store::MasterKey;
// `secrecy` (no default features: it pulls in only `zeroize`, already in the tree): a
// `SecretString` prints as `[REDACTED]` and is wiped on drop.
pub use secrecy::{ExposeSecret, SecretString};

pub const MASTER_KEY_FILE: &str = "master.key";
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// Where a secret came from, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Env,
    File(PathBuf),
    /// Generated now into this file.
    Created(PathBuf),
}

pub fn master_key(from_env: Option<&str>, data_dir: &Path) -> anyhow::Result<(MasterKey, Source)> {
    if let Some(b64) = from_env {
        let key = MasterKey::from_base64(b64.trim())
            .context("BZAPPER_MASTER_KEY must be 32 bytes in base64")?;
        return Ok((key, Source::Env));
    }
    let path = data_dir.join(MASTER_KEY_FILE);
    if path.exists() {
        let text = fs::read_to_string(&path)
            .with_context(|| format!("reading the master key file {}", path.display()))?;
        let key = MasterKey::from_base64(text.trim())
            .with_context(|| format!("the master key file {} is damaged", path.display()))?;
        return Ok((key, Source::File(path)));
    }
    let key = MasterKey::generate();
    write_private(&path, &key.to_base64())?;
    Ok((key, Source::Created(path)))
}

pub fn admin_token(
    from_env: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<(SecretString, Source)> {
    if let Some(t) = from_env {
        let t = t.trim();
        if t.len() < 16 {
            bail!("BZAPPER_ADMIN_TOKEN must be at least 16 characters");
        }
        return Ok((t.into(), Source::Env));
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    if path.exists() {
        let t = fs::read_to_string(&path)
            .with_context(|| format!("reading the admin token file {}", path.display()))?;
        return Ok((t.trim().into(), Source::File(path)));
    }
    let token = format!("bza_{}", crate::model::ids::new_secret());
    write_private(&path, &token)?;
    Ok((token.into(), Source::Created(path)))
}

/// A fresh master key in the form `BZAPPER_MASTER_KEY` takes (`bzapper keygen`).
pub fn new_master_key_base64() -> String {
    MasterKey::generate().to_base64()
}

/// Writes a new file readable by its owner only; never overwrites.
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_secrets_are_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (k1, s1) = master_key(None, dir.path()).unwrap();
        assert!(matches!(s1, Source::Created(_)));
        let (k2, s2) = master_key(None, dir.path()).unwrap();
        assert!(matches!(s2, Source::File(_)));
        assert_eq!(k1.to_base64(), k2.to_base64());
        let (t1, _) = admin_token(None, dir.path()).unwrap();
        let (t2, _) = admin_token(None, dir.path()).unwrap();
        assert_eq!(t1.expose_secret(), t2.expose_secret());
        for f in [MASTER_KEY_FILE, ADMIN_TOKEN_FILE] {
            let mode = fs::metadata(dir.path().join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }

    #[test]
    fn env_values_win_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::generate().to_base64();
        let (k, s) = master_key(Some(&key), dir.path()).unwrap();
        assert_eq!((k.to_base64(), s), (key, Source::Env));
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
        assert!(master_key(Some("not base64!"), dir.path()).is_err());
        assert!(admin_token(Some("short"), dir.path()).is_err());
    }
}
