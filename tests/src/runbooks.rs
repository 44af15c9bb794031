//! The state machines infra deploys, executed by the local world.
//!
//! The definitions are infra's own (`infra/asl/<machine>.asl.json`, written by `npm run asl`
//! from `infra/components/runbook.ts`; infra's tests fail when a file is stale). Here only
//! their placeholders are filled: the functions' ARNs in the local world, the ops topic, and
//! the runbook's timing. moto runs them (`execute_state_machine`); each `lambda:invoke` goes
//! through the world's router (`tests/env/aws_router.py`) to `cargo lambda watch`, which runs
//! the functions' own binaries with the settings of `.rehearsal/lambda.env`.

use std::time::{Duration, Instant};

use aws_sdk_sfn::types::HistoryEvent;
use serde_json::{json, Value};

use crate::world::{World, WorldError};

/// The machines infra defines, by the file name of their template.
pub const MACHINES: [&str; 2] = ["runbook", "validation"];

/// moto's account: the ARNs the world's functions answer to.
const ACCOUNT: &str = "123456789012";

/// A machine's template as infra exported it.
pub fn template(machine: &str) -> Result<String, WorldError> {
    let path = crate::world::repo_root()
        .join("infra/asl")
        .join(format!("{machine}.asl.json"));
    std::fs::read_to_string(&path).map_err(|e| fail(format!("{}: {e}", path.display())))
}

/// The local ARN of a function of the workspace (`cargo lambda watch` serves it by name).
pub fn function_arn(function: &str) -> String {
    format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:{function}")
}

/// The runbook's timing in the rehearsal: the cutover's 2 s watch window (`.rehearsal/lambda.env`)
/// plus a margin, a shift plan with steps a second apart, ticks every second.
pub const REHEARSAL_TIMING: [(&str, &str); 4] = [
    ("WatchSeconds", "3"),
    ("PollSeconds", "1"),
    ("ShiftPlan", "linear-50-every-1s"),
    ("RegionBake", "0s"),
];

/// The values for every placeholder of the templates in this world.
pub fn values(world: &World) -> Result<Vec<(String, String)>, WorldError> {
    let mut v = vec![
        ("ValidatorArn".to_string(), function_arn("data-validator")),
        ("CutoverArn".to_string(), function_arn("cutover")),
        ("ShifterArn".to_string(), function_arn("traffic-shifter")),
        (
            "OpsTopicArn".to_string(),
            world.get("CUTOVER_OPS_TOPIC_ARN")?.to_string(),
        ),
    ];
    v.extend(
        REHEARSAL_TIMING
            .iter()
            .map(|(k, val)| (k.to_string(), val.to_string())),
    );
    Ok(v)
}

/// Fills `${Name}` placeholders, as infra's test does (`infra/test/asl.test.ts` `fill`): a
/// number's placeholder stands quoted and is replaced with its quotes. Every placeholder must
/// be filled, and nothing else changes.
pub fn fill(template: &str, values: &[(String, String)]) -> Result<String, WorldError> {
    let mut out = template.to_string();
    for (name, value) in values {
        if value.parse::<f64>().is_ok() {
            out = out.replace(&format!("\"${{{name}}}\""), value);
        }
        out = out.replace(&format!("${{{name}}}"), value);
    }
    if let Some(at) = out.find("${") {
        let rest: String = out[at..].chars().take(40).collect();
        return Err(fail(format!("a placeholder is not filled: {rest}")));
    }
    serde_json::from_str::<Value>(&out).map_err(|e| fail(format!("filled template: {e}")))?;
    Ok(out)
}

pub async fn client(world: &World) -> Result<aws_sdk_sfn::Client, WorldError> {
    Ok(aws_sdk_sfn::Client::new(world.aws().await?.sdk_config()))
}

/// The machine in the local world, created (or updated) from infra's template; its ARN.
pub async fn install(world: &World, machine: &str) -> Result<String, WorldError> {
    let definition = fill(&template(machine)?, &values(world)?)?;
    let sfn = client(world).await?;
    let name = format!("cutover-{machine}-{}", world.get("CUTOVER_SUFFIX")?);
    let existing = sfn
        .list_state_machines()
        .send()
        .await
        .map_err(|e| fail(format!("ListStateMachines: {}", describe(&e))))?
        .state_machines
        .into_iter()
        .find(|m| m.name == name);
    match existing {
        Some(m) => {
            sfn.update_state_machine()
                .state_machine_arn(&m.state_machine_arn)
                .definition(definition)
                .send()
                .await
                .map_err(|e| fail(format!("UpdateStateMachine: {}", describe(&e))))?;
            Ok(m.state_machine_arn)
        }
        None => Ok(sfn
            .create_state_machine()
            .name(&name)
            .definition(definition)
            .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/{name}"))
            .send()
            .await
            .map_err(|e| fail(format!("CreateStateMachine: {}", describe(&e))))?
            .state_machine_arn),
    }
}

