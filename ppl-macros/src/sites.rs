//! Walking a `#[model]`/`#[guide]` body: every site-macro invocation is parsed into a
//! [`SiteCall`], recorded (when its name is a literal) with the plates around it and whether it
//! lies in straight-line code, and replaced by its expansion.

use crate::args::{SiteCall, SiteMacro, SiteName, parse_site};
use crate::errors::Errors;
use crate::expand;
use proc_macro2::TokenStream;
use quote::quote;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Ident, LitStr, Stmt};

/// The kind of a recorded site (plates are frames, not sites).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `sample!`
    Sample,
    /// `param!`
    Param,
    /// `factor!`
    Factor,
    /// `deterministic!`
    Deterministic,
}

impl Kind {
    /// The word used in tables and messages: `sample`, `param`, ...
    pub fn word(self) -> &'static str {
        match self {
            Kind::Sample => "sample",
            Kind::Param => "param",
            Kind::Factor => "factor",
            Kind::Deterministic => "deterministic",
        }
    }

    /// The kind named by `word`.
    pub fn from_word(word: &str) -> Option<Kind> {
        Some(match word {
            "sample" => Kind::Sample,
            "param" => Kind::Param,
            "factor" => Kind::Factor,
            "deterministic" => Kind::Deterministic,
            _ => return None,
        })
    }

    /// The runtime `SiteKind` variant.
    pub fn variant(self) -> Ident {
        let v = match self {
            Kind::Sample => "Sample",
            Kind::Param => "Param",
            Kind::Factor => "Factor",
            Kind::Deterministic => "Deterministic",
        };
        Ident::new(v, proc_macro2::Span::call_site())
    }
}

/// A site with a literal name, as found in one function body.
#[derive(Clone)]
pub struct Site {
    /// Its kind.
    pub kind: Kind,
    /// The name literal, with the span the user wrote.
    pub name: LitStr,
    /// The `obs` keyword, when the site is observed.
    pub obs: Option<Ident>,
    /// The literal names of the plates around it, outermost first.
    pub plates: Vec<LitStr>,
    /// False when one of the plates around it has a dynamic name.
    pub plates_known: bool,
    /// Inside a loop, a closure or a sequential plate: it may run several times (or never).
    pub repeated: bool,
    /// The `if`/`match` arms it lies in, as (branch id, arm index).
    pub branches: Vec<(usize, usize)>,
    /// It has `enumerate =` or `infer =`: it may be enumerated (model) or auxiliary (guide).
    pub infer: bool,
}

impl Site {
    /// Whether two sites lie in different arms of one `if`/`match`, so at most one of them runs.
    pub fn exclusive_with(&self, other: &Site) -> bool {
        self.branches.iter().any(|(id, arm)| other.branches.iter().any(|(id2, arm2)| id == id2 && arm != arm2))
    }
}

/// What kind of function is being walked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `#[model]`
    Model,
    /// `#[guide]`
    Guide,
}

/// Rewrites the site macros of one function body and records its literal sites.
pub struct Walker<'a> {
    /// The path of the `ppl` crate in generated code.
    krate: &'a syn::Path,
    /// Model or guide.
    role: Role,
    /// The function's name, for messages.
    fn_name: String,
    /// Literal sites in the order they were found; index = position in the static table.
    pub sites: Vec<Site>,
    /// Problems found while walking.
    pub errors: Errors,
    plates: Vec<Option<LitStr>>,
    repeated: usize,
    branches: Vec<(usize, usize)>,
    next_branch: usize,
}

/// The name of the static site table generated inside each annotated function.
pub fn table_ident() -> Ident {
    Ident::new("__PPL_SITES", proc_macro2::Span::call_site())
}

impl<'a> Walker<'a> {
    /// A walker for the function `fn_name`.
    pub fn new(krate: &'a syn::Path, role: Role, fn_name: String) -> Self {
        Walker {
            krate,
            role,
            fn_name,
            sites: Vec::new(),
            errors: Errors::new(),
            plates: Vec::new(),
            repeated: 0,
            branches: Vec::new(),
            next_branch: 0,
        }
    }

