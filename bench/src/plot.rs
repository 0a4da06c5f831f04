//! The ingest plot: events/s and p99 latency against clients, the service (inline and the
//! worker) vs pgbench (the bare table, the service's own statement), medians with the min–max
//! range of the runs as a vertical bar.

use std::path::Path;

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::results::{Results, Side};
use crate::stats::Spread;

/// Where a sans-serif TrueType font is found (text is drawn with ab_glyph, no fontconfig).
const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn register_font() -> anyhow::Result<()> {
    let path = FONT_CANDIDATES
        .iter()
        .find(|p| Path::new(p).is_file())
        .context("no TrueType font found (apt-get install fonts-dejavu-core)")?;
    let bytes: &'static [u8] = Box::leak(std::fs::read(path)?.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{path} is not a usable font"))?;
    Ok(())
}

struct Series {
    label: &'static str,
    color: RGBColor,
    points: Vec<(f64, Spread)>,
}

/// Draws the plot to `path` (PNG).
pub fn ingest(results: &Results, path: &Path) -> anyhow::Result<()> {
    register_font()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let clients = &results.args.clients;
    let collect = |f: &dyn Fn(usize) -> Option<Spread>| -> Vec<(f64, Spread)> {
        clients.iter().filter_map(|&c| Some(((c as f64).log2(), f(c)?))).collect()
    };
    let throughput = [
        Series {
            label: "service POST /events (events/s)",
            color: RGBColor(31, 119, 180),
            points: collect(&|c| results.single(Side::Service, c, |m| m.events_per_s)),
        },
        Series {
            label: "worker, Pub/Sub pushes (events/s)",
            color: RGBColor(44, 160, 44),
            points: collect(&|c| results.single(Side::Worker, c, |m| m.events_per_s)),
        },
        Series {
            label: "pgbench single-row insert, bare table (tx/s)",
            color: RGBColor(148, 103, 189),
            points: collect(&|c| results.single(Side::Bare, c, |m| m.events_per_s)),
        },
        Series {
            label: "pgbench, the service's statement, 1 event (tx/s)",
            color: RGBColor(214, 39, 40),
            points: collect(&|c| results.single(Side::Same, c, |m| m.events_per_s)),
        },
    ];
    let latency = [
        Series {
            label: "service p99",
            color: RGBColor(31, 119, 180),
            points: collect(&|c| results.single(Side::Service, c, |m| m.p99_ms)),
        },
        Series {
            label: "worker p99",
            color: RGBColor(44, 160, 44),
            points: collect(&|c| results.single(Side::Worker, c, |m| m.p99_ms)),
        },
        Series {
            label: "pgbench bare table p99",
            color: RGBColor(148, 103, 189),
            points: collect(&|c| results.single(Side::Bare, c, |m| m.p99_ms)),
        },
        Series {
            label: "pgbench bare table average",
            color: RGBColor(255, 127, 14),
            points: collect(&|c| results.single(Side::Bare, c, |m| m.avg_ms)),
        },
    ];

    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "Single-event durable ingest, median of {} run(s) with min-max bars; {} cores shared by generator, service and PostgreSQL ({} UTC)",
        results.args.runs, results.machine.cores, results.machine.date
    );
    let root = root.titled(&title, ("sans-serif", 18))?;
    let (left, right) = root.split_horizontally(700);
    panel(&left, "throughput", "events/s", &throughput, false)?;
    panel(&right, "latency", "ms", &latency, true)?;
    root.present().context("writing the PNG")?;
    Ok(())
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
) -> anyhow::Result<()> {
    let all: Vec<&(f64, Spread)> = series.iter().flat_map(|s| s.points.iter()).collect();
    // Clients on a log2 axis: x is log2(clients), labelled with the client count.
    let x_max = all.iter().map(|(x, _)| *x).fold(0.0, f64::max) + 0.5;
    let y_max = all.iter().map(|(_, s)| s.max).fold(0.0, f64::max).max(1e-3) * 1.15;
    let y_min = all.iter().map(|(_, s)| s.min).fold(f64::INFINITY, f64::min).min(y_max) * 0.7;
    let x_range = -0.5..x_max;
    let x_ticks = (x_max + 0.5).ceil() as usize;
    let x_fmt =
        |x: &f64| if (x - x.round()).abs() < 1e-6 { format!("{}", 2f64.powf(x.round())) } else { String::new() };
    let mut chart_builder = ChartBuilder::on(area);
    chart_builder.caption(caption, ("sans-serif", 18)).margin(12).x_label_area_size(40).y_label_area_size(70);
    if log_y {
        let y_fmt = |y: &f64| if *y >= 10.0 { format!("{y:.0}") } else { format!("{y:.1}") };
        let mut chart = chart_builder.build_cartesian_2d(x_range, (y_min.max(1e-3)..y_max).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("clients (log scale)")
            .y_desc(y_label)
            .x_labels(x_ticks)
            .x_label_formatter(&x_fmt)
            .y_labels(10)
            .y_label_formatter(&y_fmt)
            .max_light_lines(1)
            .draw()?;
        draw_series(&mut chart, series)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
    } else {
        let y_fmt = |y: &f64| crate::stats::rate(*y);
        let mut chart = chart_builder.build_cartesian_2d(x_range, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("clients (log scale)")
            .y_desc(y_label)
            .x_labels(x_ticks)
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .max_light_lines(1)
            .draw()?;
        draw_series(&mut chart, series)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
    }
    Ok(())
}

fn draw_series<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    series: &[Series],
) -> anyhow::Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for s in series.iter().filter(|s| !s.points.is_empty()) {
        let color = s.color;
        chart
            .draw_series(LineSeries::new(s.points.iter().map(|(x, p)| (*x, p.median)), color.stroke_width(2)))?
            .label(s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(s.points.iter().map(|(x, p)| Circle::new((*x, p.median), 4, color.filled())))?;
        chart.draw_series(
            s.points.iter().map(|(x, p)| PathElement::new(vec![(*x, p.min), (*x, p.max)], color.stroke_width(1))),
        )?;
    }
    Ok(())
}
