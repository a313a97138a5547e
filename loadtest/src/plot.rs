//! `--svg`: latency over time (p50, p99 and max per second, plus ops/s) and the latency
//! distribution (percentile curve), drawn with plotters' SVG backend only (no font or system
//! libraries: SVG text is rendered by the viewer).

use std::path::Path;

use plotters::prelude::*;

use crate::report::Report;

/// x position of percentile `p` (0..100) on a "nines" axis: 0 → 0, 90 → 1, 99 → 2, …
pub fn nines(p: f64) -> f64 {
    let rest = (1.0 - p / 100.0).max(1e-6);
    -rest.log10()
}

/// Writes the two charts of `r` into `path`.
///
/// # Errors
/// When the file cannot be written.
pub fn draw(r: &Report, path: &Path) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1000, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(400);
    let title = format!(
        "janus-loadtest {} {} — {} clients",
        r.run.scenario, r.run.label, r.run.clients
    );

    let t_max = r.timeline.len().max(1) as f64;
    let y_max = r
        .timeline
        .iter()
        .map(|p| p.p99_ms)
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.2;
    let mut c = ChartBuilder::on(&top)
        .caption(format!("{title}: latency per second"), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)?;
    c.configure_mesh()
        .x_desc("seconds since start")
        .y_desc("ms")
        .draw()?;
    let series = |f: fn(&crate::report::TimePoint) -> f64| {
        r.timeline
            .iter()
            .map(move |p| (p.t_s as f64, f(p)))
            .collect::<Vec<_>>()
    };
    c.draw_series(LineSeries::new(series(|p| p.p50_ms), &BLUE))?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    c.draw_series(LineSeries::new(series(|p| p.p99_ms), &RED))?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    c.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;

    let d_max = r
        .distribution
        .iter()
        .map(|p| p.1)
        .fold(0.0f64, f64::max)
        .max(0.001)
        * 1.1;
    let mut d = ChartBuilder::on(&bottom)
        .caption("latency distribution, all requests", ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..6.0, 0.0..d_max)?;
    d.configure_mesh()
        .x_desc("percentile")
        .y_desc("ms")
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            format!("{p:.4}%")
        })
        .draw()?;
    d.draw_series(LineSeries::new(
        r.distribution.iter().map(|&(p, ms)| (nines(p), ms)),
        &BLUE,
    ))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Report, TimePoint};

    #[test]
    fn nines_axis() {
        assert!(nines(0.0).abs() < 1e-9);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-6);
        assert!(nines(100.0) <= 6.0 + 1e-9);
    }

    #[test]
    fn draws_an_svg() {
        let timeline = (0..5)
            .map(|t| TimePoint {
                t_s: t,
                ops: 10,
                errors: 0,
                p50_ms: 1.0,
                p99_ms: 2.0 + t as f64,
                max_ms: 9.0,
            })
            .collect();
        let r = Report {
            timeline,
            distribution: vec![(0.0, 0.5), (50.0, 1.0), (99.0, 3.0), (100.0, 9.0)],
            ..Report::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.svg");
        draw(&r, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("<svg"));
        assert!(text.contains("latency distribution"));
    }
}
