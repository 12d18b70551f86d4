//! Amortized latent Dirichlet allocation: Pyro's `examples/lda.py` (Srivastava & Sutton 2017,
//! "Autoencoding Variational Inference for Topic Models") on a synthetic corpus.
//!
//! Model (Pyro's): topic weights `α_k ~ Gamma(1/K, 1)` and topic-word distributions
//! `φ_k ~ Dirichlet(1/V, ..., 1/V)` are global, in a plate of `K` topics; each document `d` (a
//! plate of `D`, subsampled `B` at a time) has topic proportions `θ_d ~ Dirichlet(α)`, and each of
//! its words (a plate of `N` nested inside) a topic `z ~ Categorical(θ_d)` and a word id
//! `w ~ Categorical(φ_z)`. For inference `z` is summed out: `w ~ Categorical(θ_d · φ)`, which is
//! what Pyro's `TraceEnum_ELBO` computes from the enumerated `z`.
//!
//! Guide (Pyro's): a conjugate-form guide for the globals, `α_k ~ Gamma(a_k, 1)` and
//! `φ_k ~ Dirichlet(b_k)` with `b > 0.5`, and an MLP encoder (`ppl::nn::Mlp`, sigmoid layers, then
//! a softmax) that maps each document's word counts to its `θ_d` (a point mass): one network
//! amortizes all `D` per-document posteriors. Trace ELBO, ClippedAdam.
//!
//! The corpus is drawn from the model itself with a fixed seed, as Pyro's example does, so the
//! true topics are known: the output puts each learned topic's most probable words next to those
//! of the true topic it matches best. Then the same SVI step is timed with the document plate
//! vectorized (one site per variable, documents along a tensor dim) and sequential (a
//! `seq_plate_iter` loop with one site per document).
//!
//! Run: `cargo run --release --example lda` (about a minute on 2 cores).

use clap::Parser;
use ppl::dist::{Categorical, Dirichlet, Gamma};
use ppl::infer::GuideDelta;
use ppl::nn::{Activation, Mlp};
use ppl::prelude::*;
use ppl::{PlateOptions, SeqPlateIndex};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Amortized LDA by SVI on a synthetic corpus; vectorized vs sequential document plate.
#[derive(Parser, Debug, Clone)]
#[command(name = "lda", about = "Amortized LDA (Pyro's lda.py) on a synthetic corpus, and the speed-up of a vectorized plate")]
pub struct Args {
    /// Topics.
    #[arg(long, default_value_t = 8)]
    pub num_topics: usize,
    /// Vocabulary size.
    #[arg(long, default_value_t = 1024)]
    pub num_words: usize,
    /// Documents in the corpus.
    #[arg(long, default_value_t = 1000)]
    pub num_docs: usize,
    /// Words per document.
    #[arg(long, default_value_t = 64)]
    pub num_words_per_doc: usize,
    /// SVI steps.
    #[arg(long, default_value_t = 1000)]
    pub num_steps: usize,
    /// Hidden layer sizes of the encoder, e.g. `100-100`.
    #[arg(long, default_value = "100-100")]
    pub layer_sizes: String,
    /// ClippedAdam learning rate (Pyro's example: 0.01, which leaves the second topic mixed
    /// with the first after 1000 steps here).
    #[arg(long, default_value_t = 0.05)]
    pub learning_rate: f64,
    /// Documents per SVI step (the document plate's subsample size).
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// SVI steps timed for each plate variant.
    #[arg(long, default_value_t = 30)]
    pub timing_steps: usize,
    /// Random seed (corpus, initialisation and SVI).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Tiny settings for a quick check.
    #[arg(long)]
    pub smoke: bool,
}

/// The sizes of the corpus and the data the model and guide see.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Topics `K`.
    pub topics: usize,
    /// Vocabulary size `V`.
    pub vocab: usize,
    /// Documents `D`.
    pub docs: usize,
    /// Words per document `N`.
    pub words_per_doc: usize,
    /// Documents per step `B`.
    pub batch: usize,
    /// Word ids, `[N, D]` (U32), as Pyro lays them out; `None` to draw a corpus from the model.
    pub words: Option<Tensor>,
    /// The same, `[D, N]`, for the sequential plate.
    pub words_t: Option<Tensor>,
    /// Word counts per document, `[D, V]` (F32): what the encoder reads.
    pub counts: Option<Tensor>,
}

impl Corpus {
    fn data(&self) -> Result<(&Tensor, &Tensor, &Tensor)> {
        match (&self.words, &self.words_t, &self.counts) {
            (Some(w), Some(wt), Some(c)) => Ok((w, wt, c)),
            _ => Err(Error::invalid_arg("lda", "corpus", "the model needs data to condition on")),
        }
    }
}

