//! Loaders for the small real data sets shipped in the repository's `data/` folder (see
//! `data/README.md` for their sources and licences), and for the full MNIST files a user has.
//!
//! Everything is read from disk: nothing is downloaded. Errors name the file and what was wrong.
//!
//! ```no_run
//! use ppl::datasets;
//! use ppl::candle_core::Device;
//! let mnist = datasets::Mnist::load(datasets::data_dir().join("mnist"), &Device::Cpu)?;
//! assert_eq!(mnist.train_images.dims()[1], 784);
//! let bc = datasets::breast_cancer(&Device::Cpu)?;
//! assert_eq!(bc.x.dims(), &[569, 30]);
//! # Ok::<(), ppl::Error>(())
//! ```

use crate::Error;
use candle_core::{Device, Tensor};
use std::io::Read;
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, Error>;

/// The `data/` folder of the ppl repository (where the examples' data sets live).
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data")
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), source }
}

fn bad(path: &Path, message: impl Into<String>) -> Error {
    Error::invalid_arg(format!("reading `{}`", path.display()), "file", message)
}

/// Reads a file, decompressing it when its name ends in `.gz`.
fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| io_err(path, e))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(raw.as_slice()).read_to_end(&mut out).map_err(|e| io_err(path, e))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

/// Finds `stem` or `stem.gz` in `dir` (MNIST files come both ways).
fn find(dir: &Path, stem: &str) -> Result<PathBuf> {
    for name in [stem.to_string(), format!("{stem}.gz")] {
        let p = dir.join(&name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(io_err(
        &dir.join(stem),
        std::io::Error::new(std::io::ErrorKind::NotFound, format!("no `{stem}` or `{stem}.gz` in this directory")),
    ))
}

/// An IDX file (the MNIST format): its dims and its u8 payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Idx {
    /// The dims from the header, e.g. `[60000, 28, 28]`.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes (type code 0x08), gzipped or not.
pub fn read_idx(path: impl AsRef<Path>) -> Result<Idx> {
    let path = path.as_ref();
    let bytes = read_maybe_gz(path)?;
    if bytes.len() < 4 || bytes[0] != 0 || bytes[1] != 0 {
        return Err(bad(path, "not an IDX file (the magic number must start with two zero bytes)"));
    }
    if bytes[2] != 0x08 {
        return Err(bad(path, format!("IDX type code 0x{:02x} is not supported (only unsigned bytes, 0x08)", bytes[2])));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if bytes.len() < header {
        return Err(bad(path, format!("truncated header: {rank} dims need {header} bytes, the file has {}", bytes.len())));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    let n: usize = dims.iter().product();
    if bytes.len() - header != n {
        return Err(bad(path, format!("the header promises {n} values ({dims:?}) but the file holds {}", bytes.len() - header)));
    }
    Ok(Idx { dims, data: bytes[header..].to_vec() })
}

/// MNIST digits: images flattened to 784 grey levels in `[0, 1]` (f32), labels as u32.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// `[n_train, 784]`, f32 in `[0, 1]`.
    pub train_images: Tensor,
    /// `[n_train]`, u32 in `0..10`.
    pub train_labels: Tensor,
    /// `[n_test, 784]`, f32 in `[0, 1]`.
    pub test_images: Tensor,
    /// `[n_test]`, u32 in `0..10`.
    pub test_labels: Tensor,
}

impl Mnist {
    /// Reads `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
    /// `t10k-labels-idx1-ubyte` (each optionally `.gz`) from `dir`: the shipped 10,000 digits in
    /// `data/mnist`, or the full MNIST files a user downloaded.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Mnist> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(io_err(dir, std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory")));
        }
        let (train_images, train_labels) = Self::split(dir, "train", device)?;
        let (test_images, test_labels) = Self::split(dir, "t10k", device)?;
        Ok(Mnist { train_images, train_labels, test_images, test_labels })
    }

    fn split(dir: &Path, prefix: &str, device: &Device) -> Result<(Tensor, Tensor)> {
        let ipath = find(dir, &format!("{prefix}-images-idx3-ubyte"))?;
        let lpath = find(dir, &format!("{prefix}-labels-idx1-ubyte"))?;
        let images = read_idx(&ipath)?;
        let labels = read_idx(&lpath)?;
        if images.dims.len() != 3 {
            return Err(bad(&ipath, format!("expected 3 dims [n, rows, cols], got {:?}", images.dims)));
        }
        if labels.dims.len() != 1 || labels.dims[0] != images.dims[0] {
            return Err(bad(&lpath, format!("expected [{}] labels to match the images, got {:?}", images.dims[0], labels.dims)));
        }
        if let Some(&l) = labels.data.iter().find(|&&l| l > 9) {
            return Err(bad(&lpath, format!("label {l} is not a digit")));
        }
        let (n, pixels) = (images.dims[0], images.dims[1] * images.dims[2]);
        let x: Vec<f32> = images.data.iter().map(|&v| v as f32 / 255.0).collect();
        let y: Vec<u32> = labels.data.iter().map(|&v| v as u32).collect();
        Ok((Tensor::from_vec(x, (n, pixels), device)?, Tensor::from_vec(y, n, device)?))
    }
}

/// A regression or classification table: features `x` `[n, d]` (f32), targets `y` `[n]`.
#[derive(Debug, Clone)]
pub struct Table {
    /// Features, `[n, d]`, f32, as stored (not standardized).
    pub x: Tensor,
    /// Targets, `[n]`, f32 (0/1 labels for classification).
    pub y: Tensor,
    /// Feature names.
    pub feature_names: Vec<String>,
}

fn parse_rows(path: &Path, text: &str, sep: Option<char>) -> Result<Vec<Vec<f32>>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let fields: Vec<&str> = match sep {
                Some(c) => line.split(c).collect(),
                None => line.split_whitespace().collect(),
            };
            fields
                .iter()
                .map(|f| {
                    f.trim().parse::<f32>().map_err(|_| bad(path, format!("line {}: `{}` is not a number", i + 1, f.trim())))
                })
                .collect()
        })
        .collect()
}

