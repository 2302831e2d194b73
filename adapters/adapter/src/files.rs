//! Attachment files under `<data_dir>/files`.
//!
//! Invariant: a file is written and synced (file and directory) *before* the row that
//! names it commits, so a committed row never names a missing or partial file; a crash in
//! between leaves only an orphan, which [`Files::sweep`] removes at the next start. A file
//! is removed only *after* the commit that dropped its row.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A file written for a row that is about to be committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    pub content_id: String,
    pub mime_type: String,
    /// The file's name under the files directory.
    pub file: String,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct Files {
    dir: PathBuf,
}

impl Files {
    pub fn new(dir: PathBuf) -> std::io::Result<Files> {
        std::fs::create_dir_all(&dir)?;
        std::fs::create_dir_all(dir.join("incoming"))?;
        Ok(Files { dir })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Where the client streams MTOM parts of answers (emptied at start).
    pub fn incoming_dir(&self) -> PathBuf {
        self.dir.join("incoming")
    }

    fn new_name() -> String {
        format!("{}.bin", uuid::Uuid::new_v4().simple())
    }

    /// Writes `data` into a new file and syncs it (not the directory: see [`Files::sync`]).
    pub fn write(
        &self,
        content_id: &str,
        mime_type: &str,
        data: &[u8],
    ) -> std::io::Result<StagedFile> {
        let name = Self::new_name();
        let mut f = std::fs::File::create_new(self.dir.join(&name))?;
        f.write_all(data)?;
        f.sync_all()?;
        Ok(StagedFile {
            content_id: content_id.to_string(),
            mime_type: mime_type.to_string(),
            file: name,
            size: data.len() as u64,
        })
    }

    /// Moves a file written elsewhere on the same file system (an MTOM part the client
    /// streamed) into the directory and syncs it.
    pub fn adopt(
        &self,
        content_id: &str,
        mime_type: &str,
        from: &Path,
    ) -> std::io::Result<StagedFile> {
        let name = Self::new_name();
        let to = self.dir.join(&name);
        std::fs::rename(from, &to)?;
        let f = std::fs::File::open(&to)?;
        f.sync_all()?;
        let size = f.metadata()?.len();
        Ok(StagedFile {
            content_id: content_id.to_string(),
            mime_type: mime_type.to_string(),
            file: name,
            size,
        })
    }

    /// Syncs the directory, so the names of the files written so far survive a crash.
    pub fn sync(&self) -> std::io::Result<()> {
        std::fs::File::open(&self.dir)?.sync_all()
    }

    /// Removes files whose rows are gone (or were never committed); errors are logged.
    pub fn remove<'a>(&self, names: impl IntoIterator<Item = &'a str>) {
        for n in names {
            if let Err(e) = std::fs::remove_file(self.dir.join(n)) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = n, error = %e, "attachment file not removed");
                }
            }
        }
    }

    /// At start: removes every file no row names, and everything in `incoming/`.
    pub fn sweep(&self, referenced: &HashSet<String>) -> std::io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_file() && !referenced.contains(&name) {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        for entry in std::fs::read_dir(self.incoming_dir())? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(entry.path())?;
            } else {
                std::fs::remove_file(entry.path())?;
            }
            removed += 1;
        }
        Ok(removed)
    }
}
