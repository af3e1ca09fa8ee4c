//! A string that never prints: credentials live in [`Secret`] from the moment they are read
//! until the one place that builds a signature or a header with them.

use std::fmt;
use std::io::Read as _;
use std::path::Path;

/// A credential. `Debug` and `Display` print `[redacted]`; the value is reachable only through
/// [`Secret::expose`], which is called where a request is signed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a credential.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The credential itself, for signing. Never log what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Reads a UTF-8 text file (a configuration, a credential), refusing one larger than `max`
/// bytes without reading past the bound. The error names the bound, never the content.
pub fn read_bounded(path: &Path, max: u64) -> std::io::Result<String> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(std::io::Error::other(format!("the file is larger than {max} bytes")));
    }
    String::from_utf8(bytes).map_err(|_| std::io::Error::other("the file is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&s)), "Some([redacted])");
        assert_eq!(s.expose(), "hunter2-very-secret");
    }

    #[test]
    fn bounded_reads_refuse_big_and_binary_files_without_quoting_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "x".repeat(11)).unwrap();
        assert_eq!(read_bounded(&path, 11).unwrap().len(), 11);
        let err = read_bounded(&path, 10).unwrap_err().to_string();
        assert!(err.contains("larger than 10 bytes") && !err.contains("xxx"), "{err}");
        std::fs::write(&path, b"hunter2\xff").unwrap();
        let err = read_bounded(&path, 100).unwrap_err().to_string();
        assert!(err.contains("not UTF-8") && !err.contains("hunter2"), "{err}");
    }
}
