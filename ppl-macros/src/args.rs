//! Parsing the arguments of the site macros (`sample!`, `param!`, `plate!`, `factor!`,
//! `deterministic!`) into a [`SiteCall`], with one specific error per misuse.

use crate::check::suggest;
use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Token};

/// Which site macro was invoked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteMacro {
    /// `sample!(name, dist, obs = .., mask = .., enumerate = .., infer = ..)`
    Sample,
    /// `param!(name, init, constraint = .., event_dim = ..)`
    Param,
    /// `plate!(name, size, subsample_size = .., subsample = .., dim = .., sequential, |idx| body)`
    Plate,
    /// `factor!(name, log_weight)`
    Factor,
    /// `deterministic!(name, value)`
    Deterministic,
}

impl SiteMacro {
    /// The site macro a macro path's last segment names, if any.
    pub fn from_name(name: &str) -> Option<SiteMacro> {
        Some(match name {
            "sample" => SiteMacro::Sample,
            "param" => SiteMacro::Param,
            "plate" => SiteMacro::Plate,
            "factor" => SiteMacro::Factor,
            "deterministic" => SiteMacro::Deterministic,
            _ => return None,
        })
    }

    /// The macro's name, e.g. `sample`.
    pub fn name(self) -> &'static str {
        match self {
            SiteMacro::Sample => "sample",
            SiteMacro::Param => "param",
            SiteMacro::Plate => "plate",
            SiteMacro::Factor => "factor",
            SiteMacro::Deterministic => "deterministic",
        }
    }

    /// The keyword arguments the macro accepts (flags included).
    pub fn keywords(self) -> &'static [&'static str] {
        match self {
            SiteMacro::Sample => &["obs", "mask", "enumerate", "infer"],
            SiteMacro::Param => &["constraint", "event_dim"],
            SiteMacro::Plate => &["subsample_size", "subsample", "dim", "sequential"],
            SiteMacro::Factor | SiteMacro::Deterministic => &[],
        }
    }

    /// The usage line quoted in error messages.
    pub fn usage(self) -> &'static str {
        match self {
            SiteMacro::Sample => "`sample!(\"name\", dist)` or `sample!(\"name\", dist, obs = &data)`",
            SiteMacro::Param => "`param!(\"name\", init)` or `param!(\"name\", init, constraint = positive)`",
            SiteMacro::Plate => "`plate!(\"name\", size, |idx| { ... })` or `plate!(\"name\", size, subsample_size = 10, |idx| { ... })`",
            SiteMacro::Factor => "`factor!(\"name\", log_weight)`",
            SiteMacro::Deterministic => "`deterministic!(\"name\", value)`",
        }
    }

    /// What the positional argument after the name is called.
    fn second(self) -> &'static str {
        match self {
            SiteMacro::Sample => "distribution",
            SiteMacro::Param => "initial value",
            SiteMacro::Plate => "size",
            SiteMacro::Factor => "log-weight",
            SiteMacro::Deterministic => "value",
        }
    }
}

/// A site name: a string literal (known at compile time) or any expression giving a `String`.
#[derive(Clone)]
pub enum SiteName {
    /// `"z"`: part of the static site table and of the compile-time checks.
    Literal(LitStr),
    /// `format!("z_{i}")` or a variable: checked at run time only.
    Dynamic(Expr),
}

/// A keyword argument `key = value`; a bare flag (`sequential`) has no value.
#[derive(Clone)]
pub struct KwArg {
    /// The keyword, with its span.
    pub key: Ident,
    /// The value expression.
    pub value: Option<Expr>,
}

/// One parsed site-macro invocation.
#[derive(Clone)]
pub struct SiteCall {
    /// Which macro.
    pub mac: SiteMacro,
    /// The span of the macro's name, for generated calls.
    pub span: Span,
    /// The site name.
    pub name: SiteName,
    /// The positional argument after the name (distribution, init, size, log-weight, value).
    pub arg: Expr,
    /// The body closure of a plate.
    pub body: Option<Expr>,
    /// Keyword arguments, in source order.
    pub kwargs: Vec<KwArg>,
}

impl SiteCall {
    /// The keyword argument `key`, if given.
    pub fn kw(&self, key: &str) -> Option<&KwArg> {
        self.kwargs.iter().find(|k| k.key == key)
    }

    /// The literal name, if the name is a literal.
    pub fn literal_name(&self) -> Option<&LitStr> {
        match &self.name {
            SiteName::Literal(l) => Some(l),
            SiteName::Dynamic(_) => None,
        }
    }
}

