//! The validation stage of the rehearsal: drift is injected into the target,
//! the validator must name exactly the changed rows, the rows are repaired from the
//! source, and a second run must come back clean. Every run goes through the validation
//! state machine infra deploys (the tables of the function's sample event), executed by
//! the local world against the function's own binary.

use serde_json::{json, Value};

use crate::runbooks;
use crate::world::{Node, World, WorldError};

fn fail(message: impl Into<String>) -> WorldError {
    WorldError::Malformed {
        path: "data-validator stage".into(),
        message: message.into(),
    }
}

async fn exec(client: &tokio_postgres::Client, sql: &str) -> Result<u64, WorldError> {
    client.execute(sql, &[]).await.map_err(|e| {
        fail(format!(
            "{sql}: {}",
            cutover_core::error::describe_chain(&e)
        ))
    })
}

async fn scalar(client: &tokio_postgres::Client, sql: &str) -> Result<String, WorldError> {
    client
        .query_one(sql, &[])
        .await
        .map(|r| r.get::<_, String>(0))
        .map_err(|e| {
            fail(format!(
                "{sql}: {}",
                cutover_core::error::describe_chain(&e)
            ))
        })
}

/// The drift: what is changed on the target, and the keys the validator must report.
struct Drift {
    expected: Vec<(String, String)>,
    order_item: (String, String),
    payment: String,
}

async fn inject(target: &tokio_postgres::Client) -> Result<Drift, WorldError> {
    let order_item = target
        .query_one("SELECT order_id::text, line_no::text FROM app.order_items ORDER BY order_id, line_no LIMIT 1 OFFSET 10", &[])
        .await
        .map_err(|e| fail(e.to_string()))?;
    let order_item: (String, String) = (order_item.get(0), order_item.get(1));
    let payment = scalar(
        target,
        "SELECT id::text FROM app.payments ORDER BY id LIMIT 1 OFFSET 5",
    )
    .await?;
    exec(
        target,
        "UPDATE app.customers SET email = 'drift@example.invalid' WHERE id = 42",
    )
    .await?;
    exec(
        target,
        "UPDATE app.customers SET credit_limit = coalesce(credit_limit, 0) + 0.01 WHERE id = 7",
    )
    .await?;
    exec(
        target,
        &format!(
            "DELETE FROM app.order_items WHERE order_id = {} AND line_no = {}",
            order_item
                .0
                .parse::<i64>()
                .map_err(|e| fail(e.to_string()))?,
            order_item
                .1
                .parse::<i64>()
                .map_err(|e| fail(e.to_string()))?
        ),
    )
    .await?;
    target
        .execute(
            "UPDATE app.payments SET amount = coalesce(amount, 0) + 1 WHERE id = $1::text::uuid",
            &[&payment],
        )
        .await
        .map_err(|e| fail(e.to_string()))?;
    exec(
        target,
        "INSERT INTO app.audit_log (event_time, actor, action, detail) \
         VALUES ('2026-11-24 12:00:00+00', 'rehearsal-drift', 'injected', '{\"why\": \"drift\"}')",
    )
    .await?;
    Ok(Drift {
        expected: vec![
            ("app.customers".into(), "id=42".into()),
            ("app.customers".into(), "id=7".into()),
            (
                "app.order_items".into(),
                format!("order_id={},line_no={}", order_item.0, order_item.1),
            ),
            ("app.payments".into(), format!("id={payment}")),
            ("app.audit_log".into(), "row ".into()),
        ],
        order_item,
        payment,
    })
}

/// Copies rows from the source to the target by key, as a DBA's repair script
/// would: an existing row is updated in place (other tables may reference it),
/// a missing one is inserted, an extra one deleted.
async fn repair(
    source: &tokio_postgres::Client,
    target: &tokio_postgres::Client,
    drift: &Drift,
) -> Result<u64, WorldError> {
    let mut repaired = 0;
    let copy = |table: &'static str, predicate: String| async move {
        let columns = scalar(
            source,
            &format!(
                "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute \
                 WHERE attrelid = 'app.{table}'::regclass AND attnum > 0 AND NOT attisdropped"
            ),
        )
        .await?;
        let json = scalar(
            source,
            &format!("SELECT row_to_json(t)::text FROM app.{table} t WHERE {predicate}"),
        )
        .await?;
        let exists = target
            .query_opt(&format!("SELECT 1 FROM app.{table} WHERE {predicate}"), &[])
            .await
            .map_err(|e| fail(e.to_string()))?
            .is_some();
        let sql = if exists {
            format!(
                "UPDATE app.{table} SET ({columns}) = (SELECT {columns} FROM json_populate_record(NULL::app.{table}, $1::text::json)) \
                 WHERE {predicate}"
            )
        } else {
            format!("INSERT INTO app.{table} SELECT * FROM json_populate_record(NULL::app.{table}, $1::text::json)")
        };
        target
            .execute(&sql, &[&json])
            .await
            .map_err(|e| fail(format!("{sql}: {e}")))
    };
    repaired += copy("customers", "id = 42".into()).await?;
    repaired += copy("customers", "id = 7".into()).await?;
    repaired += copy(
        "order_items",
        format!(
            "order_id = {} AND line_no = {}",
            drift.order_item.0, drift.order_item.1
        ),
    )
    .await?;
    repaired += copy(
        "payments",
        format!("id = '{}'::uuid", drift.payment.replace('\'', "")),
    )
    .await?;
    repaired += exec(
        target,
        "DELETE FROM app.audit_log WHERE actor = 'rehearsal-drift'",
    )
    .await?;
    Ok(repaired)
}

