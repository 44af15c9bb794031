//! release-hook: a lifecycle hook for traffic-shifter with the ECS hook
//! contract — a smoke check of the new colour in every region of the release.
//!
//! It is invoked with the shifter's context (`lifecycleStage`, `regions`,
//! `newColour`, `hookDetails`, …) and sends `requests` HTTP GETs to `url` per
//! region (`{region}` and `{colour}` in the URL are filled in; `hookDetails`
//! configures it, `CUTOVER_HOOK_DETAILS` on the shifter):
//!
//! - every answer 2xx and the p99 within `maxLatencyMs` in every region → `SUCCEEDED`;
//! - an answer that is not 2xx, or too slow → `FAILED` (the shifter rolls back);
//! - a region not answering yet (connection refused, timeout) → `IN_PROGRESS`
//!   with `callBackDelay`, at most `attempts` times, then `FAILED`.
//!
//! Every answer carries a `reason` the shifter records. Plain HTTP only: in AWS
//! the URL is the ALB's test listener inside the VPC.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl From<HookError> for lambda_runtime::Diagnostic {
    fn from(err: HookError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "InvalidInput".into(),
            error_message: err.to_string(),
        }
    }
}

fn invalid(message: impl Into<String>) -> HookError {
    HookError::InvalidInput(message.into())
}

/// The smoke check's settings, from `hookDetails`.
#[derive(Debug, Clone, PartialEq)]
pub struct Smoke {
    pub url: String,
    pub requests: u32,
    pub max_latency_ms: u64,
    pub attempts: u32,
    pub callback_delay_secs: u64,
    /// Invocations so far that found a region not answering.
    pub attempt: u32,
}

fn number(
    details: &Map<String, Value>,
    key: &str,
    default: u64,
    max: u64,
) -> Result<u64, HookError> {
    match details.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=max).contains(n) || (key == "attempt" && *n == 0))
            .ok_or_else(|| {
                invalid(format!(
                    "hookDetails.{key} must be a whole number from 1 to {max}, not {v}"
                ))
            }),
    }
}

impl Smoke {
    pub fn from_details(details: &Value) -> Result<Smoke, HookError> {
        let Value::Object(d) = details else {
            return Err(invalid(
                "hookDetails is missing: configure {\"url\": \"http://…/health\"} (CUTOVER_HOOK_DETAILS on the traffic-shifter)",
            ));
        };
        let url = match d.get("url") {
            Some(Value::String(u)) if u.starts_with("http://") => u.clone(),
            Some(other) => {
                return Err(invalid(format!(
                    "hookDetails.url must be an http:// URL, not {other}"
                )))
            }
            None => {
                return Err(invalid(
                    "hookDetails has no url (e.g. \"http://green.internal/health\")",
                ))
            }
        };
        Ok(Smoke {
            url,
            requests: number(d, "requests", 5, 1000)? as u32,
            max_latency_ms: number(d, "maxLatencyMs", 200, 60_000)?,
            attempts: number(d, "attempts", 10, 1000)? as u32,
            callback_delay_secs: number(d, "callBackDelay", 10, 3600)?,
            attempt: number(d, "attempt", 0, 1000)? as u32,
        })
    }
}

/// What one region's requests showed.
#[derive(Debug, Clone, PartialEq)]
pub enum RegionResult {
    Healthy { p99_ms: u64 },
    Unhealthy(String),
    NotAnswering(String),
}

/// `http://host:port/path` → (host:port, path).
pub fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url:?} is not an http:// URL"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    let authority = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_string()))
}

/// One GET: the status code, or why there was none.
async fn get(url: &str, timeout: Duration) -> Result<u16, String> {
    let (authority, path) = split_url(url)?;
    let host = authority.split(':').next().unwrap_or_default().to_string();
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(&authority)
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cutover-release-hook\r\nConnection: close\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
        let mut head = Vec::new();
        stream
            .read_to_end(&mut head)
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
        let line = String::from_utf8_lossy(&head);
        let line = line.lines().next().unwrap_or_default().to_string();
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("{authority}: not an HTTP answer: {line:?}"))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{url}: no answer within {} ms", timeout.as_millis()))?
}

