//! KL divergences `KL(p ‖ q)` in closed form, from a registry keyed by the pair of concrete types.
//!
//! [`kl_divergence`] tries each registered rule in turn; a rule downcasts both arguments with
//! [`Distribution::as_any`] and answers only for its own pair. Rules added with [`register_kl`]
//! are tried before the built-in ones, so they can also override them.

use crate::dist::distribution::{DistRef, Distribution, sum_rightmost};
use crate::dist::kernels;
use crate::nn::fused;
use crate::dist::{
    Bernoulli, Beta, Categorical, Delta, Dirichlet, Gamma, Independent, MultivariateNormal, Normal, linalg, special,
};
use crate::error::{Error, Result};
use candle_core::Tensor;
use std::sync::RwLock;

/// A KL rule: `Some(KL(p ‖ q))` when it handles the pair of concrete types, `None` otherwise.
pub type KlRule = fn(&dyn Distribution, &dyn Distribution) -> Option<Result<Tensor>>;

static USER_RULES: RwLock<Vec<KlRule>> = RwLock::new(Vec::new());

const BUILTIN: &[KlRule] = &[
    kl_delta_any,
    kl_normal_normal,
    kl_mvn_mvn,
    kl_independent_independent,
    kl_beta_beta,
    kl_gamma_gamma,
    kl_dirichlet_dirichlet,
    kl_bernoulli_bernoulli,
    kl_categorical_categorical,
];

/// Registers a KL rule (Pyro's `@register_kl`); later registrations are tried first.
pub fn register_kl(rule: KlRule) {
    // A poisoned lock only means another registration panicked; the list itself is intact.
    let mut rules = USER_RULES.write().unwrap_or_else(|e| e.into_inner());
    rules.insert(0, rule);
}

/// `KL(p ‖ q) = E_p[log p(x) − log q(x)]`, in closed form, of the broadcast batch shape.
///
/// Built-in pairs: Normal–Normal, MultivariateNormal–MultivariateNormal, Independent–Independent
/// (same number of reinterpreted dims: the bases' KL summed over them), Beta–Beta, Gamma–Gamma,
/// Dirichlet–Dirichlet, Bernoulli–Bernoulli, Categorical–Categorical, and Delta–anything, which
/// is `−q.log_prob(v) + log_density` as in Pyro. Other pairs give [`Error::Unsupported`] naming both.
///
/// ```
/// use ppl_runtime::dist::{Normal, kl_divergence};
/// let kl = kl_divergence(&Normal::new(0.0, 1.0)?, &Normal::new(1.0, 1.0)?)?;
/// assert!((kl.to_scalar::<f32>()? - 0.5).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
///
/// Either side may be a concrete distribution, a `&dyn Distribution` or a shared [`DistRef`]:
///
/// ```
/// use ppl_runtime::dist::{DistRef, DistributionExt, Normal, kl_divergence};
/// let (p, q): (DistRef, DistRef) = (Normal::new(0.0, 1.0)?.into_ref(), Normal::new(1.0, 1.0)?.into_ref());
/// assert!((kl_divergence(&p, &q)?.to_scalar::<f32>()? - 0.5).abs() < 1e-6);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn kl_divergence<P: AsDistribution + ?Sized, Q: AsDistribution + ?Sized>(p: &P, q: &Q) -> Result<Tensor> {
    kl_dyn(p.as_distribution(), q.as_distribution())
}

/// What [`kl_divergence`] accepts: a distribution, borrowed as `&dyn Distribution`.
pub trait AsDistribution {
    /// The distribution as a trait object.
    fn as_distribution(&self) -> &dyn Distribution;
}

impl<D: Distribution> AsDistribution for D {
    fn as_distribution(&self) -> &dyn Distribution {
        self
    }
}

impl AsDistribution for dyn Distribution {
    fn as_distribution(&self) -> &dyn Distribution {
        self
    }
}

impl AsDistribution for DistRef {
    fn as_distribution(&self) -> &dyn Distribution {
        self.as_ref()
    }
}

fn kl_dyn(p: &dyn Distribution, q: &dyn Distribution) -> Result<Tensor> {
    let user: Vec<KlRule> = USER_RULES.read().unwrap_or_else(|e| e.into_inner()).clone();
    for rule in user.iter().chain(BUILTIN) {
        if let Some(kl) = rule(p, q) {
            return kl;
        }
    }
    Err(Error::Unsupported {
        dist: p.name(),
        method: "kl_divergence",
        hint: Some(format!(
            "no closed form is registered for KL(`{}` ‖ `{}`); register one with `register_kl`, or use a Monte Carlo estimate",
            p.name(),
            q.name()
        )),
    })
}

fn pair<'a, P: 'static, Q: 'static>(p: &'a dyn Distribution, q: &'a dyn Distribution) -> Option<(&'a P, &'a Q)> {
    Some((p.as_any().downcast_ref::<P>()?, q.as_any().downcast_ref::<Q>()?))
}

