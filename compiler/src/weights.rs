//! The tensors a network's weights consist of, and how a checkpoint's tensors map onto them.
//!
//! [`expected`] lists, from the layer graph alone, every tensor a network holds: its name
//! (torchvision's `state_dict` name, `layer1.0.bn2.running_var`) and its shape. [`plan`] matches
//! a weights file's tensors (names and shapes only) against such a list. It either says where
//! each tensor comes from ([`Source`]) or refuses the file with one [`Mismatch`] that lists every
//! missing, unexpected or mis-shaped tensor, with both shapes. The runtime (`archc-runtime`'s
//! `weights::load`, with the variables of its `VarStore`) and `archc export onnx` (with
//! [`expected`]) both call [`plan`], so a file is accepted or refused the same way, with the same
//! listing. torchvision's `*.num_batches_tracked` counters are accepted and ignored.
//!
//! ## One checkpoint for all three block forms
//!
//! A grouped-form (paper Fig. 3c) checkpoint, such as torchvision's, also fits the `concat` (3b)
//! and `split` (3a) forms. Their tensors are named `layer{i}.{j}.paths.{p}.{leaf}`, and each one
//! is the slice `p` of the grouped tensor `layer{i}.{j}.{leaf}` along the one dimension where the
//! shapes differ:
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
//!
//! ```
//! let c = archc::compile_file("../specs/resnet/resnet18.arch", &Default::default()).unwrap();
//! let want = archc::weights::expected(&c.graph);
//! assert_eq!(want[0], ("conv1.weight".to_string(), vec![64, 3, 7, 7]));
//! let file: std::collections::BTreeMap<_, _> = want.iter().cloned().collect();
//! let plan = archc::weights::plan("r18.safetensors", &want, &file).unwrap();
//! assert_eq!(plan.direct, want.len());
//! ```

use crate::graph::{LayerGraph, Op};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

/// A tensor name with its shape.
pub type Named = (String, Vec<i64>);

/// Whether a tensor is a learned parameter or a buffer (batch-norm running statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A convolution's or fully connected layer's weight.
    Weight,
    /// A convolution's or fully connected layer's bias.
    Bias,
    /// A batch-norm's scale (`weight`).
    BnWeight,
    /// A batch-norm's shift (`bias`).
    BnBias,
    /// A batch-norm's running mean (a buffer).
    RunningMean,
    /// A batch-norm's running variance (a buffer).
    RunningVar,
}

impl Role {
    /// Whether `archc check` counts it under `buffers` rather than `params`.
    pub fn is_buffer(self) -> bool {
        matches!(self, Role::RunningMean | Role::RunningVar)
    }
}

