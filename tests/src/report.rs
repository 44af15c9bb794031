//! `rehearsal-report/index.html`: the rehearsal's report as one self-contained
//! page — plots are inline SVG drawn here, no script or style is fetched, so it
//! opens anywhere without a network. A few lines of inline script check, once
//! the page is laid out, that every plot rendered, and say so in the title
//! (`plots-rendered:<n>/<total>`), which the browser test reads.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    pub dashed: bool,
    /// A jump in x larger than this breaks the line (no data in between).
    pub max_gap: Option<f64>,
}

/// A line chart (or a step chart) as inline SVG.
pub fn chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    step: bool,
    marks: &[(String, f64)],
) -> String {
    let (w, h, left, right, top, bottom) = (900.0, 300.0, 70.0, 200.0, 30.0, 45.0);
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, f64::MIN);
    for (x, y) in &all {
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y1 = y1.max(*y);
    }
    if all.is_empty() {
        (x0, x1, y1) = (0.0, 1.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.08 };
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - right);
    let py = |y: f64| top + (1.0 - y / y1) * (h - top - bottom);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-label="{t}"><text x="{left}" y="18" font-weight="bold">{t}</text>"##,
        t = esc(title)
    );
    for i in 0..=5 {
        let yv = y1 * f64::from(i) / 5.0;
        let y = py(yv);
        let _ = write!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" font-size="11" text-anchor="end">{yv:.0}</text>"##,
            w - right,
            left - 6.0,
            y + 4.0
        );
        let xv = x0 + (x1 - x0) * f64::from(i) / 5.0;
        let _ = write!(
            svg,
            r##"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{xv:.1}</text>"##,
            px(xv),
            h - bottom + 16.0
        );
    }
    let _ = write!(
        svg,
        r##"<line x1="{left}" x2="{left}" y1="{top}" y2="{}" stroke="#333"/><line x1="{left}" x2="{}" y1="{}" y2="{}" stroke="#333"/><text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text><text x="14" y="{}" font-size="12" transform="rotate(-90 14 {})" text-anchor="middle">{}</text>"##,
        h - bottom,
        w - right,
        h - bottom,
        h - bottom,
        (left + w - right) / 2.0,
        h - 8.0,
        esc(x_label),
        (top + h - bottom) / 2.0,
        (top + h - bottom) / 2.0,
        esc(y_label)
    );
    for (what, x) in marks {
        let x = px(*x);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{}" stroke="#888" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" font-size="10" fill="#555">{}</text>"##,
            h - bottom,
            x + 3.0,
            top + 10.0,
            esc(what)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mut segments: Vec<String> = vec![String::new()];
        let mut prev: Option<(f64, f64)> = None;
        for (x, y) in &s.points {
            if let (Some((x_prev, _)), Some(gap)) = (prev, s.max_gap) {
                if x - x_prev > gap {
                    segments.push(String::new());
                    prev = None;
                }
            }
            let Some(pts) = segments.last_mut() else {
                continue;
            };
            if step {
                if let Some((_, py_prev)) = prev {
                    let _ = write!(pts, "{:.1},{:.1} ", px(*x), py(py_prev));
                }
            }
            let _ = write!(pts, "{:.1},{:.1} ", px(*x), py(*y));
            prev = Some((*x, *y));
        }
        let dash = if s.dashed {
            r#"stroke-dasharray="6 4""#
        } else {
            ""
        };
        for pts in segments.iter().filter(|p| !p.is_empty()) {
            let _ = write!(
                svg,
                r##"<polyline fill="none" stroke="{color}" stroke-width="2" {dash} points="{}"/>"##,
                pts.trim_end()
            );
        }
        let ly = top + 16.0 * i as f64 + 10.0;
        let _ = write!(
            svg,
            r##"<line x1="{}" x2="{}" y1="{ly}" y2="{ly}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}" font-size="12">{}</text>"##,
            w - right + 10.0,
            w - right + 30.0,
            w - right + 35.0,
            ly + 4.0,
            esc(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = String::from("<table><tr>");
    for h in headers {
        let _ = write!(t, "<th>{}</th>", esc(h));
    }
    t.push_str("</tr>");
    for r in rows {
        t.push_str("<tr>");
        for c in r {
            let _ = write!(t, "<td>{}</td>", esc(c));
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>");
    t
}

fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => n.as_f64().map_or(n.to_string(), |f| {
            if f.fract() == 0.0 {
                format!("{f:.0}")
            } else {
                format!("{f:.1}")
            }
        }),
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn lag_section(lag: &Value) -> String {
    let timeline = lag["probe"]["timeline"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let t0 = timeline
        .iter()
        .filter_map(|p| p["at_ms"].as_f64())
        .fold(f64::MAX, f64::min);
    let mut by_region: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for p in &timeline {
        if p["source"] == "heartbeat" && p["status"] == "ok" {
            if let (Some(at), Some(l), Some(r)) = (
                p["at_ms"].as_f64(),
                p["lag_ms"].as_f64(),
                p["region"].as_str(),
            ) {
                by_region
                    .entry(r.to_string())
                    .or_default()
                    .push(((at - t0) / 1000.0, l));
            }
        }
    }
    let mut series: Vec<Series> = by_region
        .iter()
        .map(|(r, pts)| Series {
            name: format!("{r} (1 s)"),
            points: pts.clone(),
            dashed: false,
            max_gap: Some(2.5),
        })
        .collect();
    if let Some(eu) = by_region.get("eu-west-1") {
        let mean = lag["spike"]["window_mean_ms"].as_f64().unwrap_or(0.0);
        if let (Some(first), Some(last)) = (eu.first(), eu.last()) {
            series.push(Series {
                name: "eu-west-1 window mean".into(),
                points: vec![(first.0, mean), (last.0, mean)],
                dashed: true,
                max_gap: None,
            });
        }
    }
    let rows: Vec<Vec<String>> = lag["probe"]["regions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            vec![
                r["region"].as_str().unwrap_or("").to_string(),
                num(&r["heartbeat"]["samples"]),
                num(&r["heartbeat"]["p50_ms"]),
                num(&r["heartbeat"]["p99_ms"]),
                num(&r["heartbeat"]["max_ms"]),
                num(&r["engine"]["p50_ms"]),
                num(&r["resolution_p50_ms"]),
                num(&r["unreachable"]),
            ]
        })
        .collect();
    format!(
        "<h2>Replication lag per region, one sample per second</h2><p>Heartbeat lag measured on the probe's own clock. A {} ms spike was injected into eu-west-1 for {} s ({}); at one-second resolution it peaks at {} ms, while the window's mean reads {} ms.</p>{}{}",
        num(&lag["spike"]["extra_ms"]),
        num(&lag["spike"]["for_s"]),
        esc(lag["method"].as_str().unwrap_or("")),
        num(&lag["spike"]["peak_ms"]),
        num(&lag["spike"]["window_mean_ms"]),
        chart("Heartbeat lag (ms)", "seconds", "lag ms", &series, false, &[]),
        table(&["region", "samples", "p50 ms", "p99 ms", "max ms", "engine p50 ms", "resolution p50 ms", "unreachable"], &rows)
    )
}

fn traffic_section(t: &Value) -> String {
    let mut by_region: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    let mut marks = Vec::new();
    for p in t["timeline"].as_array().into_iter().flatten() {
        if let (Some(ms), Some(g), Some(r)) = (
            p["t_ms"].as_f64(),
            p["green"].as_f64(),
            p["region"].as_str(),
        ) {
            by_region
                .entry(r.to_string())
                .or_default()
                .push((ms / 1000.0, g));
            if p["note"] == "alarm: rolled back" && r == "eu-west-1" {
                marks.push(("alarm -> rollback".to_string(), ms / 1000.0));
            }
        }
    }
    let series: Vec<Series> = by_region
        .into_iter()
        .map(|(r, points)| Series {
            name: r,
            points,
            dashed: false,
            max_gap: None,
        })
        .collect();
    format!(
        "<h2>Traffic: green's share per region</h2><p>A canary at 20 % rolled back by the app-5xx alarm in {} ms (event received to 100 % blue verified in all three regions), then region by region to 100 % green in {} ticks.</p>{}{}{}",
        num(&t["rollback_ms"]),
        num(&t["ticks"]),
        chart("Green weight (%)", "seconds", "green %", &series, true, &marks),
        green_only(&t["green_only"]),
        scaling(&t["scaling"])
    )
}

/// The canary that only green's own target group shows failing (absent in older reports).
fn green_only(g: &Value) -> String {
    if g.is_null() {
        return String::new();
    }
    let row = |what: &str,
               errors: &Value,
               requests: &Value,
               pct: &Value,
               limit: &Value,
               verdict: String| {
        vec![
            what.to_string(),
            num(errors),
            num(requests),
            num(pct),
            num(limit),
            verdict,
        ]
    };
    let whole = if g["whole_alarm_would_fire"] == true {
        "alarm"
    } else {
        "no alarm (missed)"
    };
    let green = if g["rolled_back"] == true {
        "rolled back"
    } else {
        "not rolled back"
    };
    format!(
        "<h3>A canary judged on green's own group</h3><p>{} % of {}'s traffic on green, 40 % of green's requests failing: {}</p>{}",
        num(&g["green_share_pct"]),
        esc(g["region"].as_str().unwrap_or("")),
        esc(g["reason"].as_str().unwrap_or("")),
        table(
            &["signal", "5XX", "requests", "5XX %", "limit %", "verdict"],
            &[
                row("whole ALB (both groups)", &g["whole_errors"], &g["whole_requests"], &g["whole_pct"], &g["whole_threshold_pct"], whole.into()),
                row("green's target group", &g["green_errors"], &g["green_requests"], &g["green_pct"], &g["gate_pct"], green.into()),
            ]
        )
    )
}

/// Each colour's task count at the release's moments, per region (absent in older reports).
fn scaling(rows: &Value) -> String {
    let Some(rows) = rows.as_array().filter(|r| !r.is_empty()) else {
        return String::new();
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                num(&r["moment"]),
                num(&r["region"]),
                num(&r["blue"]),
                num(&r["green"]),
            ]
        })
        .collect();
    format!(
        "<h3>The release's tasks</h3><p>Green from 0 to blue's count before the first step, live, then blue to 0 after the scale-down bake (ECS desired counts).</p>{}",
        table(&["moment", "region", "blue tasks", "green tasks"], &rows)
    )
}

fn cutover_section(c: &Value) -> String {
    let s = &c["switch"];
    let mut source = Vec::new();
    let mut target = Vec::new();
    for p in s["timeline"]["writes_per_100ms"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let (Some(ms), Some(a), Some(b)) = (p[0].as_f64(), p[1].as_f64(), p[2].as_f64()) {
            if a > 0.0 {
                source.push((ms / 1000.0, a));
            }
            if b > 0.0 {
                target.push((ms / 1000.0, b));
            }
        }
    }
    let series = vec![
        Series {
            name: "writes on the source".into(),
            points: source,
            dashed: false,
            max_gap: Some(0.35),
        },
        Series {
            name: "writes on the target (us-east-1)".into(),
            points: target,
            dashed: false,
            max_gap: Some(0.35),
        },
    ];
    let marks: Vec<(String, f64)> = s["timeline"]["phases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            Some((
                m["phase"].as_str()?.to_string(),
                m["at_ms"].as_f64()? / 1000.0,
            ))
        })
        .collect();
    let rows = vec![
        vec![
            "switch (source -> target)".to_string(),
            num(&s["unavailability_switch_ms"]),
            num(&s["on_source"]),
            num(&s["lost_on_target"]),
            format!(
                "{} (of what changed since the last validation)",
                s["final_validation"]["verdict"].as_str().unwrap_or("")
            ),
        ],
        vec![
            "fallback (target -> source)".to_string(),
            num(&s["unavailability_fallback_ms"]),
            num(&s["on_target"]),
            num(&s["lost_on_source"]),
            format!(
                "{} (after forward CDC resumed)",
                s["validation_after_fallback"]["verdict"]
                    .as_str()
                    .unwrap_or("")
            ),
        ],
    ];
    let gate = &c["failed_gate"];
    format!(
        "<h2>Cutover: the switch and its fallback</h2><p>The application committed a numbered row every ~2 ms to wherever SSM's <code>writes-to</code> pointed; every acknowledged commit was recorded. Write unavailability = last acknowledged write on one side to the first on the other. Duplicated writes: {}. A failed gate first: drift on the target made <code>advance</code> refuse the freeze ({}); the rollback left the source writable ({}).</p>{}{}",
        num(&s["duplicated"]),
        esc(gate["advance"]["detail"].as_str().unwrap_or("")),
        gate["source_writable_after_rollback"],
        chart("Acknowledged writes per 100 ms", "seconds", "writes", &series, false, &marks),
        table(&["move", "write unavailability ms", "writes before it", "of them lost", "validation"], &rows)
    )
}

