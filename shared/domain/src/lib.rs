#![doc = include_str!("../README.md")]

pub mod fingerprint;
pub mod json;

pub use fingerprint::Fingerprint;
