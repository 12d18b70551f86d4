//! The effect-handler runtime: a per-thread stack of handlers and [`apply_stack`], through which
//! every site passes.
//!
//! Handlers are installed by scoped calls that return a guard (or take a closure); the guard pops
//! its frame on drop, so a panic or an early `?` never leaves a stale handler behind. Each thread
//! has its own stack: MCMC chains can run on parallel threads.

use crate::error::{Error, Result};
use crate::params::ParamStore;
use crate::rng::Rng;
use crate::site::{Message, RngHandle, SiteKind};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// An effect handler (Pyro's `Messenger`): hooks that see every site inside its scope.
///
/// Both hooks default to doing nothing; a handler matches only the site kinds it changes.
pub trait Handler {
    /// Runs before the default behaviour, innermost handler first.
    fn process(&mut self, _msg: &mut Message) -> Result<()> {
        Ok(())
    }

    /// Runs after the default behaviour, innermost handler first (so the outermost sees the final message).
    fn postprocess(&mut self, _msg: &mut Message) -> Result<()> {
        Ok(())
    }

    /// The random number generator this handler carries, if any (the `seed` handler's).
    /// Asked once, when the handler is installed.
    fn rng(&self) -> Option<RngHandle> {
        None
    }

    /// The parameter store this handler carries, if any ([`ParamStore::scope`]'s handler).
    /// Asked once, when the handler is installed. Param sites without a value resolve against
    /// the innermost store on the whole stack, so `block` does not hide a store.
    fn param_store(&self) -> Option<ParamStore> {
        None
    }
}

/// A handler shared between the stack and the code that installed it.
pub type HandlerRef = Rc<RefCell<dyn Handler>>;

struct Frame {
    id: u64,
    handler: HandlerRef,
    /// `handler.rng()` and `handler.param_store()`, read at install time, so that finding them
    /// never borrows a handler (which may be running `process` when it asks for a draw).
    rng: Option<RngHandle>,
    store: Option<ParamStore>,
}

thread_local! {
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
    static FALLBACK_RNG: RefCell<Option<Rng>> = const { RefCell::new(None) };
    static DIMS: RefCell<Vec<Option<String>>> = const { RefCell::new(Vec::new()) };
}

/// Pops its handler from this thread's stack when dropped.
#[must_use = "the handler is uninstalled when the guard is dropped"]
pub struct HandlerGuard {
    id: u64,
}

impl Drop for HandlerGuard {
    fn drop(&mut self) {
        // Remove this guard's own frame even if it is not on top (a sequential-plate iterator
        // advanced inside another handler's scope), so a misordered drop never pops another
        // handler's frame. Scoped installs always drop in order.
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(i) = s.iter().rposition(|f| f.id == self.id) {
                s.remove(i);
            }
        });
    }
}

/// Installs `handler` as the innermost handler of this thread until the guard is dropped.
pub fn install(handler: HandlerRef) -> HandlerGuard {
    let id = NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    });
    let (rng, store) = match handler.try_borrow() {
        Ok(h) => (h.rng(), h.param_store()),
        Err(_) => (None, None),
    };
    STACK.with(|s| s.borrow_mut().push(Frame { id, handler, rng, store }));
    HandlerGuard { id }
}

/// Runs `f` with `handler` installed as the innermost handler, then returns `f`'s result and the
/// handler (with whatever state it gathered).
pub fn with_handler<H: Handler + 'static, R>(handler: H, f: impl FnOnce() -> R) -> (R, H) {
    let rc = Rc::new(RefCell::new(handler));
    let out = {
        let _guard = install(rc.clone());
        f()
    };
    let handler = match Rc::try_unwrap(rc) {
        Ok(cell) => cell.into_inner(),
        Err(_) => unreachable!("the stack holds the only other reference, dropped with the guard"),
    };
    (out, handler)
}

/// Number of handlers installed on this thread.
pub fn stack_depth() -> usize {
    STACK.with(|s| s.borrow().len())
}

/// Sends `msg` through this thread's handler stack:
///
/// 1. `process` runs on each handler from the innermost outwards, stopping after a handler that
///    sets `msg.stop`;
/// 2. the default behaviour runs unless `msg.done` is set: a sample site without a value draws one
///    (with `rsample` when the distribution has it and `infer.reparameterize` is not
///    `Some(false)`; `msg.reparameterized` records which) from the innermost `seed` handler's
///    generator, or from an entropy-seeded per-thread generator when none is installed; an
///    observed value's float dtype must be the distribution's; a param site without a value
///    is resolved against the innermost parameter store anywhere on the stack (a `block`
///    between them does not hide it), and is an error when there is none;
/// 3. `postprocess` runs on the handlers that `process` visited, innermost first, so the outermost
///    handler sees the final message.
///
/// Handlers may themselves create sites (and draw random numbers) inside `process` or
/// `postprocess`: such a nested message passes through every handler except the ones that are
/// busy (the handler that created it), so it is traced by the handlers outside as usual.
///
/// Errors are tagged with the site's name and source location.
pub fn apply_stack(msg: &mut Message) -> Result<()> {
    let frames: Vec<HandlerRef> = STACK.with(|s| s.borrow().iter().map(|f| f.handler.clone()).collect());
    let located = |e: Error, msg: &Message| e.at_site(&msg.name, msg.location());
    let mut visited = 0;
    for h in frames.iter().rev() {
        visited += 1;
        // A handler already borrowed is running its own hook and created this message: skip it.
        if let Ok(mut h) = h.try_borrow_mut() {
            h.process(msg).map_err(|e| located(e, msg))?;
        }
        if msg.stop {
            break;
        }
    }
    if !msg.done {
        default_process(msg).map_err(|e| located(e, msg))?;
    }
    for h in frames.iter().rev().take(visited) {
        if let Ok(mut h) = h.try_borrow_mut() {
            h.postprocess(msg).map_err(|e| located(e, msg))?;
        }
    }
    Ok(())
}

