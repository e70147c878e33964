//! `seckill reconcile`: compares one sale's stock in Redis with its orders
//! in PostgreSQL or MySQL/MariaDB and, with `--repair`, fixes what is safe
//! to fix (the comparison and the repairs: `seckill_cluster::reconcile`).
//!
//! Exit status: 0 consistent (after the repair, with `--repair`), 1 not
//! consistent, 2 no comparison was made (a service unreachable, a sale Redis
//! does not know without `--repair`, which seeds it from the database), so
//! that a monitor can tell drift from an outage.

use anyhow::{Result, anyhow};
use clap::Args;
use seckill_cluster::authority::{AuthorityConfig, RedisAuthority};
use seckill_cluster::orders::SqlOrders;
use seckill_cluster::reconcile::{Reconciler, Repair, Report};
use seckill_core::SaleId;
use seckill_engine::Reservation;
use std::fmt::Write;
use std::process::ExitCode;
use std::time::Duration;

/// The longest one Redis call may take. Longer than a node's: the
/// comparison reads a sale's whole `released` set in one script.
const REDIS_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args)]
pub struct ReconcileArgs {
    /// The stock authority: redis://HOST:PORT or
    /// redis+sentinel://HOST:PORT[,HOST:PORT…]/SERVICE_NAME (as given to the nodes).
    #[arg(long, env = "SECKILL_REDIS_URL")]
    redis: String,
    /// The order store: postgres://… or mysql://… (as given to the nodes).
    #[arg(long, env = "SECKILL_DATABASE_URL")]
    database: String,
    /// The sale to compare.
    #[arg(long)]
    sale: String,
    /// Release the units of expired or cancelled orders that never came
    /// back to Redis, put back the reservations Redis lost (the whole sale
    /// from the database if Redis lost it), and let the nodes sell a sale
    /// fenced by a Redis restart again once Redis holds every unit the
    /// orders hold.
    #[arg(long)]
    repair: bool,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ReconcileArgs) -> ExitCode {
    let report = match reconcile(&args) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("seckill reconcile: {error:#}");
            return ExitCode::from(2);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("seckill reconcile: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", human(&report));
    }
    if report.consistent {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn reconcile(args: &ReconcileArgs) -> Result<Report> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // URLs may carry passwords: errors name the service, not the URL. The
    // errors' own text already includes their causes, hence `anyhow!`
    // rather than `context` (which would print each cause twice).
    runtime.block_on(async {
        let redis = RedisAuthority::connect(AuthorityConfig {
            timeout: REDIS_TIMEOUT,
            ..AuthorityConfig::new(&args.redis)
        })
        .await
        .map_err(|e| anyhow!("Redis (--redis): {e}"))?;
        let orders = SqlOrders::connect(&args.database)
            .await
            .map_err(|e| anyhow!("the order store (--database): {e}"))?;
        let reconciler = Reconciler::new(redis, orders);
        let sale = SaleId::from(args.sale.as_str());
        let report = if args.repair {
            reconciler.repair(&sale).await
        } else {
            reconciler.check(&sale).await
        };
        report.map_err(|e| anyhow!("{e}"))
    })
}

/// The report for a person: the sums, then each kind of drift with its
/// orders and what `--repair` does about it.
fn human(report: &Report) -> String {
    let mut out = String::new();
    let verdict = if report.consistent {
        "consistent"
    } else {
        "NOT consistent"
    };
    let _ = writeln!(out, "sale {}: {verdict}", report.sale_id);
    if report.fenced {
        let _ = writeln!(
            out,
            "fenced: Redis restarted since this sale was checked; the nodes sell nothing of it \
             until --repair finds Redis holds every unit the orders hold"
        );
    }
    for (label, value) in [
        ("stock", report.stock.to_string()),
        ("Redis sold", report.redis_sold.to_string()),
        ("orders pending_payment", report.db_pending.to_string()),
        ("orders paid", report.db_paid.to_string()),
        (
            "reservations not yet consumed",
            report.unconsumed.to_string(),
        ),
        ("releases landing meanwhile", report.releasing.to_string()),
        ("difference", signed(report.difference)),
    ] {
        let _ = writeln!(out, "  {label:<30} {value:>10}");
    }
    orders(
        &mut out,
        "released missing",
        "expired or cancelled, their units never came back to Redis; --repair releases them",
        &report.released_missing,
    );
    orders(
        &mut out,
        "lost by Redis",
        "the database holds them, Redis has no reservation; --repair puts them back",
        &report.lost,
    );
    orders(
        &mut out,
        "lost by Redis, released",
        "expired or cancelled, Redis has no reservation; a release would give units back \
         twice; --repair puts them back as released",
        &report.lost_released,
    );
    orders(
        &mut out,
        "acknowledged without a row",
        "a consumer acknowledged the reservation, no order exists; Redis holds their units; \
         not repaired: insert or release them by hand",
        &report.acknowledged_without_row,
    );
    orders(
        &mut out,
        "dead-lettered",
        "Redis holds their units, the database refused the order; not repaired: \
         insert or release them by hand",
        &report.dead_lettered,
    );
    if report.oversold > 0 {
        let _ = writeln!(
            out,
            "oversold: {} held beyond the stock; not repaired: cancel orders by hand",
            units(report.oversold)
        );
    }
    if report.unexplained != 0 {
        let _ = writeln!(
            out,
            "unexplained: {} (units of the difference no order above accounts for); not repaired",
            signed(report.unexplained)
        );
    }
    if !report.repaired.is_empty() {
        let _ = writeln!(out, "repaired (before this comparison):");
        for repair in &report.repaired {
            let _ = match repair {
                Repair::Released { order_id, quantity } => {
                    writeln!(out, "  released order {order_id} ({})", units(*quantity))
                }
                Repair::Restored { order_id, quantity } => {
                    writeln!(out, "  restored order {order_id} ({})", units(*quantity))
                }
                Repair::RestoredReleased { order_id } => {
                    writeln!(out, "  restored order {order_id} as released")
                }
                Repair::Seeded => writeln!(out, "  seeded the sale from the database"),
            };
        }
    }
    out
}

fn orders(out: &mut String, title: &str, meaning: &str, list: &[Reservation]) {
    if list.is_empty() {
        return;
    }
    let total = list.iter().map(|order| order.quantity).sum();
    let _ = writeln!(
        out,
        "{title}: {}, {}: {meaning}",
        plural(list.len() as u64, "order"),
        units(total)
    );
    for order in list {
        let _ = writeln!(
            out,
            "  order {} of user {} ({})",
            order.order_id,
            order.user_id,
            units(order.quantity)
        );
    }
}

/// `+2`, `-1`, `0`: which way Redis is off.
fn signed(n: i64) -> String {
    if n == 0 { "0".into() } else { format!("{n:+}") }
}

fn units(n: u64) -> String {
    plural(n, "unit")
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
