//! `seckill plan`: sizing a sale with the articles' own arithmetic, so that
//! "how many nodes?" is a command rather than a spreadsheet. Daily requests
//! give the peak QPS by the 80/20 rule, the peak over one node's QPS gives
//! the nodes, and the stock over the nodes gives each node's local quota for
//! the 12306 design (sell locally first, then confirm in Redis).

use anyhow::{Context, Result, bail};
use clap::Args;
use seckill_bench::report::thousands;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

const DEFAULT_BURST: f64 = 3.0;

#[derive(Args)]
pub struct PlanArgs {
    /// Requests per day; 80% of them are taken to arrive in 20% of --active-hours.
    #[arg(long, allow_negative_numbers = true)]
    requests_per_day: Option<f64>,
    /// Hours per day the site is in use (0 < H ≤ 24).
    #[arg(long, allow_negative_numbers = true)]
    active_hours: Option<f64>,
    /// Peak over that 80/20 average, for the rush when a sale opens [default: 3].
    #[arg(long, allow_negative_numbers = true)]
    burst: Option<f64>,
    /// The peak QPS itself, instead of --requests-per-day and --active-hours.
    #[arg(long, allow_negative_numbers = true)]
    peak_qps: Option<f64>,
    /// QPS one node serves, as measured.
    #[arg(long, allow_negative_numbers = true)]
    node_qps: Option<f64>,
    /// Per-node QPS from the `rps` of a `seckill bench --json` file.
    #[arg(long, value_name = "FILE")]
    from_bench: Option<PathBuf>,
    /// Per-node QPS from the thread model: threads × 1000 / --rt-ms.
    #[arg(long)]
    threads: Option<u64>,
    /// Response time in milliseconds, with --threads.
    #[arg(long, allow_negative_numbers = true)]
    rt_ms: Option<f64>,
    /// Spare capacity over the peak, so that a node lost, or a node slower
    /// than measured, does not leave the sale short.
    #[arg(long, default_value_t = 0.2, allow_negative_numbers = true)]
    headroom: f64,
    /// Sale section: units on sale (with --crowd).
    #[arg(long)]
    stock: Option<u64>,
    /// Sale section: users expected to try to buy (with --stock).
    #[arg(long)]
    crowd: Option<u64>,
    /// Sale section: quota per node beyond its share, so that a dead or slow
    /// node's share is not stranded [default: ceil(10% of the share)].
    #[arg(long)]
    buffer: Option<u64>,
    /// Sale section: this many nodes instead of the computed count.
    #[arg(long)]
    nodes: Option<u64>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// The plan, as printed by `--json`. QPS figures keep full precision.
#[derive(Debug, Serialize)]
struct Plan {
    avg_peak_qps: Option<f64>,
    burst: Option<f64>,
    peak_qps: f64,
    node_qps: Option<f64>,
    node_qps_source: Option<&'static str>,
    nodes: Option<u64>,
    headroom: f64,
    recommended_nodes: Option<u64>,
    sale: Option<Sale>,
}

#[derive(Debug, Serialize)]
struct Sale {
    stock: u64,
    crowd: u64,
    nodes: u64,
    buffer: u64,
    per_node_share: u64,
    per_node_quota: u64,
    redis_calls_max: u64,
    refused_locally_share: f64,
}

/// The one field of a `seckill bench --json` report that plan needs.
#[derive(Deserialize)]
struct BenchRps {
    rps: f64,
}

pub fn run(args: PlanArgs) -> Result<()> {
    let plan = plan(&args)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&plan)?)?;
    } else {
        write!(out, "{}", table(&args, &plan))?;
    }
    Ok(())
}

/// The 80/20 rule: 80% of the day's requests arrive in 20% of its hours.
fn avg_peak_qps(requests_per_day: f64, active_hours: f64) -> f64 {
    requests_per_day * 0.8 / (active_hours * 0.2 * 3600.0)
}

/// Each thread answers 1000 / rt_ms requests a second.
fn threads_qps(threads: u64, rt_ms: f64) -> f64 {
    threads as f64 * (1000.0 / rt_ms)
}

