//! A discrete hidden Markov model fitted with its hidden states summed out.
//!
//! Sequences of `--length` symbols are drawn from a fixed 3-state HMM (sticky transitions,
//! 4 emission symbols) with a fixed seed. The model declares the transition and emission matrices
//! as parameters (rows on the simplex), the sequences as a vectorized plate, and the time steps as
//! a `vectorized_markov` loop whose hidden states are enumerated: the body is written once and
//! runs for t = 0 and, vectorized, for t = 1..T; `TraceEnumElbo` then computes the exact
//! log-likelihood (the forward algorithm, as a parallel scan of log-space matrix products) with
//! two enum dims whatever the length, and Adam maximizes it. `--markov` writes the time steps as a
//! sequential `markov` loop instead (one site per step, variable elimination; same numbers, slower).
//! Printed: the log-likelihood per step under the fitted and the true parameters (the latter by a
//! plain forward algorithm), and the recovered transition matrix beside the true one (fitted
//! states matched to true ones by their emissions).
//!
//! Run: `cargo run --example hmm -- --sequences 20 --length 100`

use clap::Parser;
use ppl::prelude::*;
use std::process::ExitCode;

/// Fits a discrete HMM by exact enumeration of its hidden states.
#[derive(Parser, Debug, Clone)]
#[command(name = "hmm", about = "Discrete HMM: enumerated hidden states under vectorized_markov (or markov), fitted by TraceEnumElbo")]
pub struct Args {
    /// Number of sequences.
    #[arg(long, default_value_t = 20)]
    pub sequences: usize,
    /// Length of each sequence.
    #[arg(long, default_value_t = 100)]
    pub length: usize,
    /// SVI (maximum-likelihood) steps.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub lr: f64,
    /// Random starts of the fit (the best final loss is kept).
    #[arg(long, default_value_t = 4)]
    pub restarts: usize,
    /// Random seed (data and initial parameters).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write the time steps as a sequential `markov` loop (one site per step) instead of
    /// `vectorized_markov`.
    #[arg(long)]
    pub markov: bool,
    /// Tiny settings for a quick check.
    #[arg(long)]
    pub smoke: bool,
}

/// Hidden states.
pub const S: usize = 3;
/// Emission symbols.
pub const V: usize = 4;
/// The true transition matrix.
pub const TRANS: [[f64; S]; S] = [[0.85, 0.1, 0.05], [0.1, 0.8, 0.1], [0.05, 0.15, 0.8]];
/// The true emission matrix.
pub const EMIT: [[f64; V]; S] = [[0.7, 0.2, 0.05, 0.05], [0.1, 0.1, 0.7, 0.1], [0.05, 0.1, 0.15, 0.7]];

/// What one run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// Log-likelihood per observed symbol under the fitted parameters.
    pub loglik_fitted: f64,
    /// Log-likelihood per observed symbol under the true parameters (plain forward algorithm).
    pub loglik_true: f64,
    /// The same computed by `TraceEnumElbo` (enumeration under `vectorized_markov` or `markov`).
    pub loglik_true_enum: f64,
    /// Fitted transition matrix, states ordered to match the true ones.
    pub trans: Vec<Vec<f64>>,
    /// Fitted emission matrix, in the same order.
    pub emit: Vec<Vec<f64>>,
    /// Enum dims the model used.
    pub enum_dims: usize,
    /// Symbols observed.
    pub observations: usize,
}

fn draw(rng: &mut ppl::Rng, p: &[f64]) -> usize {
    let u = rng.uniform_open01();
    let mut acc = 0.0;
    for (i, pi) in p.iter().enumerate() {
        acc += pi;
        if u < acc {
            return i;
        }
    }
    p.len() - 1
}

/// Sequences from the true HMM, each starting in state 0.
pub fn simulate(n: usize, t: usize, rng: &mut ppl::Rng) -> Vec<Vec<usize>> {
    (0..n)
        .map(|_| {
            let mut x = 0;
            (0..t)
                .map(|_| {
                    x = draw(rng, &TRANS[x]);
                    draw(rng, &EMIT[x])
                })
                .collect()
        })
        .collect()
}

