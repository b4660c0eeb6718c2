//! The byte formats of a stored value, outermost first: the fail-safe
//! header (`stamp`), the tag header (`tag_header`), the compression frame
//! (`compress`), then the codec's bytes. A leaf: the engine writes and reads
//! them, and the backend's scripts match them.

pub(crate) mod compress;
pub(crate) mod stamp;
pub(crate) mod tag_header;
