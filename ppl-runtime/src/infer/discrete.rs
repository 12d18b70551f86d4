//! [`infer_discrete`]: the enumerated discrete sites of a model given everything else — their
//! most probable joint value (max-product, Viterbi for an HMM) or a draw from their exact
//! posterior (forward filtering, backward sampling).

use crate::error::{Error, Result};
use crate::handlers::enum_::EnumHandler;
use crate::handlers::{Data, trace};
use crate::infer::enum_::contract::{Sampler, Semiring, Sym};
use crate::infer::enum_::{build, plate_nesting};
use crate::infer::program::Program;
use crate::runtime::{with_handler, with_rng};
use candle_core::{D, DType, Tensor};

/// What [`infer_discrete`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiscreteMode {
    /// The jointly most probable values (temperature 0 in Pyro).
    Map,
    /// One draw from the joint posterior (temperature 1), from the innermost `seed` handler.
    Sample,
}

/// Options of [`infer_discrete_with`].
#[derive(Clone, Debug)]
pub struct InferDiscrete {
    /// MAP or a posterior draw.
    pub mode: DiscreteMode,
    /// The number of nested plates; found from a first run of the model when `None`.
    pub max_plate_nesting: Option<usize>,
}

impl InferDiscrete {
    /// Options for `mode`, plate nesting found from a first run.
    pub fn new(mode: DiscreteMode) -> Self {
        InferDiscrete { mode, max_plate_nesting: None }
    }
}

/// The enumerated sites of `model` (marked `enumerate = parallel`, or the model wrapped in
/// [`config_enumerate`](super::config_enumerate)) given its other sites, as a map from site name
/// to value, shaped as a draw of the site would be (plates at their dims). Continuous latent
/// sites take whatever value the handlers around the call give them (`substitute` a posterior
/// draw or the guide's medians); observed sites condition.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ppl_runtime::{dist::{Bernoulli, Normal}, infer::{config_enumerate, infer_discrete, DiscreteMode}, primitives::{observe, plate, sample}};
/// let x = Tensor::new(&[-2f32, 3.0], &Device::Cpu)?;
/// let model = |x: &Tensor| -> ppl_runtime::Result<()> {
///     plate("data", 2, |_| {
///         let c = sample("c", Bernoulli::new(0.5)?)?;
///         observe("x", Normal::new(&(c * 4.0)?, 1.0)?, x).map(|_| ())
///     })
/// };
/// let map = infer_discrete(&config_enumerate(model), &x, DiscreteMode::Map)?;
/// assert_eq!(map["c"].to_vec1::<f32>()?, vec![0.0, 1.0]);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn infer_discrete<A: ?Sized, M, P: Program<A, M>>(model: &P, args: &A, mode: DiscreteMode) -> Result<Data> {
    infer_discrete_with(model, args, &InferDiscrete::new(mode))
}

/// [`infer_discrete`] with options.
pub fn infer_discrete_with<A: ?Sized, M, P: Program<A, M>>(model: &P, args: &A, opts: &InferDiscrete) -> Result<Data> {
    let nesting = match opts.max_plate_nesting {
        Some(k) => k,
        None => plate_nesting(&trace(|| model.run(args))?.1),
    };
    let (res, handler) = with_handler(EnumHandler::new(nesting), || trace(|| model.run(args)));
    let (_, tr) = res?;
    let built = build(&tr, handler.vars(), nesting)?;
    let semiring = if opts.mode == DiscreteMode::Map { Semiring::Max } else { Semiring::LogSum };
    let (_, elims) = built.problem.contract_with(semiring, true, &built.chains)?;
    let mut draw = |t: &Tensor| draw_categorical(t);
    let sampler: Option<Sampler<'_>> =
        if opts.mode == DiscreteMode::Sample { Some(&mut draw) } else { None };
    let chosen = built.problem.backward(&elims, sampler, &built.chains)?;
    let mut out = Data::new();
    for (id, var) in handler.vars().iter().enumerate() {
        let site = tr.get(&var.name).ok_or_else(|| Error::Enumeration(format!("internal: no site `{}`", var.name)))?;
        let located = |e: Error| e.at_site(&site.name, site.location());
        let dist = site.dist()?;
        if !dist.event_shape().is_empty() {
            return Err(located(Error::Enumeration(format!(
                "infer_discrete decodes sites with scalar events only; `{}` has event shape {:?}",
                dist.name(),
                dist.event_shape()
            ))));
        }
        // The physical layout: each plate of the site at its dim.
        let frames: Vec<_> = site.cond_indep_stack.iter().filter_map(|f| f.dim.map(|d| (d, f))).collect();
        let rank = frames.iter().map(|(d, _)| (-d) as usize).max().unwrap_or(0);
        let mut shape = vec![1usize; rank];
        for (d, f) in &frames {
            shape[(rank as isize + d) as usize] = f.subsample_size;
        }
        let device = site.value()?.device().clone();
        let idx = match chosen.get(&id) {
            Some(f) => {
                // `f.syms` are plates in plate-index order; order them by dim, leftmost first.
                let mut order: Vec<(isize, usize)> = f
                    .syms
                    .iter()
                    .enumerate()
                    .map(|(axis, s)| {
                        let Sym::Plate(p) = s else { return Err(Error::Enumeration("internal: var sym".into())) };
                        let name = &built.problem.plates[*p].name;
                        let d = frames.iter().find(|(_, fr)| &fr.name == name).map(|(d, _)| *d).ok_or_else(|| {
                            Error::Enumeration(format!("internal: plate `{name}` not on site `{}`", var.name))
                        })?;
                        Ok((d, axis))
                    })
                    .collect::<Result<_>>()?;
                order.sort_unstable();
                let t = f.t.permute(order.iter().map(|(_, a)| *a).collect::<Vec<_>>())?;
                t.contiguous()?.reshape(shape.clone())?
            }
            None => Tensor::zeros(shape.clone(), DType::U32, &device)?,
        };
        let support = dist.enumerate_support(false)?.flatten_all()?;
        let value = support.index_select(&idx.flatten_all()?.to_device(support.device())?, 0)?.reshape(shape)?;
        out.insert(var.name.clone(), value);
    }
    Ok(out)
}

/// One categorical draw per row of the log-weights `t` (`[.., k]`), as U32 indices `[..]`.
fn draw_categorical(t: &Tensor) -> Result<Tensor> {
    let k = t.dim(D::Minus1)?;
    let rows: Vec<f64> = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
    let mut out = Vec::with_capacity(rows.len() / k.max(1));
    for row in rows.chunks(k) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        if !m.is_finite() {
            return Err(Error::Enumeration(
                "every value of an enumerated site has zero posterior probability (the observations are impossible \
                 under the model)"
                    .into(),
            ));
        }
        let w: Vec<f64> = row.iter().map(|x| (x - m).exp()).collect();
        let total: f64 = w.iter().sum();
        let u = with_rng(|r| r.uniform_open01()) * total;
        let mut acc = 0.0;
        let mut pick = k - 1;
        for (i, wi) in w.iter().enumerate() {
            acc += wi;
            if u < acc {
                pick = i;
                break;
            }
        }
        out.push(pick as u32);
    }
    let dims = &t.dims()[..t.rank() - 1];
    Ok(Tensor::from_vec(out, dims, t.device())?)
}
