//! `seckill plan` (being written).
use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct PlanArgs {}

pub fn run(_args: PlanArgs) -> Result<()> {
    anyhow::bail!("not yet")
}
