//! The inference mode against `torch.compile` (inductor, `freezing=True`) on the same libtorch,
//! in one run: resnext50_32x4d and resnet50, fp32 and bf16, batch 1, 8 and 32. Also reports the
//! time each side takes to get ready (our plan building and weight packing; inductor's
//! compilation) and the achieved FLOP/s against the machine's measured peak
//! ([`archc_runtime::fast::peak`]: AMX where the CPU has it). Writes its table into BENCHMARKS.md.
//!
//! Run with `ARCHC_BENCHES=compiled scripts/bench-runtime.sh -- --device cpu`. The PyTorch side is
//! `scripts/torch_compiled.py`, one process per configuration that compiles once and then times
//! passes on request, so that our passes and inductor's alternate in rounds: a drift in the
//! machine's speed affects both alike. Settings: `ARCHC_BENCH_MODELS` (default
//! `resnext50_32x4d,resnet50`), `ARCHC_BENCH_BATCHES` (`1,8,32`), `ARCHC_BENCH_KINDS`
//! (`fp32,bf16`), `ARCHC_BENCH_ROUNDS` (5) and `ARCHC_BENCH_PASSES` (3 per side and round),
//! `ARCHC_COMPILE_MODE` (inductor's mode: `default` on the CPU; on CUDA `reduce-overhead`, CUDA
//! graphs, against our plan with cuDNN's autotuning on). With
//! `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1000000000000` in the environment both processes
//! keep freed memory (what [`archc_runtime::fast::keep_freed_memory`] does), and the table goes
//! into a section of its own; so does a CPU with AMX (`compiled-cpu-amx`, `-amx-kept`).

mod common;

use archc_runtime::Network;
use archc_runtime::fast::{self, Choice, Inference, Options};
use common::*;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// One `scripts/torch_compiled.py` process: a compiled model waiting for `time N` requests.
struct Compiled {
    server: PythonServer,
    compile_s: f64,
}

impl Compiled {
    fn start(
        python: &Path,
        model: &str,
        kind: &str,
        batch: i64,
        device: Device,
        threads: i32,
    ) -> Option<Compiled> {
        // CUDA: inductor with CUDA graphs, against our plan with cuDNN's autotuning.
        let default = if device.is_cuda() {
            "reduce-overhead"
        } else {
            "default"
        };
        let mode = std::env::var("ARCHC_COMPILE_MODE").unwrap_or_else(|_| default.into());
        let args = flags(&[
            ("--device", torch_device(device)),
            ("--model", model.to_string()),
            ("--dtype", kind.to_string()),
            ("--mode", mode),
            ("--batch", batch.to_string()),
            ("--threads", threads.to_string()),
        ]);
        let server = PythonServer::start(python, "torch_compiled.py", &args)?;
        let compile_s = server.ready["compile_s"].as_f64()?;
        Some(Compiled { server, compile_s })
    }