/// ceil(a / b), where a quotient within float noise of an integer counts as
/// that integer: 3000 / 1000 must give 3 nodes, not 4. None past 2^53, where
/// an f64 stops counting exactly.
fn ceil_ratio(a: f64, b: f64) -> Option<u64> {
    let quotient = a / b;
    if !quotient.is_finite() || quotient > 2f64.powi(53) {
        return None;
    }
    let nearest = quotient.round();
    if (quotient - nearest).abs() <= 1e-9 * nearest {
        Some(nearest as u64)
    } else {
        Some(quotient.ceil() as u64)
    }
}

fn positive(flag: &str, value: f64) -> Result<f64> {
    if !(value.is_finite() && value > 0.0) {
        bail!("{flag} must be a finite number > 0, got {value}");
    }
    Ok(value)
}

fn plan(args: &PlanArgs) -> Result<Plan> {
    let (avg, burst, peak_qps) = match (args.requests_per_day, args.active_hours, args.peak_qps) {
        (Some(requests), Some(hours), None) => {
            positive("--requests-per-day", requests)?;
            if positive("--active-hours", hours)? > 24.0 {
                bail!("--active-hours must be at most 24, got {hours}");
            }
            let burst = positive("--burst", args.burst.unwrap_or(DEFAULT_BURST))?;
            let avg = avg_peak_qps(requests, hours);
            (Some(avg), Some(burst), avg * burst)
        }
        (None, None, Some(peak)) if args.burst.is_none() => (None, None, peak),
        (None, None, Some(_)) => bail!("--burst applies to --requests-per-day, not to --peak-qps"),
        (None, None, None) => {
            bail!("give the load: --requests-per-day with --active-hours, or --peak-qps")
        }
        (_, _, Some(_)) => {
            bail!("give either --peak-qps or --requests-per-day with --active-hours, not both")
        }
        _ => bail!("--requests-per-day and --active-hours go together"),
    };
    let peak_qps = positive("the peak QPS", peak_qps)?;

    let sources = [
        args.node_qps.is_some(),
        args.from_bench.is_some(),
        args.threads.is_some() || args.rt_ms.is_some(),
    ];
    if sources.iter().filter(|given| **given).count() > 1 {
        bail!("give one per-node QPS: --node-qps, --from-bench, or --threads with --rt-ms");
    }
    let node = match (args.node_qps, &args.from_bench, args.threads, args.rt_ms) {
        (Some(qps), ..) => Some((positive("--node-qps", qps)?, "node_qps")),
        (_, Some(path), ..) => Some((bench_rps(path)?, "bench")),
        (_, _, Some(0), _) => bail!("--threads must be > 0"),
        (_, _, Some(threads), Some(rt_ms)) => {
            positive("--rt-ms", rt_ms)?;
            let qps = positive("the per-node QPS", threads_qps(threads, rt_ms))?;
            Some((qps, "threads"))
        }
        (_, _, None, None) => None,
        _ => bail!("--threads and --rt-ms go together"),
    };

    let headroom = args.headroom;
    if !(headroom.is_finite() && headroom >= 0.0) {
        bail!("--headroom must be a finite fraction ≥ 0, got {headroom}");
    }
    let (nodes, recommended_nodes) = match node {
        Some((qps, _)) => {
            let too_many = "more nodes than can be counted: check the QPS figures";
            let nodes = ceil_ratio(peak_qps, qps).context(too_many)?;
            let spare = ceil_ratio(peak_qps * (1.0 + headroom), qps).context(too_many)?;
            (Some(nodes), Some(spare.max(nodes)))
        }
        None => (None, None),
    };

    let sale = match (args.stock, args.crowd) {
        (Some(stock), Some(crowd)) => {
            let nodes = args.nodes.or(nodes).context(
                "the sale section needs a node count: pass --nodes, or a per-node QPS \
                 (--node-qps, --from-bench, or --threads with --rt-ms)",
            )?;
            Some(sale(stock, crowd, nodes, args.buffer)?)
        }
        (None, None) if args.nodes.is_none() && args.buffer.is_none() => None,
        _ => {
            bail!("the sale section needs --stock and --crowd (--nodes and --buffer belong to it)")
        }
    };

    Ok(Plan {
        avg_peak_qps: avg,
        burst,
        peak_qps,
        node_qps: node.map(|(qps, _)| qps),
        node_qps_source: node.map(|(_, source)| source),
        nodes,
        headroom,
        recommended_nodes,
        sale,
    })
}

