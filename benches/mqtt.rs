//! MQTT benchmark (filled in below).
fn main() {}
