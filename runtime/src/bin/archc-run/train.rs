//! `archc-run train` and `archc-run plot`.

use crate::{Fail, compile, headline, threads};
use archc_runtime::checkpoint::{RunDir, write_bytes_atomic};
use archc_runtime::curves;
use archc_runtime::data::{self, Loader};
use archc_runtime::recipe::{Precision, Recipe};
use archc_runtime::train::{
    EpochRecord, FitOptions, Observer, Outcome, Progress, TrainError, Trainer,
};
use archc_runtime::{Network, parse_device};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tch::nn::VarStore;

/// Train a spec on a data folder with a recipe; flags override the recipe.
///
/// The data folder holds CIFAR-10 (data_batch_1.bin … test_batch.bin), CIFAR-100 (train.bin,
/// test.bin) or an ImageFolder tree (train/CLASS/*.png|jpg and val/ or test/). The run folder
/// (--out) gets checkpoints (after every epoch; `--resume` continues from the latest),
/// metrics.jsonl, curves.svg, classes.txt, recipe.toml and, at the end, model.safetensors
/// (torchvision names). Ctrl-C finishes the current step, writes a checkpoint and exits with 130.
/// The process keeps the memory it frees (glibc's heap, never trimmed), so that each step reuses
/// the last step's pages instead of faulting in fresh ones; its resident memory stays at its peak.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The spec file.
    spec: PathBuf,
    /// The data folder.
    #[arg(long)]
    data: PathBuf,
    /// The recipe (TOML); defaults for every key it does not set.
    #[arg(long)]
    recipe: Option<PathBuf>,
    /// Override a spec parameter: `--set C=8`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// The run folder [default: runs/NETWORK].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in --out from its latest checkpoint.
    #[arg(long)]
    resume: bool,
    /// `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Number type: fp32, or bf16 mixed precision (overrides the recipe).
    #[arg(long, value_enum)]
    precision: Option<PrecisionArg>,
    /// Train in channels-last memory order (overrides the recipe's `channels_last`).
    #[arg(long, value_name = "BOOL")]
    channels_last: Option<bool>,
    /// Epochs (overrides the recipe).
    #[arg(long)]
    epochs: Option<u64>,
    /// Images per step (overrides the recipe).
    #[arg(long)]
    batch: Option<usize>,
    /// Peak learning rate (overrides the recipe).
    #[arg(long)]
    lr: Option<f64>,
    /// Seed of initialisation, data order and augmentation (overrides the recipe).
    #[arg(long)]
    seed: Option<u64>,
    /// Loader worker threads (overrides the recipe; 0: load on the training thread).
    #[arg(long)]
    workers: Option<usize>,
    /// Intra-op threads for CPU work (default: libtorch's choice).
    #[arg(long)]
    threads: Option<i32>,
    /// Also write a checkpoint every this many steps (one is written after every epoch).
    #[arg(long, value_name = "STEPS")]
    checkpoint_every: Option<u64>,
    /// Stop after this many steps in all (with a checkpoint); `--resume` continues.
    #[arg(long, value_name = "STEPS")]
    max_steps: Option<u64>,
    /// Fail (exit 1) unless the final test accuracy reaches this many percent.
    #[arg(long, value_name = "PERCENT")]
    min_accuracy: Option<f64>,
    /// One line per epoch even on a terminal (no progress bars).
    #[arg(long)]
    plain: bool,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum PrecisionArg {
    Fp32,
    Bf16,
}

