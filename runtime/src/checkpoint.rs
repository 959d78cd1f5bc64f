//! A run's folder and its checkpoints, written so that a process killed at any moment leaves the
//! previous checkpoint intact.
//!
//! ```text
//! runs/NAME/
//!   checkpoints/step-00001234-epoch-0056/             after 1,234 steps, 56 epochs finished
//!     model.safetensors       weights, torchvision names (eval, predict, resnext! structs and
//!                             PyTorch load it)
//!     optimizer.safetensors   SGD momentum buffers, by variable name
//!     trainer.json            epoch, step, seed, schedule position, the epoch so far, history,
//!                             recipe
//!   checkpoints/LATEST                               the name of the newest complete checkpoint
//!   model.safetensors                                the final weights
//!   metrics.jsonl                                    one JSON object per epoch
//!   classes.txt                                      class names, one per line
//! ```
//!
//! A checkpoint is first written into a temporary folder; each file is flushed to disk
//! (`fsync`), the folder is renamed to its final name, and only then is `LATEST` replaced, by
//! writing a temporary file, flushing it and renaming it over the old one (a rename is atomic on
//! POSIX file systems). Older checkpoints are deleted after that, keeping the last two. A crash
//! before the rename of `LATEST` leaves the previous checkpoint in force; a leftover temporary
//! folder is ignored and cleaned up by the next write.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file system error.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A tensor file could not be written or read.
    #[error("{path}: {message}")]
    Tensors {
        /// The file.
        path: PathBuf,
        /// What libtorch said.
        message: String,
    },
    /// A checkpoint's contents do not fit the run.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `--resume` without a checkpoint.
    #[error("{path}: no checkpoint to resume from (no checkpoints/LATEST)")]
    NoCheckpoint {
        /// The run folder.
        path: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Flushes a file or folder to disk.
fn sync(path: &Path) -> Result<(), CheckpointError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(io(path))
}

/// Writes `path` atomically: `write` fills a temporary file next to it, which is flushed to
/// disk and renamed over `path`; then the folder is flushed.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), CheckpointError>,
) -> Result<(), CheckpointError> {
    let tmp = archc::temp_beside(path, "archc-run");
    write(&tmp)?;
    sync(&tmp)?;
    fs::rename(&tmp, path).map_err(io(path))?;
    // `a.safetensors` is in the current folder, `.`.
    sync(tmp.parent().expect("a file in a folder"))
}

/// Writes bytes atomically (see [`write_atomic`]).
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    write_atomic(path, |tmp| {
        let mut f = File::create(tmp).map_err(io(tmp))?;
        f.write_all(bytes).map_err(io(tmp))
    })
}

/// Writes named tensors as safetensors, atomically.
pub fn write_tensors_atomic(
    path: &Path,
    tensors: &[(String, tch::Tensor)],
) -> Result<(), CheckpointError> {
    write_atomic(path, |tmp| {
        tch::Tensor::write_safetensors(tensors, tmp).map_err(|e| CheckpointError::Tensors {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    })
}

/// A run's output folder (see the module docs).
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// The run folder `root`, created if needed.
    pub fn create(root: impl Into<PathBuf>) -> Result<RunDir, CheckpointError> {
        let root = root.into();
        fs::create_dir_all(root.join("checkpoints")).map_err(io(&root))?;
        Ok(RunDir { root })
    }

    /// The run folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A file of the run folder.
    pub fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// The newest complete checkpoint's folder, if any.
    pub fn latest(&self) -> Result<Option<PathBuf>, CheckpointError> {
        let pointer = self.checkpoints().join("LATEST");
        if !pointer.exists() {
            return Ok(None);
        }
        let name = fs::read_to_string(&pointer).map_err(io(&pointer))?;
        let dir = self.checkpoints().join(name.trim());
        if name.trim().is_empty() || !dir.is_dir() {
            return Err(CheckpointError::Invalid {
                path: pointer,
                message: format!("names a missing checkpoint `{}`", name.trim()),
            });
        }
        Ok(Some(dir))
    }

    /// Writes a checkpoint named `name` whose files `fill` writes into the folder it is given
    /// (plainly: each file and the folder are flushed afterwards), then makes it the latest and
    /// deletes all but the two newest. The latest checkpoint itself is never rewritten: when
    /// `name` is already the latest, nothing is written.
    pub fn write_checkpoint(
        &self,
        name: &str,
        fill: impl FnOnce(&Path) -> Result<(), CheckpointError>,
    ) -> Result<PathBuf, CheckpointError> {
        let base = self.checkpoints();
        let latest = self.latest()?;
        if let Some(latest) = latest.filter(|l| l.file_name().is_some_and(|n| n == name)) {
            return Ok(latest);
        }
        let tmp = base.join(format!(".tmp-{name}-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        fill(&tmp)?;
        for e in fs::read_dir(&tmp).map_err(io(&tmp))? {
            sync(&e.map_err(io(&tmp))?.path())?;
        }
        sync(&tmp)?;
        let dir = base.join(name);
        if dir.exists() {
            // A complete folder that LATEST does not name: a run killed between its rename and
            // LATEST's, now resumed from the checkpoint before. It is not in force: replace it.
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
        }
        fs::rename(&tmp, &dir).map_err(io(&dir))?;
        sync(&base)?;
        write_bytes_atomic(&base.join("LATEST"), name.as_bytes())?;
        self.prune(name)?;
        Ok(dir)
    }

    /// Deletes leftover temporary folders and all complete checkpoints but the two newest.
    fn prune(&self, keep: &str) -> Result<(), CheckpointError> {
        let base = self.checkpoints();
        let mut done = Vec::new();
        for e in fs::read_dir(&base).map_err(io(&base))? {
            let p = e.map_err(io(&base))?.path();
            let n = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if p.is_dir() && n.starts_with(".tmp-") {
                let _ = fs::remove_dir_all(&p);
            } else if p.is_dir() && n != keep {
                done.push((n, p));
            }
        }
        done.sort();
        // Names sort by step, then finished epochs (zero-padded), so the last is the previous
        // checkpoint: keep it.
        done.pop();
        for (_, p) in done {
            fs::remove_dir_all(&p).map_err(io(&p))?;
        }
        Ok(())
    }
}
