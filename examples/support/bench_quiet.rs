//! Whether the machine was quiet during a run: the CPU time every process
//! used (from `/proc/stat`, steal time included), less the bench's own and
//! its servers', as a share of what the machine's cores could give over the
//! run. A noisy run then reads as noisy, not as a regression.

use std::time::Instant;

/// Linux counts CPU time in ticks of 1/100 s (`USER_HZ`) on every platform
/// the kernel supports today.
const TICKS_PER_SECOND: f64 = 100.0;

/// Above this share of the machine, a run is marked disturbed.
pub(crate) const DISTURBED_PERCENT: f64 = 3.0;

/// What other processes took while a run went on.
pub(crate) struct Meter {
    started: Instant,
    busy: u64,
    ours: u64,
    pids: Vec<u32>,
}

/// The run's verdict.
pub(crate) struct Quiet {
    /// Other processes' CPU time, in percent of the machine's over the run.
    pub(crate) other_percent: f64,
}

impl Quiet {
    pub(crate) fn disturbed(&self) -> bool {
        self.other_percent > DISTURBED_PERCENT
    }

    /// Prints the figure, and a warning when the run was disturbed.
    pub(crate) fn report(&self) {
        println!(
            "\nother processes used {:.1}% of the machine's CPU during the run",
            self.other_percent
        );
        if self.disturbed() {
            println!(
                "WARNING: more than {DISTURBED_PERCENT}%: the machine was busy with other work; \
                 these ratios may not be comparable with a quiet run's"
            );
        }
    }
}

impl Meter {
    /// Starts measuring; the processes `pids` (the servers under test) count
    /// as the run's own, as this one does. `None` where `/proc` is not there.
    pub(crate) fn start(pids: Vec<u32>) -> Option<Meter> {
        let busy = machine_busy()?;
        let ours = ours(&pids)?;
        Some(Meter {
            started: Instant::now(),
            busy,
            ours,
            pids,
        })
    }

    pub(crate) fn finish(&self) -> Option<Quiet> {
        let busy = machine_busy()?.saturating_sub(self.busy);
        let ours = ours(&self.pids)?.saturating_sub(self.ours);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let capacity = self.started.elapsed().as_secs_f64() * TICKS_PER_SECOND * cores;
        let others = busy.saturating_sub(ours) as f64;
        Some(Quiet {
            other_percent: 100.0 * others / capacity.max(1.0),
        })
    }
}

/// Ticks every CPU spent busy since boot: user, nice, system, irq,
/// softirq and steal.
fn machine_busy() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = (line.split_whitespace().skip(1))
        .filter_map(|field| field.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal
    let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|&at| ticks.get(at));
    Some(busy.sum())
}

/// Ticks this process and `pids` used (user and system).
fn ours(pids: &[u32]) -> Option<u64> {
    let own = process_ticks("self")?;
    let servers: u64 = (pids.iter())
        .filter_map(|pid| process_ticks(&pid.to_string()))
        .sum();
    Some(own + servers)
}

fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: count after it.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of the whole line (utime, stime) are 12 and 13 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The process id of the server behind `connection`, when it runs here.
pub(crate) async fn server_pid(connection: &mut impl redis::aio::ConnectionLike) -> Option<u32> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(connection)
        .await
        .ok()?;
    let pid = info
        .lines()
        .find_map(|line| line.strip_prefix("process_id:"))?;
    let pid: u32 = pid.trim().parse().ok()?;
    std::path::Path::new(&format!("/proc/{pid}"))
        .exists()
        .then_some(pid)
}
