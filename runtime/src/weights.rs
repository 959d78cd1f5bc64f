//! Loading and saving weights as safetensors, by torchvision `state_dict` name.
//!
//! [`load`] checks the whole file before it copies anything. The check is the compiler's
//! [`archc::weights::plan`] (which `archc export onnx` uses too): every missing, unexpected or
//! mis-shaped tensor is listed in one [`WeightsError::Mismatch`], with the expected and found
//! shapes. torchvision's `*.num_batches_tracked` counters are accepted and ignored. A
//! grouped-form checkpoint, such as torchvision's, also loads into the `concat` and `split`
//! forms: [`archc::weights`] documents how each path's tensor is sliced from the grouped one.

use archc::weights::Source;
use std::collections::BTreeMap;
use std::path::Path;
use tch::nn::VarStore;
use tch::{Kind, Tensor};

/// A tensor name with its shape.
pub type Named = (String, Vec<i64>);

/// Why weights could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// The file and the network disagree; nothing was copied.
    #[error("{}", archc::weights::mismatch_message(.file, .missing, .unexpected, .misshaped))]
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
    let want: Vec<Named> = vars.iter().map(|(n, t)| (n.clone(), t.size())).collect();
    let shapes: BTreeMap<String, Vec<i64>> =
        file.iter().map(|(n, t)| (n.clone(), t.size())).collect();
    let plan =
        archc::weights::plan(&file_name, &want, &shapes).map_err(|m| WeightsError::Mismatch {
            file: m.file,
            missing: m.missing,
            unexpected: m.unexpected,
            misshaped: m.misshaped,
        })?;
    tch::no_grad(|| {
        for (name, source) in &plan.steps {
            let mut var = vars[name].shallow_clone();
            match source {
                Source::Direct => var.copy_(&file[name]),
                Source::Whole { from } => var.copy_(&file[from]),
                Source::Slice { from, dim, index } => {
                    let dim = *dim as i64;
                    let len = var.size()[dim as usize];
                    var.copy_(&file[from].narrow(dim, index * len, len))
                }
                Source::Zero => {
                    let _ = var.zero_();
                }
            }
        }
    });
    Ok(Loaded {
        direct: plan.direct,
        mapped: plan.mapped,
        ignored: plan.ignored,
    })
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