fn p99(sorted: &[u64]) -> u64 {
    let rank = (sorted.len() * 99).div_ceil(100);
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Sends the requests to one region's URL, one after another.
pub async fn check_region(smoke: &Smoke, url: &str) -> RegionResult {
    let timeout = Duration::from_millis((smoke.max_latency_ms * 10).max(2000));
    let mut latencies = Vec::new();
    for i in 0..smoke.requests {
        let started = Instant::now();
        match get(url, timeout).await {
            Ok(code) if (200..300).contains(&code) => {
                latencies.push(started.elapsed().as_millis() as u64);
            }
            Ok(code) => {
                return RegionResult::Unhealthy(format!(
                    "{url} answered HTTP {code} (request {} of {})",
                    i + 1,
                    smoke.requests
                ))
            }
            Err(e) if latencies.is_empty() => return RegionResult::NotAnswering(e),
            Err(e) => return RegionResult::Unhealthy(e),
        }
    }
    latencies.sort_unstable();
    let p = p99(&latencies);
    if p > smoke.max_latency_ms {
        RegionResult::Unhealthy(format!(
            "{url}: p99 {p} ms over {} requests, above {} ms",
            smoke.requests, smoke.max_latency_ms
        ))
    } else {
        RegionResult::Healthy { p99_ms: p }
    }
}

/// A checked hook context: the smoke settings, the regions, the new colour, the stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub smoke: Smoke,
    pub regions: Vec<String>,
    pub colour: String,
    pub stage: String,
}

/// Checks the shifter's context before anything is sent.
pub fn parse(event: &Value) -> Result<Context, HookError> {
    let Value::Object(e) = event else {
        return Err(invalid(
            "the event must be the traffic-shifter's hook context (a JSON object)",
        ));
    };
    let smoke = Smoke::from_details(e.get("hookDetails").unwrap_or(&Value::Null))?;
    let regions: Vec<String> = match e.get("regions") {
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|r| r.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| invalid("regions must be region names"))?,
        _ => {
            return Err(invalid(
                "the context has no regions (a non-empty list of region names)",
            ))
        }
    };
    Ok(Context {
        smoke,
        regions,
        colour: e
            .get("newColour")
            .and_then(Value::as_str)
            .unwrap_or("green")
            .to_string(),
        stage: e
            .get("lifecycleStage")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
    })
}

