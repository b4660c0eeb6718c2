//! Passwords out of what is shown: URLs and cluster node lists as errors,
//! logs and `Debug` output print them.

/// The nodes of a cluster as errors name them: each URL with its password
/// redacted, comma-separated.
///
/// ```
/// let nodes = ["redis://:pw@a:7000".to_owned(), "redis://b:7001".to_owned()];
/// assert_eq!(cache_core::redact::nodes(&nodes), "redis://:***@a:7000, redis://b:7001");
/// ```
pub fn nodes(nodes: &[String]) -> String {
    let redacted: Vec<String> = nodes.iter().map(|node| url(node)).collect();
    redacted.join(", ")
}

/// Returns `url` with any password (in the user-info part or a `pass`/`password`
/// query parameter) replaced by `***`, for use in messages.
///
/// ```
/// assert_eq!(
///     cache_core::redact::url("redis://app:s3cret@db:6379/2"),
///     "redis://app:***@db:6379/2"
/// );
/// ```
pub fn url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            let host = &authority[at..];
            match userinfo.find(':') {
                Some(colon) => format!("{}:***{host}", &userinfo[..colon]),
                // `redis://secret@host` puts the password alone in the user part.
                None if !userinfo.is_empty() => format!("***{host}"),
                None => authority.to_owned(),
            }
        }
        None => authority.to_owned(),
    };
    format!("{scheme}{authority}{}", redact_query(tail))
}

fn redact_query(tail: &str) -> String {
    let Some(question) = tail.find('?') else {
        return tail.to_owned();
    };
    let (path, query) = tail.split_at(question + 1);
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((name, _)) if name == "pass" || name == "password" => format!("{name}=***"),
            _ => param.to_owned(),
        })
        .collect();
    format!("{path}{}", params.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_every_password_form() {
        assert_eq!(url("redis://:pw@h:1"), "redis://:***@h:1");
        assert_eq!(url("rediss://u:pw@h:1/0"), "rediss://u:***@h:1/0");
        assert_eq!(url("redis://pw@h"), "redis://***@h");
        assert_eq!(url("redis://h:6379"), "redis://h:6379");
        assert_eq!(
            url("redis+unix:///tmp/r.sock?db=1&pass=pw"),
            "redis+unix:///tmp/r.sock?db=1&pass=***"
        );
        assert_eq!(url("not a url"), "not a url");
        // A password containing '@' is cut at the last '@' so none of it leaks.
        assert_eq!(url("redis://u:p@ss@h"), "redis://u:***@h");
    }
}
