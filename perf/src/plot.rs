//! A run's time series as one PNG: four stacked panels over a shared time axis (calls up,
//! RTP loss, mouth-to-ear delay, server CPU), drawn with plotters' bitmap backend.
//!
//! Text is drawn with a TrueType font read at run time (DejaVu Sans from Debian's
//! fonts-dejavu-core, or a few other usual places), so building needs no font library. With
//! no font on the machine the plot is still drawn, without title or axis labels, and
//! `render` says so in its warnings.
//!
//! ```text
//! let warnings = plot::render(Path::new("run.png"), "200 users, 10 per room", &series)?;
//! for w in warnings { eprintln!("plot: {w}"); }
//! ```

use std::fs::File;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, anyhow, bail};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{FontStyle, register_font};

/// One sample a second (about) of a run, as parallel vectors of equal length.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Seconds since the run started, one entry per sample (about 1 s apart).
    pub t_s: Vec<f64>,
    /// Established calls held at that moment.
    pub calls_up: Vec<f64>,
    /// RTP loss in that interval, percent (as chorus-load measures it: packets short of 50 a
    /// second for each call up over a second).
    pub loss_pct: Vec<f64>,
    /// Median mouth-to-ear delay measured in that interval, if any.
    pub delay_ms: Vec<Option<f64>>,
    /// Server CPU, percent of one core, if known.
    pub server_cpu_pct: Vec<Option<f64>>,
    /// Every caller was placed and every call up had been in its conference for a second
    /// (past the IVR and the join): the steady state the shortfall is judged on.
    pub steady: Vec<bool>,
}

impl Series {
    /// The mean shortfall against 50 packets a second over the steady samples so far,
    /// percent (None before the first).
    pub fn steady_short_pct(&self) -> Option<f64> {
        let (sum, n) = (self.steady.iter().zip(&self.loss_pct))
            .filter(|(steady, _)| **steady)
            .fold((0.0, 0u32), |(sum, n), (_, short)| (sum + short, n + 1));
        (n > 0).then(|| sum / f64::from(n))
    }
}

/// Image size in pixels.
const WIDTH_PX: u32 = 1_200;
const HEIGHT_PX: u32 = 1_280;

/// The family name the font is registered under; plotters' own defaults use it too.
const FONT_FAMILY: &str = "sans-serif";

/// Where a sans-serif TrueType font usually is, first found wins.
const FONT_FILES: &[&str] = &[
    // Debian and Ubuntu: fonts-dejavu-core.
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    // Fedora.
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    // Arch.
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    // Debian and Ubuntu: fonts-liberation.
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// One panel: a quantity against time.
struct Panel {
    /// Axis label, with the unit.
    y_desc: &'static str,
    /// (t, value) per sample; `None` where there is no value (a gap in the line).
    points: Vec<Option<(f64, f64)>>,
    color: RGBColor,
    /// The y axis reaches at least this far, so a flat zero line sits low in its panel.
    y_min_top: f64,
}

/// Draws `s` into a PNG at `path` (which must end in `.png`) under `title`. Returns
/// warnings about what could not be shown (no font, a panel with no data); an error if
/// the series is empty or its vectors differ in length, or the file cannot be written.
pub fn render(path: &Path, title: &str, s: &Series) -> anyhow::Result<Vec<String>> {
    let n = s.t_s.len();
    if n == 0 {
        bail!("nothing to plot: the series has no samples");
    }
    let lengths = [
        ("calls_up", s.calls_up.len()),
        ("loss_pct", s.loss_pct.len()),
        ("delay_ms", s.delay_ms.len()),
        ("server_cpu_pct", s.server_cpu_pct.len()),
    ];
    for (name, len) in lengths {
        if len != n {
            bail!("cannot plot: {name} has {len} samples but t_s has {n}");
        }
    }
    let is_png = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("png"));
    if !is_png {
        bail!("plot file {} must end in .png", path.display());
    }

    let mut warnings = Vec::new();
    let text = match font() {
        Ok(_) => true,
        Err(why) => {
            warnings.push(format!(
                "{why}; the plot has no title or axis labels (install fonts-dejavu-core)"
            ));
            false
        }
    };

    let panels = panels(s);
    for panel in &panels {
        if panel.points.iter().all(Option::is_none) {
            warnings.push(format!(
                "no values for {}: its panel is empty",
                panel.y_desc
            ));
        }
    }
    let x = time_range(&s.t_s);

    // Opened here so an unwritable path fails before any drawing, with the OS's reason.
    File::create(path).with_context(|| format!("cannot write plot to {}", path.display()))?;
    draw(path, title, x, &panels, text)
        .with_context(|| format!("cannot draw plot to {}", path.display()))?;
    Ok(warnings)
}

