//! The parameter store: named, constrained, learnable parameters kept unconstrained as Candle
//! `Var`s, owned by whoever runs inference (there is no global store).

use crate::defaults;
use crate::dist::{Constraint, TransformRef, biject_to};
use crate::error::{Error, Result};
use crate::runtime::{self, Handler};
use crate::site::ParamInit;
use candle_core::{Device, Tensor, Var};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};

struct Entry {
    unconstrained: Var,
    constraint: Constraint,
    transform: TransformRef,
}

#[derive(Default)]
struct Inner {
    order: Vec<String>,
    entries: HashMap<String, Entry>,
}

/// Named parameters, each a constrained value stored as an unconstrained `Var`
/// (`value = biject_to(constraint)(var)`), so optimizers work in unconstrained space.
///
/// Cloning a `ParamStore` gives another handle on the *same* parameters; [`ParamStore::new`]
/// makes an independent one.
///
/// ```
/// use ppl_runtime::{params::ParamStore, primitives::{param_with, ParamOptions}, dist::Constraint};
/// let store = ParamStore::new();
/// let s = store.scope(|| param_with("s", 2.0, ParamOptions { constraint: Constraint::Positive, ..Default::default() }))?;
/// assert!((s.to_scalar::<f32>()? - 2.0).abs() < 1e-6);
/// assert_eq!(store.names(), vec!["s".to_string()]);
/// # Ok::<(), ppl_runtime::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct ParamStore {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for ParamStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamStore").field("names", &self.names()).finish()
    }
}

impl ParamStore {
    /// An empty store.
    pub fn new() -> ParamStore {
        ParamStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while the lock was held cannot leave an entry half-written, so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with this store installed: `param` sites inside read and create parameters here.
    pub fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = runtime::install(Rc::new(RefCell::new(ParamStoreHandler { store: self.clone() })));
        f()
    }

