//! OpAMP server library.
#![forbid(unsafe_code)]

mod error;
pub mod session;

pub use error::Error;
