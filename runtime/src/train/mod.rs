//! Training any [`ModuleT`] whose variables live in a [`VarStore`]: SGD with momentum, the
//! recipe's schedule, bf16 mixed precision, evaluation, checkpoints and exact resume.
//!
//! ```no_run
//! use archc_runtime::data::{self, Loader};
//! use archc_runtime::recipe::Recipe;
//! use archc_runtime::tch::{Device, nn::VarStore};
//! use archc_runtime::train::Trainer;
//! use std::sync::Arc;
//!
//! archc_runtime::resnext! {
//!     /// The shipped digits network.
//!     pub struct Digits = "../specs/digits/resnext_digits.arch";
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let recipe = Recipe::from_file("recipes/digits.toml")?;
//! let splits = data::open("data/digits", 1)?;
//! let [c, h, w] = Digits::INPUT;
//! let input = [c as usize, h as usize, w as usize];
//! let train = Loader::new(Arc::new(splits.train), recipe.train_transform(input), recipe.batch)
//!     .shuffle(recipe.seed);
//! let test = Loader::new(Arc::new(splits.test), recipe.eval_transform(input), 256);
//!
//! archc_runtime::tch::manual_seed(recipe.seed as i64);
//! let vs = VarStore::new(Device::Cpu);
//! let net = Digits::new(&vs.root());
//! let mut trainer = Trainer::new(&vs, &recipe, train.len());
//! trainer.fit(&vs, &net, &train, Some(&test), &Default::default(), &mut ())?;
//! let eval = trainer.evaluate(&net, &test)?;
//! println!("test accuracy {:.2}%", 100.0 * eval.top1);
//! # Ok(())
//! # }
//! ```
//!
//! ## Exactness
//! The optimizer is written here (not libtorch's) so that its momentum buffers can be saved:
//! `buf ← momentum·buf + (g + wd·w)`, `w ← w − lr·buf` (or, with Nesterov,
//! `w ← w − lr·(g + wd·w + momentum·buf)`), which is `torch.optim.SGD`'s update. The data order
//! and augmentation are functions of (seed, epoch, index) ([`crate::data::Loader`]), and a
//! checkpoint holds the weights, the batch-norm statistics, the momentum buffers and the
//! position in the epoch, so on the CPU a resumed run computes exactly what an uninterrupted
//! one would.
//!
//! ## Mixed precision (bf16)
//! libtorch's autocast is not reachable from tch on the CPU, so [`Trainer`] does what autocast
//! does by hand, for any module: the weights of convolutions and fully connected layers (every
//! trainable variable but batch-norm's, recognised by its `running_mean` sibling) are held in
//! bfloat16 in the `VarStore` and refreshed from fp32 master copies after each update; the
//! input is cast to bfloat16; batch-norm keeps fp32 parameters and statistics (libtorch's
//! batch-norm takes bf16 activations with fp32 parameters); the loss, the gradients' update
//! and the checkpoints are fp32. [`Trainer::finish`] puts the fp32 weights back.

mod sgd;

use crate::checkpoint::{self, CheckpointError, RunDir};
use crate::data::{DataError, Loader};
use crate::recipe::{Precision, Recipe};
use serde::{Deserialize, Serialize};
use sgd::Param;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Bad data.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Weights that do not fit.
    #[error(transparent)]
    Weights(#[from] crate::weights::WeightsError),
    /// The loss became NaN or infinite.
    #[error(
        "the loss is {loss} at epoch {epoch}, step {step}: training diverged (lower the learning rate?)"
    )]
    Diverged {
        /// The loss.
        loss: f64,
        /// Epoch (1-based).
        epoch: u64,
        /// Global step.
        step: u64,
    },
}

/// Running sums over the steps of one epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sums {
    /// Sum of the per-image loss.
    pub loss: f64,
    /// Images classified correctly (top-1).
    pub correct: u64,
    /// Images seen.
    pub seen: u64,
    /// Seconds spent in training steps (loading included).
    pub seconds: f64,
}

