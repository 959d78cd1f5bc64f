//! Numeric parity with PyTorch on the same weights (fixtures from `scripts/parity.py`, which
//! `scripts/test.sh` runs first), the three block forms on one checkpoint, and the inference mode.

use archc::Compiled;
mod common;

use archc_runtime::fast::{self, Choice, Inference, Options};
use archc_runtime::{Network, weights};
use common::*;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

/// `ARCHC_TEST_DEVICE` (`cpu` by default; `cuda` on a GPU box, see scripts/gpu-run.sh).
fn device() -> Device {
    let name = std::env::var("ARCHC_TEST_DEVICE").unwrap_or_else(|_| "cpu".to_string());
    archc_runtime::parse_device(&name).unwrap_or_else(|e| panic!("ARCHC_TEST_DEVICE: {e}"))
}

fn io(name: &str) -> Vec<(String, Tensor)> {
    Tensor::read_safetensors(parity_fixture(name, "io"))
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.to_device(device())))
        .collect()
}

fn get<'a>(io: &'a [(String, Tensor)], key: &str) -> &'a Tensor {
    &io.iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key}"))
        .1
}

fn loaded(c: &Compiled, weights_of: &str) -> (VarStore, Network) {
    let mut vs = VarStore::new(device());
    let net = Network::new(&vs.root(), c);
    let report = weights::load(&mut vs, parity_fixture(weights_of, "weights")).unwrap();
    assert!(report.direct > 0);
    (vs, net)
}

fn stage_parity(rel: &str, name: &str) {
    let c = compile(rel, &[]);
    let (_vs, net) = loaded(&c, name);
    let io = io(name);
    let x = get(&io, "input");
    let stages = tch::no_grad(|| net.forward_stages(x, false));
    let mut checked = 0;
    for (stage, ours) in &stages {
        let theirs = get(&io, stage);
        assert_eq!(ours.size(), theirs.size(), "{name} {stage}");
        let err = rel_l2(ours, theirs);
        println!("{name} {stage}: relative L2 error {err:.3e}");
        assert!(
            err <= 1e-5,
            "{name} {stage}: relative L2 error {err:.3e} > 1e-5"
        );
        checked += 1;
    }
    assert_eq!(checked, c.graph.stages.len());
}

#[test]
fn resnet50_matches_torchvision_stage_by_stage() {
    stage_parity("resnet/resnet50.arch", "resnet50");
}

#[test]
fn resnext50_matches_torchvision_stage_by_stage() {
    stage_parity("resnext/resnext50_32x4d.arch", "resnext50_32x4d");
}

#[test]
fn resnext29_matches_pytorch_reference_stage_by_stage() {
    stage_parity("cifar/resnext29_8x64d.arch", "resnext29_8x64d");
}

#[test]
fn three_forms_give_the_same_logits_on_one_checkpoint() {
    let io = io("resnext50_32x4d");
    let x = get(&io, "input");
    let logits = |form: &str| {
        let c = compile("resnext/resnext50_32x4d.arch", &[("form", form)]);
        let (_vs, net) = loaded(&c, "resnext50_32x4d");
        tch::no_grad(|| net.forward_t(x, false))
    };
    let grouped = logits("grouped");
    assert!(rel_l2(&grouped, get(&io, "head")) <= 1e-5);
    for form in ["concat", "split"] {
        let other = logits(form);
        let err = rel_l2(&other, &grouped);
        println!("{form} vs grouped: relative L2 error {err:.3e}");
        assert!(err <= 1e-5, "{form}: {err:.3e}");
    }
}

