//! `archc-run eval` and `archc-run predict`.

use crate::{Fail, compile, threads};
use archc_runtime::data::{self, Loader};
use archc_runtime::recipe::Recipe;
use archc_runtime::{Network, parse_device, train, weights};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::nn::{ModuleT, VarStore};
use tch::{Kind, Tensor};

/// Measure a spec's accuracy with given weights on a data folder: top-1, top-5 and per class.
///
/// The normalisation (mean, std, centre crop) comes from --recipe, else from the recipe.toml of
/// the run the weights belong to (next to them, or two folders up from a checkpoint), else the
/// defaults.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// The spec file.
    spec: PathBuf,
    /// The weights (safetensors, torchvision names).
    #[arg(long)]
    weights: PathBuf,
    /// The data folder (as for `train`).
    #[arg(long)]
    data: PathBuf,
    /// Which split to measure.
    #[arg(long, value_enum, default_value_t = Split::Test)]
    split: Split,
    /// The recipe whose normalisation to use.
    #[arg(long)]
    recipe: Option<PathBuf>,
    /// Override a spec parameter: `--set C=8`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Images per batch.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Intra-op threads for CPU work.
    #[arg(long)]
    threads: Option<i32>,
    /// Fail (exit 1) unless top-1 accuracy reaches this many percent.
    #[arg(long, value_name = "PERCENT")]
    min_accuracy: Option<f64>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Split {
    Train,
    Test,
}

/// Classify image files (PNG or JPEG): the top-k classes with their probabilities.
///
/// Class names come from --classes, else the classes.txt of the run the weights belong to, else
/// they are class numbers. Normalisation as for `eval`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// The spec file.
    spec: PathBuf,
    /// The weights (safetensors, torchvision names).
    #[arg(long)]
    weights: PathBuf,
    /// The images.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// A file of class names, one per line.
    #[arg(long)]
    classes: Option<PathBuf>,
    /// The recipe whose normalisation to use.
    #[arg(long)]
    recipe: Option<PathBuf>,
    /// Override a spec parameter: `--set C=8`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// `cpu`, `cuda`, `cuda:N` or `auto`.
    #[arg(long, default_value = "auto")]
    device: String,
}

/// A file that belongs to the run of `weights`: next to it, or two folders up (a checkpoint).
fn run_file(weights: &Path, name: &str) -> Option<PathBuf> {
    let dir = weights.parent()?;
    [dir.join(name), dir.join("../..").join(name)]
        .into_iter()
        .find(|p| p.is_file())
}

fn find_recipe(explicit: &Option<PathBuf>, weights: &Path) -> Result<Recipe, Fail> {
    match explicit
        .clone()
        .or_else(|| run_file(weights, "recipe.toml"))
    {
        Some(p) => Recipe::from_file(&p).map_err(|e| Fail::Input(e.to_string())),
        None => Ok(Recipe::default()),
    }
}

/// The network with its weights loaded.
fn load(
    spec: &Path,
    set: &[String],
    weights_file: &Path,
    device: &str,
) -> Result<(archc::Compiled, VarStore, Network), Fail> {
    let compiled = compile(spec, set, None)?;
    let device = parse_device(device).map_err(|e| Fail::Input(e.to_string()))?;
    let mut vs = VarStore::new(device);
    let net = Network::new(&vs.root(), &compiled);
    weights::load(&mut vs, weights_file).map_err(|e| Fail::Input(e.to_string()))?;
    if net.output_shape().len() != 1 {
        return Err(Fail::Input(format!(
            "{}: the network ends without `fc -> classes` (its output is {:?} per image)",
            spec.display(),
            net.output_shape()
        )));
    }
    Ok((compiled, vs, net))
}

fn input_of(c: &archc::Compiled) -> [usize; 3] {
    let [c, h, w] = c.model.input;
    [c as usize, h as usize, w as usize]
}

