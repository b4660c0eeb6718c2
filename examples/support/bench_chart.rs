//! `--svg PATH`: the bench's ratios as one chart, on a log scale so that
//! 0.5x and 2x lie as far from the base. Each case is a bar from 1 (its
//! base, the red line) to its median against the base, with a whisker from
//! its lowest to its highest round (each round's ratio is the case against
//! its base in that round).

use plotters::prelude::*;

use super::report::Row;

/// One case's bar.
pub(crate) struct Bar {
    /// `case / base`.
    pub(crate) label: String,
    pub(crate) median: f64,
    /// The lowest and highest round.
    pub(crate) spread: (f64, f64),
}

const ROW: u32 = 26;
const FASTER: RGBColor = RGBColor(76, 114, 176);
const SLOWER: RGBColor = RGBColor(221, 132, 82);
const WHISKER: RGBColor = RGBColor(40, 40, 40);
const BASE: RGBColor = RGBColor(196, 78, 82);

/// Writes the chart of `bars`, titled `title`, to `path` as SVG.
pub(crate) fn draw(path: &str, title: &str, bars: &[Bar]) -> Result<(), String> {
    let failed = |err: &dyn std::fmt::Display| format!("cannot draw {path}: {err}");
    let rows = bars.len().max(1);
    let height = 110 + ROW * u32::try_from(rows).unwrap_or(u32::MAX / ROW);
    let root = SVGBackend::new(path, (960, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|err| failed(&err))?;
    let figures = || {
        bars.iter()
            .flat_map(|bar| [bar.median, bar.spread.0, bar.spread.1])
    };
    let highest = figures().fold(1.0, f64::max);
    let lowest = figures().fold(1.0, f64::min);
    let x_range = (lowest * 0.8).max(0.01)..highest * 1.25;
    // Row i is centred on y = i; the first case on top.
    let y_range = (rows as f64 - 0.5)..-0.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(360)
        .build_cartesian_2d(x_range.log_scale(), y_range)
        .map_err(|err| failed(&err))?;
    let name_of = |y: &f64| {
        let row = y.round();
        let on_row = (y - row).abs() < 1e-6 && row >= 0.0;
        (on_row.then(|| bars.get(row as usize)).flatten())
            .map_or_else(String::new, |bar| bar.label.clone())
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows)
        .y_label_formatter(&name_of)
        .x_labels(12)
        .x_label_formatter(&|x| format!("{x}x"))
        .x_desc("throughput against the base, log scale: median of the rounds, whisker from lowest to highest")
        .draw()
        .map_err(|err| failed(&err))?;
    let bar_shapes = bars.iter().enumerate().map(|(row, bar)| {
        let y = row as f64;
        let color = if bar.median >= 1.0 { FASTER } else { SLOWER };
        let (from, to) = (bar.median.min(1.0), bar.median.max(1.0));
        Rectangle::new([(from, y - 0.32), (to, y + 0.32)], color.filled())
    });
    chart.draw_series(bar_shapes).map_err(|err| failed(&err))?;
    let whiskers = bars.iter().enumerate().flat_map(|(row, bar)| {
        let (y, (low, high)) = (row as f64, bar.spread);
        [
            PathElement::new(vec![(low, y), (high, y)], WHISKER.stroke_width(2)),
            PathElement::new(
                vec![(low, y - 0.18), (low, y + 0.18)],
                WHISKER.stroke_width(2),
            ),
            PathElement::new(
                vec![(high, y - 0.18), (high, y + 0.18)],
                WHISKER.stroke_width(2),
            ),
        ]
    });
    chart.draw_series(whiskers).map_err(|err| failed(&err))?;
    let base_line = PathElement::new(
        vec![(1.0, rows as f64 - 0.5), (1.0, -0.5)],
        BASE.stroke_width(2),
    );
    chart
        .draw_series(std::iter::once(base_line))
        .map_err(|err| failed(&err))?;
    root.present().map_err(|err| failed(&err))
}

/// The lowest and highest of the rounds' ratios, `own[i] / base[i]`.
pub(crate) fn spread(own: &[f64], base: &[f64]) -> Option<(f64, f64)> {
    let ratios = own.iter().zip(base).map(|(own, base)| own / base);
    ratios.fold(None, |range, ratio| match range {
        None => Some((ratio, ratio)),
        Some((low, high)) => Some((f64::min(low, ratio), f64::max(high, ratio))),
    })
}

/// A bar for each case measured against another case.
pub(crate) fn bars(rows: &[Row]) -> Vec<Bar> {
    rows.iter()
        .filter(|row| row.case.raw() != row.case)
        .filter_map(|row| {
            Some(Bar {
                label: format!("{} / {}", row.case.name(), row.case.raw().name()),
                median: row.ratio_vs_raw?,
                spread: row.spread?,
            })
        })
        .collect()
}