/// The inference mode against torchvision's eval-mode logits (PyTorch's own numbers): fp32 within
/// 1e-5 relative, bf16 within 5e-3, with and without oneDNN's fused operators, and with this
/// crate's grouped kernel (bf16 and fp32) and oneDNN's matmul forced on and off.
#[test]
fn inference_mode_matches_eval_mode() {
    let c = compile("resnext/resnext50_32x4d.arch", &[]);
    let (_vs, net) = loaded(&c, "resnext50_32x4d");
    let io = io("resnext50_32x4d");
    let x = get(&io, "input");
    let before = x.copy();
    let reference = get(&io, "head");
    let mut bf16 = Vec::new();
    for onednn in [true, false] {
        for (kind, channels_last, bound) in [
            (Kind::Float, true, 1e-5),
            (Kind::Float, false, 1e-5),
            (Kind::BFloat16, true, 5e-3),
        ] {
            let options = Options {
                kind,
                channels_last,
                onednn,
                ..Options::default()
            };
            let plan = Inference::new(&net, options);
            assert_eq!(plan.uses_onednn(), onednn && device() == Device::Cpu);
            let err = rel_l2(&plan.forward(x), reference);
            println!("{options:?}: relative L2 error {err:.3e}");
            assert!(err <= bound, "{options:?}: {err:.3e} > {bound:.0e}");
            if kind == Kind::BFloat16 {
                bf16.push(err);
            }
        }
    }
    // Fused bf16 (oneDNN post-ops, and the grouped kernel where it measured faster) stays
    // within the error of the plain bf16 plan.
    assert!(
        bf16[0] <= bf16[1] * 1.1,
        "bf16: fused {:.3e}, plain {:.3e}",
        bf16[0],
        bf16[1]
    );
    // The grouped kernel, oneDNN's matmul for the bf16 1×1s (with and without the fused
    // residual add), the stem kernel (with the max-pool fused in, on a CPU with AMX) and the
    // pointwise kernel (AMX: each stage's first block's last 1×1 with its shortcut, and every
    // other 1×1 with stride 1, the residual add fused in where it ends a block), each forced on
    // and off (measured, they run only where they are faster).
    let bf16_options = Options {
        kind: Kind::BFloat16,
        ..Options::default()
    };
    for choice in [Choice::Always, Choice::Never] {
        let grouped = Options {
            grouped_kernel: choice,
            ..bf16_options
        };
        let matmul = Options {
            matmul: choice,
            ..bf16_options
        };
        let stem = Options {
            stem_kernel: choice,
            ..bf16_options
        };
        let pointwise = Options {
            pointwise_kernel: choice,
            ..bf16_options
        };
        for options in [grouped, matmul, stem, pointwise] {
            let err = rel_l2(&Inference::new(&net, options).forward(x), reference);
            println!("{options:?}: relative L2 error {err:.3e}");
            assert!(err <= bf16[1] * 1.1, "{options:?}: {err:.3e}");
        }
    }
    // The fp32 grouped kernel (4 and 8 channels per group, AVX-512) forced on: within 1e-5
    // like every fp32 plan.
    let fp32_grouped = Options {
        kind: Kind::Float,
        grouped_kernel: Choice::Always,
        ..Options::default()
    };
    let err = rel_l2(&Inference::new(&net, fp32_grouped).forward(x), reference);
    println!("{fp32_grouped:?}: relative L2 error {err:.3e}");
    assert!(err <= 1e-5, "{fp32_grouped:?}: {err:.3e}");
    // On CUDA: cuDNN's fused convolution + (add +) ReLU forced on and off.
    if device().is_cuda() {
        for (kind, bound) in [(Kind::Float, 1e-5), (Kind::BFloat16, bf16[1] * 1.1)] {
            for cudnn_fused in [Choice::Always, Choice::Never] {
                let options = Options {
                    kind,
                    cudnn_fused,
                    ..Options::default()
                };
                let err = rel_l2(&Inference::new(&net, options).forward(x), reference);
                println!("{options:?}: relative L2 error {err:.3e}");
                assert!(err <= bound, "{options:?}: {err:.3e} > {bound:.1e}");
            }
        }
    }
    // The plan writes residual sums in place, never into the caller's input.
    assert!(x.equal(&before));
}

