//! `cutover-rehearsal`: the local rehearsal of a cutover, on one machine.
//!
//! - [`world`]: the three-region world brought up by `tests/env/world.sh`.
//! - [`replication`]: the "is it alive" stage: a row written on the source,
//!   timed until every target node sees it.
//! - [`data_validator_stage`], [`lag_stage`], [`cutover_stage`]: the function stages of `make demo`.

pub mod cutover_stage;
pub mod data_validator_stage;
pub mod failover_kit;
pub mod failover_reconcile;
pub mod failover_stage;
pub mod lag_stage;
pub mod notifications;
pub mod partition;
pub mod region_loss;
pub mod replication;
pub mod report;
pub mod runbooks;
pub mod traffic;
pub mod traffic_stage;
pub mod world;