/// The definition the local world holds for a machine.
pub async fn deployed_definition(world: &World, arn: &str) -> Result<String, WorldError> {
    Ok(client(world)
        .await?
        .describe_state_machine()
        .state_machine_arn(arn)
        .send()
        .await
        .map_err(|e| fail(format!("DescribeStateMachine: {}", describe(&e))))?
        .definition)
}

/// Validates `tables` through the validation machine, as an operator would start it: the
/// execution, and the merged run (the `ValidateMerge` state's output).
pub async fn validate(world: &World, tables: &[String]) -> Result<(Execution, Value), WorldError> {
    let arn = install(world, "validation").await?;
    let exec = run(
        world,
        &arn,
        &json!({ "tables": tables }),
        Duration::from_secs(600),
    )
    .await?;
    let merged = exec.output_of("ValidateMerge").ok_or_else(|| {
        fail(format!(
            "execution {} ended {} without a merge:\n{}",
            exec.name,
            exec.status,
            exec.timeline()
        ))
    })?;
    Ok((exec, merged))
}

/// One event of an execution's history.
#[derive(Debug, Clone)]
pub struct Step {
    /// ms since the execution started.
    pub at_ms: u64,
    pub kind: String,
    /// The state entered or exited, when the event names one.
    pub state: Option<String>,
    /// An error, a cause, or the task's payload (shortened).
    pub detail: String,
    /// A state's output, when the event is a state exited.
    pub output: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Execution {
    pub arn: String,
    pub name: String,
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub wall_ms: u64,
    pub steps: Vec<Step>,
}

impl Execution {
    pub fn succeeded(&self) -> bool {
        self.status == "SUCCEEDED"
    }

    /// The states entered, in order (Map iterations included).
    pub fn states_entered(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| s.kind.ends_with("StateEntered"))
            .filter_map(|s| s.state.as_deref())
            .collect()
    }

    /// The output of the last exit from `state`, parsed.
    pub fn output_of(&self, state: &str) -> Option<Value> {
        self.steps
            .iter()
            .rev()
            .filter(|s| s.kind.ends_with("StateExited") && s.state.as_deref() == Some(state))
            .find_map(|s| {
                s.output
                    .as_deref()
                    .and_then(|o| serde_json::from_str(o).ok())
            })
    }

    /// The timeline as the report shows it: one line per state entered, task failure and
    /// end, with each Map's iterations folded into one line (items, invocations, failures).
    pub fn compact_timeline(&self) -> Vec<String> {
        let line = |at_ms: u64, what: &str, detail: &str| {
            format!(
                "{:>8.3} s  {what}{}",
                at_ms as f64 / 1000.0,
                if detail.is_empty() {
                    String::new()
                } else {
                    format!("  {detail}")
                }
            )
        };
        let mut out = Vec::new();
        // Inside a Map: (name, entered at, items, tasks entered, failures)
        let mut map: Option<(String, u64, String, u64, u64)> = None;
        for s in &self.steps {
            let state = s.state.as_deref().unwrap_or("");
            match (&mut map, s.kind.as_str()) {
                (None, "MapStateEntered") => {
                    map = Some((state.to_string(), s.at_ms, String::new(), 0, 0));
                }
                (Some(m), "MapStateStarted") => m.2 = s.detail.clone(),
                (Some(m), "TaskStateEntered") => m.3 += 1,
                (Some(m), "TaskFailed") => {
                    m.4 += 1;
                    out.push(line(s.at_ms, "  task failed in the Map:", &s.detail));
                }
                (Some(m), "MapStateExited" | "MapStateFailed") => {
                    let ended = if s.kind == "MapStateFailed" {
                        "FAILED"
                    } else {
                        "done"
                    };
                    out.push(line(
                        m.1,
                        &format!("Map {}", m.0),
                        &format!(
                            "{}, {} invocations ({} failed), {ended} at {:.3} s",
                            m.2,
                            m.3,
                            m.4,
                            s.at_ms as f64 / 1000.0
                        ),
                    ));
                    map = None;
                }
                (Some(_), _) => {}
                (None, kind) => {
                    if kind.ends_with("StateEntered") {
                        out.push(line(s.at_ms, state, ""));
                    } else if kind.ends_with("Failed")
                        || kind.ends_with("TimedOut")
                        || kind.starts_with("Execution")
                    {
                        out.push(line(s.at_ms, kind, &s.detail));
                    }
                }
            }
        }
        out
    }

