//! Training speed: our train step (`archc_runtime::train::Trainer::step`: forward in train mode,
//! cross-entropy, backward, SGD with momentum and weight decay) against PyTorch eager on the same
//! network (torchvision's resnext50_32x4d, whose variables ours share by name), the same libtorch
//! and thread count, in one run, fp32 and bf16 mixed precision (PyTorch: `torch.autocast`).
//! Next to it, the data loader alone (decoding and augmentation on its worker threads) in
//! images per second against the training step's, for the digits (ImageFolder of PNGs), a
//! CIFAR-format file and ImageNet-sized JPEGs (random-resized crop to 224).
//!
//! Run with `scripts/bench-runtime.sh` (CPU) or on a GPU box through `scripts/gpu-run.sh`
//! (CUDA: also the achieved TFLOP/s against the GPU's peak). `--device cpu|cuda|auto` (or
//! `ARCHC_DEVICE`), `ARCHC_TRAIN_BATCH` (default 8; CUDA: 64), `ARCHC_TRAIN_REPEAT` (timed
//! steps, default 5). With `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000` in the
//! environment both processes keep freed memory, and the table says so. Writes its table into
//! BENCHMARKS.md (section train-cpu or train-cuda).

mod common;

use archc_runtime::Network;
use archc_runtime::data::{self, Dataset, Image, Loader};
use archc_runtime::recipe::{Precision, Recipe};
use archc_runtime::train::Trainer;
use common::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const WARMUP: usize = 2;

/// PyTorch's side: scripts/torch_train_step.py in `--serve` mode.
struct TorchServer {
    server: PythonServer,
    device_name: String,
}

impl TorchServer {
    fn start(python: &Path, batch: i64, size: i64, device: &str, threads: i32) -> Option<Self> {
        let mut args = vec!["--serve".to_string()];
        args.extend(flags(&[
            ("--device", device.to_string()),
            ("--batch", batch.to_string()),
            ("--size", size.to_string()),
            ("--threads", threads.to_string()),
        ]));
        let server = PythonServer::start(python, "torch_train_step.py", &args)?;
        let device_name = server.ready["device_name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        Some(TorchServer {
            server,
            device_name,
        })
    }

    /// One PyTorch step's milliseconds.
    fn step(&mut self, precision: &str) -> Option<f64> {
        self.server.ask(precision)?.trim().parse().ok()
    }
}

/// Our side: a network and its trainer.
struct Ours {
    _vs: VarStore,
    net: Network,
    trainer: Trainer,
    x: Tensor,
    y: Tensor,
}

impl Ours {
    fn new(
        compiled: &archc::Compiled,
        precision: Precision,
        channels_last: bool,
        batch: i64,
        device: Device,
    ) -> Ours {
        let [c, h, w] = compiled.model.input.map(|v| v as i64);
        tch::manual_seed(0);
        let vs = VarStore::new(device);
        let net = Network::new(&vs.root(), compiled);
        let recipe = Recipe {
            precision,
            channels_last,
            ..Recipe::default()
        };
        let trainer = Trainer::new(&vs, &recipe, 1000);
        let classes = compiled.output()[0] as i64;
        Ours {
            _vs: vs,
            net,
            trainer,
            x: Tensor::randn([batch, c, h, w], (Kind::Float, device)),
            y: Tensor::randint(classes, [batch], (Kind::Int64, device)),
        }
    }