fn found_keys(out: &Value) -> Vec<(String, String)> {
    out["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| {
            let table = t["table"].as_str().unwrap_or("").to_string();
            t["first_keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str())
                .map(move |k| (table.clone(), k.to_string()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Runs the stage; `progress` gets one line per step.
pub async fn run(world: &World, progress: &mut dyn FnMut(String)) -> Result<Value, WorldError> {
    let event: Value = serde_json::from_str(include_str!(
        "../../events/data-validator/validate-tables.json"
    ))
    .map_err(|e| fail(e.to_string()))?;
    let tables: Vec<String> = event["tables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    let source = world.admin(Node::Source).await?;
    let target = world.admin(Node::UsEast1).await?;
    // Every run through the validation state machine infra deploys (plan -> Map of
    // validate-segment -> merge), executed by the local world against the function's binary.
    let mut executions = Vec::new();
    let (exec, baseline) = runbooks::validate(world, &tables).await?;
    progress(format!(
        "baseline validation run {} -> {} (execution {}: {})",
        baseline["run_id"], baseline["verdict"], exec.name, exec.status
    ));
    executions.push(exec.to_json());
    if baseline["verdict"] != "MATCH" {
        for line in baseline["report"].as_str().unwrap_or("").lines() {
            progress(format!("  {line}"));
        }
        return Err(fail(
            "the target already differs from the source before any drift was injected \
             (an interrupted earlier run?); `make env-down && bash tests/env/world.sh purge` starts afresh",
        ));
    }

    progress("injecting drift into the target (us-east-1): 2 updated customers, 1 deleted order item, 1 changed payment, 1 extra audit row".into());
    let drift = inject(&target).await?;

    let (exec, first) = runbooks::validate(world, &tables).await?;
    let first_ms = exec.wall_ms;
    progress(format!(
        "validation run {} -> {} in {first_ms} ms (execution {}: {} {})",
        first["run_id"],
        first["verdict"],
        exec.name,
        exec.status,
        exec.error.as_deref().unwrap_or("")
    ));
    for line in exec.compact_timeline() {
        progress(format!("  {line}"));
    }
    executions.push(exec.to_json());
    for line in first["report"].as_str().unwrap_or("").lines() {
        progress(format!("  {line}"));
    }
    let found = found_keys(&first);
    let mut exact = found.len() == drift.expected.len();
    for (table, key) in &drift.expected {
        let hit = found
            .iter()
            .any(|(t, k)| t == table && (k == key || (key == "row " && k.starts_with("row "))));
        exact &= hit;
        progress(format!(
            "  expected {table} {key}: {}",
            if hit { "found" } else { "NOT FOUND" }
        ));
    }

    let repaired = repair(&source, &target, &drift).await?;
    progress(format!(
        "repaired {repaired} rows on the target from the source"
    ));

    let (exec, second) = runbooks::validate(world, &tables).await?;
    let second_ms = exec.wall_ms;
    progress(format!(
        "validation run {} -> {} in {second_ms} ms (execution {}: {})",
        second["run_id"], second["verdict"], exec.name, exec.status
    ));
    executions.push(exec.to_json());

    let ok = first["verdict"] == "MISMATCH" && exact && second["verdict"] == "MATCH";
    let result = json!({
        "ok": ok,
        "drift_found_exactly": exact,
        "before_repair": first,
        "before_repair_ms": first_ms,
        "after_repair": second,
        "after_repair_ms": second_ms,
        "baseline": baseline["verdict"],
        "expected_keys": drift.expected.iter().map(|(t, k)| format!("{t} {k}")).collect::<Vec<_>>(),
        "executions": executions,
    });
    if ok {
        Ok(result)
    } else {
        Err(fail(format!(
            "validation stage did not come out as expected: first {} (exact: {exact}), second {}",
            first["verdict"], second["verdict"]
        )))
    }
}
