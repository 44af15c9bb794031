//! The rehearsal report in a real browser: headless Chromium (Debian's
//! `chromium`, which `make test` installs) loads `index.html` rendered from a
//! report a real `make demo` wrote (tests/fixtures/report.json), the page's own
//! script checks that every plot was laid out with its lines drawn, and a
//! screenshot is saved to rehearsal-report/screenshot.png.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use cutover_rehearsal::report::{reconciliation_line, render_html};
use serde_json::Value;

fn chromium() -> PathBuf {
    for candidate in [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ] {
        let p = PathBuf::from(candidate);
        if p.exists() {
            return p;
        }
    }
    panic!("no Chromium found (/usr/bin/chromium): `make test` installs Debian's chromium package");
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The failover part's `reconciliation` (the killed-primary drill's lost writes, as
/// `failover_stage::reconcile_drill` writes it) renders as the "lost writes" section with
/// its lost, new, conflict and replayed counts.
#[test]
fn the_lost_writes_section_shows_lost_new_conflicts_and_replayed() {
    let fixture = root().join("tests/fixtures/report.json");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    let r = &report["failover"]["reconciliation"];
    let count = |v: &Value| v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"));
    let (lost, new, replayed) = (
        count(&r["lost_found"]),
        count(&r["new_since_failover"]),
        count(&r["replay"]["applied"]),
    );
    let conflicts = r["conflicts"].as_array().unwrap().len();
    assert!(
        lost > 0 && new > 0 && replayed == lost && conflicts == 1,
        "{r}"
    );
    let html = render_html(&report);
    let section = html
        .split("<h2>Lost writes after the killed primary</h2>")
        .nth(1)
        .expect("the lost writes section")
        .split("<h2>")
        .next()
        .unwrap();
    let row = |label: &str, value: String| format!("<tr><td>{label}</td><td>{value}</td></tr>");
    for expected in [
        row("lost rows found", lost.to_string()),
        row(
            "of which drill.writes (the writer counted as lost)",
            format!(
                "{} ({})",
                count(&r["lost_found_writes"]),
                count(&r["writer_lost"])
            ),
        ),
        row("new since the failover", new.to_string()),
        row("conflicts (never applied)", conflicts.to_string()),
        row(
            "replayed",
            format!(
                "{replayed} applied, {} skipped",
                r["replay"]["skipped"].as_array().unwrap().len()
            ),
        ),
        row("acknowledged writes missing after the replay", "0".into()),
        "<td>drill.balances id=2</td>".to_string(),
    ] {
        assert!(section.contains(&expected), "{expected} not in: {section}");
    }
    assert!(section.contains("MATCH ("), "{section}");
    // make demo's stage-6 summary line, from the same object.
    assert_eq!(
        reconciliation_line(r).unwrap(),
        format!(
            "lost writes named: {lost} lost ({} in drill.writes = the writer's {} + {} in flight at the kill), {new} new, {conflicts} conflicts, {replayed} replayed",
            count(&r["lost_found_writes"]),
            count(&r["writer_lost"]),
            r["unacknowledged"].as_array().unwrap().len()
        )
    );
    assert_eq!(reconciliation_line(&Value::Null), None);
    assert!(
        section.contains("<pre>-- Lost writes after the failover (fork xid"),
        "{section}"
    );
}

/// The region-loss section says whether the lost region's own SSM copy healed, and the
/// two-regions section names each side's outcome and the one writer (values from a run
/// of `tests/tests/region_race.rs` and of the region-loss drill, 2026-12-03).
#[test]
fn the_region_sections_show_the_heal_and_the_race() {
    let report = serde_json::json!({
        "region_loss": {"from": "us-east-1", "rto_from_kill_ms": 23841, "promotions": 1,
            "returned_region": {"region": "us-east-1", "ssm_before": "localhost:54621",
                                "ssm_after": "localhost:54622", "healed": true},
            "sync_while_down": {"from": "eu-west-1", "answered_after_ms": 2014, "regions": {
                "ap-southeast-1": {"written": 0}, "eu-west-1": {"written": 0},
                "us-east-1": {"error": "no answer within 2000 ms"}}}},
        "region_race": {"promotions": 1, "writers": ["eu-west-1"], "sides": [
            {"region": "eu-west-1", "target": "eu-west-1", "epoch": 1, "action": "switchover",
             "summary": "Switchover us-east-1 -> eu-west-1 done in 2218 ms (epoch 1)"},
            {"region": "ap-southeast-1", "target": "ap-southeast-1", "epoch": null, "action": "error",
             "summary": "driver: eu-west-1 already writes (promoted by another holder; found under the promotion lock); not promoting ap-southeast-1 as well"}]}
    });
    let html = render_html(&report);
    assert!(
        html.contains("its own SSM copy named localhost:54621 and, after its scheduled <code>sync-endpoints</code>, localhost:54622 (healed)"),
        "{html}"
    );
    assert!(
        html.contains("While its AWS was still down, eu-west-1's scheduled <code>sync-endpoints</code> answered after 2014 ms (ap-southeast-1: 0 written, eu-west-1: 0 written, us-east-1: not written)."),
        "{html}"
    );
    let race = html
        .split("<h2>Two regions at once</h2>")
        .nth(1)
        .expect("the two-regions section");
    assert!(
        race.contains("<b>1 promotion</b>, writing now: eu-west-1"),
        "{race}"
    );
    assert!(
        race.contains("<td>ap-southeast-1</td><td>ap-southeast-1</td><td>-</td><td>error</td>"),
        "{race}"
    );
}

/// The crash section has a row per kill point (values from a run of
/// `a_postgres_switchover_killed_after_any_step_is_finished_exactly_once`, 2026-12-03).
#[test]
fn the_crash_section_shows_every_kill_point() {
    let report = serde_json::json!({"crash_drill": {"ok": true, "rounds": [
        {"killed_after": "the lease", "promoted_at_kill": false, "epoch": 2, "epoch_before": 0,
         "resumed_ms": 1097, "promotions_on_resume": 1, "writers": 1, "ok": true},
        {"killed_after": "the promotion", "promoted_at_kill": true, "epoch": 2, "epoch_before": 0,
         "resumed_ms": 407, "promotions_on_resume": 0, "writers": 1, "ok": true}]}});
    let html = render_html(&report);
    let section = html
        .split("<h2>Crash at every step</h2>")
        .nth(1)
        .expect("the crash section");
    assert!(
        section.contains("<td>the promotion</td><td>yes</td><td>2 (was 0)</td><td>407</td><td>0</td><td>1</td><td>ok</td>"),
        "{section}"
    );
    assert!(
        section.contains("<td>the lease</td><td>no</td>"),
        "{section}"
    );
}

/// The no-move section shows each phase's alarms, outcomes and the writer after it
/// (values from a run of `tests/tests/region_no_move.rs`, 2026-12-03).
#[test]
fn the_no_move_section_shows_each_phase_and_the_refusals() {
    let refusal = "refused: partial partition: unreachable from eu-west-1 (direct probe: 3 failures over 24063 ms; last error: no answer within 2000 ms) only; reachable from us-east-1 at 2026-12-03T09:20:36.147Z (lag-probe record, record 4.0 s old)";
    let report = serde_json::json!({"no_move": {"ok": true, "grace_ms": 22000, "partition_held_ms": 35000,
        "blip": {"alarms_fired_ms": {"eu-west-1": 9283, "us-east-1": 9273}, "actions": {"eu-west-1: refused": 11, "us-east-1: refused": 11},
                 "examples": {"eu-west-1: refused": "refused: the writer us-east-1 answers, and an alarm never moves a writer that answers"},
                 "moves": 0, "acks_during": 0, "acks_after": 1778, "writer": {"ok": true}},
        "partial_partition": {"alarms_fired_ms": {"eu-west-1": 16728}, "actions": {"eu-west-1: refused": 10},
                 "examples": {"eu-west-1: refused": refusal},
                 "moves": 0, "acks_during": 3067, "acks_after": 681, "writer": {"ok": true}}}});
    let html = render_html(&report);
    let section = html
        .split("<h2>Nothing may move: a blip and a partial partition</h2>")
        .nth(1)
        .expect("the no-move section");
    assert!(section.contains("(grace 22000 ms)"), "{section}");
    assert!(section.contains("<b>No move</b>"), "{section}");
    assert!(
        section.contains("<td>us-east-1 unreachable from eu-west-1 only</td><td>eu-west-1 (+16.7 s)</td><td>10× eu-west-1: refused</td><td>0</td><td>3067 during, 681 after</td><td>us-east-1 everywhere</td>"),
        "{section}"
    );
    assert!(
        section.contains("partial partition: unreachable from eu-west-1"),
        "{section}"
    );
    let mut moved = report.clone();
    moved["no_move"]["ok"] = serde_json::json!(false);
    moved["no_move"]["blip"]["writer"]["ok"] = serde_json::json!(false);
    let html = render_html(&moved);
    assert!(
        html.contains("<b>NOT as expected</b>") && html.contains("<td>CHANGED</td>"),
        "{html}"
    );
}

#[test]
fn the_report_renders_every_plot_in_chromium_and_is_screenshotted() {
    let fixture = root().join("tests/fixtures/report.json");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&fixture).unwrap()).unwrap();
    let html = render_html(&report);
    let plots = html.matches("<svg class=\"plot\"").count();
    assert_eq!(plots, 4, "cutover, lag, traffic and failover plots");
    assert!(
        !html.contains("http://")
            || html.matches("http://").count()
                == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
        "nothing is fetched"
    );
    let dir = root().join("target/report-test");
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("index.html");
    std::fs::write(&page, &html).unwrap();
    let url = format!("file://{}", page.display());
    let profile = dir.join("profile");
    let common = [
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--no-first-run".into(),
        format!("--user-data-dir={}", profile.display()),
    ];
    let dom = Command::new(chromium())
        .args(&common)
        .args(["--virtual-time-budget=3000", "--dump-dom", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&dom.stdout);
    assert!(
        text.contains(&format!("<title>plots-rendered:{plots}/{plots}</title>")),
        "the page did not report every plot rendered; title: {:?}; stderr: {}",
        text.split("<title>")
            .nth(1)
            .and_then(|t| t.split("</title>").next()),
        String::from_utf8_lossy(&dom.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
    let out_dir = root().join("rehearsal-report");
    std::fs::create_dir_all(&out_dir).unwrap();
    let shot = out_dir.join("screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let status = Command::new(chromium())
        .args(&common)
        .args([
            "--window-size=1100,3200".to_string(),
            "--hide-scrollbars".into(),
            format!("--screenshot={}", shot.display()),
            url,
        ])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        png.len() > 20_000,
        "a {} byte screenshot is too small to hold the plots",
        png.len()
    );
}
