//! The output of an MCMC run: constrained samples per site (`[chains, draws, ..shape]`), the
//! per-draw statistics, a Stan-style summary and CmdStan CSV files.

use crate::error::{Error, Result};
use crate::handlers::Data;
use crate::infer::diagnostics::{ess_bulk, ess_tail, mcse_mean, quantiles, split_rhat};
use crate::infer::mcmc::chain::{ChainDraws, DrawStats};
use crate::infer::mcmc::config::McmcConfig;
use crate::infer::potential::Layout;
use candle_core::{DType, Device, Tensor};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The draws of an MCMC run.
#[derive(Clone, Debug)]
pub struct McmcSamples {
    layout: Layout,
    samples: Data,
    chains: Vec<ChainDraws>,
    num_draws: usize,
    num_warmup: usize,
    thinning: usize,
    kernel: &'static str,
    max_tree_depth: Option<u64>,
    wall_time: Duration,
    seed: u64,
}

impl McmcSamples {
    pub(crate) fn new(
        layout: Layout,
        chains: Vec<ChainDraws>,
        cfg: &McmcConfig,
        kernel: &'static str,
        max_tree_depth: Option<u64>,
        device: &Device,
        wall_time: Duration,
    ) -> Result<Self> {
        let num_draws = chains[0].stats.len();
        let n_chains = chains.len();
        let flat: Vec<f64> = chains.iter().flat_map(|c| c.positions.iter().copied()).collect();
        let mut samples = layout.constrain_batch(&flat, n_chains * num_draws, cfg.dtype, device)?;
        for s in layout.sites() {
            let t = samples.remove(&s.name).expect("constrain_batch gives every site");
            let mut shape = vec![n_chains, num_draws];
            shape.extend(&s.shape);
            samples.insert(s.name.clone(), t.reshape(shape)?);
        }
        Ok(McmcSamples {
            layout,
            samples,
            chains,
            num_draws,
            num_warmup: cfg.num_warmup,
            thinning: cfg.thinning,
            kernel,
            max_tree_depth,
            wall_time,
            seed: cfg.seed,
        })
    }