fn dim(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Every tensor of the network with its role, in graph order: `{path}.weight` and `{path}.bias`
/// for convolutions and fully connected layers, `{path}.weight`, `.bias`, `.running_mean` and
/// `.running_var` for batch-norms.
pub fn tensors(g: &LayerGraph) -> Vec<(String, Vec<i64>, Role)> {
    let mut out = Vec::new();
    for (n, node) in g.nodes() {
        let p = &node.path;
        let input = g.input_shape(n);
        match node.op {
            Op::Conv { .. } => {
                let c = g.conv(n).expect("a conv node has a geometry");
                let weight = c.weight_shape().map(dim).to_vec();
                out.push((format!("{p}.weight"), weight, Role::Weight));
                if c.bias {
                    out.push((format!("{p}.bias"), vec![dim(c.cout)], Role::Bias));
                }
            }
            Op::BatchNorm => {
                let c = vec![dim(node.shape.c)];
                out.push((format!("{p}.weight"), c.clone(), Role::BnWeight));
                out.push((format!("{p}.bias"), c.clone(), Role::BnBias));
                out.push((format!("{p}.running_mean"), c.clone(), Role::RunningMean));
                out.push((format!("{p}.running_var"), c, Role::RunningVar));
            }
            Op::Linear { out: f_out, bias } => {
                let f_in = input.numel().map_or(i64::MAX, dim);
                out.push((format!("{p}.weight"), vec![dim(f_out), f_in], Role::Weight));
                if bias {
                    out.push((format!("{p}.bias"), vec![dim(f_out)], Role::Bias));
                }
            }
            _ => {}
        }
    }
    out
}

/// Every tensor of the network, named and shaped as the runtime's variables (graph order).
pub fn expected(g: &LayerGraph) -> Vec<Named> {
    tensors(g).into_iter().map(|(n, s, _)| (n, s)).collect()
}

/// For `layer1.0.paths.3.conv2.weight`: (`layer1.0.conv2.weight`, 3).
pub fn grouped_source(name: &str) -> Option<(String, i64)> {
    let (block, rest) = name.split_once(".paths.")?;
    let (index, leaf) = rest.split_once('.')?;
    Some((format!("{block}.{leaf}"), index.parse().ok()?))
}

/// Where one tensor of the network gets its value from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The file's tensor of the same name, as it is.
    Direct,
    /// Part `index` of the file's tensor `from`, cut into equal parts along `dim`.
    Slice {
        /// The grouped tensor's name in the file.
        from: String,
        /// The dimension that differs.
        dim: usize,
        /// Which part.
        index: i64,
    },
    /// A bias shared by the paths: path 0 takes the file's tensor `from` whole.
    Whole {
        /// The grouped tensor's name in the file.
        from: String,
    },
    /// A bias shared by the paths, for a path other than 0: zero.
    Zero,
}

/// How every tensor of the network gets its value, when the file fits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// (tensor of the network, its source), sorted by name.
    pub steps: Vec<(String, Source)>,
    /// Tensors copied by name.
    pub direct: usize,
    /// Path tensors taken from a grouped tensor.
    pub mapped: usize,
    /// `num_batches_tracked` counters skipped.
    pub ignored: usize,
}

/// A weights file that does not fit the network: every tensor that disagrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The file.
    pub file: String,
    /// Tensors of the network that the file lacks, with their shapes.
    pub missing: Vec<Named>,
    /// Tensors of the file that the network has no place for, with their shapes.
    pub unexpected: Vec<Named>,
    /// (name, expected shape, shape in the file).
    pub misshaped: Vec<(String, Vec<i64>, Vec<i64>)>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mismatch_message(
            &self.file,
            &self.missing,
            &self.unexpected,
            &self.misshaped,
        ))
    }
}

impl std::error::Error for Mismatch {}

