//! Loading and saving weights as safetensors, by torchvision `state_dict` name.
//!
//! [`load`] checks the whole file before it copies anything. Every missing, unexpected or
//! mis-shaped tensor is listed in one [`WeightsError::Mismatch`], with the expected and found
//! shapes. torchvision's `*.num_batches_tracked` counters are accepted and ignored.
//!
//! ## One checkpoint for all three block forms
//!
//! A grouped-form (paper Fig. 3c) checkpoint, such as torchvision's, also loads into the
//! `concat` (3b) and `split` (3a) forms. Their variables are named
//! `layer{i}.{j}.paths.{p}.{leaf}`, and each one is the slice `p` of the grouped tensor
//! `layer{i}.{j}.{leaf}` along the one dimension where the shapes differ:
//! - `conv1.weight` `[C·d, in, 1, 1]` → path `p` takes output rows `p·d .. (p+1)·d`;
//! - `conv2.weight` `[C·d, d, 3, 3]` with C groups → path `p` takes output rows
//!   `p·d .. (p+1)·d`, whose input is exactly path `p`'s `d` channels;
//! - `bn1`/`bn2` weight, bias, running mean and variance `[C·d]` → elements `p·d .. (p+1)·d`;
//! - `conv3.weight` `[out, C·d, 1, 1]`, in the split form only → path `p` takes input columns
//!   `p·d .. (p+1)·d` (the paths' outputs are summed, then `bn3` applies as before);
//! - a bias that has the same shape in both forms goes to path 0 alone, since the paths are
//!   summed.
//!
//! The paths then compute the same function as the grouped convolution, because a grouped
//! convolution's group `p` sees only input channels `p·d .. (p+1)·d`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// A tensor name with its shape.
pub type Named = (String, Vec<i64>);

/// Why weights could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file and the network disagree; nothing was copied.
    #[error("{}", mismatch_message(.file, .missing, .unexpected, .misshaped))]
    Mismatch {
        /// The file.
        file: String,
        /// Variables of the network that the file lacks, with their shapes.
        missing: Vec<Named>,
        /// Tensors of the file that the network has no variable for, with their shapes.
        unexpected: Vec<Named>,
        /// (name, expected shape, shape in the file).
        misshaped: Vec<(String, Vec<i64>, Vec<i64>)>,
    },
    /// The file could not be read or written.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// What libtorch said.
        source: tch::TchError,
    },
}

fn mismatch_message(
    file: &str,
    missing: &[Named],
    unexpected: &[Named],
    misshaped: &[(String, Vec<i64>, Vec<i64>)],
) -> String {
    let mut s = format!(
        "{file} does not fit the network: {} missing, {} unexpected, {} mis-shaped",
        missing.len(),
        unexpected.len(),
        misshaped.len()
    );
    for (n, shape) in missing {
        let _ = write!(s, "\n  missing     {n}: expected {shape:?}");
    }
    for (n, shape) in unexpected {
        let _ = write!(s, "\n  unexpected  {n}: found {shape:?}");
    }
    for (n, want, got) in misshaped {
        let _ = write!(s, "\n  mis-shaped  {n}: expected {want:?}, found {got:?}");
    }
    s
}

/// What [`load`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Variables copied by name.
    pub direct: usize,
    /// Path variables sliced from a grouped tensor.
    pub mapped: usize,
    /// `num_batches_tracked` counters skipped.
    pub ignored: usize,
}

/// For `layer1.0.paths.3.conv2.weight`: (`layer1.0.conv2.weight`, 3).
fn grouped_source(name: &str) -> Option<(String, i64)> {
    let (block, rest) = name.split_once(".paths.")?;
    let (index, leaf) = rest.split_once('.')?;
    Some((format!("{block}.{leaf}"), index.parse().ok()?))
}