/// Draws the panels and writes the file; `text` false draws no text at all.
fn draw(
    path: &Path,
    title: &str,
    x: Range<f64>,
    panels: &[Panel],
    text: bool,
) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (WIDTH_PX, HEIGHT_PX)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let body = if text {
        root.titled(title, (FONT_FAMILY, 26))
            .map_err(|e| anyhow!("{e}"))?
    } else {
        root.margin(30, 0, 0, 0)
    };
    let areas = body.split_evenly((panels.len(), 1));
    for (i, (area, panel)) in areas.iter().zip(panels).enumerate() {
        let bottom = i + 1 == panels.len();
        draw_panel(area, x.clone(), panel, text, bottom)?;
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    x: Range<f64>,
    panel: &Panel,
    text: bool,
    bottom: bool,
) -> anyhow::Result<()> {
    let y_top = panel
        .points
        .iter()
        .flatten()
        .map(|&(_, y)| y)
        .fold(panel.y_min_top, f64::max);
    let mut chart = ChartBuilder::on(area)
        .margin_left(10)
        .margin_right(30)
        .margin_top(10)
        .margin_bottom(5)
        .x_label_area_size(if !text {
            0
        } else if bottom {
            50
        } else {
            30
        })
        .y_label_area_size(if text { 80 } else { 0 })
        .build_cartesian_2d(x, 0.0..y_top * 1.1)
        .map_err(|e| anyhow!("{e}"))?;

    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(RGBColor(235, 235, 235))
        .x_labels(12)
        .y_labels(5)
        .max_light_lines(4)
        .x_label_formatter(&|t| tick_label(*t))
        .y_label_formatter(&|v| tick_label(*v));
    if text {
        mesh.y_desc(panel.y_desc)
            .label_style((FONT_FAMILY, 14))
            .axis_desc_style((FONT_FAMILY, 16));
        if bottom {
            mesh.x_desc("time since start (s)");
        }
    }
    mesh.draw().map_err(|e| anyhow!("{e}"))?;

    if text && panel.points.iter().all(Option::is_none) {
        let (xs, ys) = (chart.x_range(), chart.y_range());
        let middle = ((xs.start + xs.end) / 2.0, (ys.start + ys.end) / 2.0);
        let style = (FONT_FAMILY, 18)
            .into_font()
            .color(&RGBColor(120, 120, 120))
            .pos(Pos::new(HPos::Center, VPos::Center));
        chart
            .plotting_area()
            .draw(&Text::new("no data", middle, style))
            .map_err(|e| anyhow!("{e}"))?;
    }

    let line = panel.color.stroke_width(2);
    for run in panel.points.split(Option::is_none) {
        let run: Vec<(f64, f64)> = run.iter().flatten().copied().collect();
        if let [point] = run.as_slice() {
            // A lone sample between gaps has no line to be part of: mark it.
            chart
                .draw_series(std::iter::once(Circle::new(
                    *point,
                    3,
                    panel.color.filled(),
                )))
                .map_err(|e| anyhow!("{e}"))?;
        } else if !run.is_empty() {
            chart
                .draw_series(LineSeries::new(run, line))
                .map_err(|e| anyhow!("{e}"))?;
        }
    }
    Ok(())
}

/// The four panels of a series; non-finite values become gaps.
fn panels(s: &Series) -> Vec<Panel> {
    let points = |values: &mut dyn Iterator<Item = Option<f64>>| -> Vec<Option<(f64, f64)>> {
        s.t_s
            .iter()
            .zip(values)
            .map(|(&t, v)| v.filter(|v| v.is_finite() && t.is_finite()).map(|v| (t, v)))
            .collect()
    };
    vec![
        Panel {
            y_desc: "calls up",
            points: points(&mut s.calls_up.iter().map(|&v| Some(v))),
            color: RGBColor(31, 119, 180),
            y_min_top: 1.0,
        },
        Panel {
            y_desc: "RTP loss (%)",
            points: points(&mut s.loss_pct.iter().map(|&v| Some(v))),
            color: RGBColor(214, 39, 40),
            y_min_top: 1.0,
        },
        Panel {
            y_desc: "mouth-to-ear delay (ms)",
            points: points(&mut s.delay_ms.iter().copied()),
            color: RGBColor(44, 160, 44),
            y_min_top: 10.0,
        },
        Panel {
            y_desc: "server CPU (% of a core)",
            points: points(&mut s.server_cpu_pct.iter().copied()),
            color: RGBColor(148, 103, 189),
            y_min_top: 10.0,
        },
    ]
}