/// `log p(y)` of one sequence by the forward algorithm (start state 0), in plain f64.
pub fn forward(y: &[usize], trans: &[Vec<f64>], emit: &[Vec<f64>]) -> f64 {
    let s = trans.len();
    let mut alpha: Vec<f64> = (0..s).map(|j| trans[0][j].ln() + emit[j][y[0]].ln()).collect();
    for &yt in &y[1..] {
        alpha = (0..s)
            .map(|j| {
                let m = (0..s).map(|i| alpha[i] + trans[i][j].ln()).fold(f64::NEG_INFINITY, f64::max);
                m + (0..s).map(|i| (alpha[i] + trans[i][j].ln() - m).exp()).sum::<f64>().ln() + emit[j][yt].ln()
            })
            .collect();
    }
    let m = alpha.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + alpha.iter().map(|a| (a - m).exp()).sum::<f64>().ln()
}

/// Rows `m[x]` for an index tensor `x` of any shape: shape `x.dims() ++ [cols]`.
fn rows(m: &Tensor, x: &Tensor) -> Result<Tensor> {
    let mut shape = x.dims().to_vec();
    shape.push(m.dim(1)?);
    Ok(m.index_select(&x.flatten_all()?, 0)?.reshape(shape)?)
}

fn simplex() -> ParamOptions {
    ParamOptions { constraint: Constraint::Simplex, ..Default::default() }
}

/// The model: `y` is `[sequences, length]` (U32 symbols); every sequence starts in state 0.
/// With `vectorized`, the time steps are one `vectorized_markov` loop (sequences at dim -2, time
/// at dim -1); otherwise a sequential `markov` loop inside the sequences plate.
fn model(trans0: Tensor, emit0: Tensor, vectorized: bool) -> impl Fn(&Tensor) -> Result<()> + Clone {
    move |y: &Tensor| {
        let trans = ppl::param_with("trans", &trans0, simplex())?;
        let emit = ppl::param_with("emit", &emit0, simplex())?;
        let (n, t) = y.dims2()?;
        let enumerated = || SampleOptions::new().infer(ppl::InferConfig::new().enumerate(ppl::Enumerate::Parallel));
        let mut x = Tensor::zeros(1, DType::U32, y.device())?;
        if vectorized {
            let at = |dim| PlateOptions { dim: Some(dim), ..Default::default() };
            ppl::plate_with("sequences", n, at(-2), |_| {
                ppl::vectorized_markov_with("time", t, at(-1), |i| {
                    // `x` is x_0 in the second run: its enum dim stands for "the state at t - 1".
                    x = ppl::sample_with(format!("x_{i}"), Categorical::new(&rows(&trans, &x)?)?, enumerated())?;
                    let yi = y.index_select(i.indices(), 1)?; // [n, 1] at t = 0, [n, T - 1] after
                    ppl::observe(format!("y_{i}"), Categorical::new(&rows(&emit, &x)?)?, &yi).map(|_| ())
                })
            })?;
        } else {
            ppl::plate("sequences", n, |_| {
                ppl::markov(t, |i| {
                    x = ppl::sample_with(format!("x_{i}"), Categorical::new(&rows(&trans, &x)?)?, enumerated())?;
                    let yi = y.narrow(1, i, 1)?.squeeze(1)?;
                    ppl::observe(format!("y_{i}"), Categorical::new(&rows(&emit, &x)?)?, &yi).map(|_| ())
                })
            })?;
        }
        Ok(())
    }
}

fn matrix(t: &Tensor) -> Result<Vec<Vec<f64>>> {
    Ok(t.to_dtype(DType::F64)?.to_vec2()?)
}

/// The permutation of fitted states that best matches the true emissions.
fn match_states(emit: &[Vec<f64>]) -> Vec<usize> {
    let perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
    let cost = |p: &[usize; 3]| -> f64 {
        (0..S).map(|j| (0..V).map(|v| (emit[p[j]][v] - EMIT[j][v]).abs()).sum::<f64>()).sum()
    };
    perms.iter().min_by(|a, b| cost(a).total_cmp(&cost(b))).map(|p| p.to_vec()).unwrap_or_else(|| vec![0, 1, 2])
}