/// The record of one epoch (a line of `metrics.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch, from 1.
    pub epoch: u64,
    /// Steps done in total at its end.
    pub step: u64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (top-1, on augmented images, in train mode).
    pub train_acc: f64,
    /// Test loss, when a test set is given.
    pub test_loss: Option<f64>,
    /// Test accuracy (top-1).
    pub test_acc: Option<f64>,
    /// Test accuracy (top-5).
    pub test_top5: Option<f64>,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Training images per second.
    pub images_per_s: f64,
    /// Seconds of training (without the evaluation).
    pub seconds: f64,
}

/// Where the trainer is: what a checkpoint's `trainer.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// The current epoch, from 0 (`epochs` when training is over).
    pub epoch: u64,
    /// The next batch of the current epoch (the schedule's position is epoch + batch/batches).
    pub batch: u64,
    /// Steps done in total.
    pub step: u64,
    /// The seed of the data order and augmentation (and of the initialisation).
    pub seed: u64,
    /// Batches per epoch (the schedule's unit).
    pub batches: u64,
    /// The current epoch so far.
    pub partial: Sums,
    /// Finished epochs.
    pub history: Vec<EpochRecord>,
    /// The recipe, as TOML.
    pub recipe: String,
}

/// One training step's results.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Mean loss of the batch.
    pub loss: f64,
    /// Images classified correctly.
    pub correct: u64,
    /// Images in the batch.
    pub images: u64,
    /// Learning rate used.
    pub lr: f64,
}

/// What the trainer tells an [`Observer`] after each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Epoch, from 1.
    pub epoch: u64,
    /// Epochs in all.
    pub epochs: u64,
    /// Batches done in this epoch.
    pub batch: u64,
    /// Batches per epoch.
    pub batches: u64,
    /// Mean loss of the epoch so far.
    pub loss: f64,
    /// Accuracy of the epoch so far.
    pub acc: f64,
    /// Current learning rate.
    pub lr: f64,
    /// Images per second in this epoch so far.
    pub images_per_s: f64,
}

/// Watches a run: progress display, metrics, interruption. Every method has a default that does
/// nothing; `()` is the observer that watches nothing.
pub trait Observer {
    /// An epoch starts (or resumes at batch `from`).
    fn epoch_start(&mut self, _epoch: u64, _epochs: u64, _batches: u64, _from: u64) {}
    /// A step is done.
    fn step(&mut self, _p: &Progress) {}
    /// An epoch is done and evaluated; `history` is every epoch so far.
    fn epoch_end(&mut self, _r: &EpochRecord, _history: &[EpochRecord]) {}
    /// A checkpoint was written.
    fn checkpoint(&mut self, _dir: &Path) {}
    /// Asked after each step: `true` stops the run after a checkpoint (Ctrl-C).
    fn stop(&mut self) -> bool {
        false
    }
}

impl Observer for () {}

/// Options of [`Trainer::fit`].
#[derive(Debug, Clone, Default)]
pub struct FitOptions {
    /// The run folder: checkpoints (after every epoch, on a stop, and every
    /// `checkpoint_every` steps), `metrics.jsonl` and the final `model.safetensors`.
    pub run: Option<RunDir>,
    /// Also write a checkpoint every this many steps.
    pub checkpoint_every: Option<u64>,
    /// Stop (with a checkpoint) once this many steps are done in total.
    pub max_steps: Option<u64>,
}

/// How [`Trainer::fit`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every epoch is done.
    Finished,
    /// Stopped early (observer or `max_steps`) after writing a checkpoint, if there is a run
    /// folder; resume to continue.
    Stopped,
}

/// The results of an evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Mean loss (cross-entropy without label smoothing).
    pub loss: f64,
    /// Top-1 accuracy, 0..1.
    pub top1: f64,
    /// Top-5 accuracy, 0..1 (top-k with k = classes when there are fewer than 5).
    pub top5: f64,
    /// Per class: (correct, images).
    pub per_class: Vec<(u64, u64)>,
    /// Images evaluated.
    pub images: u64,
}

/// Trains a module with the variables of a [`VarStore`] (see the module docs).
#[derive(Debug)]
pub struct Trainer {
    recipe: Recipe,
    device: Device,
    params: Vec<Param>,
    /// The VarStore holds the training form of the weights: bf16 copies under mixed precision,
    /// channels-last 4-D weights with `channels_last`.
    entered: bool,
    state: State,
}

