//! The error type of ppl: every user mistake becomes a value that names the site, the
//! distribution or the argument, and what was expected.

use std::fmt;

/// Result alias used throughout ppl.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a site was written in the user's source, as recorded by the `#[model]`/`#[guide]` macros.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// Source file, as `file!()` prints it.
    pub file: &'static str,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// Every error ppl returns.
///
/// Messages are lowercase without a final period; code is in backticks.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error raised by Candle itself (boxed: it is large, and errors travel in every `Result`).
    /// The message leaves out the backtrace Candle captures under `RUST_BACKTRACE=1`; the
    /// Candle error, backtrace included, is this error's `source()`.
    #[error("{}", candle_message(.0))]
    Candle(#[source] Box<candle_core::Error>),

    /// An error that happened at a named site; wraps the underlying error.
    #[error("site `{site}`{}: {source}", location.map(|l| format!(" ({l})")).unwrap_or_default())]
    AtSite {
        /// The site's name.
        site: String,
        /// Where the site was written, when the macros recorded it.
        location: Option<Location>,
        /// What went wrong.
        source: Box<Error>,
    },

    /// Two shapes that had to agree did not.
    #[error("{context}: shape mismatch: expected {expected}, got {got}{}", hint_suffix(hint))]
    ShapeMismatch {
        /// What was being checked (distribution and argument, site, handler...).
        context: String,
        /// The expected shape, e.g. `[3, 4]`.
        expected: String,
        /// The shape that was found.
        got: String,
        /// An optional hint at the fix.
        hint: Option<String>,
    },

    /// A distribution parameter violates its constraint.
    #[error("`{dist}`: argument `{arg}` must satisfy constraint `{constraint}`, but {detail}")]
    InvalidParameter {
        /// Distribution name, e.g. `Normal`.
        dist: &'static str,
        /// Argument name, e.g. `scale`.
        arg: &'static str,
        /// The constraint, e.g. `positive`.
        constraint: String,
        /// What was found, e.g. `element 2 is -1`.
        detail: String,
    },

    /// A value passed to `log_prob` (or observed) lies outside the distribution's support.
    #[error("`{dist}`: value outside the support `{support}`: {detail}")]
    OutOfSupport {
        /// Distribution name.
        dist: &'static str,
        /// The support, e.g. `unit_interval`.
        support: String,
        /// What was found.
        detail: String,
    },

    /// Tensors of different dtypes met where one dtype was needed.
    #[error("{context}: mixed dtypes: `{a}` is {a_dtype:?} but `{b}` is {b_dtype:?}; convert one with `to_dtype`")]
    DTypeMismatch {
        /// What was being built.
        context: String,
        /// First argument.
        a: String,
        /// Its dtype.
        a_dtype: candle_core::DType,
        /// Second argument.
        b: String,
        /// Its dtype.
        b_dtype: candle_core::DType,
    },

    /// Tensors on different devices met.
    #[error("{context}: tensors on different devices: {a} but {b}")]
    DeviceMismatch {
        /// What was being built.
        context: String,
        /// First argument and its device, e.g. ``"`loc` is on Cpu"``.
        a: String,
        /// Second argument and its device.
        b: String,
    },

    /// A method with no closed form (or not implemented) for a distribution.
    #[error("`{dist}` has no `{method}`{}", hint_suffix(hint))]
    Unsupported {
        /// Distribution (or transform) name.
        dist: &'static str,
        /// The method, e.g. `rsample` or `entropy`.
        method: &'static str,
        /// An optional hint.
        hint: Option<String>,
    },

    /// A bad argument to a ppl function.
    #[error("{context}: invalid argument `{arg}`: {message}")]
    InvalidArgument {
        /// The function, handler or distribution.
        context: String,
        /// The argument's name.
        arg: String,
        /// What was expected and what was found.
        message: String,
    },

    /// A `param` site ran with no `ParamStore` installed.
    #[error("no parameter store is installed; run the model inside `ParamStore::scope` (SVI does this for you)")]
    NoParamStore,

    /// The same site name was used twice in one trace.
    #[error("duplicate site name; each `sample`/`param` name must be unique within one run{}", hint_suffix(hint))]
    DuplicateSite {
        /// An optional hint.
        hint: Option<String>,
    },

    /// Plates that cannot be combined.
    #[error("plate `{plate}`: {message}")]
    Plate {
        /// The plate's name.
        plate: String,
        /// What was wrong.
        message: String,
    },

    /// A log density that is NaN or infinite. Recoverable: NUTS records it as a divergence.
    #[error("non-finite log density{}", site.as_ref().map(|s| format!(" at site `{s}`")).unwrap_or_default())]
    NonFiniteLogDensity {
        /// The site, when known.
        site: Option<String>,
    },

    /// A model and guide that do not fit each other.
    #[error("model/guide mismatch: {0}")]
    ModelGuideMismatch(String),

    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },

    /// A safetensors file that cannot be read or written.
    #[error("safetensors `{path}`: {message}")]
    Safetensors {
        /// The file.
        path: String,
        /// What was wrong.
        message: String,
    },

    /// An SVI step met a non-finite loss or gradient; nothing was updated. Wrapped in
    /// [`Error::AtSite`] naming the first site whose value, log-density or parameter went non-finite.
    #[error("svi step {step}: {detail}; no parameter was updated")]
    NonFiniteStep {
        /// The 1-based step number.
        step: u64,
        /// What went non-finite, and where.
        detail: String,
    },

    /// Discrete enumeration (`TraceEnumElbo`, enumerated NUTS, `infer_discrete`) cannot treat a
    /// site or a model as asked; the text says why and what to change.
    #[error("enumeration: {0}")]
    Enumeration(String),
}

