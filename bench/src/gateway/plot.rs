//! SVG plots of a scenario's timeline, drawn with plotters: delivery latency, throughput and
//! memory over the run, one point per second. SVG needs no font files, so the plots come out
//! the same on a bare machine.

use std::path::Path;

use plotters::prelude::*;

use super::leader::Second;

const SIZE: (u32, u32) = (960, 480);

/// A line of `(t, value)` points with its legend.
struct Line<'a> {
    label: &'a str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

fn draw(path: &Path, title: &str, y_desc: &str, lines: &[Line<'_>]) -> anyhow::Result<()> {
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let (x0, x1) = all().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let y1 = all().fold(0.0f64, |m, p| m.max(p.1));
    let (x0, x1) = if x0 <= x1 {
        (x0, x1.max(x0 + 1.0))
    } else {
        (0.0, 1.0)
    };
    let y1 = if y1 > 0.0 { y1 * 1.05 } else { 1.0 };

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| anyhow::anyhow!("drawing {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, 0.0..y1)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the measured window began")
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    for l in lines {
        let color = l.color;
        chart
            .draw_series(LineSeries::new(
                l.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(err)?
            .label(l.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

fn series(t: &[Second], f: impl Fn(&Second) -> Option<f64>) -> Vec<(f64, f64)> {
    t.iter().filter_map(|s| Some((s.t as f64, f(s)?))).collect()
}

/// Delivery latency p50, p99 and max per second.
pub fn latency(path: &Path, t: &[Second]) -> anyhow::Result<()> {
    draw(
        path,
        "Delivery latency (scheduled send → frame read)",
        "ms",
        &[
            Line {
                label: "p50",
                color: BLUE,
                points: series(t, |s| s.p50_ms),
            },
            Line {
                label: "p99",
                color: RED,
                points: series(t, |s| s.p99_ms),
            },
            Line {
                label: "max",
                color: RGBColor(150, 150, 150),
                points: series(t, |s| s.max_ms),
            },
        ],
    )
}

/// Deliveries per second and the CPU of server and generator.
pub fn throughput(path: &Path, t: &[Second]) -> anyhow::Result<()> {
    draw(
        path,
        "Deliveries per second (thousands) and CPU (% of one core)",
        "k deliveries/s · % of a core",
        &[
            Line {
                label: "deliveries/s (thousands)",
                color: BLUE,
                points: series(t, |s| Some(s.deliveries as f64 / 1000.0)),
            },
            Line {
                label: "server CPU %",
                color: RED,
                points: series(t, |s| Some(s.server_cpu)),
            },
            Line {
                label: "generator CPU %",
                color: RGBColor(0, 140, 0),
                points: series(t, |s| Some(s.generator_cpu)),
            },
        ],
    )
}

/// Server and generator RSS, and the server's RSS per identified session.
pub fn memory(path: &Path, t: &[Second]) -> anyhow::Result<()> {
    draw(
        path,
        "Resident memory",
        "MiB · KiB per session",
        &[
            Line {
                label: "server RSS (MiB)",
                color: RED,
                points: series(t, |s| Some(s.server_rss_mib)),
            },
            Line {
                label: "generator RSS (MiB)",
                color: RGBColor(0, 140, 0),
                points: series(t, |s| Some(s.generator_rss_mib)),
            },
            Line {
                label: "server KiB per identified session",
                color: BLUE,
                points: series(t, |s| {
                    (s.identified > 0).then(|| s.server_rss_mib * 1024.0 / s.identified as f64)
                }),
            },
        ],
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn draws_each_plot_with_its_series() {
        let dir = tempfile::tempdir().unwrap();
        let t: Vec<Second> = (-3..10)
            .map(|i| Second {
                t: i,
                identified: 1000,
                deliveries: (50_000 + 1000 * i) as u64,
                p50_ms: (i >= 0).then_some(2.0),
                p99_ms: (i >= 0).then_some(9.5),
                max_ms: (i >= 0).then_some(30.0),
                server_cpu: 120.0,
                generator_cpu: 60.0,
                server_rss_mib: 300.0,
                generator_rss_mib: 100.0,
            })
            .collect();
        for (name, f) in [
            (
                "latency.svg",
                latency as fn(&Path, &[Second]) -> anyhow::Result<()>,
            ),
            ("throughput.svg", throughput),
            ("memory.svg", memory),
        ] {
            let p = dir.path().join(name);
            f(&p, &t).unwrap();
            let svg = std::fs::read_to_string(&p).unwrap();
            assert!(svg.starts_with("<svg"), "{name}");
            assert!(svg.contains("<polyline"), "{name} has no line");
        }
        // An empty timeline still gives a (blank) plot rather than an error.
        latency(&dir.path().join("empty.svg"), &[]).unwrap();
    }
}