    /// Parses and expands one site macro; `None` leaves it untouched (not a site macro, or
    /// malformed: the standalone macro then reports the error itself, exactly once).
    fn rewrite(&mut self, mac: &syn::Macro) -> Option<TokenStream> {
        let last = mac.path.segments.last()?;
        let kind = SiteMacro::from_name(&last.ident.to_string())?;
        let mut call: SiteCall = parse_site(kind, mac.tokens.clone(), last.ident.span()).ok()?;
        // Arguments run before the site, in the same context.
        if let SiteName::Dynamic(e) = &mut call.name {
            self.visit_expr_mut(e);
        }
        self.visit_expr_mut(&mut call.arg);
        for kw in &mut call.kwargs {
            if let Some(v) = &mut kw.value {
                self.visit_expr_mut(v);
            }
        }
        let meta = match (kind, call.literal_name()) {
            (SiteMacro::Plate, _) | (_, None) => None,
            (_, Some(name)) => Some(self.record(&call, name.clone())),
        };
        // A literal plate gets its own static metadata (outside the site table, which the
        // model–guide check compares), so that plate errors quote its source location.
        let plate_meta = match (kind, call.literal_name()) {
            (SiteMacro::Plate, Some(name)) => {
                let outer: Vec<LitStr> = self.plates.iter().flatten().cloned().collect();
                Some(expand::plate_meta(name, &outer, self.krate))
            }
            _ => None,
        };
        if kind == SiteMacro::Plate {
            let sequential = call.kw("sequential").is_some();
            self.plates.push(call.literal_name().cloned());
            self.repeated += sequential as usize;
            if let Some(Expr::Closure(c)) = &mut call.body {
                self.visit_expr_mut(&mut c.body);
            }
            self.repeated -= sequential as usize;
            self.plates.pop();
        }
        let table = table_ident();
        let meta = meta.map(|i| quote! { ::core::option::Option::Some(&#table[#i]) }).or(plate_meta);
        Some(expand::site(&call, self.krate, meta))
    }

    /// Records a literal site and returns its index in the table.
    fn record(&mut self, call: &SiteCall, name: LitStr) -> usize {
        let kind = match call.mac {
            SiteMacro::Sample => Kind::Sample,
            SiteMacro::Param => Kind::Param,
            SiteMacro::Factor => Kind::Factor,
            SiteMacro::Deterministic | SiteMacro::Plate => Kind::Deterministic,
        };
        let obs = call.kw("obs").map(|k| k.key.clone());
        if let (Role::Guide, Some(key)) = (self.role, &obs) {
            self.errors.error(
                key.span(),
                format!(
                    "guide `{}` observes site `{}`: a guide must not have `obs =`; observed sites belong in the model",
                    self.fn_name,
                    name.value()
                ),
            );
        }
        self.sites.push(Site {
            kind,
            name,
            obs,
            plates: self.plates.iter().flatten().cloned().collect(),
            plates_known: self.plates.iter().all(Option::is_some),
            repeated: self.repeated > 0,
            branches: self.branches.clone(),
            infer: call.kw("enumerate").is_some() || call.kw("infer").is_some(),
        });
        self.sites.len() - 1
    }

    fn in_arm(&mut self, id: usize, arm: usize, f: impl FnOnce(&mut Self)) {
        self.branches.push((id, arm));
        f(self);
        self.branches.pop();
    }

    fn repeated(&mut self, f: impl FnOnce(&mut Self)) {
        self.repeated += 1;
        f(self);
        self.repeated -= 1;
    }
}

impl VisitMut for Walker<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::Macro(m) => {
                if let Some(tokens) = self.rewrite(&m.mac) {
                    *e = Expr::Verbatim(tokens);
                }
            }
            Expr::ForLoop(f) => {
                self.visit_expr_mut(&mut f.expr);
                self.repeated(|w| w.visit_block_mut(&mut f.body));
            }
            Expr::While(w) => self.repeated(|s| {
                s.visit_expr_mut(&mut w.cond);
                s.visit_block_mut(&mut w.body);
            }),
            Expr::Loop(l) => self.repeated(|w| w.visit_block_mut(&mut l.body)),
            Expr::Closure(c) => self.repeated(|w| w.visit_expr_mut(&mut c.body)),
            Expr::If(i) => {
                self.visit_expr_mut(&mut i.cond);
                let id = self.next_branch;
                self.next_branch += 1;
                self.in_arm(id, 0, |w| w.visit_block_mut(&mut i.then_branch));
                if let Some((_, els)) = &mut i.else_branch {
                    self.in_arm(id, 1, |w| w.visit_expr_mut(els));
                }
            }
            Expr::Match(m) => {
                self.visit_expr_mut(&mut m.expr);
                let id = self.next_branch;
                self.next_branch += 1;
                for (k, arm) in m.arms.iter_mut().enumerate() {
                    self.in_arm(id, k, |w| {
                        if let Some((_, g)) = &mut arm.guard {
                            w.visit_expr_mut(g);
                        }
                        w.visit_expr_mut(&mut arm.body);
                    });
                }
            }
            _ => visit_mut::visit_expr_mut(self, e),
        }
    }

    fn visit_stmt_mut(&mut self, s: &mut Stmt) {
        if let Stmt::Macro(m) = s {
            if let Some(tokens) = self.rewrite(&m.mac) {
                *s = Stmt::Expr(Expr::Verbatim(tokens), m.semi_token);
            }
            return;
        }
        visit_mut::visit_stmt_mut(self, s);
    }

    /// Nested items are separate functions: they get their own `#[model]` if they need one.
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}
