//! The DynamoDB migration-state store and its fencing lease.
//!
//! One table, `pk`/`sk` strings (the schema is in the README's *Migration state*; [`keys`] builds
//! every key of it). Every write that moves a state forward is conditional on the
//! `version` it read: when someone else moved first the write fails with
//! [`Error::Conflict`] and nothing is overwritten.
//!
//! The lease ([`Leases`]) is a fencing token: whoever holds it has an `epoch`
//! that grows by one with every new holder, and writes made under it
//! ([`StateStore::put_fenced`]) are rejected once a newer holder exists, so a
//! holder that stalled past its expiry cannot undo what its successor did.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

type Item = HashMap<String, AttributeValue>;

/// Attributes the store owns; item types must not use these names.
const RESERVED: [&str; 6] = [
    "pk",
    "sk",
    "version",
    "updated_at_ms",
    "expires_at",
    "epoch",
];

/// The primary key of one item.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Key {
            pk: pk.into(),
            sk: sk.into(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.pk, self.sk)
    }
}

/// Every key of the schema (the README's *Migration state*), built in one place.
pub mod keys {
    use super::Key;

    pub fn validation_run(run_id: &str) -> Key {
        Key::new(format!("VALIDATION#{run_id}"), "RUN")
    }
    /// Segment numbers are zero-padded so that segments sort in order.
    pub fn validation_segment(run_id: &str, table: &str, segment: u32) -> Key {
        Key::new(
            format!("VALIDATION#{run_id}"),
            format!("TABLE#{table}#SEG#{segment:06}"),
        )
    }
    /// A table's summary in a run (its plan, counts and findings); `position` keeps
    /// the run's table order.
    pub fn validation_table(run_id: &str, position: usize, table: &str) -> Key {
        Key::new(
            format!("VALIDATION#{run_id}"),
            format!("SUMMARY#{position:05}#{table}"),
        )
    }
    pub fn validation_diff(run_id: &str, table: &str, row_key: &str) -> Key {
        Key::new(
            format!("VALIDATION#{run_id}"),
            format!("DIFF#{table}#{row_key}"),
        )
    }
    pub fn lag_latest(region: &str) -> Key {
        Key::new(format!("LAG#{region}"), "LATEST")
    }
    /// The latest lag sample of `region` as the lag-probe in `vantage` measured it:
    /// each region's probe keeps its own item, so the three do not overwrite each other.
    pub fn lag_from(region: &str, vantage: &str) -> Key {
        Key::new(format!("LAG#{region}"), format!("FROM#{vantage}"))
    }
    /// Every vantage's lag sample of `region`: the partition, and in `sk` the prefix
    /// every one of its sort keys starts with (for `StateStore::query_prefix`).
    pub fn lag_from_every_vantage(region: &str) -> Key {
        Key::new(format!("LAG#{region}"), "FROM#")
    }
    /// What the lag-probe in `vantage` last saw of the writer in `writer_region`
    /// (a `reach::ReachRecord`).
    pub fn reach(writer_region: &str, vantage: &str) -> Key {
        Key::new(format!("REACH#{writer_region}"), format!("FROM#{vantage}"))
    }
    /// Every vantage's reachability record of the writer in `writer_region`: the
    /// partition, and in `sk` the prefix of its sort keys.
    pub fn reach_from_every_vantage(writer_region: &str) -> Key {
        Key::new(format!("REACH#{writer_region}"), "FROM#")
    }
    /// The vantage a `FROM#<vantage>` sort key names.
    pub fn vantage_of(key: &Key) -> Option<&str> {
        key.sk.strip_prefix("FROM#")
    }
    pub fn deployment_current(service: &str) -> Key {
        Key::new(format!("DEPLOYMENT#{service}"), "CURRENT")
    }
    /// `ts` is an RFC 3339 timestamp (or any string that sorts by time).
    pub fn deployment_event(service: &str, ts: &str) -> Key {
        Key::new(format!("DEPLOYMENT#{service}"), format!("EVENT#{ts}"))
    }
    pub fn failover_lease() -> Key {
        Key::new("FAILOVER", "LEASE")
    }
    pub fn failover_event(ts: &str) -> Key {
        Key::new("FAILOVER", format!("EVENT#{ts}"))
    }
    pub fn migration_phase() -> Key {
        Key::new("MIGRATION", "PHASE")
    }
    /// The cutover's lease: one phase transition at a time.
    pub fn migration_lease() -> Key {
        Key::new("MIGRATION", "LEASE")
    }
    /// `ts` sorts by time (zero-padded milliseconds); `n` tells apart two in one millisecond.
    pub fn migration_event(ts: &str, n: &str) -> Key {
        Key::new("MIGRATION", format!("EVENT#{ts}#{n}"))
    }
}

