//! Media files are the gateway's alone: files 0600 and directories 0700, whatever the umask,
//! and whatever modes an older version (or a data dir made by hand) left behind.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents as 0700.
pub async fn create_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir).await
}

/// [`create_dir`], blocking.
pub fn create_dir_blocking(dir: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// Gives a file written by someone else (the driver's download) the file mode.
pub async fn restrict_file(path: &Path) -> std::io::Result<()> {
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE)).await
}

/// Brings every directory under `root` (itself included) to 0700 and every file to 0600.
/// Entries that vanish meanwhile are skipped; symlinks are left alone.
pub fn restrict_tree(root: &Path) -> std::io::Result<()> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(DIR_MODE))?;
        let Ok(list) = std::fs::read_dir(&dir) else { continue };
        for entry in list.flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                let mode = std::fs::Permissions::from_mode(FILE_MODE);
                let _ = std::fs::set_permissions(entry.path(), mode);
            }
        }
    }
    Ok(())
}
