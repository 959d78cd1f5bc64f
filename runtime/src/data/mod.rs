//! Image data for training and evaluation: CIFAR-10/100 binary files and ImageFolder trees,
//! the paper's augmentations, and a loader with worker threads and prefetch.
//!
//! - [`open`] finds the format of a data folder and returns its training and test
//!   [`Dataset`]s: CIFAR-10 (`data_batch_{1..5}.bin`, `test_batch.bin`, `batches.meta.txt`),
//!   CIFAR-100 (`train.bin`, `test.bin`, `fine_label_names.txt`), or an ImageFolder tree
//!   (`train/CLASS/*.png|jpg`, and `val/` or `test/`).
//! - [`Transform`] turns a decoded [`Image`] into a normalised `C×H×W` float image, with the
//!   paper's augmentation: CIFAR's pad-and-crop plus flip, ImageNet's random-resized crop plus
//!   flip, or (for evaluation) resize and centre crop.
//! - [`Loader`] decodes and augments on worker threads, keeps a few batches ready, and hands them
//!   out in order as tensors. The order and every random choice are functions of (seed, epoch,
//!   image index) alone, so a run is reproducible and resumable whatever the thread count.
//!
//! Every error names the file it comes from ([`DataError`]).

mod cifar;
mod folder;
mod loader;
pub(crate) mod rng;
mod transform;

pub use folder::decode_file;
pub use loader::{Batch, Batches, Loader};
pub use transform::{Augment, Transform};

use std::path::{Path, PathBuf};

/// A decoded 8-bit image, channels interleaved (`H×W×C`, as the `image` crate stores them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// Channels: 1 (gray) or 3 (RGB).
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// `h·w·c` bytes, row by row, channels interleaved.
    pub data: Vec<u8>,
}

/// Why data could not be read. Each variant names the file or folder.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A CIFAR binary file whose size is not a whole number of records.
    #[error(
        "{path}: truncated CIFAR file: {size} bytes is not a multiple of the {record}-byte record ({} whole records and {} bytes left over)",
        size / record, size % record
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The record size of the format.
        record: u64,
    },
    /// A label outside the class list.
    #[error("{path}: record {record} has label {label}, but there are only {classes} classes")]
    Label {
        /// The file.
        path: PathBuf,
        /// The record's index in the file.
        record: usize,
        /// The label found.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// A file that is not a PNG or JPEG image, or a corrupt one.
    #[error("{path}: not a readable image: {message}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// A class folder without images.
    #[error("{path}: empty class folder (no .png, .jpg or .jpeg file)")]
    EmptyClass {
        /// The folder.
        path: PathBuf,
    },
    /// A folder that holds none of the supported layouts.
    #[error("{path}: {message}")]
    Layout {
        /// The folder.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// The data has more classes than the network's `classes`.
    #[error(
        "{path}: the data has {found} classes, but the network has only {classes} outputs (its `classes`)"
    )]
    TooManyClasses {
        /// The data folder.
        path: PathBuf,
        /// Classes in the data.
        found: usize,
        /// The network's outputs.
        classes: usize,
    },
    /// Images whose channel count the network cannot take.
    #[error("{path}: the images have {found} channels, but the network takes {wanted}")]
    Channels {
        /// The data folder.
        path: PathBuf,
        /// Channels of the images.
        found: usize,
        /// Channels of the network's input.
        wanted: usize,
    },
    /// A worker thread stopped without sending its batch (it panicked).
    #[error("a data loader worker stopped unexpectedly")]
    Worker,
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a dataset's images are.
#[derive(Debug)]
enum Items {
    /// All images in memory (CIFAR): `n` images of `h×w×c` bytes each.
    Memory {
        h: usize,
        w: usize,
        c: usize,
        pixels: Vec<u8>,
        labels: Vec<i64>,
    },
    /// One file per image, decoded on demand into `channels` channels.
    Files {
        files: Vec<(PathBuf, i64)>,
        channels: usize,
    },
}

/// One split of a data set: its images, labels and class names.
#[derive(Debug)]
pub struct Dataset {
    root: PathBuf,
    classes: Vec<String>,
    items: Items,
}

