//! The prototype trace every autoguide reads once: the model's continuous latent sites, their
//! shapes (with the *full* size of subsampled plates), supports, bijections and initial values.

use crate::dist::{Constraint, TransformRef, biject_to};
use crate::error::{Error, Result};
use crate::handlers::{Block, block};
use crate::infer::init::{InitStrategy, init_trace, short_values};
use crate::infer::program::Program;
use crate::primitives::{PlateOptions, plate_with};
use crate::runtime::with_rng;
use crate::site::{CondIndepFrame, Site, SiteKind};
use crate::trace::Trace;
use candle_core::{DType, Device, Tensor};
use std::cell::RefCell;
use std::collections::HashMap;

/// One continuous latent site of the model, as an autoguide sees it.
#[derive(Clone, Debug)]
pub(crate) struct ProtoSite {
    /// The site's name.
    pub name: String,
    /// Rank of the site's event (constrained side).
    pub event_dim: usize,
    /// Rank of the site's batch shape.
    pub batch_dim: usize,
    /// The unconstrained shape with the full size of every subsampled plate.
    pub ufull_shape: Vec<usize>,
    /// The support of the site's distribution.
    pub support: Constraint,
    /// `biject_to(support)`.
    pub transform: TransformRef,
    /// Whether `transform` is the identity (real support).
    pub real: bool,
    /// The vectorized plates the site lies in, outermost first.
    pub frames: Vec<CondIndepFrame>,
    /// The unconstrained initial value, full size.
    pub init: Tensor,
}

impl ProtoSite {
    /// Rank of the unconstrained event.
    pub fn uevent_dim(&self) -> usize {
        self.ufull_shape.len() - self.batch_dim
    }

    /// Number of unconstrained coordinates (full size).
    pub fn numel(&self) -> usize {
        self.ufull_shape.iter().product()
    }

    /// Whether the site lies in a subsampled plate.
    pub fn subsampled(&self) -> bool {
        self.frames.iter().any(|f| f.subsample_size < f.size)
    }

    /// `(y, log|det J|)` for unconstrained `x` whose leading `lead` dims are extra batch dims;
    /// the log-Jacobian is summed down to `lead + batch_dim` dims.
    pub fn constrain(&self, x: &Tensor, lead: usize) -> Result<(Tensor, Tensor)> {
        let y = self.transform.forward(x)?;
        let ladj = self.transform.log_abs_det_jacobian(x, &y)?;
        let keep = lead + self.batch_dim;
        let ladj = if ladj.rank() > keep { ladj.flatten_from(keep)?.sum(keep)? } else { ladj };
        Ok((y, ladj))
    }
}

/// The model's latent sites in the order the model runs them.
#[derive(Clone, Debug)]
pub(crate) struct Prototype {
    pub sites: Vec<ProtoSite>,
    pub dtype: DType,
    pub device: Device,
}

/// Whether a constraint's bijection is the identity.
pub(crate) fn is_real(c: &Constraint) -> bool {
    match c {
        Constraint::Real | Constraint::RealVector => true,
        Constraint::Independent(b, _) => is_real(b),
        _ => false,
    }
}

/// The error for a discrete latent site.
pub(crate) fn discrete_site_error(guide: &str, site: &Site) -> Error {
    let dist = site.dist.as_ref().map(|d| d.name()).unwrap_or("?");
    let support = site.dist.as_ref().map(|d| d.support().to_string()).unwrap_or_default();
    Error::invalid_arg(
        guide,
        "model",
        format!(
            "the latent site is discrete (`{dist}` with support `{support}`); autoguides fit continuous latent sites \
             only: enumerate it (`InferConfig::enumerate`, with an enumerating ELBO) or build an `AutoGuideList` with a \
             hand-written guide for it and the autoguide on the other sites (`hide(model, [\"{}\"])`)",
            site.name
        ),
    )
    .at_site(&site.name, site.location())
}

/// Repeats `t` periodically along `axis` up to `size` (Pyro's `periodic_repeat`).
fn periodic_repeat(t: &Tensor, axis: usize, size: usize) -> Result<Tensor> {
    let have = t.dim(axis)?;
    if have == size {
        return Ok(t.clone());
    }
    let idx: Vec<u32> = (0..size).map(|i| (i % have) as u32).collect();
    let idx = Tensor::from_vec(idx, size, t.device())?;
    Ok(t.index_select(&idx, axis)?)
}