    /// The milliseconds of `passes` timed passes.
    fn time(&mut self, passes: usize) -> Option<Vec<f64>> {
        let line = self.server.ask(&format!("time {passes}"))?;
        let v: serde_json::Value = serde_json::from_str(&line).ok()?;
        v["ms"]
            .as_array()?
            .iter()
            .map(serde_json::Value::as_f64)
            .collect()
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn main() {
    let Some((device, device_name)) = common::device_from_args() else {
        return;
    };
    let cuda = device.is_cuda();
    if cuda {
        tch::Cuda::cudnn_set_benchmark(true);
    }
    // Milliseconds of one call, waiting for the GPU.
    let timed = |f: &dyn Fn() -> Tensor| {
        let t = Instant::now();
        let _ = f();
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
        t.elapsed().as_secs_f64() * 1e3
    };
    let mut gpu_name = String::new();
    let rounds: usize = env_or("ARCHC_BENCH_ROUNDS", 5);
    let passes: usize = env_or("ARCHC_BENCH_PASSES", 3);
    let threads = tch::get_num_threads();
    let python = python();
    let mut rows = String::new();
    let mut peaks = Vec::new();
    // On CUDA every configuration's torch.compile starts at once, before anything is timed:
    // inductor's compilations are CPU work (minutes in all, one after another), and a GPU box
    // has the cores to overlap them. On the CPU they run one at a time, each just before its
    // timing, so they never share the cores with a measurement.
    let mut ahead: HashMap<(String, String, i64), Option<Compiled>> = HashMap::new();
    if cuda {
        let configs: Vec<(String, String, i64)> = list("ARCHC_BENCH_KINDS", "fp32,bf16")
            .into_iter()
            .flat_map(|kind| {
                list("ARCHC_BENCH_MODELS", "resnext50_32x4d,resnet50")
                    .into_iter()
                    .flat_map(move |model| {
                        let kind = kind.clone();
                        list("ARCHC_BENCH_BATCHES", "1,8,32")
                            .into_iter()
                            .map(move |b| {
                                let b = b.parse().expect("ARCHC_BENCH_BATCHES: numbers");
                                (kind.clone(), model.clone(), b)
                            })
                    })
            })
            .collect();
        let python = &python;
        ahead = std::thread::scope(|s| {
            let started: Vec<_> = configs
                .into_iter()
                .map(|(kind, model, batch)| {
                    let handle = s.spawn({
                        let (kind, model) = (kind.clone(), model.clone());
                        move || Compiled::start(python, &model, &kind, batch, device, threads)
                    });
                    ((kind, model, batch), handle)
                })
                .collect();
            started
                .into_iter()
                .map(|(key, handle)| (key, handle.join().ok().flatten()))
                .collect()
        });
    }
    for kind_name in list("ARCHC_BENCH_KINDS", "fp32,bf16") {
        let kind = if kind_name == "bf16" {
            Kind::BFloat16
        } else {
            Kind::Float
        };
        let cpu_peak = if cuda {
            None
        } else {
            fast::peak(kind, usize::try_from(threads).unwrap_or(1), 2.0)
        };
        let unit = cpu_peak.map_or("", |p| p.unit);
        let mut peak = cpu_peak.map(|p| p.flops);
        for model in list("ARCHC_BENCH_MODELS", "resnext50_32x4d,resnet50") {
            let family = if model.starts_with("resnext") {
                "resnext"
            } else {
                "resnet"
            };
            let compiled = archc::compile_file(
                root().join(format!("specs/{family}/{model}.arch")),
                &Default::default(),
            )
            .expect("the shipped spec compiles");
            tch::manual_seed(0);
            let vs = VarStore::new(device);
            let net = Network::new(&vs.root(), &compiled);
            let options = Options {
                kind,
                ..Options::default()
            };
            let t = Instant::now();
            let plan = Inference::new(&net, options);
            let build_s = t.elapsed().as_secs_f64();
            let old = Inference::new(
                &net,
                Options {
                    onednn: false,
                    ..options
                },
            );
            // oneDNN for every convolution: what our grouped, Winograd, direct, stem and pointwise
            // kernels add.
            let onednn_only = (!cuda).then(|| {
                let never = Options {
                    grouped_kernel: Choice::Never,
                    winograd: Choice::Never,
                    stem_kernel: Choice::Never,
                    direct_kernel: Choice::Never,
                    pointwise_kernel: Choice::Never,
                    ..options
                };
                Inference::new(&net, never)
            });
            for batch in list("ARCHC_BENCH_BATCHES", "1,8,32") {
                let batch: i64 = batch.parse().expect("ARCHC_BENCH_BATCHES: numbers");
                let shape = [batch, 3, 224, 224];
                let t = Instant::now();
                plan.prepare(&shape, device).expect("the plan runs");
                let prepare_s = t.elapsed().as_secs_f64();
                let key = (kind_name.clone(), model.clone(), batch);
                let theirs = match ahead.remove(&key) {
                    Some(started) => started,
                    None => Compiled::start(&python, &model, &kind_name, batch, device, threads),
                };
                let Some(mut theirs) = theirs else {
                    eprintln!("{model} {kind_name} batch {batch}: torch.compile failed; skipped");
                    continue;
                };
                if cuda {
                    gpu_name = theirs.server.ready["device_name"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    // fp32 convolutions run on TF32 tensor cores (cuDNN's default in libtorch,
                    // both sides): half the bf16 rate.
                    let tf32 = if kind == Kind::Float { 0.5 } else { 1.0 };
                    peak = gpu_peak_tflops(&gpu_name).map(|t| t * 1e12 * tf32);
                }
                let x = Tensor::randn(shape, (Kind::Float, device));
                let _ = old.forward(&x);
                // CUDA: our pass as one CUDA graph, as inductor's "reduce-overhead" runs its own.
                let graphed = cuda.then(|| {
                    let t = Instant::now();
                    let g = plan.capture(&shape, device).expect("the plan captures");
                    (std::cell::RefCell::new(g), t.elapsed().as_secs_f64())
                });
                let capture_s = graphed.as_ref().map_or(0.0, |g| g.1);
                let ours_pass = || match &graphed {
                    Some((g, _)) => g.borrow_mut().forward(&x).expect("the graph replays"),
                    None => plan.forward(&x),
                };
                if let Some(p) = &onednn_only {
                    p.prepare(&shape, device).expect("the plan runs");
                }
                let (mut ours_ms, mut theirs_ms, mut old_ms) = (Vec::new(), Vec::new(), Vec::new());
                let mut onednn_ms = Vec::new();
                for _ in 0..rounds {
                    for _ in 0..passes {
                        ours_ms.push(timed(&ours_pass));
                    }
                    theirs_ms.extend(theirs.time(passes).expect("torch_compiled.py answers"));
                    old_ms.push(timed(&|| old.forward(&x)));
                    if let Some(p) = &onednn_only {
                        onednn_ms.push(timed(&|| p.forward(&x)));
                    }
                }
                let (ours, inductor, old) = (median(ours_ms), median(theirs_ms), median(old_ms));
                let onednn = if onednn_ms.is_empty() {
                    "–".to_string()
                } else {
                    format!("{:.1} ms", median(onednn_ms))
                };
                let flops = 2.0 * compiled.report.total.macs as f64 * batch as f64;
                let achieved = flops / (ours * 1e-3);
                let of_peak = peak.map_or("n/a".to_string(), |p| {
                    format!("{:.0}%", 100.0 * achieved / p)
                });
                let _ = writeln!(
                    rows,
                    "| {model} | {kind_name} | {batch} | {ours:.1} ms | {inductor:.1} ms | **{:.2}** | {onednn} | {old:.1} ms | {:.3} | {of_peak} | {:.2} s | {:.1} s |",
                    ours / inductor,
                    achieved / 1e12,
                    build_s + prepare_s + capture_s,
                    theirs.compile_s,
                );
                eprintln!(
                    "{model} {kind_name} batch {batch}: ours {ours:.1} ms, inductor {inductor:.1} ms"
                );
            }
        }
        peaks.push((kind_name.clone(), peak, unit));
    }
    let mut body = String::new();
    let _ = writeln!(
        body,
        "3×224×224, eval mode, random weights; device `{device:?}`, {threads} threads (both sides){}, libtorch from torch 2.11.0; median over {rounds} rounds of {passes} passes per side, the two sides alternating; {}, {}. Ratio = ours / torch.compile (below 1.00: we are faster). TFLOP/s counts 2 FLOPs per multiply-add of the spec's exact MAC count. Rerun: `ARCHC_BENCHES=compiled scripts/bench-runtime.sh -- --device {device_name}`.\n",
        if std::env::var_os("MALLOC_MMAP_MAX_").is_some() {
            ", both processes keeping freed memory (glibc: `MALLOC_MMAP_MAX_=0`, heap never trimmed)"
        } else {
            ", glibc's default allocator settings"
        },
        date(),
        if cuda { gpu_name.clone() } else { cpu_name() }
    );
    for (kind, peak, unit) in &peaks {
        if cuda {
            let p = peak.map_or("unknown (set ARCHC_GPU_PEAK_TFLOPS)".into(), |p| {
                format!("{:.0} TFLOP/s", p / 1e12)
            });
            let what = if kind == "fp32" {
                "dense TF32 tensor-core peak (cuDNN runs fp32 convolutions in TF32 by default, in libtorch and PyTorch alike)"
            } else {
                "dense bf16 tensor-core peak"
            };
            let _ = writeln!(body, "- Peak for {kind}: the GPU's {what}, {p}");
            continue;
        }
        let _ = writeln!(
            body,
            "- Peak {kind}: {}",
            peak.map_or("not measurable on this CPU".to_string(), |p| format!(
                "{:.3} TFLOP/s, measured by `fast::peak` ({threads} threads each running independent `{unit}` in a loop)",
                p / 1e12,
            ))
        );
    }
    if cuda {
        body.push_str("- On CUDA every torch.compile configuration compiles at the same time, before any timing, so its compile time is measured with the others sharing the CPU's cores; our setup time is the plan, three warm-up passes (cuDNN's autotuning) and the CUDA graph's capture, one configuration at a time.\n");
    }
    body.push_str(if cuda {
        "\n| model | precision | batch | inference mode, one CUDA graph | torch.compile (inductor, frozen, reduce-overhead) | ratio | – | inference mode without the graph | TFLOP/s | of peak | our plan + cuDNN autotuning + capture | inductor compile |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    } else {
        "\n| model | precision | batch | inference mode | torch.compile (inductor, frozen) | ratio | ours, oneDNN for every convolution (no grouped, Winograd, direct, stem or pointwise kernel) | previous inference mode (no oneDNN fusion) | TFLOP/s | of peak | our plan + packing | inductor compile |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    });
    body.push_str(&rows);
    let kept = std::env::var_os("MALLOC_MMAP_MAX_").is_some();
    // A CPU with AMX and one without run bf16 convolutions several times apart, so each kind of
    // machine keeps a table of its own.
    let amx = peaks.iter().any(|(_, _, unit)| unit.starts_with("AMX"));
    let section = match (cuda, amx, kept) {
        (true, _, _) => "compiled-cuda",
        (false, false, false) => "compiled-cpu",
        (false, false, true) => "compiled-cpu-kept",
        (false, true, false) => "compiled-cpu-amx",
        (false, true, true) => "compiled-cpu-amx-kept",
    };
    write_section(section, &body);
}
