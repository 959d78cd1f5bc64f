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

    /// Puts the training form into the variable: channels-last memory order for a 4-D weight
    /// when `cl` (the momentum buffer too), and under `bf16` an fp32 master copy with a bf16 copy
    /// in the variable.
    pub(super) fn enter(&mut self, bf16: bool, cl: bool) {
        tch::no_grad(|| {
            if cl && self.var.dim() == 4 {
                let v = channels_last(&self.var);
                self.var.set_data(&v);
                self.momentum = channels_last(&self.momentum);
            }
            if bf16 && self.reduce && self.master.is_none() {
                let master = self.var.detach().copy();
                self.var.set_data(&master.to_kind(Kind::BFloat16));
                self.master = Some(master);
            }
        });
    }

    /// Puts the plain form back: fp32 (the master), contiguous.
    pub(super) fn leave(&mut self) {
        tch::no_grad(|| {
            let plain = match self.master.take() {
                Some(master) => master.contiguous(),
                None => self.var.detach().contiguous(),
            };
            self.var.set_data(&plain);
            self.momentum = self.momentum.contiguous();
        });
    }

    /// The variable (what the gradient is taken against).
    pub(super) fn var(&self) -> &Tensor {
        &self.var
    }

    /// `torch.optim.SGD`'s update (dampening 0): `d = g + wd·w`, `buf = m·buf + d`,
    /// `w -= lr·(nesterov ? d + m·buf : buf)`. Runs under `no_grad`. The factors come as 0-d
    /// tensors on the variable's device, so that each line is one fused pass over memory
    /// (`addcmul_`), as few passes as PyTorch's multi-tensor SGD makes. `grad` is this step's
    /// gradient (undefined when the variable was not used); it is changed in place.
    pub(super) fn update(&mut self, grad: Tensor, f: &Factors, nesterov: bool) {
        if !grad.defined() {
            return;
        }
        let mut w = match &self.master {
            Some(m) => m.shallow_clone(),
            None => self.var.shallow_clone(),
        };
        let mut g = if grad.kind() == Kind::Float {
            grad
        } else {
            grad.to_kind(Kind::Float)
        };
        if self.decay && f.decay {
            let _ = g.addcmul_(&w, &f.wd);
        }
        let step = if f.heavy_ball {
            let _ = self.momentum.g_mul_(&f.momentum);
            let _ = self.momentum.g_add_(&g);
            if nesterov {
                let _ = g.addcmul_(&self.momentum, &f.momentum);
                g
            } else {
                self.momentum.shallow_clone()
            }
        } else {
            g
        };
        let _ = w.addcmul_(&step, &f.neg_lr);
        if self.master.is_some() {
            self.var.copy_(&w);
        }
    }
}

/// The factors of one step, as 0-d fp32 tensors on the device.
#[derive(Debug)]
pub(super) struct Factors {
    neg_lr: Tensor,
    wd: Tensor,
    momentum: Tensor,
    decay: bool,
    heavy_ball: bool,
}

impl Factors {
    pub(super) fn new(lr: f64, wd: f64, momentum: f64, device: tch::Device) -> Factors {
        let t = |v: f64| Tensor::from(v as f32).to_device(device);
        Factors {
            neg_lr: t(-lr),
            wd: t(wd),
            momentum: t(momentum),
            decay: wd != 0.0,
            heavy_ball: momentum != 0.0,
        }
    }
}

/// `t` (N×C×H×W) with channels-last strides: NHWC storage, NCHW sizes, as PyTorch's
/// `memory_format=torch.channels_last` makes it.
pub(super) fn channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}
