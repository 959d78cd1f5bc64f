//! `archc export`: a spec, and optionally its weights, in a format other tools read. The work is
//! done by `archc::emit::onnx`; this module parses flags, reads and writes files and owns the
//! exit codes (0 ok, 1 the network breaks a budget (the file is still written, as `codegen`
//! still prints), 2 spec, weights, usage or output error).

use crate::args::Common;
use crate::compile::{compile, report, reported};
use crate::exit::Exit;
use archc::emit::onnx::{self, ExportError, Options};
use std::path::PathBuf;
use std::time::Instant;

/// `archc export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    #[command(subcommand)]
    format: Format,
}

#[derive(clap::Subcommand, Debug)]
enum Format {
    /// An ONNX model: the layer graph as ONNX operators, the weights as initializers.
    ///
    /// Node names are the graph's torchvision paths, initializers carry the weights' names
    /// (`layer1.0.conv1.weight`, `layer1.0.bn1.running_mean`), the input `input` is
    /// `[batch, C, H, W]` with a dynamic batch, and the output is `logits` `[batch, classes]`
    /// (`output` `[batch, C, H, W]` for a network without an fc).
    ///
    /// Without --weights the initializers come from a seeded initialisation (torchvision's
    /// scheme, seed 0): the file has the network's structure but is not trained, and its
    /// doc_string says so. With --weights, a safetensors file with torchvision's `state_dict`
    /// names must fit the network exactly (a grouped checkpoint also fits the concat and split
    /// forms); otherwise every missing, unexpected or mis-shaped tensor is listed and nothing is
    /// written.
    ///
    /// The file is written to a temporary file beside it, then renamed: never partly. Exit
    /// status: 0 written; 1 written, but the network breaks a budget (as `codegen`); 2 spec,
    /// weights, usage or output error (nothing written).
    Onnx(OnnxArgs),
}

/// `archc export onnx`.
#[derive(clap::Args, Debug)]
struct OnnxArgs {
    /// Spec file.
    spec: PathBuf,
    /// Weights: a safetensors file by torchvision `state_dict` names (f32; f16, bf16 and f64
    /// are converted to f32). Without it, a seeded initialisation (not trained).
    #[arg(long, value_name = "W.safetensors")]
    weights: Option<PathBuf>,
    /// Fold each batch-norm into the convolution(s) that feed it.
    #[arg(long)]
    fold_bn: bool,
    /// The ONNX opset to write (13 to 21).
    #[arg(long, value_name = "N", default_value_t = onnx::DEFAULT_OPSET,
          value_parser = clap::value_parser!(i64).range(*onnx::OPSETS.start()..=*onnx::OPSETS.end()))]
    opset: i64,
    /// The output file (written whole or not at all).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// Runs `archc export`.
pub fn run(a: &ExportArgs) -> Exit {
    match &a.format {
        Format::Onnx(a) => run_onnx(a),
    }
}

fn fail(e: impl std::fmt::Display) -> Exit {
    eprintln!("error: {e}");
    Exit::Error
}

fn run_onnx(a: &OnnxArgs) -> Exit {
    let start = Instant::now();
    // When some networks fail (reported), nothing is exported.
    let Some((nets, Exit::Ok)) = reported(compile(&a.spec, &a.common)) else {
        return Exit::Error;
    };
    let c = match nets.nets.as_slice() {
        [c] => c,
        many => {
            let names: Vec<&str> = many.iter().map(|c| c.model.name.as_str()).collect();
            return fail(format!(
                "`{}` defines {} networks ({}): choose one with --network",
                a.spec.display(),
                many.len(),
                names.join(", ")
            ));
        }
    };
    if let Err(e) = onnx::weight_bytes(&c.graph) {
        return fail(e);
    }
    let (values, source) = match &a.weights {
        Some(w) => match onnx::load_weights(&c.graph, w) {
            Ok((v, loaded)) => {
                let how = format!(
                    "from `{}` ({} by name, {} sliced for paths, {} counters ignored)",
                    w.display(),
                    loaded.direct,
                    loaded.mapped,
                    loaded.ignored
                );
                (v, how)
            }
            Err(ExportError::Mismatch(m)) => return fail(m),
            Err(e) => return fail(e),
        },
        None => (onnx::seeded(&c.graph, 0), onnx::seeded_note(0)),
    };
    let opts = Options {
        opset: a.opset,
        fold_bn: a.fold_bn,
    };
    let model = match onnx::model(c, values, &opts, &source) {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let nodes = model.graph.node.len();
    let (params, buffers) = onnx::initializer_counts(&model);
    let size = match onnx::write(&model, &a.output) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    eprintln!(
        "wrote {}: network `{}`, opset {}, {} nodes, {} initializers ({} params, {} buffers), weights {}; {:.1} MB in {:.2} s",
        a.output.display(),
        c.model.name,
        a.opset,
        nodes,
        model.graph.initializer.len(),
        params,
        buffers,
        if a.weights.is_some() {
            source.as_str()
        } else {
            "seeded (not trained)"
        },
        size as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    // Like `codegen`: the file is written, but a broken budget is reported and exits 1.
    let violations = c.violations();
    if violations.is_empty() {
        Exit::Ok
    } else {
        report(&nets.sources, violations);
        Exit::Budget
    }
}