fn kl_delta_any(p: &dyn Distribution, q: &dyn Distribution) -> Option<Result<Tensor>> {
    let d = p.as_any().downcast_ref::<Delta>()?;
    Some((|| Ok(q.log_prob(d.v())?.neg()?.broadcast_add(d.log_density())?))())
}

fn kl_normal_normal(p: &dyn Distribution, q: &dyn Distribution) -> Option<Result<Tensor>> {
    let (p, q) = pair::<Normal, Normal>(p, q)?;
    Some(normal_normal(p, q, 0))
}

/// `KL(N(μp, σp) ‖ N(μq, σq))` summed over the rightmost `event_dims` dims: one fused pass on
/// the CPU ([`crate::nn::fused::normal_kl`]), Candle ops elsewhere.
fn normal_normal(p: &Normal, q: &Normal, event_dims: usize) -> Result<Tensor> {
    if kernels::cpu_kernels(p.loc().device()) {
        return fused::normal_kl(p.loc(), p.scale(), q.loc(), q.scale(), event_dims);
    }
    // ½ (r + t − 1 − log r), r = (σp/σq)², t = ((μp − μq)/σq)²
    let r = p.scale().broadcast_div(q.scale())?.sqr()?;
    let t = p.loc().broadcast_sub(q.loc())?.broadcast_div(q.scale())?.sqr()?;
    let kl = ((r.broadcast_add(&t)? - r.log()?)? - 1.0)?.affine(0.5, 0.0)?;
    sum_rightmost("Normal", kl, event_dims)
}

fn kl_mvn_mvn(p: &dyn Distribution, q: &dyn Distribution) -> Option<Result<Tensor>> {
    let (p, q) = pair::<MultivariateNormal, MultivariateNormal>(p, q)?;
    Some((|| {
        if p.event_shape() != q.event_shape() {
            return Err(Error::ShapeMismatch {
                context: "`kl_divergence`: the two `MultivariateNormal`s have different event shapes".into(),
                expected: format!("{:?}", p.event_shape()),
                got: format!("{:?}", q.event_shape()),
                hint: None,
            });
        }
        let n = p.event_shape()[0] as f64;
        let (lp, lq) = (p.raw_scale_tril(), q.raw_scale_tril());
        // ½ [tr(Σq⁻¹Σp) + (μq − μp)ᵀΣq⁻¹(μq − μp) − n] + ½ log det Σq − ½ log det Σp
        let half_term1 = q.half_log_det()?.broadcast_sub(&p.half_log_det()?)?;
        let m = linalg::solve_triangular(lq, lp, true, true)?;
        let term2 = m.sqr()?.sum(m.rank() - 1)?.sum(m.rank() - 2)?;
        let term3 = linalg::batch_mahalanobis(lq, &q.loc().broadcast_sub(p.loc())?)?;
        Ok(half_term1.broadcast_add(&term2.broadcast_add(&term3)?.affine(0.5, -0.5 * n)?)?)
    })())
}

fn kl_independent_independent(p: &dyn Distribution, q: &dyn Distribution) -> Option<Result<Tensor>> {
    let (p, q) = pair::<Independent, Independent>(p, q)?;
    Some((|| {
        if p.reinterpreted() != q.reinterpreted() {
            return Err(Error::Unsupported {
                dist: "Independent",
                method: "kl_divergence",
                hint: Some(format!(
                    "KL(`Independent` ‖ `Independent`) needs the same number of reinterpreted dims, got {} and {}",
                    p.reinterpreted(),
                    q.reinterpreted()
                )),
            });
        }
        if let Some((pn, qn)) = pair::<Normal, Normal>(p.base().as_ref(), q.base().as_ref()) {
            return normal_normal(pn, qn, p.reinterpreted());
        }
        let kl = kl_divergence(p.base().as_ref(), q.base().as_ref())?;
        sum_rightmost("Independent", kl, p.reinterpreted())
    })())
}

fn kl_beta_beta(p: &dyn Distribution, q: &dyn Distribution) -> Option<Result<Tensor>> {
    let (p, q) = pair::<Beta, Beta>(p, q)?;
    Some((|| {
        let (p1, p0, q1, q0) = (p.concentration1(), p.concentration0(), q.concentration1(), q.concentration0());
        let (sp, sq) = ((p1 + p0)?, (q1 + q0)?);
        let lg = special::lgamma;
        let t1 = (lg(q1)?.broadcast_add(&lg(q0)?)?.broadcast_add(&lg(&sp)?))?;
        let t2 = (lg(p1)?.broadcast_add(&lg(p0)?)?.broadcast_add(&lg(&sq)?))?;
        let t3 = p1.broadcast_sub(q1)?.mul(&special::digamma(p1)?)?;
        let t4 = p0.broadcast_sub(q0)?.mul(&special::digamma(p0)?)?;
        let t5 = sq.broadcast_sub(&sp)?.broadcast_mul(&special::digamma(&sp)?)?;
        Ok(t1.broadcast_sub(&t2)?.broadcast_add(&t3)?.broadcast_add(&t4)?.broadcast_add(&t5)?)
    })())
}