    /// One step's milliseconds (the step reads the loss back, which waits for the device).
    fn step(&mut self) -> f64 {
        let s = Instant::now();
        self.trainer.step(&self.net, &self.x, &self.y);
        s.elapsed().as_secs_f64() * 1e3
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// Images per second of the loader alone over `epochs` epochs.
fn loader_rate(loader: &Loader, epochs: u64) -> f64 {
    let start = Instant::now();
    let mut n = 0;
    for e in 0..epochs {
        for b in loader.epoch(e, 0) {
            n += b.expect("bench data loads").labels.size()[0];
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// Training images per second of a network on random data shaped like the loader's.
fn step_rate(compiled: &archc::Compiled, batch: i64, device: Device, steps: usize) -> f64 {
    let mut ours = Ours::new(compiled, Precision::Fp32, false, batch, device);
    for _ in 0..WARMUP {
        ours.step();
    }
    let ms: f64 = (0..steps).map(|_| ours.step()).sum();
    steps as f64 * batch as f64 / (ms * 1e-3)
}

/// A folder of `n` ImageNet-sized JPEGs (500×375) in two classes, made once.
fn jpeg_folder(n: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("archc-bench-jpeg-{n}"));
    if dir.join("val/b").is_dir() {
        return dir;
    }
    for split in ["train", "val"] {
        for (k, class) in ["a", "b"].iter().enumerate() {
            let d = dir.join(split).join(class);
            std::fs::create_dir_all(&d).expect("temp dir");
            for i in 0..n / 2 {
                let img = image::RgbImage::from_fn(500, 375, |x, y| {
                    let v = ((x * 3 + y * 5 + i as u32 * 17 + k as u32 * 31) % 256) as u8;
                    image::Rgb([v, v.wrapping_mul(3), 255 - v])
                });
                img.save(d.join(format!("{i}.jpg"))).expect("write a JPEG");
            }
        }
    }
    dir
}

fn main() {
    let Some((device, device_name)) = common::device_from_args() else {
        return;
    };
    let cuda = matches!(device, Device::Cuda(_));
    let batch: i64 = env_or("ARCHC_TRAIN_BATCH", if cuda { 64 } else { 8 });
    let repeat: usize = env_or("ARCHC_TRAIN_REPEAT", 5);
    let size = 224;
    let torch_device = torch_device(device);
    let threads = tch::get_num_threads();
    let python = python();
    let spec = |rel: &str| {
        archc::compile_file(root().join("specs").join(rel), &Default::default())
            .expect("the shipped spec compiles")
    };
    let resnext = spec("resnext/resnext50_32x4d.arch");

    // Ours and PyTorch's take turns every few steps, so a change of the machine's speed hits
    // both sides alike.
    let configs = [
        ("fp32", Precision::Fp32, false),
        ("fp32-cl", Precision::Fp32, true),
        ("bf16", Precision::Bf16, false),
        ("bf16-cl", Precision::Bf16, true),
    ];
    let mut server = TorchServer::start(&python, batch, size, &torch_device, threads);
    let mut ours: Vec<Ours> = configs
        .iter()
        .map(|&(_, p, cl)| Ours::new(&resnext, p, cl, batch, device))
        .collect();
    let mut t: Vec<(Vec<f64>, Vec<f64>)> = vec![Default::default(); configs.len()];
    // In chunks of three steps per configuration, ours then PyTorch's, with a pause at each
    // switch: the other process's OpenMP threads spin for a while after their last parallel
    // region, and would otherwise take the cores from the first steps of the side that follows.
    let pause = || std::thread::sleep(std::time::Duration::from_millis(200));
    let total = WARMUP + repeat;
    let mut done = 0;
    while done < total {
        let n = 3.min(total - done);
        for (k, o) in ours.iter_mut().enumerate() {
            for i in 0..n {
                let ms = o.step();
                if done + i >= WARMUP {
                    t[k].0.push(ms);
                }
            }
        }
        pause();
        for (k, (name, _, _)) in configs.iter().enumerate() {
            for i in 0..n {
                let ms = server.as_mut().and_then(|s| s.step(name));
                if done + i >= WARMUP {
                    t[k].1.extend(ms);
                }
            }
        }
        pause();
        done += n;
    }
    let gpu_name = server
        .as_ref()
        .map(|s| s.device_name.clone())
        .unwrap_or_default();
    drop(server);
    drop(ours);
    let medians: Vec<(f64, Option<f64>)> = t
        .into_iter()
        .map(|(o, p)| (median(o).unwrap_or(f64::NAN), median(p)))
        .collect();
    eprintln!("train steps done");

    // Training ≈ 3× the forward pass (forward, and backward for activations and weights).
    let flops = 3.0 * resnext.report.total.macs as f64 * 2.0 * batch as f64;
    let tflops = |ms: f64| flops / (ms * 1e-3) / 1e12;
    let peak = gpu_peak_tflops(&gpu_name);
    let mut body = String::new();
    let (date, cpu) = (date(), cpu_name());
    let _ = writeln!(
        body,
        "Train step of resnext50_32x4d (ours: `Trainer::step` on the spec's `Network`; PyTorch: torchvision's model, eager, `torch.optim.SGD`), batch {batch}, 3×{size}×{size}, random data, SGD momentum 0.9 and weight decay 5e-4; device `{device:?}`{}, {threads} threads (both sides){}, libtorch from torch 2.11.0; median of {repeat} steps after {WARMUP} warm-up, the two sides taking turns every three steps per configuration; {date}, {}. Ratio = ours / PyTorch (below 1.00: we are faster). Rerun: `ARCHC_BENCHES=train_step scripts/bench-runtime.sh -- --device {device_name}`.\n",
        if gpu_name.is_empty() || gpu_name == "cpu" {
            String::new()
        } else {
            format!(" ({gpu_name})")
        },
        if std::env::var_os("MALLOC_MMAP_MAX_").is_some() {
            ", both processes keeping freed memory (glibc: `MALLOC_MMAP_MAX_=0`, heap never trimmed)"
        } else {
            ", glibc's default allocator settings"
        },
        if cuda { "GPU" } else { cpu.as_str() }
    );
    body.push_str(
        "| precision | ours | PyTorch eager (same run) | ratio | ours, TFLOP/s |\n|---|---:|---:|---:|---:|\n",
    );
    let labels = [
        "fp32",
        "fp32, channels-last (both)",
        "bf16 mixed (PyTorch: autocast)",
        "bf16 mixed, channels-last (both)",
    ];
    for (name, &(ours, torch)) in labels.iter().zip(&medians) {
        let t = tflops(ours);
        let tf = match (cuda, peak) {
            (true, Some(p)) => format!("{t:.1} ({:.1}% of {p:.0} peak bf16)", 100.0 * t / p),
            _ => format!("{t:.2}"),
        };
        let _ = writeln!(body, "| {name} | {} | {tf} |", versus(ours, torch));
    }
    let best = |k: &[usize]| {
        k.iter()
            .map(|&i| medians[i].0)
            .fold(f64::INFINITY, f64::min)
    };
    let plain = |i: usize| medians[i].1;
    let _ = writeln!(
        body,
        "\nOur best against PyTorch eager as it comes (NCHW): fp32 {}, bf16 {}.",
        ratio(best(&[0, 1]), plain(0)),
        ratio(best(&[2, 3]), plain(2))
    );

    // The loader alone against the training step, images per second.
    let mut loaders = String::new();
    let digits_dir = root().join("data/digits");
    if digits_dir.join("train").is_dir() {
        let recipe = Recipe::from_file(root().join("recipes/digits.toml")).expect("recipe");
        let digits = spec("digits/resnext_digits.arch");
        let splits = data::open(&digits_dir, 1).expect("digits");
        let l = Loader::new(
            Arc::new(splits.train),
            recipe.train_transform([1, 8, 8]),
            recipe.batch,
        )
        .shuffle(0);
        let (lr, sr) = (
            loader_rate(&l, 3),
            step_rate(&digits, recipe.batch as i64, device, 10),
        );
        let _ = writeln!(
            loaders,
            "| digits: 8×8 PNG files, decode + pad-crop ({} workers) | resnext_digits, batch {}, fp32 | {lr:.0} | {sr:.1} | {:.1} |",
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(8),
            recipe.batch,
            lr / sr
        );
    }
    {
        // CIFAR binary format: in memory, pad-crop and flip.
        let images: Vec<Image> = (0..2048)
            .map(|i| Image {
                c: 3,
                h: 32,
                w: 32,
                data: (0..3072).map(|k| ((k * 7 + i) % 256) as u8).collect(),
            })
            .collect();
        let labels = (0..2048).map(|i| (i % 10) as i64).collect();
        let classes = (0..10).map(|i| i.to_string()).collect();
        let d = Dataset::from_images("cifar", classes, images, labels);
        let recipe = Recipe::from_file(root().join("recipes/cifar10.toml")).expect("recipe");
        let l = Loader::new(Arc::new(d), recipe.train_transform([3, 32, 32]), 128).shuffle(0);
        let lr = loader_rate(&l, 2);
        let net = archc::compile_file(
            root().join("specs/cifar/resnext29_8x64d.arch"),
            &archc::Overrides {
                set: vec![("C".into(), "2".into())],
                ..Default::default()
            },
        )
        .expect("spec");
        let sr = step_rate(&net, if cuda { 128 } else { 16 }, device, 3);
        let _ = writeln!(
            loaders,
            "| CIFAR records in memory, pad-crop + flip | ResNeXt-29 (2×64d), batch {}, fp32 | {lr:.0} | {sr:.1} | {:.1} |",
            if cuda { 128 } else { 16 },
            lr / sr
        );
    }
    {
        let dir = jpeg_folder(64);
        let splits = data::open(&dir, 3).expect("jpeg folder");
        let recipe = Recipe::from_file(root().join("recipes/imagenet.toml")).expect("recipe");
        let l = Loader::new(
            Arc::new(splits.train),
            recipe.train_transform([3, 224, 224]),
            16,
        )
        .shuffle(0);
        let lr = loader_rate(&l, 2);
        let fastest = medians.iter().map(|m| m.0).fold(f64::INFINITY, f64::min);
        let sr = batch as f64 / (fastest * 1e-3);
        let _ = writeln!(
            loaders,
            "| ImageNet-sized JPEGs (500×375), decode + random-resized crop 224 + flip | resnext50_32x4d, batch {batch}, fastest of the above | {lr:.0} | {sr:.1} | {:.1} |",
            lr / sr
        );
    }
    body.push_str(
        "\nThe data loader alone (its worker threads, one per CPU up to 8) against the training step it feeds, images per second; a factor above 1 means the loader keeps ahead:\n\n| data | training step | loader, images/s | step, images/s | factor |\n|---|---|---:|---:|---:|\n",
    );
    body.push_str(&loaders);
    let section = if cuda { "train-cuda" } else { "train-cpu" };
    write_section(section, &body);
    println!("{body}");
}
