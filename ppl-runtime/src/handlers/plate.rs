//! The plate handler: pushes a conditional-independence frame onto sites, broadcasts their
//! distributions to the plate's dim, and scales their log-densities when subsampling.

use crate::error::{Error, Result};
use crate::runtime::Handler;
use crate::site::{CondIndepFrame, Message, SiteKind};

/// Installed by [`plate_with`](crate::primitives::plate_with) and
/// [`seq_plate_with`](crate::primitives::seq_plate_with); rarely used directly.
#[derive(Debug, Clone)]
pub struct PlateHandler {
    /// The frame pushed onto each site.
    pub frame: CondIndepFrame,
    /// The iteration of a sequential plate.
    pub counter: usize,
}

impl PlateHandler {
    /// A plate named `name` at `dim` (`None`: sequential) of `size`, using `subsample_size` indices.
    pub fn new(name: String, dim: Option<isize>, size: usize, subsample_size: usize) -> Self {
        PlateHandler { frame: CondIndepFrame { name, dim, size, subsample_size, counter: 0 }, counter: 0 }
    }
}

impl Handler for PlateHandler {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        if !matches!(msg.kind, SiteKind::Sample | SiteKind::Factor) {
            return Ok(());
        }
        let mut frame = self.frame.clone();
        frame.counter = self.counter;
        // Inner plates process first; keep the stack ordered outermost first.
        msg.cond_indep_stack.insert(0, frame);
        if self.frame.size != self.frame.subsample_size {
            msg.scale *= self.frame.size as f64 / self.frame.subsample_size as f64;
        }
        let (Some(dim), Some(dist)) = (self.frame.dim, msg.dist.as_ref()) else { return Ok(()) };
        let batch = dist.batch_shape();
        let need = (-dim) as usize;
        let rank = batch.len().max(need);
        let mut target = vec![1usize; rank - batch.len()];
        target.extend_from_slice(batch);
        let pos = rank - need;
        let n = self.frame.subsample_size;
        if target[pos] == 1 {
            target[pos] = n;
        } else if target[pos] != n {
            return Err(Error::ShapeMismatch {
                context: format!(
                    "`{}` has batch_shape {batch:?}, whose size at dim {dim} does not match plate `{}`",
                    dist.name(),
                    self.frame.name
                ),
                expected: format!("size {n} (or 1) at dim {dim}"),
                got: format!("size {}", target[pos]),
                hint: Some(format!(
                    "the plate's dim is {dim}; give the plate another `dim` or reshape the distribution's parameters"
                )),
            });
        }
        if target.as_slice() != batch {
            msg.dist = Some(dist.expand(&target)?);
        }
        Ok(())
    }
}
