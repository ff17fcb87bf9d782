//! The chart for BENCHMARKS.md: hand-written SVG, so no plotting dependency.
//!
//! Two panels of horizontal grouped bars, every value divided by nginx's in the same run
//! (nginx = 1, the dashed line): throughput per workload (longer is better), then proxy CPU
//! per request or GiB and memory per idle connection (shorter is better).

use std::fmt::Write as _;

use crate::anchors::Kind;
use crate::report::median_of;
use crate::workloads::Results;

const WIDTH: f64 = 980.0;
const LABEL_X: f64 = 360.0;
const BAR_RIGHT: f64 = 930.0;
const BAR_H: f64 = 8.0;
const GROUP_GAP: f64 = 10.0;

struct Group {
    label: String,
    /// (target, value relative to nginx)
    bars: Vec<(Kind, f64)>,
}

struct Panel {
    title: &'static str,
    groups: Vec<Group>,
}

fn colour(kind: Kind) -> &'static str {
    match kind {
        Kind::Dockgate => "#1f6fb4",
        Kind::Nginx => "#2ca02c",
        Kind::DockerdTls => "#ff7f0e",
        Kind::Socket => "#8c8c8c",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn panels(results: &Results) -> Vec<Panel> {
    let mut speed = Vec::new();
    let mut cost = Vec::new();
    for s in &results.series {
        let Some(nginx) = median_of(s, Kind::Nginx, |x| Some(x.throughput)) else {
            continue;
        };
        let bars = Kind::ALL
            .iter()
            .filter_map(|&k| median_of(s, k, |x| Some(x.throughput)).map(|v| (k, v / nginx)))
            .collect();
        speed.push(Group {
            label: s.id.clone(),
            bars,
        });
        let proxy = |k: Kind| median_of(s, k, |x| x.proxy_cpu);
        if let (Some(d), Some(n)) = (proxy(Kind::Dockgate), proxy(Kind::Nginx)) {
            if n > 0.0 {
                cost.push(Group {
                    label: format!("CPU: {}", s.id),
                    bars: vec![(Kind::Dockgate, d / n), (Kind::Nginx, 1.0)],
                });
            }
        }
    }
    for r in results.rss.iter().filter(|r| r.kind == Kind::Dockgate) {
        let nginx = results
            .rss
            .iter()
            .find(|n| n.kind == Kind::Nginx && n.what == r.what && n.count == r.count)
            .map(|n| n.per_item_kib());
        if let Some(n) = nginx.filter(|&n| n > 0.0) {
            cost.push(Group {
                label: format!("RSS: {} idle {}s", r.count, r.what),
                bars: vec![(Kind::Dockgate, r.per_item_kib() / n), (Kind::Nginx, 1.0)],
            });
        }
    }
    vec![
        Panel {
            title: "Throughput relative to nginx (nginx = 1; longer is better)",
            groups: speed,
        },
        Panel {
            title: "Proxy CPU per request or GiB, RSS per idle connection, relative to nginx (shorter is better)",
            groups: cost,
        },
    ]
}

pub fn render(results: &Results, subtitle: &str) -> String {
    let panels = panels(results);
    let mut body = String::new();
    let mut y = 70.0;
    for panel in &panels {
        y = draw_panel(&mut body, panel, y) + 30.0;
    }
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{y}" viewBox="0 0 {WIDTH} {y}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">dockgate beside its anchors</text>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="10" y="40" fill="dimgray">{}</text>"#,
        escape(subtitle)
    );
    let mut x = 10.0;
    for kind in Kind::ALL {
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="50" width="12" height="10" fill="{}"/><text x="{}" y="59">{kind}</text>"#,
            colour(kind),
            x + 16.0
        );
        x += 110.0;
    }
    svg.push_str(&body);
    svg.push_str("</svg>\n");
    svg
}

/// Draws `panel` from `top`; returns where it ends.
fn draw_panel(svg: &mut String, panel: &Panel, top: f64) -> f64 {
    let _ = writeln!(
        svg,
        r#"<text x="10" y="{}" font-size="13" font-weight="bold">{}</text>"#,
        top + 14.0,
        escape(panel.title)
    );
    let max = panel
        .groups
        .iter()
        .flat_map(|g| g.bars.iter().map(|b| b.1))
        .fold(1.5_f64, f64::max);
    let max = (max * 2.0).ceil() / 2.0;
    let scale = (BAR_RIGHT - LABEL_X) / max;
    let axis_top = top + 24.0;
    // Bars go in after the grid, so that they are drawn over it.
    let mut bars = String::new();
    let mut y = axis_top + 6.0;
    for group in &panel.groups {
        let height = group.bars.len() as f64 * BAR_H;
        let _ = writeln!(
            bars,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LABEL_X - 6.0,
            y + height / 2.0 + 4.0,
            escape(&group.label)
        );
        for (i, &(kind, value)) in group.bars.iter().enumerate() {
            let by = y + i as f64 * BAR_H;
            let _ = writeln!(
                bars,
                r#"<rect x="{LABEL_X}" y="{by}" width="{:.1}" height="{}" fill="{}"><title>{kind}: {value:.2}</title></rect>"#,
                value * scale,
                BAR_H - 1.0,
                colour(kind)
            );
            let _ = writeln!(
                bars,
                r#"<text x="{:.1}" y="{}" font-size="8" fill="black">{value:.2}</text>"#,
                LABEL_X + value * scale + 3.0,
                by + BAR_H - 1.5
            );
        }
        y += height + GROUP_GAP;
    }
    // Grid: every 0.5, with nginx's 1.0 dashed.
    let mut tick = 0.0;
    while tick <= max + 1e-9 {
        let x = LABEL_X + tick * scale;
        let dash = if (tick - 1.0).abs() < 1e-9 {
            r#" stroke-dasharray="4 3" stroke="black""#
        } else {
            r#" stroke="gainsboro""#
        };
        let _ = writeln!(
            svg,
            r#"<line x1="{x:.1}" y1="{axis_top}" x2="{x:.1}" y2="{y}"{dash}/><text x="{x:.1}" y="{}" text-anchor="middle" fill="dimgray">{tick:.1}</text>"#,
            y + 12.0
        );
        tick += 0.5;
    }
    svg.push_str(&bars);
    y + 16.0
}
