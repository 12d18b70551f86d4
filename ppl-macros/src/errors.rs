//! Collecting every diagnostic of one macro invocation, so that a single build reports them all.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use std::fmt::Display;

/// An accumulator of `syn::Error`s, combined into one in the order they were found.
#[derive(Default)]
pub struct Errors {
    errors: Option<syn::Error>,
}

impl Errors {
    /// An empty accumulator.
    pub fn new() -> Self {
        Errors::default()
    }

    /// Records an error.
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(e) => e.combine(error),
            None => self.errors = Some(error),
        }
    }

    /// Records an error with `message` at `span`.
    pub fn error(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Records an error spanning the tokens of `tokens`.
    pub fn error_spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// The recorded errors as `compile_error!` items (empty when there are none).
    pub fn to_compile_errors(&self) -> TokenStream {
        self.errors.as_ref().map(syn::Error::to_compile_error).unwrap_or_default()
    }

    /// The recorded errors, if any.
    pub fn into_error(self) -> Option<syn::Error> {
        self.errors
    }
}

/// `error` as an *expression*: every message becomes a `compile_error!`, the last one in tail
/// position, so the expression has the error type and causes no secondary type errors.
pub fn error_expr(error: syn::Error) -> TokenStream {
    let mut parts: Vec<TokenStream> = error.into_iter().map(|e| e.to_compile_error()).collect();
    let last = parts.pop().unwrap_or_default();
    quote::quote! { { #( #parts; )* #last } }
}
