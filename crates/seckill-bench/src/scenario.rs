//! What the crowd does: each scenario turns a request number into one
//! user's visit — a purchase, a read, or a whole buy-poll-pay session.

use crate::client::{Answer, Connection, Endpoint, Request, is_plain_id};
use crate::crowd::Crowd;
use crate::recorder::{Recorder, order_id};
use anyhow::{Result, bail};
use serde::Deserialize;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// Everyone tries to buy one unit of the sale, once.
    Rush,
    /// Sale detail and live stock reads, alternating.
    Browse,
    /// The articles' case: one read and one purchase attempt per user, interleaved.
    Mixed,
    /// Each user buys, polls the order, then pays (`--pay-percent` of them) or lets it expire.
    Lifecycle,
    /// Plain GETs of the URL as given, against any server (to compare with wrk).
    Get,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Self::Rush => "rush",
            Self::Browse => "browse",
            Self::Mixed => "mixed",
            Self::Lifecycle => "lifecycle",
            Self::Get => "get",
        }
    }

    /// Whether the scenario talks to a sale (all but `get`).
    pub fn needs_sale(self) -> bool {
        self != Self::Get
    }

    /// Whether the scenario buys, and so needs user tokens.
    pub fn buys(self) -> bool {
        matches!(self, Self::Rush | Self::Mixed | Self::Lifecycle)
    }

    /// Visits in a run of `users` when neither a count nor a duration is
    /// given: every user once (for `mixed`, once to read and once to buy).
    pub fn default_visits(self, users: u64) -> u64 {
        match self {
            Self::Mixed => users.saturating_mul(2),
            _ => users,
        }
    }
}

/// How long a lifecycle visit waits for a queued order to be written.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
const POLL_ATTEMPTS: u32 = 250;

static ONE_UNIT: &[u8] = br#"{"quantity":1}"#;

/// Everything the visits of one run share.
pub struct Target {
    pub endpoint: Endpoint,
    pub scenario: Scenario,
    /// The sale the crowd visits (`None` for `get`).
    pub sale: Option<String>,
    pub crowd: Option<Crowd>,
    /// Distinct users; user `n % users` makes visit `n`.
    pub users: usize,
    /// Share of lifecycle buyers who pay, in percent.
    pub pay_percent: u8,
    paths: Option<SalePaths>,
}

struct SalePaths {
    detail: String,
    stock: String,
    purchase: String,
}

impl Target {
    pub fn new(
        endpoint: Endpoint,
        scenario: Scenario,
        sale: Option<&str>,
        crowd: Option<Crowd>,
        users: usize,
        pay_percent: u8,
    ) -> Result<Self> {
        let paths = match (scenario.needs_sale(), sale) {
            (false, _) => None,
            (true, None) => bail!("the {} scenario needs --sale", scenario.name()),
            (true, Some(sale)) => Some(SalePaths::new(sale)?),
        };
        let users = match &crowd {
            Some(crowd) if scenario.buys() => users.min(crowd.len()),
            None if scenario.buys() => bail!("the {} scenario needs user tokens", scenario.name()),
            _ => users,
        };
        if users == 0 {
            bail!("the crowd needs at least one user");
        }
        Ok(Self {
            endpoint,
            scenario,
            sale: sale.map(str::to_string),
            crowd,
            users,
            pay_percent,
            paths,
        })
    }

    fn paths(&self) -> &SalePaths {
        self.paths
            .as_ref()
            .expect("Target::new requires a sale for sale scenarios")
    }

    pub(crate) fn bearer(&self, user: usize) -> &[u8] {
        self.crowd
            .as_ref()
            .expect("Target::new requires tokens for buying scenarios")
            .bearer(user)
    }
}

impl SalePaths {
    fn new(sale: &str) -> Result<Self> {
        if !is_plain_id(sale) {
            bail!("sale id {sale:?}: expected letters, digits, '-' or '_'");
        }
        let path = format!("/api/v1/sales/{sale}");
        Ok(Self {
            stock: format!("{path}/stock"),
            purchase: format!("{path}/purchase"),
            detail: path,
        })
    }
}

