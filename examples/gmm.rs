//! A 1-D Gaussian mixture with its assignments summed out (Pyro's GMM tutorial).
//!
//! Data: `--n` points from a mixture of `--k` Gaussians (unit scale, evenly spaced means) drawn
//! from a fixed seed. Model: weights ~ Dirichlet(0.5), locs ~ Normal(0, 10) per component,
//! scale ~ LogNormal(0, 2), and per point an assignment `z ~ Categorical(weights)` that
//! `config_enumerate` marks for enumeration; `TraceEnumElbo` sums it out exactly, so an
//! `AutoDelta` guide over the continuous sites gives the MAP of weights, locs and scale. Then
//! `infer_discrete` decodes the assignments (MAP, and posterior draws for their probability),
//! printed as a table beside the true components.
//!
//! Run: `cargo run --release --example gmm -- --n 500 --k 3`

use clap::Parser;
use ppl::handlers::substitute;
use ppl::infer::{AutoDelta, AutoGuide, DiscreteMode, config_enumerate, infer_discrete};
use ppl::prelude::*;
use std::process::ExitCode;

/// Fits a 1-D Gaussian mixture with enumerated assignments and decodes them.
#[derive(Parser, Debug, Clone)]
#[command(name = "gmm", about = "1-D Gaussian mixture: enumerated assignments (TraceEnumElbo), then infer_discrete")]
pub struct Args {
    /// Data points.
    #[arg(long, default_value_t = 500)]
    pub n: usize,
    /// Mixture components (true and fitted).
    #[arg(long, default_value_t = 3)]
    pub k: usize,
    /// Distance between neighbouring true means (unit scales).
    #[arg(long, default_value_t = 5.0)]
    pub spacing: f64,
    /// SVI steps.
    #[arg(long, default_value_t = 400)]
    pub steps: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Posterior draws of the assignments (for their probabilities).
    #[arg(long, default_value_t = 200)]
    pub draws: usize,
    /// Random seed (data and fit).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Tiny settings for a quick check.
    #[arg(long)]
    pub smoke: bool,
}

/// What one run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The data.
    pub x: Vec<f64>,
    /// The component each point was drawn from.
    pub truth: Vec<usize>,
    /// True means (ascending).
    pub true_locs: Vec<f64>,
    /// Fitted means, ascending (components relabelled in that order).
    pub locs: Vec<f64>,
    /// Fitted weights, in the order of `locs`.
    pub weights: Vec<f64>,
    /// Fitted scale.
    pub scale: f64,
    /// MAP assignment of each point (relabelled like `locs`).
    pub map: Vec<usize>,
    /// Fraction of posterior draws agreeing with the MAP assignment, per point.
    pub p_map: Vec<f64>,
    /// Loss (−ELBO = −log marginal likelihood at the MAP of the continuous sites + log prior) at the first and last step.
    pub loss_first: f64,
    /// See `loss_first`.
    pub loss_last: f64,
}

fn model(k: usize) -> impl Fn(&Tensor) -> Result<()> + Clone {
    move |x: &Tensor| {
        let dev = x.device();
        let weights = ppl::sample("weights", Dirichlet::new(&Tensor::full(0.5f32, k, dev)?)?)?;
        let scale = ppl::sample("scale", LogNormal::new(0.0, 2.0)?)?;
        let locs = ppl::plate("components", k, |_| ppl::sample("locs", Normal::new(0.0, 10.0)?))?;
        ppl::plate("data", x.dim(0)?, |_| {
            let z = ppl::sample("z", Categorical::new(&weights)?)?;
            let loc = locs.index_select(&z.flatten_all()?, 0)?.reshape(z.dims())?;
            ppl::observe("x", Normal::new(&loc, &scale)?, x).map(|_| ())
        })
    }
}

fn to_vec(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?)
}