/// The hook: checks every region of the release and answers with the ECS hook contract.
pub async fn check(event: Value) -> Result<Value, HookError> {
    let Context {
        smoke,
        regions,
        colour,
        stage,
    } = parse(&event)?;
    let colour = colour.as_str();
    let checks = regions.iter().map(|r| {
        let url = smoke.url.replace("{region}", r).replace("{colour}", colour);
        let smoke = &smoke;
        async move { (r.clone(), check_region(smoke, &url).await) }
    });
    let results = futures::future::join_all(checks).await;
    let mut healthy = Vec::new();
    let mut unhealthy = Vec::new();
    let mut waiting = Vec::new();
    for (region, r) in results {
        match r {
            RegionResult::Healthy { p99_ms } => healthy.push(format!("{region} p99 {p99_ms} ms")),
            RegionResult::Unhealthy(why) => unhealthy.push(format!("{region}: {why}")),
            RegionResult::NotAnswering(why) => waiting.push(format!("{region}: {why}")),
        }
    }
    let answer = if !unhealthy.is_empty() {
        json!({"hookStatus": "FAILED", "reason": format!("{stage}: {}", unhealthy.join("; "))})
    } else if !waiting.is_empty() {
        let attempt = smoke.attempt + 1;
        if attempt >= smoke.attempts {
            json!({"hookStatus": "FAILED", "reason": format!(
                "{stage}: still not answering after {attempt} attempts: {}", waiting.join("; "))})
        } else {
            let mut details = event
                .get("hookDetails")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            details.insert("attempt".into(), json!(attempt));
            json!({"hookStatus": "IN_PROGRESS", "callBackDelay": smoke.callback_delay_secs,
                   "hookDetails": details,
                   "reason": format!("{stage}: not answering yet (attempt {attempt} of {}): {}", smoke.attempts, waiting.join("; "))})
        }
    } else {
        json!({"hookStatus": "SUCCEEDED", "reason": format!(
            "{stage}: {} requests per region, all 2xx: {}", smoke.requests, healthy.join(", "))})
    };
    tracing::info!(answer = %answer, "smoke check");
    Ok(answer)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::net::TcpListener;

    /// A real HTTP server on loopback answering `status` to every request.
    async fn server(status: u16) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(
                            format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                });
            }
        });
        format!("http://127.0.0.1:{port}/health?r={{region}}")
    }

    fn context(url: &str, extra: Value) -> Value {
        let mut details = json!({"url": url, "requests": 3, "maxLatencyMs": 1000, "attempts": 2});
        details
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"lifecycleStage": "PRE_TRAFFIC", "regions": ["us-east-1", "eu-west-1"],
               "newColour": "green", "hookDetails": details})
    }

    #[tokio::test]
    async fn every_region_answering_2xx_succeeds() {
        let url = server(200).await;
        let a = check(context(&url, json!({}))).await.unwrap();
        assert_eq!(a["hookStatus"], "SUCCEEDED", "{a}");
        assert!(
            a["reason"].as_str().unwrap().contains("eu-west-1 p99"),
            "{a}"
        );
    }

    #[tokio::test]
    async fn a_5xx_fails_and_says_where() {
        let url = server(503).await;
        let a = check(context(&url, json!({}))).await.unwrap();
        assert_eq!(a["hookStatus"], "FAILED");
        assert!(
            a["reason"].as_str().unwrap().contains("answered HTTP 503"),
            "{a}"
        );
    }

    #[tokio::test]
    async fn not_answering_is_in_progress_until_the_attempts_run_out() {
        // A port with nothing listening: bound, then dropped.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/health");
        let a = check(context(&url, json!({"callBackDelay": 1})))
            .await
            .unwrap();
        assert_eq!(a["hookStatus"], "IN_PROGRESS", "{a}");
        assert_eq!(a["callBackDelay"], 1);
        assert_eq!(a["hookDetails"]["attempt"], 1);
        assert_eq!(
            a["hookDetails"]["url"], url,
            "the settings travel with the attempt"
        );
        let mut again = context(&url, json!({}));
        again["hookDetails"] = a["hookDetails"].clone();
        let b = check(again).await.unwrap();
        assert_eq!(b["hookStatus"], "FAILED", "{b}");
        assert!(
            b["reason"].as_str().unwrap().contains("after 2 attempts"),
            "{b}"
        );
    }

    #[tokio::test]
    async fn bad_settings_are_refused_with_a_reason() {
        for (event, needle) in [
            (json!([1]), "JSON object"),
            (json!({"regions": ["a"]}), "hookDetails is missing"),
            (json!({"regions": ["a"], "hookDetails": {}}), "no url"),
            (
                json!({"regions": ["a"], "hookDetails": {"url": "https://x"}}),
                "http:// URL",
            ),
            (
                json!({"regions": ["a"], "hookDetails": {"url": "http://x", "requests": 0}}),
                "hookDetails.requests",
            ),
            (
                json!({"regions": [], "hookDetails": {"url": "http://x"}}),
                "no regions",
            ),
        ] {
            let e = check(event.clone()).await.unwrap_err();
            assert!(e.to_string().contains(needle), "{event}: {e}");
        }
    }

    fn samples(dir: &str) -> Vec<(String, Value)> {
        let dir = format!(
            "{}/../../events/release-hook/{dir}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((
                    path.display().to_string(),
                    serde_json::from_str(&text).unwrap(),
                ));
            }
        }
        out
    }

    #[test]
    fn every_sample_context_parses_and_every_invalid_one_is_refused() {
        let valid = samples("");
        assert!(valid.len() >= 3);
        for (name, event) in &valid {
            let c = parse(event).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c.regions.len(), 3, "{name}");
        }
        let c = parse(
            &valid
                .iter()
                .find(|(n, _)| n.ends_with("second-attempt.json"))
                .unwrap()
                .1,
        )
        .unwrap();
        assert_eq!(c.smoke.attempt, 1);
        let invalid = samples("invalid");
        assert!(invalid.len() >= 5);
        for (name, event) in invalid {
            let e = parse(&event).unwrap_err();
            let d: lambda_runtime::Diagnostic = e.into();
            assert_eq!(d.error_type, "InvalidInput", "{name}");
        }
    }

    #[test]
    fn urls_split_into_host_and_path() {
        assert_eq!(
            split_url("http://a:8080/h?x=1").unwrap(),
            ("a:8080".into(), "/h?x=1".into())
        );
        assert_eq!(split_url("http://a").unwrap(), ("a:80".into(), "/".into()));
        assert!(split_url("ftp://a").is_err());
        assert_eq!(p99(&[1, 2, 3]), 3);
    }
}