impl From<candle_core::Error> for Error {
    fn from(e: candle_core::Error) -> Self {
        Error::Candle(Box::new(e))
    }
}

/// Candle's message without the backtraces it may carry.
fn candle_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_message(inner),
        candle_core::Error::Context { inner, context } => format!("{context}: {}", candle_message(inner)),
        candle_core::Error::WithPath { inner, path } => format!("{}: {}", path.display(), candle_message(inner)),
        e => e.to_string(),
    }
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!("; hint: {h}")).unwrap_or_default()
}

impl Error {
    /// Attaches a site name (and source location) to an error, unless it already names a site.
    pub fn at_site(self, site: &str, location: Option<Location>) -> Error {
        match self {
            e @ Error::AtSite { .. } => e,
            e => Error::AtSite { site: site.to_string(), location, source: Box::new(e) },
        }
    }

    /// The innermost error, looking through [`Error::AtSite`] wrappers.
    pub fn root(&self) -> &Error {
        match self {
            Error::AtSite { source, .. } => source.root(),
            e => e,
        }
    }

    /// Whether this is a recoverable non-finite log density (a divergence for NUTS).
    pub fn is_non_finite(&self) -> bool {
        matches!(self.root(), Error::NonFiniteLogDensity { .. })
    }

    /// Shorthand for [`Error::InvalidArgument`].
    pub fn invalid_arg(context: impl Into<String>, arg: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidArgument { context: context.into(), arg: arg.into(), message: message.into() }
    }

    /// Shorthand for [`Error::ShapeMismatch`] from two shapes.
    pub fn shape_mismatch(context: impl Into<String>, expected: &[usize], got: &[usize]) -> Error {
        Error::ShapeMismatch {
            context: context.into(),
            expected: format!("{expected:?}"),
            got: format!("{got:?}"),
            hint: None,
        }
    }
}

/// Returns early with an [`Error::InvalidArgument`]: `bail!(context, arg, "message {}", x)`.
#[macro_export]
macro_rules! bail {
    ($context:expr, $arg:expr, $($fmt:tt)+) => {
        return Err($crate::Error::invalid_arg($context, $arg, format!($($fmt)+)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every model returns `Result<_, Error>`: keep the error small enough that clippy's
    /// `result_large_err` (128 bytes) does not fire on user code.
    #[test]
    fn error_is_smaller_than_clippys_large_err_threshold() {
        assert!(std::mem::size_of::<Error>() < 128, "size {}", std::mem::size_of::<Error>());
    }

    /// Candle captures a backtrace in its errors under `RUST_BACKTRACE=1`; ppl's message must
    /// not embed it, and the source chain must still reach it.
    #[test]
    fn candle_backtraces_stay_out_of_the_message_but_in_the_source() {
        use std::error::Error as _;
        let inner = candle_core::Error::Msg("boom".into());
        let bt = candle_core::Error::WithBacktrace {
            inner: Box::new(inner),
            backtrace: Box::new(std::backtrace::Backtrace::force_capture()),
        };
        let full = bt.to_string();
        assert!(full.len() > 100, "a captured backtrace is long: {full}");
        let e = Error::from(bt).at_site("z", None);
        assert_eq!(e.to_string(), "site `z`: boom");
        let source = e.source().and_then(|s| s.source()).expect("the Candle error is the source");
        assert_eq!(source.to_string(), full);
    }

    #[test]
    fn at_site_names_the_site_and_location_once() {
        let loc = Location { file: "src/main.rs", line: 42, column: 9 };
        let e = Error::NoParamStore.at_site("z", Some(loc)).at_site("outer", None);
        let msg = e.to_string();
        assert!(msg.starts_with("site `z` (src/main.rs:42:9): no parameter store"), "{msg}");
        assert!(matches!(e.root(), Error::NoParamStore));
    }
}