impl Trainer {
    /// A trainer for the trainable variables of `vs`, with `batches` steps per epoch (the
    /// schedule's unit; a [`Loader`]'s `len()`).
    pub fn new(vs: &VarStore, recipe: &Recipe, batches: usize) -> Trainer {
        let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
        let mut params = Vec::new();
        for (name, var) in &vars {
            if !var.requires_grad() {
                continue;
            }
            let bn = name
                .rsplit_once('.')
                .is_some_and(|(m, _)| vars.contains_key(&format!("{m}.running_mean")));
            let decay = !(recipe.optimizer.no_decay_bn_bias && var.dim() <= 1);
            params.push(Param::new(name.clone(), var, decay, !bn));
        }
        Trainer {
            recipe: recipe.clone(),
            device: vs.device(),
            params,
            entered: false,
            state: State {
                epoch: 0,
                batch: 0,
                step: 0,
                seed: recipe.seed,
                batches: batches as u64,
                partial: Sums::default(),
                history: Vec::new(),
                recipe: recipe.to_toml(),
            },
        }
    }

    /// A trainer that continues from a checkpoint folder: loads the weights into `vs` (which
    /// must hold fp32 variables), the momentum buffers and the state.
    pub fn resume(
        vs: &mut VarStore,
        recipe: &Recipe,
        batches: usize,
        checkpoint: &Path,
    ) -> Result<Trainer, TrainError> {
        crate::weights::load(vs, checkpoint.join("model.safetensors"))?;
        let mut t = Trainer::new(vs, recipe, batches);
        let opt = checkpoint.join("optimizer.safetensors");
        let bufs: BTreeMap<String, Tensor> = Tensor::read_safetensors(&opt)
            .map_err(|e| CheckpointError::Tensors {
                path: opt.clone(),
                message: e.to_string(),
            })?
            .into_iter()
            .collect();
        let invalid = |message: String| CheckpointError::Invalid {
            path: opt.clone(),
            message,
        };
        if bufs.len() != t.params.len() {
            return Err(invalid(format!(
                "{} momentum buffers for {} trainable variables",
                bufs.len(),
                t.params.len()
            ))
            .into());
        }
        for p in &mut t.params {
            let key = format!("momentum.{}", p.name);
            let b = bufs
                .get(&key)
                .ok_or_else(|| invalid(format!("no `{key}`")))?;
            p.load_momentum(b)
                .map_err(|m| invalid(format!("`{key}`: {m}")))?;
        }
        let json = checkpoint.join("trainer.json");
        let text = std::fs::read_to_string(&json).map_err(|source| CheckpointError::Io {
            path: json.clone(),
            source,
        })?;
        let state: State = serde_json::from_str(&text).map_err(|e| CheckpointError::Invalid {
            path: json.clone(),
            message: e.to_string(),
        })?;
        if state.batches != batches as u64 {
            return Err(CheckpointError::Invalid {
                path: json,
                message: format!(
                    "the run had {} batches per epoch, now {batches}: resume with the same data and batch size",
                    state.batches
                ),
            }
            .into());
        }
        t.state = State {
            recipe: recipe.to_toml(),
            ..state
        };
        Ok(t)
    }

    /// Where the trainer is.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The recipe.
    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    /// The learning rate of the next step.
    pub fn lr(&self) -> f64 {
        let b = self.state.batches.max(1) as f64;
        self.recipe
            .lr_at(self.state.epoch as f64 + self.state.batch as f64 / b)
    }

    fn mixed(&self) -> bool {
        self.recipe.precision == Precision::Bf16
    }

    /// Puts the training form of the weights into the VarStore, once: bf16 copies (mixed
    /// precision), channels-last memory order (`channels_last`).
    fn enter(&mut self) {
        if !self.entered && (self.mixed() || self.recipe.channels_last) {
            let (bf16, cl) = (self.mixed(), self.recipe.channels_last);
            for p in &mut self.params {
                p.enter(bf16, cl);
            }
            self.entered = true;
        }
    }

