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

/// One step over every parameter with a gradient: PyTorch's fused SGD (`_fused_sgd_`, what
/// `torch.optim.SGD(fused=True)` runs), one launch for the parameters with weight decay and one
/// for those without, instead of four operators per parameter ([`Param::update`]); under mixed
/// precision the bf16 gradients are widened, and the updated fp32 masters narrowed into the bf16
/// variables, by one multi-tensor copy each. A group the fused kernel refuses (a layout it does
/// not take) is updated parameter by parameter, with the same arithmetic.
pub(super) fn step_all(params: &mut [Param], grads: Vec<Tensor>, hyper: (f64, f64, f64, bool)) {
    let (lr, wd, momentum, nesterov) = hyper;
    let mut groups: [Vec<(usize, Tensor)>; 2] = [Vec::new(), Vec::new()];
    for (i, g) in grads.into_iter().enumerate() {
        if g.defined() {
            groups[usize::from(params[i].decay && wd != 0.0)].push((i, g));
        }
    }
    for (decays, group) in groups.into_iter().enumerate() {
        if group.is_empty() {
            continue;
        }
        if fused_group(
            params,
            &group,
            lr,
            if decays == 1 { wd } else { 0.0 },
            momentum,
            nesterov,
        )
        .is_err()
        {
            // Made only here: moving the factors to a GPU waits for it.
            let device = group[0].1.device();
            let f = Factors::new(lr, wd, momentum, device);
            for (i, g) in group {
                params[i].update(g, &f, nesterov);
            }
        }
    }
}

/// [`step_all`]'s fused path for one group of (parameter index, gradient).
fn fused_group(
    params: &[Param],
    group: &[(usize, Tensor)],
    lr: f64,
    wd: f64,
    momentum: f64,
    nesterov: bool,
) -> Result<(), tch::TchError> {
    use crate::fast::ffi;
    // The fp32 gradients: bf16 ones widened into fresh buffers by one multi-tensor copy.
    let narrow: Vec<usize> = (0..group.len())
        .filter(|&k| group[k].1.kind() != Kind::Float)
        .collect();
    let mut grads: Vec<Tensor> = group.iter().map(|(_, g)| g.shallow_clone()).collect();
    if !narrow.is_empty() {
        let wide: Vec<Tensor> = narrow
            .iter()
            .map(|&k| {
                let g = &group[k].1;
                Tensor::f_empty_strided(g.size(), g.stride(), (Kind::Float, g.device()))
            })
            .collect::<Result<_, _>>()?;
        let src: Vec<&Tensor> = narrow.iter().map(|&k| &group[k].1).collect();
        ffi::foreach_copy(&wide.iter().collect::<Vec<_>>(), &src)?;
        for (&k, w) in narrow.iter().zip(wide) {
            grads[k] = w;
        }
    }
    let weights: Vec<&Tensor> = group
        .iter()
        .map(|(i, _)| params[*i].master.as_ref().unwrap_or(&params[*i].var))
        .collect();
    let bufs: Vec<&Tensor> = group.iter().map(|(i, _)| &params[*i].momentum).collect();
    let grads: Vec<&Tensor> = grads.iter().collect();
    // libtorch's CPU kernel walks each tensor's memory linearly and checks nothing: only fp32
    // triples on one device with one dense layout go to it, else nothing is touched here.
    let device = weights[0].device();
    let fits = (0..group.len()).all(|k| {
        let (w, g, b) = (weights[k], grads[k], bufs[k]);
        [w, g, b]
            .iter()
            .all(|t| t.kind() == Kind::Float && t.device() == device && t.size() == w.size())
            && g.stride() == w.stride()
            && b.stride() == w.stride()
            && dense(w)
    });
    if !fits {
        return Err(tch::TchError::Torch(
            "fused SGD: tensors of different types, devices or layouts".into(),
        ));
    }
    let sgd = ffi::SgdGroup {
        params: &weights,
        grads: &grads,
        bufs: &bufs,
    };
    ffi::fused_sgd(&sgd, wd, momentum, lr, nesterov)?;
    // The bf16 variables take their updated masters (one by one if the multi-tensor copy
    // refuses: the step is done and must not run again).
    let (vars, masters): (Vec<&Tensor>, Vec<&Tensor>) = group
        .iter()
        .filter_map(|(i, _)| Some((&params[*i].var, params[*i].master.as_ref()?)))
        .unzip();
    if !vars.is_empty() && ffi::foreach_copy(&vars, &masters).is_err() {
        for (v, m) in vars.into_iter().zip(masters) {
            v.shallow_clone().copy_(m);
        }
    }
    Ok(())
}

