//! `cutover-rehearsal`: the local rehearsal of a cutover, on one machine.
//!
//! - [`world`]: the three-region world brought up by `tests/env/world.sh`.
//! - [`replication`]: the "is it alive" stage: a row written on the source,
//!   timed until every target node sees it.

pub mod data_validator_stage;
pub mod replication;
pub mod world;