impl Dataset {
    /// A data set of in-memory images (`H×W×C` bytes each) with labels.
    pub fn from_images(
        root: impl Into<PathBuf>,
        classes: Vec<String>,
        images: Vec<Image>,
        labels: Vec<i64>,
    ) -> Dataset {
        let (h, w, c) = images.first().map_or((0, 0, 0), |i| (i.h, i.w, i.c));
        assert!(
            images.iter().all(|i| (i.h, i.w, i.c) == (h, w, c)),
            "from_images: every image must have the same shape"
        );
        assert_eq!(
            images.len(),
            labels.len(),
            "from_images: one label per image"
        );
        let pixels = images.into_iter().flat_map(|i| i.data).collect();
        Dataset {
            root: root.into(),
            classes,
            items: Items::Memory {
                h,
                w,
                c,
                pixels,
                labels,
            },
        }
    }

    /// The folder or file the data came from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Class names, index = label.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        match &self.items {
            Items::Memory { labels, .. } => labels.len(),
            Items::Files { files, .. } => files.len(),
        }
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The label of image `i`.
    pub fn label(&self, i: usize) -> i64 {
        match &self.items {
            Items::Memory { labels, .. } => labels[i],
            Items::Files { files, .. } => files[i].1,
        }
    }

    /// Channels of the images as [`Dataset::image`] returns them.
    pub fn channels(&self) -> usize {
        match &self.items {
            Items::Memory { c, .. } => *c,
            Items::Files { channels, .. } => *channels,
        }
    }

    /// Image `i`, decoded (files are read now).
    pub fn image(&self, i: usize) -> Result<Image, DataError> {
        match &self.items {
            Items::Memory {
                h, w, c, pixels, ..
            } => {
                let n = h * w * c;
                Ok(Image {
                    c: *c,
                    h: *h,
                    w: *w,
                    data: pixels[i * n..(i + 1) * n].to_vec(),
                })
            }
            Items::Files { files, channels } => decode_file(&files[i].0, *channels),
        }
    }

    /// Checks that the data fits a network with `classes` outputs and `channels` input channels.
    pub fn check_fits(&self, classes: usize, channels: usize) -> Result<(), DataError> {
        if self.classes.len() > classes {
            return Err(DataError::TooManyClasses {
                path: self.root.clone(),
                found: self.classes.len(),
                classes,
            });
        }
        match &self.items {
            Items::Memory { c, .. } if *c != channels => Err(DataError::Channels {
                path: self.root.clone(),
                found: *c,
                wanted: channels,
            }),
            _ => Ok(()),
        }
    }
}

/// The training and test splits of a data folder.
#[derive(Debug)]
pub struct Splits {
    /// The training images.
    pub train: Dataset,
    /// The test (or validation) images.
    pub test: Dataset,
    /// `cifar-10`, `cifar-100` or `image-folder`.
    pub format: &'static str,
}

/// Opens a data folder in any supported layout (see the module docs). `channels` is the number
/// of channels the network takes: image files are decoded to it (gray or RGB).
pub fn open(dir: impl AsRef<Path>, channels: usize) -> Result<Splits, DataError> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(DataError::Layout {
            path: dir.to_path_buf(),
            message: "not a folder".to_string(),
        });
    }
    // The archives unpack into a subfolder; accept both that folder and its parent.
    for sub in ["", "cifar-10-batches-bin", "cifar-100-binary"] {
        let d = dir.join(sub);
        if d.join("data_batch_1.bin").is_file() {
            return cifar::open_cifar10(&d);
        }
        if d.join("train.bin").is_file() && d.join("test.bin").is_file() {
            return cifar::open_cifar100(&d);
        }
    }
    if dir.join("train").is_dir() {
        return folder::open(dir, channels);
    }
    Err(DataError::Layout {
        path: dir.to_path_buf(),
        message: "no known data layout: expected CIFAR-10 (data_batch_1.bin … test_batch.bin), CIFAR-100 (train.bin, test.bin) or an ImageFolder tree (train/CLASS/*.png|jpg with val/ or test/)".to_string(),
    })
}
