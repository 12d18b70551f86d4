//! Smoke tests of the `lda` and `eight_schools` examples with tiny settings.

use clap::Parser;

#[path = "../examples/lda.rs"]
mod lda;

/// LDA on a tiny synthetic corpus (3 topics, 30 words, 200 documents): the loss must fall, and
/// the most used true topic must be recovered — its learned twin's word distribution must point
/// the same way (cosine > 0.8; an unrelated Dirichlet(1/V) topic scores about 0.1) and share
/// its most probable word.
#[test]
fn lda_loss_falls_and_the_main_topic_is_recovered() {
    let args = lda::Args::parse_from(["lda", "--smoke"]);
    let r = lda::run(&args).unwrap();
    assert!(r.losses.iter().all(|l| l.is_finite()));
    let (first, last) = r.loss_first_last();
    assert!(last < first - 0.05 * first.abs(), "loss {first} -> {last}");
    let main = &r.topics[0];
    assert!(main.share > 0.2, "{:?}", r.topics);
    assert!(main.cosine > 0.8, "{main:?}");
    assert_eq!(main.true_top[0], main.learned_top[0], "{main:?}");
    assert!(r.step_vectorized > 0.0 && r.step_sequential > 0.0);
}

/// Bad flags are one clear error.
#[test]
fn lda_rejects_a_batch_larger_than_the_corpus() {
    let args = lda::Args::parse_from(["lda", "--num-docs", "10", "--batch-size", "20"]);
    let err = lda::run(&args).unwrap_err().to_string();
    assert!(err.contains("20 documents per step but only 10 documents"), "{err}");
}

#[path = "../examples/eight_schools.rs"]
mod eight_schools;

/// Eight schools with 2 short chains: the non-centered model mixes (R-hat < 1.1 for mu and tau),
/// importance sampling lands near Stan's posterior mean of mu (4.4, sd 3.3: within 1.5 sd), and
/// `model.dot` is written with the non-centered model's edges.
#[test]
fn eight_schools_mixes_and_writes_the_model_graph() {
    let dir = std::env::temp_dir().join(format!("ppl-eight-schools-{}", std::process::id()));
    let out = dir.to_str().unwrap();
    let args = eight_schools::Args::parse_from(["eight_schools", "--smoke", "--out", out]);
    let r = eight_schools::run(&args).unwrap();
    for name in ["mu", "tau"] {
        let row = r.noncentered.row(name).unwrap();
        assert!(row.r_hat < 1.1, "{name}: R-hat {}", row.r_hat);
    }
    let (_, _, (mu, _), _) = r.importance;
    assert!((mu - 4.4).abs() < 1.5 * 3.3, "importance-sampled mean of mu {mu}");
    let text = std::fs::read_to_string(dir.join("model.dot")).unwrap();
    assert_eq!(text, r.dot.1);
    for edge in ["\"eta\" -> \"theta\";", "\"mu\" -> \"theta\";", "\"tau\" -> \"theta\";", "\"theta\" -> \"y\";"] {
        assert!(text.contains(edge), "missing {edge}:\n{text}");
    }
    assert_eq!(text.matches(" -> ").count(), 4, "{text}");
    assert!(text.contains("subgraph cluster_schools"), "{text}");
    std::fs::remove_dir_all(&dir).ok();
}
