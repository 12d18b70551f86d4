//! Distributions, constraints, transforms and special functions: pure math on Candle tensors.
//!
//! Nothing here knows about handlers or inference; randomness is passed in as an
//! [`Rng`](crate::rng::Rng). Conventions follow `torch.distributions`.

pub mod args;
pub(crate) mod ops;
pub mod constraints;
pub mod kernels;
pub mod linalg;
mod distribution;
pub mod special;
pub mod transforms;

mod bernoulli;
mod binomial;
mod categorical;
mod delta;
mod geometric;
mod mixture;
mod multinomial;
mod negative_binomial;
mod zero_inflated;
mod one_hot_categorical;
mod poisson;
mod independent;
mod masked;
mod kl;
mod lkj_cholesky;
mod low_rank_mvn;
mod multivariate_normal;
mod normal;
mod cauchy;
mod exponential;
mod gamma;
mod gumbel;
mod half_cauchy;
mod half_normal;
mod laplace;
mod lognormal;
mod logistic_normal;
mod uniform;
mod weibull;
mod transformed;
mod beta;
mod chi2;
mod dirichlet;
mod student_t;
mod von_mises;
mod unit;

pub use args::Arg;
pub use bernoulli::Bernoulli;
pub use binomial::Binomial;
pub use categorical::Categorical;
pub use delta::Delta;
pub use geometric::Geometric;
pub use mixture::MixtureSameFamily;
pub use multinomial::Multinomial;
pub use negative_binomial::NegativeBinomial;
pub use zero_inflated::ZeroInflatedPoisson;
pub use one_hot_categorical::OneHotCategorical;
pub use poisson::Poisson;
pub use constraints::Constraint;
pub use distribution::{DistRef, DistRefExt, Distribution, DistributionExt, IntoDist};
pub use independent::Independent;
pub use masked::Masked;
pub use kl::{AsDistribution, KlRule, kl_divergence, register_kl};
pub use lkj_cholesky::LkjCholesky;
pub use low_rank_mvn::LowRankMultivariateNormal;
pub use multivariate_normal::MultivariateNormal;
pub use normal::Normal;
pub use cauchy::Cauchy;
pub use exponential::Exponential;
pub use gamma::Gamma;
pub use gumbel::Gumbel;
pub use half_cauchy::HalfCauchy;
pub use half_normal::HalfNormal;
pub use laplace::Laplace;
pub use lognormal::LogNormal;
pub use logistic_normal::LogisticNormal;
pub use uniform::Uniform;
pub use weibull::Weibull;
pub use beta::Beta;
pub use chi2::Chi2;
pub use dirichlet::Dirichlet;
pub use student_t::StudentT;
pub use von_mises::VonMises;
pub use unit::Unit;
pub use transforms::{Transform, TransformRef, biject_to};
pub use transforms::{TransformExt, TransformRefExt};
pub use transformed::TransformedDistribution;

#[cfg(test)]
mod tests;