/// The killed-primary drill's lost writes in one line, beside the writer's count (the
/// rehearsal's stage-6 summary), or `None` when the stage has no reconciliation.
pub fn reconciliation_line(r: &Value) -> Option<String> {
    if !r.is_object() {
        return None;
    }
    Some(format!(
        "lost writes named: {} lost ({} in drill.writes = the writer's {} + {} in flight at the kill), {} new, {} conflicts, {} replayed",
        num(&r["lost_found"]),
        num(&r["lost_found_writes"]),
        num(&r["writer_lost"]),
        r["unacknowledged"].as_array().map_or(0, Vec::len),
        num(&r["new_since_failover"]),
        r["conflicts"].as_array().map_or(0, Vec::len),
        num(&r["replay"]["applied"])
    ))
}

/// The killed-primary drill's lost writes: lost, new, conflicts, replayed.
fn reconciliation_section(r: &Value) -> String {
    let counts = vec![
        vec!["lost rows found".into(), num(&r["lost_found"])],
        vec![
            "of which drill.writes (the writer counted as lost)".into(),
            format!(
                "{} ({})",
                num(&r["lost_found_writes"]),
                num(&r["writer_lost"])
            ),
        ],
        vec![
            "failed attempts in flight at the kill, committed (acknowledgement lost)".into(),
            format!(
                "{} of {}",
                r["unacknowledged"].as_array().map_or(0, Vec::len),
                r["in_flight_failed"].as_array().map_or(0, Vec::len)
            ),
        ],
        vec!["key for key".into(), r["key_for_key"].to_string()],
        vec![
            "new since the failover".into(),
            num(&r["new_since_failover"]),
        ],
        vec![
            "written after the failover, reported lost".into(),
            num(&r["written_after_failover_reported_lost"]),
        ],
        vec![
            "conflicts (never applied)".into(),
            r["conflicts"].as_array().map_or(0, Vec::len).to_string(),
        ],
        vec![
            "replay dry run: would apply".into(),
            format!(
                "{} of {}",
                num(&r["replay_dry_run"]["applied"]),
                num(&r["replay_dry_run"]["statements"])
            ),
        ],
        vec![
            "replayed".into(),
            format!(
                "{} applied, {} skipped",
                num(&r["replay"]["applied"]),
                r["replay"]["skipped"].as_array().map_or(0, Vec::len)
            ),
        ],
        vec![
            "acknowledged writes missing after the replay".into(),
            num(&r["missing_after_replay"]),
        ],
        vec![
            "validation after the replay (old primary's key range)".into(),
            format!(
                "{} ({} rows)",
                r["validation_after_replay"].as_str().unwrap_or("-"),
                num(&r["validated_rows"])
            ),
        ],
    ];
    let conflicts: Vec<Vec<String>> = r["conflicts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            vec![
                format!(
                    "{} {}",
                    c["table"].as_str().unwrap_or(""),
                    c["key"].as_str().unwrap_or("")
                ),
                c["why"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    format!(
        "<h2>Lost writes after the killed primary</h2><p>The killed primary's data directory started alone on port {} (the stand-in for Aurora's snapshot of the old primary), compared with the new primary by the failover function's <code>reconcile</code> (the data-validator's engine); rows classified with the fork xid {} the failover recorded; the script read with <code>replay-script</code> and applied with <code>replay</code> (dry run first).</p>{}{}<pre>{}</pre>",
        num(&r["old_primary_port"]),
        num(&r["fork_xid"]),
        table(&["", "count"], &counts),
        table(&["conflict", "why"], &conflicts),
        esc(r["script"].as_str().unwrap_or("").lines().take(12).collect::<Vec<_>>().join("\n").as_str())
    )
}

fn failover_section(f: &Value) -> String {
    let mut by_region: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for p in f["throughput"].as_array().into_iter().flatten() {
        if let (Some(ms), Some(n), Some(r)) = (
            p["t_ms"].as_f64(),
            p["writes"].as_f64(),
            p["region"].as_str(),
        ) {
            by_region
                .entry(r.to_string())
                .or_default()
                .push((ms / 1000.0, n));
        }
    }
    let series: Vec<Series> = by_region
        .into_iter()
        .map(|(r, points)| Series {
            name: format!("writes on {r}"),
            points,
            dashed: false,
            max_gap: Some(0.35),
        })
        .collect();
    let marks: Vec<(String, f64)> = f["marks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| {
            Some((
                m["what"].as_str()?.to_string(),
                m["t_ms"].as_f64()? / 1000.0,
            ))
        })
        .collect();
    let rows: Vec<Vec<String>> = f["drills"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            vec![
                d["drill"].as_str().unwrap_or("").to_string(),
                format!(
                    "{} -> {}",
                    d["from"].as_str().unwrap_or(""),
                    d["to"].as_str().unwrap_or("")
                ),
                num(&d["rto_ms"]),
                num(&d["acknowledged"]),
                num(&d["lost"]),
                d["predicted_lost_writes"]
                    .as_u64()
                    .map_or("0 (planned: RPO 0)".into(), |v| {
                        format!("{v} ({} ms of lag)", num(&d["predicted_loss_ms"]))
                    }),
            ]
        })
        .collect();
    format!(
        "<h2>Failover drills</h2><p>A writer committed numbered rows to whatever endpoint SSM named, recording every acknowledged commit. {}.</p>{}{}",
        esc(&match (f["recovered"].as_str(), f["not_rehearsed"].as_str()) {
            (Some(r), _) => format!("After the drills: {r}"),
            (None, Some(n)) => format!("Not rehearsed: {n}"),
            (None, None) => String::new(),
        }),
        chart("Acknowledged writes per 100 ms", "seconds", "writes", &series, false, &marks),
        table(&["drill", "move", "RTO ms", "acknowledged", "lost", "predicted loss"], &rows)
    )
}