/// One comma-separated item of a macro's input before validation.
enum Item {
    Positional(Expr),
    Keyword(Ident, Expr),
}

fn parse_items(input: ParseStream) -> syn::Result<Vec<Item>> {
    let mut items = Vec::new();
    while !input.is_empty() {
        if input.peek(Ident) && input.peek2(Token![=]) && !input.peek2(Token![==]) {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            items.push(Item::Keyword(key, input.parse()?));
        } else {
            items.push(Item::Positional(input.parse()?));
        }
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(items)
}

fn string_literal(e: &Expr) -> Option<&LitStr> {
    match e {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Some(s),
        Expr::Group(g) => string_literal(&g.expr),
        Expr::Paren(p) => string_literal(&p.expr),
        _ => None,
    }
}

fn bare_ident(e: &Expr) -> Option<&Ident> {
    match e {
        Expr::Path(p) if p.qself.is_none() && p.attrs.is_empty() => p.path.get_ident(),
        _ => None,
    }
}

fn unknown_keyword(mac: SiteMacro, key: &Ident) -> syn::Error {
    let allowed = mac.keywords();
    let key_s = key.to_string();
    let mut msg = if allowed.is_empty() {
        format!("`{}!` takes no keyword arguments, found `{key_s}`; usage: {}", mac.name(), mac.usage())
    } else {
        let list: Vec<String> = allowed.iter().map(|k| format!("`{k}`")).collect();
        format!("unknown argument `{key_s}` for `{}!`; expected one of {}", mac.name(), list.join(", "))
    };
    if let Some(s) = suggest(&key_s, allowed.iter().copied()) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    syn::Error::new(key.span(), msg)
}

/// Parses the input tokens of the site macro `mac`; `span` is the macro name's span.
pub fn parse_site(mac: SiteMacro, tokens: TokenStream, span: Span) -> syn::Result<SiteCall> {
    let items = parse_items.parse2(tokens)?;
    let mut positional: Vec<Expr> = Vec::new();
    let mut kwargs: Vec<KwArg> = Vec::new();
    let mut errors = crate::errors::Errors::new();
    let n_items = items.len();
    for (i, item) in items.into_iter().enumerate() {
        match item {
            Item::Keyword(key, value) => {
                if positional.is_empty() {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("missing site name: `{}!` takes the site name first; usage: {}", mac.name(), mac.usage()),
                    ));
                }
                if mac == SiteMacro::Plate && key == "sequential" {
                    errors.error(
                        key.span(),
                        "`sequential` is a flag without a value: `plate!(\"name\", size, sequential, |i| { ... })`",
                    );
                } else if !mac.keywords().contains(&key.to_string().as_str()) {
                    errors.push(unknown_keyword(mac, &key));
                } else if kwargs.iter().any(|k| k.key == key) {
                    errors.error(key.span(), format!("argument `{key}` is given twice"));
                } else {
                    kwargs.push(KwArg { key, value: Some(value) });
                }
            }
            Item::Positional(e) => {
                let is_last = i + 1 == n_items;
                if mac == SiteMacro::Plate && positional.len() >= 2 && !is_last {
                    // Between the size and the body closure only keywords and flags are allowed.
                    match bare_ident(&e) {
                        Some(id) if id == "sequential" => {
                            if kwargs.iter().any(|k| k.key == "sequential") {
                                errors.error(id.span(), "flag `sequential` is given twice");
                            } else {
                                kwargs.push(KwArg { key: id.clone(), value: None });
                            }
                        }
                        _ if matches!(e, Expr::Closure(_)) => errors.error_spanned(
                            &e,
                            "the body closure `|idx| { ... }` must be the last argument of `plate!`, after the keyword arguments",
                        ),
                        _ => errors.error_spanned(
                            &e,
                            "expected a keyword argument (`subsample_size = ..`, `subsample = ..`, `dim = ..`) \
                             or the flag `sequential` here; the body closure `|idx| { ... }` comes last",
                        ),
                    }
                    continue;
                }
                let plate_body = mac == SiteMacro::Plate && is_last;
                if !kwargs.is_empty() && !plate_body {
                    errors.error_spanned(
                        &e,
                        format!(
                            "positional argument after keyword arguments: keyword arguments come last; usage: {}",
                            mac.usage()
                        ),
                    );
                    continue;
                }
                positional.push(e);
            }
        }
    }
    if let Some(e) = errors.into_error() {
        return Err(e);
    }
    let max_positional = if mac == SiteMacro::Plate { 3 } else { 2 };
    if positional.is_empty() {
        return Err(syn::Error::new(span, format!("`{}!` needs a site name; usage: {}", mac.name(), mac.usage())));
    }
    // The name comes first: a string literal elsewhere means the arguments are out of order.
    if string_literal(&positional[0]).is_none() {
        if let Some(lit) = positional.iter().skip(1).find_map(string_literal) {
            return Err(syn::Error::new(
                lit.span(),
                format!("the site name must be the first argument; usage: {}", mac.usage()),
            ));
        }
        if let Expr::Lit(l) = &positional[0] {
            return Err(syn::Error::new(
                l.span(),
                "a site name is a string literal (`\"z\"`) or an expression giving a `String` (`format!(\"z_{i}\")`)",
            ));
        }
        if positional.len() == 1 {
            return Err(syn::Error::new_spanned(
                &positional[0],
                format!("missing site name: `{}!` takes the site name first; usage: {}", mac.name(), mac.usage()),
            ));
        }
    }
    if positional.len() == 1 {
        return Err(syn::Error::new_spanned(
            &positional[0],
            format!("missing {} after the site name; usage: {}", mac.second(), mac.usage()),
        ));
    }
    if mac == SiteMacro::Plate && positional.len() == 2 {
        let what = if matches!(positional[1], Expr::Closure(_)) {
            "missing plate size before the body closure"
        } else {
            "missing body closure after the plate size"
        };
        return Err(syn::Error::new_spanned(&positional[1], format!("{what}; usage: {}", mac.usage())));
    }
    if positional.len() > max_positional {
        let extra = &positional[max_positional];
        return Err(syn::Error::new_spanned(
            extra,
            format!(
                "unexpected argument: `{}!` takes the name and the {}{}; usage: {}",
                mac.name(),
                mac.second(),
                if mac.keywords().is_empty() { "" } else { ", then keyword arguments" },
                mac.usage()
            ),
        ));
    }
    let mut positional = positional.into_iter();
    let name_expr = positional.next().expect("checked above");
    let name = match string_literal(&name_expr) {
        Some(l) if l.value().is_empty() => return Err(syn::Error::new(l.span(), "a site name must not be empty")),
        Some(l) => SiteName::Literal(l.clone()),
        None => SiteName::Dynamic(name_expr),
    };
    let arg = positional.next().expect("checked above");
    let body = positional.next();
    if let Some(b) = body.as_ref().filter(|b| !matches!(b, Expr::Closure(_))) {
        return Err(syn::Error::new_spanned(b, "the last argument of `plate!` must be the body closure `|idx| { ... }`"));
    }
    let call = SiteCall { mac, span, name, arg, body, kwargs };
    validate_values(&call)?;
    Ok(call)
}