/// One learned topic beside the true topic it matched.
#[derive(Debug, Clone)]
pub struct TopicMatch {
    /// Index of the true topic.
    pub true_topic: usize,
    /// Index of the learned topic.
    pub learned_topic: usize,
    /// Share of the corpus's words the true topic generated.
    pub share: f64,
    /// The true topic's most probable word ids.
    pub true_top: Vec<usize>,
    /// The learned topic's most probable word ids.
    pub learned_top: Vec<usize>,
    /// Cosine similarity of the two word distributions.
    pub cosine: f64,
}

/// What one run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// The loss (-ELBO, nats) of every step.
    pub losses: Vec<f64>,
    /// Wall time of drawing the corpus from the model.
    pub corpus_time: Duration,
    /// Wall time of the fit.
    pub fit_time: Duration,
    /// Topics, true ones by decreasing share.
    pub topics: Vec<TopicMatch>,
    /// Median seconds per SVI step with the vectorized and with the sequential document plate.
    pub step_vectorized: f64,
    /// See `step_vectorized`.
    pub step_sequential: f64,
    /// Steps timed per variant.
    pub timing_steps: usize,
    /// Documents per step.
    pub batch: usize,
}

impl Report {
    /// Mean loss over the first and the last tenth of the steps.
    pub fn loss_first_last(&self) -> (f64, f64) {
        let n = self.losses.len();
        let tenth = (n / 10).max(1);
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len() as f64;
        (mean(&self.losses[..tenth]), mean(&self.losses[n - tenth..]))
    }
}

fn positive() -> ParamOptions {
    ParamOptions { constraint: Constraint::Positive, ..Default::default() }
}

fn batch_plate(c: &Corpus) -> PlateOptions {
    PlateOptions { subsample_size: Some(c.batch), ..Default::default() }
}

/// The global sites, shared by every variant of the model: `(α [K], φ [K, V])`.
fn globals(c: &Corpus) -> Result<(Tensor, Tensor)> {
    let dev = ppl::defaults::current().device;
    ppl::plate("topics", c.topics, |_| {
        let alpha = ppl::sample("topic_weights", Gamma::new(1.0 / c.topics as f64, 1.0)?)?;
        let prior = (Tensor::ones(c.vocab, DType::F32, &dev)? / c.vocab as f64)?;
        let phi = ppl::sample("topic_words", Dirichlet::new(&prior)?)?;
        Ok((alpha, phi))
    })
}

/// The model with a vectorized document plate, word topics summed out. `words` is `[N, D]`.
pub fn model(c: &Corpus) -> Result<()> {
    let (words, _, _) = c.data()?;
    let (alpha, phi) = globals(c)?;
    ppl::plate_with("documents", c.docs, batch_plate(c), |ind| {
        let theta = ppl::sample("doc_topics", Dirichlet::new(&alpha)?)?; // [B, K]
        let probs = theta.matmul(&phi)?; // [B, V]: p(w | θ_d) = Σ_k θ_dk φ_kw
        let obs = words.index_select(ind, 1)?; // [N, B]
        ppl::plate_with("words", c.words_per_doc, PlateOptions { dim: Some(-2), ..Default::default() }, |_| {
            ppl::observe("doc_words", Categorical::new(&probs)?, &obs)?;
            Ok(())
        })
    })
}