    /// Puts plain fp32 weights (contiguous) back into the VarStore after training in bf16 or
    /// channels-last (a no-op otherwise). [`Trainer::fit`] calls it when it returns.
    pub fn finish(&mut self) {
        if self.entered {
            for p in &mut self.params {
                p.leave();
            }
            self.entered = false;
        }
    }

    /// The input as the module takes it.
    fn input(&self, images: &Tensor) -> Tensor {
        let mut x = images.to_device(self.device);
        if self.entered && self.recipe.channels_last && x.dim() == 4 {
            x = sgd::channels_last(&x);
        }
        if self.entered && self.mixed() {
            x.to_kind(Kind::BFloat16)
        } else {
            x
        }
    }

    /// One SGD step on a batch, at the schedule's current position (which it advances by
    /// one batch; at the end of an epoch call [`Trainer::end_epoch`]).
    pub fn step(&mut self, model: &impl ModuleT, images: &Tensor, labels: &Tensor) -> StepStats {
        self.enter();
        let lr = self.lr();
        let x = self.input(images);
        let y = labels.to_device(self.device);
        let logits = model.forward_t(&x, true).to_kind(Kind::Float);
        let loss = logits.cross_entropy_loss::<Tensor>(
            &y,
            None,
            Reduction::Mean,
            -100,
            self.recipe.label_smoothing,
        );
        // The gradients as fresh tensors (`torch.autograd.grad`), not accumulated into `.grad`:
        // nothing to zero, and no extra pass over memory to add into zeros.
        let vars: Vec<&Tensor> = self.params.iter().map(|p| p.var()).collect();
        let grads = Tensor::run_backward(&[&loss], &vars, false, false);
        let opt = &self.recipe.optimizer;
        let hyper = (lr, opt.weight_decay, opt.momentum, opt.nesterov);
        tch::no_grad(|| sgd::step_all(&mut self.params, grads, hyper));
        let correct = tch::no_grad(|| {
            logits
                .argmax(-1, false)
                .eq_tensor(&y)
                .sum(Kind::Int64)
                .int64_value(&[])
        });
        let images = y.size()[0] as u64;
        let loss = loss.double_value(&[]);
        let s = &mut self.state;
        s.batch += 1;
        s.step += 1;
        s.partial.loss += loss * images as f64;
        s.partial.correct += correct as u64;
        s.partial.seen += images;
        StepStats {
            loss,
            correct: correct as u64,
            images,
            lr,
        }
    }

    /// Closes the current epoch: records it (with the test results) and moves to the next.
    pub fn end_epoch(&mut self, test: Option<&Evaluation>) -> EpochRecord {
        let s = &mut self.state;
        let p = s.partial;
        let seen = p.seen.max(1) as f64;
        let b = s.batches.max(1) as f64;
        let last = ((s.batch.max(1) - 1) as f64) / b;
        let record = EpochRecord {
            epoch: s.epoch + 1,
            step: s.step,
            train_loss: p.loss / seen,
            train_acc: p.correct as f64 / seen,
            test_loss: test.map(|e| e.loss),
            test_acc: test.map(|e| e.top1),
            test_top5: test.map(|e| e.top5),
            lr: self.recipe.lr_at(s.epoch as f64 + last),
            images_per_s: if p.seconds > 0.0 {
                p.seen as f64 / p.seconds
            } else {
                0.0
            },
            seconds: p.seconds,
        };
        s.history.push(record.clone());
        s.epoch += 1;
        s.batch = 0;
        s.partial = Sums::default();
        record
    }

    /// Evaluates `model` (eval mode, batch-norm running statistics) on every batch of `data`.
    pub fn evaluate(
        &mut self,
        model: &impl ModuleT,
        data: &Loader,
    ) -> Result<Evaluation, DataError> {
        let classes = data.dataset().classes().len();
        let kind_input = |t: &Tensor| self.input(t);
        evaluate_with(model, data, classes, kind_input)
    }

    /// The variables to save: fp32 weights (masters under mixed precision) with their names.
    fn named_weights(&self, vs: &VarStore) -> Vec<(String, Tensor)> {
        let masters: BTreeMap<&str, &Tensor> = self
            .params
            .iter()
            .filter_map(|p| p.master().map(|m| (p.name.as_str(), m)))
            .collect();
        let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
        weights_for_save(vars.into_iter().map(|(n, t)| {
            let t = match masters.get(n.as_str()) {
                Some(m) => m.shallow_clone(),
                None => t,
            };
            (n, t)
        }))
    }

