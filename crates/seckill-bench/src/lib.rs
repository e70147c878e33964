//! The load generator of `seckill bench` and `seckill demo`: a crowd of
//! distinct users against a seckill URL, measured with HdrHistogram and
//! checked against the sale's report afterwards.

pub mod client;
pub mod crowd;
pub mod recorder;
pub mod run;
pub mod scenario;