/// The latest replication-lag sample of one region (`LAG#<region>` / `LATEST`),
/// written by lag-probe, read by failover to choose a target and state the loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagSample {
    pub region: String,
    /// Heartbeat lag measured on the probe's own clock; `None` when the region was unreachable.
    pub heartbeat_ms: Option<f64>,
    /// `heartbeat_ms` is a lower bound: the heartbeat had not arrived yet when it was taken.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub heartbeat_is_lower_bound: bool,
    /// What the engine itself reports, when it reports anything.
    pub engine_ms: Option<f64>,
    /// Wall-clock time of the sample, milliseconds since the Unix epoch.
    pub taken_at_ms: u64,
}

/// Where the migration as a whole stands (`MIGRATION` / `PHASE`), in the order the
/// cutover moves through them (the cutover function's README says what each gate proves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The target is being loaded from the source.
    FullLoad,
    /// Changes flow from the source to the target.
    Cdc,
    /// Validation says the same and replication keeps up.
    InSync,
    /// The source refuses the application's writes.
    Frozen,
    /// The target has applied everything the source committed before the freeze.
    Drained,
    /// Final validation at the frozen point: the same rows on both sides.
    Verified,
    /// The application writes to the target; reverse replication keeps the source current.
    Switched,
    /// The watch window passed without alarms.
    Stable,
    /// Reverse replication ended; the source is retired.
    Done,
}

impl Phase {
    pub const ALL: [Phase; 9] = [
        Phase::FullLoad,
        Phase::Cdc,
        Phase::InSync,
        Phase::Frozen,
        Phase::Drained,
        Phase::Verified,
        Phase::Switched,
        Phase::Stable,
        Phase::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::FullLoad => "full-load",
            Phase::Cdc => "cdc",
            Phase::InSync => "in-sync",
            Phase::Frozen => "frozen",
            Phase::Drained => "drained",
            Phase::Verified => "verified",
            Phase::Switched => "switched",
            Phase::Stable => "stable",
            Phase::Done => "done",
        }
    }

    /// The phase `advance` moves to; `None` after `done`.
    pub fn next(self) -> Option<Phase> {
        let i = Phase::ALL.iter().position(|p| *p == self)?;
        Phase::ALL.get(i + 1).copied()
    }

    /// The application writes to the target from this phase on.
    pub fn writes_on_target(self) -> bool {
        self >= Phase::Switched
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Phase::ALL
            .iter()
            .find(|p| p.as_str() == s)
            .copied()
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a phase; expected one of {}",
                    Phase::ALL.map(Phase::as_str).join(", ")
                )
            })
    }
}

/// A value as stored, with the version a conditional update must name.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub version: u64,
    /// The lease epoch the item was last written under, for fenced items.
    pub epoch: Option<u64>,
}

/// Milliseconds since the Unix epoch on this machine's wall clock.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Clone, Debug)]
pub struct StateStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

fn n(value: u64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

fn read_u64(item: &Item, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(text)) => text.parse().ok(),
        _ => None,
    }
}

fn read_string(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(text)) => Some(text.clone()),
        _ => None,
    }
}

type SdkError<E> =
    aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>;

/// A conditional write that lost (PutItem).
fn put_lost(err: &SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError>) -> bool {
    matches!(
        err.as_service_error(),
        Some(
            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_)
        )
    )
}

/// A conditional write that lost (UpdateItem).
fn update_lost(err: &SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError>) -> bool {
    matches!(
        err.as_service_error(),
        Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_))
    )
}

