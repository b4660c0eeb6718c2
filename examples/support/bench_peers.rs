//! fred, the other fast Rust client, as a peer in the bench: one client and
//! a round-robin pool of four, both with fred's automatic pipelining (every
//! command a task sends is fed to the socket and flushed in batches). The
//! same workloads as the raw redis-rs cases, on keys of their own.

use fred::bytes::Bytes;
use fred::prelude::{Builder, ClientLike, Config, Expiration, KeysInterface};

use super::{BenchResult, KEYS_PER_TASK, TTL_SECS};

/// Where a fred case sends its commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fred {
    One,
    Pool4,
}

/// fred's clients, connected.
pub(crate) struct FredClients {
    one: fred::clients::Client,
    pool: fred::clients::Pool,
    value: Bytes,
}

impl FredClients {
    /// Connects both to `url` and stores the keys the GET cases read.
    pub(crate) async fn connect(url: &str, value: &[u8]) -> BenchResult<Self> {
        let builder = Builder::from_config(Config::from_url(url)?);
        let one = builder.build()?;
        one.init().await?;
        let pool = builder.build_pool(4)?;
        pool.init().await?;
        let value = Bytes::copy_from_slice(value);
        for slot in 0..KEYS_PER_TASK {
            let _: () = one
                .set(get_key(slot), value.clone(), None, None, false)
                .await?;
        }
        Ok(FredClients { one, pool, value })
    }

    /// SET with EX then GET: two commands.
    pub(crate) async fn set_get(&self, on: Fred, task: usize, slot: usize) -> BenchResult<u64> {
        let key = format!("bench-fred:{task}:{slot}");
        let expire = Some(Expiration::EX(TTL_SECS as i64));
        let value = self.value.clone();
        match on {
            Fred::One => {
                let _: () = self.one.set(&key, value, expire, None, false).await?;
                let _: Option<Bytes> = self.one.get(&key).await?;
            }
            Fred::Pool4 => {
                let _: () = self.pool.set(&key, value, expire, None, false).await?;
                let _: Option<Bytes> = self.pool.get(&key).await?;
            }
        }
        Ok(2)
    }

    /// GET of a stored key: one command.
    pub(crate) async fn get(&self, on: Fred, slot: usize) -> BenchResult<u64> {
        let key = get_key(slot);
        let _: Option<Bytes> = match on {
            Fred::One => self.one.get(key).await?,
            Fred::Pool4 => self.pool.get(key).await?,
        };
        Ok(1)
    }
}

fn get_key(slot: usize) -> String {
    format!("bench-fred-get:{slot}")
}