fn bench_rps(path: &Path) -> Result<f64> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --from-bench {}", path.display()))?;
    let report: BenchRps = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a `seckill bench --json` report", path.display()))?;
    positive("the bench report's rps", report.rps)
}

/// Each node sells its quota (share + buffer) locally, then confirms each
/// sale with the unified Redis deduction; the rest of the crowd is refused
/// by the nodes without reaching Redis.
fn sale(stock: u64, crowd: u64, nodes: u64, buffer: Option<u64>) -> Result<Sale> {
    for (flag, value) in [("--stock", stock), ("--crowd", crowd), ("--nodes", nodes)] {
        if value == 0 {
            bail!("{flag} must be > 0");
        }
    }
    // The stock is split so that the shares add up to it exactly: the
    // largest share is this, the others one less.
    let per_node_share = stock.div_ceil(nodes);
    let buffer = buffer.unwrap_or(per_node_share.div_ceil(10));
    let too_big = "the sale's numbers are too large";
    let per_node_quota = per_node_share.checked_add(buffer).context(too_big)?;
    // Every quota used up: the shares (the stock) plus every node's buffer.
    let redis_calls_max = nodes
        .checked_mul(buffer)
        .and_then(|buffers| buffers.checked_add(stock))
        .context(too_big)?;
    Ok(Sale {
        stock,
        crowd,
        nodes,
        buffer,
        per_node_share,
        per_node_quota,
        redis_calls_max,
        refused_locally_share: crowd.saturating_sub(redis_calls_max) as f64 / crowd as f64,
    })
}

/// A QPS for display: rounded to an integer.
fn qps(value: f64) -> String {
    thousands(value.round() as u64)
}

/// An input as typed: separators when whole, else up to two decimals.
fn num(value: f64) -> String {
    let rounded = (value * 100.0).round() / 100.0;
    if rounded.fract() == 0.0 && rounded < 1e18 {
        thousands(rounded as u64)
    } else {
        rounded.to_string()
    }
}

/// Rows of `label  value  how it was computed`, printed aligned.
#[derive(Default)]
struct Table(Vec<[String; 3]>);

impl Table {
    fn row(&mut self, label: impl Into<String>, value: impl Into<String>, how: impl Into<String>) {
        self.0.push([label.into(), value.into(), how.into()]);
    }

    fn render(&self) -> String {
        let width = |column: usize| self.0.iter().map(|r| r[column].chars().count()).max();
        let (label_width, value_width) = (width(0).unwrap_or(0), width(1).unwrap_or(0));
        let line = |[label, value, how]: &[String; 3]| {
            let line = format!("{label:<label_width$}  {value:>value_width$}  {how}");
            format!("{}\n", line.trim_end())
        };
        self.0.iter().map(line).collect()
    }
}

