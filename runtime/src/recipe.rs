//! Training recipes: the hyper-parameters of a run, in a TOML file.
//!
//! Every key has a default, so a recipe names only what it changes; unknown keys are errors.
//! [`Recipe::from_file`] reports a bad recipe with its place (`file:line:col`, from toml's
//! spans) and the line with a caret under the culprit.
//!
//! ```toml
//! epochs = 300                 # passes over the training set
//! batch = 128                  # images per step
//! seed = 0                     # initialisation, data order, augmentation
//! precision = "fp32"           # or "bf16" (mixed precision)
//! label_smoothing = 0.0
//! channels_last = false        # true: NHWC memory order while training (faster convolutions)
//!
//! [optimizer]                  # SGD
//! momentum = 0.9
//! nesterov = false
//! weight_decay = 5e-4
//! no_decay_bn_bias = false     # true: no weight decay on batch-norm parameters and biases
//!
//! [lr]
//! base = 0.1
//! warmup_epochs = 0.0          # linear warm-up from 0 to `base`
//! schedule = "step"            # "constant", "step" (× gamma at each milestone) or "cosine"
//! milestones = [150, 225]      # epochs; or `step_every = 30`
//! gamma = 0.1
//!
//! [data]
//! augment = "pad-crop"         # "none", "pad-crop" (CIFAR) or "random-resized-crop" (ImageNet)
//! pad = 4
//! flip = true
//! mean = [0.4914, 0.4822, 0.4465]
//! std = [0.2470, 0.2435, 0.2616]
//! ```

use crate::data::{Augment, Dataset, Loader, Transform};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt::Write as _;
use std::path::Path;
use toml::Spanned;

/// Number type of training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats throughout.
    #[default]
    Fp32,
    /// Mixed precision: convolutions and fully connected layers in bfloat16 (weights cast from
    /// fp32 master copies each step), batch-norm, loss and the optimizer in fp32.
    Bf16,
}

/// How the learning rate changes after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// `base` throughout.
    Constant,
    /// `base · gammaᵏ` after the k-th milestone (or every `step_every` epochs).
    Step,
    /// Half a cosine from `base` to `min` over the epochs after the warm-up.
    #[default]
    Cosine,
}

/// The training augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum AugmentKind {
    /// None.
    #[default]
    None,
    /// CIFAR: pad, random crop, flip.
    PadCrop,
    /// ImageNet: random-resized crop, flip.
    RandomResizedCrop,
}

/// The optimizer: SGD with momentum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Optimizer {
    /// Momentum (0 for plain SGD).
    #[serde(deserialize_with = "fraction")]
    pub momentum: f64,
    /// Nesterov momentum.
    pub nesterov: bool,
    /// L2 weight decay, added to the gradient.
    #[serde(deserialize_with = "non_negative")]
    pub weight_decay: f64,
    /// No weight decay on batch-norm parameters and biases (1-D variables).
    pub no_decay_bn_bias: bool,
}

impl Default for Optimizer {
    fn default() -> Optimizer {
        Optimizer {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 5e-4,
            no_decay_bn_bias: false,
        }
    }
}

/// The learning rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Lr {
    /// The peak learning rate.
    #[serde(deserialize_with = "positive")]
    pub base: f64,
    /// Epochs of linear warm-up from 0 to `base` (fractions allowed).
    #[serde(deserialize_with = "non_negative")]
    pub warmup_epochs: f64,
    /// The schedule after the warm-up.
    pub schedule: Spanned<Schedule>,
    /// Step schedule: the epochs at which the rate is multiplied by `gamma`.
    pub milestones: Spanned<Vec<u64>>,
    /// Step schedule: multiply by `gamma` every this many epochs (instead of milestones).
    pub step_every: Option<Spanned<u64>>,
    /// The step factor.
    #[serde(deserialize_with = "fraction")]
    pub gamma: f64,
    /// Cosine schedule: the final rate.
    #[serde(deserialize_with = "non_negative")]
    pub min: f64,
}

impl Default for Lr {
    fn default() -> Lr {
        Lr {
            base: 0.1,
            warmup_epochs: 0.0,
            schedule: Spanned::new(0..0, Schedule::Cosine),
            milestones: Spanned::new(0..0, Vec::new()),
            step_every: None,
            gamma: 0.1,
            min: 0.0,
        }
    }
}

/// Data loading and augmentation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Data {
    /// The training augmentation.
    pub augment: AugmentKind,
    /// `pad-crop`: zero padding on each side.
    pub pad: usize,
    /// Random horizontal flips (`pad-crop`, `random-resized-crop`).
    pub flip: bool,
    /// `random-resized-crop`: the area fraction range.
    pub scale: [f64; 2],
    /// `random-resized-crop`: the aspect ratio range.
    pub ratio: [f64; 2],
    /// Evaluation: fraction kept by the centre crop after resizing (ImageNet: 0.875).
    #[serde(deserialize_with = "fraction")]
    pub crop: f64,
    /// Per-channel mean of 0..1 pixel values (one value: every channel).
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
    /// Loader worker threads (0: on the training thread); default: one per CPU, at most 8.
    pub workers: Option<usize>,
    /// Batches each worker prepares ahead.
    pub prefetch: usize,
}

