//! The quality-vs-size chart: one labelled point per tier, file size (MiB)
//! across, mean KLD against the reference up (log scale), and same-top-token
//! % as a second series on the right axis. Drawn with plotters' SVG backend,
//! whose text is SVG `<text>` elements, so no font files are needed.

use std::path::{Path, PathBuf};

use outpost_protocol::variants::VariantsFile;
use plotters::prelude::*;

use crate::report::{write_atomic, WriteError};

const WIDTH: u32 = 960;
const HEIGHT: u32 = 600;
const KLD_COLOR: RGBColor = RGBColor(31, 90, 180);
const TOP_COLOR: RGBColor = RGBColor(200, 90, 20);

/// Why the chart could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("cannot draw the quality-vs-size chart for {path}: there are no tiers")]
    NoTiers { path: PathBuf },
    #[error("cannot draw the quality-vs-size chart for {path}: {problem}")]
    Draw { path: PathBuf, problem: String },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Draws the chart of `file`'s tiers and writes it to `path` (temp file +
/// rename).
pub fn write_svg(file: &VariantsFile, path: &Path) -> Result<(), ChartError> {
    let svg = render_svg(file).map_err(|e| match e {
        RenderError::NoTiers => ChartError::NoTiers {
            path: path.to_path_buf(),
        },
        RenderError::Draw(problem) => ChartError::Draw {
            path: path.to_path_buf(),
            problem,
        },
    })?;
    write_atomic(path, svg.as_bytes())?;
    Ok(())
}

enum RenderError {
    NoTiers,
    Draw(String),
}

fn draw_err<E: std::fmt::Display>(e: E) -> RenderError {
    RenderError::Draw(e.to_string())
}

/// One point of the chart.
struct Point {
    name: String,
    mib: f64,
    kld: f64,
    same_top: f64,
}

/// `0.03`, `0.0012`, `1e-5`: short labels for a log axis.
fn kld_label(v: f64) -> String {
    if v <= 0.0 {
        "0".into()
    } else if v >= 0.1 {
        format!("{v:.1}")
    } else if v >= 1e-4 {
        let digits = (-v.log10()).ceil() as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.0e}")
    }
}

/// Where a point's label goes, relative to the point: neighbours alternate
/// above and below so that close points do not print over each other; the
/// same-top series takes the opposite side of the KLD series.
fn label_offset(index: usize, kld_series: bool) -> (i32, i32) {
    if (index & 1 == 0) == kld_series {
        (6, -20)
    } else {
        (6, 6)
    }
}

/// A range with some room around `lo..hi`, never empty.
fn padded(lo: f64, hi: f64, frac: f64) -> (f64, f64) {
    let span = (hi - lo).max(hi.abs() * 0.1).max(1e-9);
    (lo - span * frac, hi + span * frac)
}