/// A tick value with at most two decimals and no trailing zeros: 150, 0.5, 0.25.
fn tick_label(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// The time axis: first to last sample, at least one second wide.
fn time_range(t_s: &[f64]) -> Range<f64> {
    let finite = t_s.iter().copied().filter(|t| t.is_finite());
    let lo = finite.clone().fold(f64::INFINITY, f64::min);
    let hi = finite.fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    lo..hi.max(lo + 1.0)
}

/// Registers the first font file found, once per process; the path it came from, or why
/// there is none.
fn font() -> Result<&'static Path, &'static str> {
    static FONT: OnceLock<Result<&'static Path, String>> = OnceLock::new();
    FONT.get_or_init(|| {
        for file in FONT_FILES {
            let Ok(bytes) = std::fs::read(file) else {
                continue;
            };
            // plotters keeps fonts for the life of the process; this runs at most once.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if register_font(FONT_FAMILY, FontStyle::Normal, bytes).is_ok() {
                return Ok(Path::new(file));
            }
        }
        Err(format!(
            "no usable font (looked for {})",
            FONT_FILES.join(", ")
        ))
    })
    .as_ref()
    .map(|p| *p)
    .map_err(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

    fn synthetic(n: usize) -> Series {
        let mut s = Series::default();
        for i in 0..n {
            let t = i as f64;
            s.t_s.push(t);
            s.calls_up.push((t * 20.0).min(200.0));
            s.loss_pct.push(if i % 7 == 3 { 0.4 } else { 0.0 });
            s.delay_ms.push((i % 5 != 0).then_some(60.0 + t));
            s.server_cpu_pct.push((i > 2).then_some(35.0 + t / 2.0));
        }
        s
    }

    fn temp_png(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("chorus-load-{}-{name}.png", std::process::id()))
    }

    fn assert_png(path: &Path) {
        let bytes = std::fs::read(path).expect("the plot was written");
        assert!(bytes.starts_with(&PNG_SIGNATURE), "not a PNG");
        assert!(bytes.len() > 5_000, "only {} bytes", bytes.len());
    }

    #[test]
    fn renders_a_png() {
        let path = temp_png("series");
        let warnings = render(&path, "synthetic run", &synthetic(30)).expect("render");
        assert_png(&path);
        let _ = std::fs::remove_file(&path);
        if font().is_ok() {
            assert!(warnings.is_empty(), "{warnings:?}");
        }
    }

    #[test]
    fn renders_without_text() {
        // The path taken when no font exists: it must draw no text at all (run this test
        // alone, when nothing has registered a font, to prove that).
        let path = temp_png("no-text");
        let s = synthetic(10);
        draw(&path, "unused", time_range(&s.t_s), &panels(&s), false).expect("render");
        assert_png(&path);
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn one_sample_and_empty_panels_render_with_warnings() {
        let path = temp_png("one");
        let s = Series {
            t_s: vec![0.0],
            calls_up: vec![1.0],
            loss_pct: vec![f64::NAN],
            delay_ms: vec![None],
            server_cpu_pct: vec![None],
            steady: vec![false],
        };
        let warnings = render(&path, "one sample", &s).expect("render");
        let _ = std::fs::remove_file(&path);
        assert!(warnings.iter().any(|w| w.contains("delay")), "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("CPU")), "{warnings:?}");
    }

    #[test]
    fn tick_labels_drop_trailing_zeros() {
        assert_eq!(tick_label(150.0), "150");
        assert_eq!(tick_label(0.5), "0.5");
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(0.0), "0");
        assert_eq!(tick_label(-0.001), "0");
        assert_eq!(tick_label(10.0), "10");
    }

    #[test]
    fn empty_series_is_an_error() {
        let err = render(&temp_png("empty"), "empty", &Series::default()).expect_err("empty");
        assert!(err.to_string().contains("no samples"), "{err}");
    }

    #[test]
    fn mismatched_lengths_are_an_error() {
        let mut s = synthetic(5);
        s.delay_ms.pop();
        let err = render(&temp_png("short"), "short", &s).expect_err("mismatch");
        assert!(err.to_string().contains("delay_ms"), "{err}");
    }

    #[test]
    fn unwritable_path_is_an_error() {
        let path = Path::new("/nonexistent-dir/chorus-load/plot.png");
        let err = render(path, "nowhere", &synthetic(5)).expect_err("unwritable");
        assert!(format!("{err:#}").contains("/nonexistent-dir"), "{err:#}");
    }

    #[test]
    fn wrong_extension_is_an_error() {
        let path = std::env::temp_dir().join("chorus-load-plot.jpgx");
        let err = render(&path, "ext", &synthetic(5)).expect_err("extension");
        assert!(err.to_string().contains(".png"), "{err}");
    }
}
