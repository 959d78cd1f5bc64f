//! Training on real data: scikit-learn's handwritten digits (exported by scripts/digits.py,
//! which scripts/test.sh runs), with the shipped spec and recipe.
//! - the library API trains a `resnext!` struct: the loss falls and test accuracy beats 80%;
//! - bf16 mixed precision trains and leaves fp32 weights;
//! - `archc-run train` stopped (--max-steps), interrupted (Ctrl-C: exit 130) or killed (SIGKILL)
//!   and resumed ends with weights bit-identical to an uninterrupted run;
//! - `eval` and `predict` read the result; exit codes.

use archc_runtime::data::{self, Loader};
use archc_runtime::recipe::{Precision, Recipe};
use archc_runtime::tch::nn::VarStore;
use archc_runtime::tch::{Device, Kind};
use archc_runtime::train::{FitOptions, Trainer};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};
mod common;

archc_runtime::resnext! {
    /// The shipped digits network.
    pub struct Digits = "../specs/digits/resnext_digits.arch";
}

fn digits() -> PathBuf {
    let d = common::root().join("data/digits");
    assert!(
        d.join("train").is_dir(),
        "{} is missing: run `python3 scripts/digits.py` (scripts/test.sh does)",
        d.display()
    );
    d
}

fn recipe() -> Recipe {
    Recipe::from_file(common::root().join("recipes/digits.toml")).unwrap()
}

/// Trains the `resnext!` struct with the library API; returns (history, trainer, vs).
fn train_library(recipe: &Recipe) -> (Trainer, VarStore) {
    tch::set_num_threads(1);
    let splits = data::open(digits(), 1).unwrap();
    let input = Digits::INPUT.map(|d| d as usize);
    let train = recipe.train_loader(splits.train, input).workers(1);
    let test = Loader::new(Arc::new(splits.test), recipe.eval_transform(input), 360).workers(1);
    tch::manual_seed(recipe.seed as i64);
    let vs = VarStore::new(Device::Cpu);
    let net = Digits::new(&vs.root());
    let mut trainer = Trainer::new(&vs, recipe, train.len());
    trainer
        .fit(
            &vs,
            &net,
            &train,
            Some(&test),
            &FitOptions::default(),
            &mut (),
        )
        .unwrap();
    (trainer, vs)
}

#[test]
fn a_resnext_struct_learns_the_digits() {
    let mut r = recipe();
    r.epochs = 3;
    let (trainer, _vs) = train_library(&r);
    let h = &trainer.state().history;
    assert_eq!(h.len(), 3);
    assert!(h[2].train_loss < 0.5 * h[0].train_loss, "{h:#?}");
    let acc = h[2].test_acc.unwrap();
    assert!(acc > 0.80, "test accuracy {acc} (chance: 0.10): {h:#?}");
    assert_eq!(h[2].step, 3 * 22);
}

#[test]
fn bf16_mixed_precision_trains_and_leaves_fp32_weights() {
    let mut r = recipe();
    r.epochs = 2;
    r.precision = Precision::Bf16;
    let (trainer, vs) = train_library(&r);
    let h = &trainer.state().history;
    assert!(h[1].train_loss < h[0].train_loss, "{h:#?}");
    assert!(h[1].test_acc.unwrap() > 0.5, "{h:#?}");
    for (name, t) in vs.variables() {
        assert_eq!(t.kind(), Kind::Float, "{name}");
    }
}

#[test]
fn channels_last_training_learns_and_leaves_plain_weights() {
    let mut r = recipe();
    r.epochs = 2;
    r.channels_last = true;
    let (trainer, vs) = train_library(&r);
    let h = &trainer.state().history;
    assert!(h[1].train_loss < h[0].train_loss, "{h:#?}");
    assert!(h[1].test_acc.unwrap() > 0.5, "{h:#?}");
    for (name, t) in vs.variables() {
        assert!(t.is_contiguous(), "{name} is left channels-last");
        assert_eq!(t.kind(), Kind::Float, "{name}");
    }
}

fn archc_run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archc-run"))
        .current_dir(common::root())
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("archc-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

const SPEC: &str = "specs/digits/resnext_digits.arch";

fn train_args<'a>(out: &'a str, data: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        SPEC,
        "--data",
        data,
        "--recipe",
        "recipes/digits.toml",
        "--epochs",
        "2",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--workers",
        "1",
        "--out",
        out,
    ];
    a.extend_from_slice(extra);
    a
}

