//! The event memory: what happened at home (Frigate detections, events Home Assistant pushes,
//! Jarvis's own commands and actions), kept in SQLite and asked about by the brain.
//!
//! - [`model`]: [`Event`], [`Query`] and the store's statistics.
//! - [`store`]: the SQLite store with its writer thread.
//! - [`config`]: the `[events]` section.

pub mod config;
pub mod model;
pub mod store;

pub use config::EventsConfig;
pub use model::{Event, Query, Source, StoreStats, Tally, Vocabulary};
pub use store::{EventStore, StoreError};
