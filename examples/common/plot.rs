//! PNG pictures for the examples, written with `plotters` (bitmap backend only).
//!
//! Shared by `vae`, `bnn` and `bayesian_regression` through
//! `#[path = "common/plot.rs"] pub mod plot;` (a `#[path]` in a file is resolved relative to that
//! file's directory, so the same line works when the integration tests include an example as a
//! module). Cargo does not take `examples/common/` for an example: it has no `main.rs`.
//!
//! Text is drawn with a subset of DejaVu Sans compiled into the binary
//! (`examples/common/DejaVuSans-subset.ttf`, licence beside it) and registered with plotters'
//! `ab_glyph` backend, so the pictures render on a machine with no system fonts.

#![allow(dead_code)] // each example uses a part of this module

use plotters::coord::Shift;
use plotters::prelude::*;
use ppl::{Error, Result};
use std::path::Path;

/// The bundled font: printable ASCII plus ² ³ ± × μ σ – −.
static FONT: &[u8] = include_bytes!("DejaVuSans-subset.ttf");

/// The font family name every style below uses; also plotters' default for axis labels.
const FAMILY: &str = "sans-serif";

fn draw_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io { path: path.display().to_string(), source: std::io::Error::other(format!("drawing the picture: {e}")) }
}

/// Registers the bundled font as plotters' `sans-serif` (idempotent).
fn register_font(path: &Path) -> Result<()> {
    plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).map_err(|_| draw_err(path, "the bundled font is not a valid TTF"))
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.display().to_string(), source })
        }
        _ => Ok(()),
    }
}

/// One panel of a band chart: a predictive mean line over `x`, the band `lo..hi` around it, and
/// the observed points.
#[derive(Debug, Clone)]
pub struct Band<'a> {
    /// Panel title.
    pub title: String,
    /// Axis labels.
    pub x_label: &'a str,
    /// See `x_label`.
    pub y_label: &'a str,
    /// Abscissae of the mean and the band (increasing).
    pub x: Vec<f64>,
    /// Predictive mean at each `x`.
    pub mean: Vec<f64>,
    /// Lower edge of the band at each `x`.
    pub lo: Vec<f64>,
    /// Upper edge of the band at each `x`.
    pub hi: Vec<f64>,
    /// Legend text of the band, e.g. "90% predictive interval".
    pub band_label: &'a str,
    /// An optional inner band `(lo, hi, legend)` drawn darker over the band.
    pub inner: Option<(Vec<f64>, Vec<f64>, &'a str)>,
    /// Observed `(x, y)` points.
    pub points: Vec<(f64, f64)>,
    /// Legend text of the points.
    pub points_label: &'a str,
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if lo > hi {
        return (0.0, 1.0);
    }
    let pad = 0.05 * (hi - lo).max(1e-9);
    (lo - pad, hi + pad)
}

/// A tick label: whole numbers without a decimal point, others with up to 3 significant decimals.
fn tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 * v.abs().max(1.0) {
        format!("{:.0}", v.round())
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

fn draw_band<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &Band) -> std::result::Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let (x0, x1) = range(p.x.iter().copied().chain(p.points.iter().map(|q| q.0)));
    let (y0, y1) = range(p.lo.iter().chain(&p.hi).copied().chain(p.points.iter().map(|q| q.1)));
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, (FAMILY, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc(p.x_label)
        .y_desc(p.y_label)
        .label_style((FAMILY, 14))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(|x| e(&x))?;
    let band_color = RGBColor(70, 130, 180);
    let polygon = |lo: &[f64], hi: &[f64]| -> Vec<(f64, f64)> {
        let upper = p.x.iter().zip(hi).map(|(&x, &y)| (x, y));
        upper.chain(p.x.iter().zip(lo).rev().map(|(&x, &y)| (x, y))).collect()
    };
    let mut bands = vec![(&p.lo, &p.hi, p.band_label, 0.25)];
    if let Some((lo, hi, label)) = &p.inner {
        bands.push((lo, hi, *label, 0.45));
    }
    for (lo, hi, label, alpha) in bands {
        let style = band_color.mix(alpha).filled();
        chart
            .draw_series(std::iter::once(Polygon::new(polygon(lo, hi), style)))
            .map_err(|x| e(&x))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], style));
    }
    chart
        .draw_series(LineSeries::new(p.x.iter().zip(&p.mean).map(|(&x, &y)| (x, y)), band_color.stroke_width(2)))
        .map_err(|x| e(&x))?
        .label("predictive mean")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], band_color.stroke_width(2)));
    chart
        .draw_series(p.points.iter().map(|&(x, y)| Circle::new((x, y), 3, BLACK.mix(0.8).filled())))
        .map_err(|x| e(&x))?
        .label(p.points_label)
        .legend(|(x, y)| Circle::new((x + 8, y), 3, BLACK.mix(0.8).filled()));
    chart
        .configure_series_labels()
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|x| e(&x))?;
    Ok(())
}

