//! Classifies a batch with ResNeXt-50 (32×4d) built by `resnext!` from the shipped spec.
//!
//! ```text
//! classify --weights resnext50_32x4d.safetensors [--input batch.safetensors] [--device auto]
//! ```
//!
//! The weights are a torchvision `state_dict` saved as safetensors. The input file holds a tensor
//! named `input` (N×3×224×224, normalised as torchvision expects); without it, a random batch.

use archc_runtime::tch::nn::{ModuleT, VarStore};
use archc_runtime::tch::{Kind, Tensor};
use archc_runtime::{parse_device, weights};
use std::error::Error;

archc_runtime::resnext! {
    /// ResNeXt-50 (32×4d), the paper's Table 1, with torchvision's variable names.
    pub struct ResNeXt50 = "../../specs/resnext/resnext50_32x4d.arch";
}

/// The value after `name` on the command line.
fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn main() -> Result<(), Box<dyn Error>> {
    let device = parse_device(&arg("--device").unwrap_or_else(|| "auto".into()))?;
    let mut vs = VarStore::new(device);
    let net = ResNeXt50::new(&vs.root());
    println!(
        "{}: {} parameters, {} multiply-adds per image, input {:?}",
        ResNeXt50::NAME,
        ResNeXt50::PARAMS,
        ResNeXt50::MACS,
        ResNeXt50::INPUT
    );
    match arg("--weights") {
        Some(path) => {
            let loaded = weights::load(&mut vs, &path)?;
            println!("loaded {path}: {} tensors", loaded.direct);
        }
        None => println!("no --weights: random initialisation"),
    }
    let x = match arg("--input") {
        Some(path) => Tensor::read_safetensors(&path)?
            .into_iter()
            .find(|(k, _)| k == "input")
            .map(|(_, t)| t)
            .ok_or("the input file has no tensor named `input`")?,
        None => Tensor::randn([4, 3, 224, 224], (Kind::Float, device)),
    }
    .to_device(device);
    let logits = archc_runtime::tch::no_grad(|| net.forward_t(&x, false));
    let probs = logits.softmax(-1, Kind::Float);
    let (top, classes) = probs.topk(3, -1, true, true);
    for i in 0..logits.size()[0] {
        let c: Vec<i64> = Vec::<i64>::try_from(classes.get(i))?;
        let p: Vec<f32> = Vec::<f32>::try_from(top.get(i))?;
        println!("image {i}: top-3 classes {c:?} with probabilities {p:.4?}");
    }
    Ok(())
}
