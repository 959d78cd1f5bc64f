//! Learning curves as SVG (plotters, SVG backend): training loss, test accuracy and learning
//! rate per epoch, one line per run, so that two variants can be compared in one picture as the
//! paper's Figure 5 does.

use crate::train::EpochRecord;
use archc::chart::ChartExt;
use plotters::prelude::*;

/// One run's curves: a label and its epochs.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    /// The legend's text.
    pub label: String,
    /// Its epochs, in order.
    pub epochs: &'a [EpochRecord],
}

/// Reads a run's `metrics.jsonl`.
pub fn read_metrics(path: &std::path::Path) -> Result<Vec<EpochRecord>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

type Pick = fn(&EpochRecord) -> Option<f64>;

/// The SVG text of the runs' curves: three panels (train loss, test accuracy %, learning rate)
/// against the epoch.
pub fn svg(title: &str, runs: &[Run]) -> Result<String, String> {
    let panels: [(&str, Pick); 3] = [
        ("training loss", |r| Some(r.train_loss)),
        ("test accuracy (%)", |r| r.test_acc.map(|a| 100.0 * a)),
        ("learning rate", |r| Some(r.lr)),
    ];
    let last = runs
        .iter()
        .flat_map(|r| r.epochs.iter().map(|e| e.epoch))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (900, 1050)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(title, ("sans-serif", 22))
            .map_err(|e| e.to_string())?;
        let areas = root.split_evenly((3, 1));
        for ((name, pick), area) in panels.iter().zip(areas.iter()) {
            let values: Vec<f64> = runs
                .iter()
                .flat_map(|r| r.epochs.iter().filter_map(pick))
                .filter(|v| v.is_finite())
                .collect();
            let lo = values.iter().copied().fold(f64::MAX, f64::min);
            let hi = values.iter().copied().fold(f64::MIN, f64::max);
            let (lo, hi) = if values.is_empty() {
                (0.0, 1.0)
            } else if lo >= hi {
                (lo - 0.5, hi + 0.5)
            } else {
                let pad = (hi - lo) * 0.06;
                (lo - pad, hi + pad)
            };
            let mut chart = ChartBuilder::on(area)
                .margin(12)
                .x_label_area_size(36)
                .y_label_area_size(70)
                .build_cartesian_2d(0.0..last, lo..hi)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .y_desc(*name)
                .x_label_formatter(&|v: &f64| format!("{v:.0}"))
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, run) in runs.iter().enumerate() {
                let color = Palette99::pick(i).to_rgba();
                let pts: Vec<(f64, f64)> = run
                    .epochs
                    .iter()
                    .filter_map(|e| pick(e).map(|v| (e.epoch as f64, v)))
                    .filter(|p| p.1.is_finite())
                    .collect();
                chart.labelled_line(pts, color.stroke_width(2), run.label.clone())?;
            }
            chart.legend(SeriesLabelPosition::UpperRight)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}
