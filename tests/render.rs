//! `render_model`: the DOT text is parsed by a small independent DOT parser (below) and its
//! nodes, styles, clusters and edges are compared with the dependencies written into each model
//! by hand.

use ppl::dist::{Categorical, HalfNormal, Normal};
use ppl::infer::{NodeKind, RenderOptions, model_graph};
use ppl::prelude::*;
use std::collections::{BTreeSet, HashMap};

// ---------------------------------------------------------------------------------------------
// A minimal DOT parser: `digraph ID { stmt* }` with node, edge, attribute and (nested) subgraph
// statements. It fails on anything unbalanced or malformed.

#[derive(Debug, PartialEq)]
enum Tok {
    Id(String),
    Punct(&'static str),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let cs: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let mut v = String::new();
            i += 1;
            loop {
                match cs.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('"') => break,
                    Some('\\') => {
                        let next = *cs.get(i + 1).ok_or("dangling escape")?;
                        v.push(if next == 'n' { '\n' } else { next });
                        i += 2;
                    }
                    Some(&ch) => {
                        v.push(ch);
                        i += 1;
                    }
                }
            }
            i += 1;
            out.push(Tok::Id(v));
        } else if c == '-' && cs.get(i + 1) == Some(&'>') {
            out.push(Tok::Punct("->"));
            i += 2;
        } else if let Some(p) = ["{", "}", "[", "]", ";", ",", "="].into_iter().find(|p| p.starts_with(c)) {
            out.push(Tok::Punct(p));
            i += 1;
        } else if c.is_alphanumeric() || c == '_' || c == '.' {
            let start = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || cs[i] == '_' || cs[i] == '.') {
                i += 1;
            }
            out.push(Tok::Id(cs[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected character {c:?}"));
        }
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct Dot {
    /// node -> (the clusters it was declared in, outermost first; its attributes)
    nodes: HashMap<String, (Vec<String>, HashMap<String, String>)>,
    edges: Vec<(String, String, HashMap<String, String>)>,
    /// cluster id -> (enclosing clusters, label)
    clusters: HashMap<String, (Vec<String>, String)>,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn punct(&mut self, p: &str) -> Result<(), String> {
        match self.toks.get(self.pos) {
            Some(Tok::Punct(q)) if *q == p => {
                self.pos += 1;
                Ok(())
            }
            t => Err(format!("expected `{p}`, found {t:?} at token {}", self.pos)),
        }
    }
    fn id(&mut self) -> Result<String, String> {
        match self.toks.get(self.pos) {
            Some(Tok::Id(s)) => {
                self.pos += 1;
                Ok(s.clone())
            }
            t => Err(format!("expected an identifier, found {t:?} at token {}", self.pos)),
        }
    }
    fn is(&self, p: &str) -> bool {
        matches!(self.peek(), Some(Tok::Punct(q)) if *q == p)
    }
    fn attrs(&mut self) -> Result<HashMap<String, String>, String> {
        let mut out = HashMap::new();
        if !self.is("[") {
            return Ok(out);
        }
        self.punct("[")?;
        while !self.is("]") {
            let k = self.id()?;
            self.punct("=")?;
            let v = self.id()?;
            out.insert(k, v);
            if self.is(",") || self.is(";") {
                self.pos += 1;
            }
        }
        self.punct("]")?;
        Ok(out)
    }
    fn stmts(&mut self, path: &mut Vec<String>, dot: &mut Dot) -> Result<(), String> {
        self.punct("{")?;
        while !self.is("}") {
            let first = self.id()?;
            if first == "subgraph" {
                let name = self.id()?;
                dot.clusters.insert(name.clone(), (path.clone(), String::new()));
                path.push(name);
                self.stmts(path, dot)?;
                path.pop();
            } else if self.is("=") {
                self.punct("=")?;
                let v = self.id()?;
                if first == "label"
                    && let Some(c) = path.last()
                {
                    dot.clusters.get_mut(c).unwrap().1 = v;
                }
            } else if self.is("->") {
                self.punct("->")?;
                let to = self.id()?;
                let a = self.attrs()?;
                dot.edges.push((first, to, a));
            } else {
                let a = self.attrs()?;
                if dot.nodes.insert(first.clone(), (path.clone(), a)).is_some() {
                    return Err(format!("node {first} declared twice"));
                }
            }
            if self.is(";") {
                self.pos += 1;
            }
        }
        self.punct("}")
    }
}

fn parse_dot(s: &str) -> Result<Dot, String> {
    let mut p = Parser { toks: tokenize(s)?, pos: 0 };
    if p.id()? != "digraph" {
        return Err("not a digraph".into());
    }
    if matches!(p.peek(), Some(Tok::Id(_))) {
        p.id()?;
    }
    let mut dot = Dot::default();
    p.stmts(&mut Vec::new(), &mut dot)?;
    if p.pos != p.toks.len() {
        return Err(format!("trailing tokens after the graph: {:?}", &p.toks[p.pos..]));
    }
    for (a, b, _) in &dot.edges {
        if !dot.nodes.contains_key(a) || !dot.nodes.contains_key(b) {
            return Err(format!("edge {a} -> {b} names an undeclared node"));
        }
    }
    Ok(dot)
}

fn edge_set(dot: &Dot) -> BTreeSet<(String, String)> {
    dot.edges.iter().map(|(a, b, _)| (a.clone(), b.clone())).collect()
}

fn set(edges: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    edges.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

#[test]
fn the_dot_parser_rejects_broken_text() {
    assert!(parse_dot("digraph m { \"a\" -> \"b\"; \"a\"; \"b\"; }").is_ok());
    assert!(parse_dot("digraph m { subgraph cluster_x { \"a\"; }").is_err());
    assert!(parse_dot("digraph m { \"a\" [label=\"a]; }").is_err());
    assert!(parse_dot("digraph m { \"a\" -> \"b\"; \"a\"; }").is_err());
}

// ---------------------------------------------------------------------------------------------

/// a → b → x, a → d → e, c → x and a discrete z → x through `index_select`; c is independent of
/// a and b; x is observed inside the plate `data` of size 5; d is deterministic.
fn chain_model(y: &Tensor) -> Result<()> {
    let a = ppl::sample("a", Normal::new(0.0, 1.0)?)?;
    let b = ppl::sample("b", Normal::new(&a, 1.0)?)?;
    let c = ppl::sample("c", HalfNormal::new(1.0)?)?;
    let d = ppl::deterministic("d", &(&a * 2.0)?)?;
    ppl::sample("e", Normal::new(&d, 1.0)?)?;
    let locs = Tensor::stack(&[&b, &b.neg()?], 0)?; // [2]
    ppl::plate("data", 5, |_| {
        let probs = Tensor::new(&[0.3f32, 0.7], y.device())?;
        let z = ppl::sample("z", Categorical::new(&probs)?)?; // U32, [5]
        let loc = locs.index_select(&z, 0)?;
        ppl::observe("x", Normal::new(&loc, &c)?, y)?;
        Ok(())
    })
}

#[test]
fn render_model_draws_exactly_the_dependencies() {
    let y = Tensor::new(&[0.1f32, -0.3, 1.2, 0.4, 2.0], &Device::Cpu).unwrap();
    let text = ppl::render_model(chain_model, &y).unwrap();
    let dot = parse_dot(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        edge_set(&dot),
        set(&[("a", "b"), ("a", "d"), ("d", "e"), ("b", "x"), ("c", "x"), ("z", "x")]),
        "{text}"
    );
    assert_eq!(dot.edges.len(), 6, "no edge twice:\n{text}");
    // One cluster, for the plate, labelled with its name and size; z and x inside, the rest outside.
    assert_eq!(dot.clusters.len(), 1, "{text}");
    assert_eq!(dot.clusters["cluster_data"], (vec![], "data\n5".to_string()));
    for (name, cluster) in [("a", None), ("b", None), ("c", None), ("d", None), ("e", None), ("z", Some("cluster_data")), ("x", Some("cluster_data"))] {
        let (path, _) = &dot.nodes[name];
        assert_eq!(path.last().map(|s| s.as_str()), cluster, "node {name}");
    }
    assert_eq!(dot.nodes.len(), 7);
    // Styles: observed filled, deterministic dotted, latent plain ellipses.
    let style = |n: &str| dot.nodes[n].1.get("style").cloned().unwrap_or_default();
    assert_eq!(style("x"), "filled");
    assert_eq!(style("d"), "dotted");
    assert_eq!(style("a"), "");
    assert_eq!(dot.nodes["a"].1["shape"], "ellipse");
}

/// LDA's shape: globals, a document plate, a word plate nested in it; params drawn on request.
fn nested_model(data: &Tensor) -> Result<()> {
    let opts = ppl::ParamOptions { constraint: Constraint::Positive, ..Default::default() };
    let conc = ppl::param_with("conc", Tensor::ones(3, DType::F32, data.device())?, opts)?;
    let topics = ppl::plate("topics", 3, |_| ppl::sample("topic_loc", Normal::new(0.0, 1.0)?))?;
    ppl::plate("docs", 4, |_| {
        let w = ppl::sample("doc_weights", Dirichlet::new(&conc)?)?; // [4, 3]
        let loc = w.matmul(&topics.unsqueeze(1)?)?.squeeze(1)?; // [4]
        ppl::plate_with("words", 2, PlateOptions { dim: Some(-2), ..Default::default() }, |_| {
            ppl::observe("word", Normal::new(&loc, 1.0)?, data)?;
            Ok(())
        })
    })
}

#[test]
fn nested_plates_are_nested_clusters_and_params_are_optional() {
    let data = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
    let text = ppl::render_model(nested_model, &data).unwrap();
    let dot = parse_dot(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(edge_set(&dot), set(&[("topic_loc", "word"), ("doc_weights", "word")]), "{text}");
    assert_eq!(dot.clusters["cluster_docs"], (vec![], "docs\n4".to_string()));
    assert_eq!(dot.clusters["cluster_words"], (vec!["cluster_docs".to_string()], "words\n2".to_string()));
    assert_eq!(dot.clusters["cluster_topics"].0, Vec::<String>::new());
    assert_eq!(dot.nodes["word"].0, vec!["cluster_docs".to_string(), "cluster_words".to_string()]);
    assert!(!dot.nodes.contains_key("conc"), "params are off by default:\n{text}");

    let opts = RenderOptions::new().params(true).distributions(true);
    let text = ppl::render_model_with(nested_model, &data, &opts).unwrap();
    let dot = parse_dot(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(edge_set(&dot), set(&[("conc", "doc_weights"), ("topic_loc", "word"), ("doc_weights", "word")]), "{text}");
    assert_eq!(dot.nodes["conc"].1["shape"], "plain");
    assert_eq!(dot.nodes["doc_weights"].1["label"], "doc_weights ~ Dirichlet");
    let g = model_graph(nested_model, &data, &opts).unwrap();
    let kinds: Vec<_> = g.nodes.iter().map(|n| (n.name.as_str(), n.kind)).collect();
    assert_eq!(
        kinds,
        [("conc", NodeKind::Param), ("topic_loc", NodeKind::Latent), ("doc_weights", NodeKind::Latent), ("word", NodeKind::Observed)]
    );
}

/// A model that fails is an error, not a graph.
#[test]
fn a_failing_model_is_an_error() {
    let model = |_: &()| -> Result<()> {
        ppl::sample("s", Normal::new(0.0, -1.0)?)?;
        Ok(())
    };
    let err = ppl::render_model(model, &()).unwrap_err().to_string();
    assert!(err.contains("scale"), "{err}");
}

/// When a site's log-density cannot be computed at its value (here an observation outside the
/// Exponential's support), its dependencies are unknown: one dashed edge from the site before it.
#[test]
fn unknown_dependencies_fall_back_to_the_order_of_the_sites() {
    let model = |_: &()| -> Result<()> {
        let a = ppl::sample("a", Normal::new(0.0, 1.0)?)?;
        ppl::sample("b", Normal::new(0.0, 1.0)?)?;
        let bad = Tensor::new(-1f32, &Device::Cpu)?;
        ppl::observe("y", Exponential::new(&a.exp()?)?, &bad)?;
        Ok(())
    };
    let text = ppl::render_model(model, &()).unwrap();
    let dot = parse_dot(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(edge_set(&dot), set(&[("b", "y")]), "{text}");
    assert_eq!(dot.edges[0].2["style"], "dashed");
    let g = model_graph(model, &(), &RenderOptions::new()).unwrap();
    assert_eq!(g.edges.len(), 1);
    assert!(!g.edges[0].known);
}
