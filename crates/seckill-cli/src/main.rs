//! `seckill`: the flash-sale engine and its tools.

mod bench;
mod config;
mod demo;
mod nginx_conf;
mod node;
mod plan;
mod rate_limit;
mod reconcile;
mod render;
mod secrets;
mod serve;
mod token;

use clap::{Parser, Subcommand};

/// mimalloc instead of the system allocator: a reservation allocates and
/// frees across threads, which glibc's malloc does slowly.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "seckill",
    version,
    about = "A flash-sale engine: sell a fixed stock to a crowd, exactly."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine (embedded: stock in memory, orders in SQLite under the data dir).
    Serve(Box<serve::ServeArgs>),
    /// Print user tokens (JWT) signed with the engine's secret, for curl and load tests.
    Token(token::TokenArgs),
    /// One command shows it all: an engine, a sale, a rush of a million users, the checks; then keeps serving.
    Demo(demo::DemoArgs),
    /// Load generator: a crowd of distinct users against a seckill URL, measured, then checked.
    Bench(bench::BenchArgs),
    /// Capacity planning from the articles' formulas: requests/day → peak QPS → nodes; stock → quotas.
    Plan(plan::PlanArgs),
    /// Print an nginx.conf for a cluster: the nodes behind one upstream, a balancing strategy, health, rate limits.
    NginxConf(nginx_conf::NginxConfArgs),
    /// Write a sale's item page as one self-contained HTML file (for a CDN); stock and buying stay live.
    Render(render::RenderArgs),
    /// Cluster mode: compare a sale's stock in Redis with its orders in the database; --repair fixes what is safe to fix.
    Reconcile(reconcile::ReconcileArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_) | Command::Demo(_)) {
        die_quietly_on_broken_pipe();
    }
    let result = match cli.command {
        Command::Serve(args) => serve::run(*args),
        Command::Token(args) => token::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Plan(args) => plan::run(args),
        Command::NginxConf(args) => nginx_conf::run(args),
        Command::Render(args) => render::run(args),
        // Its own exit statuses: 1 is "not consistent", 2 "could not compare".
        Command::Reconcile(args) => return reconcile::run(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("seckill: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// A command that prints and ends (`seckill reconcile … | head`) ends like
/// any Unix filter when its reader goes away: killed by SIGPIPE, silently.
/// The Rust runtime ignores SIGPIPE, so the write fails instead and
/// `println!` panics. The servers (`serve`, `demo`) keep ignoring it: a
/// closed pipe or socket must never end them.
fn die_quietly_on_broken_pipe() {
    // SAFETY: called before any thread is started; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
