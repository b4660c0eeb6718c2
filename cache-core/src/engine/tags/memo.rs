//! The tag lists a thread found valid lately, each with the state cache's
//! version then: entries written under the same tags carry the same list,
//! so a hot read checks it again with one comparison while nothing in the
//! state cache changed (a change of any state, a flush, or the channel going
//! down moves the version on and retires every memo).

use std::cell::RefCell;
use std::time::{Duration, Instant};

use crate::stored::tag_header::TagList;

/// How many lists a thread remembers.
const SIZE: usize = 8;

/// How long a memo serves at most: the states are checked again at least
/// this often, as a bound on what a change the tracking missed could cost.
const FOR: Duration = Duration::from_secs(1);

struct Valid {
    engine: u64,
    version: u64,
    list: TagList,
    until: Instant,
}

thread_local! {
    static VALID: RefCell<Vec<Valid>> = const { RefCell::new(Vec::new()) };
}

/// Whether this thread found `list` valid on engine `engine` at `version`,
/// less than a second before `now`.
pub(super) fn holds(engine: u64, version: u64, list: &TagList, now: Instant) -> bool {
    VALID.with(|valid| {
        valid.try_borrow().is_ok_and(|valid| {
            (valid.iter()).any(|v| {
                v.engine == engine && v.version == version && v.until > now && v.list == *list
            })
        })
    })
}

/// Remembers that `list` was valid on engine `engine` at `version`, `now`.
pub(super) fn keep(engine: u64, version: u64, list: &TagList, now: Instant) {
    VALID.with(|valid| {
        let Ok(mut valid) = valid.try_borrow_mut() else {
            return;
        };
        valid.retain(|v| (v.version == version || v.engine != engine) && v.until > now);
        if valid.len() >= SIZE {
            valid.remove(0);
        }
        let list = list.clone();
        let until = now + FOR;
        valid.push(Valid {
            engine,
            version,
            list,
            until,
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memo_holds_for_its_engine_version_and_second_only() {
        let list = TagList::new([("t:a", &b"0a.1"[..])]).unwrap();
        let other = TagList::new([("t:a", &b"0a.2"[..])]).unwrap();
        let now = Instant::now();
        keep(7, 3, &list, now);
        assert!(holds(7, 3, &list, now));
        assert!(!holds(8, 3, &list, now), "another engine");
        assert!(!holds(7, 4, &list, now), "the state cache changed");
        assert!(!holds(7, 3, &other, now), "another list");
        assert!(!holds(7, 3, &list, now + FOR), "too old");
    }
}