fn kl_gamma_gamma(p: &dyn Distribution, q: &dyn Distribution) -> Option<Result<Tensor>> {
    let (p, q) = pair::<Gamma, Gamma>(p, q)?;
    Some((|| {
        let (pa, pr, qa, qr) = (p.concentration(), p.rate(), q.concentration(), q.rate());
        let t1 = qa.broadcast_mul(&pr.broadcast_div(qr)?.log()?)?;
        let t2 = special::lgamma(qa)?.broadcast_sub(&special::lgamma(pa)?)?;
        let t3 = pa.broadcast_sub(qa)?.broadcast_mul(&special::digamma(pa)?)?;
        let t4 = qr.broadcast_sub(pr)?.broadcast_mul(&pa.broadcast_div(pr)?)?;
        Ok(t1.broadcast_add(&t2)?.broadcast_add(&t3)?.broadcast_add(&t4)?)
    })())
}

fn kl_dirichlet_dirichlet(p: &dyn Distribution, q: &dyn Distribution) -> Option<Result<Tensor>> {
    let (p, q) = pair::<Dirichlet, Dirichlet>(p, q)?;
    Some((|| {
        check_last_dim("Dirichlet", p.concentration(), q.concentration())?;
        let (pc, qc) = (p.concentration(), q.concentration());
        let last = |t: &Tensor| t.rank() - 1;
        let (sp, sq) = (pc.sum(last(pc))?, qc.sum(last(qc))?);
        let t1 = special::lgamma(&sp)?.broadcast_sub(&special::lgamma(&sq)?)?;
        let t2 = special::lgamma(pc)?.sum(last(pc))?.broadcast_sub(&special::lgamma(qc)?.sum(last(qc))?)?;
        let t3 = pc.broadcast_sub(qc)?;
        let t4 = special::digamma(pc)?.broadcast_sub(&special::digamma(&sp)?.unsqueeze(sp.rank())?)?;
        let t34 = t3.broadcast_mul(&t4)?;
        Ok(t1.broadcast_sub(&t2)?.broadcast_add(&t34.sum(t34.rank() - 1)?)?)
    })())
}

fn kl_bernoulli_bernoulli(p: &dyn Distribution, q: &dyn Distribution) -> Option<Result<Tensor>> {
    let (p, q) = pair::<Bernoulli, Bernoulli>(p, q)?;
    Some((|| {
        // p (log p − log q) + (1 − p)(log(1 − p) − log(1 − q)), with log p = −softplus(−logit).
        let (lp, lq) = (p.logits(), q.logits());
        let pp = p.probs()?;
        let sp = special::softplus;
        let t1 = pp.broadcast_mul(&sp(&lq.neg()?)?.broadcast_sub(&sp(&lp.neg()?)?)?)?;
        let t2 = pp.affine(-1.0, 1.0)?.broadcast_mul(&sp(lq)?.broadcast_sub(&sp(lp)?)?)?;
        Ok(t1.broadcast_add(&t2)?)
    })())
}

fn kl_categorical_categorical(p: &dyn Distribution, q: &dyn Distribution) -> Option<Result<Tensor>> {
    let (p, q) = pair::<Categorical, Categorical>(p, q)?;
    Some((|| {
        check_last_dim("Categorical", p.probs(), q.probs())?;
        let (pp, lp, lq) = (p.probs(), p.logits(), q.logits());
        // Terms with p = 0 are 0; their logits (possibly −inf) are replaced before use so that
        // neither the value nor the gradient sees 0 · ∞.
        let shape = args_broadcast(pp, lq)?;
        let (pp, lp, lq) = (
            pp.broadcast_as(shape.as_slice())?,
            lp.broadcast_as(shape.as_slice())?,
            lq.broadcast_as(shape.as_slice())?,
        );
        let zero = pp.zeros_like()?;
        let is_zero = pp.eq(0.0)?;
        let lp = is_zero.where_cond(&zero, &lp)?;
        let lq = is_zero.where_cond(&zero, &lq)?;
        let t = pp.mul(&(lp - lq)?)?;
        Ok(t.sum(t.rank() - 1)?)
    })())
}

fn args_broadcast(a: &Tensor, b: &Tensor) -> Result<Vec<usize>> {
    crate::dist::args::broadcast_shapes(a.dims(), b.dims()).ok_or_else(|| {
        Error::shape_mismatch("`kl_divergence`: parameters of `p` and `q` do not broadcast", a.dims(), b.dims())
    })
}

fn check_last_dim(dist: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims().last() != b.dims().last() {
        return Err(Error::shape_mismatch(
            format!("`kl_divergence`: the two `{dist}`s have different event sizes"),
            a.dims(),
            b.dims(),
        ));
    }
    Ok(())
}
