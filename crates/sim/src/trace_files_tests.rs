use std::io::Write;

use super::*;
use crate::recorded::tests::{header, one_run};

fn config(dir: &Path, max_bytes: u64, keep_files: usize) -> TraceFilesConfig {
    TraceFilesConfig {
        dir: dir.join("trace"),
        max_bytes,
        keep_files,
    }
}

fn user(t_ms: u64) -> TraceRecord {
    TraceRecord::User {
        t_ms,
        present: t_ms % 2 == 0,
    }
}

#[test]
fn written_records_read_back_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), 1 << 20, 4);
    let mut w = TraceWriter::open(c.clone(), header(7)).unwrap();
    let recs = one_run(7);
    for r in &recs[1..] {
        w.append(r).unwrap();
    }
    w.flush().unwrap();
    let read = read_files(std::slice::from_ref(&c.dir)).unwrap();
    assert_eq!((read.files, read.torn_lines), (1, 0));
    assert_eq!(read.records, recs);
    assert!(is_trace_file(w.path()) && is_trace_file(&c.dir));
    // Unflushed lines are not in the file yet; flushing writes them.
    w.append(&user(1)).unwrap();
    assert_eq!(
        read_files(&[w.path().to_owned()]).unwrap().records.len(),
        recs.len()
    );
    w.flush().unwrap();
    assert_eq!(
        read_files(&[w.path().to_owned()]).unwrap().records.len(),
        recs.len() + 1
    );
}

#[test]
fn rotation_keeps_the_directory_within_its_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), 64 * 1024, 4);
    assert_eq!(c.file_bytes(), 16 * 1024);
    let mut w = TraceWriter::open(c.clone(), header(0)).unwrap();
    let n = 20_000u64;
    for t in 0..n {
        w.append(&user(t)).unwrap();
    }
    w.flush().unwrap();
    let files = list(&c.dir).unwrap();
    assert_eq!(files.len(), 4, "{files:?}");
    let total: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    let line = serde_json::to_vec(&user(n)).unwrap().len() as u64 + 1;
    assert!(total <= c.max_bytes + 4 * line, "{total} bytes");
    // Every file starts with the header; what is left is the newest
    // records, without a gap.
    let read = read_files(&files).unwrap();
    let times: Vec<u64> = read.records.iter().filter_map(|r| r.t_ms()).collect();
    assert_eq!(*times.last().unwrap(), n - 1);
    assert!(times.windows(2).all(|p| p[1] == p[0] + 1));
    assert!(times.len() > 1_000 && times[0] > 0, "{}", times.len());
    for f in &files {
        let first = read_files(std::slice::from_ref(f)).unwrap().records[0].clone();
        assert_eq!(first, TraceRecord::Header(header(0)));
    }
    // A new writer (the agent restarted) starts a file after the others
    // and drops the oldest.
    let w2 = TraceWriter::open(c.clone(), header(99)).unwrap();
    let again = list(&c.dir).unwrap();
    assert_eq!(again.len(), 4);
    assert_eq!(again.last().unwrap(), w2.path());
    assert_eq!(&again[..3], &files[1..]);
}

#[test]
fn a_torn_last_line_is_skipped_and_a_bad_line_before_it_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let c = config(tmp.path(), 1 << 20, 4);
    let mut w = TraceWriter::open(c.clone(), header(0)).unwrap();
    for t in 0..10 {
        w.append(&user(t)).unwrap();
    }
    w.flush().unwrap();
    let path = w.path().to_owned();
    drop(w);
    // A crash cut the last write short.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(br#"{"kind":"fetch","t_ms":10,"vm":"v"#)
        .unwrap();
    drop(f);
    let read = read_files(std::slice::from_ref(&path)).unwrap();
    assert_eq!((read.records.len(), read.torn_lines), (11, 1));
    // The restarted agent writes a new file; both read, in order.
    let mut w = TraceWriter::open(c.clone(), header(50)).unwrap();
    w.append(&user(3)).unwrap();
    w.flush().unwrap();
    let read = read_files(std::slice::from_ref(&c.dir)).unwrap();
    assert_eq!(
        (read.files, read.records.len(), read.torn_lines),
        (2, 13, 1)
    );
    // Garbage followed by a good line is corruption, not a torn write.
    let mut f = OpenOptions::new().append(true).open(&path).unwrap();
    f.write_all(b"\n{\"kind\":\"user\",\"t_ms\":11,\"present\":true}\n")
        .unwrap();
    drop(f);
    let err = read_files(&[path]).unwrap_err().to_string();
    assert!(err.contains("record 12"), "{err}");
}