fn table(args: &PlanArgs, plan: &Plan) -> String {
    let mut table = Table::default();
    let peak = qps(plan.peak_qps);
    match (plan.avg_peak_qps, args.requests_per_day, args.active_hours) {
        (Some(avg), Some(requests), Some(hours)) => {
            let (requests, hours) = (num(requests), num(hours));
            let how = format!("{requests} × 0.8 / ({hours} h × 0.2 × 3600 s)");
            table.row("average peak QPS", qps(avg), how);
            let burst = num(plan.burst.unwrap_or(DEFAULT_BURST));
            table.row("peak QPS", &peak, format!("× burst {burst}"));
        }
        _ => table.row("peak QPS", &peak, "--peak-qps"),
    }
    match (plan.node_qps, plan.nodes, plan.recommended_nodes) {
        (Some(node_qps), Some(nodes), Some(recommended)) => {
            let how = match (&args.from_bench, args.threads, args.rt_ms) {
                (Some(path), ..) => format!("rps in {}", path.display()),
                (_, Some(threads), Some(rt_ms)) => {
                    format!("{} threads × 1000 / {} ms", thousands(threads), num(rt_ms))
                }
                _ => "--node-qps".into(),
            };
            let node = qps(node_qps);
            table.row("per-node QPS", &node, how);
            table.row("nodes", thousands(nodes), format!("ceil({peak} / {node})"));
            let label = format!("with headroom {}%", num(plan.headroom * 100.0));
            let factor = num(1.0 + plan.headroom);
            let how =
                format!("ceil({peak} × {factor} / {node}): a node lost, or slower than measured");
            table.row(label, thousands(recommended), how);
        }
        _ => table.row(
            "nodes",
            "?",
            "needs --node-qps, --from-bench or --threads/--rt-ms",
        ),
    }
    if let Some(sale) = &plan.sale {
        let (stock, nodes) = (thousands(sale.stock), thousands(sale.nodes));
        let share = thousands(sale.per_node_share);
        let quota = thousands(sale.per_node_quota);
        table.row("stock", &stock, "");
        table.row("crowd", thousands(sale.crowd), "");
        let how = args.nodes.map_or("as computed", |_| "--nodes");
        table.row("sale nodes", &nodes, how);
        table.row(
            "per-node share",
            &share,
            format!("ceil({stock} / {nodes}); the shares add up to the stock"),
        );
        let how = args
            .buffer
            .map_or(format!("ceil(10% of {share})"), |_| "--buffer".into());
        table.row("buffer", thousands(sale.buffer), how);
        let how = "share + buffer: sold locally, then confirmed in Redis";
        table.row("per-node quota", &quota, how);
        let calls = thousands(sale.redis_calls_max);
        let buffer = thousands(sale.buffer);
        table.row(
            "Redis calls at most",
            calls,
            format!("{stock} + {nodes} × {buffer}"),
        );
        let refused = format!("{:.1}%", sale.refused_locally_share * 100.0);
        table.row(
            "refused locally",
            refused,
            "the rest, without calling Redis",
        );
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: PlanArgs,
    }

    fn plan_of(flags: &str) -> Result<Plan> {
        let cli = Cli::try_parse_from(std::iter::once("plan").chain(flags.split_whitespace()))?;
        plan(&cli.args)
    }

    #[test]
    fn example_1_requests_per_day_to_nodes() {
        assert_eq!(avg_peak_qps(5_000_000.0, 12.0).round(), 463.0);
        let plan = plan_of("--requests-per-day 5000000 --active-hours 12 --node-qps 300").unwrap();
        assert_eq!(plan.peak_qps.round(), 1389.0);
        assert_eq!(plan.nodes, Some(5));
        assert_eq!(plan.recommended_nodes, Some(6));
    }

    #[test]
    fn example_2_thread_model() {
        assert_eq!(threads_qps(200, 200.0), 1000.0);
        let plan = plan_of("--peak-qps 3000 --threads 200 --rt-ms 200").unwrap();
        assert_eq!(plan.nodes, Some(3));
        assert_eq!(plan.node_qps_source, Some("threads"));
    }

    #[test]
    fn ceil_ignores_float_noise() {
        assert_eq!(ceil_ratio(0.1 + 0.2, 0.1), Some(3));
        assert_eq!(ceil_ratio(3000.0, 1000.0), Some(3));
        assert_eq!(ceil_ratio(3001.0, 1000.0), Some(4));
        assert_eq!(ceil_ratio(1e-12, 1.0), Some(1));
        assert_eq!(ceil_ratio(1e300, 1e-300), None);
    }

    #[test]
    fn sale_quotas() {
        let sale = sale(10_000, 1_000_000, 5, None).unwrap();
        assert_eq!(
            (sale.per_node_share, sale.buffer, sale.per_node_quota),
            (2000, 200, 2200)
        );
        assert_eq!(sale.redis_calls_max, 11_000);
        assert_eq!(sale.refused_locally_share, 0.989);
    }

    #[test]
    fn bad_input_is_an_error() {
        for flags in [
            "--requests-per-day 1000 --active-hours 0",
            "--requests-per-day 1000 --active-hours 25",
            "--peak-qps 100 --node-qps -5",
            "--peak-qps NaN",
            "--peak-qps 100 --requests-per-day 1000 --active-hours 8",
            "--peak-qps 100 --node-qps 10 --threads 4 --rt-ms 10",
            "--peak-qps 100 --threads 4",
            "--peak-qps 100 --stock 10 --crowd 100",
            "--peak-qps 100 --stock 10",
            "--peak-qps 1e300 --node-qps 1e-300",
            "",
        ] {
            assert!(plan_of(flags).is_err(), "{flags:?} was accepted");
        }
    }
}
