//! Test support for crates built on opamp-store (feature `testing`; not for production).
//!
//! [`pg`] starts a throwaway PostgreSQL so that the fleet layer and opampd can run their
//! tests against the PostgreSQL backend the same way opamp-store does.

pub mod pg;