/// How a variable gets its value from the file.
enum Source<'a> {
    Direct(&'a Tensor),
    Slice {
        from: &'a Tensor,
        dim: i64,
        index: i64,
    },
    /// A bias shared by the paths: path 0 takes it whole, the others are zero.
    Whole(&'a Tensor),
    Zero,
}

fn plan<'a>(
    name: &str,
    want: &[i64],
    file: &'a BTreeMap<String, Tensor>,
) -> Result<Source<'a>, Option<Vec<i64>>> {
    if let Some(t) = file.get(name) {
        let got = t.size();
        return if got == want {
            Ok(Source::Direct(t))
        } else {
            Err(Some(got))
        };
    }
    let Some((src, index)) = grouped_source(name) else {
        return Err(None);
    };
    let Some(t) = file.get(&src) else {
        return Err(None);
    };
    let got = t.size();
    if got.len() != want.len() {
        return Err(Some(got));
    }
    let diff: Vec<usize> = (0..got.len()).filter(|&k| got[k] != want[k]).collect();
    match diff.as_slice() {
        [] => Ok(if index == 0 {
            Source::Whole(t)
        } else {
            Source::Zero
        }),
        [k] if want[*k] > 0 && got[*k] % want[*k] == 0 && index < got[*k] / want[*k] => {
            Ok(Source::Slice {
                from: t,
                dim: *k as i64,
                index,
            })
        }
        _ => Err(Some(got)),
    }
}

/// Loads a safetensors file into `vs` by name (see the module docs for the path forms).
pub fn load(vs: &mut VarStore, path: impl AsRef<Path>) -> Result<Loaded, WeightsError> {
    let path = path.as_ref();
    let file_name = path.display().to_string();
    let tensors = Tensor::read_safetensors(path).map_err(|source| WeightsError::Io {
        file: file_name.clone(),
        source,
    })?;
    let file: BTreeMap<String, Tensor> = tensors.into_iter().collect();
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let mut used = BTreeSet::new();
    let (mut missing, mut misshaped, mut plans) = (Vec::new(), Vec::new(), Vec::new());
    let mut report = Loaded::default();
    for (name, var) in &vars {
        let want = var.size();
        match plan(name, &want, &file) {
            Ok(source) => {
                match &source {
                    Source::Direct(_) => {
                        used.insert(name.clone());
                        report.direct += 1;
                    }
                    _ => {
                        used.insert(grouped_source(name).expect("planned").0);
                        report.mapped += 1;
                    }
                }
                plans.push((var, source));
            }
            Err(None) => missing.push((name.clone(), want)),
            Err(Some(got)) => {
                // Reported as mis-shaped, not also as unexpected.
                used.insert(match grouped_source(name) {
                    Some((src, _)) if !file.contains_key(name) => src,
                    _ => name.clone(),
                });
                misshaped.push((name.clone(), want, got));
            }
        }
    }
    let mut unexpected = Vec::new();
    for (name, t) in &file {
        if used.contains(name) {
            continue;
        }
        if name.ends_with(".num_batches_tracked") {
            report.ignored += 1;
        } else {
            unexpected.push((name.clone(), t.size()));
        }
    }
    if !(missing.is_empty() && unexpected.is_empty() && misshaped.is_empty()) {
        return Err(WeightsError::Mismatch {
            file: file_name,
            missing,
            unexpected,
            misshaped,
        });
    }
    tch::no_grad(|| {
        for (var, source) in plans {
            let mut var = var.shallow_clone();
            match source {
                Source::Direct(t) | Source::Whole(t) => var.copy_(t),
                Source::Slice { from, dim, index } => {
                    let len = var.size()[dim as usize];
                    var.copy_(&from.narrow(dim, index * len, len))
                }
                Source::Zero => {
                    let _ = var.zero_();
                }
            }
        }
    });
    Ok(report)
}

/// Saves every variable of `vs` to a safetensors file, plus a `num_batches_tracked` counter
/// (0) per batch-norm so that torchvision's `load_state_dict(strict=True)` accepts the file.
pub fn save(vs: &VarStore, path: impl AsRef<Path>) -> Result<(), WeightsError> {
    let path = path.as_ref();
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    let mut out: Vec<(String, Tensor)> = vars
        .iter()
        .map(|(n, t)| (n.clone(), t.to_device(tch::Device::Cpu).contiguous()))
        .collect();
    for name in vars.keys() {
        if let Some(bn) = name.strip_suffix(".running_mean") {
            out.push((
                format!("{bn}.num_batches_tracked"),
                Tensor::zeros([], (Kind::Int64, tch::Device::Cpu)),
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Tensor::write_safetensors(&out, path).map_err(|source| WeightsError::Io {
        file: path.display().to_string(),
        source,
    })
}