/// The recipe with the flags applied.
fn recipe(args: &TrainArgs) -> Result<Recipe, Fail> {
    let mut r = match &args.recipe {
        Some(p) => Recipe::from_file(p).map_err(|e| Fail::Input(e.to_string()))?,
        None => Recipe::default(),
    };
    if let Some(p) = args.precision {
        r.precision = match p {
            PrecisionArg::Fp32 => Precision::Fp32,
            PrecisionArg::Bf16 => Precision::Bf16,
        };
    }
    if let Some(cl) = args.channels_last {
        r.channels_last = cl;
    }
    if let Some(e) = args.epochs {
        r.epochs = e;
    }
    if let Some(b) = args.batch {
        r.batch = b;
    }
    if let Some(lr) = args.lr {
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(Fail::Input(format!(
                "--lr {lr}: expected a positive number"
            )));
        }
        r.lr.base = lr;
    }
    if let Some(s) = args.seed {
        r.seed = s;
    }
    if let Some(w) = args.workers {
        r.data.workers = Some(w);
    }
    r.validate().map_err(|(_, m)| Fail::Input(m))?;
    Ok(r)
}

/// Progress bars on a terminal, one line per epoch otherwise; Ctrl-C; the curves' SVG.
struct Watch {
    bar: Option<ProgressBar>,
    fancy: bool,
    epochs: u64,
    stop: Arc<AtomicBool>,
    run: RunDir,
    title: String,
}

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

fn epoch_line(r: &EpochRecord, epochs: u64) -> String {
    let test = match (r.test_acc, r.test_top5) {
        (Some(a), Some(t5)) => format!(
            "  test loss {:.4} acc {} (top-5 {})",
            r.test_loss.unwrap_or(f64::NAN),
            pct(a),
            pct(t5)
        ),
        _ => String::new(),
    };
    format!(
        "epoch {}/{epochs}  loss {:.4}  acc {}{test}  lr {:.4}  {:.0} img/s  {:.1} s",
        r.epoch,
        r.train_loss,
        pct(r.train_acc),
        r.lr,
        r.images_per_s,
        r.seconds
    )
}

