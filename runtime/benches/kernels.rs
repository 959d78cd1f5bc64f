//! The inference mode's own convolution kernels against oneDNN's, one convolution at a time, on
//! the shapes of resnet50's dense 3×3s with stride 1 (the Winograd kernel, bf16 and fp32) and of
//! resnext50_32x4d's grouped 3×3s (the grouped kernel, bf16 and fp32), and on a CPU with AMX
//! of resnet50's dense 3×3s on the AMX direct kernel, of both networks' stem with its
//! max-pool (the stem kernel) and of resnet50's blocks with a projection shortcut (the pointwise
//! kernel), in bf16. Writes its table into
//! BENCHMARKS.md (`kernels-cpu`, or `kernels-cpu-amx` on a CPU with AMX).
//!
//! Run with `ARCHC_BENCHES=kernels scripts/bench-runtime.sh -- --device cpu`. Each shape is a
//! network of `CHAIN` such convolutions in a row (stem `conv 3x3`s, each batch-norm and ReLU
//! folded and fused, as inside a block), built twice: with the kernel forced on
//! ([`Choice::Always`]) and off ([`Choice::Never`], oneDNN's direct convolution on pre-packed
//! weights). Both plans also convert the fp32 NCHW input to channels-last and the output back,
//! once a pass, so the time per convolution (the pass's over `CHAIN`) carries a share of that
//! and the ratio understates the kernel's own. The two alternate in rounds; the median pass is
//! reported. Settings: `ARCHC_BENCH_BATCH` (8),
//! `ARCHC_BENCH_ROUNDS` (5) and `ARCHC_BENCH_PASSES` (3 per plan and round).

mod common;

use archc_runtime::Network;
use archc_runtime::fast::{self, Choice, Inference, Options};
use common::*;
use std::fmt::Write as _;
use std::time::Instant;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Convolutions per timed network.
const CHAIN: usize = 4;

/// The 3×3s with stride 1 to time: network, channels (in and out), map size, groups, and how
/// many the network has.
const SHAPES: &[(&str, i64, i64, i64, usize)] = &[
    // resnet50: the 3×3 of every bottleneck but the first of stages 2–4 (stride 2).
    ("resnet50", 64, 56, 1, 3),
    ("resnet50", 128, 28, 1, 3),
    ("resnet50", 256, 14, 1, 5),
    ("resnet50", 512, 7, 1, 2),
    // resnext50_32x4d: its grouped 3×3s with 4 and 8 channels per group (the grouped kernel's
    // on AVX512-BF16), but the one with stride 2, which cannot be chained.
    ("resnext50_32x4d", 128, 56, 32, 3),
    ("resnext50_32x4d", 256, 28, 32, 3),
];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The median pass of `ours` and of `theirs` on `x`, in milliseconds over `per`, the two
/// alternating in `rounds` of `passes` each.
fn alternate(
    ours: &Inference,
    theirs: &Inference,
    x: &Tensor,
    rounds: usize,
    passes: usize,
    per: usize,
) -> (f64, f64) {
    let _ = (ours.forward(x), theirs.forward(x));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let timed = |p: &Inference| {
        let t = Instant::now();
        let _ = p.forward(x);
        t.elapsed().as_secs_f64() * 1e3 / per as f64
    };
    for _ in 0..rounds {
        for _ in 0..passes {
            a.push(timed(ours));
        }
        for _ in 0..passes {
            b.push(timed(theirs));
        }
    }
    (median(a), median(b))
}

/// The median time, in milliseconds, of a block's last 1×1 and its projection shortcut in
/// `ours` and in `theirs`: the plan steps that are 1×1 convolutions with `out` output channels
/// (one step on the pointwise kernel, two on oneDNN), from profiled passes on `x`, the two
/// plans alternating.
fn shortcut_step(
    ours: &Inference,
    theirs: &Inference,
    x: &Tensor,
    out: i64,
    passes: usize,
) -> (f64, f64) {
    let step = |p: &Inference| {
        let (_, steps) = p.profile(x).expect("the plan runs");
        steps
            .iter()
            .filter(|s| s.step.starts_with("conv 1×1") && s.shape.get(1) == Some(&out))
            .map(|s| s.seconds * 1e3)
            .sum::<f64>()
    };
    let _ = (step(ours), step(theirs));
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..passes {
        a.push(step(ours));
        b.push(step(theirs));
    }
    (median(a), median(b))
}

