//! A body as served: built once per change from headers and fragments, kept plain and
//! gzip-compressed, with its text 0.0.4 form derived on the first scrape that asks for it.

use std::ops::Range;
use std::sync::OnceLock;

use bytes::Bytes;

use super::Format;
use super::encode::header;
use super::text::openmetrics_to_text;
use crate::families::FamilyId;

/// The gzip level of cached bodies: level 1 compresses the exposition about 16–20:1 at about
/// the cost of concatenating it; level 6 gains 15 % for six times the CPU (docs/benchmarks.md).
pub const GZIP_LEVEL: u32 = 1;

/// Gzip-compresses `data` at [`GZIP_LEVEL`].
pub fn gzip(data: &[u8]) -> Bytes {
    use std::io::Write as _;
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 6 + 64), flate2::Compression::new(GZIP_LEVEL));
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(data);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// One body, plain and gzip-compressed.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    /// As is.
    pub plain: Bytes,
    /// Gzip-compressed once (for `Accept-Encoding: gzip`).
    pub gzip: Bytes,
}

impl Encoded {
    /// Compresses `plain`.
    pub fn new(plain: Bytes) -> Self {
        let gzip = gzip(&plain);
        Encoded { plain, gzip }
    }
}

/// A stretch of the OpenMetrics body: header lines to rewrite for text 0.0.4, then sample
/// lines that are the same in both formats.
#[derive(Debug)]
struct Piece {
    rewrite: Range<usize>,
    copy: Range<usize>,
}

/// The exposition as served, rendered once per change. The OpenMetrics body leaves out the
/// final `# EOF`, which follows the process metrics; the text 0.0.4 body is derived from it on
/// the first scrape that asks for it, and kept until the next change.
#[derive(Debug, Default)]
pub struct Exposition {
    /// OpenMetrics 1.0.0, without `# EOF`.
    pub openmetrics: Encoded,
    pieces: Vec<Piece>,
    text: OnceLock<Encoded>,
}

impl Exposition {
    /// The body in `format`.
    pub fn get(&self, format: Format) -> &Encoded {
        match format {
            Format::OpenMetrics => &self.openmetrics,
            Format::Text => self.text(),
        }
    }

    /// The text 0.0.4 body, derived now if no scrape has asked for it since the last change.
    pub fn text(&self) -> &Encoded {
        self.text.get_or_init(|| {
            let om = &self.openmetrics.plain;
            let mut out = Vec::with_capacity(om.len());
            let mut headers = String::new();
            for p in &self.pieces {
                headers.clear();
                // Pieces start and end on line boundaries of a body built from Strings.
                openmetrics_to_text(std::str::from_utf8(&om[p.rewrite.clone()]).unwrap_or_default(), &mut headers);
                out.extend_from_slice(headers.as_bytes());
                out.extend_from_slice(&om[p.copy.clone()]);
            }
            Encoded::new(Bytes::from(out))
        })
    }

    /// Whether the text body has been derived (for tests and the bench).
    pub fn has_text(&self) -> bool {
        self.text.get().is_some()
    }
}

/// Builds an [`Exposition`] from headers and fragments.
#[derive(Debug, Default)]
pub struct Builder {
    out: String,
    pieces: Vec<Piece>,
}

impl Builder {
    /// A builder with room for `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Builder { out: String::with_capacity(capacity), pieces: Vec::new() }
    }

    /// Appends a family: its header, then its fragments; nothing if every fragment is empty.
    pub fn family<'a>(&mut self, family: FamilyId, fragments: impl Iterator<Item = &'a str>) {
        let mut fragments = fragments.filter(|f| !f.is_empty()).peekable();
        if fragments.peek().is_none() {
            return;
        }
        let start = self.out.len();
        self.out.push_str(header(family));
        let samples = self.out.len();
        fragments.for_each(|f| self.out.push_str(f));
        self.pieces.push(Piece { rewrite: start..samples, copy: samples..self.out.len() });
    }

    /// Appends whole encoded families (headers included).
    pub fn families(&mut self, encoded: &str) {
        let start = self.out.len();
        self.out.push_str(encoded);
        self.pieces.push(Piece { rewrite: start..self.out.len(), copy: self.out.len()..self.out.len() });
    }

    /// Compresses the OpenMetrics body; the text body waits for a scrape that asks for it.
    pub fn finish(self) -> Exposition {
        Exposition { openmetrics: Encoded::new(Bytes::from(self.out)), pieces: self.pieces, text: OnceLock::new() }
    }
}
