//! Inline SVG charts for the demo's HTML report: horizontal bars (one group
//! per set-up) and a CDF of connect latencies. Plain SVG elements, sized in
//! pixels, with no script, no stylesheet and nothing fetched: the page
//! stays one small self-contained file. (No `xmlns` either: SVG inside HTML
//! needs none.)

use std::fmt::Write;

/// Escape text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A step of 1, 2 or 5 times a power of ten, about `span / 5`.
fn nice_step(span: f64) -> f64 {
    if !span.is_finite() || span <= 0.0 {
        return 1.0;
    }
    let raw = span / 5.0;
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * p)
}

fn tick_label(v: f64) -> String {
    if v == 0.0 || v.abs() >= 10.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

/// One group of bars: the set-up's label, its colour, and one value per
/// series (`None`: not measured, drawn as "n/a").
pub struct Group<'a> {
    pub label: &'a str,
    pub color: &'a str,
    pub values: Vec<Option<f64>>,
}

/// Horizontal bars, a group per set-up and a bar per series; the first
/// series solid, the others lighter. `max` fixes the axis (100 for
/// percentages), otherwise it fits the largest value. `fmt` writes a value.
pub fn bars(
    title: &str,
    series: &[&str],
    groups: &[Group],
    max: Option<f64>,
    fmt: &dyn Fn(f64) -> String,
) -> String {
    const W: f64 = 720.0;
    const X0: f64 = 190.0;
    const X1: f64 = 610.0;
    const BAR: f64 = 18.0;
    const GAP: f64 = 14.0;
    let per = series.len().max(1) as f64;
    let legend = if series.len() > 1 { 22.0 } else { 0.0 };
    let top = 8.0 + legend;
    let biggest = groups
        .iter()
        .flat_map(|g| g.values.iter().flatten())
        .fold(0.0f64, |m, v| m.max(*v));
    let (step, axis_max) = match max {
        Some(m) => (nice_step(m), m),
        None => {
            let s = nice_step(biggest.max(1e-9));
            (s, (biggest / s).ceil().max(1.0) * s)
        }
    };
    let plot_h = groups.len() as f64 * (per * BAR + GAP);
    let h = top + plot_h + 28.0;
    let x = |v: f64| X0 + (v.clamp(0.0, axis_max) / axis_max) * (X1 - X0);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\" role=\"img\" \
         aria-label=\"{t}\" font-size=\"12\"><title>{t}</title>",
        t = esc(title)
    );
    // Grid and axis.
    let mut v = 0.0;
    while v <= axis_max * 1.000_001 {
        let gx = x(v);
        let _ = write!(
            s,
            "<line x1=\"{gx:.1}\" y1=\"{top}\" x2=\"{gx:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{gx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
            top + plot_h,
            top + plot_h + 16.0,
            esc(&tick_label(v))
        );
        v += step;
    }
    if series.len() > 1 {
        let mut lx = X0;
        for (k, name) in series.iter().enumerate() {
            let op = if k == 0 { 1.0 } else { 0.4 };
            let _ = write!(
                s,
                "<rect x=\"{lx}\" y=\"4\" width=\"14\" height=\"12\" fill=\"#666\" fill-opacity=\"{op}\"/>\
                 <text x=\"{:.0}\" y=\"14\">{}</text>",
                lx + 18.0,
                esc(name)
            );
            lx += 30.0 + 7.0 * name.len() as f64;
        }
    }
    for (gi, g) in groups.iter().enumerate() {
        let gy = top + gi as f64 * (per * BAR + GAP) + GAP / 2.0;
        let _ = write!(
            s,
            "<text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            X0 - 8.0,
            gy + per * BAR / 2.0 + 4.0,
            esc(g.label)
        );
        for (k, val) in g.values.iter().enumerate() {
            let y = gy + k as f64 * BAR;
            let op = if k == 0 { 1.0 } else { 0.4 };
            match val {
                Some(v) => {
                    let w = x(*v) - X0;
                    let _ = write!(
                        s,
                        "<rect x=\"{X0}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\" fill=\"{}\" \
                         fill-opacity=\"{op}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                        y + 1.0,
                        BAR - 2.0,
                        esc(g.color),
                        X0 + w + 5.0,
                        y + BAR / 2.0 + 4.0,
                        esc(&fmt(*v))
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"#777\">n/a</text>",
                        X0 + 5.0,
                        y + BAR / 2.0 + 4.0
                    );
                }
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// One line of the CDF: a set-up's latency percentiles (0th to 100th, ms).
pub struct Line<'a> {
    pub label: &'a str,
    pub color: &'a str,
    pub percentiles_ms: &'a [f64],
}

/// The cumulative distribution of connect latencies, one line per set-up,
/// on a logarithmic time axis: the line reaches y% at the latency under
/// which y% of the set-up's connections completed their handshake.
pub fn cdf(title: &str, lines: &[Line]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 320.0;
    const L: f64 = 56.0;
    const R: f64 = 500.0;
    const T: f64 = 12.0;
    const B: f64 = 270.0;
    let vals = || {
        lines
            .iter()
            .flat_map(|l| l.percentiles_ms.iter().copied())
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    let lo_v = vals().fold(f64::INFINITY, f64::min);
    let hi_v = vals().fold(0.0f64, f64::max);
    // The axis runs between 1, 2 or 5 times powers of ten around the data.
    let steps = |d: f64| [1.0, 2.0, 5.0].map(|m| m * 10f64.powf(d));
    let (lo, hi) = if lo_v.is_finite() && hi_v > 0.0 {
        let lo = steps(lo_v.log10().floor())
            .into_iter()
            .rev()
            .find(|v| *v <= lo_v * 1.000_001)
            .unwrap_or(lo_v);
        let hi = steps(hi_v.log10().floor())
            .into_iter()
            .chain([10f64.powf(hi_v.log10().floor() + 1.0)])
            .find(|v| *v >= hi_v * 0.999_999)
            .unwrap_or(hi_v);
        (lo, if hi <= lo { lo * 10.0 } else { hi })
    } else {
        (0.1, 10.0)
    };
    let x = |v: f64| {
        let v = v.max(lo).min(hi);
        L + (v.log10() - lo.log10()) / (hi.log10() - lo.log10()) * (R - L)
    };
    let y = |pct: f64| B - pct / 100.0 * (B - T);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"chart\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-label=\"{t}\" font-size=\"12\"><title>{t}</title>",
        t = esc(title)
    );
    for pct in [0.0, 25.0, 50.0, 75.0, 100.0] {
        let yy = y(pct);
        let _ = write!(
            s,
            "<line x1=\"{L}\" y1=\"{yy:.1}\" x2=\"{R}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{pct:.0}%</text>",
            L - 6.0,
            yy + 4.0,
        );
    }
    // 1, 2, 5 ticks in every decade.
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade < hi * 1.000_001 {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v < lo * 0.999_999 || v > hi * 1.000_001 {
                continue;
            }
            let gx = x(v);
            let _ = write!(
                s,
                "<line x1=\"{gx:.1}\" y1=\"{T}\" x2=\"{gx:.1}\" y2=\"{B}\" stroke=\"{}\"/>\
                 <text x=\"{gx:.1}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#555\">{}</text>",
                if m == 1.0 { "#ccc" } else { "#eee" },
                B + 16.0,
                esc(&tick_label(v))
            );
        }
        decade *= 10.0;
    }
    let _ = write!(
        s,
        "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"middle\">connect + TLS handshake, ms (log scale)</text>\
         <text x=\"14\" y=\"{:.0}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.0})\">connections</text>",
        (L + R) / 2.0,
        B + 38.0,
        (T + B) / 2.0,
        (T + B) / 2.0
    );
    for (k, l) in lines.iter().enumerate() {
        let n = l.percentiles_ms.len();
        if n >= 2 {
            let pts: Vec<String> = l
                .percentiles_ms
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{:.1},{:.1}", x(*v), y(100.0 * i as f64 / (n - 1) as f64)))
                .collect();
            let _ = write!(
                s,
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
                esc(l.color),
                pts.join(" ")
            );
        }
        let ly = T + 8.0 + k as f64 * 36.0;
        let at = |q: usize| l.percentiles_ms.get(q * (n.max(1) - 1) / 100).copied();
        let (p50, p99) = (at(50).unwrap_or(0.0), at(99).unwrap_or(0.0));
        let _ = write!(
            s,
            "<line x1=\"{:.0}\" y1=\"{ly:.0}\" x2=\"{:.0}\" y2=\"{ly:.0}\" stroke=\"{}\" stroke-width=\"3\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\">{}</text>\
             <text x=\"{:.0}\" y=\"{:.0}\" fill=\"#555\">p50 {p50:.2} ms, p99 {p99:.2} ms</text>",
            R + 14.0,
            R + 32.0,
            esc(l.color),
            R + 38.0,
            ly + 4.0,
            esc(l.label),
            R + 38.0,
            ly + 19.0,
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(100.0), 20.0);
        assert_eq!(nice_step(3000.0), 1000.0);
        assert_eq!(nice_step(0.7), 0.2);
        assert_eq!(nice_step(0.0), 1.0);
    }

    #[test]
    fn charts_are_one_svg_each_and_escape_their_text() {
        let g = [Group {
            label: "<x>",
            color: "#123456",
            values: vec![Some(50.0), None],
        }];
        let b = bars("t & u", &["all", "other"], &g, Some(100.0), &|v| {
            format!("{v}%")
        });
        assert_eq!(b.matches("<svg").count(), 1);
        assert!(b.contains("&lt;x&gt;") && b.contains("t &amp; u") && b.contains("n/a"));
        let p: Vec<f64> = (0..=100).map(|i| 0.5 + i as f64 / 50.0).collect();
        let c = cdf(
            "latency",
            &[Line {
                label: "a",
                color: "#000",
                percentiles_ms: &p,
            }],
        );
        assert_eq!(c.matches("<svg").count(), 1);
        assert_eq!(c.matches("<polyline").count(), 1);
        assert!(!c.contains("NaN") && !c.contains("inf"), "{c}");
    }
}
