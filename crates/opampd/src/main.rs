//! opampd (being written).
fn main() {}
