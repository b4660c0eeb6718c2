//! The tag header of a stored value: which tags it was written under, and
//! the state each had then. `0xFF 't' 'g'`, the number of tags (u16,
//! big-endian), then for each its name (u16 length, then the bytes: `t:` and
//! the escaped tag, or `k:` and the keyspace) and its state (u8 length, then
//! `<epoch>.<count>`). The codec's bytes follow. Under fail-safe the
//! fail-safe header comes first.

/// What a tag header starts with: a byte no JSON text begins with.
pub(crate) const MAGIC: [u8; 3] = [0xFF, b't', b'g'];

/// The tags of one stored value, with the state of each when it was written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TagList {
    pub(crate) tags: Vec<(String, Vec<u8>)>,
}

/// What the bytes after any fail-safe header hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opened {
    /// No tag header: the codec's bytes.
    Plain,
    /// A tag header of this many bytes.
    Tagged(TagList, usize),
    /// Something that starts like a tag header but is not one.
    Broken,
}

/// `payload` under a header listing `list`. `None` when a name or state is
/// too long for the format (the tag layer keeps both short).
pub(crate) fn seal(list: &TagList, payload: &[u8]) -> Option<Vec<u8>> {
    let count = u16::try_from(list.tags.len()).ok()?;
    let size: usize = list.tags.iter().map(|(n, s)| 3 + n.len() + s.len()).sum();
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + size + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&count.to_be_bytes());
    for (name, state) in &list.tags {
        out.extend_from_slice(&u16::try_from(name.len()).ok()?.to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(u8::try_from(state.len()).ok()?);
        out.extend_from_slice(state);
    }
    out.extend_from_slice(payload);
    Some(out)
}

/// Reads the tag header at the start of `bytes`, if there is one.
pub(crate) fn open(bytes: &[u8]) -> Opened {
    let Some(rest) = bytes.strip_prefix(&MAGIC[..]) else {
        return Opened::Plain;
    };
    let mut reader = Reader { rest };
    match reader.list() {
        Some(list) => Opened::Tagged(list, bytes.len() - reader.rest.len()),
        None => Opened::Broken,
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.rest.len() < len {
            return None;
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Some(taken)
    }

    fn u16(&mut self) -> Option<usize> {
        let bytes = self.take(2)?;
        Some(usize::from(u16::from_be_bytes([bytes[0], bytes[1]])))
    }

    fn list(&mut self) -> Option<TagList> {
        let count = self.u16()?;
        // Each tag takes at least 3 bytes: a bound from the bytes, not the count.
        let mut tags = Vec::with_capacity(count.min(self.rest.len() / 3));
        for _ in 0..count {
            let len = self.u16()?;
            let name = std::str::from_utf8(self.take(len)?).ok()?.to_owned();
            let len = usize::from(*self.take(1)?.first()?);
            let state = self.take(len)?.to_vec();
            tags.push((name, state));
        }
        Some(TagList { tags })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> TagList {
        TagList {
            tags: vec![
                ("t:tenant%3A7".to_owned(), b"00ab.3".to_vec()),
                ("k:price:v1".to_owned(), b"00ab.1".to_vec()),
            ],
        }
    }

    #[test]
    fn a_sealed_list_opens_to_itself_and_the_payload() {
        let sealed = seal(&list(), b"{\"a\":1}").unwrap();
        let Opened::Tagged(opened, at) = open(&sealed) else {
            panic!("not tagged");
        };
        assert_eq!(opened, list());
        assert_eq!(&sealed[at..], b"{\"a\":1}");
    }

    #[test]
    fn plain_and_cut_bytes_are_told_apart() {
        assert_eq!(open(b"{\"a\":1}"), Opened::Plain);
        assert_eq!(open(b""), Opened::Plain);
        let sealed = seal(&list(), b"1").unwrap();
        for cut in 3..sealed.len() - 1 {
            assert_eq!(open(&sealed[..cut]), Opened::Broken, "cut at {cut}");
        }
        // A count far beyond the bytes allocates nothing for it.
        assert_eq!(open(&[0xFF, b't', b'g', 0xFF, 0xFF]), Opened::Broken);
    }
}