fn main() {
    let Some((device, _)) = common::device_from_args() else {
        return;
    };
    if device != Device::Cpu {
        eprintln!("the kernels bench times CPU kernels: run it with --device cpu");
        return;
    }
    let batch: i64 = env_or("ARCHC_BENCH_BATCH", 8);
    let rounds: usize = env_or("ARCHC_BENCH_ROUNDS", 5);
    let passes: usize = env_or("ARCHC_BENCH_PASSES", 3);
    let threads = tch::get_num_threads();
    let amx = fast::peak(Kind::BFloat16, 1, 0.05).is_some_and(|p| p.unit.starts_with("AMX"));
    let mut rows = String::new();
    for (kind, name) in [(Kind::BFloat16, "bf16"), (Kind::Float, "fp32")] {
        let mut totals: Vec<(&str, f64, f64)> = Vec::new();
        for &(net_name, c, hw, groups, count) in SHAPES {
            // Without the instructions a kernel needs, "Always" would time oneDNN twice.
            if fast::peak(kind, 1, 0.01).is_none() {
                continue;
            }
            let conv = format!("    conv 3x3 -> {c}, groups {groups}\n");
            let text = format!(
                "network k {{\n  input {c}x{hw}x{hw}\n  stem {{\n{}  }}\n  head {{}}\n}}\n",
                conv.repeat(CHAIN)
            );
            let compiled = archc::Spec::from_text("kernel.arch", &text)
                .and_then(|spec| spec.compile("k", &Default::default()))
                .expect("the one-convolution spec compiles");
            tch::manual_seed(0);
            let vs = VarStore::new(device);
            let net = Network::new(&vs.root(), &compiled);
            let plan = |choice: Choice, direct_kernel: Choice| {
                Inference::new(
                    &net,
                    Options {
                        kind,
                        winograd: choice,
                        grouped_kernel: choice,
                        direct_kernel,
                        ..Options::default()
                    },
                )
            };
            let never = Choice::Never;
            let (ours, onednn) = (plan(Choice::Always, never), plan(never, never));
            let x = Tensor::randn([batch, c, hw, hw], (Kind::Float, device));
            let (ours_ms, onednn_ms) = alternate(&ours, &onednn, &x, rounds, passes, CHAIN);
            let flops = 2.0 * compiled.report.total.macs as f64 * batch as f64 / CHAIN as f64;
            let (kernel, what) = if groups > 1 {
                ("grouped", format!("{} per group", c / groups))
            } else {
                ("Winograd", "dense".to_string())
            };
            let _ = writeln!(
                rows,
                "| {net_name} | {name} | 3×3, {c} channels, {what}, at {hw}×{hw} | {count} | {kernel} | {ours_ms:.2} ms | {onednn_ms:.2} ms ({:.0} GFLOP/s) | **{:.2}** |",
                flops / (onednn_ms * 1e-3) / 1e9,
                ours_ms / onednn_ms,
            );
            eprintln!(
                "{net_name} {name} {c}ch {hw}x{hw} g{groups}: {kernel} {ours_ms:.2} ms, oneDNN {onednn_ms:.2} ms"
            );
            match totals.iter_mut().find(|t| t.0 == net_name) {
                Some(t) => {
                    t.1 += ours_ms * count as f64;
                    t.2 += onednn_ms * count as f64;
                }
                None => totals.push((net_name, ours_ms * count as f64, onednn_ms * count as f64)),
            }
            // On AMX the dense bf16 3×3s also have the direct kernel (`csrc/direct.cpp`).
            if kind == Kind::BFloat16 && amx && groups == 1 {
                let direct = plan(never, Choice::Always);
                let (direct_ms, onednn_ms) = alternate(&direct, &onednn, &x, rounds, passes, CHAIN);
                let _ = writeln!(
                    rows,
                    "| {net_name} | {name} | 3×3, {c} channels, dense, at {hw}×{hw} | {count} | direct (AMX) | {direct_ms:.2} ms | {onednn_ms:.2} ms ({:.0} GFLOP/s) | **{:.2}** |",
                    flops / (onednn_ms * 1e-3) / 1e9,
                    direct_ms / onednn_ms,
                );
                eprintln!(
                    "{net_name} {name} {c}ch {hw}x{hw}: direct {direct_ms:.2} ms, oneDNN {onednn_ms:.2} ms"
                );
            }
        }
        // The stem (7×7/2 on RGB, then the 3×3/2 max-pool): the AMX stem kernel with the pool
        // fused in, against oneDNN's convolution and this crate's max-pool; at batch 32 too,
        // where oneDNN's stem convolution slows down most.
        if kind == Kind::BFloat16 && amx {
            let text = "network s {\n  input 3x224x224\n  stem {\n    conv 7x7/2 -> 64\n    maxpool 3x3/2\n  }\n  head {}\n}\n";
            let compiled = archc::Spec::from_text("stem.arch", text)
                .and_then(|spec| spec.compile("s", &Default::default()))
                .expect("the stem spec compiles");
            tch::manual_seed(0);
            let vs = VarStore::new(device);
            let net = Network::new(&vs.root(), &compiled);
            let plan = |stem_kernel: Choice| {
                Inference::new(
                    &net,
                    Options {
                        kind,
                        stem_kernel,
                        ..Options::default()
                    },
                )
            };
            let (ours, onednn) = (plan(Choice::Always), plan(Choice::Never));
            let mut batches = vec![batch];
            if batch != 32 {
                batches.push(32);
            }
            for b in batches {
                let x = Tensor::randn([b, 3, 224, 224], (Kind::Float, device));
                let (ours_ms, onednn_ms) = alternate(&ours, &onednn, &x, rounds, passes, 1);
                let flops = 2.0 * compiled.report.total.macs as f64 * b as f64;
                let _ = writeln!(
                    rows,
                    "| resnet50, resnext50_32x4d | bf16 | the stem: 7×7/2, 3 → 64 channels, at 224×224, and the 3×3/2 max-pool; batch {b} | 1 | stem (pool fused) | {ours_ms:.2} ms | {onednn_ms:.2} ms ({:.0} GFLOP/s, with the pool) | **{:.2}** |",
                    flops / (onednn_ms * 1e-3) / 1e9,
                    ours_ms / onednn_ms,
                );
                eprintln!(
                    "stem bf16 batch {b}: kernel {ours_ms:.2} ms, oneDNN + pool {onednn_ms:.2} ms"
                );
                if b == batch {
                    for name in ["resnet50", "resnext50_32x4d"] {
                        if let Some(t) = totals.iter_mut().find(|t| t.0 == name) {
                            t.1 += ours_ms;
                            t.2 += onednn_ms;
                        }
                    }
                }
            }
        }
        // Each resnet50 stage's first block (1×1 → 3×3 → 1×1, its projection shortcut a 1×1 with
        // the stage's stride): the pointwise kernel running the last 1×1 and the shortcut as one
        // product against two oneDNN convolutions; the block's other convolutions are oneDNN's
        // in both plans, so the difference is the shortcut's.
        if kind == Kind::BFloat16 && amx {
            for (cin, width, out, hw, stride) in [
                (64, 64, 256, 56, 1),
                (256, 128, 512, 56, 2),
                (512, 256, 1024, 28, 2),
                (1024, 512, 2048, 14, 2),
            ] {
                let text = format!(
                    "network b {{\n  input {cin}x{hw}x{hw}\n  stem {{}}\n  block bottleneck(width, out) {{\n    conv 1x1 -> width\n    conv 3x3/stride -> width\n    conv 1x1 -> out\n  }}\n  stages bottleneck(width = {width}, out = {out}) {{\n    s: depth 1, stride {stride}\n  }}\n  head {{}}\n}}\n"
                );
                let compiled = archc::Spec::from_text("block.arch", &text)
                    .and_then(|spec| spec.compile("b", &Default::default()))
                    .expect("the block spec compiles");
                tch::manual_seed(0);
                let vs = VarStore::new(device);
                let net = Network::new(&vs.root(), &compiled);
                let plan = |pointwise_kernel: Choice| {
                    Inference::new(
                        &net,
                        Options {
                            kind,
                            pointwise_kernel,
                            ..Options::default()
                        },
                    )
                };
                let (ours, onednn) = (plan(Choice::Always), plan(Choice::Never));
                let mut batches = vec![batch];
                if batch != 32 {
                    batches.push(32);
                }
                for b in batches {
                    let x = Tensor::randn([b, cin, hw, hw], (Kind::Float, device));
                    let (ours_ms, onednn_ms) =
                        shortcut_step(&ours, &onednn, &x, out, rounds * passes);
                    let _ = writeln!(
                        rows,
                        "| resnet50 | bf16 | a stage's first block, {cin} → {out} channels at {hw}×{hw}, stride {stride}: its last 1×1 and the shortcut, timed as the plan's step; batch {b} | 1 | pointwise | {ours_ms:.2} ms | {onednn_ms:.2} ms (two convolutions) | **{:.2}** |",
                        ours_ms / onednn_ms,
                    );
                    eprintln!(
                        "block {cin}->{out} {hw}x{hw}/{stride} bf16 batch {b}: pointwise {ours_ms:.2} ms, oneDNN {onednn_ms:.2} ms"
                    );
                }
            }
        }
        for (net, ours, onednn) in totals {
            let _ = writeln!(
                rows,
                "| {net} | {name} | the above at batch {batch} but the direct (AMX) rows, each as often as the network has it | | | {ours:.1} ms | {onednn:.1} ms | **{:.2}** |",
                ours / onednn
            );
        }
    }
    let mut body = String::new();
    let _ = writeln!(
        body,
        "Batch {batch}, time per convolution (+ folded batch-norm and ReLU) in a plan of {CHAIN} in a row, which also converts its fp32 NCHW input to channels-last and its output back (both plans); device `Cpu`, {threads} threads, libtorch from torch 2.11.0; median over {rounds} rounds of {passes} passes per plan, the two alternating; {}, {}. Ratio = kernel / oneDNN (below 1.00: the kernel is faster). Rerun: `ARCHC_BENCHES=kernels scripts/bench-runtime.sh -- --device cpu`.\n",
        date(),
        cpu_name()
    );
    body.push_str("| network | precision | convolution | in the network | kernel | kernel forced on | oneDNN (direct) | ratio |\n|---|---|---|---:|---|---:|---:|---:|\n");
    body.push_str(&rows);
    write_section(
        if amx {
            "kernels-cpu-amx"
        } else {
            "kernels-cpu"
        },
        &body,
    );
}
