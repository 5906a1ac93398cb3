//! The gateway's two secrets: the master key that seals sessions and the admin token. Each
//! comes from its environment variable or, when absent, from a file in the data dir that is
//! created with mode 0600 on first start (written whole under a temporary name, then linked
//! into place, so no process ever reads half a file) and reused after.

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
/// The shortest admin token accepted, from the environment or the file: the admin token
/// guards every tenant, so a guessable one is refused at start.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

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
    if !path.exists() {
        let key = MasterKey::generate();
        if write_private(&path, &key.to_base64())? {
            return Ok((key, Source::Created(path)));
        }
        // Another process wrote it first: use theirs.
    }
    let text = read_private(&path, "master key")?;
    let key = MasterKey::from_base64(&text)
        .with_context(|| format!("the master key file {} is damaged", path.display()))?;
    Ok((key, Source::File(path)))
}

pub fn admin_token(
    from_env: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<(SecretString, Source)> {
    if let Some(t) = from_env {
        let t = t.trim();
        if t.chars().count() < MIN_ADMIN_TOKEN_LEN {
            bail!("BZAPPER_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_LEN} characters");
        }
        return Ok((t.into(), Source::Env));
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    if !path.exists() {
        let token = format!("bza_{}", crate::model::ids::new_secret());
        if write_private(&path, &token)? {
            return Ok((token.into(), Source::Created(path)));
        }
        // Another process wrote it first: use theirs.
    }
    let t = read_private(&path, "admin token")?;
    if t.chars().count() < MIN_ADMIN_TOKEN_LEN {
        bail!(
            "the admin token in {} must be at least {MIN_ADMIN_TOKEN_LEN} characters; \
             replace it (or delete it to have a new one made)",
            path.display()
        );
    }
    Ok((t.into(), Source::File(path)))
}

/// Reads a secret file (trimmed), first making it private if an older version or a hand-made
/// file left it readable by others.
fn read_private(path: &Path, what: &str) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0o600);
    if mode & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making the {what} file {} private", path.display()))?;
    }
    let text = fs::read_to_string(path)
        .with_context(|| format!("reading the {what} file {}", path.display()))?;
    Ok(text.trim().to_string())
}

/// A fresh master key in the form `BZAPPER_MASTER_KEY` takes (`bzapper keygen`).
pub fn new_master_key_base64() -> String {
    MasterKey::generate().to_base64()
}

/// Writes a new file readable by its owner only, atomically: the whole file is written and
/// synced under a temporary name, then hard-linked to `path`, which never overwrites (unlike a
/// rename). `false` when `path` already existed (another process won the race).
fn write_private(path: &Path, contents: &str) -> anyhow::Result<bool> {
    let tmp =
        path.with_extension(format!("tmp-{}-{:08x}", std::process::id(), rand::random::<u32>()));
    let written = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.write_all(b"\n")?;
        f.sync_all()
    })();
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            // The new name is durable once the directory is.
            if let Some(dir) = path.parent() {
                let _ = fs::File::open(dir).and_then(|d| d.sync_all());
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
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
        assert!(admin_token(Some("   fifteen-chars  "), dir.path()).is_err());
        assert!(admin_token(Some("sixteen-chars-ok"), dir.path()).is_ok());
    }

    #[test]
    fn a_short_token_in_the_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(ADMIN_TOKEN_FILE), "tooshort\n").unwrap();
        let err = admin_token(None, dir.path()).unwrap_err().to_string();
        assert!(err.contains("at least 16 characters"), "{err}");
        fs::write(dir.path().join(ADMIN_TOKEN_FILE), "long-enough-token-123\n").unwrap();
        let (t, s) = admin_token(None, dir.path()).unwrap();
        assert_eq!(t.expose_secret(), "long-enough-token-123");
        assert!(matches!(s, Source::File(_)));
    }

    #[test]
    fn secret_files_are_written_whole_never_overwritten_and_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ADMIN_TOKEN_FILE);
        assert!(write_private(&path, "first-token-0123456789").unwrap());
        assert!(!write_private(&path, "second-token-0123456789").unwrap(), "never overwrites");
        assert_eq!(fs::read_to_string(&path).unwrap(), "first-token-0123456789\n");
        // No temporary file is left beside it.
        let names: Vec<_> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(ADMIN_TOKEN_FILE)]);
        // A file an older version left readable by others is made private when read.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        admin_token(None, dir.path()).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
