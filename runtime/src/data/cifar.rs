//! CIFAR-10 and CIFAR-100 in their binary release format.
//!
//! A CIFAR-10 record is 1 label byte then 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each
//! a 32×32 plane row by row); CIFAR-100 records carry a coarse then a fine label byte before the
//! pixels, and the fine label (100 classes) is the one used. Class names come from
//! `batches.meta.txt` / `fine_label_names.txt` when present, else they are the label numbers.

use super::{DataError, Dataset, Image, Splits, io_err};
use std::path::Path;

const PIXELS: usize = 3 * 32 * 32;

/// Reads the records of one file: `skip` label bytes before the one used (0 for CIFAR-10, 1 for
/// CIFAR-100's fine label).
fn read_records(
    path: &Path,
    skip: usize,
    classes: usize,
    images: &mut Vec<Image>,
    labels: &mut Vec<i64>,
) -> Result<(), DataError> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let record = skip + 1 + PIXELS;
    if bytes.is_empty() || bytes.len() % record != 0 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
            record: record as u64,
        });
    }
    for (k, r) in bytes.chunks_exact(record).enumerate() {
        let label = r[skip];
        if label as usize >= classes {
            return Err(DataError::Label {
                path: path.to_path_buf(),
                record: k,
                label,
                classes,
            });
        }
        let planes = &r[skip + 1..];
        // Planar (CHW) to interleaved (HWC).
        let mut data = vec![0u8; PIXELS];
        for p in 0..1024 {
            for c in 0..3 {
                data[p * 3 + c] = planes[c * 1024 + p];
            }
        }
        images.push(Image {
            c: 3,
            h: 32,
            w: 32,
            data,
        });
        labels.push(label as i64);
    }
    Ok(())
}

/// Class names from a text file (one per line, blank lines skipped), or `0`, `1`, … .
fn class_names(path: &Path, n: usize) -> Result<Vec<String>, DataError> {
    if !path.is_file() {
        return Ok((0..n).map(|i| i.to_string()).collect());
    }
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != n {
        return Err(DataError::Layout {
            path: path.to_path_buf(),
            message: format!("expected {n} class names, found {}", names.len()),
        });
    }
    Ok(names)
}

fn split(
    dir: &Path,
    files: &[&str],
    skip: usize,
    classes: &[String],
) -> Result<Dataset, DataError> {
    let (mut images, mut labels) = (Vec::new(), Vec::new());
    for f in files {
        read_records(&dir.join(f), skip, classes.len(), &mut images, &mut labels)?;
    }
    let root = if files.len() == 1 {
        dir.join(files[0])
    } else {
        dir.to_path_buf()
    };
    Ok(Dataset::from_images(root, classes.to_vec(), images, labels))
}

pub(super) fn open_cifar10(dir: &Path) -> Result<Splits, DataError> {
    let classes = class_names(&dir.join("batches.meta.txt"), 10)?;
    let train: Vec<String> = (1..=5)
        .map(|i| format!("data_batch_{i}.bin"))
        .filter(|f| dir.join(f).is_file())
        .collect();
    let train: Vec<&str> = train.iter().map(String::as_str).collect();
    Ok(Splits {
        train: split(dir, &train, 0, &classes)?,
        test: split(dir, &["test_batch.bin"], 0, &classes)?,
        format: "cifar-10",
    })
}

pub(super) fn open_cifar100(dir: &Path) -> Result<Splits, DataError> {
    let classes = class_names(&dir.join("fine_label_names.txt"), 100)?;
    Ok(Splits {
        train: split(dir, &["train.bin"], 1, &classes)?,
        test: split(dir, &["test.bin"], 1, &classes)?,
        format: "cifar-100",
    })
}
