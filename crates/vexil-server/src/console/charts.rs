//! The results page's charts, drawn on the server as SVG with `plotters` (its SVG backend only)
//! and inlined into the page: the console's policy allows no inline scripts, and a chart that
//! is markup needs none. Days are on the x axis (labelled `MM-DD`, UTC); one colour per variant
//! (or treatment), in the results' order, with a legend.
//!
//! Hooks: each chart is an `svg` inside its caller's `figure`; lines are `polyline`s.

use maud::{html, Markup, PreEscaped};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use vexil_core::analysis::report::DayEffect;
use vexil_core::service::DayUnits;

use super::layout::when;

const SIZE: (u32, u32) = (720, 300);
const FONT: &str = "sans-serif";

/// The colours of the lines, by position (the control first).
const COLOURS: [RGBColor; 6] = [
    RGBColor(90, 90, 90),
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// `MM-DD` of a day's UTC midnight.
fn day_label(ms: i64) -> String {
    when(ms).get(5..10).unwrap_or_default().to_owned()
}

/// The x range of `n` days, half a day either side, so a single day sits in the middle.
fn x_range(n: usize) -> std::ops::Range<f64> {
    -0.5..(n.max(1) - 1) as f64 + 0.5
}

/// The share of the y range left free above the data for the legend.
const HEADROOM: f64 = 0.35;

/// Cumulative exposed units per variant and day.
pub(crate) fn exposures(variants: &[String], days: &[DayUnits]) -> Markup {
    let top = days
        .iter()
        .flat_map(|d| d.units.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let labels: Vec<String> = days.iter().map(|d| day_label(d.day)).collect();
    let lines: Vec<(String, Vec<(f64, f64)>)> = variants
        .iter()
        .enumerate()
        .map(|(v, name)| {
            let points = days
                .iter()
                .enumerate()
                .map(|(i, d)| (i as f64, d.units.get(v).copied().unwrap_or(0) as f64))
                .collect();
            (name.clone(), points)
        })
        .collect();
    let drawn = draw(
        &labels,
        0.0..top * (1.0 + HEADROOM),
        "exposed units",
        &|y| format!("{y:.0}"),
        |chart| {
            for (i, (name, points)) in lines.iter().enumerate() {
                let style = colour(i).stroke_width(2);
                chart
                    .draw_series(LineSeries::new(points.iter().copied(), style).point_size(3))?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
            }
            Ok(())
        },
    );
    svg(drawn)
}

/// The relative effect of each treatment with its interval over time (one band and line per
/// treatment); the zero line marks "no effect".
pub(crate) fn effect_over_time(
    treatments: &[String],
    days: &[i64],
    over_time: &[Vec<DayEffect>],
) -> Markup {
    let index = |day: i64| days.iter().position(|d| *d == day).unwrap_or(0) as f64;
    let (mut low, mut high) = (0.0f64, 0.0f64);
    for e in over_time.iter().flatten() {
        for y in [Some(e.estimate), e.lower, e.upper].into_iter().flatten() {
            low = low.min(y);
            high = high.max(y);
        }
    }
    let span = (high - low).max(0.02);
    let labels: Vec<String> = days.iter().map(|d| day_label(*d)).collect();
    let n = labels.len();
    let drawn = draw(
        &labels,
        (low - span * 0.1)..(high + span * HEADROOM),
        "relative effect",
        &|y| format!("{:.0}%", y * 100.0),
        |chart| {
            let zero = BLACK.mix(0.6).stroke_width(1);
            let x = x_range(n);
            chart.draw_series(LineSeries::new([(x.start, 0.0), (x.end, 0.0)], zero))?;
            for (t, (name, effects)) in treatments.iter().zip(over_time).enumerate() {
                let c = colour(t + 1);
                // The band of the two-sided interval, where both ends are known.
                let bounded: Vec<(f64, f64, f64)> = effects
                    .iter()
                    .filter_map(|e| Some((index(e.day), e.lower?, e.upper?)))
                    .collect();
                if !bounded.is_empty() {
                    let mut outline: Vec<(f64, f64)> =
                        bounded.iter().map(|(x, _, u)| (*x, *u)).collect();
                    outline.extend(bounded.iter().rev().map(|(x, l, _)| (*x, *l)));
                    chart.draw_series(std::iter::once(Polygon::new(
                        outline,
                        c.mix(0.18).filled(),
                    )))?;
                    // Whiskers too: the band of a single day has no width.
                    chart.draw_series(bounded.iter().map(|(x, l, u)| {
                        PathElement::new(vec![(*x, *l), (*x, *u)], c.mix(0.7).stroke_width(2))
                    }))?;
                }
                let points: Vec<(f64, f64)> =
                    effects.iter().map(|e| (index(e.day), e.estimate)).collect();
                let style = c.stroke_width(2);
                chart
                    .draw_series(LineSeries::new(points, style).point_size(3))?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], style));
            }
            Ok(())
        },
    );
    svg(drawn)
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type Drawn = Result<(), DrawingAreaErrorKind<<SVGBackend<'static> as DrawingBackend>::ErrorType>>;