    /// Writes a checkpoint into the run folder (see [`crate::checkpoint`]).
    pub fn save(&self, vs: &VarStore, run: &RunDir) -> Result<PathBuf, CheckpointError> {
        let model = self.named_weights(vs);
        let momentum: Vec<(String, Tensor)> = self
            .params
            .iter()
            .map(|p| {
                (
                    format!("momentum.{}", p.name),
                    p.momentum().to_device(Device::Cpu).contiguous(),
                )
            })
            .collect();
        let state = serde_json::to_string_pretty(&self.state).expect("state serialises");
        // The step and the finished epochs name a state: an epoch's end follows its last step.
        let name = format!("step-{:08}-epoch-{:04}", self.state.step, self.state.epoch);
        run.write_checkpoint(&name, |dir| {
            write_tensors(&dir.join("model.safetensors"), &model)?;
            write_tensors(&dir.join("optimizer.safetensors"), &momentum)?;
            let json = dir.join("trainer.json");
            std::fs::write(&json, state)
                .map_err(|source| CheckpointError::Io { path: json, source })
        })
    }

    /// Writes the current weights (fp32, torchvision names) to `path`, atomically.
    pub fn save_weights(&self, vs: &VarStore, path: &Path) -> Result<(), CheckpointError> {
        checkpoint::write_tensors_atomic(path, &self.named_weights(vs))
    }

    /// Writes `metrics.jsonl` (one line per finished epoch) into the run folder, atomically.
    fn write_metrics(&self, run: &RunDir) -> Result<(), CheckpointError> {
        let mut s = String::new();
        for r in &self.state.history {
            s.push_str(&serde_json::to_string(r).expect("record serialises"));
            s.push('\n');
        }
        checkpoint::write_bytes_atomic(&run.file("metrics.jsonl"), s.as_bytes())
    }

    /// Trains to the recipe's last epoch from where the trainer is, evaluating on `test` after
    /// each epoch; see [`FitOptions`] for checkpoints and early stops.
    pub fn fit(
        &mut self,
        vs: &VarStore,
        model: &impl ModuleT,
        train: &Loader,
        test: Option<&Loader>,
        opts: &FitOptions,
        observer: &mut dyn Observer,
    ) -> Result<Outcome, TrainError> {
        // However the epochs end (finished, stopped or failed), `finish` runs after them.
        let out = (|| {
            let epochs = self.recipe.epochs;
            let batches = self.state.batches;
            let save = |t: &Trainer, observer: &mut dyn Observer| -> Result<(), TrainError> {
                if let Some(run) = &opts.run {
                    let dir = t.save(vs, run)?;
                    observer.checkpoint(&dir);
                }
                Ok(())
            };
            while self.state.epoch < epochs {
                let epoch = self.state.epoch;
                observer.epoch_start(epoch + 1, epochs, batches, self.state.batch);
                let mut clock = Instant::now();
                for batch in train.epoch(epoch, self.state.batch as usize) {
                    let batch = batch?;
                    let st = self.step(model, &batch.images, &batch.labels);
                    let now = Instant::now();
                    self.state.partial.seconds += (now - clock).as_secs_f64();
                    clock = now;
                    if !st.loss.is_finite() {
                        return Err(TrainError::Diverged {
                            loss: st.loss,
                            epoch: epoch + 1,
                            step: self.state.step,
                        });
                    }
                    let p = self.state.partial;
                    observer.step(&Progress {
                        epoch: epoch + 1,
                        epochs,
                        batch: self.state.batch,
                        batches,
                        loss: p.loss / p.seen.max(1) as f64,
                        acc: p.correct as f64 / p.seen.max(1) as f64,
                        lr: st.lr,
                        images_per_s: p.seen as f64 / p.seconds.max(1e-9),
                    });
                    let stop =
                        observer.stop() || opts.max_steps.is_some_and(|m| self.state.step >= m);
                    if stop {
                        save(self, observer)?;
                        return Ok(Outcome::Stopped);
                    }
                    if opts
                        .checkpoint_every
                        .is_some_and(|k| k > 0 && self.state.step % k == 0)
                        && self.state.batch < batches
                    {
                        save(self, observer)?;
                    }
                }
                let eval = match test {
                    Some(t) => Some(self.evaluate(model, t)?),
                    None => None,
                };
                let record = self.end_epoch(eval.as_ref());
                if let Some(run) = &opts.run {
                    self.write_metrics(run)?;
                }
                save(self, observer)?;
                observer.epoch_end(&record, &self.state.history);
            }
            if let Some(run) = &opts.run {
                self.save_weights(vs, &run.file("model.safetensors"))?;
            }
            Ok(Outcome::Finished)
        })();
        self.finish();
        out
    }
}