/// The Wisconsin diagnostic breast cancer data (569 × 30; label 1 = benign, 0 = malignant), from
/// `data/breast_cancer.csv`.
pub fn breast_cancer(device: &Device) -> Result<Table> {
    breast_cancer_from(data_dir().join("breast_cancer.csv"), device)
}

/// [`breast_cancer`] from another copy of scikit-learn's `breast_cancer.csv`.
pub fn breast_cancer_from(path: impl AsRef<Path>, device: &Device) -> Result<Table> {
    let path = path.as_ref();
    let text = String::from_utf8(read_maybe_gz(path)?).map_err(|_| bad(path, "not UTF-8 text"))?;
    let (header, body) = text.split_once('\n').ok_or_else(|| bad(path, "empty file"))?;
    let counts: Vec<&str> = header.split(',').collect();
    let (n, d) = match (counts.first().map(|s| s.trim().parse::<usize>()), counts.get(1).map(|s| s.trim().parse::<usize>())) {
        (Some(Ok(n)), Some(Ok(d))) => (n, d),
        _ => return Err(bad(path, format!("first line must be `n_samples,n_features,...`, got `{header}`"))),
    };
    let rows = parse_rows(path, body, Some(','))?;
    if rows.len() != n || rows.iter().any(|r| r.len() != d + 1) {
        return Err(bad(path, format!("expected {n} rows of {} fields", d + 1)));
    }
    let x: Vec<f32> = rows.iter().flat_map(|r| r[..d].iter().copied()).collect();
    let y: Vec<f32> = rows.iter().map(|r| r[d]).collect();
    let feature_names = BREAST_CANCER_FEATURES.iter().map(|s| s.to_string()).collect();
    Ok(Table { x: Tensor::from_vec(x, (n, d), device)?, y: Tensor::from_vec(y, n, device)?, feature_names })
}

/// The diabetes data of Efron et al. (2004): 442 patients × 10 raw baseline variables and the
/// disease progression one year later, from `data/diabetes_{data_raw,target}.csv.gz`.
pub fn diabetes(device: &Device) -> Result<Table> {
    let dpath = data_dir().join("diabetes_data_raw.csv.gz");
    let tpath = data_dir().join("diabetes_target.csv.gz");
    let text = |p: &Path| String::from_utf8(read_maybe_gz(p)?).map_err(|_| bad(p, "not UTF-8 text"));
    let rows = parse_rows(&dpath, &text(&dpath)?, None)?;
    let target = parse_rows(&tpath, &text(&tpath)?, None)?;
    let d = DIABETES_FEATURES.len();
    if let Some(i) = rows.iter().position(|r| r.len() != d) {
        return Err(bad(&dpath, format!("row {} has {} fields, expected {d}", i + 1, rows[i].len())));
    }
    if target.len() != rows.len() || target.iter().any(|r| r.len() != 1) {
        return Err(bad(&tpath, format!("expected {} single-value rows", rows.len())));
    }
    let n = rows.len();
    let x: Vec<f32> = rows.into_iter().flatten().collect();
    let y: Vec<f32> = target.into_iter().flatten().collect();
    let feature_names = DIABETES_FEATURES.iter().map(|s| s.to_string()).collect();
    Ok(Table { x: Tensor::from_vec(x, (n, d), device)?, y: Tensor::from_vec(y, n, device)?, feature_names })
}

