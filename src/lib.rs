//! riverwatch: water-quality early warning for the rivers Guangzhou and Qingyuan share.
pub mod config;
pub mod domain;
