//! The tag header of a stored value: which tags it was written under, and
//! the state each had then. `0xFF 't' 'g'`, the number of tags (u16,
//! big-endian), then for each its name (u16 length, then the bytes: `t:` and
//! the escaped tag, or `k:` and the keyspace) and its state (u8 length, then
//! `<epoch>.<count>`). The codec's bytes follow. Under fail-safe the
//! fail-safe header comes first.

/// What a tag header starts with: a byte no JSON text begins with.
pub(crate) const MAGIC: [u8; 3] = [0xFF, b't', b'g'];

/// The tags of one stored value, with the state each had when it was
/// written: the header's bytes after the count, checked when read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TagList {
    count: usize,
    raw: Vec<u8>,
}

impl TagList {
    /// A list of `(name, state)` pairs; `None` when a name or state is too
    /// long for the format, or there are too many (the tag layer keeps all
    /// of them short).
    pub(crate) fn new<'a>(tags: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Option<Self> {
        let (mut count, mut raw) = (0, Vec::new());
        for (name, state) in tags {
            raw.extend_from_slice(&u16::try_from(name.len()).ok()?.to_be_bytes());
            raw.extend_from_slice(name.as_bytes());
            raw.push(u8::try_from(state.len()).ok()?);
            raw.extend_from_slice(state);
            count += 1;
        }
        u16::try_from(count).ok()?;
        Some(TagList { count, raw })
    }

    /// Each tag's name and state.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let mut reader = Reader { rest: &self.raw };
        (0..self.count).map_while(move |_| reader.tag())
    }
}

/// What the bytes after any fail-safe header hold.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Header {
    /// No tag header: the codec's bytes.
    Plain,
    /// A tag header of this many bytes.
    Tagged(TagList, usize),
    /// Something that starts like a tag header but is not one.
    Broken,
}

/// `payload` under a header listing `list`.
pub(crate) fn seal(list: &TagList, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + list.raw.len() + payload.len());
    out.extend_from_slice(&MAGIC);
    // The count fits: `TagList::new` checked it.
    out.extend_from_slice(&u16::try_from(list.count).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&list.raw);
    out.extend_from_slice(payload);
    out
}

/// Reads the tag header at the start of `bytes`, if there is one.
pub(crate) fn open(bytes: &[u8]) -> Header {
    let Some(rest) = bytes.strip_prefix(&MAGIC[..]) else {
        return Header::Plain;
    };
    let mut reader = Reader { rest };
    let Some(count) = reader.u16() else {
        return Header::Broken;
    };
    let start = reader.rest;
    for _ in 0..count {
        if reader.tag().is_none() {
            return Header::Broken;
        }
    }
    let raw = start[..start.len() - reader.rest.len()].to_vec();
    let list = TagList { count, raw };
    Header::Tagged(list, bytes.len() - reader.rest.len())
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

    /// One tag: its name (UTF-8) and state.
    fn tag(&mut self) -> Option<(&'a str, &'a [u8])> {
        let len = self.u16()?;
        let name = std::str::from_utf8(self.take(len)?).ok()?;
        let len = usize::from(*self.take(1)?.first()?);
        Some((name, self.take(len)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAGS: [(&str, &[u8]); 2] = [("t:tenant%3A7", b"00ab.3"), ("k:price:v1", b"00ab.1")];

    fn list() -> TagList {
        TagList::new(TAGS).unwrap()
    }

    #[test]
    fn a_sealed_list_opens_to_itself_and_the_payload() {
        let sealed = seal(&list(), b"{\"a\":1}");
        let Header::Tagged(opened, at) = open(&sealed) else {
            panic!("not tagged");
        };
        assert_eq!(opened, list());
        assert_eq!(opened.iter().collect::<Vec<_>>(), TAGS);
        assert_eq!(&sealed[at..], b"{\"a\":1}");
    }

    #[test]
    fn plain_and_cut_bytes_are_told_apart() {
        assert_eq!(open(b"{\"a\":1}"), Header::Plain);
        assert_eq!(open(b""), Header::Plain);
        let sealed = seal(&list(), b"1");
        for cut in 3..sealed.len() - 1 {
            assert_eq!(open(&sealed[..cut]), Header::Broken, "cut at {cut}");
        }
        // A count far beyond the bytes allocates nothing for it.
        assert_eq!(open(&[0xFF, b't', b'g', 0xFF, 0xFF]), Header::Broken);
    }
}
