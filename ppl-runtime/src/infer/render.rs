//! [`render_model`]: a model's sites, plates and dependencies as Graphviz DOT text (Pyro's
//! `pyro.render_model`).
//!
//! The model runs once (from its prior, under a fixed seed) with a handler that replaces the
//! value of every sample and deterministic site (and, on request, param site) by a fresh Candle
//! [`Var`] as the site leaves the handler stack, so every later computation that uses the value
//! is recorded in Candle's op graph. A site's dependencies are then read from that graph:
//!
//! - a sample site depends on the sites whose `Var`s reach its `log_prob(value)` (its own value
//!   excluded), i.e. the values its distribution was built from;
//! - a deterministic site depends on the sites whose `Var`s reach its value;
//! - a factor site depends on the sites whose `Var`s reach its log-weight.
//!
//! The graph is walked with [`Tensor::sorted_nodes`] (the walk `backward` makes, without
//! computing gradients), so a dependency is found through any float operation Candle records,
//! differentiable or not (a `where_cond` branch, a custom op, a `max`), and through an integer
//! site value used directly as the indices of `index_select`/`gather` (a categorical assignment
//! picking a cluster's parameters). Dependencies are direct: `c ~ N(b, 1)` with `b ~ N(a, 1)`
//! gives the edges `a -> b -> c`, not `a -> c`.
//!
//! What the op graph cannot show is a dependency that leaves it: Candle does not walk integer
//! tensors, so an integer value reshaped or converted before use, a comparison (its result is a
//! `u8` mask) or a `where_cond` predicate hides its inputs; so do a value copied to the host
//! (`to_vec`, `to_scalar`) and back, `floor`/`round`/`ceil`/`sign`, `detach`, and control flow.
//! When a site's log-density cannot be computed at its value (it fails validation, or the
//! distribution has none), its dependencies are unknown and the site gets one dashed edge from
//! the site before it (the sites in order).

use super::program::Program;
use crate::error::Result;
use crate::handlers::seed;
use crate::params::ParamStore;
use crate::runtime::{Handler, with_handler};
use crate::site::{CondIndepFrame, Message, SiteKind};
use candle_core::{Tensor, TensorId, Var};
use std::collections::HashMap;
use std::fmt::Write as _;

/// What [`render_model_with`] draws.
///
/// ```
/// use ppl_runtime::infer::RenderOptions;
/// let o = RenderOptions::new().params(true).distributions(true).seed(3);
/// assert!(o.params && o.distributions);
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct RenderOptions {
    /// Also draw param sites (as plain text nodes) and their edges. Default: false.
    pub params: bool,
    /// Label each sample site with its distribution's name (`x ~ Normal`). Default: false.
    pub distributions: bool,
    /// The seed of the one run of the model. Default: 0.
    pub seed: u64,
    /// The parameter store param sites read; `None` (the default): a fresh, empty store, so
    /// parameters take their initial values.
    pub store: Option<ParamStore>,
}

impl RenderOptions {
    /// The defaults: no params, no distribution names, seed 0, a fresh parameter store.
    pub fn new() -> RenderOptions {
        RenderOptions::default()
    }

    /// Draws param sites too (`true`) or not.
    pub fn params(mut self, on: bool) -> RenderOptions {
        self.params = on;
        self
    }

    /// Labels sample sites with their distribution's name (`true`) or not.
    pub fn distributions(mut self, on: bool) -> RenderOptions {
        self.distributions = on;
        self
    }

    /// The seed of the run that records the graph.
    pub fn seed(mut self, seed: u64) -> RenderOptions {
        self.seed = seed;
        self
    }

    /// Reads parameters from `store` (e.g. `svi.params()`) instead of a fresh store.
    pub fn store(mut self, store: &ParamStore) -> RenderOptions {
        self.store = Some(store.clone());
        self
    }
}

/// What a node of a [`ModelGraph`] stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A latent sample site (drawn as an ellipse).
    Latent,
    /// An observed sample site (a grey filled ellipse).
    Observed,
    /// A deterministic site (a dotted ellipse).
    Deterministic,
    /// A factor site (a grey filled box).
    Factor,
    /// A param site (plain text), only with [`RenderOptions::params`].
    Param,
}

/// One site of a [`ModelGraph`].
#[derive(Clone, Debug, PartialEq)]
pub struct GraphNode {
    /// The site's name.
    pub name: String,
    /// What the site is.
    pub kind: NodeKind,
    /// The distribution's name, for sample and factor sites.
    pub dist: Option<&'static str>,
    /// The plates the site lies in, outermost first.
    pub plates: Vec<String>,
}

/// A dependency `from -> to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphEdge {
    /// The site whose value is used.
    pub from: String,
    /// The site whose distribution (or value, for deterministic sites) uses it.
    pub to: String,
    /// False for the fallback edge from the previous site, drawn when `to`'s dependencies could
    /// not be determined (its log-density failed).
    pub known: bool,
}

/// A plate of a [`ModelGraph`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GraphPlate {
    /// The plate's name.
    pub name: String,
    /// Its full size.
    pub size: usize,
    /// The enclosing plate, if the plate was only ever seen nested inside it.
    pub parent: Option<String>,
}