impl Prototype {
    /// Runs `model` once (hidden from outer handlers) with every latent site at the `init`
    /// strategy's value, and reads its latent sites. `guide` names the autoguide in errors.
    pub fn setup<A: ?Sized, M, P: Program<A, M>>(
        guide: &str,
        model: &P,
        args: &A,
        init: &InitStrategy,
    ) -> Result<Prototype> {
        let mut rng = with_rng(|r| r.split());
        let tr = block(Block::all(), || init_trace(model, args, init, &mut rng))?;
        Self::from_trace(guide, &tr)
    }

    fn from_trace(guide: &str, tr: &Trace) -> Result<Prototype> {
        check_finite(guide, tr)?;
        for s in tr.nodes().filter(|s| s.kind == SiteKind::Plate && s.is_observed) {
            let sub = s.plate.as_ref().is_some_and(|f| f.subsample_size < f.size);
            if sub {
                return Err(Error::Plate {
                    plate: s.name.clone(),
                    message: format!(
                        "the model gives this plate its subsample indices explicitly; {guide} draws the subsample itself \
                         and the model follows it (through `replay`), so let the plate draw it (`subsample_size`)"
                    ),
                });
            }
        }
        let mut sites = Vec::new();
        let (mut dtype, mut device) = (None, None);
        for site in tr.latent_sites() {
            let located = |e: Error| e.at_site(&site.name, site.location());
            let dist = site.dist()?;
            let support = dist.support();
            if site.infer.enumerate.is_some() && dist.has_enumerate_support() {
                // Summed out by an enumerating ELBO: no guide site.
                continue;
            }
            if support.is_discrete() || site.infer.enumerate.is_some() {
                return Err(discrete_site_error(guide, site));
            }
            let value = site.value()?;
            dtype.get_or_insert(value.dtype());
            device.get_or_insert(value.device().clone());
            let transform = biject_to(&support).map_err(located)?;
            let event_dim = dist.event_shape().len();
            let batch_dim = value.rank() - event_dim;
            let frames: Vec<CondIndepFrame> =
                site.cond_indep_stack.iter().filter(|f| f.vectorized()).cloned().collect();
            let mut full_shape = value.dims().to_vec();
            let mut init = transform.inverse(value).map_err(located)?;
            for f in &frames {
                let d = f.dim.unwrap_or(-1);
                let pos = batch_dim as isize + d;
                if pos < 0 || f.subsample_size == f.size {
                    continue;
                }
                full_shape[pos as usize] = f.size;
                init = periodic_repeat(&init, pos as usize, f.size)?;
            }
            let ufull_shape = transform.inverse_shape(&full_shape).map_err(located)?;
            if init.dims() != ufull_shape.as_slice() {
                init = init.broadcast_as(ufull_shape.as_slice())?.contiguous()?;
            }
            sites.push(ProtoSite {
                name: site.name.clone(),
                event_dim,
                batch_dim,
                ufull_shape,
                real: is_real(&support),
                support,
                transform,
                frames,
                init: init.detach(),
            });
        }
        if sites.is_empty() {
            return Err(Error::invalid_arg(guide, "model", "the model has no latent sample sites to fit a guide to"));
        }
        let d = crate::defaults::current();
        Ok(Prototype { sites, dtype: dtype.unwrap_or(d.dtype), device: device.unwrap_or(d.device) })
    }

    /// Total number of unconstrained coordinates.
    pub fn dim(&self) -> usize {
        self.sites.iter().map(|s| s.numel()).sum()
    }

    /// An error unless no site lies in a subsampled plate (guides with one flat latent vector).
    pub fn no_subsampling(&self, guide: &str) -> Result<()> {
        if let Some(s) = self.sites.iter().find(|s| s.subsampled()) {
            let p = s.frames.iter().find(|f| f.subsample_size < f.size).map(|f| f.name.clone()).unwrap_or_default();
            return Err(Error::invalid_arg(
                guide,
                "model",
                format!(
                    "the latent site lies in the subsampled plate `{p}`; {guide} keeps one flat latent vector and cannot \
                     index it by a subsample: use AutoNormal (or AutoDelta), whose local parameters follow the subsample"
                ),
            )
            .at_site(&s.name, None));
        }
        Ok(())
    }

    /// The flat unconstrained initial vector `[dim]`.
    pub fn flat_init(&self) -> Result<Tensor> {
        let parts: Vec<Tensor> = self.sites.iter().map(|s| s.init.flatten_all()).collect::<candle_core::Result<_>>()?;
        Ok(Tensor::cat(&parts, 0)?)
    }