impl StateStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        StateStore {
            client,
            table: table.into(),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Turns a value into an item with its key and bookkeeping attributes.
    fn encode<T: Serialize>(
        &self,
        key: &Key,
        value: &T,
        version: u64,
        ttl: Option<Duration>,
    ) -> Result<Item> {
        let mut item: Item = serde_dynamo::to_item(value)
            .map_err(|e| Error::Internal(format!("cannot encode {key} for DynamoDB: {e}")))?;
        if let Some(name) = RESERVED.iter().find(|name| item.contains_key(**name)) {
            return Err(Error::Internal(format!(
                "item type for {key} uses the reserved attribute name {name:?}"
            )));
        }
        let now = now_ms();
        item.insert("pk".into(), s(&key.pk));
        item.insert("sk".into(), s(&key.sk));
        item.insert("version".into(), n(version));
        item.insert("updated_at_ms".into(), n(now));
        if let Some(ttl) = ttl {
            // DynamoDB TTL is in seconds since the epoch.
            item.insert("expires_at".into(), n(now / 1000 + ttl.as_secs().max(1)));
        }
        Ok(item)
    }

    fn decode<T: DeserializeOwned>(key: &Key, item: Item) -> Result<Versioned<T>> {
        let version = read_u64(&item, "version").unwrap_or(0);
        let epoch = read_u64(&item, "epoch");
        let value = serde_dynamo::from_item(item).map_err(|e| {
            Error::Internal(format!("item {key} does not have the expected shape: {e}"))
        })?;
        Ok(Versioned {
            value,
            version,
            epoch,
        })
    }

