//! Local files the media store needs for a moment: a stored file copied out of an object
//! store for the driver to send (it reads a file, more than once), a received file the driver
//! downloads before it is stored. They live in `<data-dir>/media/.spool` (0600 in a 0700
//! directory), each removed when its handle drops; what a crash left is removed at the next
//! start and by the sweep.

use std::path::{Path, PathBuf};

use super::files::{entries, remove, TempFile};
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
        for f in entries(&dir)? {
            if f.is_file() {
                remove(&f);
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