/// A chart over the days `labels` with the y range and format given; `series` draws the lines.
fn draw(
    labels: &[String],
    y: std::ops::Range<f64>,
    y_desc: &str,
    y_format: &dyn Fn(&f64) -> String,
    series: impl FnOnce(&mut Chart<'_, '_>) -> Drawn,
) -> Result<String, String> {
    let mut out = String::new();
    let x_format = |x: &f64| {
        let i = x.round();
        if (x - i).abs() > 1e-6 || i < 0.0 {
            return String::new();
        }
        labels.get(i as usize).cloned().unwrap_or_default()
    };
    let result: Drawn = (|| {
        let root = SVGBackend::with_string(&mut out, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(x_range(labels.len()), y)?;
        chart
            .configure_mesh()
            .x_labels(labels.len().clamp(2, 10))
            .x_label_formatter(&x_format)
            .y_labels(6)
            .y_label_formatter(y_format)
            .y_desc(y_desc)
            .max_light_lines(1)
            .light_line_style(BLACK.mix(0.04))
            .label_style((FONT, 14))
            .draw()?;
        series(&mut chart)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()?;
        root.present()
    })();
    // The drawing area borrows `out` until it is dropped, inside the closure.
    result.map(|()| out).map_err(|e| e.to_string())
}

fn svg(drawn: Result<String, String>) -> Markup {
    match drawn {
        Ok(svg) => html! { (PreEscaped(svg)) },
        Err(e) => {
            tracing::warn!(error = %e, "a results chart could not be drawn");
            html! { p.hint { "The chart could not be drawn." } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    /// The number of points of each `polyline` of an SVG.
    fn polylines(svg: &str) -> Vec<usize> {
        svg.split("<polyline")
            .skip(1)
            .filter_map(|p| p.split("points=\"").nth(1)?.split('"').next())
            .map(|points| points.split_whitespace().count())
            .collect()
    }

    #[test]
    fn charts_draw_a_line_per_series_with_a_point_per_day() {
        let variants = ["control".to_owned(), "treatment".to_owned()];
        let days: Vec<DayUnits> = (0..3)
            .map(|d| DayUnits {
                day: 1_796_169_600_000 + d * DAY,
                units: vec![100 * (d as u64 + 1), 110 * (d as u64 + 1)],
            })
            .collect();
        let svg = exposures(&variants, &days).into_string();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(
            svg.contains("\n12-02\n") && svg.contains("\n12-04\n"),
            "{svg}"
        );
        assert!(svg.contains("\ntreatment\n"), "the legend: {svg}");
        assert_eq!(
            polylines(&svg).iter().filter(|n| **n == 3).count(),
            2,
            "{svg}"
        );

        let over_time = vec![days
            .iter()
            .map(|d| DayEffect {
                day: d.day,
                estimate: 0.05,
                lower: Some(-0.01),
                upper: Some(0.11),
            })
            .collect::<Vec<_>>()];
        let day_keys: Vec<i64> = days.iter().map(|d| d.day).collect();
        let svg = effect_over_time(&variants[1..], &day_keys, &over_time).into_string();
        assert!(svg.contains("<polygon"), "the interval's band: {svg}");
        assert!(svg.contains("\n10%\n"), "percent labels: {svg}");
        assert!(polylines(&svg).contains(&3), "{svg}");
    }
}