/// The listing of a [`Mismatch`]: a summary line, then one line per tensor.
pub fn mismatch_message(
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

fn source(
    name: &str,
    want: &[i64],
    file: &BTreeMap<String, Vec<i64>>,
) -> Result<Source, Option<Vec<i64>>> {
    if let Some(got) = file.get(name) {
        return if got == want {
            Ok(Source::Direct)
        } else {
            Err(Some(got.clone()))
        };
    }
    let Some((src, index)) = grouped_source(name) else {
        return Err(None);
    };
    let Some(got) = file.get(&src) else {
        return Err(None);
    };
    if got.len() != want.len() {
        return Err(Some(got.clone()));
    }
    let diff: Vec<usize> = (0..got.len()).filter(|&k| got[k] != want[k]).collect();
    match diff.as_slice() {
        [] => Ok(if index == 0 {
            Source::Whole { from: src }
        } else {
            Source::Zero
        }),
        [k] if want[*k] > 0 && got[*k] % want[*k] == 0 && index < got[*k] / want[*k] => {
            Ok(Source::Slice {
                from: src,
                dim: *k,
                index,
            })
        }
        _ => Err(Some(got.clone())),
    }
}

/// Matches a file's tensors (`file`: name → shape) against the network's (`want`). Nothing is
/// read or copied: the caller carries out the returned [`Plan`]. `file_name` names the file in
/// the [`Mismatch`] listing, which is sorted by name.
pub fn plan(
    file_name: &str,
    want: &[Named],
    file: &BTreeMap<String, Vec<i64>>,
) -> Result<Plan, Mismatch> {
    let vars: BTreeMap<&str, &[i64]> = want.iter().map(|(n, s)| (n.as_str(), &s[..])).collect();
    let mut used = BTreeSet::new();
    let (mut missing, mut misshaped) = (Vec::new(), Vec::new());
    let mut out = Plan::default();
    for (&name, &shape) in &vars {
        match source(name, shape, file) {
            Ok(src) => {
                match &src {
                    Source::Direct => {
                        used.insert(name.to_string());
                        out.direct += 1;
                    }
                    Source::Slice { from, .. } | Source::Whole { from } => {
                        used.insert(from.clone());
                        out.mapped += 1;
                    }
                    Source::Zero => {
                        used.insert(grouped_source(name).map_or_else(String::new, |g| g.0));
                        out.mapped += 1;
                    }
                }
                out.steps.push((name.to_string(), src));
            }
            Err(None) => missing.push((name.to_string(), shape.to_vec())),
            Err(Some(got)) => {
                // Reported as mis-shaped, not also as unexpected.
                used.insert(match grouped_source(name) {
                    Some((src, _)) if !file.contains_key(name) => src,
                    _ => name.to_string(),
                });
                misshaped.push((name.to_string(), shape.to_vec(), got));
            }
        }
    }
    let mut unexpected = Vec::new();
    for (name, shape) in file {
        if used.contains(name) {
            continue;
        }
        if name.ends_with(".num_batches_tracked") {
            out.ignored += 1;
        } else {
            unexpected.push((name.clone(), shape.clone()));
        }
    }
    if missing.is_empty() && unexpected.is_empty() && misshaped.is_empty() {
        Ok(out)
    } else {
        Err(Mismatch {
            file: file_name.to_string(),
            missing,
            unexpected,
            misshaped,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(form: &str) -> crate::Compiled {
        crate::testing::shipped_in_form("resnext/resnext50_32x4d.arch", form)
    }

    #[test]
    fn counts_match_the_cost_report() {
        for form in ["grouped", "concat", "split"] {
            let c = compiled(form);
            let (mut params, mut buffers) = (0u64, 0u64);
            for (_, shape, role) in tensors(&c.graph) {
                let n: i64 = shape.iter().product();
                if role.is_buffer() {
                    buffers += n as u64;
                } else {
                    params += n as u64;
                }
            }
            assert_eq!(params, c.report.total.params, "{form}");
            assert_eq!(buffers, c.report.total.buffers, "{form}");
        }
    }

    #[test]
    fn a_grouped_checkpoint_fits_every_form() {
        let grouped: BTreeMap<String, Vec<i64>> =
            expected(&compiled("grouped").graph).into_iter().collect();
        for form in ["concat", "split"] {
            let want = expected(&compiled(form).graph);
            let p = plan("w", &want, &grouped).unwrap();
            assert_eq!(p.steps.len(), want.len(), "{form}");
            assert!(p.mapped > 0, "{form}");
        }
        let mut bad = grouped.clone();
        bad.remove("conv1.weight");
        bad.insert("fc.weight".to_string(), vec![10, 2048]);
        bad.insert("extra".to_string(), vec![1]);
        let e = plan("w", &expected(&compiled("split").graph), &bad).unwrap_err();
        assert_eq!(
            e.missing,
            vec![("conv1.weight".to_string(), vec![64, 3, 7, 7])]
        );
        assert_eq!(e.unexpected, vec![("extra".to_string(), vec![1])]);
        assert_eq!(
            e.misshaped,
            vec![("fc.weight".to_string(), vec![1000, 2048], vec![10, 2048])]
        );
    }
}