/// ResNet-50's dense 3×3s with stride 1 on the Winograd kernel (bf16: forced on, and as
/// measured) against torchvision's eval-mode logits, next to the same plan with oneDNN's direct
/// convolutions. The kernel rounds its transformed input to bf16, one rounding more per 3×3 than
/// a direct convolution; over the whole network that stays within the spread of bf16's other
/// roundings: within 1.2 times the direct plan's error. So do the AMX direct 3×3 kernel and the
/// AMX pointwise kernel (every 1×1 with stride 1, a block's last with its projection shortcut)
/// forced on (bf16). In fp32 the Winograd kernel stays within 1e-5, as every fp32 plan does; ResNet-18
/// checks the residual add fused into it.
#[test]
fn winograd_plan_matches_eval_mode() {
    let c = compile("resnet/resnet50.arch", &[]);
    let (_vs, net) = loaded(&c, "resnet50");
    let io = io("resnet50");
    let x = get(&io, "input");
    let reference = get(&io, "head");
    let err = |options: Options| rel_l2(&Inference::new(&net, options).forward(x), reference);
    // oneDNN's matmul for the 1×1s, the AMX direct 3×3 and the pointwise kernel off, so that
    // only the 3×3s differ between the plans.
    let bf16 = Options {
        kind: Kind::BFloat16,
        matmul: Choice::Never,
        direct_kernel: Choice::Never,
        pointwise_kernel: Choice::Never,
        ..Options::default()
    };
    let plain = err(Options {
        onednn: false,
        ..bf16
    });
    let direct = err(Options {
        winograd: Choice::Never,
        ..bf16
    });
    println!("resnet50 bf16: plain plan {plain:.3e}, oneDNN's direct 3×3s {direct:.3e}");
    for options in [
        Options {
            winograd: Choice::Always,
            ..bf16
        },
        // The AMX direct 3×3 kernel (on a CPU with AMX; oneDNN elsewhere): one rounding, as
        // oneDNN's.
        Options {
            winograd: Choice::Never,
            direct_kernel: Choice::Always,
            ..bf16
        },
        // The AMX pointwise kernel for every 1×1 with stride 1 (on a CPU with AMX; oneDNN
        // elsewhere): in each stage's first block the shortcut's output is not rounded to bf16
        // before the add, one rounding fewer.
        Options {
            winograd: Choice::Never,
            pointwise_kernel: Choice::Always,
            ..bf16
        },
        Options {
            kind: Kind::BFloat16,
            ..Options::default()
        },
    ] {
        let winograd = err(options);
        println!("{options:?}: relative L2 error {winograd:.3e}");
        assert!(
            winograd <= 1.2 * direct,
            "{options:?}: {winograd:.3e} against the direct plan's {direct:.3e}"
        );
    }
    // In fp32 the kernel is as exact as the rest of the fp32 plan.
    let fp32 = err(Options {
        winograd: Choice::Always,
        ..Options::default()
    });
    println!("resnet50 fp32, Winograd Always: relative L2 error {fp32:.3e}");
    assert!(fp32 <= 1e-5, "fp32 Winograd: {fp32:.3e}");
    // ResNet-18's basic blocks: each block's second 3×3 takes the residual add, fused into the
    // kernel (against the network's own fp32 eval mode, random weights).
    let c = compile("resnet/resnet18.arch", &[]);
    tch::manual_seed(0);
    let vs = VarStore::new(device());
    let net = Network::new(&vs.root(), &c);
    let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, device()));
    let eval = tch::no_grad(|| net.forward_t(&x, false));
    let err = |options: Options| rel_l2(&Inference::new(&net, options).forward(&x), &eval);
    let always = |options: Options| Options {
        winograd: Choice::Always,
        ..options
    };
    let direct = err(Options {
        winograd: Choice::Never,
        ..bf16
    });
    let (winograd, fp32) = (err(always(bf16)), err(always(Options::default())));
    println!(
        "resnet18 bf16: direct {direct:.3e}, Winograd {winograd:.3e}; fp32 Winograd {fp32:.3e}"
    );
    assert!(
        winograd <= 1.2 * direct,
        "resnet18: Winograd {winograd:.3e} against direct {direct:.3e}"
    );
    assert!(fp32 <= 1e-5, "resnet18 fp32 Winograd: {fp32:.3e}");
}

