//! The PyTorch target (`archc codegen --target pytorch`) against torchvision and this runtime.
//!
//! For every shipped spec in all three forms it generates the Python module, lints it (ruff
//! check and ruff format --check), and runs `scripts/pytorch_check.py`, which checks the module
//! against torchvision (names, shapes, `load_state_dict(strict=True)`, logits) and against the
//! variables listed here from `Network::new`, and saves each module's weights and logits. This
//! test then loads each saved file into the runtime by name and compares logits.

mod common;

use archc_runtime::{Network, weights};
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Tensor};

/// The shipped specs whose network has a PyTorch reference (scripts/reference.py's names).
const REFERENCES: [(&str, &str); 11] = [
    ("resnet/resnet18.arch", "resnet18"),
    ("resnet/resnet34.arch", "resnet34"),
    ("resnet/resnet50.arch", "resnet50"),
    ("resnet/resnet101.arch", "resnet101"),
    ("resnet/resnet152.arch", "resnet152"),
    ("resnet/wide_resnet50_2.arch", "wide_resnet50_2"),
    ("resnext/resnext50_32x4d.arch", "resnext50_32x4d"),
    ("resnext/resnext101_32x8d.arch", "resnext101_32x8d"),
    ("resnext/resnext101_64x4d.arch", "resnext101_64x4d"),
    ("cifar/resnext29_8x64d.arch", "resnext29_8x64d"),
    ("cifar/resnext29_16x64d.arch", "resnext29_16x64d"),
];

const FORMS: [&str; 3] = ["grouped", "concat", "split"];

/// The Python interpreter with torch (`ARCHC_PYTHON`, default the project's venv).
fn python() -> PathBuf {
    std::env::var_os("ARCHC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python3"))
}

/// Runs a command, asserting success; returns its stdout.
fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The runtime's variables for a compiled network: name → shape.
fn variables(c: &archc::Compiled) -> serde_json::Map<String, serde_json::Value> {
    let vs = VarStore::new(Device::Cpu);
    let _net = Network::new(&vs.root(), c);
    vs.variables()
        .into_iter()
        .map(|(k, t)| (k, serde_json::json!(t.size())))
        .collect()
}

