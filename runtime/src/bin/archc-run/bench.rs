//! `archc-run bench`: runs a spec's network on libtorch and times its forward pass.
//!
//! ```text
//! archc-run bench specs/resnext/resnext50_32x4d.arch --device auto --batch 8 --mode fast --dtype bf16
//! ```

use crate::{Fail, compile, headline};
use archc_runtime::fast::{Choice, Inference, Options, Runner};
use archc_runtime::{Network, parse_device, weights};
use clap::{Args, ValueEnum};
use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Instant;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

/// Time a spec's forward pass on CPU or CUDA (warm-up, then the median of the repeats),
/// printing images per second.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The spec file.
    spec: PathBuf,
    /// `cpu`, `cuda`, `cuda:N` or `auto` (CUDA when available).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Images per batch.
    #[arg(long, default_value_t = 8)]
    batch: i64,
    /// A safetensors file with the weights (torchvision names); random weights otherwise.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// `eager`: the network as built (batch-norm as its own op); `fast`: batch-norm folded,
    /// channels-last.
    #[arg(long, value_enum, default_value_t = Mode::Eager)]
    mode: Mode,
    /// Number type of the forward pass (`bf16` and `f16` need `--mode fast`).
    #[arg(long, value_enum, default_value_t = Dtype::F32)]
    dtype: Dtype,
    /// Untimed passes first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed passes; the median is reported.
    #[arg(long, default_value_t = 10)]
    repeat: usize,
    /// Intra-op threads for CPU work (default: libtorch's choice).
    #[arg(long)]
    threads: Option<i32>,
    /// Override a spec parameter: `--set C=8`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Run at another input size, e.g. `3x320x320`.
    #[arg(long, value_name = "CxHxW")]
    input: Option<String>,
    /// Keep freed memory in the process (glibc's heap, never trimmed), so that each pass reuses
    /// the previous pass's pages: faster at large batches, resident memory stays at its peak.
    #[arg(long)]
    keep_freed_memory: bool,
    /// With `--mode fast` on the CPU: libtorch's and oneDNN's allocations in a pass come from the
    /// C library again instead of the cache of buffers earlier passes freed
    /// (`Options::buffer_cache`, on by default; this crate's own kernels use the cache either way).
    #[arg(long)]
    no_buffer_cache: bool,
    /// With `--mode fast` on CUDA: capture the pass as one CUDA graph and time its replays (one
    /// launch for the whole pass, as torch.compile's "reduce-overhead" mode does).
    #[arg(long)]
    cuda_graph: bool,
    /// With `--mode fast`: after the timed passes, profile `--repeat` more and print each plan
    /// step's median time (a step covers what the plan fused into it)
    #[arg(long)]
    profile: bool,
    /// With `--mode fast`: force one of the plan's kernel choices, `NAME=measure|always|never`
    /// (NAME one of grouped, winograd, stem, direct, pointwise, matmul, cudnn-fused); repeatable.
    /// `measure` (the default) times the alternative against oneDNN's per convolution.
    #[arg(long = "kernel", value_name = "NAME=CHOICE")]
    kernels: Vec<String>,
}

/// One of [`Options`]' kernel choices.
type Field = fn(&mut Options) -> &mut Choice;

/// The kernel choices `--kernel NAME=CHOICE` can force: each name, its field of [`Options`] and
/// what runs a step that takes it.
const KERNELS: [(&str, Field, Runner); 7] = [
    ("grouped", |o| &mut o.grouped_kernel, Runner::Grouped),
    ("winograd", |o| &mut o.winograd, Runner::Winograd),
    ("stem", |o| &mut o.stem_kernel, Runner::Stem),
    ("direct", |o| &mut o.direct_kernel, Runner::Direct),
    ("pointwise", |o| &mut o.pointwise_kernel, Runner::Pointwise),
    ("matmul", |o| &mut o.matmul, Runner::OneDnnMatmul),
    ("cudnn-fused", |o| &mut o.cudnn_fused, Runner::CudnnFused),
];

/// `options` with each `--kernel NAME=CHOICE` applied.
fn with_kernels(mut options: Options, kernels: &[String]) -> Result<Options, Fail> {
    for kv in kernels {
        let bad = || {
            let names: Vec<&str> = KERNELS.iter().map(|(name, ..)| *name).collect();
            Fail::Input(format!(
                "--kernel {kv}: expected NAME=measure|always|never, NAME one of {}",
                names.join(", ")
            ))
        };
        let (name, choice) = kv.split_once('=').ok_or_else(bad)?;
        let choice = match choice {
            "measure" => Choice::Measure,
            "always" => Choice::Always,
            "never" => Choice::Never,
            _ => return Err(bad()),
        };
        let (_, field, _) = KERNELS.iter().find(|(n, ..)| *n == name).ok_or_else(bad)?;
        *field(&mut options) = choice;
    }
    Ok(options)
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Eager,
    Fast,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    Bf16,
    F16,
}

