//! Following the sentinels' announcements, so that a handle moves to a new
//! primary when the sentinels switch to it, not when the old one refuses a
//! write: after a planned failover the old primary takes (and later loses)
//! writes until the sentinels demote it, seconds later.
//!
//! Each sentinel's `+switch-master` events are listened to on a pub/sub
//! connection of their own (the handle moves within a round trip of the
//! announcement), and every [`POLL`] the sentinels are asked which primary
//! they follow (the one of the highest configuration epoch), for an
//! announcement missed while a connection was down. The tasks end with the
//! handle.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;

use super::node::Node;
use super::sentinel::SentinelLink;

/// How often the sentinels are asked, and how long a lost subscription
/// waits before it is made again.
pub(crate) const POLL: Duration = Duration::from_secs(1);

/// The sentinels' event for a new primary: `<master> <old ip> <old port>
/// <new ip> <new port>`.
const SWITCH: &str = "+switch-master";

/// What the watching tasks of one link share.
struct Watch {
    link: Weak<SentinelLink>,
    /// The primary the sentinels named last, as the tasks saw it.
    last: Mutex<Option<Node>>,
}

/// Starts watching the sentinels of `link`'s master.
pub(super) fn spawn(link: &Arc<SentinelLink>) {
    let watch = Arc::new(Watch {
        link: Arc::downgrade(link),
        last: Mutex::new(None),
    });
    for client in &link.sentinels {
        tokio::spawn(listen(Arc::clone(&watch), client.clone()));
    }
    let clients = link.sentinels.clone();
    tokio::spawn(poll(watch, clients));
}

impl Watch {
    /// A sentinel announced `node`: move there.
    fn announced(&self, node: Node) {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(node.clone());
        if let Some(link) = self.link.upgrade() {
            link.switch_to(node);
        }
    }

    /// The sentinels follow `node`: move there if that changed since they
    /// were last asked (or, the first time, if it is not the one in use).
    fn polled(&self, link: &SentinelLink, node: Node) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = match last.as_ref() {
            Some(last) => *last != node,
            None => link.in_use().is_some_and(|in_use| in_use != node),
        };
        *last = Some(node.clone());
        drop(last);
        if changed {
            link.switch_to(node);
        }
    }
}

/// Listens to one sentinel's `+switch-master` events while the handle lives.
async fn listen(watch: Arc<Watch>, client: redis::Client) {
    let Some(master) = watch.link.upgrade().map(|link| link.master.clone()) else {
        return;
    };
    while watch.link.strong_count() > 0 {
        if let Ok(Ok(pubsub)) = tokio::time::timeout(POLL, client.get_async_pubsub()).await {
            let (mut sink, mut messages) = pubsub.split();
            if sink.subscribe(SWITCH).await.is_ok() {
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => {
                                let payload: String = message.get_payload().unwrap_or_default();
                                if let Some(node) = switched_to(&payload, &master) {
                                    watch.announced(node);
                                }
                            }
                            None => break,
                        },
                        () = tokio::time::sleep(POLL) => if watch.link.strong_count() == 0 {
                            return;
                        },
                    }
                }
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Asks the sentinels every [`POLL`] which primary they follow.
async fn poll(watch: Arc<Watch>, clients: Vec<redis::Client>) {
    let mut connections: Vec<Option<MultiplexedConnection>> = vec![None; clients.len()];
    loop {
        tokio::time::sleep(POLL).await;
        let Some(link) = watch.link.upgrade() else {
            return;
        };
        if let Some(node) = followed(&link.master, &clients, &mut connections).await {
            watch.polled(&link, node);
        }
    }
}

/// The primary of the highest configuration epoch among the sentinels that
/// answer (`SENTINEL MASTER`) and are not running a failover: a sentinel
/// that missed a switch has a lower one.
async fn followed(
    master: &str,
    clients: &[redis::Client],
    connections: &mut [Option<MultiplexedConnection>],
) -> Option<Node> {
    let mut newest: Option<(u64, Node)> = None;
    for (client, connection) in clients.iter().zip(connections.iter_mut()) {
        let ask = async {
            if connection.is_none() {
                *connection = Some(client.get_multiplexed_async_connection().await?);
            }
            let Some(open) = connection.as_mut() else {
                return Ok(HashMap::new());
            };
            let cmd = redis::cmd("SENTINEL").arg("MASTER").arg(master).clone();
            cmd.query_async::<HashMap<String, String>>(open).await
        };
        let fields = match tokio::time::timeout(POLL, ask).await {
            Ok(Ok(fields)) => fields,
            _ => {
                *connection = None;
                continue;
            }
        };
        // A sentinel still running the failover names the old primary
        // under the new epoch until it ends: it is not asked.
        let flags = fields.get("flags").map(String::as_str).unwrap_or_default();
        if flags.contains("failover_in_progress") {
            continue;
        }
        let parsed = (
            fields.get("config-epoch"),
            fields.get("ip"),
            fields.get("port"),
        );
        if let (Some(epoch), Some(ip), Some(port)) = parsed
            && let (Ok(epoch), Ok(port)) = (epoch.parse::<u64>(), port.parse::<u16>())
            && newest.as_ref().is_none_or(|(known, _)| epoch > *known)
        {
            newest = Some((epoch, (ip.clone(), port)));
        }
    }
    newest.map(|(_, node)| node)
}

/// The new primary a `+switch-master` payload names, if it is `master`'s.
fn switched_to(payload: &str, master: &str) -> Option<Node> {
    let mut parts = payload.split_whitespace();
    if parts.next()? != master {
        return None;
    }
    let (_old_ip, _old_port) = (parts.next()?, parts.next()?);
    let ip = parts.next()?.to_owned();
    let port = parts.next()?.parse().ok()?;
    Some((ip, port))
}

#[cfg(test)]
mod tests {
    use super::switched_to;

    #[test]
    fn a_switch_is_read_from_its_payload() {
        let payload = "orders 10.0.0.1 6379 10.0.0.2 6380";
        assert_eq!(
            switched_to(payload, "orders"),
            Some(("10.0.0.2".to_owned(), 6380))
        );
        assert_eq!(switched_to(payload, "order"), None);
        assert_eq!(switched_to("orders 10.0.0.1 6379", "orders"), None);
        assert_eq!(switched_to("orders a 1 b port", "orders"), None);
    }
}
