//! Following a cluster's redirections ourselves.
//!
//! redis-rs follows MOVED and ASK by retrying inside its cluster connection,
//! but it sends ASKING and the redirected command as two requests. Another
//! caller's command can take the ASKING in between; the importing node then
//! answers MOVED, which makes redis-rs rebuild its slot map, over and over
//! while a slot moves (and under that storm its connection was seen to stall
//! for good). So the handle asks redis-rs not to retry, and a redirection
//! comes back here: ASKING goes in front of the command in one pipeline, which
//! reaches the node as one write. Redis itself refuses (TRYAGAIN) a multi-key
//! command whose keys are split between the two nodes.

use redis::aio::ConnectionLike;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::SingleNodeRoutingInfo;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisResult, ServerErrorKind, Value};

/// The node an ASK or MOVED names, and whether it was an ASK.
fn redirection(err: &RedisError) -> Option<(SingleNodeRoutingInfo, bool)> {
    let asking = match err.kind() {
        ErrorKind::Server(ServerErrorKind::Ask) => true,
        ErrorKind::Server(ServerErrorKind::Moved) => false,
        _ => return None,
    };
    let (node, _slot) = err.redirect_node()?;
    Some((route_to(node)?, asking))
}

/// Routing to `host:port`.
fn route_to(node: &str) -> Option<SingleNodeRoutingInfo> {
    let (host, port) = node.rsplit_once(':')?;
    Some(SingleNodeRoutingInfo::ByAddress {
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port: port.parse().ok()?,
    })
}

/// A transaction the node refused because its keys have left it: the node
/// they went to, when every command was answered ASK to the same one (all
/// its keys are there, or nowhere).
fn transaction_moved(err: &RedisError, commands: usize) -> Option<SingleNodeRoutingInfo> {
    if err.kind() != ErrorKind::Server(ServerErrorKind::ExecAbort) {
        return None;
    }
    let refused = err.clone().into_server_errors()?;
    let mut nodes = refused.iter().map(|(_, error)| {
        let node = error.details()?.split_ascii_whitespace().nth(1)?;
        (error.kind() == Some(ServerErrorKind::Ask)).then_some(node)
    });
    let first = nodes.next().flatten()?;
    let all = refused.len() == commands && nodes.all(|node| node == Some(first));
    all.then(|| route_to(first)).flatten()
}

/// Sends `cmd`; a redirection is followed once, to the node it names (MOVED
/// also makes redis-rs refresh its slot map).
pub(super) async fn command(connection: &mut ClusterConnection, cmd: &Cmd) -> RedisResult<Value> {
    let err = match connection.req_packed_command(cmd).await {
        Err(err) => err,
        done => return done,
    };
    let Some((route, asking)) = redirection(&err) else {
        return Err(err);
    };
    let mut pipe = redis::pipe();
    if asking {
        pipe.cmd("ASKING");
    }
    pipe.add_command(cmd.clone());
    let skip = usize::from(asking);
    let mut values = unsent(connection.route_pipeline(pipe, skip, 1, route).await, err)?;
    let value = values.pop().unwrap_or(Value::Nil);
    value.extract_error()
}

/// Sends the commands `offset..offset + count` of `pipeline` want answered,
/// following a MOVED to the node it names. An ASK (the slot half moved) is
/// followed by a pipeline that reads one key (each command gets its own
/// ASKING), and by a transaction whose every key was answered ASK to the same
/// node. A transaction refused otherwise comes back as TRYAGAIN (it did not
/// run), a pipeline of several keys with its ASK, for `bounded` to send again
/// once the slot has moved: keys the old node still holds must not be written
/// on the new one.
pub(super) async fn commands(
    connection: &mut ClusterConnection,
    pipeline: &Pipeline,
    offset: usize,
    count: usize,
) -> RedisResult<Vec<Value>> {
    let err = match connection
        .req_packed_commands(pipeline, offset, count)
        .await
    {
        Err(err) => err,
        done => return done,
    };
    let sent = pipeline.cmd_iter().count();
    if pipeline.is_transaction() {
        if let Some(route) = transaction_moved(&err, sent) {
            let mut pipe = redis::pipe();
            // ASKING holds for the whole MULTI. MULTI and EXEC are spelled
            // out, as the offset counts them.
            pipe.cmd("ASKING").cmd("MULTI");
            for cmd in pipeline.cmd_iter() {
                pipe.add_command(cmd.clone());
            }
            pipe.cmd("EXEC");
            let sent = connection.route_pipeline(pipe, offset + 1, count, route);
            return unsent(sent.await, err);
        }
        if err.kind() == ErrorKind::Server(ServerErrorKind::ExecAbort) {
            return Err(split_keys());
        }
    }
    let Some((route, asking)) = redirection(&err) else {
        return Err(err);
    };
    if !asking {
        let sent = connection.route_pipeline(pipeline.clone(), offset, count, route);
        return unsent(sent.await, err);
    }
    if !one_key(pipeline) {
        // Some commands may have run: the caller decides whether to resend.
        return Err(err);
    }
    let mut pipe = redis::pipe();
    for cmd in pipeline.cmd_iter() {
        pipe.cmd("ASKING").add_command(cmd.clone());
    }
    let values = unsent(
        connection.route_pipeline(pipe, 0, 2 * sent, route).await,
        err,
    )?;
    let answers = values.into_iter().skip(1).step_by(2);
    Ok(answers.skip(offset).take(count).collect())
}

/// The redirection `err` again when the node it names has no connection yet
/// (a replica just promoted, a node just added): nothing was sent, and
/// redis-rs connects to it with its next slot refresh.
fn unsent<T>(sent: RedisResult<T>, err: RedisError) -> RedisResult<T> {
    match sent {
        Err(not_sent) if not_sent.kind() == ErrorKind::ClusterConnectionNotFound => Err(err),
        done => done,
    }
}

/// A transaction whose slot is half moved: refused, and not run.
fn split_keys() -> RedisError {
    let kind = ErrorKind::Server(ServerErrorKind::TryAgain);
    RedisError::from((
        kind,
        "batch keys are split between two nodes while their slot moves",
    ))
}
/// Whether every command of `pipeline` names the same first key.
fn one_key(pipeline: &Pipeline) -> bool {
    let mut keys = pipeline.cmd_iter().map(|cmd| cmd.args_iter().nth(1));
    let first = keys.next().flatten();
    first.is_some() && keys.all(|key| key == first)
}