/// Whether `t`'s elements fill its memory in one of the two orders libtorch's kernels take as
/// dense: contiguous, or channels-last (NHWC storage of an NCHW tensor).
fn dense(t: &Tensor) -> bool {
    if t.is_contiguous() {
        return true;
    }
    match t.size()[..] {
        [_, c, h, w] => t.stride() == [h * w * c, 1, w * c, c],
        _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    /// Deterministic values without the global generator, which tests running in parallel
    /// share: sin of a scaled index.
    fn values(shape: &[i64], salt: f64) -> Tensor {
        let n: i64 = shape.iter().product();
        (Tensor::arange(n, (Kind::Float, Device::Cpu)) * (0.37 + 0.11 * salt) + salt)
            .sin()
            .reshape(shape)
    }

    /// Three parameters (a conv weight and a linear weight with decay, a bias without), fp32 or
    /// with bf16 variables over fp32 masters, plain or channels-last.
    fn params(bf16: bool, cl: bool) -> Vec<Param> {
        [
            (vec![8, 4, 3, 3], true),
            (vec![8], false),
            (vec![10, 8], true),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (shape, decay))| {
            let mut p = Param::new(format!("p{i}"), &values(&shape, i as f64), decay, decay);
            p.enter(bf16, cl);
            p
        })
        .collect()
    }

    /// Gradients laid out as the variables are (as autograd returns them), different per `step`.
    fn grads_like(params: &[Param], step: usize) -> Vec<Tensor> {
        params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let g = values(&p.var.size(), 10.0 * step as f64 + i as f64 + 3.0);
                let (size, stride) = (p.var.size(), p.var.stride());
                let mut out = Tensor::empty_strided(size, stride, (p.var.kind(), Device::Cpu));
                out.copy_(&g);
                out
            })
            .collect()
    }

    fn weight(p: &Param) -> Tensor {
        p.master.as_ref().unwrap_or(&p.var).shallow_clone()
    }

    /// The fused kernel's step and the per-parameter update agree (to fp32 rounding), over
    /// three steps, with and without Nesterov, mixed precision and channels-last; the fused path
    /// is the one taken on the CPU; and the trainer's entry point computes the same.
    #[test]
    fn fused_step_matches_the_per_parameter_update() {
        let (lr, wd, momentum) = (0.1, 5e-4, 0.9);
        for (bf16, nesterov, cl) in [
            (false, false, false),
            (false, true, false),
            (true, false, false),
            (true, true, true),
            (false, false, true),
        ] {
            let (fused, mut reference, mut again) =
                (params(bf16, cl), params(bf16, cl), params(bf16, cl));
            for step in 0..3 {
                let grads = grads_like(&fused, step);
                let copy = || grads.iter().map(Tensor::copy).collect::<Vec<_>>();
                let mut groups: [Vec<(usize, Tensor)>; 2] = [Vec::new(), Vec::new()];
                for (i, g) in copy().into_iter().enumerate() {
                    groups[usize::from(fused[i].decay)].push((i, g));
                }
                tch::no_grad(|| {
                    for (decays, group) in groups.iter().enumerate() {
                        let wd = if decays == 1 { wd } else { 0.0 };
                        fused_group(&fused, group, lr, wd, momentum, nesterov)
                            .expect("the fused kernel takes these tensors");
                    }
                    let f = Factors::new(lr, wd, momentum, Device::Cpu);
                    for (p, g) in reference.iter_mut().zip(copy()) {
                        p.update(g, &f, nesterov);
                    }
                    step_all(&mut again, copy(), (lr, wd, momentum, nesterov));
                });
            }
            let case = format!("bf16 {bf16} nesterov {nesterov} channels-last {cl}");
            for ((a, b), c) in fused.iter().zip(&reference).zip(&again) {
                let err = (weight(a) - weight(b)).abs().max().double_value(&[]);
                let buf = (&a.momentum - &b.momentum).abs().max().double_value(&[]);
                assert!(err <= 1e-6, "{} {case}: {err:e}", a.name);
                assert!(buf <= 1e-6, "{} {case} momentum: {buf:e}", a.name);
                assert!(weight(a).equal(&weight(c)), "{} {case}: step_all", a.name);
                assert!(weight(a).abs().sum(Kind::Float).double_value(&[]) > 0.0);
                if bf16 && a.master.is_some() {
                    // The bf16 variable holds the rounded master.
                    assert!(
                        a.var.equal(&weight(a).to_kind(Kind::BFloat16)),
                        "{}",
                        a.name
                    );
                }
            }
        }
    }

    /// A gradient in another layout than its channels-last weight (a custom module's, say) is
    /// refused before anything is written, and the trainer's step then updates parameter by
    /// parameter, to the same values as the reference update.
    #[test]
    fn a_group_in_mixed_layouts_falls_back_untouched() {
        let (lr, wd, momentum) = (0.1, 5e-4, 0.9);
        let (fused, mut reference, mut stepped) = (
            params(false, true),
            params(false, true),
            params(false, true),
        );
        let before = weight(&fused[0]).copy();
        // Plain (contiguous) gradients for channels-last weights.
        let grads: Vec<Tensor> = (0..fused.len())
            .map(|i| values(&fused[i].var.size(), 20.0 + i as f64))
            .collect();
        assert!(grads[0].is_contiguous() && !fused[0].var.is_contiguous());
        let group = vec![(0, grads[0].copy())];
        tch::no_grad(|| {
            assert!(fused_group(&fused, &group, lr, wd, momentum, false).is_err());
        });
        assert!(weight(&fused[0]).equal(&before), "refused, yet written");
        tch::no_grad(|| {
            let copies = grads.iter().map(Tensor::copy).collect();
            step_all(&mut stepped, copies, (lr, wd, momentum, false));
            let f = Factors::new(lr, wd, momentum, Device::Cpu);
            for (p, g) in reference.iter_mut().zip(&grads) {
                p.update(g.copy(), &f, false);
            }
        });
        for (a, b) in stepped.iter().zip(&reference) {
            let err = (weight(a) - weight(b)).abs().max().double_value(&[]);
            assert!(err <= 1e-6, "{}: {err:e}", a.name);
        }
    }
}
