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

    /// Appends a site; a second site with the same name is an error naming it.
    pub fn add(&mut self, site: Site) -> Result<()> {
        if self.index.contains_key(&site.name) {
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

    /// The log-density of one site: `log_prob(value)`, masked, times the site's scale, shaped
    /// like the site's batch shape. Cached after the first call. `None` for sites without one.
    pub fn site_log_prob(site: &Site) -> Result<Option<&Tensor>> {
        if !site.has_log_prob() {
            return Ok(None);
        }
        if let Some(lp) = site.log_prob.get() {
            return Ok(Some(lp));
        }
        let compute = || -> Result<Tensor> {
            let dist = site.dist()?;
            let mut lp = dist.log_prob(site.value()?)?;
            if let Some(mask) = &site.mask {
                let m = mask.to_dtype(lp.dtype())?.ne(0.0)?;
                let m = m.broadcast_as(lp.dims()).map_err(|_| {
                    Error::shape_mismatch("mask does not broadcast to the site's log_prob", lp.dims(), mask.dims())
                })?;
                lp = m.where_cond(&lp, &lp.zeros_like()?)?;
            }
            if site.scale != 1.0 {
                lp = (lp * site.scale)?;
            }
            Ok(lp)
        };
        let lp = compute().map_err(|e| e.at_site(&site.name, site.location()))?;
        Ok(Some(site.log_prob.get_or_init(|| lp)))
    }

    /// Computes and caches every site's log-density.
    pub fn compute_log_prob(&self) -> Result<()> {
        for s in &self.sites {
            Trace::site_log_prob(s)?;
        }
        Ok(())
    }

    /// The sum of all scaled, masked site log-densities (sample and factor sites; intervened
    /// sites excluded), as a scalar tensor. `None` when the trace has no such site.
    pub fn log_prob_sum(&self) -> Result<Option<Tensor>> {
        self.log_prob_sum_filtered(|_| true)
    }

    /// Like [`Trace::log_prob_sum`] over the sites for which `keep` holds.
    pub fn log_prob_sum_filtered(&self, keep: impl Fn(&Site) -> bool) -> Result<Option<Tensor>> {
        let mut total: Option<Tensor> = None;
        for s in self.sites.iter().filter(|s| keep(s)) {
            if let Some(lp) = Trace::site_log_prob(s)? {
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
        Ok(total)
    }

    /// A table of every site's distribution, batch and event shapes, value shape and log_prob
    /// shape — Pyro's `trace.format_shapes()`, the first thing to print when shapes go wrong.
    pub fn format_shapes(&self) -> String {
        let mut rows: Vec<[String; 6]> = vec![[
            "site".into(),
            "kind".into(),
            "dist".into(),
            "batch | event".into(),
            "value".into(),
            "plates".into(),
        ]];
        for s in &self.sites {
            let (dname, shapes) = match &s.dist {
                Some(d) => (d.name().to_string(), format!("{:?} | {:?}", d.batch_shape(), d.event_shape())),
                None => (String::new(), String::new()),
            };
            let value = s.value.as_ref().map(|v| format!("{:?}", v.dims())).unwrap_or_default();
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
            rows.push([s.name.clone(), s.kind.to_string(), dname, shapes, value, plates]);
        }
        let widths: Vec<usize> = (0..6).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        let mut out = String::new();
        for r in &rows {
            let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            let _ = writeln!(out, "{}", line.join("  ").trim_end());
        }
        out
    }
}

impl<'a> IntoIterator for &'a Trace {
    type Item = &'a Site;
    type IntoIter = std::slice::Iter<'a, Site>;
    fn into_iter(self) -> Self::IntoIter {
        self.sites.iter()
    }
}