/// Simulates, fits, compares.
pub fn run(args: &Args) -> Result<Report> {
    let (n, t, steps, restarts) =
        if args.smoke { (16, 40, 150, 3) } else { (args.sequences, args.length, args.steps, args.restarts) };
    if n == 0 || t < 2 {
        return Err(Error::invalid_arg("hmm", "--sequences/--length", format!("need at least 1 sequence of length 2, got {n} of {t}")));
    }
    let mut rng = ppl::Rng::seed_from_u64(args.seed);
    let ys = simulate(n, t, &mut rng);
    let dev = Device::Cpu;
    let flat: Vec<u32> = ys.iter().flatten().map(|&v| v as u32).collect();
    let y = Tensor::from_vec(flat, (n, t), &dev)?;
    // Maximum likelihood has poor local optima (two states sharing one symbol): fit from a few
    // random starts (sticky transitions, Dirichlet(1) emissions) and keep the best.
    let trans0: Vec<f32> = (0..S * S).map(|i| if i / S == i % S { 0.7 } else { 0.15 }).collect();
    let guide = |_: &Tensor| -> Result<()> { Ok(()) };
    let mut best: Option<(f64, Svi<Tensor>, _)> = None;
    for restart in 0..restarts.max(1) {
        let mut emit0: Vec<f32> = (0..S * V).map(|_| -(rng.uniform_open01().ln()) as f32).collect();
        for row in emit0.chunks_mut(V) {
            let s: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= s);
        }
        let m = model(Tensor::from_vec(trans0.clone(), (S, S), &dev)?, Tensor::from_vec(emit0, (S, V), &dev)?, !args.markov);
        let mut svi = Svi::new(m.clone(), guide, Adam::new(args.lr), TraceEnumElbo::new()).seed(args.seed + restart as u64);
        svi.run(&y, steps)?;
        let loss = svi.step(&y)?; // one more step only to read the final loss
        if best.as_ref().is_none_or(|b| loss < b.0) {
            best = Some((loss, svi, m));
        }
    }
    let Some((loss, svi, m)) = best else { unreachable!("at least one restart ran") };
    let get = |name: &str| -> Result<Vec<Vec<f64>>> {
        matrix(&svi.params().get(name)?.ok_or_else(|| Error::invalid_arg("hmm", name, "missing after fitting"))?)
    };
    let (trans_raw, emit_raw) = (get("trans")?, get("emit")?);
    let p = match_states(&emit_raw);
    let trans: Vec<Vec<f64>> = (0..S).map(|i| (0..S).map(|j| trans_raw[p[i]][p[j]]).collect()).collect();
    let emit: Vec<Vec<f64>> = (0..S).map(|i| emit_raw[p[i]].clone()).collect();
    let true_t: Vec<Vec<f64>> = TRANS.iter().map(|r| r.to_vec()).collect();
    let true_e: Vec<Vec<f64>> = EMIT.iter().map(|r| r.to_vec()).collect();
    let observations = n * t;
    let loglik_true = ys.iter().map(|s| forward(s, &true_t, &true_e)).sum::<f64>() / observations as f64;
    // The same under the true parameters, by enumeration (equals the forward algorithm's).
    let to_t = |m: &[Vec<f64>]| Tensor::from_vec(m.iter().flatten().map(|&v| v as f32).collect::<Vec<_>>(), (m.len(), m[0].len()), &dev);
    let true_model = model(to_t(&true_t)?, to_t(&true_e)?, !args.markov);
    let run_true = || true_model(&y);
    let no_guide = || Ok(());
    let est = ParamStore::new().scope(|| TraceEnumElbo::new().estimate(&run_true, &no_guide))?;
    let loglik_true_enum = -est.loss / observations as f64;
    // Enum dims used by one more run of the model (left of its one or two plate dims).
    let nesting = if args.markov { 1 } else { 2 };
    let dims = {
        let (res, _) = svi.params().scope(|| ppl::handlers::enum_(nesting, || ppl::handlers::trace(|| m(&y))));
        let tr = res?.1;
        tr.nodes().filter_map(|s| s.infer.enum_dim).collect::<std::collections::BTreeSet<_>>().len()
    };
    Ok(Report { loglik_fitted: -loss / observations as f64, loglik_true, loglik_true_enum, trans, emit, enum_dims: dims, observations })
}

fn print_matrix(title: &str, fitted: &[Vec<f64>], truth: &[Vec<f64>]) {
    println!("{title}: fitted | true");
    for (f, t) in fitted.iter().zip(truth) {
        let row = |r: &[f64]| r.iter().map(|v| format!("{v:.3}")).collect::<Vec<_>>().join(" ");
        println!("  {}  |  {}", row(f), row(t));
    }
}

fn print(r: &Report) {
    println!("{} observed symbols; the model enumerated with {} dims\n", r.observations, r.enum_dims);
    println!(
        "log-likelihood per step: fitted {:.4}, true parameters {:.4} (forward algorithm) = {:.4} (enumeration)\n",
        r.loglik_fitted, r.loglik_true, r.loglik_true_enum
    );
    print_matrix("transition matrix", &r.trans, &TRANS.iter().map(|x| x.to_vec()).collect::<Vec<_>>());
    println!();
    print_matrix("emission matrix", &r.emit, &EMIT.iter().map(|x| x.to_vec()).collect::<Vec<_>>());
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
