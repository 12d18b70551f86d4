//! The compile-time checks: duplicate literal sites within one function, and a guide against
//! the model it names (missing and extra sites, observed guide sites, sample-vs-param, plates),
//! with "did you mean" suggestions.

use crate::errors::Errors;
use crate::sites::{Kind, Site};
use crate::table::{Table, TableSite};
use syn::spanned::Spanned;

/// Optimal-string-alignment distance: edits, with a swap of two neighbours counting as one.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The candidate closest to `target`, if it is a plausible misspelling (rustc's rule: at most
/// one edit per three characters; a case-insensitive match always qualifies).
pub fn suggest<'a>(target: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let max = target.chars().count().max(3) / 3;
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        if c == target {
            continue;
        }
        let d = if c.eq_ignore_ascii_case(target) { 0 } else { edit_distance(target, c) };
        if d <= max && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map(|s| format!("; did you mean `{s}`?")).unwrap_or_default()
}

/// Reports a literal site name used twice in straight-line code of one function: an error at
/// the second name, and one at the first saying "first defined here".
pub fn duplicates(fn_name: &str, sites: &[Site], errors: &mut Errors) {
    for (j, b) in sites.iter().enumerate() {
        if b.repeated {
            continue;
        }
        let first = sites[..j]
            .iter()
            .find(|a| !a.repeated && a.name.value() == b.name.value() && !a.exclusive_with(b));
        if let Some(a) = first {
            let name = b.name.value();
            errors.error(
                b.name.span(),
                format!(
                    "duplicate site `{name}` in `{fn_name}`: a site name may be used once per run; \
                     rename one of them, or put the site in a loop or plate with a dynamic name (`format!(\"{name}_{{i}}\")`)"
                ),
            );
            errors.error(a.name.span(), format!("site `{name}` first defined here"));
        }
    }
}

fn plate_list(plates: &[syn::LitStr]) -> String {
    if plates.is_empty() {
        return "no plate".to_string();
    }
    let names: Vec<String> = plates.iter().map(|p| format!("`{}`", p.value())).collect();
    format!("plate{} {}", if names.len() > 1 { "s" } else { "" }, names.join(", "))
}

fn plate_set(plates: &[syn::LitStr]) -> Vec<String> {
    let mut v: Vec<String> = plates.iter().map(syn::LitStr::value).collect();
    v.sort();
    v.dedup();
    v
}

/// Compares a guide's table with its model's; every problem becomes an error in `errors`.
///
/// Rules (sites named in either `helper_sites` list are exempt):
/// 1. each latent `sample!` site of the model has a site of the same name in the guide
///    (unless it has `enumerate =`/`infer =`: enumerated sites need no guide site);
/// 2. each `sample!` site of the guide exists in the model (unless it has `infer =`, which
///    may mark an auxiliary variable);
/// 3. (checked while walking the guide) no guide site has `obs =`;
/// 4. a site is of the same kind (`sample!`/`param!`/...) in both;
/// 5. a guide `sample!` site is not observed in the model;
/// 6. a site lies in the same literal plates in both (when all its plates have literal names).
pub fn model_guide(model: &Table, guide: &Table, errors: &mut Errors) {
    let (m, g) = (model.name.to_string(), guide.name.to_string());
    let exempt = |name: &str| model.helpers.iter().chain(&guide.helpers).any(|h| h.value() == name);
    fn named<'t>(table: &'t Table, name: &str) -> impl Iterator<Item = &'t TableSite> + use<'t> {
        let name = name.to_string();
        table.sites.iter().filter(move |s| s.name.value() == name)
    }

    // Rule 1: model latents the guide lacks.
    let mut reported: Vec<String> = Vec::new();
    for s in &model.sites {
        let name = s.name.value();
        if s.kind != Kind::Sample || s.observed || s.infer || exempt(&name) || reported.contains(&name) {
            continue;
        }
        if named(guide, &name).next().is_none() {
            reported.push(name.clone());
            let candidates: Vec<String> = guide
                .sites
                .iter()
                .filter(|t| t.kind == Kind::Sample && named(model, &t.name.value()).next().is_none())
                .map(|t| t.name.value())
                .collect();
            let hint = did_you_mean(suggest(&name, candidates.iter().map(String::as_str)));
            let span = guide.path.as_ref().map_or(guide.name.span(), |p| p.span());
            errors.error(
                span,
                format!("guide `{g}` has no site `{name}`, a latent `sample!` site of model `{m}`{hint}"),
            );
        }
    }

    // Rules 2, 4, 5, 6: each guide site against the model.
    for s in &guide.sites {
        let name = s.name.value();
        if exempt(&name) || matches!(s.kind, Kind::Factor | Kind::Deterministic) {
            continue;
        }
        let model_sites: Vec<&TableSite> = named(model, &name).collect();
        if model_sites.is_empty() {
            if s.kind == Kind::Sample && !s.infer {
                let candidates: Vec<String> = model
                    .sites
                    .iter()
                    .filter(|t| t.kind == Kind::Sample && named(guide, &t.name.value()).next().is_none())
                    .map(|t| t.name.value())
                    .collect();
                let hint = did_you_mean(suggest(&name, candidates.iter().map(String::as_str)));
                errors.error(
                    s.name.span(),
                    format!("guide `{g}` samples site `{name}`, which model `{m}` does not have{hint}"),
                );
            }
            continue;
        }
        if let Some(other) = model_sites.iter().find(|t| t.kind != s.kind) {
            errors.error(
                s.name.span(),
                format!(
                    "site `{name}` is a `{}!` site in guide `{g}` but a `{}!` site in model `{m}`",
                    s.kind.word(),
                    other.kind.word()
                ),
            );
            continue;
        }
        if s.kind != Kind::Sample {
            continue;
        }
        if model_sites.iter().all(|t| t.observed) {
            errors.error(
                s.name.span(),
                format!("site `{name}` is observed in model `{m}`, so guide `{g}` must not sample it"),
            );
            continue;
        }
        if s.plates_known {
            let mine = plate_set(&s.plates);
            if let Some(t) = model_sites.iter().find(|t| t.plates_known && plate_set(&t.plates) != mine) {
                errors.error(
                    s.name.span(),
                    format!(
                        "site `{name}` lies in {} in model `{m}` but in {} in guide `{g}`; \
                         a site must lie in the same plates in both",
                        plate_list(&t.plates),
                        plate_list(&s.plates)
                    ),
                );
            }
        }
    }
}