/// Splits the rows of `t` (dim 0) into a training part and a held-out part: every `every`-th row
/// (rows 0, `every`, 2·`every`, ...) is held out. Deterministic, so every method an example compares
/// sees the same split. Returns `(train, held_out)`.
pub fn holdout_every(t: &Tensor, every: usize) -> Result<(Tensor, Tensor)> {
    if every == 0 {
        return Err(Error::invalid_arg("datasets::holdout_every", "every", "must be at least 1"));
    }
    let rows = |held: bool| -> Result<Tensor> {
        let idx: Vec<u32> = (0..t.dim(0)? as u32).filter(|i| (i % every as u32 == 0) == held).collect();
        let n = idx.len();
        Ok(t.index_select(&Tensor::from_vec(idx, n, t.device())?, 0)?)
    };
    Ok((rows(false)?, rows(true)?))
}

/// Standardizes the columns of `x` (`[n, d]`) to mean 0 and standard deviation 1 using the
/// statistics of `x` itself; returns the standardized tensor with the means and sds (`[d]` each),
/// so that held-out rows can be standardized the same way.
pub fn standardize(x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
    let mean = x.mean_keepdim(0)?;
    let centered = x.broadcast_sub(&mean)?;
    let sd = centered.sqr()?.mean_keepdim(0)?.sqrt()?;
    let sd = sd.maximum(1e-12)?;
    Ok((centered.broadcast_div(&sd)?, mean.squeeze(0)?, sd.squeeze(0)?))
}

const BREAST_CANCER_FEATURES: [&str; 30] = [
    "mean radius", "mean texture", "mean perimeter", "mean area", "mean smoothness", "mean compactness",
    "mean concavity", "mean concave points", "mean symmetry", "mean fractal dimension", "radius error",
    "texture error", "perimeter error", "area error", "smoothness error", "compactness error", "concavity error",
    "concave points error", "symmetry error", "fractal dimension error", "worst radius", "worst texture",
    "worst perimeter", "worst area", "worst smoothness", "worst compactness", "worst concavity",
    "worst concave points", "worst symmetry", "worst fractal dimension",
];

const DIABETES_FEATURES: [&str; 10] = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"];

/// Number of piano keys in a [`Chorale`]'s steps (MIDI pitches 21..=108).
pub const PIANO_KEYS: usize = 88;

/// The MIDI pitch of piano key 0 (A0).
pub const LOWEST_MIDI_PITCH: u8 = 21;

/// One of Bach's chorales as a piano roll: per step (a quarter note), the keys sounding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chorale {
    /// The music21 corpus file it came from (e.g. `bwv1.6`).
    pub name: String,
    /// Per step, the sounding keys in increasing order, as indices `0..88` (MIDI pitch − 21).
    pub steps: Vec<Vec<u8>>,
}

impl Chorale {
    /// The number of steps.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether the chorale has no steps (never true for the shipped data).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// J. S. Bach's four-part chorales as 88-key binary piano rolls at one step per quarter note (the
/// JSB Chorales preprocessing of Boulanger-Lewandowski et al., 2012), built from the music21
/// corpus by `tools/jsb_chorales.py`, with its fixed train / validation / test split (about
/// 60 / 20 / 20%). See `data/README.md`.
#[derive(Debug, Clone)]
pub struct JsbChorales {
    /// Training chorales.
    pub train: Vec<Chorale>,
    /// Validation chorales.
    pub valid: Vec<Chorale>,
    /// Test chorales.
    pub test: Vec<Chorale>,
}

impl JsbChorales {
    /// Reads the shipped `data/jsb_chorales.txt.gz`.
    pub fn load() -> Result<JsbChorales> {
        Self::load_from(data_dir().join("jsb_chorales.txt.gz"))
    }

