//! The plate handler: pushes a conditional-independence frame onto sites, broadcasts their
//! distributions to the plate's dim, scales their log-densities when subsampling, and indexes
//! local parameters by the subsample.

use crate::error::{Error, Result};
use crate::runtime::Handler;
use crate::site::{CondIndepFrame, Message, SiteKind};
use candle_core::Tensor;
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;

/// The iterations of a sequential-plate iterator whose index is alive (shared by the iterator,
/// its items and its handler).
#[derive(Clone, Debug, Default)]
pub(crate) struct SeqActive(Rc<RefCell<BTreeSet<usize>>>);

impl SeqActive {
    pub(crate) fn begin(&self, counter: usize) {
        self.0.borrow_mut().insert(counter);
    }
    pub(crate) fn end(&self, counter: usize) {
        self.0.borrow_mut().remove(&counter);
    }
    fn current(&self) -> Option<usize> {
        self.0.borrow().first().copied()
    }
}

/// Installed by [`plate_with`](crate::primitives::plate_with) and
/// [`seq_plate_with`](crate::primitives::seq_plate_with); rarely used directly.
#[derive(Debug, Clone)]
pub struct PlateHandler {
    /// The frame pushed onto each site.
    pub frame: CondIndepFrame,
    /// The iteration of a sequential plate.
    pub counter: usize,
    /// The indices in use (for local parameters of a subsampled plate).
    indices: Option<Tensor>,
    /// For a sequential-plate iterator: the alive iterations (the earliest gives the frame).
    active: Option<SeqActive>,
}

impl PlateHandler {
    /// A plate named `name` at `dim` (`None`: sequential) of `size`, using `subsample_size` indices.
    pub fn new(name: String, dim: Option<isize>, size: usize, subsample_size: usize) -> Self {
        PlateHandler {
            frame: CondIndepFrame { name, dim, size, subsample_size, counter: 0 },
            counter: 0,
            indices: None,
            active: None,
        }
    }

    /// The indices the plate uses (`0..size` or the subsample), by which param sites with an
    /// `event_dim` and the plate's full size at its dim are indexed.
    pub fn with_indices(mut self, indices: Tensor) -> Self {
        self.indices = Some(indices);
        self
    }

    pub(crate) fn sequential(mut self, active: SeqActive) -> Self {
        self.active = Some(active);
        self
    }

    /// Pushes this plate's frame onto `msg` (outermost first); a frame of the same name already
    /// there means nested plates with one name, an error.
    fn push_frame(&self, msg: &mut Message) -> Result<bool> {
        let counter = match &self.active {
            None => self.counter,
            Some(a) => match a.current() {
                Some(c) => c,
                None => return Ok(false),
            },
        };
        if msg.cond_indep_stack.iter().any(|f| f.name == self.frame.name) {
            return Err(Error::Plate {
                plate: self.frame.name.clone(),
                message: "is nested inside another plate of the same name; give the inner plate another name".into(),
            });
        }
        let mut frame = self.frame.clone();
        frame.counter = counter;
        // Inner plates process first; keep the stack ordered outermost first.
        msg.cond_indep_stack.insert(0, frame);
        Ok(true)
    }

    fn subsampled(&self) -> bool {
        self.frame.subsample_size < self.frame.size
    }

    /// An observed value whose size at the plate's dim is neither 1 nor the (subsample) size.
    fn check_observed(&self, msg: &Message, dim: isize) -> Result<()> {
        let (Some(value), Some(dist), true) = (&msg.value, &msg.dist, msg.is_observed) else { return Ok(()) };
        let event = dist.event_shape().len();
        let dims = value.dims();
        let need = (-dim) as usize;
        if dims.len() < event + need {
            return Ok(());
        }
        let got = dims[dims.len() - event - need];
        let (n, size, name) = (self.frame.subsample_size, self.frame.size, &self.frame.name);
        if got == 1 || got == n {
            return Ok(());
        }
        let message = if self.subsampled() && got == size {
            format!(
                "site `{}` observes a value of shape {dims:?} with the plate's full size {size} at dim {dim}, but inside \
                 the subsampled plate the batch is the subsample size {n}; index the data by the subsample, e.g. \
                 `data.index_select(&idx, 0)?` with the indices the plate passes to its body",
                msg.name
            )
        } else {
            format!(
                "site `{}` observes a value of shape {dims:?} with size {got} at dim {dim}, but the plate has {n} elements there",
                msg.name
            )
        };
        Err(Error::Plate { plate: name.clone(), message })
    }