/// Runs `archc-run eval`.
pub fn run_eval(args: EvalArgs) -> Result<(), Fail> {
    threads(args.threads);
    let recipe = find_recipe(&args.recipe, &args.weights)?;
    let (compiled, vs, net) = load(&args.spec, &args.set, &args.weights, &args.device)?;
    let input = input_of(&compiled);
    let bad = |e: &dyn std::fmt::Display| Fail::Input(e.to_string());
    let splits = data::open(&args.data, input[0]).map_err(|e| bad(&e))?;
    let set = match args.split {
        Split::Train => splits.train,
        Split::Test => splits.test,
    };
    set.check_fits(compiled.output()[0] as usize, input[0])
        .map_err(|e| bad(&e))?;
    let names = set.classes().to_vec();
    let mut loader = Loader::new(Arc::new(set), recipe.eval_transform(input), args.batch);
    if let Some(w) = recipe.data.workers {
        loader = loader.workers(w);
    }
    let e = train::evaluate(&net, &loader, vs.device()).map_err(|e| bad(&e))?;
    println!(
        "{} on {} ({:?} split, {} images): top-1 {:.2}%, top-5 {:.2}%, loss {:.4}",
        compiled.model.name,
        args.data.display(),
        args.split,
        e.images,
        100.0 * e.top1,
        100.0 * e.top5,
        e.loss
    );
    println!("\n{:<24} {:>8} {:>9}", "class", "images", "top-1");
    for (name, (ok, n)) in names.iter().zip(&e.per_class) {
        let acc = if *n > 0 {
            format!("{:.2}%", 100.0 * *ok as f64 / *n as f64)
        } else {
            "-".into()
        };
        println!("{name:<24} {n:>8} {acc:>9}");
    }
    if let Some(min) = args.min_accuracy {
        if 100.0 * e.top1 < min {
            return Err(Fail::Check(format!(
                "top-1 {:.2}% is below --min-accuracy {min}%",
                100.0 * e.top1
            )));
        }
    }
    Ok(())
}

/// Runs `archc-run predict`.
pub fn run_predict(args: PredictArgs) -> Result<(), Fail> {
    let recipe = find_recipe(&args.recipe, &args.weights)?;
    let (compiled, vs, net) = load(&args.spec, &args.set, &args.weights, &args.device)?;
    let input = input_of(&compiled);
    let outputs = compiled.output()[0] as usize;
    let names: Vec<String> = match args
        .classes
        .clone()
        .or_else(|| run_file(&args.weights, "classes.txt"))
    {
        Some(p) => std::fs::read_to_string(&p)
            .map_err(|e| Fail::Input(format!("{}: {e}", p.display())))?
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect(),
        None => Vec::new(),
    };
    let transform = recipe.eval_transform(input);
    let mut batch = Vec::new();
    for p in &args.images {
        let img = data::decode_file(p, input[0]).map_err(|e| Fail::Input(e.to_string()))?;
        batch.extend(transform.apply(&img, 0));
    }
    let n = args.images.len() as i64;
    let x = Tensor::from_slice(&batch)
        .view([n, input[0] as i64, input[1] as i64, input[2] as i64])
        .to_device(vs.device());
    let probs = tch::no_grad(|| net.forward_t(&x, false).softmax(-1, Kind::Float));
    let k = args.top.clamp(1, outputs) as i64;
    let (p, c) = probs.topk(k, -1, true, true);
    for (i, path) in args.images.iter().enumerate() {
        let p = Vec::<f32>::try_from(p.get(i as i64)).unwrap_or_default();
        let c = Vec::<i64>::try_from(c.get(i as i64)).unwrap_or_default();
        let top: Vec<String> = c
            .iter()
            .zip(&p)
            .map(|(c, p)| {
                let name = names
                    .get(*c as usize)
                    .cloned()
                    .unwrap_or_else(|| c.to_string());
                format!("{name} {:.2}%", 100.0 * p)
            })
            .collect();
        println!("{}: {}", path.display(), top.join(", "));
    }
    Ok(())
}
