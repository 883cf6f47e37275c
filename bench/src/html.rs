//! The HTML report: one self-contained page (inline CSS and SVG drawn
//! here, no scripts) with the headline figures, three plots (update
//! latency against graph size, throughput against workers, cascade cost
//! against recompute) and every suite's figures.

use std::fmt::Write as _;

use serde_json::Value;

/// One line of a plot.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub color: &'static str,
    pub dashed: bool,
}

const COLORS: [&str; 6] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A short label for an axis value.
fn label(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{}G", trim(v / 1e9))
    } else if a >= 1e6 {
        format!("{}M", trim(v / 1e6))
    } else if a >= 1e3 {
        format!("{}k", trim(v / 1e3))
    } else {
        trim(v)
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

struct Axis {
    log: bool,
    lo: f64,
    hi: f64,
}

impl Axis {
    fn new(values: impl Iterator<Item = f64>, log: bool, from_zero: bool) -> Axis {
        let vs: Vec<f64> = values
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .collect();
        let (mut lo, mut hi) = vs
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        if vs.is_empty() {
            (lo, hi) = if log { (1.0, 10.0) } else { (0.0, 1.0) };
        }
        if log {
            lo = 10f64.powf(lo.log10().floor());
            hi = 10f64.powf(hi.log10().ceil());
            if hi <= lo {
                hi = lo * 10.0;
            }
        } else {
            if from_zero {
                lo = lo.min(0.0);
            }
            if hi <= lo {
                hi = lo + 1.0;
            }
            hi *= 1.1;
        }
        Axis { log, lo, hi }
    }

    /// Position in 0..1.
    fn unit(&self, v: f64) -> f64 {
        if self.log {
            (v.max(self.lo).log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        }
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let mut t = Vec::new();
            let mut v = self.lo;
            while v <= self.hi * 1.0001 {
                t.push(v);
                v *= 10.0;
            }
            t
        } else {
            let raw = (self.hi - self.lo) / 5.0;
            let mag = 10f64.powf(raw.log10().floor());
            let step = [1.0, 2.0, 5.0, 10.0]
                .into_iter()
                .map(|m| m * mag)
                .find(|s| *s >= raw)
                .unwrap_or(raw);
            let mut t = Vec::new();
            let mut v = (self.lo / step).ceil() * step;
            while v <= self.hi {
                t.push(v);
                v += step;
            }
            t
        }
    }
}

/// An SVG line chart.
pub fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    (x_log, y_log): (bool, bool),
    series: &[Series],
) -> String {
    let (w, h) = (680.0, 380.0);
    let (left, right, top, bottom) = (70.0, 190.0, 40.0, 50.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let all = || series.iter().flat_map(|s| s.points.iter());
    let xa = Axis::new(all().map(|p| p.0), x_log, false);
    let ya = Axis::new(all().map(|p| p.1), y_log, true);
    let px = |x: f64| left + xa.unit(x) * pw;
    let py = |y: f64| top + ph - ya.unit(y) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r#"<text x="{}" y="22" font-size="15" font-weight="bold">{}</text>"#,
        left,
        escape(title)
    );
    let _ = write!(
        s,
        "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#999\"/>"
    );
    for t in xa.ticks() {
        let x = px(t);
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            top + ph,
            top + ph + 16.0,
            label(t)
        );
    }
    for t in ya.ticks() {
        let y = py(t);
        let _ = write!(
            s,
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + pw,
            left - 6.0,
            y + 4.0,
            label(t)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        h - 10.0,
        escape(x_label)
    );
    let _ = write!(
        s,
        r#"<text transform="translate(16,{:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        top + ph / 2.0,
        escape(y_label)
    );
    for (i, se) in series.iter().enumerate() {
        let pts: Vec<String> = se
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite() && (!y_log || *y > 0.0))
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let dash = if se.dashed {
            r#" stroke-dasharray="6,4""#
        } else {
            ""
        };
        if pts.len() > 1 {
            let _ = write!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                pts.join(" "),
                se.color
            );
        }
        for p in &pts {
            let (x, y) = p.split_once(',').expect("x,y");
            let _ = write!(
                s,
                r#"<circle cx="{x}" cy="{y}" r="3.5" fill="{}"/>"#,
                se.color
            );
        }
        let ly = top + 8.0 + i as f64 * 18.0;
        let lx = left + pw + 14.0;
        let _ = write!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{}" stroke-width="2"{dash}/><text x="{}" y="{}">{}</text>"#,
            lx + 22.0,
            se.color,
            lx + 28.0,
            ly + 4.0,
            escape(&se.name)
        );
    }
    s.push_str("</svg>");
    s
}

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn update_chart(update: &Value) -> Option<String> {
    let results = update["results"].as_array()?;
    let mut by_change: std::collections::BTreeMap<u64, Vec<(f64, f64)>> = Default::default();
    let mut p99: Vec<(f64, f64)> = Vec::new();
    let mut recompute = Vec::new();
    for r in results {
        let functions = f(&r["functions"])?;
        for c in r["changes"].as_array()? {
            let edges = c["edges"].as_u64()?;
            by_change
                .entry(edges)
                .or_default()
                .push((functions, f(&c["engine"]["p50_ms"])?));
            if edges == 1 {
                p99.push((functions, f(&c["engine"]["p99_ms"])?));
            }
        }
        recompute.push((functions, f(&r["recompute"]["p50_ms"])?));
    }
    let mut series: Vec<Series> = by_change
        .into_iter()
        .enumerate()
        .map(|(i, (edges, points))| Series {
            name: format!(
                "engine p50, {edges} edge{}",
                if edges == 1 { "" } else { "s" }
            ),
            points,
            color: COLORS[i % COLORS.len()],
            dashed: false,
        })
        .collect();
    series.push(Series {
        name: "engine p99, 1 edge".into(),
        points: p99,
        color: COLORS[0],
        dashed: true,
    });
    series.push(Series {
        name: "recompute p50".into(),
        points: recompute,
        color: "#000",
        dashed: false,
    });
    Some(chart(
        "Update latency vs graph size",
        "functions in the graph",
        "ms until verdicts are current",
        (true, true),
        &series,
    ))
}

