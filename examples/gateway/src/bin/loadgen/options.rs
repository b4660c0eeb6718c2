//! The command line: `--url`, `--keys`, `--zipf`, `--duration`,
//! `--concurrency`, `--chat-share`; each error names the flag.

use std::time::Duration;

pub(crate) const USAGE: &str = "usage: loadgen [--url http://127.0.0.1:8080] [--keys 10000] \
[--zipf 1.1] [--duration 30s] [--concurrency 64] [--chat-share 0.1]";

/// What to send, for how long.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// The gateway's base URL.
    pub(crate) url: String,
    /// How many models the price requests spread over.
    pub(crate) keys: u64,
    /// The Zipf exponent of the spread: above 1, a few models get most requests.
    pub(crate) zipf: f64,
    pub(crate) duration: Duration,
    /// Requests under way at once.
    pub(crate) concurrency: usize,
    /// The share of requests that go to `POST /v1/chat` (the rest ask prices).
    pub(crate) chat_share: f64,
}

impl Options {
    /// Reads the flags (`--name value` or `--name=value`).
    pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut options = Options {
            url: "http://127.0.0.1:8080".to_owned(),
            keys: 10_000,
            zipf: 1.1,
            duration: Duration::from_secs(30),
            concurrency: 64,
            chat_share: 0.1,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "--help" || arg == "-h" {
                return Err(USAGE.to_owned());
            }
            let (flag, value) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), value.to_owned()),
                None => {
                    let value = args.next().ok_or(format!("{arg} needs a value\n{USAGE}"))?;
                    (arg, value)
                }
            };
            options.set(&flag, &value)?;
        }
        Ok(options)
    }

    fn set(&mut self, flag: &str, value: &str) -> Result<(), String> {
        let bad = |what: &str| format!("{flag} {value:?}: {what}");
        match flag {
            "--url" => self.url = value.trim_end_matches('/').to_owned(),
            "--keys" => {
                self.keys = parse_if(value, |&keys| keys > 0)
                    .ok_or_else(|| bad("a whole number above 0"))?;
            }
            "--zipf" => {
                self.zipf = parse_if(value, |&s: &f64| s.is_finite() && s >= 0.0)
                    .ok_or_else(|| bad("an exponent of 0 or more"))?;
            }
            "--duration" => {
                self.duration = duration(value).ok_or_else(|| bad("e.g. 30s, 500ms, 2m"))?
            }
            "--concurrency" => {
                self.concurrency =
                    parse_if(value, |&n| n > 0).ok_or_else(|| bad("a whole number above 0"))?;
            }
            "--chat-share" => {
                self.chat_share = parse_if(value, |share: &f64| (0.0..=1.0).contains(share))
                    .ok_or_else(|| bad("a share from 0 to 1"))?;
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
        Ok(())
    }
}

/// `value` as a `T`, if it reads as one and `ok` accepts it.
fn parse_if<T: std::str::FromStr>(value: &str, ok: impl Fn(&T) -> bool) -> Option<T> {
    value.parse().ok().filter(ok)
}

/// `500ms`, `30s`, `2m`; a bare number is seconds.
fn duration(text: &str) -> Option<Duration> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().ok()?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.checked_mul(60)?),
        _ => return None,
    };
    (!duration.is_zero()).then_some(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn flags_parse_and_bad_values_name_their_flag() {
        let options = Options::parse(args("--url http://x:1/ --keys 5 --zipf=1.3 --duration 3s"));
        let options = options.unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(options.url, "http://x:1");
        assert_eq!((options.keys, options.zipf), (5, 1.3));
        assert_eq!(options.duration, Duration::from_secs(3));
        assert_eq!(duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(duration("2m"), Some(Duration::from_secs(120)));
        for (bad, flag) in [
            ("--keys 0", "--keys"),
            ("--duration 3h", "--duration"),
            ("--chat-share 2", "--chat-share"),
            ("--nope 1", "--nope"),
            ("--keys", "--keys"),
        ] {
            let err = Options::parse(args(bad)).map(|_| ()).unwrap_err();
            assert!(err.contains(flag), "{bad}: {err}");
        }
    }
}