/// Checks keyword values whose form the macro decides (e.g. `enumerate = parallel`).
fn validate_values(call: &SiteCall) -> syn::Result<()> {
    if let Some(KwArg { value: Some(v), .. }) = call.kw("enumerate") {
        enumerate_variant(v)?;
    }
    if let (Some(_), Some(d)) = (call.kw("sequential"), call.kw("dim")) {
        return Err(syn::Error::new(d.key.span(), "a `sequential` plate has no tensor `dim`"));
    }
    Ok(())
}

/// `Parallel` or `Sequential` for the value of `enumerate = ..`.
pub fn enumerate_variant(v: &Expr) -> syn::Result<Ident> {
    let word = match (bare_ident(v), string_literal(v)) {
        (Some(id), _) => Some((id.to_string(), id.span())),
        (_, Some(s)) => Some((s.value(), s.span())),
        _ => None,
    };
    match word {
        Some((w, sp)) if w == "parallel" => Ok(Ident::new("Parallel", sp)),
        Some((w, sp)) if w == "sequential" => Ok(Ident::new("Sequential", sp)),
        _ => Err(syn::Error::new(v.span(), "expected `enumerate = parallel` or `enumerate = sequential`")),
    }
}

/// Parses a bracketed list of string literals: `["a", "b"]`.
pub fn parse_name_list(input: ParseStream) -> syn::Result<Vec<LitStr>> {
    let content;
    syn::bracketed!(content in input);
    let list: Punctuated<LitStr, Token![,]> = Punctuated::parse_terminated(&content)?;
    Ok(list.into_iter().collect())
}
