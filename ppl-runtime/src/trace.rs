//! Traces: the ordered record of every site a model ran, with lazily computed log-densities.

use crate::error::{Error, Result};
use crate::site::{Site, SiteKind};
use candle_core::Tensor;
use std::collections::HashMap;
use std::fmt::Write as _;

/// The sites of one run of a model, in execution order.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    sites: Vec<Site>,
    index: HashMap<String, usize>,
}

impl Trace {
    /// An empty trace.
    pub fn new() -> Trace {
        Trace::default()
    }

    /// Appends a site; a second site with the same name is an error naming it, except that
    /// a param read again in the same run keeps its first site (Pyro allows repeated reads), and
    /// a plate entered again keeps its first site when its size and indices agree (else the
    /// error names the plate).
    pub fn add(&mut self, site: Site) -> Result<()> {
        if let Some(&i) = self.index.get(&site.name) {
            let first = &self.sites[i];
            match (first.kind, site.kind) {
                (SiteKind::Param, SiteKind::Param) => return Ok(()),
                (SiteKind::Plate, SiteKind::Plate) => return same_plate(first, &site),
                (a, b) if a != b => {
                    return Err(Error::DuplicateSite {
                        hint: Some(format!("the name is used by a {a} site and by a {b} site; rename one of them")),
                    }
                    .at_site(&site.name, site.location()));
                }
                _ => {}
            }
            let hint = Some("build dynamic names from a loop index, e.g. `format!(\"z_{i}\")`".to_string());
            return Err(Error::DuplicateSite { hint }.at_site(&site.name, site.location()));
        }
        self.index.insert(site.name.clone(), self.sites.len());
        self.sites.push(site);
        Ok(())
    }

    /// The site named `name`.
    pub fn get(&self, name: &str) -> Option<&Site> {
        self.index.get(name).map(|&i| &self.sites[i])
    }