/// The same model with a sequential document plate: one `doc_topics_{d}` and `doc_words_{d}`
/// site per document. Without data it draws a corpus as Pyro's model does, with each word's
/// topic `word_topics_{d}` sampled explicitly.
pub fn model_seq(c: &Corpus) -> Result<()> {
    let (alpha, phi) = globals(c)?;
    let opts = if c.words.is_some() { batch_plate(c) } else { PlateOptions::default() };
    for item in ppl::seq_plate_iter_with("documents", c.docs, opts)? {
        let d = item.index();
        let theta = ppl::sample(format!("doc_topics_{d}"), Dirichlet::new(&alpha)?)?; // [K]
        ppl::plate("words", c.words_per_doc, |_| -> Result<()> {
            match &c.words_t {
                Some(words_t) => {
                    let probs = theta.unsqueeze(0)?.matmul(&phi)?.squeeze(0)?; // [V]
                    ppl::observe(format!("doc_words_{d}"), Categorical::new(&probs)?, &words_t.get(d)?)?;
                }
                None => {
                    let z = ppl::sample(format!("word_topics_{d}"), Categorical::new(&theta)?)?; // [N]
                    ppl::sample(format!("doc_words_{d}"), Categorical::new(&phi.index_select(&z, 0)?)?)?;
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// The encoder: word counts `[B, V]` to topic proportions `[B, K]`. Pyro's predictor has sigmoid
/// layers and a softmax; its last sigmoid confines every `θ_dk` to `[1/(e+K-1), e/(e+K-1)]` (at
/// most 0.28 for 8 topics), so no document can be about one topic and the learned topics stay
/// mixtures of the true ones. Here the last layer's outputs go through `LOGIT_RANGE · tanh`
/// instead: documents can be almost entirely one topic, and no `θ_dk` underflows to 0 (where
/// the Dirichlet's log-density and its gradient would not be finite).
fn encoder(c: &Corpus, layer_sizes: &str) -> Result<Mlp> {
    let mut sizes = vec![c.vocab];
    for s in layer_sizes.split('-') {
        let n = s.trim().parse::<usize>().ok().filter(|&n| n > 0);
        sizes.push(n.ok_or_else(|| {
            Error::invalid_arg("lda", "--layer-sizes", format!("expected sizes like `100-100`, got `{layer_sizes}`"))
        })?);
    }
    sizes.push(c.topics);
    Ok(Mlp::new("predictor", &sizes)?.hidden_activation(Activation::Sigmoid).output_activation(Activation::Tanh))
}

/// Bound of the encoder's logits: `θ_dk ≥ e^(-2·5)/K`.
const LOGIT_RANGE: f64 = 5.0;

fn doc_topics(net: &Mlp, counts: &Tensor) -> Result<Tensor> {
    Ok(candle_nn::ops::softmax(&(net.forward(counts)? * LOGIT_RANGE)?, D::Minus1)?)
}

/// A point mass at `theta` (Pyro's `Delta(theta, event_dim=1)`) that declares its support, the
/// simplex, so that the model/guide checks accept it for the model's Dirichlet site.
fn point_on_simplex(theta: &Tensor) -> Result<GuideDelta> {
    let batch = &theta.dims()[..theta.rank() - 1];
    GuideDelta::new(theta, &Tensor::zeros(batch, theta.dtype(), theta.device())?, 1, Constraint::Simplex)
}

/// The guide's global sites: `α_k ~ Gamma(a_k, 1)`, `φ_k ~ Dirichlet(b_k)`.
fn guide_globals(c: &Corpus) -> Result<()> {
    let dev = ppl::defaults::current().device;
    let a = ppl::param_with("topic_weights_posterior", Tensor::ones(c.topics, DType::F32, &dev)?, positive())?;
    // Pyro starts every topic at ones; seeded noise, U(0.55, 1.55), breaks the symmetry between
    // topics (and stays clear of the constraint's boundary 0.5, where the unconstrained value is -inf).
    let noise = || ppl::runtime::with_rng(|r| r.uniform_tensor(&[c.topics, c.vocab], DType::F32, &dev));
    let init = ppl::ParamInit::lazy(|| Ok((noise()? + 0.55)?));
    let b = ppl::param_with(
        "topic_words_posterior",
        init,
        ParamOptions { constraint: Constraint::GreaterThan(0.5), ..Default::default() },
    )?;
    ppl::plate("topics", c.topics, |_| {
        ppl::sample("topic_weights", Gamma::new(&a, 1.0)?)?;
        ppl::sample("topic_words", Dirichlet::new(&b)?)?;
        Ok(())
    })
}

/// The guide of [`model`]: the encoder amortizes the per-document posteriors.
pub fn guide(net: &Mlp, c: &Corpus) -> Result<()> {
    let (_, _, counts) = c.data()?;
    guide_globals(c)?;
    ppl::plate_with("documents", c.docs, batch_plate(c), |ind| {
        let theta = doc_topics(net, &counts.index_select(ind, 0)?)?;
        ppl::sample("doc_topics", point_on_simplex(&theta)?)?;
        Ok(())
    })
}

/// The guide of [`model_seq`]: the encoder runs once on the batch, as in [`guide`]; each
/// document's row is its own site.
pub fn guide_seq(net: &Mlp, c: &Corpus) -> Result<()> {
    let (_, _, counts) = c.data()?;
    guide_globals(c)?;
    let items: Vec<SeqPlateIndex> = ppl::seq_plate_iter_with("documents", c.docs, batch_plate(c))?.collect();
    let ind: Vec<u32> = items.iter().map(|i| i.index() as u32).collect();
    let ind = Tensor::new(ind.as_slice(), counts.device())?;
    let theta = doc_topics(net, &counts.index_select(&ind, 0)?)?;
    for (j, item) in items.into_iter().enumerate() {
        ppl::sample(format!("doc_topics_{}", item.index()), point_on_simplex(&theta.get(j)?)?)?;
    }
    Ok(())
}

/// Draws a corpus from the model (seeded) and returns it with the true `φ [K, V]` and each
/// topic's share of the words.
fn generate(sizes: &Corpus, seed: u64) -> Result<(Corpus, Tensor, Vec<f64>)> {
    let (_, tr) = handlers::seed(seed, || handlers::trace(|| model_seq(sizes)))?;
    let (n, d) = (sizes.words_per_doc, sizes.docs);
    let mut rows = Vec::with_capacity(d);
    let mut share = vec![0f64; sizes.topics];
    for i in 0..d {
        rows.push(tr.value(&format!("doc_words_{i}"))?.clone());
        for z in tr.value(&format!("word_topics_{i}"))?.to_vec1::<u32>()? {
            share[z as usize] += 1.0 / (n * d) as f64;
        }
    }
    let words_t = Tensor::stack(&rows, 0)?; // [D, N]
    let mut counts = vec![0f32; d * sizes.vocab];
    for (i, row) in words_t.to_vec2::<u32>()?.iter().enumerate() {
        for &w in row {
            counts[i * sizes.vocab + w as usize] += 1.0;
        }
    }
    let corpus = Corpus {
        words: Some(words_t.t()?.contiguous()?),
        words_t: Some(words_t),
        counts: Some(Tensor::from_vec(counts, (d, sizes.vocab), &ppl::defaults::current().device)?),
        ..sizes.clone()
    };
    Ok((corpus, tr.value("topic_words")?.clone(), share))
}

fn top_words(row: &[f32], k: usize) -> Vec<usize> {
    let mut ids: Vec<usize> = (0..row.len()).collect();
    ids.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    ids.truncate(k);
    ids
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64) * (*y as f64)).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb).max(f64::MIN_POSITIVE)
}

/// Pairs true and learned topics greedily by cosine similarity, most similar pair first.
fn match_topics(truth: &[Vec<f32>], learned: &[Vec<f32>], share: &[f64]) -> Vec<TopicMatch> {
    let mut pairs: Vec<(f64, usize, usize)> =
        (0..truth.len()).flat_map(|t| (0..learned.len()).map(move |l| (t, l))).map(|(t, l)| (cosine(&truth[t], &learned[l]), t, l)).collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut used_t, mut used_l) = (vec![false; truth.len()], vec![false; learned.len()]);
    let mut out = Vec::new();
    for (cos, t, l) in pairs {
        if used_t[t] || used_l[l] {
            continue;
        }
        used_t[t] = true;
        used_l[l] = true;
        out.push(TopicMatch {
            true_topic: t,
            learned_topic: l,
            share: share[t],
            true_top: top_words(&truth[t], 5),
            learned_top: top_words(&learned[l], 5),
            cosine: cos,
        });
    }
    out.sort_by(|a, b| b.share.total_cmp(&a.share));
    out
}

/// Median seconds per SVI step of the vectorized and of the sequential variant, timed in
/// alternation (one step of each per round, after one untimed step each), so that a change in
/// the machine's load affects both alike.
fn time_plates(net: &Mlp, corpus: &Corpus, args: &Args, rounds: usize) -> Result<(f64, f64)> {
    let svi = |seq: bool| {
        let net = net.clone();
        let optim = ClippedAdam::new(args.learning_rate);
        if seq {
            Svi::new(model_seq, move |c: &Corpus| guide_seq(&net, c), optim, TraceElbo::default()).seed(args.seed)
        } else {
            Svi::new(model, move |c: &Corpus| guide(&net, c), optim, TraceElbo::default()).seed(args.seed)
        }
    };
    let mut variants = [svi(false), svi(true)];
    let mut times = [Vec::with_capacity(rounds), Vec::with_capacity(rounds)];
    for v in &mut variants {
        v.step(corpus)?;
    }
    for _ in 0..rounds {
        for (v, t) in variants.iter_mut().zip(&mut times) {
            let start = Instant::now();
            v.step(corpus)?;
            t.push(start.elapsed().as_secs_f64());
        }
    }
    let median = |t: &mut Vec<f64>| {
        t.sort_by(f64::total_cmp);
        let n = t.len();
        if n % 2 == 1 { t[n / 2] } else { 0.5 * (t[n / 2 - 1] + t[n / 2]) }
    };
    Ok((median(&mut times[0]), median(&mut times[1])))
}

/// Generates the corpus, fits the guide, matches topics and times both plate variants.
pub fn run(args: &Args) -> Result<Report> {
    let mut a = args.clone();
    if args.smoke {
        (a.num_topics, a.num_words, a.num_docs, a.num_words_per_doc) = (3, 30, 200, 32);
        (a.num_steps, a.batch_size, a.timing_steps, a.layer_sizes) = (300, 32, 2, "20".into());
        a.learning_rate = 0.05;
    }
    for (flag, v) in [
        ("--num-topics", a.num_topics),
        ("--num-words", a.num_words),
        ("--num-docs", a.num_docs),
        ("--num-words-per-doc", a.num_words_per_doc),
        ("--batch-size", a.batch_size),
        ("--timing-steps", a.timing_steps),
    ] {
        if v == 0 {
            return Err(Error::invalid_arg("lda", flag, "must be at least 1"));
        }
    }
    if a.batch_size > a.num_docs {
        return Err(Error::invalid_arg(
            "lda",
            "--batch-size",
            format!("{} documents per step but only {} documents", a.batch_size, a.num_docs),
        ));
    }
    if a.num_steps < 10 {
        return Err(Error::invalid_arg("lda", "--num-steps", format!("need at least 10, got {}", a.num_steps)));
    }
    let sizes = Corpus {
        topics: a.num_topics,
        vocab: a.num_words,
        docs: a.num_docs,
        words_per_doc: a.num_words_per_doc,
        batch: a.batch_size,
        words: None,
        words_t: None,
        counts: None,
    };
    let net = encoder(&sizes, &a.layer_sizes)?;
    let start = Instant::now();
    let (corpus, true_phi, share) = generate(&sizes, a.seed)?;
    let corpus_time = start.elapsed();

    let start = Instant::now();
    let n2 = net.clone();
    let mut svi = Svi::new(model, move |c: &Corpus| guide(&n2, c), ClippedAdam::new(a.learning_rate), TraceElbo::default())
        .seed(a.seed);
    let losses = svi.run(&corpus, a.num_steps)?;
    let fit_time = start.elapsed();

    // The guide's mean of φ_k is b_k / Σ_w b_kw.
    let b = svi.params().get("topic_words_posterior")?.ok_or_else(|| Error::invalid_arg("lda", "guide", "no topic_words_posterior"))?;
    let learned = b.broadcast_div(&b.sum_keepdim(1)?)?.to_vec2::<f32>()?;
    let topics = match_topics(&true_phi.to_vec2::<f32>()?, &learned, &share);

    let (step_vectorized, step_sequential) = time_plates(&net, &corpus, &a, a.timing_steps)?;
    Ok(Report { losses, corpus_time, fit_time, topics, step_vectorized, step_sequential, timing_steps: a.timing_steps, batch: a.batch_size })
}

fn print(r: &Report) {
    println!("Corpus drawn from the model in {:.1} s.", r.corpus_time.as_secs_f64());
    let (first, last) = r.loss_first_last();
    println!(
        "SVI: {} steps in {:.1} s ({:.1} ms/step); loss (-ELBO) {:.0} -> {:.0} nats (mean of the first and last tenth)\n",
        r.losses.len(),
        r.fit_time.as_secs_f64(),
        1e3 * r.fit_time.as_secs_f64() / r.losses.len() as f64,
        first,
        last
    );
    let words = |ids: &[usize]| ids.iter().map(|w| format!("{w:>4}")).collect::<Vec<_>>().join(" ");
    println!("{:>5} {:>6}   {:<24}   {:>7}   {:<24}   {:>6}", "true", "share", "top words", "learned", "top words", "cosine");
    for t in &r.topics {
        println!(
            "{:>5} {:>5.1}%   {}   {:>7}   {}   {:>6.3}",
            t.true_topic,
            100.0 * t.share,
            words(&t.true_top),
            t.learned_topic,
            words(&t.learned_top),
            t.cosine
        );
    }
    println!("(word ids, most probable first; cosine: similarity of the true and learned word distributions.");
    println!(" A topic that generated few of the corpus's words cannot be recovered from it.)\n");
    println!("One SVI step on {} documents (median of {} steps of each, alternating):", r.batch, r.timing_steps);
    println!("  {:<34} {:>8.2} ms", "vectorized plate (`plate`)", 1e3 * r.step_vectorized);
    println!("  {:<34} {:>8.2} ms", "sequential plate (`seq_plate_iter`)", 1e3 * r.step_sequential);
    println!("  {:<34} {:>8.1}x   (Pyro's documentation reports 6.5x)", "speed-up", r.step_sequential / r.step_vectorized);
}

#[allow(dead_code)]
fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(r) => {
            print(&r);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