/// Runs `archc-run bench`.
pub fn run(args: BenchArgs) -> Result<(), Fail> {
    if args.keep_freed_memory && !archc_runtime::fast::keep_freed_memory() {
        eprintln!("warning: --keep-freed-memory needs glibc; ignored");
    }
    let device = parse_device(&args.device).map_err(|e| Fail::Input(e.to_string()))?;
    if let Some(t) = args.threads {
        tch::set_num_threads(t);
    }
    let kind = match args.dtype {
        Dtype::F32 => Kind::Float,
        Dtype::Bf16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
    };
    if kind != Kind::Float && args.mode == Mode::Eager {
        return Err(Fail::Input(
            "--dtype bf16/f16 needs --mode fast".to_string(),
        ));
    }
    if args.batch < 1 || args.repeat < 1 {
        return Err(Fail::Input(
            "--batch and --repeat must be at least 1".to_string(),
        ));
    }
    if args.profile && (args.mode != Mode::Fast || args.cuda_graph) {
        return Err(Fail::Input(
            "--profile needs --mode fast (and times the plan's steps, not a CUDA graph)"
                .to_string(),
        ));
    }
    if args.cuda_graph && (args.mode != Mode::Fast || !device.is_cuda()) {
        return Err(Fail::Input(
            "--cuda-graph needs --mode fast and a CUDA --device".to_string(),
        ));
    }
    if !args.kernels.is_empty() && args.mode != Mode::Fast {
        return Err(Fail::Input("--kernel needs --mode fast".to_string()));
    }
    if args.no_buffer_cache && args.mode != Mode::Fast {
        return Err(Fail::Input(
            "--no-buffer-cache needs --mode fast".to_string(),
        ));
    }
    let options = with_kernels(
        Options {
            kind,
            channels_last: true,
            buffer_cache: !args.no_buffer_cache,
            ..Options::default()
        },
        &args.kernels,
    )?;
    let compiled = compile(&args.spec, &args.set, args.input.as_deref())?;
    let mut vs = VarStore::new(device);
    let net = Network::new(&vs.root(), &compiled);
    if let Some(w) = &args.weights {
        let report = weights::load(&mut vs, w).map_err(|e| Fail::Input(e.to_string()))?;
        eprintln!(
            "loaded {}: {} tensors by name, {} mapped to paths, {} counters ignored",
            w.display(),
            report.direct,
            report.mapped,
            report.ignored
        );
    }
    let [c, h, w] = compiled.model.input;
    let x = Tensor::randn(
        [args.batch, c as i64, h as i64, w as i64],
        (Kind::Float, device),
    );
    let fast = (args.mode == Mode::Fast).then(|| Inference::new(&net, options));
    let graph = match (&fast, args.cuda_graph) {
        (Some(f), true) => {
            Some(RefCell::new(f.capture(&x.size(), device).map_err(|e| {
                Fail::Input(format!("capturing the CUDA graph: {e}"))
            })?))
        }
        _ => None,
    };
    let forward = || {
        tch::no_grad(|| match (&graph, &fast) {
            (Some(g), _) => g
                .borrow_mut()
                .forward(&x)
                .unwrap_or_else(|e| panic!("replaying the CUDA graph: {e}")),
            (None, Some(f)) => f.forward(&x),
            (None, None) => net.forward_t(&x, false),
        })
    };
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    for _ in 0..args.warmup {
        let _ = forward();
    }
    sync();
    let mut times = Vec::with_capacity(args.repeat);
    let mut out = None;
    for _ in 0..args.repeat {
        let t = Instant::now();
        let y = forward();
        sync();
        times.push(t.elapsed().as_secs_f64());
        out = Some(y);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let out = out.expect("repeat >= 1");
    println!(
        "{}, device {:?}, {} threads, mode {:?}, dtype {:?}{}",
        headline(&compiled),
        device,
        tch::get_num_threads(),
        args.mode,
        args.dtype,
        if graph.is_some() {
            ", one CUDA graph"
        } else {
            ""
        }
    );
    println!(
        "batch {} x {}x{}x{} -> {:?}: median {:.2} ms over {} runs (min {:.2} ms), {:.1} images/s",
        args.batch,
        c,
        h,
        w,
        out.size(),
        median * 1e3,
        times.len(),
        times[0] * 1e3,
        args.batch as f64 / median
    );
    if let Some(plan) = &fast {
        warn_unused_kernels(plan, &x.size(), options);
    }
    if let (true, Some(plan)) = (args.profile, &fast) {
        print_profile(plan, &x, args.repeat)?;
    }
    Ok(())
}

/// The kernels `options` forces on ([`Choice::Always`], the last `--kernel` for a name winning)
/// that no step of `plan` ran at `shape`: this CPU lacks what they need (AMX, AVX512-BF16,
/// CUDA), or no convolution has a shape they take.
fn unused_kernels(plan: &Inference, shape: &[i64], mut options: Options) -> Vec<&'static str> {
    let Some(ran) = plan.runners(shape) else {
        return Vec::new();
    };
    KERNELS
        .iter()
        .filter(|(_, field, runner)| {
            *field(&mut options) == Choice::Always && !ran.contains(runner)
        })
        .map(|(name, ..)| *name)
        .collect()
}