impl Observer for Watch {
    fn epoch_start(&mut self, epoch: u64, epochs: u64, batches: u64, from: u64) {
        self.epochs = epochs;
        if self.fancy {
            let bar = ProgressBar::new(batches);
            bar.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("epoch {epoch}/{epochs}"));
            bar.set_position(from);
            self.bar = Some(bar);
        }
    }

    fn step(&mut self, p: &Progress) {
        if let Some(bar) = &self.bar {
            bar.set_position(p.batch);
            bar.set_message(format!(
                "loss {:.4} acc {} lr {:.4} {:.0} img/s",
                p.loss,
                pct(p.acc),
                p.lr,
                p.images_per_s
            ));
        }
    }

    fn epoch_end(&mut self, r: &EpochRecord, history: &[EpochRecord]) {
        let epochs = self.epochs;
        match self.bar.take() {
            Some(bar) => bar.finish_with_message(epoch_line(r, epochs)),
            None => println!("{}", epoch_line(r, epochs)),
        }
        self.write_svg(history);
    }

    fn stop(&mut self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

impl Watch {
    fn write_svg(&self, history: &[EpochRecord]) {
        let runs = [curves::Run {
            label: self.title.clone(),
            epochs: history,
        }];
        match curves::svg(&self.title, &runs) {
            Ok(svg) => {
                if let Err(e) = write_bytes_atomic(&self.run.file("curves.svg"), svg.as_bytes()) {
                    eprintln!("warning: {e}");
                }
            }
            Err(e) => eprintln!("warning: curves.svg: {e}"),
        }
    }
}

/// The final table: every epoch (at most 25 rows, evenly spaced, the last included).
fn table(history: &[EpochRecord]) {
    println!(
        "\n{:>6} {:>10} {:>9} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "epoch",
        "train loss",
        "train acc",
        "test loss",
        "test acc",
        "top-5",
        "lr",
        "img/s",
        "seconds"
    );
    let n = history.len();
    let every = n.div_ceil(25).max(1);
    for (i, r) in history.iter().enumerate() {
        if i % every != 0 && i + 1 != n {
            continue;
        }
        let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
        println!(
            "{:>6} {:>10.4} {:>9} {:>10} {:>9} {:>9} {:>9.5} {:>9.0} {:>8.1}",
            r.epoch,
            r.train_loss,
            pct(r.train_acc),
            opt(r.test_loss, &|v| format!("{v:.4}")),
            opt(r.test_acc, &pct),
            opt(r.test_top5, &pct),
            r.lr,
            r.images_per_s,
            r.seconds
        );
    }
}

/// Runs `archc-run train`.
pub fn run(args: TrainArgs) -> Result<(), Fail> {
    let recipe = recipe(&args)?;
    let compiled = compile(&args.spec, &args.set, None)?;
    let device = parse_device(&args.device).map_err(|e| Fail::Input(e.to_string()))?;
    threads(args.threads);
    // Every step allocates and frees the same large buffers: keeping them in the process spares
    // the page faults (BENCHMARKS.md, "training step against PyTorch eager"). Not glibc: no-op.
    let _ = archc_runtime::fast::keep_freed_memory();
    let [c, h, w] = compiled.model.input;
    let input = [c as usize, h as usize, w as usize];
    let classes = compiled.output()[0] as usize;
    let input_err = |e: &dyn std::fmt::Display| Fail::Input(e.to_string());
    let splits = data::open(&args.data, input[0]).map_err(|e| input_err(&e))?;
    for d in [&splits.train, &splits.test] {
        d.check_fits(classes, input[0]).map_err(|e| input_err(&e))?;
    }
    let class_names = splits.train.classes().to_vec();
    let format = splits.format;
    let workers = |l: Loader| match recipe.data.workers {
        Some(n) => l.workers(n),
        None => l,
    };
    let train = workers(
        recipe
            .train_loader(splits.train, input)
            .prefetch(recipe.data.prefetch),
    );
    let test = workers(Loader::new(
        Arc::new(splits.test),
        recipe.eval_transform(input),
        recipe.batch.max(256),
    ));
    if train.is_empty() {
        return Err(Fail::Input(format!(
            "{}: {} training images make no batch of {}",
            args.data.display(),
            train.dataset().len(),
            recipe.batch
        )));
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| Path::new("runs").join(&compiled.model.name));
    let run = RunDir::create(&out).map_err(|e| input_err(&e))?;
    let latest = run.latest().map_err(|e| input_err(&e))?;
    tch::manual_seed(recipe.seed as i64);
    let mut vs = VarStore::new(device);
    let net = Network::new(&vs.root(), &compiled);
    if net.output_shape().len() != 1 {
        return Err(Fail::Input(format!(
            "{}: the network ends without `fc -> classes` (its output is {:?} per image); training a classifier needs one",
            args.spec.display(),
            net.output_shape()
        )));
    }
    let mut trainer = match (&latest, args.resume) {
        (Some(ck), true) => {
            let t =
                Trainer::resume(&mut vs, &recipe, train.len(), ck).map_err(|e| input_err(&e))?;
            let s = t.state();
            println!(
                "resuming {} at epoch {}, batch {}/{} (step {})",
                ck.display(),
                s.epoch + 1,
                s.batch,
                s.batches,
                s.step
            );
            t
        }
        (None, true) => {
            return Err(Fail::Input(format!(
                "{}: no checkpoint to resume from (no checkpoints/LATEST)",
                out.display()
            )));
        }
        (Some(_), false) => {
            return Err(Fail::Input(format!(
                "{} already holds a run's checkpoints: --resume continues it, or choose another --out",
                out.display()
            )));
        }
        (None, false) => Trainer::new(&vs, &recipe, train.len()),
    };
    let names = class_names.join("\n") + "\n";
    write_bytes_atomic(&run.file("classes.txt"), names.as_bytes()).map_err(|e| input_err(&e))?;
    write_bytes_atomic(&run.file("recipe.toml"), recipe.to_toml().as_bytes())
        .map_err(|e| input_err(&e))?;
    println!(
        "{}; {} ({}): {} train / {} test images, {} classes; device {:?}, {} threads, {:?}; {} epochs of {} batches of {}",
        headline(&compiled),
        args.data.display(),
        format,
        train.dataset().len(),
        test.dataset().len(),
        class_names.len(),
        device,
        tch::get_num_threads(),
        recipe.precision,
        recipe.epochs,
        train.len(),
        recipe.batch
    );
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second Ctrl-C exits at once.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }
    let mut watch = Watch {
        bar: None,
        epochs: recipe.epochs,
        fancy: !args.plain && std::io::stdout().is_terminal(),
        stop: stop.clone(),
        run: run.clone(),
        title: format!("{} on {}", compiled.model.name, args.data.display()),
    };
    let opts = FitOptions {
        run: Some(run.clone()),
        checkpoint_every: args.checkpoint_every,
        max_steps: args.max_steps,
    };
    let outcome = trainer
        .fit(&vs, &net, &train, Some(&test), &opts, &mut watch)
        .map_err(|e| match e {
            // Training that fails is a failed check; the rest is bad input (data, files).
            TrainError::Diverged { .. } => Fail::Check(e.to_string()),
            e => input_err(&e),
        })?;
    let s = trainer.state();
    if let Some(bar) = watch.bar.take() {
        bar.abandon();
    }
    if outcome == Outcome::Stopped {
        let msg = format!(
            "stopped at epoch {}, batch {}/{} (step {}); checkpoint in {}; continue with --resume",
            s.epoch + 1,
            s.batch,
            s.batches,
            s.step,
            out.join("checkpoints").display()
        );
        if stop.load(Ordering::SeqCst) {
            return Err(Fail::Interrupted(format!("interrupted: {msg}")));
        }
        println!("{msg}");
        return Ok(());
    }
    watch.write_svg(&s.history);
    table(&s.history);
    let last = s.history.last().and_then(|r| r.test_acc);
    println!(
        "\nfinal test accuracy {}; weights in {}, curves in {}",
        last.map_or("-".into(), pct),
        run.file("model.safetensors").display(),
        run.file("curves.svg").display()
    );
    if let (Some(min), Some(acc)) = (args.min_accuracy, last) {
        if 100.0 * acc < min {
            return Err(Fail::Check(format!(
                "test accuracy {} is below --min-accuracy {min}%",
                pct(acc)
            )));
        }
    }
    Ok(())
}

