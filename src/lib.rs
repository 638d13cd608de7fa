//! Jarvis.