impl Default for Data {
    fn default() -> Data {
        Data {
            augment: AugmentKind::None,
            pad: 4,
            flip: true,
            scale: [0.08, 1.0],
            ratio: [3.0 / 4.0, 4.0 / 3.0],
            crop: 1.0,
            mean: vec![0.5],
            std: vec![0.25],
            workers: None,
            prefetch: 2,
        }
    }
}

/// A training recipe. See the module docs for the file format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recipe {
    /// Passes over the training set.
    pub epochs: u64,
    /// Images per step.
    pub batch: usize,
    /// Seed of the initialisation, the data order and the augmentation.
    pub seed: u64,
    /// fp32 or bf16 mixed precision.
    pub precision: Precision,
    /// Label smoothing of the cross-entropy loss.
    #[serde(deserialize_with = "fraction")]
    pub label_smoothing: f64,
    /// Keep 4-D weights and the input in channels-last memory order while training (faster
    /// convolutions with oneDNN on CPUs and with tensor cores on GPUs; the results are the same
    /// function, computed in another order).
    pub channels_last: bool,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// The learning rate and its schedule.
    pub lr: Lr,
    /// Data loading and augmentation.
    pub data: Data,
}

impl Default for Recipe {
    fn default() -> Recipe {
        Recipe {
            epochs: 10,
            batch: 64,
            seed: 0,
            precision: Precision::Fp32,
            label_smoothing: 0.0,
            channels_last: false,
            optimizer: Optimizer::default(),
            lr: Lr::default(),
            data: Data::default(),
        }
    }
}

fn check<'de, D: Deserializer<'de>>(
    d: D,
    ok: fn(f64) -> bool,
    what: &str,
) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    if ok(v) {
        Ok(v)
    } else {
        Err(D::Error::custom(format!("expected {what}, found {v}")))
    }
}

fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    check(d, |v| v > 0.0 && v.is_finite(), "a positive number")
}

fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    check(d, |v| v >= 0.0 && v.is_finite(), "a number ≥ 0")
}

fn fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    check(d, |v| (0.0..=1.0).contains(&v), "a number from 0 to 1")
}

/// A recipe that could not be read, with its place when known.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct RecipeError {
    /// The rendered error: `file:line:col: message`, then the line and a caret.
    pub message: String,
    /// (line, column), 1-based, when the error has a place.
    pub location: Option<(usize, usize)>,
}

/// `file:line:col: message` plus the source line with carets under `span`.
fn located(file: &str, text: &str, span: std::ops::Range<usize>, message: &str) -> RecipeError {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_no = text[..start].matches('\n').count() + 1;
    let col = text[line_start..start].chars().count() + 1;
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = &text[line_start..line_end];
    let width = text[start..span.end.clamp(start, line_end)]
        .chars()
        .count()
        .max(1);
    let mut s = format!("{file}:{line_no}:{col}: {}", message.trim_end());
    let gutter = line_no.to_string().len();
    let _ = write!(
        s,
        "\n{:gutter$} |\n{line_no} | {line}\n{:gutter$} | {}{}",
        "",
        "",
        " ".repeat(col - 1),
        "^".repeat(width)
    );
    RecipeError {
        message: s,
        location: Some((line_no, col)),
    }
}