fn scale_chart(scale: &Value) -> Option<String> {
    let points: Vec<(f64, f64)> = scale["runs"]
        .as_array()?
        .iter()
        .filter_map(|r| Some((f(&r["workers"])?, f(&r["records_per_s"])?)))
        .collect();
    // What perfect scaling from one worker would give.
    let ideal: Vec<(f64, f64)> = match points.iter().find(|p| p.0 == 1.0) {
        Some(&(_, one)) => points.iter().map(|&(w, _)| (w, one * w)).collect(),
        None => Vec::new(),
    };
    Some(chart(
        "Throughput vs workers",
        "timely workers",
        "records/s",
        (false, false),
        &[
            Series {
                name: "engine".into(),
                points,
                color: COLORS[0],
                dashed: false,
            },
            Series {
                name: "linear scaling".into(),
                points: ideal,
                color: "#999",
                dashed: true,
            },
        ],
    ))
}

fn cascade_chart(cascade: &Value) -> Option<String> {
    let sizes = cascade["sizes"].as_array()?;
    let pick = |key: &str| -> Vec<(f64, f64)> {
        sizes
            .iter()
            .filter_map(|s| Some((f(&s["fraction"])? * 100.0, f(&s[key]["p50_ms"])?)))
            .collect()
    };
    Some(chart(
        "Cascade: one edge flips a subtree",
        "subtree size (% of the graph)",
        "ms (p50)",
        (true, true),
        &[
            Series {
                name: "engine, flip on".into(),
                points: pick("engine_on"),
                color: COLORS[0],
                dashed: false,
            },
            Series {
                name: "engine, flip off".into(),
                points: pick("engine_off"),
                color: COLORS[1],
                dashed: false,
            },
            Series {
                name: "recompute".into(),
                points: pick("recompute"),
                color: "#000",
                dashed: false,
            },
        ],
    ))
}

