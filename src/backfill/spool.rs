//! The spool and the output: each unit appends its samples to one file per family, and the
//! output is assembled family by family, `# EOF` last, in a temporary file renamed into place
//! only when complete. Memory does not grow with the range.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::families::FamilyId;
use crate::job::Sample;
use crate::providers::{SampleSink, SinkError};

use super::{BackfillError, Output, io};

/// One unit's spool: a file per family, appended in time order.
pub(super) struct Spool {
    dir: PathBuf,
    unit: usize,
    files: HashMap<FamilyId, BufWriter<File>>,
    samples: u64,
    provider: &'static str,
    account: Arc<str>,
}

impl Spool {
    /// The spool of unit number `unit` of `provider`'s `account`, in `dir`.
    pub(super) fn new(dir: PathBuf, unit: usize, provider: &'static str, account: Arc<str>) -> Self {
        Spool { dir, unit, files: HashMap::new(), samples: 0, provider, account }
    }

    fn path(dir: &Path, unit: usize, family: FamilyId) -> PathBuf {
        dir.join(format!("{unit:06}-{:03}", family.index()))
    }

    fn write(&mut self, samples: &[Sample], timestamp: i64) -> Result<(), BackfillError> {
        let mut line = String::with_capacity(160);
        for s in samples {
            line.clear();
            let labels = [("provider", self.provider), ("account", &*self.account)]
                .into_iter()
                .chain(s.labels.iter().map(|(k, v)| (*k, v.as_str())));
            crate::exposition::write_sample(&mut line, s.family.def().name, labels, s.value);
            // write_sample ends the line; put the timestamp before the newline.
            line.pop();
            line.push(' ');
            line.push_str(&timestamp.to_string());
            line.push('\n');
            let path = Self::path(&self.dir, self.unit, s.family);
            let file = match self.files.entry(s.family) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(BufWriter::new(File::create(&path).map_err(io(&path))?))
                }
            };
            file.write_all(line.as_bytes()).map_err(io(&path))?;
            self.samples += 1;
        }
        Ok(())
    }

    /// Flushes every file; the samples written.
    pub(super) fn close(mut self) -> Result<u64, BackfillError> {
        for (family, mut f) in self.files.drain() {
            f.flush().map_err(io(&Self::path(&self.dir, self.unit, family)))?;
        }
        Ok(self.samples)
    }
}

/// Removes the spool directory however the backfill ends.
pub(super) struct SpoolDir(pub(super) PathBuf);

impl Drop for SpoolDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl SampleSink for Spool {
    fn write(&mut self, samples: &[Sample], timestamp: i64) -> Result<(), SinkError> {
        Spool::write(self, samples, timestamp).map_err(|e| SinkError(Box::new(e)))
    }
}

pub(super) fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "backfill".into());
    path.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

/// Writes `s` as OpenMetrics HELP text: backslash, newline and double quote escaped.
fn help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n").replace('"', "\\\"")
}

/// Concatenates the spool family by family into the output, `# EOF` last; a file output is
/// written under a temporary name, synced, and renamed into place.
pub(super) fn assemble(dir: &Path, out: &Output) -> Result<(), BackfillError> {
    let mut spools: Vec<PathBuf> =
        std::fs::read_dir(dir).map_err(io(dir))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    spools.sort();
    let by_family = |family: FamilyId| {
        let suffix = format!("-{:03}", family.index());
        spools.iter().filter(move |p| p.file_name().is_some_and(|n| n.to_string_lossy().ends_with(&suffix)))
    };
    let write_all = |w: &mut dyn std::io::Write, target: &Path| -> Result<(), BackfillError> {
        for &family in FamilyId::ALL {
            let mut files = by_family(family).peekable();
            if files.peek().is_none() {
                continue;
            }
            let def = family.def();
            let mut header = format!("# HELP {} {}\n# TYPE {} gauge\n", def.name, help(def.help), def.name);
            if let Some(unit) = def.unit {
                header.push_str(&format!("# UNIT {} {unit}\n", def.name));
            }
            w.write_all(header.as_bytes()).map_err(io(target))?;
            for path in files {
                let mut f = File::open(path).map_err(io(path))?;
                std::io::copy(&mut f, w).map_err(io(target))?;
            }
        }
        w.write_all(b"# EOF\n").map_err(io(target))?;
        w.flush().map_err(io(target))
    };
    match out {
        Output::Stdout => {
            let stdout = std::io::stdout();
            let mut lock = BufWriter::new(stdout.lock());
            write_all(&mut lock, Path::new("standard output"))
        }
        // A named pipe, a device or anything else that is not a regular file is written into as
        // it is: renaming a file over it would replace it, and its reader would get nothing.
        Output::File(path) if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) => {
            let file = std::fs::OpenOptions::new().write(true).open(path).map_err(io(path))?;
            let mut w = BufWriter::new(file);
            write_all(&mut w, path)
        }
        Output::File(path) => {
            let tmp = sibling(path, "tmp");
            let result = (|| {
                let file = File::create(&tmp).map_err(io(&tmp))?;
                let mut w = BufWriter::new(file);
                write_all(&mut w, &tmp)?;
                let file = w
                    .into_inner()
                    .map_err(|e| BackfillError::Io { path: tmp.display().to_string(), source: e.into_error() })?;
                file.sync_all().map_err(io(&tmp))?;
                std::fs::rename(&tmp, path).map_err(io(path))
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_named_pipe_is_written_into_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out.om");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipping: mkfifo is not available");
            return;
        }
        let spool = tempfile::tempdir().unwrap();
        std::fs::write(spool.path().join("000001-000"), "x 1 1\n").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(std::fs::read_to_string(&reader).map_err(|e| e.to_string()));
        });
        assemble(spool.path(), &Output::File(fifo.clone())).unwrap();
        let read = rx.recv_timeout(std::time::Duration::from_secs(10)).expect("the pipe's reader got the output");
        let read = read.unwrap();
        assert!(read.starts_with("# HELP ") && read.contains("x 1 1\n") && read.ends_with("# EOF\n"), "{read}");
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "still a pipe");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
    }

    #[test]
    fn help_text_is_escaped_for_openmetrics() {
        assert_eq!(help("a \"b\" \\ c\nd"), "a \\\"b\\\" \\\\ c\\nd");
    }
}
