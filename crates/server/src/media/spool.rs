//! Local files the media store needs for a moment: a stored file copied out of an object
//! store for the driver to send (it reads a file, more than once), a received file the driver
//! downloads before it is stored. They live in `<data-dir>/media/.spool` (0600 in a 0700
//! directory), each removed when its handle drops; what a crash left is removed at the next
//! start and by the sweep.

use std::path::{Path, PathBuf};

use super::private;
use crate::model::ids::new_id;

/// The directory, private to this process (every node has its own data dir).
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// `dir`, created 0700 and emptied (nothing in it outlives the process that made it).
    pub fn open(dir: PathBuf) -> std::io::Result<Spool> {
        private::create_dir_blocking(&dir)?;
        for f in super::blobs::local::entries(&dir)? {
            if f.is_file() {
                super::blobs::local::remove(&f);
            }
        }
        Ok(Spool { dir })
    }

    /// A fresh path in the spool (no file yet), removed when the handle drops.
    pub fn file(&self, what: &str) -> TempFile {
        TempFile::new(self.dir.join(new_id(what)))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A file removed when dropped unless disarmed: a failed or abandoned write (an error, a
/// timeout, a client that went away), or a copy whose use is over, leaves nothing behind.
pub struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    pub fn new(path: PathBuf) -> Self {
        TempFile { path, armed: true }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the file (it got its final name, or was moved away).
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl std::fmt::Debug for TempFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TempFile({})", self.path.display())
    }
}