impl Recipe {
    /// Reads a recipe file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Recipe, RecipeError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| RecipeError {
            message: format!("{}: {e}", path.display()),
            location: None,
        })?;
        Recipe::from_str_named(&text, &path.display().to_string())
    }

    /// Parses recipe text; `file` names it in errors.
    pub fn from_str_named(text: &str, file: &str) -> Result<Recipe, RecipeError> {
        let recipe: Recipe = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => located(file, text, span, e.message()),
            None => RecipeError {
                message: format!("{file}: {}", e.message()),
                location: None,
            },
        })?;
        recipe.validate().map_err(|(span, msg)| match span {
            Some(span) if span.end > 0 => located(file, text, span, &msg),
            _ => RecipeError {
                message: format!("{file}: {msg}"),
                location: None,
            },
        })?;
        Ok(recipe)
    }

    /// Checks what the types cannot: returns the culprit's span (when it came from a file) and a
    /// message. Run it again after changing fields (command-line flags).
    pub fn validate(&self) -> Result<(), (Option<std::ops::Range<usize>>, String)> {
        if self.epochs == 0 {
            return Err((None, "epochs must be at least 1".into()));
        }
        if self.batch < 2 {
            return Err((
                None,
                "batch must be at least 2 (batch-norm needs two images)".into(),
            ));
        }
        let lr = &self.lr;
        let ms = lr.milestones.get_ref();
        if ms.windows(2).any(|w| w[0] >= w[1]) {
            return Err((
                Some(lr.milestones.span()),
                "milestones must be increasing".into(),
            ));
        }
        if let Some(every) = &lr.step_every {
            if *every.get_ref() == 0 {
                return Err((Some(every.span()), "step_every must be at least 1".into()));
            }
            if !ms.is_empty() {
                return Err((
                    Some(every.span()),
                    "give either milestones or step_every, not both".into(),
                ));
            }
        }
        if *lr.schedule.get_ref() == Schedule::Step && ms.is_empty() && lr.step_every.is_none() {
            return Err((
                Some(lr.schedule.span()),
                "a step schedule needs milestones = [...] or step_every = N".into(),
            ));
        }
        let d = &self.data;
        if d.mean.is_empty() || d.mean.len() != d.std.len() {
            return Err((
                None,
                "data.mean and data.std need the same, non-zero length".into(),
            ));
        }
        if d.std.iter().any(|s| *s <= 0.0) {
            return Err((None, "data.std must be positive".into()));
        }
        if !(d.scale[0] > 0.0 && d.scale[0] <= d.scale[1] && d.scale[1] <= 1.0) {
            return Err((
                None,
                "data.scale must be [lo, hi] with 0 < lo ≤ hi ≤ 1".into(),
            ));
        }
        if !(d.ratio[0] > 0.0 && d.ratio[0] <= d.ratio[1]) {
            return Err((None, "data.ratio must be [lo, hi] with 0 < lo ≤ hi".into()));
        }
        if d.crop <= 0.0 {
            return Err((None, "data.crop must be in (0, 1]".into()));
        }
        Ok(())
    }

    /// The learning rate at a point of training (`epoch` counts from 0 and may be fractional:
    /// step `s` of an epoch of `n` steps is at `epoch + s/n`).
    pub fn lr_at(&self, epoch: f64) -> f64 {
        let lr = &self.lr;
        let warm = lr.warmup_epochs;
        if epoch < warm {
            return lr.base * epoch / warm;
        }
        match lr.schedule.get_ref() {
            Schedule::Constant => lr.base,
            Schedule::Step => {
                let k = match &lr.step_every {
                    Some(every) => (epoch / *every.get_ref() as f64).floor() as i32,
                    None => lr
                        .milestones
                        .get_ref()
                        .iter()
                        .filter(|m| epoch >= **m as f64)
                        .count() as i32,
                };
                lr.base * lr.gamma.powi(k)
            }
            Schedule::Cosine => {
                let span = (self.epochs as f64 - warm).max(1e-9);
                let t = ((epoch - warm) / span).clamp(0.0, 1.0);
                lr.min + 0.5 * (lr.base - lr.min) * (1.0 + (std::f64::consts::PI * t).cos())
            }
        }
    }

    /// The per-channel list, `channels` long (one value stands for all).
    fn per_channel(v: &[f32], channels: usize) -> Vec<f32> {
        if v.len() == 1 {
            vec![v[0]; channels]
        } else {
            v.to_vec()
        }
    }

    /// The training transform for inputs of `[C, H, W]`.
    pub fn train_transform(&self, input: [usize; 3]) -> Transform {
        let d = &self.data;
        let augment = match d.augment {
            AugmentKind::None => Augment::None,
            AugmentKind::PadCrop => Augment::PadCrop {
                pad: d.pad,
                flip: d.flip,
            },
            AugmentKind::RandomResizedCrop => Augment::RandomResizedCrop {
                scale: (d.scale[0], d.scale[1]),
                ratio: (d.ratio[0], d.ratio[1]),
                flip: d.flip,
            },
        };
        Transform {
            augment,
            ..self.eval_transform(input)
        }
    }

    /// The training loader of `images` for inputs of `[C, H, W]`: the recipe's batch and
    /// training transform, shuffled with its seed (the last partial batch dropped).
    pub fn train_loader(&self, images: Dataset, input: [usize; 3]) -> Loader {
        Loader::new(
            std::sync::Arc::new(images),
            self.train_transform(input),
            self.batch,
        )
        .shuffle(self.seed)
    }

    /// The evaluation transform (resize, centre crop, normalise) for inputs of `[C, H, W]`.
    pub fn eval_transform(&self, input: [usize; 3]) -> Transform {
        let [c, h, w] = input;
        Transform {
            size: [h, w],
            augment: Augment::None,
            mean: Self::per_channel(&self.data.mean, c),
            std: Self::per_channel(&self.data.std, c),
            crop: self.data.crop,
        }
    }

    /// The recipe as TOML text (what a run records next to its results).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}
