//! Trace files: an agent's [`TraceRecord`]s as JSON lines, bounded and
//! rotated ([`TraceWriter`]), and read back in order ([`read_files`]).
//!
//! * A writer starts a new file each time it is opened (one per agent
//!   run), named `trace-NNNNNNNN.jsonl` with a sequence number above every
//!   file already in the directory, and starts another when the current
//!   one would grow past its share of the budget (`max_bytes /
//!   keep_files`). Every file begins with the header, so each can be read
//!   alone. After opening a file it deletes the oldest ones beyond
//!   `keep_files`: the directory stays within `max_bytes` (give or take
//!   one line).
//! * Lines are buffered; [`TraceWriter::flush`] writes them out (the agent
//!   flushes on its power loop's tick and before a sleep).
//! * Crash-tolerant reading: the last line of a file that does not parse
//!   (a write cut short) is skipped and counted; a bad line anywhere else
//!   is an error.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::recorded::{TraceHeader, TraceRecord};
use crate::SimError;

/// File names: `trace-` + sequence number + this.
const SUFFIX: &str = ".jsonl";
const PREFIX: &str = "trace-";

/// Where and how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceFilesConfig {
    /// The directory (created if missing).
    pub dir: PathBuf,
    /// The directory's budget, bytes.
    pub max_bytes: u64,
    /// Files kept (at least 2: the one being written and one before it).
    pub keep_files: usize,
}

impl TraceFilesConfig {
    /// The size at which a file is closed and the next one started.
    pub fn file_bytes(&self) -> u64 {
        (self.max_bytes / self.keep_files.max(2) as u64).max(4096)
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The trace files in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>, SimError> {
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let seq = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|n| n.strip_suffix(SUFFIX))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(seq) = seq {
            files.push((seq, entry.path()));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|f| f.1).collect())
}

fn seq_of(path: &Path) -> u64 {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?.parse().ok())
        .unwrap_or(0)
}

/// Appends records to the current file of a trace directory.
#[derive(Debug)]
pub struct TraceWriter {
    config: TraceFilesConfig,
    header: TraceHeader,
    path: PathBuf,
    file: BufWriter<File>,
    bytes: u64,
    seq: u64,
}

impl TraceWriter {
    /// Starts a new file in `config.dir` with `header`.
    pub fn open(config: TraceFilesConfig, header: TraceHeader) -> Result<Self, SimError> {
        std::fs::create_dir_all(&config.dir).map_err(io_err(&config.dir))?;
        let seq = list(&config.dir)?.last().map_or(0, |p| seq_of(p) + 1);
        let (path, file) = Self::create(&config.dir, seq)?;
        let mut w = Self {
            config,
            header,
            path,
            file,
            bytes: 0,
            seq,
        };
        w.start_file()?;
        Ok(w)
    }

    fn create(dir: &Path, seq: u64) -> Result<(PathBuf, BufWriter<File>), SimError> {
        let path = dir.join(format!("{PREFIX}{seq:08}{SUFFIX}"));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        Ok((path, BufWriter::new(file)))
    }

    /// Writes the header into the fresh file and prunes old files.
    fn start_file(&mut self) -> Result<(), SimError> {
        let header = TraceRecord::Header(self.header.clone());
        self.write_line(&header)?;
        self.flush()?;
        let files = list(&self.config.dir)?;
        let extra = files.len().saturating_sub(self.config.keep_files.max(2));
        for old in &files[..extra] {
            std::fs::remove_file(old).map_err(io_err(old))?;
        }
        Ok(())
    }

    fn write_line(&mut self, record: &TraceRecord) -> Result<(), SimError> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(io_err(&self.path))?;
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Appends `record`, starting the next file first if this one is full.
    pub fn append(&mut self, record: &TraceRecord) -> Result<(), SimError> {
        if self.bytes >= self.config.file_bytes() {
            self.flush()?;
            self.seq += 1;
            let (path, file) = Self::create(&self.config.dir, self.seq)?;
            (self.path, self.file, self.bytes) = (path, file, 0);
            self.start_file()?;
        }
        self.write_line(record)
    }

    /// Writes the buffered lines to the file.
    pub fn flush(&mut self) -> Result<(), SimError> {
        self.file.flush().map_err(io_err(&self.path))
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What [`read_files`] read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReadTrace {
    /// The records, files in the order given.
    pub records: Vec<TraceRecord>,
    /// Files read.
    pub files: usize,
    /// Torn last lines skipped.
    pub torn_lines: usize,
}

/// Reads trace files in order (a directory stands for its trace files,
/// oldest first). A file's last line that does not parse is skipped.
pub fn read_files(paths: &[PathBuf]) -> Result<ReadTrace, SimError> {
    let mut out = ReadTrace::default();
    for path in paths {
        if path.is_dir() {
            let inner = read_files(&list(path)?)?;
            out.records.extend(inner.records);
            out.files += inner.files;
            out.torn_lines += inner.torn_lines;
            continue;
        }
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        let lines: Vec<&[u8]> = bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.iter().all(|b| b.is_ascii_whitespace() || *b == 0))
            .collect();
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_slice::<TraceRecord>(line) {
                Ok(r) => out.records.push(r),
                Err(_) if i + 1 == lines.len() => out.torn_lines += 1,
                Err(e) => {
                    return Err(SimError::Invalid(format!(
                        "{}: record {}: {e}",
                        path.display(),
                        i + 1
                    )))
                }
            }
        }
        out.files += 1;
    }
    Ok(out)
}

/// Whether `path` holds trace records (a directory, or a file whose first
/// line is a record) rather than a fleet trace.
pub fn is_trace_file(path: &Path) -> bool {
    if path.is_dir() {
        return true;
    }
    use std::io::BufRead;
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut first = String::new();
    std::io::BufReader::new(file).read_line(&mut first).is_ok()
        && serde_json::from_str::<TraceRecord>(&first).is_ok()
}

#[cfg(test)]
#[path = "trace_files_tests.rs"]
mod tests;