    async fn get_raw(&self, key: &Key) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "GetItem", e))?;
        Ok(out.item)
    }

    /// Reads one item (strongly consistent).
    pub async fn get<T: DeserializeOwned>(&self, key: &Key) -> Result<Option<Versioned<T>>> {
        match self.get_raw(key).await? {
            None => Ok(None),
            Some(item) => Self::decode(key, item).map(Some),
        }
    }

    async fn conflict(&self, key: &Key, expected: Option<u64>) -> Error {
        let current = self.get_raw(key).await.ok().flatten();
        let detail = match (
            expected,
            current.as_ref().and_then(|i| read_u64(i, "version")),
        ) {
            (None, Some(v)) => format!("it already exists (version {v}); someone else moved first"),
            (None, None) => "it already exists; someone else moved first".to_string(),
            (Some(e), Some(v)) => {
                format!("expected version {e} but it is at version {v}; someone else moved first")
            }
            (Some(e), None) => format!("expected version {e} but the item is gone"),
        };
        Error::Conflict {
            pk: key.pk.clone(),
            sk: key.sk.clone(),
            detail,
        }
    }

    /// Creates an item at version 1; fails with `Conflict` if it exists.
    pub async fn create<T: Serialize>(&self, key: &Key, value: &T) -> Result<u64> {
        let item = self.encode(key, value, 1, None)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(1),
            Err(e) if put_lost(&e) => Err(self.conflict(key, None).await),
            Err(e) => Err(Error::aws("DynamoDB", "PutItem", e)),
        }
    }

    /// Replaces an item if it is still at `expected_version`; returns the new version.
    pub async fn update<T: Serialize>(
        &self,
        key: &Key,
        value: &T,
        expected_version: u64,
    ) -> Result<u64> {
        let next = expected_version + 1;
        let item = self.encode(key, value, next, None)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("#v = :expected")
            .expression_attribute_names("#v", "version")
            .expression_attribute_values(":expected", n(expected_version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(next),
            Err(e) if put_lost(&e) => Err(self.conflict(key, Some(expected_version)).await),
            Err(e) => Err(Error::aws("DynamoDB", "PutItem", e)),
        }
    }

    /// Creates (`expected_version = None`) or updates an item, whichever the caller read.
    pub async fn save<T: Serialize>(
        &self,
        key: &Key,
        value: &T,
        expected_version: Option<u64>,
    ) -> Result<u64> {
        match expected_version {
            None => self.create(key, value).await,
            Some(v) => self.update(key, value, v).await,
        }
    }

    /// Writes a sample where the last writer wins by design (e.g. `LAG#<region>`).
    pub async fn put_latest<T: Serialize>(&self, key: &Key, value: &T) -> Result<()> {
        let item = self.encode(key, value, 0, None)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "PutItem", e))?;
        Ok(())
    }

    /// Appends a history record (audit trail, step history) that never overwrites
    /// an existing one and expires after `ttl`.
    pub async fn append<T: Serialize>(
        &self,
        key: &Key,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let item = self.encode(key, value, 1, ttl)?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if put_lost(&e) => Err(self.conflict(key, None).await),
            Err(e) => Err(Error::aws("DynamoDB", "PutItem", e)),
        }
    }

    /// Every item of a partition whose sort key starts with `sk_prefix`, in sort-key order.
    pub async fn query_prefix<T: DeserializeOwned>(
        &self,
        pk: &str,
        sk_prefix: &str,
    ) -> Result<Vec<(Key, Versioned<T>)>> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":prefix", s(sk_prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| Error::aws("DynamoDB", "Query", e))?;
            for item in out.items.unwrap_or_default() {
                let key = Key::new(
                    read_string(&item, "pk").unwrap_or_default(),
                    read_string(&item, "sk").unwrap_or_default(),
                );
                let value = Self::decode(&key, item)?;
                found.push((key, value));
            }
            match out.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => return Ok(found),
            }
        }
    }

    pub async fn delete(&self, key: &Key) -> Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(&key.pk))
            .key("sk", s(&key.sk))
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB", "DeleteItem", e))?;
        Ok(())
    }

    /// Writes an item under a lease: in one transaction the lease must still be
    /// held by `lease.holder` at `lease.epoch` and unexpired, the item must be at
    /// `expected_version` (or absent for `None`), and it must not have been written
    /// by a newer epoch. A stale holder gets [`Error::Fenced`]; a lost race on the
    /// item itself gets [`Error::Conflict`].
    pub async fn put_fenced<T: Serialize>(
        &self,
        lease: &Lease,
        key: &Key,
        value: &T,
        expected_version: Option<u64>,
    ) -> Result<u64> {
        let next = expected_version.map_or(1, |v| v + 1);
        let mut item = self.encode(key, value, next, None)?;
        item.insert("epoch".into(), n(lease.epoch));
        let now = now_ms();
        let lease_check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(&lease.key.pk))
            .key("sk", s(&lease.key.sk))
            .condition_expression("#h = :holder AND #e = :epoch AND #x > :now")
            .expression_attribute_names("#h", "holder")
            .expression_attribute_names("#e", "epoch")
            .expression_attribute_names("#x", "lease_expires_ms")
            .expression_attribute_values(":holder", s(&lease.holder))
            .expression_attribute_values(":epoch", n(lease.epoch))
            .expression_attribute_values(":now", n(now))
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let put = Put::builder().table_name(&self.table).set_item(Some(item));
        let put = match expected_version {
            None => put.condition_expression("attribute_not_exists(pk)"),
            Some(v) => put
                .condition_expression(
                    "#v = :expected AND (attribute_not_exists(#e) OR #e <= :epoch)",
                )
                .expression_attribute_names("#v", "version")
                .expression_attribute_names("#e", "epoch")
                .expression_attribute_values(":expected", n(v))
                .expression_attribute_values(":epoch", n(lease.epoch)),
        };
        let put = put.build().map_err(|e| Error::Internal(e.to_string()))?;
        let result = self
            .client
            .transact_write_items()
            .transact_items(
                TransactWriteItem::builder()
                    .condition_check(lease_check)
                    .build(),
            )
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match result {
            Ok(_) => Ok(next),
            Err(e) => {
                let cancelled = e
                    .as_service_error()
                    .and_then(|se| match se {
                        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(t) => {
                            Some(t.cancellation_reasons().to_vec())
                        }
                        _ => None,
                    });
                let Some(reasons) = cancelled else {
                    return Err(Error::aws("DynamoDB", "TransactWriteItems", e));
                };
                let failed = |i: usize| {
                    reasons
                        .get(i)
                        .and_then(|r| r.code())
                        .is_some_and(|c| c == "ConditionalCheckFailed")
                };
                // Classify by re-reading when the service did not say which check failed.
                let lease_lost = if reasons.is_empty() {
                    !self.lease_still_held(lease).await?
                } else {
                    failed(0)
                };
                if lease_lost {
                    let current = Leases::new(self.clone(), lease.key.clone())
                        .current()
                        .await?;
                    Err(Error::Fenced(fenced_message(lease, current.as_ref())))
                } else {
                    Err(self.conflict(key, expected_version).await)
                }
            }
        }
    }

    /// Writes an item under a lease over whichever version is stored now, as long
    /// as no newer epoch wrote it: for a record that other regions may rewrite at
    /// the same epoch meanwhile (a global table replicates their writes in, each
    /// with its own version), where the version this holder read is no longer the
    /// point but the epoch is. A record of a newer epoch is refused
    /// ([`Error::Conflict`]); a stale holder gets [`Error::Fenced`].
    pub async fn put_fenced_over<T: Serialize>(
        &self,
        lease: &Lease,
        key: &Key,
        value: &T,
        read_version: Option<u64>,
    ) -> Result<u64> {
        let mut expected = read_version;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let err = match self.put_fenced(lease, key, value, expected).await {
                Err(e @ Error::Conflict { .. }) => e,
                other => return other,
            };
            let current = self.get_raw(key).await?;
            let newer_epoch = current
                .as_ref()
                .and_then(|i| read_u64(i, "epoch"))
                .is_some_and(|e| e > lease.epoch);
            if newer_epoch || attempts >= 5 {
                return Err(err);
            }
            expected = current.and_then(|i| read_u64(&i, "version"));
        }
    }

    async fn lease_still_held(&self, lease: &Lease) -> Result<bool> {
        let current = Leases::new(self.clone(), lease.key.clone())
            .current()
            .await?;
        Ok(current.is_some_and(|c| {
            c.holder == lease.holder && c.epoch == lease.epoch && c.expires_at_ms > now_ms()
        }))
    }
}