/// Draw the learning curves of runs into one SVG (three panels: training loss, test accuracy,
/// learning rate), to compare variants.
#[derive(Args, Debug)]
pub struct PlotArgs {
    /// Run folders (with metrics.jsonl) or metrics.jsonl files; `LABEL=PATH` names a run.
    #[arg(required = true)]
    runs: Vec<String>,
    /// The SVG file to write.
    #[arg(long, short)]
    out: PathBuf,
    /// The picture's title.
    #[arg(long, default_value = "learning curves")]
    title: String,
}

/// Runs `archc-run plot`.
pub fn run_plot(args: PlotArgs) -> Result<(), Fail> {
    let mut loaded = Vec::new();
    for spec in &args.runs {
        let (label, path) = match spec.split_once('=') {
            Some((l, p)) => (l.to_string(), PathBuf::from(p)),
            None => {
                let p = PathBuf::from(spec);
                let l = if p.is_dir() {
                    p.file_name()
                } else {
                    p.parent().and_then(|d| d.file_name())
                }
                .map_or(spec.clone(), |n| n.to_string_lossy().into_owned());
                (l, p)
            }
        };
        let file = if path.is_dir() {
            path.join("metrics.jsonl")
        } else {
            path
        };
        let epochs = curves::read_metrics(&file).map_err(Fail::Input)?;
        loaded.push((label, epochs));
    }
    let runs: Vec<curves::Run> = loaded
        .iter()
        .map(|(l, e)| curves::Run {
            label: l.clone(),
            epochs: e,
        })
        .collect();
    let svg = curves::svg(&args.title, &runs).map_err(Fail::Input)?;
    std::fs::write(&args.out, svg)
        .map_err(|e| Fail::Input(format!("{}: {e}", args.out.display())))?;
    println!("wrote {}", args.out.display());
    Ok(())
}
