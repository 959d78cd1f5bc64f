//! Forward-pass speed of resnext50_32x4d: archc-runtime against PyTorch eager torchvision, in one
//! run, on the same libtorch and the same thread count. Writes its table into BENCHMARKS.md.
//!
//! Run with `scripts/bench-runtime.sh` (CPU) or, on a GPU box, through `scripts/gpu-run.sh`.
//! `--device cpu|cuda|auto` (or `ARCHC_DEVICE`; default `auto`) picks the device, `ARCHC_BENCH_REPEAT`
//! the number of timed passes (default 10). Each configuration is warmed up, then the median of
//! the timed passes is reported. Our runs and PyTorch's alternate, so a drift in the machine's
//! speed affects both sides alike.

mod common;

use archc_runtime::Network;
use archc_runtime::fast::{Inference, Options};
use common::*;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

const WARMUP: usize = 3;

fn median_ms(device: Device, repeat: usize, mut f: impl FnMut() -> Tensor) -> f64 {
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    for _ in 0..WARMUP {
        let _ = f();
    }
    sync();
    let mut t: Vec<f64> = (0..repeat)
        .map(|_| {
            let s = Instant::now();
            let _ = f();
            sync();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// PyTorch's median milliseconds for a mode, from scripts/torch_forward.py.
fn torch_ms(
    python: &Path,
    mode: &str,
    batch: i64,
    device: &str,
    threads: i32,
    repeat: usize,
) -> Option<f64> {
    let out = Command::new(python)
        .arg(root().join("scripts/torch_forward.py"))
        .args([
            "--mode",
            mode,
            "--batch",
            &batch.to_string(),
            "--device",
            device,
        ])
        .args([
            "--threads",
            &threads.to_string(),
            "--repeat",
            &repeat.to_string(),
        ])
        .args(["--warmup", &WARMUP.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "torch_forward.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["median_ms"].as_f64()
}

fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_kind(Kind::Double), b.to_kind(Kind::Double));
    (&a - &b).norm().double_value(&[]) / b.norm().double_value(&[])
}

fn main() {
    let Some((device, device_name)) = common::device_from_args() else {
        return;
    };
    let repeat: usize = env_or("ARCHC_BENCH_REPEAT", 10);
    let torch_device = torch_device(device);
    let threads = tch::get_num_threads();
    let python = python();

    let compiled = archc::compile_file(
        root().join("specs/resnext/resnext50_32x4d.arch"),
        &Default::default(),
    )
    .expect("the shipped spec compiles");
    tch::manual_seed(0);
    let vs = VarStore::new(device);
    let net = Network::new(&vs.root(), &compiled);
    let [fp32, bf16] = [Kind::Float, Kind::BFloat16].map(|kind| {
        let options = Options {
            kind,
            channels_last: true,
            ..Default::default()
        };
        Inference::new(&net, options)
    });

    let mut rows = String::new();
    let mut errors = String::new();
    for batch in [8i64, 16] {
        let x = Tensor::randn([batch, 3, 224, 224], (Kind::Float, device));
        let ours_eager = median_ms(device, repeat, || tch::no_grad(|| net.forward_t(&x, false)));
        let torch_fp32 = torch_ms(&python, "fp32", batch, &torch_device, threads, repeat);
        let ours_fp32 = median_ms(device, repeat, || fp32.forward(&x));
        let torch_cl = torch_ms(&python, "fp32-cl", batch, &torch_device, threads, repeat);
        let ours_bf16 = median_ms(device, repeat, || bf16.forward(&x));
        let torch_bf16 = torch_ms(&python, "bf16-cl", batch, &torch_device, threads, repeat);
        let best = [torch_fp32, torch_cl, torch_bf16]
            .into_iter()
            .flatten()
            .reduce(f64::min);
        let versus = format!(
            " (vs PyTorch fp32: {}; vs PyTorch's best: {})",
            ratio(ours_bf16, torch_fp32),
            ratio(ours_bf16, best)
        );
        for (ours_what, ours, theirs_what, theirs, note) in [
            (
                "eager fp32 (BN as its own op)",
                ours_eager,
                "PyTorch eager fp32",
                torch_fp32,
                "",
            ),
            (
                "inference mode fp32 (BN folded, channels-last)",
                ours_fp32,
                "PyTorch eager fp32 channels-last",
                torch_cl,
                "",
            ),
            (
                "inference mode bf16 (BN folded, channels-last)",
                ours_bf16,
                "PyTorch bf16 autocast channels-last",
                torch_bf16,
                versus.as_str(),
            ),
        ] {
            let _ = writeln!(
                rows,
                "| {batch} | {ours_what} | {} | {theirs_what}: {} | **{}**{note} |",
                fmt_ms(Some(ours)),
                fmt_ms(theirs),
                ratio(ours, theirs)
            );
        }
        let reference = tch::no_grad(|| net.forward_t(&x, false));
        let _ = writeln!(
            errors,
            "| {batch} | {:.1e} | {:.1e} |",
            rel_l2(&fp32.forward(&x), &reference),
            rel_l2(&bf16.forward(&x), &reference)
        );
        eprintln!("batch {batch} done");
    }
    let (date, cpu) = (date(), cpu_name());
    let mut body = String::new();
    let _ = writeln!(
        body,
        "resnext50_32x4d, 3×224×224, eval mode, random weights; device `{device:?}`, {threads} threads (both sides), libtorch from torch 2.11.0; median of {repeat} passes after {WARMUP} warm-up; {date}, {cpu}. Ratio = ours / PyTorch (below 1.00: we are faster). Rerun: `scripts/bench-runtime.sh -- --device {device_name}`.\n"
    );
    body.push_str(
        "| batch | archc-runtime | ours | PyTorch (same run) | ratio |\n|---:|---|---:|---|---:|\n",
    );
    body.push_str(&rows);
    body.push_str("\nNumeric error of the inference mode against our eager fp32 logits (relative L2, same weights and input):\n\n| batch | fp32 folded | bf16 folded |\n|---:|---:|---:|\n");
    body.push_str(&errors);
    let section = match device {
        Device::Cuda(_) => "forward-cuda",
        _ => "forward-cpu",
    };
    write_section(section, &body);
    println!("{body}");
}