fn fenced_message(lease: &Lease, current: Option<&LeaseRecord>) -> String {
    match current {
        Some(c) if c.epoch > lease.epoch => format!(
            "{} at epoch {} is stale: {} now holds {} at epoch {}",
            lease.holder, lease.epoch, c.holder, lease.key, c.epoch
        ),
        _ => format!(
            "{} no longer holds {} at epoch {} (expired or released)",
            lease.holder, lease.key, lease.epoch
        ),
    }
}

/// The lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub holder: String,
    pub epoch: u64,
    /// Wall-clock expiry, ms since the Unix epoch; 0 once released.
    pub expires_at_ms: u64,
}

/// A lease this process holds: its proof is the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub key: Key,
    pub holder: String,
    pub epoch: u64,
    pub expires_at_ms: u64,
}

impl Lease {
    /// Time left before expiry, as this machine's clock sees it.
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(self.expires_at_ms.saturating_sub(now_ms()))
    }
}

/// Acquire, renew and release of one lease item.
#[derive(Clone, Debug)]
pub struct Leases {
    store: StateStore,
    key: Key,
}

impl Leases {
    pub fn new(store: StateStore, key: Key) -> Self {
        Leases { store, key }
    }

    /// The failover lease (`FAILOVER` / `LEASE`).
    pub fn failover(store: StateStore) -> Self {
        Leases::new(store, keys::failover_lease())
    }

    pub async fn current(&self) -> Result<Option<LeaseRecord>> {
        Ok(self
            .store
            .get_raw(&self.key)
            .await?
            .map(|item| LeaseRecord {
                holder: read_string(&item, "holder").unwrap_or_default(),
                epoch: read_u64(&item, "epoch").unwrap_or(0),
                expires_at_ms: read_u64(&item, "lease_expires_ms").unwrap_or(0),
            }))
    }

    /// Takes the lease for `ttl` if it is free or expired. Every new holder gets
    /// the previous epoch plus one; a holder that already holds it gets it back
    /// unchanged. Someone else's live lease is [`Error::Fenced`].
    pub async fn acquire(&self, holder: &str, ttl: Duration) -> Result<Lease> {
        if holder.is_empty() {
            return Err(Error::invalid("a lease holder needs a non-empty name"));
        }
        let now = now_ms();
        let current = self.current().await?;
        if let Some(c) = &current {
            if c.expires_at_ms > now {
                if c.holder == holder {
                    return Ok(Lease {
                        key: self.key.clone(),
                        holder: holder.to_string(),
                        epoch: c.epoch,
                        expires_at_ms: c.expires_at_ms,
                    });
                }
                return Err(Error::Fenced(format!(
                    "{} is held by {} at epoch {} for another {} ms",
                    self.key,
                    c.holder,
                    c.epoch,
                    c.expires_at_ms - now
                )));
            }
        }
        let epoch = current.as_ref().map_or(0, |c| c.epoch) + 1;
        let expires_at_ms = now + ttl.as_millis() as u64;
        let mut request = self
            .store
            .client
            .put_item()
            .table_name(&self.store.table)
            .item("pk", s(&self.key.pk))
            .item("sk", s(&self.key.sk))
            .item("holder", s(holder))
            .item("epoch", n(epoch))
            .item("lease_expires_ms", n(expires_at_ms))
            .item("acquired_at_ms", n(now))
            .item("updated_at_ms", n(now));
        request = match &current {
            None => request.condition_expression("attribute_not_exists(pk)"),
            Some(c) => request
                .condition_expression("#e = :seen AND #x <= :now")
                .expression_attribute_names("#e", "epoch")
                .expression_attribute_names("#x", "lease_expires_ms")
                .expression_attribute_values(":seen", n(c.epoch))
                .expression_attribute_values(":now", n(now)),
        };
        match request.send().await {
            Ok(_) => Ok(Lease {
                key: self.key.clone(),
                holder: holder.to_string(),
                epoch,
                expires_at_ms,
            }),
            Err(e) if put_lost(&e) => {
                let winner = self.current().await?;
                Err(Error::Fenced(match winner {
                    Some(w) => format!(
                        "{} was taken first by {} at epoch {}",
                        self.key, w.holder, w.epoch
                    ),
                    None => format!("{} changed while acquiring it", self.key),
                }))
            }
            Err(e) => Err(Error::aws("DynamoDB", "PutItem", e)),
        }
    }