    fn broadcast_dist(&self, msg: &mut Message, dim: isize) -> Result<()> {
        let Some(dist) = msg.dist.as_ref() else { return Ok(()) };
        let batch = dist.batch_shape();
        let need = (-dim) as usize;
        let rank = batch.len().max(need);
        let mut target = vec![1usize; rank - batch.len()];
        target.extend_from_slice(batch);
        let pos = rank - need;
        let (n, size) = (self.frame.subsample_size, self.frame.size);
        if target[pos] == 1 {
            target[pos] = n;
        } else if target[pos] != n {
            let hint = if self.subsampled() && target[pos] == size {
                format!(
                    "the parameters have the plate's full size {size} at dim {dim}, but inside the subsampled plate the \
                     batch is the subsample size {n}; index the parameters (or data) by the subsample, e.g. \
                     `loc.index_select(&idx, 0)?` with the indices the plate passes to its body"
                )
            } else {
                format!("the plate's dim is {dim}; give the plate another `dim` or reshape the distribution's parameters")
            };
            return Err(Error::ShapeMismatch {
                context: format!(
                    "`{}` has batch_shape {batch:?}, whose size at dim {dim} does not match plate `{}`",
                    dist.name(),
                    self.frame.name
                ),
                expected: format!("size {n} (or 1) at dim {dim}"),
                got: format!("size {}", target[pos]),
                hint: Some(hint),
            });
        }
        if target.as_slice() != batch {
            msg.dist = Some(dist.expand(&target)?);
        }
        Ok(())
    }
}

impl Handler for PlateHandler {
    fn process(&mut self, msg: &mut Message) -> Result<()> {
        match msg.kind {
            SiteKind::Sample | SiteKind::Factor => {}
            SiteKind::Param | SiteKind::Deterministic => {
                self.push_frame(msg)?;
                return Ok(());
            }
            SiteKind::Plate => {
                if msg.name == self.frame.name {
                    return Err(Error::Plate {
                        plate: msg.name.clone(),
                        message: "is nested inside another plate of the same name; give the inner plate another name"
                            .into(),
                    });
                }
                // A plate site lies in the plates around it, like any site.
                self.push_frame(msg)?;
                return Ok(());
            }
        }
        if !self.push_frame(msg)? {
            return Ok(());
        }
        if self.subsampled() {
            msg.scale *= self.frame.size as f64 / self.frame.subsample_size as f64;
        }
        let Some(dim) = self.frame.dim else { return Ok(()) };
        self.check_observed(msg, dim)?;
        self.broadcast_dist(msg, dim)
    }

    /// A local parameter (a param site with an `event_dim` whose value has the plate's full
    /// size at the plate's dim, counted left of the event dims) is indexed by the subsample.
    fn postprocess(&mut self, msg: &mut Message) -> Result<()> {
        if msg.kind != SiteKind::Param {
            return Ok(());
        }
        let (Some(dim), Some(event_dim), Some(value)) =
            (self.frame.dim, msg.param.as_ref().and_then(|p| p.event_dim), msg.value.as_ref())
        else {
            return Ok(());
        };
        let d = dim - event_dim as isize;
        let rank = value.rank() as isize;
        if rank < -d {
            return Ok(());
        }
        let axis = (rank + d) as usize;
        let (got, size) = (value.dim(axis)?, self.frame.size);
        if got == 1 || (got == size && !self.subsampled()) {
            return Ok(());
        }
        if got != size {
            return Err(Error::Plate {
                plate: self.frame.name.clone(),
                message: format!(
                    "param `{}` (event_dim {event_dim}) has shape {:?}, with size {got} at the plate's dim {dim} (dim {d} \
                     counting its event dims); a local parameter has the plate's full size {size} there (or 1)",
                    msg.name,
                    value.dims()
                ),
            });
        }
        if let Some(idx) = &self.indices {
            let idx = idx.to_device(value.device())?;
            msg.value = Some(value.index_select(&idx, axis)?);
        }
        Ok(())
    }
}