/// Every layout the plan fuses differently, on the CPU's oneDNN path against the plain one and
/// against eval mode, at two batch sizes (weights are packed per input shape): the split form
/// (its aggregated batch-norm is an affine step), the concatenation form, and CIFAR's
/// ResNeXt-29 (32×32 inputs, a projection shortcut in every stage's first block).
#[test]
fn fused_plan_matches_on_every_form_and_batch() {
    let io50 = io("resnext50_32x4d");
    let x = get(&io50, "input");
    let reference = get(&io50, "head");
    for form in ["split", "concat"] {
        let c = compile("resnext/resnext50_32x4d.arch", &[("form", form)]);
        let (_vs, net) = loaded(&c, "resnext50_32x4d");
        let plan = Inference::new(&net, Options::default());
        let err = rel_l2(&plan.forward(x), reference);
        println!("{form}: relative L2 error {err:.3e}");
        assert!(err <= 1e-5, "{form}: {err:.3e}");
    }
    let c = compile("cifar/resnext29_8x64d.arch", &[]);
    let (_vs, net) = loaded(&c, "resnext29_8x64d");
    let io29 = io("resnext29_8x64d");
    let x = get(&io29, "input");
    let fused = Inference::new(&net, Options::default());
    let plain = Inference::new(
        &net,
        Options {
            onednn: false,
            ..Options::default()
        },
    );
    for batch in [x.size()[0], 1] {
        let x = x.narrow(0, 0, batch);
        let eval = tch::no_grad(|| net.forward_t(&x, false));
        let (a, b) = (fused.forward(&x), plain.forward(&x));
        assert_eq!(a.size(), eval.size());
        let err = rel_l2(&a, &eval);
        println!(
            "resnext29 batch {batch}: fused {err:.3e}, plain {:.3e}",
            rel_l2(&b, &eval)
        );
        assert!(err <= 1e-5, "batch {batch}: {err:.3e}");
    }
}

