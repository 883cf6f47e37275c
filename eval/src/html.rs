//! The evaluation as one self-contained HTML page: a summary table, bar
//! plots (misses by class, recall per module or file) as inline SVG, and
//! the tables of missed edges, executed-but-unreachable functions and
//! verdict changes.

use std::fmt::Write;

use crate::{ArtifactEval, Evaluation, MissClass};

/// Rows shown per table; the JSON has them all.
const MAX_ROWS: usize = 500;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn percent(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{:.1}%", r * 100.0))
}

/// A horizontal bar plot: one bar per (label, value), scaled to `max`.
fn bars(rows: &[(String, f64, String)], max: f64) -> String {
    let height = 22 * rows.len() + 10;
    let mut svg = format!(
        "<svg class=\"plot\" width=\"720\" height=\"{height}\" role=\"img\" xmlns=\"http://www.w3.org/2000/svg\">"
    );
    for (i, (label, value, text)) in rows.iter().enumerate() {
        let y = 22 * i + 5;
        let width = if max > 0.0 { value / max * 420.0 } else { 0.0 };
        let _ = write!(
            svg,
            "<text x=\"210\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <rect x=\"220\" y=\"{y}\" width=\"{width:.1}\" height=\"16\" fill=\"#4878a8\"/>\
             <text x=\"{:.1}\" y=\"{}\">{}</text>",
            y + 13,
            escape(label),
            226.0 + width,
            y + 13,
            escape(text)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn artifact_section(out: &mut String, a: &ArtifactEval) {
    let _ = write!(out, "<h2>{}</h2>", escape(&a.artifact));
    let _ = write!(
        out,
        "<table><tr><th>functions</th><th>static edges</th><th>runtime edges</th>\
         <th>between known functions</th><th>matched</th><th>recall</th>\
         <th>executed functions</th><th>executed, statically unreachable</th>\
         <th>unexercised static edges of executed callers</th><th>indirect call sites</th></tr>\
         <tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><b>{}</b></td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr></table>",
        a.functions,
        a.static_edges,
        a.runtime_edges,
        a.runtime_edges_known,
        a.matched,
        percent(a.recall),
        a.executed_functions,
        a.executed_statically_unreachable.len(),
        a.unexercised_static_edges,
        a.indirect_call_sites,
    );
    out.push_str("<h3>Missed runtime edges by class</h3>");
    let classes: Vec<(String, f64, String)> = MissClass::ALL
        .iter()
        .map(|c| {
            let n = a.misses_by_class.get(c).copied().unwrap_or(0);
            (c.name().to_string(), n as f64, n.to_string())
        })
        .collect();
    let max = classes.iter().map(|r| r.1).fold(0.0, f64::max);
    out.push_str(&bars(&classes, max));
    if !a.modules.is_empty() {
        out.push_str("<h3>Recall per module (the caller's file or package)</h3>");
        let mut modules = a.modules.clone();
        modules.sort_by(|x, y| {
            y.runtime_edges
                .cmp(&x.runtime_edges)
                .then(x.module.cmp(&y.module))
        });
        let rows: Vec<(String, f64, String)> = modules
            .iter()
            .take(40)
            .map(|m| {
                (
                    m.module.clone(),
                    m.recall.unwrap_or(0.0),
                    format!(
                        "{} of {} ({})",
                        m.matched,
                        m.runtime_edges,
                        percent(m.recall)
                    ),
                )
            })
            .collect();
        out.push_str(&bars(&rows, 1.0));
        if modules.len() > 40 {
            let _ = write!(
                out,
                "<p>… {} more modules in the JSON.</p>",
                modules.len() - 40
            );
        }
    }
    out.push_str("<h3>Missed edges</h3><table><tr><th>caller</th><th>callee</th><th>hits</th><th>class</th></tr>");
    for m in a.missed.iter().take(MAX_ROWS) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&m.caller),
            escape(&m.callee),
            m.hits,
            m.class.name()
        );
    }
    out.push_str("</table>");
    if a.missed.len() > MAX_ROWS {
        let _ = write!(
            out,
            "<p>… {} more in the JSON.</p>",
            a.missed.len() - MAX_ROWS
        );
    }
    out.push_str("<h3>Executed but statically unreachable</h3><p>");
    let shown: Vec<String> = a
        .executed_statically_unreachable
        .iter()
        .take(MAX_ROWS)
        .map(|s| format!("<code>{}</code>", escape(s)))
        .collect();
    out.push_str(if shown.is_empty() { "none" } else { "" });
    out.push_str(&shown.join(", "));
    out.push_str("</p>");
    if !a.verdict_changes.is_empty() {
        out.push_str("<h3>Targets whose verdict the missed edges change</h3><table><tr><th>target</th><th>path</th><th>missed edges on it</th></tr>");
        for v in &a.verdict_changes {
            let missed: Vec<String> = v
                .missed_edges
                .iter()
                .map(|[x, y]| format!("{} → {}", escape(x), escape(y)))
                .collect();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&v.target),
                escape(&v.path.join(" → ")),
                missed.join("<br>")
            );
        }
        out.push_str("</table>");
    }
}

/// The page.
pub fn render(eval: &Evaluation) -> String {
    let mut out = String::from(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>tracemerge eval</title>\
         <style>body{font-family:sans-serif;margin:2em;max-width:80em}\
         table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;padding:2px 6px;font-size:90%}\
         th{background:#eee}.plot text{font-size:12px;font-family:sans-serif}code{font-size:90%}</style>\
         </head><body><h1>Static call graph against what ran</h1>",
    );
    let _ = write!(
        out,
        "<p>Recall = runtime edges between functions of the static graph that it contains, \
         over all such runtime edges. Schema <code>{}</code>, digest <code>{}</code>.</p>",
        eval.schema,
        escape(&eval.digest)
    );
    for a in &eval.artifacts {
        artifact_section(&mut out, a);
    }
    if !eval.without_static_graph.is_empty() {
        let names: Vec<String> = eval
            .without_static_graph
            .iter()
            .map(|s| escape(s))
            .collect();
        let _ = write!(
            out,
            "<h2>Runtime edges without a static graph</h2><p>{}</p>",
            names.join(", ")
        );
    }
    out.push_str("</body></html>\n");
    out
}