/// The sites of one run of a model and the dependencies between them; [`ModelGraph::to_dot`]
/// renders it. Build it with [`model_graph`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelGraph {
    /// The sites, in execution order.
    pub nodes: Vec<GraphNode>,
    /// The dependencies, ordered by their target's position, then their source's.
    pub edges: Vec<GraphEdge>,
    /// The plates, in the order they were first entered.
    pub plates: Vec<GraphPlate>,
}

/// Graphviz DOT text of `model`'s sites: latent, observed, deterministic and factor sites in
/// different node styles, plates as clusters (`subgraph cluster_<plate>` labelled with the
/// plate's name and size), and an edge into each site from every site whose value its
/// distribution depends on (see the [module docs](self) for how dependencies are found and what
/// they miss). Write the text to a `.dot` file and render it with `dot -Tpng model.dot`.
///
/// ```
/// use ppl_runtime::{dist::Normal, infer::render_model, primitives::{observe, plate, sample}, Result};
/// use candle_core::{Device, Tensor};
/// let model = |y: &Tensor| -> Result<()> {
///     let mu = sample("mu", Normal::new(0.0, 1.0)?)?;
///     plate("data", 3, |_| observe("y", Normal::new(&mu, 1.0)?, y).map(|_| ()))
/// };
/// let dot = render_model(model, &Tensor::zeros(3, candle_core::DType::F32, &Device::Cpu)?)?;
/// assert!(dot.contains("\"mu\" -> \"y\";"));
/// assert!(dot.contains("subgraph cluster_data"));
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
pub fn render_model<A: ?Sized, M, P: Program<A, M>>(model: P, args: &A) -> Result<String> {
    render_model_with(model, args, &RenderOptions::default())
}

/// [`render_model`] with options: param sites, distribution names, the seed, the parameter store.
pub fn render_model_with<A: ?Sized, M, P: Program<A, M>>(model: P, args: &A, opts: &RenderOptions) -> Result<String> {
    Ok(model_graph(model, args, opts)?.to_dot(opts.distributions))
}

/// Runs `model` once and returns its sites, plates and dependencies (what [`render_model`] draws).
pub fn model_graph<A: ?Sized, M, P: Program<A, M>>(model: P, args: &A, opts: &RenderOptions) -> Result<ModelGraph> {
    let store = opts.store.clone().unwrap_or_default();
    let recorder = Recorder { params: opts.params, ..Default::default() };
    let (out, recorder) = seed(opts.seed, || with_handler(recorder, || store.scope(|| model.run(args))));
    out?;
    recorder.finish()
}

/// The handler that turns site values into `Var`s and records each site's dependencies.
#[derive(Default)]
struct Recorder {
    params: bool,
    /// The `Var` standing for each recorded site's value.
    owner: HashMap<TensorId, usize>,
    graph: ModelGraph,
    /// Per node: the nodes it depends on (`None`: unknown).
    deps: Vec<Option<Vec<usize>>>,
    index: HashMap<String, usize>,
}