/// Writes `panels` side by side into a PNG of `size` pixels (width, height).
pub fn bands_png(path: &Path, size: (u32, u32), panels: &[Band]) -> Result<()> {
    register_font(path)?;
    create_parent(path)?;
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    for (area, panel) in root.split_evenly((1, panels.len().max(1))).iter().zip(panels) {
        draw_band(area, panel).map_err(|e| draw_err(path, e))?;
    }
    root.present().map_err(|e| draw_err(path, e))
}

/// Geometry of a grid of square grey images (digits): `cols` images per row, each `side` pixels
/// square drawn `scale` times larger, a `gap` between them, a left margin for row labels and a
/// top margin for the title.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    /// Images per row.
    pub cols: usize,
    /// Side of an image, in its own pixels (28 for MNIST).
    pub side: usize,
    /// Magnification.
    pub scale: usize,
}

const GAP: usize = 4;
const LABEL_W: usize = 110;
const TITLE_H: usize = 36;

impl Grid {
    /// Pixel size (width, height) of a picture with `rows` rows.
    pub fn size(&self, rows: usize) -> (u32, u32) {
        let cell = self.side * self.scale + GAP;
        ((LABEL_W + self.cols * cell + GAP) as u32, (TITLE_H + rows * cell + GAP) as u32)
    }
}

/// Writes a PNG grid of grey images: one row per `(label, images)` entry (up to `grid.cols`
/// images, each `side * side` values in `[0, 1]`, 1 drawn white on black as MNIST is usually
/// shown) with the label at its left and `title` on top. Returns the picture's size in pixels.
pub fn image_grid_png(path: &Path, title: &str, grid: Grid, rows: &[(String, Vec<Vec<f32>>)]) -> Result<(u32, u32)> {
    register_font(path)?;
    create_parent(path)?;
    let size = grid.size(rows.len());
    let (w, h) = (size.0 as usize, size.1 as usize);
    // Compose the images into one RGB buffer, then blit it and draw the text on top.
    let mut buf = vec![255u8; w * h * 3];
    let cell = grid.side * grid.scale + GAP;
    for (r, (_, images)) in rows.iter().enumerate() {
        for (c, img) in images.iter().take(grid.cols).enumerate() {
            if img.len() != grid.side * grid.side {
                return Err(Error::shape_mismatch(
                    format!("image grid `{}`, row {r}, image {c}", path.display()),
                    &[grid.side * grid.side],
                    &[img.len()],
                ));
            }
            let (x0, y0) = (LABEL_W + c * cell + GAP, TITLE_H + r * cell + GAP);
            for (k, &v) in img.iter().enumerate() {
                let grey = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                let (iy, ix) = (k / grid.side, k % grid.side);
                for dy in 0..grid.scale {
                    let row = (y0 + iy * grid.scale + dy) * w;
                    for dx in 0..grid.scale {
                        let o = 3 * (row + x0 + ix * grid.scale + dx);
                        buf[o..o + 3].fill(grey);
                    }
                }
            }
        }
    }
    let root = BitMapBackend::new(path, size).into_drawing_area();
    let image = BitMapElement::<(i32, i32)>::with_owned_buffer((0, 0), size, buf).ok_or_else(|| draw_err(path, "image buffer too small"))?;
    root.draw(&image).map_err(|e| draw_err(path, e))?;
    let text = |s: &str, x: usize, y: usize, px: u32| -> Result<()> {
        root.draw(&Text::new(s.to_string(), (x as i32, y as i32), (FAMILY, px).into_font().color(&BLACK))).map_err(|e| draw_err(path, e))
    };
    text(title, GAP + 4, 8, 20)?;
    for (r, (label, _)) in rows.iter().enumerate() {
        let y = TITLE_H + r * cell + GAP + grid.side * grid.scale / 2 - 8;
        text(label, GAP + 4, y, 16)?;
    }
    root.present().map_err(|e| draw_err(path, e))?;
    Ok(size)
}

/// The (width, height) in the header of a PNG file; an error if the file is not a PNG.
pub fn png_size(path: &Path) -> Result<(u32, u32)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
    let bad = || Error::invalid_arg(format!("reading `{}`", path.display()), "file", "not a PNG file");
    if bytes.len() < 24 || &bytes[..8] != b"\x89PNG\r\n\x1a\n" || &bytes[12..16] != b"IHDR" {
        return Err(bad());
    }
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    Ok((be(16), be(20)))
}
