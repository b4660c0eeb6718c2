//! Allocations per command of each case (`--allocs`), counted on one
//! thread: the case runs alone, one step after another, on a current-thread
//! runtime with a fixture of its own, so that the connections' own tasks
//! are counted with the caller's. Unlike the rates, these figures do not
//! move with the machine's load.

use super::{BenchResult, Case, Fixture, step};

/// Steps counted per case, after as many to warm up.
const STEPS: usize = 500;

/// One case's allocations and bytes allocated, per command.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Counts {
    pub(crate) allocs: f64,
    pub(crate) bytes: f64,
}

/// The counts of each of `cases` against the server at `url`.
pub(crate) fn count(url: &str, cases: &[Case]) -> BenchResult<Vec<(Case, Counts)>> {
    let (url, cases) = (url.to_owned(), cases.to_vec());
    let counting = std::thread::spawn(move || -> BenchResult<Vec<(Case, Counts)>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let fx = runtime.block_on(Fixture::new(&url))?;
        let mut counts = Vec::new();
        for case in cases {
            runtime.block_on(steps(case, &fx, STEPS))?;
            let mut commands = Ok(0);
            let info = allocation_counter::measure(|| {
                commands = runtime.block_on(steps(case, &fx, STEPS));
            });
            let commands = commands? as f64;
            let allocs = info.count_total as f64 / commands;
            let bytes = info.bytes_total as f64 / commands;
            counts.push((case, Counts { allocs, bytes }));
        }
        Ok(counts)
    });
    counting
        .join()
        .map_err(|_| "the allocation count panicked")?
}

/// `n` steps of `case` on one task; the commands they issued.
async fn steps(case: Case, fx: &Fixture, n: usize) -> BenchResult<u64> {
    let mut commands = 0;
    for i in 0..n {
        commands += step(case, fx, 0, i).await?;
    }
    Ok(commands)
}
