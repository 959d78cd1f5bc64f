//! SGD with momentum over tensors this crate owns, so that the momentum buffers can be saved
//! and restored exactly.

use tch::{Kind, Tensor};

/// A trainable variable with its optimizer state.
#[derive(Debug)]
pub(super) struct Param {
    /// The variable's name in the VarStore.
    pub(super) name: String,
    /// The variable (shared with the module): fp32, or bf16 under mixed precision.
    var: Tensor,
    /// fp32 master weights while the variable holds bf16.
    master: Option<Tensor>,
    /// The momentum buffer, fp32.
    momentum: Tensor,
    /// Whether weight decay applies.
    decay: bool,
    /// Whether mixed precision puts it in bf16 (not batch-norm's parameters).
    reduce: bool,
}

impl Param {
    pub(super) fn new(name: String, var: &Tensor, decay: bool, reduce: bool) -> Param {
        let momentum = tch::no_grad(|| var.zeros_like().to_kind(Kind::Float));
        Param {
            name,
            var: var.shallow_clone(),
            master: None,
            momentum,
            decay,
            reduce,
        }
    }

    pub(super) fn master(&self) -> Option<&Tensor> {
        self.master.as_ref()
    }

    pub(super) fn momentum(&self) -> &Tensor {
        &self.momentum
    }

    pub(super) fn load_momentum(&mut self, t: &Tensor) -> Result<(), String> {
        if t.size() != self.momentum.size() {
            return Err(format!(
                "shape {:?}, expected {:?}",
                t.size(),
                self.momentum.size()
            ));
        }
        tch::no_grad(|| self.momentum.copy_(t));
        Ok(())
    }

    /// Keeps an fp32 master copy and puts a bf16 copy in the variable.
    pub(super) fn enter_bf16(&mut self) {
        if !self.reduce || self.master.is_some() {
            return;
        }
        tch::no_grad(|| {
            let master = self.var.detach().copy();
            self.var.set_data(&master.to_kind(Kind::BFloat16));
            self.master = Some(master);
        });
    }

    /// Puts the fp32 master back into the variable.
    pub(super) fn leave_bf16(&mut self) {
        if let Some(master) = self.master.take() {
            tch::no_grad(|| self.var.set_data(&master));
        }
    }

    pub(super) fn zero_grad(&mut self) {
        self.var.zero_grad();
    }

    /// `torch.optim.SGD`'s update (dampening 0): `d = g + wd·w`, `buf = m·buf + d`,
    /// `w -= lr·(nesterov ? d + m·buf : buf)`. Runs under `no_grad`.
    pub(super) fn update(&mut self, lr: f64, momentum: f64, nesterov: bool, wd: f64) {
        let grad = self.var.grad();
        if !grad.defined() {
            return;
        }
        let mut w = match &self.master {
            Some(m) => m.shallow_clone(),
            None => self.var.shallow_clone(),
        };
        let d = grad.to_kind(Kind::Float);
        let d = if self.decay && wd != 0.0 {
            d + &w * wd
        } else {
            d
        };
        let step = if momentum != 0.0 {
            let _ = self.momentum.g_mul_scalar_(momentum);
            let _ = self.momentum.g_add_(&d);
            if nesterov {
                d + &self.momentum * momentum
            } else {
                self.momentum.shallow_clone()
            }
        } else {
            d
        };
        let _ = w.g_sub_(&(step * lr));
        if self.master.is_some() {
            self.var.copy_(&w);
        }
    }
}
