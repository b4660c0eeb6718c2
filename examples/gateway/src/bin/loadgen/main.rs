//! Drives a running gateway with a skewed (Zipf) spread of price requests
//! and some chat, shows progress every second, and ends with requests per
//! second, p50/p99 latency and the cache's hit ratios read from `/metrics`:
//!
//! ```text
//! cargo run -p gateway --bin loadgen -- --url http://127.0.0.1:8080 \
//!     --keys 10000 --zipf 1.1 --duration 30s --concurrency 64
//! ```

mod options;

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};

use self::options::Options;

/// Users the chat requests come from (each its own rate limit).
const USERS: usize = 32;

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("loadgen: {err}");
            ExitCode::FAILURE
        }
    }
}

/// What every worker adds to.
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    failures: AtomicU64,
}

/// One worker's record: latencies in microseconds, and responses by status.
#[derive(Default)]
struct Record {
    latencies: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
}

async fn run() -> Result<(), String> {
    let options = Options::parse(std::env::args().skip(1))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|err| format!("cannot build the HTTP client: {err}"))?;
    let before = scrape(&client, &options.url).await?;
    let tokens = Arc::new(login(&client, &options.url).await?);
    let zipf = Zipf::new(options.keys as f64, options.zipf)
        .map_err(|err| format!("--zipf {}: {err}", options.zipf))?;
    println!(
        "loadgen: {} for {:?} with {} at once: prices of {} models (Zipf {}), {:.0}% chat",
        options.url,
        options.duration,
        options.concurrency,
        options.keys,
        options.zipf,
        options.chat_share * 100.0
    );
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let deadline = started + options.duration;
    let workers: Vec<_> = (0..options.concurrency)
        .map(|_| {
            let worker = Worker {
                client: client.clone(),
                options: options.clone(),
                tokens: Arc::clone(&tokens),
                zipf,
                tally: Arc::clone(&tally),
            };
            tokio::spawn(worker.run(deadline))
        })
        .collect();
    let progress = tokio::spawn(show_progress(Arc::clone(&tally), started, deadline));
    let mut total = Record::default();
    for worker in workers {
        let record = worker
            .await
            .map_err(|err| format!("a worker failed: {err}"))?;
        total.latencies.extend(record.latencies);
        for (status, count) in record.statuses {
            *total.statuses.entry(status).or_default() += count;
        }
    }
    progress.abort();
    let took = started.elapsed();
    let after = scrape(&client, &options.url).await?;
    report(total, &tally, took, &before, &after);
    Ok(())
}

/// One of the requests under way at once, sending until `deadline`.
struct Worker {
    client: reqwest::Client,
    options: Options,
    tokens: Arc<Vec<String>>,
    zipf: Zipf<f64>,
    tally: Arc<Tally>,
}