    /// Splits flat unconstrained vectors `[..lead, dim]` into per-site unconstrained tensors
    /// `[..lead, ..ufull_shape]`.
    pub fn unpack(&self, flat: &Tensor) -> Result<Vec<Tensor>> {
        let lead: Vec<usize> = flat.dims()[..flat.rank() - 1].to_vec();
        let last = flat.rank() - 1;
        let mut off = 0;
        let mut out = Vec::with_capacity(self.sites.len());
        for s in &self.sites {
            let n = s.numel();
            let mut shape = lead.clone();
            shape.extend_from_slice(&s.ufull_shape);
            out.push(flat.narrow(last, off, n)?.reshape(shape)?);
            off += n;
        }
        Ok(out)
    }

    /// Constrained values of flat vectors `[..lead, dim]`, by site name.
    pub fn constrain_flat(&self, flat: &Tensor) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (s, x) in self.sites.iter().zip(self.unpack(flat)?) {
            out.insert(s.name.clone(), s.transform.forward(&x).map_err(|e| e.at_site(&s.name, None))?);
        }
        Ok(out)
    }
}

/// Every site's log-density at the initial point must be finite; the error names the first
/// site that is not, its value, and the initial latent values.
fn check_finite(guide: &str, tr: &Trace) -> Result<()> {
    for site in tr.nodes().filter(|s| s.has_log_prob()) {
        let bad = match site.log_prob() {
            Err(e) => Some(e.to_string()),
            Ok(None) => None,
            Ok(Some(lp)) => {
                match lp.sum_all().and_then(|t| t.to_dtype(DType::F64)).and_then(|t| t.to_scalar::<f64>()) {
                    Ok(v) if v.is_finite() => None,
                    Ok(v) => Some(format!("its log-density is {v}")),
                    Err(e) => Some(e.to_string()),
                }
            }
        };
        if let Some(why) = bad {
            let value = site.value.as_ref().map(short_values).unwrap_or_default();
            let latents: Vec<String> = tr
                .latent_sites()
                .filter(|s| s.name != site.name)
                .filter_map(|s| s.value.as_ref().map(|v| format!("{} = {}", s.name, short_values(v))))
                .collect();
            let at = if latents.is_empty() {
                String::new()
            } else {
                format!(" (initial latent values: {})", latents.join(", "))
            };
            return Err(Error::invalid_arg(
                guide,
                "init strategy",
                format!("no valid initial point: {why} at the value {value}{at}; choose another init strategy or `init_to_value`"),
            )
            .at_site(&site.name, site.location()));
        }
    }
    Ok(())
}

/// Runs `body` inside the vectorized plates `frames` (outermost first), as the model's plates:
/// a subsampled plate draws its subsample the first time it is entered in a run (`memo` keeps
/// it for the other sites of the run).
pub(crate) fn in_plates<R>(
    frames: &[CondIndepFrame],
    memo: &RefCell<HashMap<String, Tensor>>,
    body: &mut dyn FnMut() -> Result<R>,
) -> Result<R> {
    let Some((f, rest)) = frames.split_first() else { return body() };
    let mut opts = PlateOptions { dim: f.dim, ..Default::default() };
    if f.subsample_size < f.size {
        match memo.borrow().get(&f.name) {
            Some(idx) => opts.subsample = Some(idx.clone()),
            None => opts.subsample_size = Some(f.subsample_size),
        }
    }
    plate_with(f.name.as_str(), f.size, opts, |idx| {
        if f.subsample_size < f.size {
            memo.borrow_mut().entry(f.name.clone()).or_insert_with(|| idx.clone());
        }
        in_plates(rest, memo, body)
    })
}

/// Runs `f` for each site of `proto` (with its index), inside the site's plates, and collects
/// the values it returns by site name; errors name the site.
pub(crate) fn run_sites(
    proto: &Prototype,
    mut f: impl FnMut(usize, &ProtoSite) -> Result<Tensor>,
) -> Result<HashMap<String, Tensor>> {
    let memo = RefCell::new(HashMap::new());
    let mut out = HashMap::with_capacity(proto.sites.len());
    for (i, s) in proto.sites.iter().enumerate() {
        let v = in_plates(&s.frames, &memo, &mut || f(i, s)).map_err(|e| e.at_site(&s.name, None))?;
        out.insert(s.name.clone(), v);
    }
    Ok(out)
}