/// The inference mode captured as a CUDA graph gives torchvision's logits, replays on new inputs
/// (each replay reads the input it was given), and refuses another shape. On the CPU, capturing
/// is an error that names the device.
#[test]
fn cuda_graph_matches_torchvision() {
    let io50 = io("resnext50_32x4d");
    let x = get(&io50, "input");
    let reference = get(&io50, "head");
    let c = compile("resnext/resnext50_32x4d.arch", &[]);
    let (_vs, net) = loaded(&c, "resnext50_32x4d");
    let plan = Inference::new(&net, Options::default());
    let device = device();
    if !device.is_cuda() {
        let e = plan.capture(&x.size(), device).unwrap_err().to_string();
        assert!(e.contains("CUDA graphs need a CUDA device"), "{e}");
        return;
    }
    assert!(
        Inference::cuda_graphs_available(),
        "built without CUDA graphs"
    );
    let mut graph = plan.capture(&x.size(), device).unwrap();
    assert_eq!(graph.shape(), x.size());
    let ours = graph.forward(x).unwrap();
    let err = rel_l2(&ours, reference);
    println!("CUDA graph: relative L2 error {err:.3e} against torchvision");
    assert!(err <= 1e-5, "CUDA graph: {err:.3e}");
    // A second input: the replay must compute on it, not return the first answer.
    let y = Tensor::randn(x.size(), (Kind::Float, device));
    let (replayed, eager) = (graph.forward(&y).unwrap(), plan.forward(&y));
    let err = rel_l2(&replayed, &eager);
    println!("CUDA graph on a new input: relative L2 error {err:.3e} against the plan");
    assert!(err <= 1e-6, "replay on a new input: {err:.3e}");
    assert!(
        rel_l2(&replayed, &ours) > 1e-2,
        "the replay ignored its input"
    );
    let mut bigger = x.size();
    bigger[0] += 1;
    let e = graph
        .forward(&Tensor::zeros(&bigger, (Kind::Float, device)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("captured for inputs of shape"), "{e}");
}

/// A profiled pass gives the plain pass's logits and one timed entry for the input's conversion
/// and for each plan step, in order: ResNet-18's stem convolution (its batch-norm and ReLU
/// fused in) first, the classifier last, every map's shape as the network has it.
#[test]
fn profile_times_every_step_and_matches_forward() {
    let c = compile("resnet/resnet18.arch", &[]);
    tch::manual_seed(0);
    let vs = VarStore::new(device());
    let net = Network::new(&vs.root(), &c);
    let x = Tensor::randn([2, 3, 64, 64], (Kind::Float, device()));
    for kind in [Kind::Float, Kind::BFloat16] {
        let plan = Inference::new(
            &net,
            Options {
                kind,
                ..Options::default()
            },
        );
        plan.prepare(&x.size(), device()).unwrap();
        let (y, steps) = plan.profile(&x).unwrap();
        assert!(
            y.equal(&plan.forward(&x)),
            "{kind:?}: profiled logits differ"
        );
        let names: Vec<&str> = steps.iter().map(|s| s.step.as_str()).collect();
        println!("{kind:?}: {names:#?}");
        assert!(names[0].starts_with("input: "), "{names:?}");
        assert!(
            names
                .iter()
                .any(|n| n.starts_with("conv 7×7/2 3→64 + ReLU")),
            "{names:?}"
        );
        // 20 convolutions: the stem, 16 in the blocks, 3 projection shortcuts.
        assert_eq!(names.iter().filter(|n| n.starts_with("conv ")).count(), 20);
        assert!(
            names.last().unwrap().starts_with("linear 512→1000"),
            "{names:?}"
        );
        assert_eq!(steps.last().unwrap().shape, [2, 1000]);
        assert!(steps.iter().any(|s| s.shape == [2, 512, 2, 2]), "{steps:?}");
        assert!(steps.iter().all(|s| s.seconds >= 0.0));
        assert!(steps.iter().map(|s| s.seconds).sum::<f64>() > 0.0);
    }
}

/// The CPU buffer cache changes no result: passes that reuse the previous passes' buffers (on
/// other inputs in between, at two batch sizes) give the logits of the same plan without the
/// cache bit for bit, in fp32 and bf16; after a pass the cache holds its freed buffers, and
/// `release_cached_memory` empties it.
#[test]
fn buffer_cache_keeps_every_result() {
    let c = compile("resnext/resnext50_32x4d.arch", &[]);
    tch::manual_seed(1);
    let vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &c);
    for kind in [Kind::Float, Kind::BFloat16] {
        // Every kernel choice fixed, so that the two plans run the same kernels (timed choices
        // could differ between them); the grouped kernel's outputs come from the cache too.
        let fixed = Options {
            kind,
            grouped_kernel: Choice::Always,
            cudnn_fused: Choice::Never,
            matmul: Choice::Never,
            winograd: Choice::Never,
            stem_kernel: Choice::Never,
            direct_kernel: Choice::Never,
            pointwise_kernel: Choice::Never,
            ..Options::default()
        };
        let cached = Inference::new(&net, fixed);
        let plain = Inference::new(
            &net,
            Options {
                buffer_cache: false,
                ..fixed
            },
        );
        for batch in [3, 2, 3] {
            let x = Tensor::randn([batch, 3, 64, 64], (Kind::Float, Device::Cpu));
            let other = Tensor::randn([batch, 3, 64, 64], (Kind::Float, Device::Cpu));
            let want = plain.forward(&x);
            let _ = cached.forward(&other);
            assert!(
                fast::cached_bytes() > 0,
                "{kind:?}: the pass left nothing cached"
            );
            let got = cached.forward(&x);
            assert!(
                got.equal(&want),
                "{kind:?}, batch {batch}: the cached pass differs"
            );
        }
    }
    fast::release_cached_memory();
}