fn write_tensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<(), CheckpointError> {
    Tensor::write_safetensors(tensors, path).map_err(|e| CheckpointError::Tensors {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Named variables as a torchvision `state_dict`: on the CPU, contiguous, plus a
/// `num_batches_tracked` counter per batch-norm (as [`crate::weights::save`] writes them).
fn weights_for_save(vars: impl Iterator<Item = (String, Tensor)>) -> Vec<(String, Tensor)> {
    let mut out: Vec<(String, Tensor)> = vars
        .map(|(n, t)| (n, t.to_device(Device::Cpu).contiguous()))
        .collect();
    let counters: Vec<String> = out
        .iter()
        .filter_map(|(n, _)| n.strip_suffix(".running_mean"))
        .map(|bn| format!("{bn}.num_batches_tracked"))
        .collect();
    for c in counters {
        out.push((c, Tensor::zeros([], (Kind::Int64, Device::Cpu))));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Evaluates `model` in eval mode on `data`; `input` prepares a batch of images.
pub(crate) fn evaluate_with(
    model: &impl ModuleT,
    data: &Loader,
    classes: usize,
    input: impl Fn(&Tensor) -> Tensor,
) -> Result<Evaluation, DataError> {
    let mut per_class = vec![(0u64, 0u64); classes];
    let (mut loss, mut top1, mut top5, mut n) = (0.0, 0u64, 0u64, 0u64);
    for batch in data.epoch(0, 0) {
        let batch = batch?;
        let x = input(&batch.images);
        let y = batch.labels.to_device(x.device());
        let (l, hit1, hit5) = tch::no_grad(|| {
            let logits = model.forward_t(&x, false).to_kind(Kind::Float);
            let l = logits.cross_entropy_for_logits(&y).double_value(&[]);
            let k = logits.size()[1].min(5);
            let (_, top) = logits.topk(k, -1, true, true);
            let hit = top.eq_tensor(&y.unsqueeze(1));
            let hit1 = hit.select(1, 0).to_device(Device::Cpu);
            let hit5 = hit.any_dim(1, false).to_device(Device::Cpu);
            (l, hit1, hit5)
        });
        let labels = Vec::<i64>::try_from(&batch.labels).unwrap_or_default();
        let hit1 = Vec::<bool>::try_from(&hit1).unwrap_or_default();
        let hit5 = Vec::<bool>::try_from(&hit5).unwrap_or_default();
        for ((&label, &h1), &h5) in labels.iter().zip(&hit1).zip(&hit5) {
            if let Some(c) = per_class.get_mut(label as usize) {
                c.1 += 1;
                c.0 += h1 as u64;
            }
            top1 += h1 as u64;
            top5 += h5 as u64;
        }
        loss += l * labels.len() as f64;
        n += labels.len() as u64;
    }
    let d = n.max(1) as f64;
    Ok(Evaluation {
        loss: loss / d,
        top1: top1 as f64 / d,
        top5: top5 as f64 / d,
        per_class,
        images: n,
    })
}

/// Evaluates a module in fp32 (what `archc-run eval` does with loaded weights).
pub fn evaluate(
    model: &impl ModuleT,
    data: &Loader,
    device: Device,
) -> Result<Evaluation, DataError> {
    let classes = data.dataset().classes().len();
    evaluate_with(model, data, classes, |t| t.to_device(device))
}
