//! Model files: the catalog of what can be downloaded into `models.dir`.
//!
//! [`catalog`] knows every entry and where its files come from, [`digest`] is the sha256 type.

pub mod catalog;
pub mod digest;