/// The checkpoint LATEST names, once it names one at step ≥ `min_step`.
fn wait_for_checkpoint(run: &Path, min_step: u64, child: &mut std::process::Child) {
    let start = Instant::now();
    loop {
        if let Ok(name) = std::fs::read_to_string(run.join("checkpoints/LATEST")) {
            // step-00000009-epoch-0000
            let step: u64 = name.trim()[5..13].parse().unwrap();
            if step >= min_step {
                return;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before a checkpoint at step {min_step}"
        );
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn weights(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("model.safetensors")).unwrap()
}

#[test]
fn interrupted_and_resumed_runs_end_bit_identical() {
    let data = digits();
    let data = data.to_str().unwrap();
    let dirs: Vec<PathBuf> = ["full", "stopped", "killed", "ctrlc"]
        .iter()
        .map(|n| temp(n))
        .collect();
    let s: Vec<&str> = dirs.iter().map(|d| d.to_str().unwrap()).collect();

    // Uninterrupted.
    let o = archc_run(&train_args(s[0], data, &[]));
    assert!(o.status.success(), "{}", text(&o));
    let reference = weights(&dirs[0]);
    for f in ["metrics.jsonl", "curves.svg", "classes.txt", "recipe.toml"] {
        assert!(dirs[0].join(f).is_file(), "{f}");
    }
    let metrics = std::fs::read_to_string(dirs[0].join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 2);

    // Stopped mid-epoch by --max-steps, then resumed.
    let o = archc_run(&train_args(s[1], data, &["--max-steps", "30"]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("stopped at epoch 2, batch 8/22 (step 30)"),
        "{}",
        text(&o)
    );
    assert!(!dirs[1].join("model.safetensors").exists());
    // Without --resume the run folder is not overwritten.
    let o = archc_run(&train_args(s[1], data, &[]));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = archc_run(&train_args(s[1], data, &["--resume"]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("resuming"), "{}", text(&o));
    assert!(weights(&dirs[1]) == reference, "stopped + resumed differs");
    let resumed = std::fs::read_to_string(dirs[1].join("metrics.jsonl")).unwrap();
    let epochs = |m: &str| -> Vec<(f64, f64)> {
        m.lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["train_loss"].as_f64().unwrap(),
                    v["test_acc"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    assert_eq!(epochs(&resumed), epochs(&metrics));

    // Killed with SIGKILL while it writes checkpoints every 3 steps, then resumed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_archc-run"))
        .current_dir(common::root())
        .args(train_args(s[2], data, &["--checkpoint-every", "3"]))
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&dirs[2], 9, &mut child);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let latest = std::fs::read_to_string(dirs[2].join("checkpoints/LATEST")).unwrap();
    let ck = dirs[2].join("checkpoints").join(latest.trim());
    for f in ["model.safetensors", "optimizer.safetensors", "trainer.json"] {
        assert!(ck.join(f).is_file(), "{f} in {}", ck.display());
    }
    assert!(
        !dirs[2].join("model.safetensors").exists(),
        "killed before the end"
    );
    let o = archc_run(&train_args(s[2], data, &["--resume"]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(weights(&dirs[2]) == reference, "killed + resumed differs");

    // Ctrl-C (SIGINT): finishes the step, writes a checkpoint, exits with 130.
    let mut child = Command::new(env!("CARGO_BIN_EXE_archc-run"))
        .current_dir(common::root())
        .args(train_args(s[3], data, &[]))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The first checkpoint comes after epoch 1; interrupt during epoch 2.
    wait_for_checkpoint(&dirs[3], 22, &mut child);
    // The shell's own `kill`, so that no procps is needed.
    let kill = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert!(text(&o).contains("interrupted"), "{}", text(&o));
    let o = archc_run(&train_args(s[3], data, &["--resume"]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        weights(&dirs[3]) == reference,
        "interrupted + resumed differs"
    );

    // Two runs' curves in one picture.
    let svg = dirs[0].join("both.svg");
    let o = archc_run(&[
        "plot",
        &format!("full={}", s[0]),
        &format!("stopped={}", s[1]),
        "-o",
        svg.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(picture.starts_with("<svg") && picture.contains("full") && picture.contains("stopped"));

    // eval and predict read the weights, with the run's recipe and class names.
    let w = dirs[0].join("model.safetensors");
    let w = w.to_str().unwrap();
    let eval = |extra: &[&str]| {
        let args = [
            "eval",
            SPEC,
            "--weights",
            w,
            "--data",
            data,
            "--device",
            "cpu",
        ];
        archc_run(&[&args[..], extra].concat())
    };
    let o = eval(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let last = epochs(&metrics)[1].1;
    assert!(
        text(&o).contains(&format!("top-1 {:.2}%", 100.0 * last)),
        "eval agrees with training's last test accuracy {last}: {}",
        text(&o)
    );
    let o = eval(&["--min-accuracy", "100.5"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let img = std::fs::read_dir(Path::new(data).join("test/7"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let o = archc_run(&[
        "predict",
        SPEC,
        "--weights",
        w,
        "--device",
        "cpu",
        "--top",
        "3",
        img.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let line = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(line.matches('%').count(), 3, "{line}");
    for d in &dirs {
        std::fs::remove_dir_all(d).unwrap();
    }
}

#[test]
fn bad_input_exits_with_2_and_says_where() {
    let dir = temp("bad");
    std::fs::create_dir_all(&dir).unwrap();
    let recipe = dir.join("bad.toml");
    std::fs::write(&recipe, "epochs = 2\n[lr]\nbase = \"fast\"\n").unwrap();
    let (data, run) = (digits(), dir.join("run"));
    // `train SPEC` on the digits into `run`, with `extra` arguments.
    let train = |spec: &str, extra: &[&str]| {
        let args = ["train", spec, "--data", data.to_str().unwrap()];
        archc_run(&[&args[..], &["--out", run.to_str().unwrap()], extra].concat())
    };
    let o = train(SPEC, &["--recipe", recipe.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("bad.toml:3:8"), "{}", text(&o));
    // Data with more classes than the network: the digits into a 5-class variant.
    let spec = dir.join("five.arch");
    let src = std::fs::read_to_string(common::root().join(SPEC)).unwrap();
    std::fs::write(&spec, src.replace("classes 10", "classes 5")).unwrap();
    let o = train(spec.to_str().unwrap(), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("10 classes") && text(&o).contains("5 outputs"),
        "{}",
        text(&o)
    );
    // Weights that do not fit.
    let o = archc_run(&[
        "predict",
        SPEC,
        "--weights",
        recipe.to_str().unwrap(),
        "x.png",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}
