//! The CPU kernel of every optimizer: one in-place pass over parameter, gradient and state.

use super::Rule;
use candle_core::{CpuStorage, InplaceOp2, Layout};
use std::cell::RefCell;

/// Rewrites a contiguous parameter buffer in place from its gradient, updating the rule's
/// interleaved host state (`SLOTS` values per element) in the same loop.
pub(crate) struct HostStep<'a, C: Rule> {
    consts: C::Consts,
    slots: RefCell<&'a mut Vec<f64>>,
}

impl<'a, C: Rule> HostStep<'a, C> {
    pub(crate) fn new(consts: C::Consts, slots: &'a mut Vec<f64>) -> Self {
        HostStep { consts, slots: RefCell::new(slots) }
    }

    fn run<T: Copy>(&self, p: &mut [T], g: &[T], to: impl Fn(T) -> f64, from: impl Fn(f64) -> T) {
        let mut slots = self.slots.borrow_mut();
        let k = C::SLOTS;
        for ((p, &g), s) in p.iter_mut().zip(g).zip(slots.chunks_exact_mut(k.max(1))) {
            *p = from(C::update(&self.consts, to(*p), to(g), s));
        }
    }
}

fn contiguous(l: &Layout, what: &str) -> candle_core::Result<(usize, usize)> {
    l.contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("optimizer kernel: the {what} is not contiguous")))
}

impl<C: Rule> InplaceOp2 for HostStep<'_, C> {
    fn name(&self) -> &'static str {
        C::NAME
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> candle_core::Result<()> {
        let (a0, a1) = contiguous(l1, "parameter")?;
        let (b0, b1) = contiguous(l2, "gradient")?;
        if a1 - a0 != b1 - b0 {
            candle_core::bail!("optimizer kernel: parameter has {} elements, gradient {}", a1 - a0, b1 - b0);
        }
        match (s1, s2) {
            (CpuStorage::F32(p), CpuStorage::F32(g)) => self.run(&mut p[a0..a1], &g[b0..b1], |x| x as f64, |x| x as f32),
            (CpuStorage::F64(p), CpuStorage::F64(g)) => self.run(&mut p[a0..a1], &g[b0..b1], |x| x, |x| x),
            _ => candle_core::bail!("optimizer kernel: parameters must be f32 or f64, with a gradient of the same dtype"),
        }
        Ok(())
    }
}