    /// Parameter names in creation order.
    pub fn names(&self) -> Vec<String> {
        self.lock().order.clone()
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a parameter named `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.lock().entries.contains_key(name)
    }

    /// The constrained value of `name` (differentiable with respect to its `Var`).
    pub fn get(&self, name: &str) -> Result<Option<Tensor>> {
        let g = self.lock();
        match g.entries.get(name) {
            None => Ok(None),
            Some(e) => Ok(Some(e.transform.forward(e.unconstrained.as_tensor())?)),
        }
    }

    /// The unconstrained `Var` of `name`.
    pub fn get_unconstrained(&self, name: &str) -> Option<Var> {
        self.lock().entries.get(name).map(|e| e.unconstrained.clone())
    }

    /// The constraint of `name`.
    pub fn constraint(&self, name: &str) -> Option<Constraint> {
        self.lock().entries.get(name).map(|e| e.constraint.clone())
    }

    /// `(name, constrained value)` for every parameter, in creation order.
    pub fn iter(&self) -> Result<Vec<(String, Tensor)>> {
        let g = self.lock();
        g.order
            .iter()
            .map(|n| {
                let e = &g.entries[n];
                Ok((n.clone(), e.transform.forward(e.unconstrained.as_tensor())?))
            })
            .collect()
    }

    /// The unconstrained `Var`s in creation order, for optimizers.
    pub fn vars(&self) -> Vec<(String, Var)> {
        let g = self.lock();
        g.order.iter().map(|n| (n.clone(), g.entries[n].unconstrained.clone())).collect()
    }

    /// Sets (or creates) `name` to the constrained `value` under `constraint`.
    ///
    /// An existing parameter keeps its `Var` (so optimizers keep tracking it) when the shape and
    /// dtype agree; otherwise it is replaced.
    pub fn set(&self, name: &str, value: &Tensor, constraint: Constraint) -> Result<()> {
        let entry = make_entry(name, value, constraint, "value")?;
        let mut g = self.lock();
        set_entry(&mut g, name, entry)
    }

    /// Removes `name`; returns whether it existed.
    pub fn remove(&self, name: &str) -> bool {
        let mut g = self.lock();
        g.order.retain(|n| n != name);
        g.entries.remove(name).is_some()
    }

    /// Removes every parameter.
    pub fn clear(&self) {
        let mut g = self.lock();
        g.order.clear();
        g.entries.clear();
    }

    /// The constrained value of `name`, creating it from `init` under `constraint` if missing.
    pub(crate) fn get_or_create(&self, name: &str, constraint: &Constraint, init: Option<ParamInit<'_>>) -> Result<Tensor> {
        {
            let mut g = self.lock();
            if let Some(ParamInit::Var(var)) = &init {
                return register_var(&mut g, name, var);
            }
            if let Some(e) = g.entries.get(name) {
                return e.transform.forward(e.unconstrained.as_tensor());
            }
        }
        // The lock is released while a lazy initializer runs: it may itself touch the store.
        let value = match init {
            None => {
                return Err(Error::invalid_arg(
                    "param",
                    "init",
                    "the parameter does not exist and no initial value was given",
                ));
            }
            Some(ParamInit::Value(t)) => t,
            Some(ParamInit::Scalar(x)) => {
                let d = defaults::current();
                Tensor::new(x, &d.device)?.to_dtype(d.dtype)?
            }
            Some(ParamInit::Lazy(f)) => f()?,
            Some(ParamInit::Var(_)) => unreachable!("handled above"),
        };
        let entry = make_entry(name, &value, constraint.clone(), "initial value")?;
        // Insert if still absent: when threads race to create the same parameter, the first
        // insertion wins and every thread returns the winner's value.
        let mut g = self.lock();
        if let Some(e) = g.entries.get(name) {
            return e.transform.forward(e.unconstrained.as_tensor());
        }
        let out = entry.transform.forward(entry.unconstrained.as_tensor())?;
        insert(&mut g, name, entry);
        Ok(out)
    }

    /// Writes every parameter (unconstrained values) and its constraint to a safetensors file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let st_err = |message: String| Error::Safetensors { path: path.display().to_string(), message };
        let g = self.lock();
        let mut meta = HashMap::new();
        let mut tensors = Vec::new();
        for n in &g.order {
            let e = &g.entries[n];
            meta.insert(format!("constraint.{n}"), e.constraint.to_string());
            tensors.push((n.clone(), e.unconstrained.as_tensor().to_device(&Device::Cpu)?));
        }
        meta.insert("format".into(), "ppl.ParamStore.v1".into());
        safetensors::serialize_to_file(tensors.iter().map(|(n, t)| (n.as_str(), t)), Some(meta), path)
            .map_err(|e| st_err(e.to_string()))
    }

    /// Reads a file written by [`ParamStore::save`] onto `device`, replacing parameters of the
    /// same names (existing `Var`s are updated in place when shapes agree).
    ///
    /// All or nothing: every parameter of the file is read and checked (its recorded constraint
    /// must parse and be satisfiable, its value must satisfy it) before the store changes, so on
    /// any error the store is left as it was. Errors name the file and the parameter.
    pub fn load(&self, path: impl AsRef<Path>, device: &Device) -> Result<()> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let st_err = |message: String| Error::Safetensors { path: file.clone(), message };
        let bytes = std::fs::read(path).map_err(|source| Error::Io { path: file.clone(), source })?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| st_err(e.to_string()))?;
        let info = meta.metadata().clone().unwrap_or_default();
        if info.get("format").map(String::as_str) != Some("ppl.ParamStore.v1") {
            return Err(st_err("not a ppl parameter file (missing `format: ppl.ParamStore.v1` metadata)".into()));
        }
        let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| st_err(e.to_string()))?;
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        let mut entries = Vec::with_capacity(names.len());
        for n in names {
            let param_err = |message: String| st_err(format!("parameter `{n}`: {message}"));
            let c = info
                .get(&format!("constraint.{n}"))
                .ok_or_else(|| param_err("no constraint recorded in the file's metadata".into()))?;
            let constraint: Constraint =
                c.parse().map_err(|e: Error| param_err(format!("unreadable constraint `{c}`: {}", e.root())))?;
            let transform = biject_to(&constraint).map_err(|e| param_err(e.root().to_string()))?;
            let value = transform.forward(&tensors[n]).map_err(|e| param_err(e.root().to_string()))?;
            let entry = make_entry(n, &value, constraint, "loaded value").map_err(|e| param_err(e.root().to_string()))?;
            entries.push((n.clone(), entry));
        }
        let mut g = self.lock();
        for (n, entry) in entries {
            set_entry(&mut g, &n, entry)?;
        }
        Ok(())
    }
}

/// `None` when some value can satisfy `constraint`, else why none can (`interval(1, 0)`).
fn impossible(constraint: &Constraint) -> Option<String> {
    let empty = |l: f64, u: f64, what: &str| {
        (l.is_nan() || u.is_nan() || l >= u).then(|| format!("its lower bound {l} is not below its upper bound {u} ({what})"))
    };
    match constraint {
        Constraint::Interval(l, u) => empty(*l, *u, "no value lies in it"),
        Constraint::HalfOpenInterval(l, u) => empty(*l, *u, "no value lies in it"),
        Constraint::IntegerInterval(l, u) if l > u => Some(format!("its lower bound {l} is above its upper bound {u}")),
        Constraint::GreaterThan(x) | Constraint::GreaterThanEq(x) | Constraint::LessThan(x) if x.is_nan() => {
            Some("its bound is NaN".into())
        }
        _ => None,
    }
}

/// Replaces (or creates) `name`, keeping an existing `Var` (updated in place) when the shape
/// and dtype agree, so optimizers keep tracking it.
fn set_entry(g: &mut Inner, name: &str, entry: Entry) -> Result<()> {
    if let Some(old) = g.entries.get_mut(name)
        && old.unconstrained.dims() == entry.unconstrained.dims()
        && old.unconstrained.dtype() == entry.unconstrained.dtype()
    {
        old.unconstrained.set(entry.unconstrained.as_tensor())?;
        old.constraint = entry.constraint;
        old.transform = entry.transform;
        return Ok(());
    }
    insert(g, name, entry);
    Ok(())
}

/// A store entry for `value` (described as `what` in errors: "initial value", "loaded value").
fn make_entry(name: &str, value: &Tensor, constraint: Constraint, what: &str) -> Result<Entry> {
    let arg = if what == "initial value" { "init" } else { "value" };
    if let Some(why) = impossible(&constraint) {
        return Err(Error::invalid_arg("param", "constraint", format!("constraint `{constraint}` is impossible: {why}"))
            .at_site(name, None));
    }
    let transform = biject_to(&constraint).map_err(|e| e.at_site(name, None))?;
    if !value.dtype().is_float() {
        return Err(Error::invalid_arg("param", arg, format!("the {what} must be a float tensor, got {:?}", value.dtype()))
            .at_site(name, None));
    }
    if let Some(detail) = constraint.first_violation(value)? {
        return Err(Error::invalid_arg(
            "param",
            arg,
            format!("the {what} must satisfy constraint `{constraint}`, but {detail}"),
        )
        .at_site(name, None));
    }
    let unconstrained = transform.inverse(&value.detach())?;
    Ok(Entry { unconstrained: Var::from_tensor(&unconstrained)?, constraint, transform })
}

fn insert(g: &mut Inner, name: &str, entry: Entry) {
    if g.entries.insert(name.to_string(), entry).is_none() {
        g.order.push(name.to_string());
    }
}

fn register_var(g: &mut Inner, name: &str, var: &Var) -> Result<Tensor> {
    match g.entries.get(name) {
        Some(e) if e.unconstrained.id() == var.id() => {}
        Some(e) => {
            // A stored value (e.g. loaded from disk) wins over the module's fresh initialisation.
            if e.unconstrained.dims() != var.dims() {
                return Err(Error::shape_mismatch(format!("module parameter `{name}`"), e.unconstrained.dims(), var.dims()));
            }
            let stored = e.transform.forward(e.unconstrained.as_tensor())?;
            var.set(&stored.to_dtype(var.dtype())?)?;
            let entry = Entry { unconstrained: var.clone(), constraint: Constraint::Real, transform: biject_to(&Constraint::Real)? };
            g.entries.insert(name.to_string(), entry);
        }
        None => {
            let entry = Entry { unconstrained: var.clone(), constraint: Constraint::Real, transform: biject_to(&Constraint::Real)? };
            insert(g, name, entry);
        }
    }
    Ok(var.as_tensor().clone())
}

/// The handler [`ParamStore::scope`] installs: resolves `param` sites against its store.
pub struct ParamStoreHandler {
    store: ParamStore,
}

impl Handler for ParamStoreHandler {
    // Param sites are resolved by the stack's default behaviour against the innermost store
    // (found through this method), after every handler's `process`: so `substitute` and `lift`
    // anywhere on the stack take precedence, and `block` does not hide the store.
    fn param_store(&self) -> Option<ParamStore> {
        Some(self.store.clone())
    }
}
