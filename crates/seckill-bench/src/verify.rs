//! After the run, the invariants are checked from the engine's own
//! numbers (the admin report, the stock endpoint, the orders) against what
//! the crowd was told. A run whose checks fail exits non-zero.

use crate::api::{Api, SaleReport};
use crate::client::{Connection, Request};
use crate::recorder::{Recorder, Reserved};
use crate::scenario::{Scenario, Target};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How long the stock endpoint may lag behind the report (it may lag by up
/// to a second).
const STOCK_LAG: Duration = Duration::from_secs(2);
/// Connections used to read back the reserved orders.
const READ_BACK_CONNECTIONS: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// The verdict: `failed` lists `name: detail` of each failed check.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invariants {
    pub ok: bool,
    pub failed: Vec<String>,
    pub checks: Vec<Check>,
    pub skipped: Vec<String>,
}

impl Invariants {
    fn check(&mut self, name: &str, ok: bool, detail: String) {
        if !ok {
            self.failed.push(format!("{name}: {detail}"));
        }
        self.checks.push(Check {
            name: name.to_string(),
            ok,
            detail,
        });
    }
}

/// What must be known before the run to judge it afterwards.
pub struct Before {
    report: Option<SaleReport>,
}

/// Reads the sale's report before the run, when there is a sale and an admin token.
pub async fn before(api: &mut Api, target: &Target) -> Result<Before> {
    let report = match target.sale.as_deref() {
        Some(sale) if api.has_admin() && target.scenario.needs_sale() => {
            Some(api.report(sale).await?)
        }
        _ => None,
    };
    Ok(Before { report })
}

/// Checks the run. `expect_reserved` replaces the expected count of
/// reserved units (default: min(remaining before, buyers decided by stock)).
pub async fn after(
    api: &mut Api,
    target: &Target,
    before: &Before,
    seen: &Recorder,
    expect_reserved: Option<u64>,
) -> Invariants {
    let mut verdict = Invariants::default();
    let server_errors: u64 = seen
        .status
        .iter()
        .filter(|(status, _)| **status >= 500)
        .map(|(_, count)| count)
        .sum();
    verdict.check(
        "no_5xx",
        server_errors == 0,
        format!("{server_errors} answers with a 5xx status"),
    );
    verdict.check(
        "every_request_answered",
        seen.errors == 0,
        format!("{} requests got no answer (connection errors)", seen.errors),
    );
    if target.scenario.buys() {
        read_back_orders(target, &seen.reserved, &mut verdict).await;
    }
    match (target.sale.as_deref(), &before.report) {
        (Some(sale), Some(before)) if target.scenario.buys() => {
            if let Err(error) = check_report(
                api,
                target.scenario,
                sale,
                before,
                seen,
                expect_reserved,
                &mut verdict,
            )
            .await
            {
                verdict.check("report_readable", false, format!("{error:#}"));
            }
        }
        (Some(_), None) if target.scenario.buys() => verdict.skipped.push(
            "report checks: no admin token (pass --admin-token or set SECKILL_ADMIN_TOKEN)".into(),
        ),
        _ => {}
    }
    verdict.ok = verdict.failed.is_empty();
    verdict
}

async fn check_report(
    api: &mut Api,
    scenario: Scenario,
    sale: &str,
    before: &SaleReport,
    seen: &Recorder,
    expect_reserved: Option<u64>,
    verdict: &mut Invariants,
) -> Result<()> {
    let after = api.report(sale).await?;
    let reserved = after.ever_reserved() - before.ever_reserved().min(after.ever_reserved());
    verdict.check(
        "report_matches_crowd",
        reserved == seen.outcomes.reserved,
        format!(
            "the report counts {reserved} units reserved during the run; the crowd was told {}",
            seen.outcomes.reserved
        ),
    );
    if matches!(scenario, Scenario::Rush | Scenario::Mixed) || expect_reserved.is_some() {
        let buyers = seen.decided_users();
        let expected = expect_reserved.unwrap_or(before.remaining.min(buyers));
        let why = match expect_reserved {
            Some(_) => "as --expect-reserved says".to_string(),
            None => format!(
                "min(remaining before {}, buyers decided by stock {buyers})",
                before.remaining
            ),
        };
        verdict.check(
            "sold_min_stock_buyers",
            reserved == expected,
            format!("{reserved} units reserved, expected {expected} = {why}"),
        );
    }
    verdict.check(
        "report_balanced",
        after.remaining + after.held() == after.stock,
        format!(
            "remaining {} + queued {} + pending {} + paid {} vs stock {}",
            after.remaining, after.queued, after.pending_payment, after.paid, after.stock
        ),
    );
    let stock = stock_settled(api, sale, after.remaining).await?;
    verdict.check(
        "stock_endpoint_agrees",
        stock == after.remaining,
        format!(
            "/stock says {stock} remaining, the report {}",
            after.remaining
        ),
    );
    if scenario == Scenario::Lifecycle {
        let paid = after.paid - before.paid.min(after.paid);
        verdict.check(
            "paid_matches_crowd",
            paid == seen.paid,
            format!(
                "the report counts {paid} units paid during the run; the crowd paid {}",
                seen.paid
            ),
        );
    }
    Ok(())
}

/// The stock endpoint's remaining count, polled until it equals `expected`
/// or the allowed lag has passed.
async fn stock_settled(api: &mut Api, sale: &str, expected: u64) -> Result<u64> {
    let deadline = Instant::now() + STOCK_LAG;
    loop {
        let remaining = api.stock(sale).await?.remaining;
        if remaining == expected || Instant::now() >= deadline {
            return Ok(remaining);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every order the crowd was told about must be readable by its owner.
async fn read_back_orders(target: &Target, reserved: &[Reserved], verdict: &mut Invariants) {
    let chunk = reserved.len().div_ceil(READ_BACK_CONNECTIONS).max(1);
    let unreadable: Vec<Vec<String>> =
        futures::future::join_all(reserved.chunks(chunk).map(|orders| async move {
            let mut connection = Connection::new(&target.endpoint);
            let mut unreadable = Vec::new();
            for order in orders {
                if !readable(&mut connection, target, order).await {
                    unreadable.push(order.order_id.clone());
                }
            }
            unreadable
        }))
        .await;
    let unreadable: Vec<String> = unreadable.into_iter().flatten().collect();
    let examples = unreadable
        .iter()
        .take(3)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    verdict.check(
        "orders_readable_by_owner",
        unreadable.is_empty(),
        format!(
            "{} of {} reserved orders not readable by their owner{}",
            unreadable.len(),
            reserved.len(),
            if examples.is_empty() {
                String::new()
            } else {
                format!(" (e.g. {examples})")
            }
        ),
    );
}

async fn readable(connection: &mut Connection, target: &Target, order: &Reserved) -> bool {
    let path = format!("/api/v1/orders/{}", order.order_id);
    let request = Request::get(&path, Some(target.bearer(order.user)));
    match connection.send(&request).await {
        Ok(answer) => {
            answer.status == 200
                && crate::recorder::order_id(&answer.body).as_deref() == Some(&order.order_id)
        }
        Err(_) => false,
    }
}
