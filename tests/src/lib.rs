//! This crate holds only the black-box test suite in `api/`.
