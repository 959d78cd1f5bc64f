//! The SVG plot of `archc sweep` (feature `plot`: plotters' SVG backend, no fonts or bitmaps).
//!
//! Two panels, parameters (or weights, when the budgets limit weights) and the convention's
//! compute figure against the swept axis: one line per series ([`crate::tools::sweep::series`]),
//! budget lines dashed in black, feasible points filled and the others hollow. A panel's y axis is
//! logarithmic when its figures span more than two orders of magnitude.

use crate::chart::{Chart, ChartExt};
use crate::cost::budget::{Figure, Figures};
use crate::cost::{grouped, si};
use crate::tools::sweep::{Series, Sweep, series};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::prelude::*;

/// A y axis of a panel: linear or logarithmic, over `f64`.
trait YAxis: Ranged<ValueType = f64> + ValueFormatter<f64> {}

impl<Y: Ranged<ValueType = f64> + ValueFormatter<f64>> YAxis for Y {}

/// What one panel shows.
struct Panel<'a> {
    /// The figure on the y axis.
    figure: Figure,
    /// Its title.
    title: String,
    /// The swept axis.
    x: &'a str,
    /// The x range.
    xs: (f64, f64),
    /// The series.
    series: &'a [Series],
    /// Budget lines: the limit and its label.
    lines: Vec<(f64, String)>,
}

/// The SVG plot of a sweep against the axis `x`. `Err` when `x` is not a numeric axis or no point
/// compiles.
pub fn svg(s: &Sweep, x: &str) -> Result<String, String> {
    let series = series(s, x)?;
    let all: Vec<&(f64, Figures, bool)> = series.iter().flat_map(|se| &se.points).collect();
    if all.is_empty() {
        return Err("no point of the grid compiles: nothing to plot".to_string());
    }
    let (x0, x1) = all
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let xs = if x0 == x1 {
        (x0 - 1.0, x1 + 1.0)
    } else {
        (x0, x1)
    };
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (1000, 1000)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let areas = root.split_evenly((2, 1));
        for ((figure, title), area) in panels(s).into_iter().zip(areas.iter()) {
            let panel = Panel {
                figure,
                title: format!("{title} against {x} — {}", s.network),
                x,
                xs,
                series: &series,
                lines: budget_lines(s, figure),
            };
            draw_panel(area, &panel, &title, &all)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

/// The two panels: weights on top when the budgets limit weights and not params (params
/// otherwise), then the convention's compute figure.
fn panels(s: &Sweep) -> [(Figure, String); 2] {
    let limits = |f: Figure| s.budgets.iter().any(|b| b.figure == f);
    let top = if limits(Figure::Weights) && !limits(Figure::Params) {
        (Figure::Weights, "weights (no batch-norm)".to_string())
    } else {
        (Figure::Params, "parameters".to_string())
    };
    let conv = s.convention;
    [
        top,
        (
            Figure::Macs,
            format!("{} ({})", conv.compute_name(), conv.name()),
        ),
    ]
}

/// The budget lines of a panel: params and weights on the first, macs and flops (halved) on the
/// second.
fn budget_lines(s: &Sweep, figure: Figure) -> Vec<(f64, String)> {
    s.budgets
        .iter()
        .filter_map(|b| match (figure, b.figure) {
            (Figure::Params | Figure::Weights, Figure::Params | Figure::Weights)
            | (Figure::Macs, Figure::Macs) => Some((b.value as f64, b.describe())),
            (Figure::Macs, Figure::Flops) => Some((
                b.value as f64 / 2.0,
                format!(
                    "{} (= macs {} {})",
                    b.describe(),
                    b.cmp,
                    grouped(b.value / 2)
                ),
            )),
            _ => None,
        })
        .collect()
}

/// The y range of a panel: every positive figure and budget line.
fn y_range(panel: &Panel<'_>, all: &[&(f64, Figures, bool)]) -> (f64, f64) {
    let values: Vec<f64> = all
        .iter()
        .map(|p| p.1.get(panel.figure) as f64)
        .chain(panel.lines.iter().map(|l| l.0))
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values.iter().copied().fold(f64::MAX, f64::min);
    let hi = values.iter().copied().fold(0.0, f64::max);
    if values.is_empty() {
        (1.0, 10.0)
    } else if lo >= hi {
        (lo * 0.5, hi * 1.5 + 1.0)
    } else {
        (lo, hi)
    }
}

/// Draws one panel on `area`, with a logarithmic y axis when the range is wide.
fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &Panel<'_>,
    y_desc: &str,
    all: &[&(f64, Figures, bool)],
) -> Result<(), String> {
    let (lo, hi) = y_range(panel, all);
    let (x0, x1) = panel.xs;
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&panel.title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70);
    if hi / lo > 100.0 {
        let mut chart = builder
            .build_cartesian_2d(x0..x1, (lo * 0.8..hi * 1.25).log_scale())
            .map_err(|e| e.to_string())?;
        draw_chart(&mut chart, panel, y_desc)
    } else {
        let pad = (hi - lo) * 0.08;
        let mut chart = builder
            .build_cartesian_2d(x0..x1, (lo - pad).max(0.0)..hi + pad)
            .map_err(|e| e.to_string())?;
        draw_chart(&mut chart, panel, y_desc)
    }
}