/// One connection's player: it makes visits one after another and records
/// what it saw in its thread's recorder.
pub struct Visitor<'a> {
    pub target: &'a Target,
    pub connection: Connection,
    pub recorder: Rc<RefCell<Recorder>>,
}

impl Visitor<'_> {
    /// Visit number `visit`; latency counts from `due`, when it should have
    /// started (now, unless an arrival rate is set).
    pub async fn visit(&mut self, visit: u64, due: Instant) {
        let target = self.target;
        let user = (visit % target.users as u64) as usize;
        match target.scenario {
            Scenario::Get => {
                self.read(due, &target.endpoint.path).await;
            }
            Scenario::Browse => {
                let paths = target.paths();
                let path = if visit.is_multiple_of(2) {
                    &paths.detail
                } else {
                    &paths.stock
                };
                self.read(due, path).await;
            }
            Scenario::Rush => {
                self.buy(due, user).await;
            }
            Scenario::Mixed => {
                let user = ((visit / 2) % target.users as u64) as usize;
                if visit.is_multiple_of(2) {
                    let paths = target.paths();
                    let path = if visit.is_multiple_of(4) {
                        &paths.detail
                    } else {
                        &paths.stock
                    };
                    self.read(due, path).await;
                } else {
                    self.buy(due, user).await;
                }
            }
            Scenario::Lifecycle => self.lifecycle(due, user).await,
        }
    }

    async fn send(&mut self, due: Instant, request: &Request<'_>) -> Option<Answer> {
        match self.connection.send(request).await {
            Ok(answer) => {
                self.recorder.borrow_mut().answer(due, &answer);
                Some(answer)
            }
            Err(_) => {
                self.recorder.borrow_mut().error(due);
                None
            }
        }
    }

    async fn read(&mut self, due: Instant, path: &str) -> Option<Answer> {
        self.send(due, &Request::get(path, None)).await
    }

    /// One purchase attempt of one unit; the order id when reserved.
    async fn buy(&mut self, due: Instant, user: usize) -> Option<String> {
        let target = self.target;
        let request = Request::post(
            &target.paths().purchase,
            Some(target.bearer(user)),
            ONE_UNIT,
        );
        let answer = self.send(due, &request).await?;
        self.recorder.borrow_mut().purchase(user, &answer);
        (answer.status == 202)
            .then(|| order_id(&answer.body))
            .flatten()
    }

    /// Buy, poll the order until it is written, then pay or walk away.
    async fn lifecycle(&mut self, due: Instant, user: usize) {
        let Some(order) = self.buy(due, user).await else {
            return;
        };
        let target = self.target;
        let bearer = Some(target.bearer(user));
        let order_path = format!("/api/v1/orders/{order}");
        for _ in 0..POLL_ATTEMPTS {
            let Some(answer) = self
                .send(Instant::now(), &Request::get(&order_path, bearer))
                .await
            else {
                return;
            };
            if answer.status != 200 || !is_queued(&answer.body) {
                break;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        if user % 100 >= usize::from(target.pay_percent) {
            return; // this buyer lets the order expire
        }
        let pay_path = format!("{order_path}/pay");
        let body = format!(r#"{{"payment_ref":"bench-{user}"}}"#);
        let pay = Request::post(&pay_path, bearer, body.as_bytes());
        if let Some(answer) = self.send(Instant::now(), &pay).await
            && answer.status == 200
        {
            self.recorder.borrow_mut().paid += 1;
        }
    }
}

fn is_queued(body: &[u8]) -> bool {
    #[derive(Deserialize)]
    struct Status<'a> {
        status: &'a str,
    }
    serde_json::from_slice::<Status>(body).is_ok_and(|order| order.status == "queued")
}