    /// The constrained samples of site `name`, shaped `[chains, draws, ..site shape]`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.samples.get(name)
    }

    /// The samples of site `name` with chains pooled: `[chains * draws, ..site shape]`.
    pub fn get_flat(&self, name: &str) -> Result<Tensor> {
        let t = self.get(name).ok_or_else(|| {
            Error::invalid_arg(
                "McmcSamples::get_flat",
                "name",
                format!("no latent site `{name}`; sites: {:?}", self.names()),
            )
        })?;
        Ok(t.flatten_to(1)?)
    }

    /// Every site's samples with chains pooled (`[chains * draws, ..]`), as `Predictive` takes
    /// posterior samples.
    pub fn posterior_samples(&self) -> Result<Data> {
        self.names().into_iter().map(|n| Ok((n.to_string(), self.get_flat(n)?))).collect()
    }

    /// Site names in the model's order.
    pub fn names(&self) -> Vec<&str> {
        self.layout.sites().iter().map(|s| s.name.as_str()).collect()
    }

    /// The layout of the latent sites.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Number of chains.
    pub fn num_chains(&self) -> usize {
        self.chains.len()
    }

    /// Kept draws per chain.
    pub fn num_draws(&self) -> usize {
        self.num_draws
    }

    /// Each chain's draws (unconstrained) and statistics.
    pub fn chains(&self) -> &[ChainDraws] {
        &self.chains
    }

    /// The statistics of the kept draws of chain `chain` (divergence, tree depth, leapfrog
    /// steps, acceptance, step size, energy, log-density).
    pub fn stats(&self, chain: usize) -> &[DrawStats] {
        &self.chains[chain].stats
    }

    /// Divergent kept draws, over all chains.
    pub fn num_divergences(&self) -> usize {
        self.chains.iter().map(|c| c.stats.iter().filter(|s| s.diverging).count()).sum()
    }

    /// Kept draws whose tree hit the maximum depth, over all chains.
    pub fn num_max_tree_depth(&self) -> usize {
        self.chains.iter().map(|c| c.stats.iter().filter(|s| s.max_depth_reached).count()).sum()
    }

    /// Gradient evaluations over all chains (initialization and warmup included).
    pub fn num_gradients(&self) -> u64 {
        self.chains.iter().map(|c| c.num_gradients).sum()
    }

    /// Wall time of the run.
    pub fn wall_time(&self) -> Duration {
        self.wall_time
    }

    /// The draws of every scalar element: `(label, one Vec per chain)`, labels like `theta[3]`.
    pub fn element_draws(&self) -> Result<Vec<(String, Vec<Vec<f64>>)>> {
        let mut out = Vec::new();
        for s in self.layout.sites() {
            let t = &self.samples[&s.name];
            let numel: usize = s.shape.iter().product();
            let v = t.to_dtype(DType::F64)?.reshape((self.num_chains(), self.num_draws, numel))?.to_vec3::<f64>()?;
            for e in 0..numel {
                let label = if s.shape.is_empty() {
                    s.name.clone()
                } else {
                    format!("{}[{}]", s.name, index_label(&s.shape, e, ",", 0))
                };
                out.push((label, v.iter().map(|chain| chain.iter().map(|d| d[e]).collect()).collect()));
            }
        }
        Ok(out)
    }

    /// Computes the summary without printing it.
    pub fn compute_summary(&self) -> Result<Summary> {
        let rows = self
            .element_draws()?
            .into_iter()
            .map(|(name, chains)| {
                let flat: Vec<f64> = chains.iter().flatten().copied().collect();
                let n = flat.len() as f64;
                let mean = flat.iter().sum::<f64>() / n;
                let sd = (flat.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt();
                let q = quantiles(&flat, &[0.05, 0.5, 0.95]);
                SummaryRow {
                    name,
                    mean,
                    sd,
                    q5: q[0],
                    median: q[1],
                    q95: q[2],
                    mcse_mean: mcse_mean(&chains),
                    ess_bulk: ess_bulk(&chains),
                    ess_tail: ess_tail(&chains),
                    r_hat: split_rhat(&chains),
                }
            })
            .collect();
        Ok(Summary {
            rows,
            divergences: self.chains.iter().map(|c| c.stats.iter().filter(|s| s.diverging).count()).collect(),
            max_depth_hits: self.num_max_tree_depth(),
            max_tree_depth: self.max_tree_depth,
            num_draws: self.num_draws * self.num_chains(),
        })
    }

    /// Prints (to stdout) and returns the summary: mean, sd, 5%, 50% and 95% quantiles, bulk and
    /// tail ESS and split R-hat per scalar element, then divergences and tree-depth saturation.
    pub fn summary(&self) -> Result<Summary> {
        let s = self.compute_summary()?;
        println!("{s}");
        Ok(s)
    }

    /// Writes one CmdStan-layout CSV file per chain — `{stem}_{chain}.csv` next to `path`, chains
    /// counted from 1 as CmdStan does — that `arviz.from_cmdstan` reads: comment header with the
    /// settings, the columns `lp__, accept_stat__, stepsize__, treedepth__, n_leapfrog__,
    /// divergent__, energy__` and then one column per scalar element (`theta.1`, `L.2.1`;
    /// indices from 1). Returns the paths written.
    pub fn to_csv(&self, path: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        let path = path.as_ref();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("samples");
        let dir = path.parent().unwrap_or(Path::new(""));
        let io = |p: &Path, e: std::io::Error| Error::Io { path: p.display().to_string(), source: e };
        let mut columns: Vec<String> = Vec::new();
        let mut values: Vec<Vec<Vec<f64>>> = Vec::new(); // [chain][draw][column]
        for c in 0..self.num_chains() {
            values.push(vec![Vec::new(); self.num_draws]);
            let _ = c;
        }
        for s in self.layout.sites() {
            let numel: usize = s.shape.iter().product();
            let v = self.samples[&s.name]
                .to_dtype(DType::F64)?
                .reshape((self.num_chains(), self.num_draws, numel))?
                .to_vec3::<f64>()?;
            for e in 0..numel {
                columns.push(if s.shape.is_empty() {
                    s.name.clone()
                } else {
                    format!("{}.{}", s.name, index_label(&s.shape, e, ".", 1))
                });
            }
            for (c, chain) in v.into_iter().enumerate() {
                for (d, draw) in chain.into_iter().enumerate() {
                    values[c][d].extend(draw);
                }
            }
        }
        let mut written = Vec::new();
        for (c, chain) in self.chains.iter().enumerate() {
            let file = dir.join(format!("{stem}_{}.csv", c + 1));
            let mut w = std::io::BufWriter::new(std::fs::File::create(&file).map_err(|e| io(&file, e))?);
            let mut text = String::new();
            let engine = if self.kernel == "nuts" { "nuts" } else { "static" };
            text.push_str(&format!(
                "# model = ppl\n# method = sample (Default)\n#   sample\n#     num_samples = {}\n#     num_warmup = {}\n\
                 #     save_warmup = 0\n#     thin = {}\n#     adapt\n#       engaged = 1\n#     algorithm = hmc (Default)\n\
                 #       hmc\n#         engine = {engine}\n# id = {}\n# random\n#   seed = {}\n",
                self.num_draws * self.thinning,
                self.num_warmup,
                self.thinning,
                c + 1,
                self.seed
            ));
            text.push_str("lp__,accept_stat__,stepsize__,treedepth__,n_leapfrog__,divergent__,energy__");
            for col in &columns {
                text.push(',');
                text.push_str(col);
            }
            text.push('\n');
            text.push_str(&format!("# Adaptation terminated\n# Step size = {}\n", chain.step_size));
            for (d, st) in chain.stats.iter().enumerate() {
                text.push_str(&format!(
                    "{},{},{},{},{},{},{}",
                    st.lp, st.accept_prob, st.step_size, st.tree_depth, st.num_steps, st.diverging as u8, st.energy
                ));
                for v in &values[c][d] {
                    text.push_str(&format!(",{v}"));
                }
                text.push('\n');
            }
            text.push_str(&format!("# \n#  Elapsed Time: {:.3} seconds (Total)\n# \n", self.wall_time.as_secs_f64()));
            w.write_all(text.as_bytes()).map_err(|e| io(&file, e))?;
            w.flush().map_err(|e| io(&file, e))?;
            written.push(file);
        }
        Ok(written)
    }
}