/// The mesh, the series, the budget lines and the legend of one panel.
fn draw_chart<'a, DB: DrawingBackend + 'a, Y: YAxis>(
    chart: &mut Chart<'a, DB, Y>,
    panel: &Panel<'_>,
    y_desc: &str,
) -> Result<(), String> {
    let fmt = |v: &f64| si(v.max(0.0).round() as u64);
    chart
        .configure_mesh()
        .x_desc(panel.x)
        .y_desc(y_desc)
        .y_label_formatter(&fmt)
        .x_label_formatter(&|v: &f64| format!("{v:.0}"))
        .draw()
        .map_err(|e| e.to_string())?;
    draw_series(chart, panel)?;
    draw_budgets(chart, panel)?;
    chart.legend(SeriesLabelPosition::UpperLeft)
}

/// One line per series, its points filled where feasible and hollow elsewhere.
fn draw_series<'a, DB: DrawingBackend + 'a, Y: YAxis>(
    chart: &mut Chart<'a, DB, Y>,
    panel: &Panel<'_>,
) -> Result<(), String> {
    let figure = panel.figure;
    for (i, se) in panel.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = se
            .points
            .iter()
            .map(|p| (p.0, p.1.get(figure) as f64))
            .filter(|p| p.1 > 0.0)
            .collect();
        chart.labelled_line(pts, color.stroke_width(2), se.label.clone())?;
        chart
            .draw_series(se.points.iter().filter(|p| p.1.get(figure) > 0).map(|p| {
                let style = if p.2 { color.filled() } else { WHITE.filled() };
                EmptyElement::at((p.0, p.1.get(figure) as f64))
                    + Circle::new((0, 0), 4, style)
                    + Circle::new((0, 0), 4, color.stroke_width(1))
            }))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The panel's budget lines, dashed in black.
fn draw_budgets<'a, DB: DrawingBackend + 'a, Y: YAxis>(
    chart: &mut Chart<'a, DB, Y>,
    panel: &Panel<'_>,
) -> Result<(), String> {
    let (x0, x1) = panel.xs;
    for (limit, label) in &panel.lines {
        // Black, so the budget is never mistaken for a series of the palette.
        let line = BLACK.stroke_width(2);
        let dashes = DashedLineSeries::new(vec![(x0, *limit), (x1, *limit)], 8, 6, line);
        chart
            .draw_series(dashes)
            .map_err(|e| e.to_string())?
            .label(format!("budget {label}"))
            .legend(move |(lx, ly)| PathElement::new(vec![(lx, ly), (lx + 20, ly)], line));
    }
    Ok(())
}