    /// Extends a lease this holder still holds at the same epoch.
    pub async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease> {
        let expires_at_ms = now_ms() + ttl.as_millis() as u64;
        let result = self
            .store
            .client
            .update_item()
            .table_name(&self.store.table)
            .key("pk", s(&self.key.pk))
            .key("sk", s(&self.key.sk))
            .update_expression("SET #x = :expires, updated_at_ms = :now")
            .condition_expression("#h = :holder AND #e = :epoch")
            .expression_attribute_names("#x", "lease_expires_ms")
            .expression_attribute_names("#h", "holder")
            .expression_attribute_names("#e", "epoch")
            .expression_attribute_values(":expires", n(expires_at_ms))
            .expression_attribute_values(":now", n(now_ms()))
            .expression_attribute_values(":holder", s(&lease.holder))
            .expression_attribute_values(":epoch", n(lease.epoch))
            .send()
            .await;
        match result {
            Ok(_) => Ok(Lease {
                expires_at_ms,
                ..lease.clone()
            }),
            Err(e) if update_lost(&e) => {
                let current = self.current().await?;
                Err(Error::Fenced(fenced_message(lease, current.as_ref())))
            }
            Err(e) => Err(Error::aws("DynamoDB", "UpdateItem", e)),
        }
    }

    /// Gives the lease up at once (expiry 0); the epoch stays, so the next holder
    /// still gets a higher one.
    pub async fn release(&self, lease: &Lease) -> Result<()> {
        let result = self
            .store
            .client
            .update_item()
            .table_name(&self.store.table)
            .key("pk", s(&self.key.pk))
            .key("sk", s(&self.key.sk))
            .update_expression("SET #x = :zero, updated_at_ms = :now")
            .condition_expression("#h = :holder AND #e = :epoch")
            .expression_attribute_names("#x", "lease_expires_ms")
            .expression_attribute_names("#h", "holder")
            .expression_attribute_names("#e", "epoch")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", n(now_ms()))
            .expression_attribute_values(":holder", s(&lease.holder))
            .expression_attribute_values(":epoch", n(lease.epoch))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if update_lost(&e) => {
                let current = self.current().await?;
                Err(Error::Fenced(fenced_message(lease, current.as_ref())))
            }
            Err(e) => Err(Error::aws("DynamoDB", "UpdateItem", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_schema() {
        assert_eq!(keys::validation_run("r1").to_string(), "VALIDATION#r1/RUN");
        assert_eq!(
            keys::validation_segment("r1", "app.orders", 7).sk,
            "TABLE#app.orders#SEG#000007"
        );
        assert_eq!(keys::lag_latest("eu-west-1").pk, "LAG#eu-west-1");
        assert_eq!(keys::failover_lease(), Key::new("FAILOVER", "LEASE"));
        assert_eq!(keys::migration_phase(), Key::new("MIGRATION", "PHASE"));
        let lag = keys::lag_from("eu-west-1", "ap-southeast-1");
        assert_eq!(lag.to_string(), "LAG#eu-west-1/FROM#ap-southeast-1");
        assert_eq!(keys::vantage_of(&lag), Some("ap-southeast-1"));
        assert!(lag
            .sk
            .starts_with(&keys::lag_from_every_vantage("eu-west-1").sk));
        let reach = keys::reach("us-east-1", "eu-west-1");
        assert_eq!(reach.to_string(), "REACH#us-east-1/FROM#eu-west-1");
        assert_eq!(keys::reach_from_every_vantage("us-east-1").pk, reach.pk);
        assert_eq!(
            keys::deployment_event("web", "2026-11-24T10:00:00Z").sk,
            "EVENT#2026-11-24T10:00:00Z"
        );
    }

    #[test]
    fn segment_keys_sort_in_segment_order() {
        let mut sks: Vec<String> = [10, 2, 100, 1]
            .iter()
            .map(|n| keys::validation_segment("r", "t", *n).sk)
            .collect();
        sks.sort();
        assert_eq!(sks.last().unwrap(), "TABLE#t#SEG#000100");
        assert_eq!(sks.first().unwrap(), "TABLE#t#SEG#000001");
    }

    use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::error::{
        ConditionalCheckFailedException, ProvisionedThroughputExceededException,
    };
    use aws_sdk_dynamodb::Client;
    use aws_smithy_mocks::{mock, mock_client, RuleMode};

    #[tokio::test]
    async fn lost_conditional_write_names_both_versions() {
        let put = mock!(Client::put_item)
            .match_requests(|r| r.condition_expression() == Some("#v = :expected"))
            .then_error(|| {
                PutItemError::ConditionalCheckFailedException(
                    ConditionalCheckFailedException::builder()
                        .message("The conditional request failed")
                        .build(),
                )
            });
        let get = mock!(Client::get_item).then_output(|| {
            GetItemOutput::builder()
                .item("pk", s("MIGRATION"))
                .item("sk", s("PHASE"))
                .item("version", n(5))
                .build()
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&put, &get]);
        let store = StateStore::new(client, "migration-state-test");
        let err = store
            .update(
                &keys::migration_phase(),
                &serde_json::json!({"phase": "cdc"}),
                4,
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Conflict);
        assert!(
            err.to_string()
                .contains("expected version 4 but it is at version 5"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn throughput_errors_are_retryable_and_named() {
        let put = mock!(Client::put_item)
            .sequence()
            .error(|| {
                // As the SDK's deserializer builds it: code and message in the metadata.
                PutItemError::ProvisionedThroughputExceededException(
                    ProvisionedThroughputExceededException::builder()
                        .message("slow down")
                        .meta(
                            aws_smithy_types::error::ErrorMetadata::builder()
                                .code("ProvisionedThroughputExceededException")
                                .message("slow down")
                                .build(),
                        )
                        .build(),
                )
            })
            .repeatedly()
            .build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&put]);
        let store = StateStore::new(client, "migration-state-test");
        let err = store
            .put_latest(
                &keys::lag_latest("eu-west-1"),
                &serde_json::json!({"region": "eu-west-1"}),
            )
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        assert!(
            err.to_string()
                .contains("ProvisionedThroughputExceededException"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn reserved_attribute_names_are_refused_before_any_call() {
        let client = mock_client!(
            aws_sdk_dynamodb,
            RuleMode::Sequential,
            Vec::<&aws_smithy_mocks::Rule>::new()
        );
        let store = StateStore::new(client, "t");
        let err = store
            .put_latest(&keys::lag_latest("x"), &serde_json::json!({"version": 3}))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("reserved attribute name \"version\""),
            "{err}"
        );
    }

    #[test]
    fn phase_names_are_the_documented_ones() {
        let text = serde_json::to_string(&Phase::FullLoad).unwrap();
        assert_eq!(text, "\"full-load\"");
        assert_eq!(
            serde_json::from_str::<Phase>("\"in-sync\"").unwrap(),
            Phase::InSync
        );
        for p in Phase::ALL {
            assert_eq!(p.as_str().parse::<Phase>().unwrap(), p);
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        assert!("validating"
            .parse::<Phase>()
            .unwrap_err()
            .contains("full-load, cdc"));
    }

    #[test]
    fn phases_advance_in_order_and_end_at_done() {
        assert_eq!(Phase::FullLoad.next(), Some(Phase::Cdc));
        assert_eq!(Phase::Verified.next(), Some(Phase::Switched));
        assert_eq!(Phase::Done.next(), None);
        assert!(!Phase::Verified.writes_on_target());
        assert!(Phase::Switched.writes_on_target());
    }
}