fn render_svg(file: &VariantsFile) -> Result<String, RenderError> {
    if file.tiers.is_empty() {
        return Err(RenderError::NoTiers);
    }
    let mut points: Vec<Point> = file
        .tiers
        .iter()
        .map(|t| Point {
            name: t.name.clone(),
            mib: t.size as f64 / (1024.0 * 1024.0),
            kld: t.quality.kld_mean,
            same_top: t.quality.same_top_pct,
        })
        .collect();
    points.sort_by(|a, b| a.mib.total_cmp(&b.mib));

    // A log axis cannot show 0 (the reference against itself): such points
    // sit on a floor a decade below the smallest positive KLD.
    let min_pos = points
        .iter()
        .map(|p| p.kld)
        .filter(|k| k.is_finite() && *k > 0.0)
        .fold(f64::INFINITY, f64::min);
    let max_kld = points
        .iter()
        .map(|p| p.kld)
        .filter(|k| k.is_finite())
        .fold(0.0, f64::max);
    let floor = if min_pos.is_finite() {
        min_pos / 10.0
    } else {
        1e-6
    };
    let y_kld = |k: f64| if k.is_finite() && k > floor { k } else { floor };
    let y_lo = floor / 1.5;
    // A decade of headroom above the points and 30 % above 100 % keep the
    // top band free for the legend.
    let y_hi = (max_kld.max(floor * 10.0)) * 10.0;

    let (x_lo, x_hi) = padded(points[0].mib, points[points.len() - 1].mib, 0.08);
    let x_lo = x_lo.max(0.0);
    let top_lo = points
        .iter()
        .map(|p| p.same_top)
        .fold(100.0, f64::min)
        .clamp(0.0, 100.0);
    let top_lo = ((top_lo - 5.0) / 5.0).floor().max(0.0) * 5.0;
    let top_hi = 100.0 + (100.0 - top_lo) * 0.3;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        let title = format!(
            "{}: quality vs size (reference: {} {})",
            file.model, file.source.file, file.source.quantization
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .right_y_label_area_size(70)
            .build_cartesian_2d(x_lo..x_hi, (y_lo..y_hi).log_scale())
            .map_err(draw_err)?
            .set_secondary_coord(x_lo..x_hi, top_lo..top_hi);

        chart
            .configure_mesh()
            .x_desc("file size (MiB)")
            .y_desc("mean KLD vs reference (nats/token, log scale)")
            .x_label_formatter(&|v| format!("{v:.0}"))
            .y_label_formatter(&|v| kld_label(*v))
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(draw_err)?;
        chart
            .configure_secondary_axes()
            .y_desc("same top token (%)")
            .y_label_formatter(&|v| {
                if *v <= 100.0 {
                    format!("{v:.0}")
                } else {
                    String::new()
                }
            })
            .axis_desc_style(("sans-serif", 15))
            .draw()
            .map_err(draw_err)?;

        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.mib, y_kld(p.kld))),
                KLD_COLOR.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label("mean KLD (left axis)")
            .legend(|(x, y)| Circle::new((x + 10, y), 4, KLD_COLOR.filled()));
        chart
            .draw_series(points.iter().enumerate().map(|(i, p)| {
                let label = if p.kld.is_finite() && p.kld > floor {
                    p.name.clone()
                } else {
                    format!("{} (KLD {})", p.name, kld_label(p.kld.max(0.0)))
                };
                EmptyElement::at((p.mib, y_kld(p.kld)))
                    + Circle::new((0, 0), 5, KLD_COLOR.filled())
                    + Text::new(label, label_offset(i, true), ("sans-serif", 14).into_font())
            }))
            .map_err(draw_err)?;

        chart
            .draw_secondary_series(LineSeries::new(
                points.iter().map(|p| (p.mib, p.same_top)),
                TOP_COLOR.stroke_width(1),
            ))
            .map_err(draw_err)?
            .label("same top token % (right axis)")
            .legend(|(x, y)| TriangleMarker::new((x + 10, y), 5, TOP_COLOR.filled()));
        chart
            .draw_secondary_series(points.iter().enumerate().map(|(i, p)| {
                EmptyElement::at((p.mib, p.same_top))
                    + TriangleMarker::new((0, 0), 5, TOP_COLOR.filled())
                    + Text::new(
                        format!("{:.1} %", p.same_top),
                        label_offset(i, false),
                        ("sans-serif", 11).into_font().color(&TOP_COLOR),
                    )
            }))
            .map_err(draw_err)?;

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(draw_err)?;
        root.present().map_err(draw_err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::sample;

    #[test]
    fn svg_has_every_tier_and_the_axis_labels() {
        let mut file = sample(false);
        file.tiers[0].quality.kld_mean = 0.0;
        let dir = std::env::temp_dir().join(format!("outpost-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("quality-vs-size.svg");
        write_svg(&file, &path).expect("chart");
        let svg = std::fs::read_to_string(&path).expect("read");
        assert!(
            svg.trim_start().starts_with("<svg"),
            "{}",
            &svg[..80.min(svg.len())]
        );
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<svg").count(), 1);
        // Text content of every <text> element.
        let texts: Vec<&str> = svg
            .split("<text")
            .skip(1)
            .filter_map(|t| t.split_once('>'))
            .filter_map(|(_, rest)| rest.split_once("</text>"))
            .map(|(text, _)| text.trim())
            .collect();
        for t in &file.tiers {
            assert!(
                texts.iter().any(|x| x.starts_with(&t.name)),
                "no label for {} in {texts:?}",
                t.name
            );
        }
        for text in [
            "file size (MiB)",
            "mean KLD vs reference",
            "same top token (%)",
            "q8_0 (KLD 0)",
            "smollm2-135m: quality vs size",
        ] {
            assert!(svg.contains(text), "no {text:?} in the SVG");
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn single_tier_and_no_tier() {
        let mut file = sample(false);
        file.tiers.truncate(1);
        assert!(render_svg(&file).is_ok());
        file.tiers.clear();
        let e = write_svg(&file, Path::new("/nonexistent/x.svg")).expect_err("no tiers");
        assert!(e.to_string().contains("no tiers"), "{e}");
    }

    #[test]
    fn kld_labels_are_short() {
        assert_eq!(kld_label(0.3), "0.3");
        assert_eq!(kld_label(0.03), "0.03");
        assert_eq!(kld_label(0.0012), "0.001");
        assert_eq!(kld_label(0.00001), "1e-5");
        assert_eq!(kld_label(0.0), "0");
    }
}