/// The multi-index of flat element `e` of `shape`, joined by `sep`, counted from `base`.
fn index_label(shape: &[usize], mut e: usize, sep: &str, base: usize) -> String {
    let mut idx = vec![0; shape.len()];
    for (i, &d) in shape.iter().enumerate().rev() {
        idx[i] = e % d;
        e /= d;
    }
    idx.iter().map(|i| (i + base).to_string()).collect::<Vec<_>>().join(sep)
}

/// One row of the summary: one scalar element of a site.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// Element label, e.g. `theta[3]`.
    pub name: String,
    /// Posterior mean.
    pub mean: f64,
    /// Posterior standard deviation.
    pub sd: f64,
    /// 5% quantile.
    pub q5: f64,
    /// Median.
    pub median: f64,
    /// 95% quantile.
    pub q95: f64,
    /// Monte Carlo standard error of the mean.
    pub mcse_mean: f64,
    /// Bulk effective sample size.
    pub ess_bulk: f64,
    /// Tail effective sample size.
    pub ess_tail: f64,
    /// Rank-normalized split R-hat.
    pub r_hat: f64,
}

/// The summary of an MCMC run; `Display` prints an aligned table.
#[derive(Clone, Debug)]
pub struct Summary {
    /// One row per scalar element.
    pub rows: Vec<SummaryRow>,
    /// Divergent kept draws per chain.
    pub divergences: Vec<usize>,
    /// Kept draws that hit the maximum tree depth.
    pub max_depth_hits: usize,
    /// The maximum tree depth (NUTS).
    pub max_tree_depth: Option<u64>,
    /// Kept draws over all chains.
    pub num_draws: usize,
}

impl Summary {
    /// The row of element `name` (e.g. `"mu"`, `"theta[0]"`).
    pub fn row(&self, name: &str) -> Option<&SummaryRow> {
        self.rows.iter().find(|r| r.name == name)
    }

    /// Divergent kept draws over all chains.
    pub fn num_divergences(&self) -> usize {
        self.divergences.iter().sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.rows.iter().map(|r| r.name.chars().count()).max().unwrap_or(4).max(4);
        writeln!(
            f,
            "{:>w$} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "", "mean", "sd", "5%", "50%", "95%", "ess_bulk", "ess_tail", "r_hat"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:>w$} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.0} {:>9.0} {:>7.3}",
                r.name, r.mean, r.sd, r.q5, r.median, r.q95, r.ess_bulk, r.ess_tail, r.r_hat
            )?;
        }
        writeln!(f)?;
        let per_chain = self.divergences.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ");
        write!(f, "Number of divergences: {} (per chain: {per_chain})", self.num_divergences())?;
        if let Some(d) = self.max_tree_depth {
            write!(f, "\nTree depth {d} reached in {} of {} draws", self.max_depth_hits, self.num_draws)?;
        }
        Ok(())
    }
}