    /// Reads a file in the format `tools/jsb_chorales.py` writes (gzipped or not): per line
    /// `split<TAB>name<TAB>steps`, the steps separated by spaces, each a `,`-joined list of MIDI
    /// pitches in 21..=108 or `-` for silence.
    pub fn load_from(path: impl AsRef<Path>) -> Result<JsbChorales> {
        let path = path.as_ref();
        let text = String::from_utf8(read_maybe_gz(path)?).map_err(|_| bad(path, "not UTF-8 text"))?;
        let mut out = JsbChorales { train: Vec::new(), valid: Vec::new(), test: Vec::new() };
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let at = |m: String| bad(path, format!("line {}: {m}", i + 1));
            let mut fields = line.split('\t');
            let (Some(split), Some(name), Some(steps), None) = (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(at("expected three tab-separated fields `split`, `name`, `steps`".into()));
            };
            let steps = steps
                .split(' ')
                .map(|s| {
                    if s == "-" {
                        return Ok(Vec::new());
                    }
                    let mut keys = s
                        .split(',')
                        .map(|p| match p.parse::<u8>() {
                            Ok(p) if (LOWEST_MIDI_PITCH..LOWEST_MIDI_PITCH + PIANO_KEYS as u8).contains(&p) => {
                                Ok(p - LOWEST_MIDI_PITCH)
                            }
                            _ => Err(at(format!("`{p}` is not a MIDI pitch in 21..=108"))),
                        })
                        .collect::<Result<Vec<u8>>>()?;
                    keys.sort_unstable();
                    keys.dedup();
                    Ok(keys)
                })
                .collect::<Result<Vec<_>>>()?;
            if steps.is_empty() {
                return Err(at("a chorale with no steps".into()));
            }
            let chorale = Chorale { name: name.to_string(), steps };
            match split {
                "train" => out.train.push(chorale),
                "valid" => out.valid.push(chorale),
                "test" => out.test.push(chorale),
                s => return Err(at(format!("split `{s}` is not train, valid or test"))),
            }
        }
        Ok(out)
    }
}

/// A mini-batch of sequences of unequal lengths, padded with zeros at the end to the longest.
#[derive(Debug, Clone)]
pub struct SequenceBatch {
    /// `[B, T_max, 88]` f32 piano rolls (1 = key sounding), zero after each sequence's end.
    pub x: Tensor,
    /// `[B, T_max, 88]`: each sequence reversed within its own length (`x_rev[b, t] = x[b, len_b − 1 − t]`
    /// for `t < len_b`), zero padding still at the end — the input of a backwards RNN.
    pub x_reversed: Tensor,
    /// `[B, T_max]` u8: 1 for the steps of each sequence, 0 for padding (a site mask).
    pub mask: Tensor,
    /// The sequences' lengths.
    pub lengths: Vec<usize>,
}

impl SequenceBatch {
    /// The padded piano rolls of `chorales` (at least one) on `device`.
    pub fn new(chorales: &[&Chorale], device: &Device) -> Result<SequenceBatch> {
        if chorales.is_empty() {
            return Err(Error::invalid_arg("SequenceBatch::new", "chorales", "needs at least one sequence"));
        }
        let lengths: Vec<usize> = chorales.iter().map(|c| c.len()).collect();
        let (b, t_max) = (chorales.len(), lengths.iter().copied().max().unwrap_or(0));
        let mut x = vec![0f32; b * t_max * PIANO_KEYS];
        let mut x_rev = vec![0f32; b * t_max * PIANO_KEYS];
        let mut mask = vec![0u8; b * t_max];
        for (i, c) in chorales.iter().enumerate() {
            let len = c.len();
            for (t, keys) in c.steps.iter().enumerate() {
                mask[i * t_max + t] = 1;
                for &k in keys {
                    if k as usize >= PIANO_KEYS {
                        return Err(Error::invalid_arg(
                            "SequenceBatch::new",
                            "chorales",
                            format!("`{}` step {t}: key {k} is not below {PIANO_KEYS}", c.name),
                        ));
                    }
                    x[(i * t_max + t) * PIANO_KEYS + k as usize] = 1.0;
                    x_rev[(i * t_max + len - 1 - t) * PIANO_KEYS + k as usize] = 1.0;
                }
            }
        }
        Ok(SequenceBatch {
            x: Tensor::from_vec(x, (b, t_max, PIANO_KEYS), device)?,
            x_reversed: Tensor::from_vec(x_rev, (b, t_max, PIANO_KEYS), device)?,
            mask: Tensor::from_vec(mask, (b, t_max), device)?,
            lengths,
        })
    }

    /// The number of sequences.
    pub fn batch_size(&self) -> usize {
        self.lengths.len()
    }

    /// The padded length `T_max`.
    pub fn max_len(&self) -> usize {
        self.lengths.iter().copied().max().unwrap_or(0)
    }
}
