//! Trains a `resnext!` struct on scikit-learn's handwritten digits with the library's trainer,
//! then saves its weights (torchvision names) and reports the test accuracy.
//!
//! ```text
//! python3 scripts/digits.py            # once: exports data/digits
//! cargo run --release -p classify --bin train -- [--data data/digits] [--recipe recipes/digits.toml] [--epochs N]
//! ```

use archc_runtime::data::{self, Loader};
use archc_runtime::recipe::Recipe;
use archc_runtime::tch::{self, Device, nn::VarStore};
use archc_runtime::train::{EpochRecord, FitOptions, Observer, Trainer};
use std::error::Error;
use std::sync::Arc;

archc_runtime::resnext! {
    /// A small ResNeXt for 8×8 digits (specs/digits/resnext_digits.arch).
    pub struct Digits = "../../specs/digits/resnext_digits.arch";
}

/// The value after `name` on the command line.
fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

/// Prints one line per epoch.
struct Print;

impl Observer for Print {
    fn epoch_end(&mut self, r: &EpochRecord, _history: &[EpochRecord]) {
        println!(
            "epoch {:>3}: loss {:.4}, test accuracy {:.2}%",
            r.epoch,
            r.train_loss,
            100.0 * r.test_acc.unwrap_or(0.0)
        );
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut recipe =
        Recipe::from_file(arg("--recipe").unwrap_or_else(|| "recipes/digits.toml".into()))?;
    if let Some(e) = arg("--epochs") {
        recipe.epochs = e.parse()?;
    }
    let splits = data::open(arg("--data").unwrap_or_else(|| "data/digits".into()), 1)?;
    let input = Digits::INPUT.map(|d| d as usize);
    let train = recipe.train_loader(splits.train, input);
    let test = Loader::new(Arc::new(splits.test), recipe.eval_transform(input), 256);

    tch::manual_seed(recipe.seed as i64);
    let vs = VarStore::new(Device::cuda_if_available());
    let net = Digits::new(&vs.root());
    let mut trainer = Trainer::new(&vs, &recipe, train.len());
    trainer.fit(
        &vs,
        &net,
        &train,
        Some(&test),
        &FitOptions::default(),
        &mut Print,
    )?;
    let eval = trainer.evaluate(&net, &test)?;
    println!(
        "{}: test top-1 {:.2}%, top-5 {:.2}%",
        Digits::NAME,
        100.0 * eval.top1,
        100.0 * eval.top5
    );
    trainer.save_weights(&vs, std::path::Path::new("digits.safetensors"))?;
    println!("weights in digits.safetensors");
    Ok(())
}
