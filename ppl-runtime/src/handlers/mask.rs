//! `mask`: zeroes the log-densities of masked elements.

use crate::error::Result;
use crate::runtime::{Handler, with_handler};
use crate::site::{Message, SiteKind, check_mask};
use candle_core::Tensor;

/// Combines a 0/1 mask into every sample and factor site's mask (elementwise and).
#[derive(Debug, Clone)]
pub struct Mask {
    mask: Tensor,
}

impl Mask {
    /// Masks by `mask`, a u8 tensor of 0s and 1s (1 keeps; what comparisons such as
    /// `x.ge(0.0)?` return) broadcastable to the sites' batch shapes. Any other dtype, or a
    /// value other than 0 and 1, is an error.
    pub fn new(mask: &Tensor) -> Result<Self> {
        check_mask(mask, true)?;
        Ok(Mask { mask: mask.clone() })
    }
}

impl Handler for Mask {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if matches!(msg.kind, SiteKind::Sample | SiteKind::Factor) {
            msg.mask = Some(match &msg.mask {
                None => self.mask.clone(),
                Some(m) => {
                    check_mask(m, false)?;
                    m.broadcast_mul(&self.mask)?
                }
            });
        }
        Ok(())
    }
}

/// Runs `f` with the log-densities of elements where `mask` is zero removed.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::{dist::Normal, handlers::{mask, trace}, primitives::{observe, plate}};
/// let x = Tensor::new(&[0f32, 100.0], &Device::Cpu)?;
/// let keep = Tensor::new(&[1u8, 0], &Device::Cpu)?; // drop the outlier
/// let (_, tr) = trace(|| mask(&keep, || plate("n", 2, |_| observe("x", Normal::new(0.0, 1.0)?, &x))))?;
/// let lp = tr.get("x").unwrap().log_prob()?.unwrap().to_vec1::<f32>()?;
/// assert_eq!(lp[1], 0.0);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn mask<R>(mask: &Tensor, f: impl FnOnce() -> Result<R>) -> Result<R> {
    with_handler(Mask::new(mask)?, f).0
}