/// Generates the data, fits, decodes.
pub fn run(args: &Args) -> Result<Report> {
    let (n, k) = if args.smoke { (60, args.k) } else { (args.n, args.k) };
    if k < 1 || n < k {
        return Err(Error::invalid_arg("gmm", "--n/--k", format!("need 1 <= k <= n, got k = {k}, n = {n}")));
    }
    let steps = if args.smoke { 250 } else { args.steps };
    let draws = if args.smoke { 40 } else { args.draws };
    let dev = Device::Cpu;
    // Data from a fixed seed: equal weights, unit scales.
    let mut rng = ppl::Rng::seed_from_u64(args.seed);
    let true_locs: Vec<f64> = (0..k).map(|j| (j as f64 - (k as f64 - 1.0) / 2.0) * args.spacing).collect();
    let truth: Vec<usize> = (0..n).map(|_| ((rng.uniform_open01() * k as f64) as usize).min(k - 1)).collect();
    let x: Vec<f64> = truth.iter().map(|&c| true_locs[c] + rng.standard_normal()).collect();
    let data = Tensor::from_vec(x.iter().map(|&v| v as f32).collect::<Vec<f32>>(), n, &dev)?;

    // Start the locations at spread quantiles of the data (identical starts never separate).
    let mut sorted = x.clone();
    sorted.sort_by(f64::total_cmp);
    let starts: Vec<f32> = (0..k).map(|j| sorted[(2 * j + 1) * n / (2 * k)] as f32).collect();
    let init = ppl::handlers::data([
        ("locs", Tensor::new(starts.as_slice(), &dev)?),
        ("weights", Tensor::full(1.0 / k as f32, k, &dev)?),
        ("scale", Tensor::new(1f32, &dev)?),
    ]);
    let m = config_enumerate(model(k));
    let guide = AutoDelta::new(m.clone()).init(init_to_value(init));
    let mut svi = Svi::new(m.clone(), guide.clone(), Adam::new(args.lr), TraceEnumElbo::new()).seed(args.seed);
    let losses = svi.run(&data, steps)?;

    // Decode with the continuous sites at their fitted values.
    let fitted = guide.median(svi.params())?;
    let locs_raw = to_vec(&fitted["locs"])?;
    let weights_raw = to_vec(&fitted["weights"])?;
    let scale = to_vec(&fitted["scale"])?[0];
    let conditioned = |x: &Tensor| substitute(fitted.clone(), || m.run(x));
    let map_raw = to_vec(&infer_discrete(&conditioned, &data, DiscreteMode::Map)?["z"])?;
    let mut agree = vec![0usize; n];
    ppl::handlers::seed(args.seed, || -> Result<()> {
        for _ in 0..draws {
            let d = to_vec(&infer_discrete(&conditioned, &data, DiscreteMode::Sample)?["z"])?;
            for i in 0..n {
                agree[i] += usize::from(d[i] == map_raw[i]);
            }
        }
        Ok(())
    })?;
    // Relabel components in ascending order of their fitted means.
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| locs_raw[a].total_cmp(&locs_raw[b]));
    let mut rank = vec![0; k];
    for (r, &c) in order.iter().enumerate() {
        rank[c] = r;
    }
    Ok(Report {
        truth,
        true_locs,
        locs: order.iter().map(|&c| locs_raw[c]).collect(),
        weights: order.iter().map(|&c| weights_raw[c]).collect(),
        scale,
        map: map_raw.iter().map(|&z| rank[z as usize]).collect(),
        p_map: agree.iter().map(|&a| a as f64 / draws.max(1) as f64).collect(),
        loss_first: losses[0],
        loss_last: *losses.last().unwrap_or(&f64::NAN),
        x,
    })
}

fn print(r: &Report) {
    let n = r.x.len();
    println!("{} points, {} components; loss {:.2} -> {:.2}\n", n, r.locs.len(), r.loss_first, r.loss_last);
    println!("{:<10} {:>8} {:>8} {:>8}", "component", "true loc", "loc", "weight");
    for (j, (l, w)) in r.locs.iter().zip(&r.weights).enumerate() {
        println!("{:<10} {:>8.2} {:>8.2} {:>8.3}", j, r.true_locs[j], l, w);
    }
    println!("scale {:.3} (true 1)\n", r.scale);
    let right = r.map.iter().zip(&r.truth).filter(|(a, b)| a == b).count();
    println!("MAP assignments equal to the true component: {right} of {n}\n");
    println!("{:>8} {:>6} {:>6} {:>10}", "x", "true", "MAP", "P(MAP)");
    // The ten least certain points, then the first five.
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| r.p_map[a].total_cmp(&r.p_map[b]));
    for &i in idx.iter().take(10).chain((0..5.min(n)).collect::<Vec<_>>().iter()) {
        println!("{:>8.3} {:>6} {:>6} {:>10.2}", r.x[i], r.truth[i], r.map[i], r.p_map[i]);
    }
}

#[allow(dead_code)]
fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(r) => {
            print(&r);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
