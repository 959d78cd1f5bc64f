//! What the two SVG charts share (`archc sweep --plot` in `tools::plot`, and the runtime's
//! learning curves): a labelled line series and the legend box. Feature `chart` (plotters with
//! its SVG backend only).

use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// A chart whose x axis is `f64`; the y axis is `Y` (linear or logarithmic).
pub type Chart<'a, DB, Y> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>;

/// Methods for a chart with an `f64` x axis.
pub trait ChartExt {
    /// Draws `points` as one line of `style`, entered in the legend as `label`.
    fn labelled_line(
        &mut self,
        points: Vec<(f64, f64)>,
        style: ShapeStyle,
        label: String,
    ) -> Result<(), String>;

    /// The legend at `position`: a white box with a black border, 13-pixel sans-serif labels.
    fn legend(&mut self, position: SeriesLabelPosition) -> Result<(), String>;
}

impl<'a, DB, Y> ChartExt for Chart<'a, DB, Y>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64>,
{
    fn labelled_line(
        &mut self,
        points: Vec<(f64, f64)>,
        style: ShapeStyle,
        label: String,
    ) -> Result<(), String> {
        self.draw_series(LineSeries::new(points, style))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        Ok(())
    }

    fn legend(&mut self, position: SeriesLabelPosition) -> Result<(), String> {
        self.configure_series_labels()
            .position(position)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| e.to_string())
    }
}
