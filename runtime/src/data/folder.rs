//! ImageFolder trees, ImageNet's layout: `train/CLASS/*.png|jpg|jpeg` and `val/CLASS/…` (or
//! `test/CLASS/…`). Classes are the sorted folder names of `train/`, as torchvision's
//! `ImageFolder` sorts them; the test split must use the same names.
//!
//! Opening checks every file's header (format and size) without decoding the pixels, so a
//! non-image file fails at once and names itself; the pixels are decoded by the loader's
//! workers.

use super::{DataError, Dataset, Image, Items, Splits, io_err};
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        out.push(e.map_err(io_err(dir))?.path());
    }
    out.sort();
    Ok(out)
}

/// A decoding error of the image file `path`.
fn decode_err(path: &Path) -> impl Fn(String) -> DataError + '_ {
    move |message| DataError::Decode {
        path: path.to_path_buf(),
        message,
    }
}

/// Opens an image file, its format guessed from its first bytes.
fn open_image(path: &Path) -> Result<image::ImageReader<BufReader<File>>, DataError> {
    image::ImageReader::open(path)
        .map_err(io_err(path))?
        .with_guessed_format()
        .map_err(io_err(path))
}

/// Reads a file's header: its format must be PNG or JPEG and its size readable.
fn check_header(path: &Path) -> Result<(), DataError> {
    let bad = decode_err(path);
    let reader = open_image(path)?;
    match reader.format() {
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        Some(f) => return Err(bad(format!("{f:?} images are not supported (PNG or JPEG)"))),
        None => return Err(bad("neither PNG nor JPEG data".to_string())),
    }
    reader.into_dimensions().map_err(|e| bad(e.to_string()))?;
    Ok(())
}

/// Decodes a PNG or JPEG file into `channels` channels (1: gray, 3: RGB).
pub fn decode_file(path: &Path, channels: usize) -> Result<Image, DataError> {
    let bad = decode_err(path);
    let img = open_image(path)?.decode().map_err(|e| bad(e.to_string()))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let data = match channels {
        1 => img.into_luma8().into_raw(),
        3 => img.into_rgb8().into_raw(),
        c => return Err(bad(format!("cannot decode into {c} channels (1 or 3)"))),
    };
    Ok(Image {
        c: channels,
        h,
        w,
        data,
    })
}

fn split(
    dir: &Path,
    classes: &[String],
    channels: usize,
    known: bool,
) -> Result<Dataset, DataError> {
    let mut files = Vec::new();
    let mut names = classes.to_vec();
    let folders: Vec<PathBuf> = sorted_entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .collect();
    if folders.is_empty() {
        return Err(DataError::Layout {
            path: dir.to_path_buf(),
            message: "no class folders (expected CLASS/*.png|jpg)".to_string(),
        });
    }
    for folder in folders {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let label = match names.iter().position(|n| *n == name) {
            Some(i) => i,
            None if !known => {
                names.push(name.clone());
                names.len() - 1
            }
            None => {
                return Err(DataError::Layout {
                    path: folder.clone(),
                    message: format!(
                        "class `{name}` is not one of the training classes ({} of them)",
                        classes.len()
                    ),
                });
            }
        };
        let before = files.len();
        for p in sorted_entries(&folder)? {
            if p.is_file() && is_image(&p) {
                check_header(&p)?;
                files.push((p, label as i64));
            } else if p.is_file() {
                // A stray file with another extension is a mistake worth naming.
                return Err(DataError::Decode {
                    path: p,
                    message: "not a .png, .jpg or .jpeg file".to_string(),
                });
            }
        }
        if files.len() == before {
            return Err(DataError::EmptyClass { path: folder });
        }
    }
    Ok(Dataset {
        root: dir.to_path_buf(),
        classes: names,
        items: Items::Files { files, channels },
    })
}

pub(super) fn open(dir: &Path, channels: usize) -> Result<Splits, DataError> {
    let train = split(&dir.join("train"), &[], channels, false)?;
    let test_dir = ["val", "test"]
        .iter()
        .map(|s| dir.join(s))
        .find(|p| p.is_dir())
        .ok_or_else(|| DataError::Layout {
            path: dir.to_path_buf(),
            message: "an ImageFolder tree needs val/ or test/ next to train/".to_string(),
        })?;
    let test = split(&test_dir, train.classes(), channels, true)?;
    Ok(Splits {
        train,
        test,
        format: "image-folder",
    })
}