    /// Mutable access to the site named `name`.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Site> {
        self.index.get(name).map(|&i| &mut self.sites[i])
    }

    /// Whether a site named `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The value of site `name`, or an error naming it.
    pub fn value(&self, name: &str) -> Result<&Tensor> {
        self.get(name)
            .ok_or_else(|| Error::invalid_arg("Trace::value", "name", format!("no site named `{name}` in the trace")))?
            .value()
    }

    /// All sites in execution order (Pyro's `trace.nodes`).
    pub fn nodes(&self) -> impl Iterator<Item = &Site> {
        self.sites.iter()
    }

    /// All sites, as a slice.
    pub fn sites(&self) -> &[Site] {
        &self.sites
    }

    /// Sample sites, latent and observed.
    pub fn sample_sites(&self) -> impl Iterator<Item = &Site> {
        self.sites.iter().filter(|s| s.kind == SiteKind::Sample)
    }

    /// Latent sample sites (not observed, not intervened).
    pub fn latent_sites(&self) -> impl Iterator<Item = &Site> {
        self.sites.iter().filter(|s| s.kind == SiteKind::Sample && !s.is_observed && !s.intervened)
    }

    /// Observed sample sites.
    pub fn observed_sites(&self) -> impl Iterator<Item = &Site> {
        self.sites.iter().filter(|s| s.kind == SiteKind::Sample && s.is_observed)
    }

    /// Param sites.
    pub fn param_sites(&self) -> impl Iterator<Item = &Site> {
        self.sites.iter().filter(|s| s.kind == SiteKind::Param)
    }

    /// Number of sites.
    pub fn len(&self) -> usize {
        self.sites.len()
    }

    /// Whether the trace has no sites.
    pub fn is_empty(&self) -> bool {
        self.sites.is_empty()
    }

    /// The log-density of one site; the same as [`Site::log_prob`](crate::site::Message::log_prob).
    pub fn site_log_prob(site: &Site) -> Result<Option<&Tensor>> {
        site.log_prob()
    }

    /// Computes and caches every site's log-density.
    pub fn compute_log_prob(&self) -> Result<()> {
        for s in &self.sites {
            s.log_prob()?;
        }
        Ok(())
    }

    /// The sum of all scaled, masked site log-densities (sample and factor sites; intervened,
    /// param, plate and deterministic sites contribute nothing), as a scalar tensor: Pyro's
    /// `trace.log_prob_sum()`. An empty sum is a zero of the thread's default dtype and device.
    ///
    /// ```
    /// use ppl_runtime::Trace;
    /// assert_eq!(Trace::new().log_prob_sum()?.to_scalar::<f32>()?, 0.0);
    /// # Ok::<(), ppl_runtime::Error>(())
    /// ```
    pub fn log_prob_sum(&self) -> Result<Tensor> {
        self.log_prob_sum_filtered(|_| true)
    }

    /// Like [`Trace::log_prob_sum`] over the sites for which `keep` holds.
    pub fn log_prob_sum_filtered(&self, keep: impl Fn(&Site) -> bool) -> Result<Tensor> {
        let mut total: Option<Tensor> = None;
        for s in self.sites.iter().filter(|s| keep(s)) {
            if let Some(lp) = s.log_prob()? {
                let v = lp.sum_all()?;
                total = Some(match total {
                    None => v,
                    Some(t) => {
                        if t.dtype() != v.dtype() {
                            return Err(Error::DTypeMismatch {
                                context: "Trace::log_prob_sum".into(),
                                a: "earlier sites".into(),
                                a_dtype: t.dtype(),
                                b: s.name.clone(),
                                b_dtype: v.dtype(),
                            });
                        }
                        (t + v)?
                    }
                });
            }
        }
        match total {
            Some(t) => Ok(t),
            None => {
                let d = crate::defaults::current();
                Ok(Tensor::zeros((), d.dtype, &d.device)?)
            }
        }
    }

    /// A table of every site's distribution, batch and event shapes, value shape, log_prob
    /// shape (computed and cached; `error` when it cannot be computed) and plates — Pyro's
    /// `trace.format_shapes()`, the first thing to print when shapes go wrong.
    pub fn format_shapes(&self) -> String {
        let mut rows: Vec<[String; 7]> = vec![[
            "site".into(),
            "kind".into(),
            "dist".into(),
            "batch | event".into(),
            "value".into(),
            "log_prob".into(),
            "plates".into(),
        ]];
        for s in &self.sites {
            let (dname, shapes) = match &s.dist {
                Some(d) => (d.name().to_string(), format!("{:?} | {:?}", d.batch_shape(), d.event_shape())),
                None => (String::new(), String::new()),
            };
            let value = s.value.as_ref().map(|v| format!("{:?}", v.dims())).unwrap_or_default();
            let log_prob = match s.log_prob() {
                Ok(Some(lp)) => format!("{:?}", lp.dims()),
                Ok(None) => String::new(),
                Err(_) => "error".to_string(),
            };
            let mut plates = s
                .cond_indep_stack
                .iter()
                .map(|f| match f.dim {
                    Some(d) => format!("{}[{}]@{d}", f.name, f.subsample_size),
                    None => format!("{}#{}", f.name, f.counter),
                })
                .collect::<Vec<_>>()
                .join(" ");
            if s.is_observed {
                plates = format!("obs {plates}");
            }
            if let (SiteKind::Plate, Some(f)) = (s.kind, &s.plate) {
                plates = format!("size {} subsample {}", f.size, f.subsample_size);
            }
            rows.push([s.name.clone(), s.kind.to_string(), dname, shapes, value, log_prob, plates]);
        }
        let widths: Vec<usize> = (0..7).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        let mut out = String::new();
        for r in &rows {
            let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            let _ = writeln!(out, "{}", line.join("  ").trim_end());
        }
        out
    }
}

/// A plate entered twice in one trace must have the same size and indices both times.
fn same_plate(first: &Site, again: &Site) -> Result<()> {
    let size = |s: &Site| s.plate.as_ref().map(|f| f.size);
    let indices = |s: &Site| -> Result<Option<Vec<u32>>> {
        Ok(match &s.value {
            Some(v) => Some(v.to_dtype(candle_core::DType::U32)?.to_vec1::<u32>()?),
            None => None,
        })
    };
    if size(first) != size(again) {
        return Err(Error::Plate {
            plate: first.name.clone(),
            message: format!(
                "entered twice in one run with different sizes ({:?} and {:?}); a plate name stands for one set of \
                 conditionally independent elements",
                size(first).unwrap_or_default(),
                size(again).unwrap_or_default()
            ),
        });
    }
    if indices(first)? != indices(again)? {
        return Err(Error::Plate {
            plate: first.name.clone(),
            message: "entered twice in one run with different subsample indices; subsample once and pass the indices \
                      (`PlateOptions { subsample: Some(idx), .. }`) to the second use, or give the plates different names"
                .into(),
        });
    }
    Ok(())
}

impl<'a> IntoIterator for &'a Trace {
    type Item = &'a Site;
    type IntoIter = std::slice::Iter<'a, Site>;
    fn into_iter(self) -> Self::IntoIter {
        self.sites.iter()
    }
}
