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

    /// The update over `p`, `g` and the slots, split across Candle's thread count for large
    /// parameters (each thread owns a contiguous block of all three).
    fn run<T: Copy + Send + Sync>(&self, p: &mut [T], g: &[T], to: impl Fn(T) -> f64 + Sync, from: impl Fn(f64) -> T + Sync) {
        let mut slots = self.slots.borrow_mut();
        let k = C::SLOTS.max(1);
        let consts = self.consts;
        let (to, from) = (&to, &from);
        let block = |p: &mut [T], g: &[T], s: &mut [f64]| {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2 (checked just above).
                return unsafe { update_avx2::<C, T>(&consts, p, g, s, to, from) };
            }
            update::<C, T>(&consts, p, g, s, to, from)
        };
        let n = p.len();
        let threads = crate::nn::cpu::threads_for(n, PAR_MIN_WORK).min(n.max(1));
        if threads <= 1 {
            block(p, g, &mut slots[..]);
            return;
        }
        let per = n.div_ceil(threads);
        std::thread::scope(|sc| {
            let block = &block;
            let mut parts = p.chunks_mut(per).zip(g.chunks(per)).zip(slots.chunks_mut(per * k));
            let first = parts.next();
            for ((p, g), s) in parts {
                sc.spawn(move || block(p, g, s));
            }
            if let Some(((p, g), s)) = first {
                block(p, g, s);
            }
        });
    }
}

/// One block of the update: element by element, `C::SLOTS` state values each.
#[inline(always)]
fn update<C: Rule, T: Copy>(c: &C::Consts, p: &mut [T], g: &[T], s: &mut [f64], to: &impl Fn(T) -> f64, from: &impl Fn(f64) -> T) {
    for ((p, &g), s) in p.iter_mut().zip(g).zip(s.chunks_exact_mut(C::SLOTS.max(1))) {
        *p = from(C::update(c, to(*p), to(g), s));
    }
}

/// [`update`] compiled for AVX2, so that its loop vectorizes 4 lanes wide (the same
/// operations in the same order: results are identical).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn update_avx2<C: Rule, T: Copy>(c: &C::Consts, p: &mut [T], g: &[T], s: &mut [f64], to: &impl Fn(T) -> f64, from: &impl Fn(f64) -> T) {
    update::<C, T>(c, p, g, s, to, from)
}

/// Parameters smaller than this many elements are updated on the calling thread.
const PAR_MIN_WORK: usize = 1 << 16;

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
