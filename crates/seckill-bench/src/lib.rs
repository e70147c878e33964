//! The load generator of `seckill bench` and `seckill demo`: a crowd of
//! distinct users against a seckill URL, measured with HdrHistogram and
//! checked against the sale's report afterwards.
//!
//! [`Bench::run`] is one whole run: read the sale's state, let the crowd
//! loose ([`run`]), check the invariants ([`verify`]), and describe it all
//! in a [`BenchReport`].

pub mod api;
pub mod client;
pub mod crowd;
pub mod html;
pub mod recorder;
pub mod report;
pub mod run;
pub mod scenario;
pub mod verify;

use anyhow::{Context, Result};
pub use report::BenchReport;

pub struct Bench {
    pub target: scenario::Target,
    pub load: run::Load,
    /// Needed for the report checks; without it they are skipped, and said so.
    pub admin_token: Option<String>,
    /// Overrides the expected count of reserved units.
    pub expect_reserved: Option<u64>,
}

impl Bench {
    /// Runs the crowd and checks the result. Call it outside any async
    /// runtime: it starts its own.
    pub fn run(&self) -> Result<BenchReport> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the bench runtime")?;
        let mut api = api::Api::new(&self.target.endpoint, self.admin_token.as_deref());
        let sale = self.target.sale.as_deref();
        let before = runtime.block_on(async {
            if let Some(sale) = sale {
                api.sale(sale).await.with_context(|| {
                    format!("reading sale {sale} at {}", self.target.endpoint.url)
                })?;
            }
            verify::before(&mut api, &self.target).await
        })?;
        let measured = run::run(&self.target, self.load);
        let invariants = runtime.block_on(verify::after(
            &mut api,
            &self.target,
            &before,
            &measured.recorder,
            self.expect_reserved,
        ));
        Ok(BenchReport::new(
            &self.target,
            &self.load,
            &measured,
            invariants,
        ))
    }
}