/// A fresh folder for one test's files, per process (test runs of several checkouts may share a
/// target folder); removed by [`Scratch::drop`] unless the test failed.
fn scratch(name: &str) -> Scratch {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn case_name(rel: &str, form: &str) -> String {
    let stem = Path::new(rel).file_stem().unwrap().to_string_lossy();
    format!("{stem}_{form}")
}

#[test]
fn generated_modules_match_torchvision_and_the_runtime() {
    // Many small forward passes: one thread each here and in Python (see pytorch_check.py).
    tch::set_num_threads(1);
    let dir = scratch("pytorch-modules");
    let mut manifest = Vec::new();
    let mut cases = Vec::new();
    // Every shipped spec, a spec whose blocks of one stage have different layouts, and one whose
    // paths read slices of the block's input.
    let mut specs = shipped();
    specs.push("mixed.arch".to_string());
    specs.push("sliced.arch".to_string());
    for rel in &specs {
        for form in FORMS {
            let c = match rel.as_str() {
                "mixed.arch" => archc_tests::compile_text(
                    "mixed",
                    archc_tests::MIXED_LAYOUTS,
                    &[("form", form)],
                ),
                "sliced.arch" => archc_tests::compile_text(
                    "sliced",
                    archc_tests::SLICED_PATHS,
                    &[("form", form)],
                ),
                _ => compile(rel, &[("form", form)]),
            };
            let name = case_name(rel, form);
            let module = dir.join(format!("{name}.py"));
            let origin = format!("`{rel}` `--set form={form}`");
            let code = archc::emit::pytorch::module(std::slice::from_ref(&c), &origin);
            std::fs::write(&module, code).unwrap();
            let reference = REFERENCES
                .iter()
                .find(|(spec, _)| spec == rel)
                .map(|(_, model)| *model);
            let t = c.report.total;
            manifest.push(serde_json::json!({
                "name": name,
                "module": module,
                "class": archc::emit::pytorch::class_name(&c.model.name),
                "spec": rel,
                "form": form,
                "reference": reference,
                "params": t.params,
                "buffers": t.buffers,
                "input": c.model.input,
                "vars": variables(&c),
            }));
            cases.push((name, c));
        }
    }
    assert_eq!(cases.len(), 3 * (shipped().len() + 2));
    assert_eq!(
        REFERENCES
            .iter()
            .filter(|(spec, _)| shipped().iter().any(|s| s == spec))
            .count(),
        11,
        "every reference is a shipped spec"
    );

    // A file with two networks is one module (one header, one `Conv`).
    let two = format!(
        "{}\n{}",
        archc_tests::MIXED_LAYOUTS,
        archc_tests::MIXED_LAYOUTS.replace("network mixed", "network tensor")
    );
    let spec = archc::Spec::from_text("two.arch", &two).unwrap();
    let nets: Vec<archc::Compiled> = ["mixed", "tensor"]
        .iter()
        .map(|n| spec.compile(n, &archc::Overrides::default()).unwrap())
        .collect();
    std::fs::write(
        dir.join("two_networks.py"),
        archc::emit::pytorch::module(&nets, "`two.arch`"),
    )
    .unwrap();

    // A syntax check and the linter, on every generated module.
    let ruff = python().with_file_name("ruff");
    run(Command::new(&ruff)
        .args(["check", "--no-cache", "--isolated"])
        .arg(&*dir));
    run(Command::new(&ruff)
        .args(["format", "--no-cache", "--isolated", "--check"])
        .arg(&*dir));
    run(Command::new(python())
        .args(["-m", "compileall", "-q", "-b"])
        .arg(&*dir));

    let manifest_path = dir.join("manifest.json");
    std::fs::write(&manifest_path, serde_json::to_string(&manifest).unwrap()).unwrap();
    let out = run(Command::new(python())
        .arg(root().join("scripts/pytorch_check.py"))
        .arg("--manifest")
        .arg(&manifest_path)
        .arg("--out")
        .arg(&*dir));
    println!("{out}");
    let torchvision_checked = out
        .lines()
        .filter(|l| l.contains("logits vs reference"))
        .count();
    assert_eq!(torchvision_checked, 11, "{out}");

    // The runtime, on each file the generated module saved.
    for (name, c) in &cases {
        let mut vs = VarStore::new(Device::Cpu);
        let net = Network::new(&vs.root(), c);
        let loaded = weights::load(&mut vs, dir.join(format!("{name}.weights.safetensors")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let bns = vs
            .variables()
            .keys()
            .filter(|k| k.ends_with(".running_mean"))
            .count();
        assert_eq!(
            (loaded.direct, loaded.mapped, loaded.ignored),
            (vs.variables().len(), 0, bns),
            "{name}: every variable by its own name, one num_batches_tracked per batch-norm"
        );
        let io: Vec<(String, Tensor)> =
            Tensor::read_safetensors(dir.join(format!("{name}.io.safetensors"))).unwrap();
        let get = |k: &str| &io.iter().find(|(n, _)| n == k).unwrap().1;
        let logits = tch::no_grad(|| net.forward_t(get("input"), false));
        let err = rel_l2(&logits, get("logits"));
        println!("{name}: runtime vs PyTorch, relative L2 {err:.2e}");
        assert!(err <= 1e-5, "{name}: runtime vs PyTorch {err:.3e}");
    }
}

/// A small ResNeXt for the 8×8 digits: two bottlenecks of cardinality 4.
const DIGITS: &str = include_str!("pytorch/digits_tiny.arch");

/// archc-runtime's digits recipe (recipes/digits.toml), for one epoch.
const RECIPE: &str = "epochs = 1
batch = 64
seed = 0
precision = \"fp32\"
label_smoothing = 0.0

[optimizer]
momentum = 0.9
nesterov = true
weight_decay = 5e-4

[lr]
base = 0.1
warmup_epochs = 1.0
schedule = \"cosine\"

[data]
augment = \"pad-crop\"
pad = 1
flip = false
mean = [0.31]
std = [0.38]
";

fn read(path: &Path) -> Vec<(String, Tensor)> {
    let mut t = Tensor::read_safetensors(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

/// `torchrun` with two CPU processes (gloo over the loopback) training the digits.
fn torchrun(module: &Path, out: &Path, extra: &[&str]) -> String {
    let torchrun = python().with_file_name("torchrun");
    run(Command::new(torchrun)
        .args(["--standalone", "--nproc_per_node=2"])
        .arg(root().join("scripts/ddp_train.py"))
        .arg("--module")
        .arg(module)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("GLOO_SOCKET_IFNAME", "lo")
        .env("OMP_NUM_THREADS", "1"))
}

#[test]
fn ddp_training_on_two_processes_and_checkpoints_both_ways() {
    tch::set_num_threads(1);
    let dir = scratch("pytorch-ddp");
    let spec = archc::Spec::from_text("digits_tiny.arch", DIGITS).unwrap();
    let c = spec
        .compile("digits_tiny", &archc::Overrides::default())
        .unwrap();
    let module = dir.join("digits_tiny.py");
    std::fs::write(
        &module,
        archc::emit::pytorch::module(std::slice::from_ref(&c), "`digits_tiny.arch`"),
    )
    .unwrap();

    // One short epoch (23 steps of 64 images) on two processes, from a recipe in the Rust
    // trainer's format (recipes/digits.toml, one epoch).
    let recipe = dir.join("digits.toml");
    std::fs::write(&recipe, RECIPE).unwrap();
    let recipe_arg = recipe.to_str().unwrap();
    let run_dir = dir.join("run");
    let out = torchrun(
        &module,
        &run_dir,
        &["--recipe", recipe_arg, "--dump-ranks", "--sample", "16"],
    );
    println!("{out}");
    assert!(
        out.contains("2 process(es) on cpu, global batch 64, 23 steps per epoch, 1 epochs"),
        "{out}"
    );
    assert!(
        out.contains("epoch 1: ") && out.contains("test accuracy"),
        "{out}"
    );

    // The two ranks hold the same weights, which are the checkpoint's.
    let last = read(&run_dir.join("last.safetensors"));
    for rank in ["rank0", "rank1"] {
        let theirs = read(&run_dir.join(format!("{rank}.safetensors")));
        assert_eq!(theirs.len(), last.len());
        for ((n, a), (m, b)) in last.iter().zip(&theirs) {
            assert_eq!(n, m);
            assert!(a.equal(b), "{rank}: {n} differs from the checkpoint");
        }
    }

    // The checkpoint loads into the runtime by name and gives PyTorch's logits.
    let mut vs = VarStore::new(Device::Cpu);
    let net = Network::new(&vs.root(), &c);
    let loaded = weights::load(&mut vs, run_dir.join("last.safetensors")).unwrap();
    assert_eq!(
        (loaded.direct, loaded.mapped, loaded.ignored),
        (vs.variables().len(), 0, 9),
        "all by name; one num_batches_tracked per batch-norm (stem, 3 per block, 2 projections)"
    );
    let sample = read(&run_dir.join("sample.safetensors"));
    let (input, logits) = (&sample[0].1, &sample[1].1);
    assert_eq!(
        (sample[0].0.as_str(), input.size()),
        ("input", vec![16, 1, 8, 8])
    );
    let ours = tch::no_grad(|| net.forward_t(input, false));
    let err = rel_l2(&ours, logits);
    println!("trained checkpoint: runtime vs PyTorch, relative L2 {err:.2e}");
    assert!(err <= 1e-5, "runtime vs PyTorch {err:.3e}");

    // The other way: weights the runtime changed and saved load into the generated module
    // with strict=True (num_batches_tracked included) and give the runtime's logits.
    tch::manual_seed(5);
    tch::no_grad(|| {
        for (name, mut v) in vs.variables() {
            let noise = Tensor::randn_like(&v) * 0.05;
            if name.ends_with("running_var") {
                let _ = v.g_add_(&noise.abs());
            } else {
                let _ = v.g_add_(&noise);
            }
        }
    });
    let rust_weights = dir.join("rust.safetensors");
    weights::save(&vs, &rust_weights).unwrap();
    let rust_logits = tch::no_grad(|| net.forward_t(input, false));
    assert!(rel_l2(&rust_logits, logits) > 1e-3, "the weights changed");
    let io = dir.join("rust.io.safetensors");
    Tensor::write_safetensors(&[("input", input), ("logits", &rust_logits)], &io).unwrap();
    let out = run(Command::new(python())
        .arg(root().join("scripts/pytorch_check.py"))
        .arg("--module")
        .arg(&module)
        .args(["--class", "DigitsTiny", "--weights"])
        .arg(&rust_weights)
        .arg("--io")
        .arg(&io));
    println!("{out}");
    assert!(out.contains("loads with strict=True"), "{out}");

    // --resume continues from the checkpoint: epoch 2 starts at step 23.
    let out = torchrun(
        &module,
        &run_dir,
        &[
            "--recipe",
            recipe_arg,
            "--epochs",
            "2",
            "--resume",
            "--max-steps",
            "25",
        ],
    );
    println!("{out}");
    assert!(
        out.contains("resumed from") && out.contains("epoch 1, step 23"),
        "{out}"
    );
    assert!(out.contains("epoch 2: "), "{out}");
    let resumed = read(&run_dir.join("last.safetensors"));
    assert!(
        resumed
            .iter()
            .zip(&last)
            .any(|((_, a), (_, b))| !a.equal(b)),
        "two more steps changed the weights"
    );
}