    /// What the report keeps of an execution.
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "arn": self.arn,
            "status": self.status,
            "error": self.error,
            "wall_ms": self.wall_ms,
            "timeline": self.compact_timeline(),
        })
    }

    /// The execution as a timeline: one line per state entered, task failure and end.
    pub fn timeline(&self) -> String {
        let mut out = format!(
            "execution {} ({}): {}{}\n",
            self.name,
            self.arn,
            self.status,
            self.error
                .as_deref()
                .map(|e| format!(" {e}"))
                .unwrap_or_default()
        );
        for s in &self.steps {
            let interesting = s.kind.ends_with("StateEntered")
                || s.kind.ends_with("Failed")
                || s.kind.ends_with("TimedOut")
                || s.kind.starts_with("Execution");
            if interesting {
                out.push_str(&format!(
                    "  {:>8.3} s  {:<28} {}{}\n",
                    s.at_ms as f64 / 1000.0,
                    s.kind,
                    s.state.as_deref().unwrap_or(""),
                    if s.detail.is_empty() {
                        String::new()
                    } else {
                        format!("  {}", s.detail)
                    }
                ));
            }
        }
        out
    }
}

/// Starts an execution and waits for its end (at most `limit`), with progress every 10 s.
pub async fn run(
    world: &World,
    arn: &str,
    input: &Value,
    limit: Duration,
) -> Result<Execution, WorldError> {
    let sfn = client(world).await?;
    let started = Instant::now();
    let exec_arn = sfn
        .start_execution()
        .state_machine_arn(arn)
        // moto names an unnamed execution "None" (and refuses the second one).
        .name(execution_name())
        .input(input.to_string())
        .send()
        .await
        .map_err(|e| fail(format!("StartExecution: {}", describe(&e))))?
        .execution_arn;
    let mut last_progress = Instant::now();
    loop {
        let d = sfn
            .describe_execution()
            .execution_arn(&exec_arn)
            .send()
            .await
            .map_err(|e| fail(format!("DescribeExecution: {}", describe(&e))))?;
        let status = d.status.as_str().to_string();
        if status != "RUNNING" {
            let steps = history(&sfn, &exec_arn).await?;
            return Ok(Execution {
                arn: exec_arn,
                name: d.name.unwrap_or_default(),
                status,
                output: d
                    .output
                    .as_deref()
                    .and_then(|o| serde_json::from_str(o).ok()),
                error: d.error,
                cause: d.cause,
                wall_ms: started.elapsed().as_millis() as u64,
                steps,
            });
        }
        if started.elapsed() > limit {
            let steps = history(&sfn, &exec_arn).await.unwrap_or_default();
            let _ = sfn.stop_execution().execution_arn(&exec_arn).send().await;
            let last: Vec<&str> = steps
                .iter()
                .rev()
                .filter_map(|s| s.state.as_deref())
                .take(3)
                .collect();
            return Err(fail(format!(
                "execution {exec_arn} still running after {} s (last states: {last:?}); stopped",
                limit.as_secs()
            )));
        }
        if last_progress.elapsed() > Duration::from_secs(10) {
            last_progress = Instant::now();
            let steps = history(&sfn, &exec_arn).await.unwrap_or_default();
            let at = steps.iter().rev().find_map(|s| s.state.clone());
            eprintln!(
                "[runbook] {} s: running, at {}",
                started.elapsed().as_secs(),
                at.unwrap_or_else(|| "-".into())
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `rehearsal-<ms since the epoch>-<n>`: unique, sortable, and within Step Functions' 80 characters.
fn execution_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("rehearsal-{ms}-{}", N.fetch_add(1, Ordering::Relaxed))
}

async fn history(sfn: &aws_sdk_sfn::Client, exec_arn: &str) -> Result<Vec<Step>, WorldError> {
    let mut events: Vec<HistoryEvent> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(exec_arn)
            .set_next_token(token.clone())
            .max_results(1000)
            .send()
            .await
            .map_err(|e| fail(format!("GetExecutionHistory: {}", describe(&e))))?;
        events.extend(page.events);
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    let t0 = events
        .first()
        .map(|e| e.timestamp.to_millis().unwrap_or(0))
        .unwrap_or(0);
    Ok(events.iter().map(|e| step(e, t0)).collect())
}

fn step(e: &HistoryEvent, t0: i64) -> Step {
    let short = |s: &str| -> String {
        let s = s.replace('\n', " ");
        if s.chars().count() > 160 {
            format!("{}…", s.chars().take(160).collect::<String>())
        } else {
            s
        }
    };
    let state = e
        .state_entered_event_details
        .as_ref()
        .map(|d| d.name.clone())
        .or_else(|| {
            e.state_exited_event_details
                .as_ref()
                .map(|d| d.name.clone())
        });
    let detail = if let Some(d) = &e.task_failed_event_details {
        short(&format!(
            "{}: {}",
            d.error.as_deref().unwrap_or(""),
            d.cause.as_deref().unwrap_or("")
        ))
    } else if let Some(d) = &e.execution_failed_event_details {
        short(&format!(
            "{}: {}",
            d.error.as_deref().unwrap_or(""),
            d.cause.as_deref().unwrap_or("")
        ))
    } else if let Some(d) = &e.map_state_started_event_details {
        format!("{} items", d.length)
    } else {
        String::new()
    };
    Step {
        at_ms: (e.timestamp.to_millis().unwrap_or(t0) - t0).max(0) as u64,
        kind: e.r#type.as_str().to_string(),
        state,
        detail,
        output: e
            .state_exited_event_details
            .as_ref()
            .and_then(|d| d.output.clone()),
    }
}

/// The world's router (`tests/env/aws_router.py`): faults of the Lambda service for drills,
/// and what it routed.
pub struct Router {
    port: u16,
}

impl Router {
    pub fn of(world: &World) -> Result<Router, WorldError> {
        let port = world
            .get("CUTOVER_ROUTER_PORT")?
            .parse()
            .map_err(|_| fail("CUTOVER_ROUTER_PORT is not a port".into()))?;
        Ok(Router { port })
    }

    /// The next `times` invocations of `function` whose payload holds every field of `matching`
    /// fail with HTTP 500 `ServiceException` before they reach the function.
    pub async fn fail_next(
        &self,
        function: &str,
        matching: Value,
        times: u32,
    ) -> Result<(), WorldError> {
        self.call(
            "POST",
            "/_router/faults",
            Some(json!({"function": function, "match": matching, "times": times})),
        )
        .await
        .map(|_| ())
    }

    /// Invokes a function of the world directly (through the router, as Lambda's Invoke
    /// API); its error, when it returns one, as `Err`.
    pub async fn invoke(&self, function: &str, payload: Value) -> Result<Value, WorldError> {
        let out = self
            .call(
                "POST",
                &format!("/2015-03-31/functions/{function}/invocations"),
                Some(payload),
            )
            .await?;
        if out.get("errorType").is_some() {
            return Err(fail(format!("{function}: {out}")));
        }
        Ok(out)
    }

    /// Loses a region's AWS whole: nothing signed for it is answered any more (its
    /// replica of the state table stops receiving and sending replication too).
    pub async fn region_down(&self, region: &str) -> Result<(), WorldError> {
        self.call("POST", &format!("/_router/regions/{region}/down"), None)
            .await
            .map(|_| ())
    }

    /// Brings a lost region's AWS back (what was replicated to it meanwhile arrives).
    pub async fn region_up(&self, region: &str) -> Result<(), WorldError> {
        self.call("POST", &format!("/_router/regions/{region}/up"), None)
            .await
            .map(|_| ())
    }

    /// Holds the state table's replication back (`true`) or lets it go (`false`):
    /// while held, each region's replica sees only its own region's writes.
    pub async fn hold_replication(&self, held: bool) -> Result<(), WorldError> {
        let what = if held { "pause" } else { "resume" };
        self.call("POST", &format!("/_router/replication/{what}"), None)
            .await
            .map(|_| ())
    }

    /// The regions down, and the state table's replication counters.
    pub async fn regions(&self) -> Result<Value, WorldError> {
        self.call("GET", "/_router/regions", None).await
    }

    /// Forgets the faults and the invocations routed so far.
    pub async fn reset(&self) -> Result<(), WorldError> {
        self.call("DELETE", "/_router/faults", None).await?;
        self.call("DELETE", "/_router/invocations", None).await?;
        Ok(())
    }

    /// Every invocation routed since the last reset: function, payload, status, fault.
    pub async fn invocations(&self) -> Result<Vec<Value>, WorldError> {
        match self.call("GET", "/_router/invocations", None).await? {
            Value::Array(items) => Ok(items),
            other => Err(fail(format!("router: unexpected {other}"))),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WorldError> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| fail(format!("router on port {}: {e}", self.port)))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| fail(format!("router: {e}")))?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .await
            .map_err(|e| fail(format!("router: {e}")))?;
        let (head, text) = response
            .split_once("\r\n\r\n")
            .ok_or_else(|| fail("router: a response without a body".into()))?;
        if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
            return Err(fail(format!(
                "router: {} {path}: {}",
                head.lines().next().unwrap_or(""),
                text
            )));
        }
        serde_json::from_str(text).map_err(|e| fail(format!("router: {e}: {text}")))
    }
}

fn describe<E: std::error::Error>(e: &E) -> String {
    cutover_core::error::describe_chain(e)
}

fn fail(message: String) -> WorldError {
    WorldError::Malformed {
        path: "runbooks".into(),
        message,
    }
}