impl Worker {
    async fn run(self, deadline: Instant) -> Record {
        let mut rng = SmallRng::from_rng(&mut rand::rng());
        let mut record = Record::default();
        while Instant::now() < deadline {
            let request = if rng.random_bool(self.options.chat_share) {
                let token = &self.tokens[rng.random_range(0..self.tokens.len())];
                self.client
                    .post(format!("{}/v1/chat", self.options.url))
                    .bearer_auth(token)
                    .json(&serde_json::json!({ "message": "hello" }))
            } else {
                // 1..=keys, most often the first few.
                let model = self.zipf.sample(&mut rng) as u64;
                let url = format!("{}/v1/prices/model-{model}", self.options.url);
                self.client.get(url)
            };
            let sent = Instant::now();
            let answer = request.send().await;
            let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
            self.tally.requests.fetch_add(1, Ordering::Relaxed);
            match answer {
                Ok(response) => {
                    let status = response.status();
                    // Read the body, as a client would, so the time is the whole answer.
                    let _ = response.bytes().await;
                    if status.is_server_error() {
                        self.tally.failures.fetch_add(1, Ordering::Relaxed);
                    }
                    *record.statuses.entry(status.as_u16()).or_default() += 1;
                    record.latencies.push(micros);
                }
                Err(_) => {
                    self.tally.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        record
    }
}

/// Signs in the chat users; their tokens.
async fn login(client: &reqwest::Client, url: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::with_capacity(USERS);
    for user in 0..USERS {
        let response = client
            .post(format!("{url}/v1/login"))
            .json(&serde_json::json!({ "user": format!("load-{user}") }))
            .send()
            .await
            .map_err(|err| format!("cannot reach {url}: {err}"))?;
        if !response.status().is_success() {
            return Err(format!("{url}/v1/login answered {}", response.status()));
        }
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|err| format!("{url}/v1/login: {err}"))?;
        let token = body["token"]
            .as_str()
            .ok_or("no token in the login answer")?;
        tokens.push(token.to_owned());
    }
    Ok(tokens)
}

/// One line a second: requests so far, the rate, failures.
async fn show_progress(tally: Arc<Tally>, started: Instant, deadline: Instant) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    let mut last = 0;
    while Instant::now() < deadline {
        ticks.tick().await;
        let requests = tally.requests.load(Ordering::Relaxed);
        let failures = tally.failures.load(Ordering::Relaxed);
        eprintln!(
            "  {:>4.0}s  {requests:>9} requests  {:>7} req/s  {failures} failed",
            started.elapsed().as_secs_f64(),
            requests - last
        );
        last = requests;
    }
}

/// The gateway's `/metrics` text.
async fn scrape(client: &reqwest::Client, url: &str) -> Result<String, String> {
    let response = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .map_err(|err| format!("cannot reach {url}/metrics: {err}"))?;
    if !response.status().is_success() {
        return Err(format!("{url}/metrics answered {}", response.status()));
    }
    response
        .text()
        .await
        .map_err(|err| format!("{url}/metrics: {err}"))
}

/// The sum of every series of the counter `name` on the price keyspace.
fn price_counter(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && line.contains("keyspace=\"price\""))
        .filter(|line| line.as_bytes().get(name.len()) == Some(&b'{'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter_map(|(_, value)| value.parse::<f64>().ok())
        .sum()
}

/// Prints the rate, the latency quantiles, the answers by status and what
/// the price keyspace's counters moved by.
fn report(total: Record, tally: &Tally, took: Duration, before: &str, after: &str) {
    let mut latencies = total.latencies;
    latencies.sort_unstable();
    let at = |quantile: f64| {
        let index = ((latencies.len() as f64 - 1.0) * quantile).round() as usize;
        latencies
            .get(index)
            .map_or(0.0, |&micros| micros as f64 / 1000.0)
    };
    let requests = tally.requests.load(Ordering::Relaxed);
    println!(
        "{requests} requests in {:.1} s: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} failed",
        took.as_secs_f64(),
        requests as f64 / took.as_secs_f64(),
        at(0.5),
        at(0.99),
        tally.failures.load(Ordering::Relaxed)
    );
    let statuses: Vec<String> = total
        .statuses
        .iter()
        .map(|(status, count)| format!("{status}: {count}"))
        .collect();
    println!("by status: {}", statuses.join(", "));
    let moved = |name: &str| price_counter(after, name) - price_counter(before, name);
    let (hits, negative) = (
        moved("cache_hits_total"),
        moved("cache_negative_hits_total"),
    );
    let (misses, local) = (moved("cache_misses_total"), moved("cache_local_hits_total"));
    let reads = hits + negative + misses;
    if reads > 0.0 {
        println!(
            "price cache (from /metrics): hit ratio {:.3}, local-hit ratio {:.3}, {:.0} loads",
            (hits + negative) / reads,
            local / reads,
            moved("cache_loads_total")
        );
    } else {
        println!("price cache (from /metrics): no reads counted");
    }
}