fn default_process(msg: &mut Message) -> Result<()> {
    if let (SiteKind::Sample, Some(value), Some(dist)) = (msg.kind, &msg.value, &msg.dist) {
        // Checked here rather than where the site is written, so that a handler (e.g. MCMC's
        // conversion to f64) may convert an observed value in `process` first.
        crate::site::check_obs_dtype(dist, value)?;
    }
    if msg.value.is_some() {
        return Ok(());
    }
    match msg.kind {
        SiteKind::Sample => {
            let dist = msg.dist()?.clone();
            let rsample = dist.has_rsample() && msg.infer.reparameterize != Some(false);
            let value = with_rng(|rng| if rsample { dist.rsample(rng, &[]) } else { dist.sample(rng, &[]) })?;
            msg.value = Some(value);
            msg.reparameterized = rsample;
            Ok(())
        }
        SiteKind::Param => {
            let store = STACK.with(|s| s.borrow().iter().rev().find_map(|f| f.store.clone()));
            let Some(store) = store else { return Err(Error::NoParamStore) };
            let (constraint, init) = match msg.param.as_mut() {
                Some(spec) => (spec.constraint.clone(), spec.init.take()),
                None => (crate::dist::Constraint::Real, None),
            };
            msg.value = Some(store.get_or_create(&msg.name, &constraint, init)?);
            Ok(())
        }
        SiteKind::Plate => {
            let (size, subsample_size) = msg.plate.as_ref().map_or((0, 0), |f| (f.size, f.subsample_size));
            msg.value = Some(crate::primitives::draw_subsample(size, subsample_size)?);
            Ok(())
        }
        SiteKind::Factor | SiteKind::Deterministic => Ok(()),
    }
}

/// Runs `f` with the innermost `seed` handler's generator, or with a per-thread generator seeded
/// from entropy when no seed handler is installed. Never panics: a generator already in use (a
/// re-entrant call from inside `f`) is passed over for the next one outwards.
pub fn with_rng<R>(f: impl FnOnce(&mut Rng) -> R) -> R {
    let seeded = STACK.with(|s| {
        s.borrow().iter().rev().filter_map(|fr| fr.rng.as_ref()).find(|r| r.try_borrow_mut().is_ok()).cloned()
    });
    if let Some(rng) = seeded
        && let Ok(mut r) = rng.try_borrow_mut()
    {
        return f(&mut r);
    }
    FALLBACK_RNG.with(|r| match r.try_borrow_mut() {
        Ok(mut r) => f(r.get_or_insert_with(Rng::from_entropy)),
        Err(_) => f(&mut Rng::from_entropy()),
    })
}

/// Releases a plate dim when dropped.
pub(crate) struct DimGuard {
    index: usize,
}

impl Drop for DimGuard {
    fn drop(&mut self) {
        DIMS.with(|d| {
            let mut d = d.borrow_mut();
            d[self.index] = None;
            while d.last().is_some_and(|x| x.is_none()) {
                d.pop();
            }
        });
    }
}

/// Allocates a tensor dim for the vectorized plate `name`: `requested` (negative) if given and
/// free, otherwise the rightmost dim no enclosing plate uses (as Pyro does).
pub(crate) fn allocate_dim(name: &str, requested: Option<isize>) -> Result<(isize, DimGuard)> {
    DIMS.with(|d| {
        let mut d = d.borrow_mut();
        let index = match requested {
            Some(dim) if dim >= 0 => {
                return Err(Error::Plate {
                    plate: name.into(),
                    message: format!("`dim` must be negative (counted from the right), got {dim}"),
                });
            }
            _ if d.iter().flatten().any(|n| n == name) => {
                return Err(Error::Plate {
                    plate: name.into(),
                    message: "is nested inside another plate of the same name; give the inner plate another name".into(),
                });
            }
            Some(dim) => {
                let i = (-dim - 1) as usize;
                if let Some(Some(other)) = d.get(i) {
                    return Err(Error::Plate {
                        plate: name.into(),
                        message: format!(
                            "dim {dim} is already used by the enclosing plate `{other}`; give one of them another `dim`"
                        ),
                    });
                }
                i
            }
            None => d.iter().position(|x| x.is_none()).unwrap_or(d.len()),
        };
        if d.len() <= index {
            d.resize(index + 1, None);
        }
        d[index] = Some(name.to_string());
        Ok((-(index as isize) - 1, DimGuard { index }))
    })
}