impl Recorder {
    /// The recorded sites whose `Var`s reach `t`, excluding `own`, in execution order.
    fn sources(&self, t: &Tensor, own: Option<TensorId>) -> Vec<usize> {
        let mut found: Vec<usize> = t
            .sorted_nodes()
            .into_iter()
            .filter(|n| n.is_variable() && Some(n.id()) != own)
            .filter_map(|n| self.owner.get(&n.id()).copied())
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    fn note_plates(&mut self, stack: &[CondIndepFrame]) {
        for (i, f) in stack.iter().enumerate() {
            let parent = i.checked_sub(1).map(|j| stack[j].name.clone());
            match self.graph.plates.iter_mut().find(|p| p.name == f.name) {
                Some(p) => {
                    if p.parent != parent {
                        p.parent = None;
                    }
                }
                None => self.graph.plates.push(GraphPlate { name: f.name.clone(), size: f.size, parent }),
            }
        }
    }

    fn finish(mut self) -> Result<ModelGraph> {
        for (to, deps) in self.deps.iter().enumerate() {
            let to_name = self.graph.nodes[to].name.clone();
            match deps {
                Some(deps) => {
                    for &from in deps {
                        let from = self.graph.nodes[from].name.clone();
                        self.graph.edges.push(GraphEdge { from, to: to_name.clone(), known: true });
                    }
                }
                None if to > 0 => {
                    let from = self.graph.nodes[to - 1].name.clone();
                    self.graph.edges.push(GraphEdge { from, to: to_name, known: false });
                }
                None => {}
            }
        }
        Ok(self.graph)
    }
}

impl Handler for Recorder {
    fn postprocess(&mut self, msg: &mut Message) -> Result<()> {
        let kind = match msg.kind {
            SiteKind::Sample if msg.is_observed => NodeKind::Observed,
            SiteKind::Sample => NodeKind::Latent,
            SiteKind::Deterministic => NodeKind::Deterministic,
            SiteKind::Factor => NodeKind::Factor,
            SiteKind::Param if self.params => NodeKind::Param,
            SiteKind::Param | SiteKind::Plate => return Ok(()),
        };
        // A param read twice is one node; any other repeated name is the trace's error to report.
        if self.index.contains_key(&msg.name) {
            return Ok(());
        }
        let Some(value) = msg.value.clone() else { return Ok(()) };
        let var = match kind {
            NodeKind::Factor => None,
            _ => Some(Var::from_tensor(&value.detach())?),
        };
        let own = var.as_ref().map(|v| v.as_tensor().id());
        let deps = match kind {
            NodeKind::Latent | NodeKind::Observed => {
                let own_value = var.as_ref().map_or(&value, |v| v.as_tensor());
                msg.dist().and_then(|d| d.log_prob(own_value)).ok().map(|lp| self.sources(&lp, own))
            }
            NodeKind::Deterministic | NodeKind::Factor => Some(self.sources(&value, own)),
            NodeKind::Param => Some(Vec::new()),
        };
        let node = self.graph.nodes.len();
        if let Some(var) = var {
            self.owner.insert(var.as_tensor().id(), node);
            msg.value = Some(var.as_tensor().clone());
        }
        self.note_plates(&msg.cond_indep_stack);
        self.graph.nodes.push(GraphNode {
            name: msg.name.clone(),
            kind,
            dist: msg.dist.as_ref().map(|d| d.name()),
            plates: msg.cond_indep_stack.iter().map(|f| f.name.clone()).collect(),
        });
        self.deps.push(deps);
        self.index.insert(msg.name.clone(), node);
        Ok(())
    }
}

/// `s` as a DOT double-quoted string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A DOT identifier made of `s`'s letters, digits and underscores (others become `_`).
fn ident(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect()
}

impl ModelGraph {
    /// The graph as Graphviz DOT text; `distributions` labels sample sites `name ~ Dist`.
    pub fn to_dot(&self, distributions: bool) -> String {
        let mut out = String::from("digraph model {\n");
        // Cluster ids: `cluster_<plate>`, made unique if two plate names sanitize alike.
        let mut ids: HashMap<&str, String> = HashMap::new();
        for p in &self.plates {
            let base = format!("cluster_{}", ident(&p.name));
            let mut id = base.clone();
            let mut k = 2;
            while ids.values().any(|v| v == &id) {
                id = format!("{base}_{k}");
                k += 1;
            }
            ids.insert(&p.name, id);
        }
        self.write_level(&mut out, None, &ids, distributions, 1);
        for e in &self.edges {
            let style = if e.known { "" } else { " [style=dashed]" };
            let _ = writeln!(out, "  {} -> {}{style};", quote(&e.from), quote(&e.to));
        }
        out.push_str("}\n");
        out
    }

    /// Writes the nodes and plates whose innermost drawn plate is `plate` (`None`: the top).
    fn write_level(&self, out: &mut String, plate: Option<&str>, ids: &HashMap<&str, String>, distributions: bool, depth: usize) {
        let pad = "  ".repeat(depth);
        for n in &self.nodes {
            if self.drawn_in(n).as_deref() != plate {
                continue;
            }
            let label = match (distributions, n.dist) {
                (true, Some(d)) if matches!(n.kind, NodeKind::Latent | NodeKind::Observed) => format!("{} ~ {d}", n.name),
                _ => n.name.clone(),
            };
            let style = match n.kind {
                NodeKind::Latent => "shape=ellipse",
                NodeKind::Observed => "shape=ellipse, style=filled, fillcolor=lightgray",
                NodeKind::Deterministic => "shape=ellipse, style=dotted",
                NodeKind::Factor => "shape=box, style=filled, fillcolor=lightgray",
                NodeKind::Param => "shape=plain",
            };
            let _ = writeln!(out, "{pad}{} [label={}, {style}];", quote(&n.name), quote(&label));
        }
        for p in self.plates.iter().filter(|p| p.parent.as_deref() == plate) {
            let _ = writeln!(out, "{pad}subgraph {} {{", ids[p.name.as_str()]);
            let _ = writeln!(out, "{pad}  label={}; labeljust=r; labelloc=b;", quote(&format!("{}\n{}", p.name, p.size)));
            self.write_level(out, Some(&p.name), ids, distributions, depth + 1);
            let _ = writeln!(out, "{pad}}}");
        }
    }

    /// The plate whose cluster holds `n`: the innermost of its plates whose chain of parents
    /// is made only of plates `n` lies in (a plate drawn at the top level ends a chain).
    fn drawn_in(&self, n: &GraphNode) -> Option<String> {
        // Innermost plate of the node; the clusters nest along parents, so the innermost plate
        // whose ancestors all contain the node is where it goes.
        n.plates.iter().rev().find(|name| self.ancestors_within(name, &n.plates)).cloned()
    }

    fn ancestors_within(&self, name: &str, within: &[String]) -> bool {
        let mut cur = name.to_string();
        loop {
            let Some(p) = self.plates.iter().find(|p| p.name == cur) else { return false };
            match &p.parent {
                None => return true,
                Some(parent) if within.contains(parent) => cur = parent.clone(),
                Some(_) => return false,
            }
        }
    }
}