/// The scalar fields of an object, as table rows (nested objects with a
/// dotted name, arrays left to the JSON below).
fn rows(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    if let Some(o) = v.as_object() {
        for (k, x) in o {
            let name = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match x {
                Value::Object(_) => rows(&name, x, out),
                Value::Array(_) => {}
                Value::String(s) => out.push((name, s.clone())),
                other => out.push((name, other.to_string())),
            }
        }
    }
}

fn table(v: &Value) -> String {
    let mut r = Vec::new();
    rows("", v, &mut r);
    let mut s = String::from("<table>");
    for (k, x) in r {
        let _ = write!(s, "<tr><th>{}</th><td>{}</td></tr>", escape(&k), escape(&x));
    }
    s.push_str("</table>");
    s
}

/// The headline figures, as (name, value) pairs.
pub fn headlines(results: &Value) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    let mut add = |name: &'static str, key: &str| {
        if let Some(v) = crate::lookup(results, key) {
            if !v.is_null() {
                h.push((name, v.to_string()));
            }
        }
    };
    add(
        "ingest: engine / hash-map dedup",
        "ingest.ratio_vs_hash_dedup",
    );
    add("ingest: engine records/s", "ingest.engine_records_per_s");
    add(
        "ingest: hash-map dedup records/s",
        "ingest.hash_dedup_records_per_s",
    );
    add(
        "update: recompute / engine (p50)",
        "update.speedup_vs_recompute",
    );
    add(
        "update: recompute / engine (p99)",
        "update.speedup_vs_recompute_p99",
    );
    add(
        "update: on a graph of (functions)",
        "update.speedup_graph_functions",
    );
    add("memory: bytes per live edge", "memory.bytes_per_live_edge");
    add(
        "memory: engine / adjacency list",
        "memory.ratio_vs_adjacency",
    );
    add("replay: records/s", "replay.records_per_s");
    add("scale: records/s ratio, most workers / 1", "scale.ratio");
    add(
        "scale: busiest thread's CPU, 1 worker / most",
        "scale.busiest_thread_ratio",
    );
    h
}

/// The whole page.
pub fn report(results: &Value) -> String {
    let mut s = String::new();
    s.push_str(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>tracemerge bench</title><style>\
body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}\
th{background:#f4f4f4;font-weight:normal}h2{margin-top:1.6em;border-bottom:1px solid #ddd}\
pre{background:#f8f8f8;padding:8px;overflow:auto;font-size:12px}svg{display:block;margin:1em 0}\
</style></head><body><h1>tracemerge bench</h1>",
    );
    let machine = &results["machine"];
    let _ = write!(
        s,
        "<p>{} run, {} on {} ({} cores), kernel {}, {} build, commit {}.</p>",
        if results["quick"].as_bool() == Some(true) {
            "Quick"
        } else {
            "Full"
        },
        escape(machine["date"].as_str().unwrap_or("?")),
        escape(machine["cpu"].as_str().unwrap_or("?")),
        machine["cores"],
        escape(machine["kernel"].as_str().unwrap_or("?")),
        escape(machine["profile"].as_str().unwrap_or("?")),
        escape(machine["git_commit"].as_str().unwrap_or("unknown")),
    );
    s.push_str("<h2>Headline figures</h2><table>");
    for (name, v) in headlines(results) {
        let _ = write!(
            s,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(name),
            escape(&v)
        );
    }
    s.push_str("</table>");
    s.push_str("<h2>Plots</h2>");
    for chart in [
        update_chart(&results["update"]),
        scale_chart(&results["scale"]),
        cascade_chart(&results["cascade"]),
    ]
    .into_iter()
    .flatten()
    {
        s.push_str(&chart);
    }
    for suite in crate::Suite::ALL {
        let v = &results[suite.name()];
        if v.is_null() {
            continue;
        }
        let _ = write!(s, "<h2>{}</h2>", suite.name());
        s.push_str(&table(v));
        let pretty = serde_json::to_string_pretty(v).unwrap_or_default();
        let _ = write!(
            s,
            "<details><summary>JSON</summary><pre>{}</pre></details>",
            escape(&pretty)
        );
    }
    s.push_str("</body></html>\n");
    s
}