/// Says on stderr which kernels forced with `--kernel NAME=always` ran nowhere.
fn warn_unused_kernels(plan: &Inference, shape: &[i64], options: Options) {
    for name in unused_kernels(plan, shape, options) {
        eprintln!(
            "warning: --kernel {name}=always: no step of this plan ran the {name} kernel (this \
             CPU or device lacks what it needs, or no convolution has a shape it takes), so the \
             times are the plan's without it"
        );
    }
}

/// Profiles `repeat` passes of `plan` on `x` and prints each step's median time and share.
fn print_profile(plan: &Inference, x: &Tensor, repeat: usize) -> Result<(), Fail> {
    let mut runs = Vec::with_capacity(repeat);
    for _ in 0..repeat {
        let (_, steps) = plan
            .profile(x)
            .map_err(|e| Fail::Input(format!("profiling the plan: {e}")))?;
        runs.push(steps);
    }
    let median = |i: usize| {
        let mut t: Vec<f64> = runs.iter().map(|r| r[i].seconds).collect();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let medians: Vec<f64> = (0..runs[0].len()).map(median).collect();
    let total: f64 = medians.iter().sum();
    println!(
        "\nper step, median of {repeat} profiled passes (sum {:.2} ms):",
        total * 1e3
    );
    println!(
        "{:>4}  {:>8}  {:>6}  {:<22}  step",
        "#", "ms", "share", "output"
    );
    for (i, (step, t)) in runs[0].iter().zip(&medians).enumerate() {
        println!(
            "{i:>4}  {:>8.3}  {:>5.1}%  {:<22}  {}",
            t * 1e3,
            100.0 * t / total,
            format!("{:?}", step.shape),
            step.step
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_choices_are_parsed_and_bad_ones_refused() {
        let set = |v: &[&str]| -> Vec<String> { v.iter().map(|s| s.to_string()).collect() };
        let o = with_kernels(
            Options::default(),
            &set(&["pointwise=never", "direct=always", "cudnn-fused=never"]),
        )
        .unwrap_or_else(|_| panic!("valid choices"));
        assert_eq!(o.pointwise_kernel, Choice::Never);
        assert_eq!(o.direct_kernel, Choice::Always);
        assert_eq!(o.cudnn_fused, Choice::Never);
        assert_eq!(o.stem_kernel, Choice::Measure);
        for bad in ["pointwise", "pointwise=sometimes", "fft=always", "=never"] {
            match with_kernels(Options::default(), &set(&[bad])) {
                Err(Fail::Input(message)) => assert!(message.contains(bad), "{message}"),
                _ => panic!("{bad} was accepted"),
            }
        }
    }

    /// A kernel forced on where it cannot run is reported; one that ran, or one not forced, is
    /// not. cuDNN never runs on the CPU; oneDNN's convolution runs every fp32 convolution of a
    /// plan whose kernels are all off.
    #[test]
    fn a_forced_kernel_that_ran_nowhere_is_named() {
        let spec =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../specs/resnet/resnet18.arch");
        let compiled = compile(&spec, &[], Some("3x32x32")).unwrap_or_else(|_| panic!("resnet18"));
        let vs = VarStore::new(Device::Cpu);
        let net = Network::new(&vs.root(), &compiled);
        let kernels: Vec<String> = [
            "cudnn-fused=always",
            "grouped=never",
            "winograd=never",
            "matmul=never",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let options = with_kernels(
            Options {
                kind: Kind::Float,
                channels_last: true,
                ..Options::default()
            },
            &kernels,
        )
        .unwrap_or_else(|_| panic!("valid choices"));
        let plan = Inference::new(&net, options);
        let shape = [2, 3, 32, 32];
        assert_eq!(
            plan.runners(&shape),
            None,
            "nothing packed before the first pass"
        );
        assert!(unused_kernels(&plan, &shape, options).is_empty());
        plan.prepare(&shape, Device::Cpu).unwrap();
        let ran = plan.runners(&shape).unwrap();
        // resnet18: the stem, 16 3×3s and 3 projection shortcuts (the fp32 classifier is
        // libtorch's linear, not a choice)
        assert_eq!(ran.len(), 1 + 16 + 3, "{ran:?}");
        assert!(!ran.contains(&Runner::CudnnFused));
        assert_eq!(unused_kernels(&plan, &shape, options), vec!["cudnn-fused"]);
        // The last choice for a name wins: forced on, then off, it is not reported.
        let off = with_kernels(options, &["cudnn-fused=never".to_string()])
            .unwrap_or_else(|_| panic!("valid choice"));
        assert!(unused_kernels(&plan, &shape, off).is_empty());
        if plan.uses_onednn() {
            assert_eq!(
                ran.iter().filter(|r| **r == Runner::OneDnn).count(),
                20,
                "{ran:?}"
            );
        }
    }
}