/// The region-loss drill: the timeline from the kill, the invocations, the loss.
fn region_loss_section(r: &Value) -> String {
    let rows: Vec<Vec<String>> = r["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            vec![
                t["ms"]
                    .as_i64()
                    .map_or("-".into(), |m| format!("+{:.1} s", m as f64 / 1000.0)),
                t["event"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    let actions: Vec<Vec<String>> = r["actions"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(a, n)| vec![a.clone(), num(n)])
        .collect();
    format!(
        "<h2>Region loss: {} lost whole</h2><p>Its database, the WAL links from it and its AWS (the router answers nothing signed for it) at once; each surviving region's own lag-probe, <code>writer-unreachable</code> alarm and failover function, against its own region's AWS. RTO from the kill to the first write the new writer acknowledged: <b>{} ms</b>, detection included; {} promotion(s) among {} invocations; {} writes acknowledged by the old writer, <b>{} lost</b> (predicted before the kill: {}, from a {} ms lag sample).{}</p>{}{}",
        esc(r["from"].as_str().unwrap_or("us-east-1")),
        num(&r["rto_from_kill_ms"]),
        num(&r["promotions"]),
        num(&r["invocations"]),
        num(&r["acknowledged_by_old"]),
        num(&r["lost"]),
        num(&r["predicted_lost_writes"]),
        num(&r["predicted_loss_ms"]),
        match r["returned_region"]["healed"].as_bool() {
            Some(healed) => format!(
                " When {}'s AWS came back, its own SSM copy named {} and, after its scheduled <code>sync-endpoints</code>, {} ({}).",
                esc(r["returned_region"]["region"].as_str().unwrap_or("")),
                esc(r["returned_region"]["ssm_before"].as_str().unwrap_or("?")),
                esc(r["returned_region"]["ssm_after"].as_str().unwrap_or("?")),
                if healed { "healed" } else { "NOT healed" }
            ),
            None => String::new(),
        } + &match r["sync_while_down"]["answered_after_ms"].as_u64() {
            Some(after) => format!(
                " While its AWS was still down, {}'s scheduled <code>sync-endpoints</code> answered after {after} ms ({}).",
                esc(r["sync_while_down"]["from"].as_str().unwrap_or("")),
                esc(&r["sync_while_down"]["regions"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(region, v)| match v["error"].as_str() {
                        Some(_) => format!("{region}: not written"),
                        None => format!("{region}: {} written", num(&v["written"])),
                    })
                    .collect::<Vec<_>>()
                    .join(", "))
            ),
            None => String::new(),
        },
        table(&["from the kill", "event"], &rows),
        table(&["region: outcome", "invocations"], &actions),
    )
}

fn crash_drill_section(r: &Value) -> String {
    let rows: Vec<Vec<String>> = r["rounds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| {
            vec![
                x["killed_after"].as_str().unwrap_or("").to_string(),
                if x["promoted_at_kill"] == true {
                    "yes".into()
                } else {
                    "no".into()
                },
                format!("{} (was {})", num(&x["epoch"]), num(&x["epoch_before"])),
                num(&x["resumed_ms"]),
                num(&x["promotions_on_resume"]),
                num(&x["writers"]),
                if x["ok"] == true {
                    "ok".into()
                } else {
                    "NOT as expected".into()
                },
            ]
        })
        .collect();
    format!(
        "<h2>Crash at every step</h2><p>A switchover us-east-1 → eu-west-1 (postgres-streaming, real PostgreSQL) killed right before each of its steps in turn; once the dead run's lease expired, an alarm finished the recorded move. A promotion that had happened is found, not repeated, and the old primary is not fenced again.</p>{}",
        table(
            &["killed after", "eu-west-1 writing at the kill", "resumed as epoch", "resume ms", "promotions on resume", "writers after", ""],
            &rows
        ),
    )
}

fn no_move_section(r: &Value) -> String {
    let rows: Vec<Vec<String>> = [
        (
            "blip",
            "us-east-1's server stopped for 10 s (SIGSTOP), resumed in place",
        ),
        (
            "partial_partition",
            "us-east-1 unreachable from eu-west-1 only",
        ),
    ]
    .iter()
    .map(|(key, what)| {
        let p = &r[*key];
        let alarms = p["alarms_fired_ms"]
            .as_object()
            .filter(|o| !o.is_empty())
            .map(|o| {
                o.iter()
                    .map(|(region, at)| {
                        format!("{region} (+{:.1} s)", at.as_f64().unwrap_or(0.0) / 1000.0)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "none".into());
        let outcomes = p["actions"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(a, n)| format!("{}× {a}", num(n)))
            .collect::<Vec<_>>()
            .join("; ");
        vec![
            what.to_string(),
            alarms,
            outcomes,
            num(&p["moves"]),
            format!(
                "{} during, {} after",
                num(&p["acks_during"]),
                num(&p["acks_after"])
            ),
            if p["writer"]["ok"] == true {
                "us-east-1 everywhere".into()
            } else {
                "CHANGED".into()
            },
        ]
    })
    .collect();
    let reasons: String = ["blip", "partial_partition"]
        .iter()
        .flat_map(|k| r[*k]["examples"].as_object().into_iter().flatten())
        .map(|(a, text)| {
            format!(
                "<li><b>{}</b>: {}</li>",
                esc(a),
                esc(text.as_str().unwrap_or(""))
            )
        })
        .collect();
    format!(
        "<h2>Nothing may move: a blip and a partial partition</h2><p>Every region's own lag-probe, <code>writer-unreachable</code> alarm and failover function (grace {} ms), an application in ap-southeast-1 writing throughout. The partition is held {:.0} s: the grace period and an alarm period more. Every alarm that fired invoked its region's failover ten times; in the blip each region's failover was also handed its alarm 1 s in. {}</p>{}<ul>{}</ul>",
        num(&r["grace_ms"]),
        r["partition_held_ms"].as_f64().unwrap_or(0.0) / 1000.0,
        if r["ok"] == true { "<b>No move</b>, writes acknowledged after each." } else { "<b>NOT as expected</b>." },
        table(&["what", "alarms fired", "invocations", "moves", "writes acknowledged by us-east-1", "writer after"], &rows),
        reasons,
    )
}

fn region_race_section(r: &Value) -> String {
    let rows: Vec<Vec<String>> = r["sides"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                s["region"].as_str().unwrap_or("").to_string(),
                s["target"].as_str().unwrap_or("").to_string(),
                num(&s["epoch"]),
                s["action"].as_str().unwrap_or("").to_string(),
                s["summary"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    format!(
        "<h2>Two regions at once</h2><p>The state table's replication held back, so each region's replica granted its own lease; a switchover from us-east-1 asked in two regions together. The promotion lock on the members (taken in region order) serializes them: <b>{} promotion</b>, writing now: {}.</p>{}",
        num(&r["promotions"]),
        esc(&r["writers"]
            .as_array()
            .map(|w| w.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()),
        table(&["asked in", "target", "lease epoch", "outcome", "summary"], &rows),
    )
}

fn validation_section(v: &Value) -> String {
    let mut rows = Vec::new();
    for (label, key) in [
        ("baseline", "baseline"),
        ("drift injected", "before_repair"),
        ("after repair", "after_repair"),
    ] {
        for t in v[key]["tables"].as_array().into_iter().flatten() {
            rows.push(vec![
                label.to_string(),
                t["table"].as_str().unwrap_or("").to_string(),
                t["verdict"].as_str().unwrap_or("").to_string(),
                num(&t["source_rows"]),
                num(&t["target_rows"]),
                num(&t["missing_in_target"]),
                num(&t["extra_in_target"]),
                num(&t["different"]),
                t["first_keys"]
                    .as_array()
                    .map(|k| {
                        k.iter()
                            .map(|x| x.as_str().map_or(x.to_string(), str::to_string))
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default(),
            ]);
        }
    }
    format!(
        "<h2>Data validation</h2>{}",
        table(
            &[
                "run",
                "table",
                "verdict",
                "source rows",
                "target rows",
                "missing",
                "extra",
                "different",
                "first differing keys"
            ],
            &rows
        )
    )
}

fn replication_section(r: &Value) -> String {
    let rows: Vec<Vec<String>> = r["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            vec![
                n["node"].as_str().unwrap_or("").to_string(),
                n["role"].as_str().unwrap_or("").to_string(),
                num(&n["port"]),
                n["tls"].as_str().unwrap_or("").to_string(),
                num(&n["configured_delay_ms"]),
                num(&n["from_source_ms"]),
                num(&n["from_primary_ms"]),
            ]
        })
        .collect();
    format!(
        "<h2>The world</h2>{}",
        table(
            &[
                "node",
                "role",
                "port",
                "TLS",
                "configured delay ms",
                "source -> node ms",
                "primary -> node ms"
            ],
            &rows
        )
    )
}

fn notifications_section(n: &Value) -> String {
    let rows: Vec<Vec<String>> = n
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            vec![
                m["timestamp"].as_str().unwrap_or("").to_string(),
                m["topic"].as_str().unwrap_or("").to_string(),
                m["event_type"].as_str().unwrap_or("").to_string(),
                m["severity"].as_str().unwrap_or("").to_string(),
                m["subject"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    format!(
        "<h2>Every notification published ({})</h2>{}",
        rows.len(),
        table(
            &["time", "topic", "event type", "severity", "subject"],
            &rows
        )
    )
}

/// Every state machine execution of the rehearsal (the validation stage's runs, the cutover
/// runbook's), each with its timeline from the execution's own history.
pub fn executions(report: &Value) -> Vec<&Value> {
    let mut out: Vec<&Value> = report["validation"]["executions"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    for drill in ["runbook_rollback", "finish"] {
        let e = &report["cutover"][drill]["execution"];
        if e.is_object() {
            out.push(e);
        }
    }
    out
}

fn executions_section(report: &Value) -> String {
    let runs = executions(report);
    if runs.is_empty() {
        return String::new();
    }
    let mut body = format!(
        "<h2>State machine executions ({})</h2><p>The state machines infra deploys (<code>infra/asl/</code>), executed by the local world's moto against the functions' own binaries (<code>cargo lambda watch</code>). Times from each execution's history; a Map's iterations on one line.</p>",
        runs.len()
    );
    for e in runs {
        let lines: Vec<&str> = e["timeline"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let _ = write!(
            body,
            "<h3>{} — {}{}</h3><pre>{}</pre>",
            esc(e["name"].as_str().unwrap_or("")),
            esc(e["status"].as_str().unwrap_or("")),
            e["error"]
                .as_str()
                .map(|x| format!(" ({})", esc(x)))
                .unwrap_or_default(),
            esc(&lines.join("\n"))
        );
    }
    body
}

/// The whole page.
pub fn render_html(report: &Value) -> String {
    let mut body = String::new();
    let summary: Vec<Vec<String>> = report["summary"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            vec![
                if s["ok"] == true {
                    "ok".into()
                } else {
                    "FAIL".into()
                },
                s["stage"].as_str().unwrap_or("").to_string(),
                s["detail"].as_str().unwrap_or("").to_string(),
            ]
        })
        .collect();
    let _ = write!(
        body,
        "<h2>Summary</h2>{}",
        table(&["", "stage", "measured"], &summary)
    );
    if report.get("replication").is_some() {
        body.push_str(&replication_section(&report["replication"]));
    }
    if report.get("validation").is_some() {
        body.push_str(&validation_section(&report["validation"]));
    }
    if report.get("cutover").is_some() {
        body.push_str(&cutover_section(&report["cutover"]));
    }
    body.push_str(&executions_section(report));
    if report.get("lag").is_some() {
        body.push_str(&lag_section(&report["lag"]));
    }
    if report.get("traffic").is_some() {
        body.push_str(&traffic_section(&report["traffic"]));
    }
    if report.get("failover").is_some() {
        body.push_str(&failover_section(&report["failover"]));
        if report["failover"].get("reconciliation").is_some() {
            body.push_str(&reconciliation_section(
                &report["failover"]["reconciliation"],
            ));
        }
    }
    if report.get("crash_drill").is_some() {
        body.push_str(&crash_drill_section(&report["crash_drill"]));
    }
    if report.get("no_move").is_some() {
        body.push_str(&no_move_section(&report["no_move"]));
    }
    if report.get("region_loss").is_some() {
        body.push_str(&region_loss_section(&report["region_loss"]));
    }
    if report.get("region_race").is_some() {
        body.push_str(&region_race_section(&report["region_race"]));
    }
    if let Some(invoke) = report.get("lambda_invoke") {
        let rows: Vec<Vec<String>> = invoke["invocations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| vec![l.as_str().unwrap_or("").chars().take(160).collect()])
            .collect();
        let _ = write!(
            body,
            "<h2>Every sample event through the real binaries (cargo lambda)</h2><p>{}</p>{}",
            esc(invoke["summary"].as_str().unwrap_or("")),
            table(
                &["invocation: verdict, function, event, time, answer"],
                &rows
            )
        );
    }
    if report.get("notifications").is_some() {
        body.push_str(&notifications_section(&report["notifications"]));
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cutover rehearsal report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
svg.plot {{ display: block; margin: 0.5em 0; font-family: system-ui, sans-serif; }}
</style></head>
<body><h1>cutover: local rehearsal report</h1>
<p>Generated {generated} by <code>make demo</code> on one machine: PostgreSQL source, a primary and two standbys for three regions, moto for AWS. Every figure below was measured in this run.</p>
{body}
<script>
window.addEventListener('load', function () {{
  var plots = document.querySelectorAll('svg.plot');
  var ok = 0;
  plots.forEach(function (p) {{
    var b = p.getBBox();
    var lines = Array.prototype.filter.call(p.querySelectorAll('polyline'), function (l) {{ return l.getTotalLength() > 0; }});
    if (b.width > 0 && b.height > 0 && lines.length > 0) ok++;
  }});
  document.title = 'plots-rendered:' + ok + '/' + plots.length;
}});
</script>
</body></html>
"#,
        generated = esc(report["generated_at"].as_str().unwrap_or(""))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_traffic_section_shows_the_green_only_rollback_and_the_scaling() {
        let t = json!({
            "rollback_ms": 67.0, "ticks": 10, "timeline": [],
            "green_only": {"region": "eu-west-1", "green_share_pct": 10, "whole_errors": 40.0, "whole_requests": 1000.0,
                "whole_pct": 4.0, "whole_threshold_pct": 5.0, "whole_alarm_would_fire": false, "green_errors": 40.0,
                "green_requests": 100.0, "green_pct": 40.0, "gate_pct": 5.0, "rolled_back": true,
                "reason": "gate failed: eu-west-1 error-rate: 5XX 40.0 % of 100 requests (limit 5.0 %)"},
            "scaling": [{"moment": "before start", "region": "eu-west-1", "blue": 2, "green": 0},
                        {"moment": "after the bake", "region": "eu-west-1", "blue": 0, "green": 2}],
        });
        let html = traffic_section(&t);
        assert!(html.contains("<td>whole ALB (both groups)</td><td>40</td><td>1000</td><td>4</td><td>5</td><td>no alarm (missed)</td>"), "{html}");
        assert!(
            html.contains("<td>green's target group</td><td>40</td><td>100</td><td>40</td><td>5</td><td>rolled back</td>"),
            "{html}"
        );
        assert!(
            html.contains("<td>after the bake</td><td>eu-west-1</td><td>0</td><td>2</td>"),
            "{html}"
        );
        let old = traffic_section(&json!({"rollback_ms": 67.0, "ticks": 10, "timeline": []}));
        assert!(!old.contains("<h3>"), "an older report has neither table");
    }
}
