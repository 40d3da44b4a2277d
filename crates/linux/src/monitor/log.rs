//! CRI log files: `<RFC3339Nano timestamp> <stream> <F|P> <content>\n` per line.
//!
//! Matches containerd's CRI logger (pkg/cri/io/logger.go): a line ends at `\n` (a `\r`
//! before it is dropped) and is tagged F; content longer than 16 KiB is cut into P lines of
//! exactly 16 KiB, the remainder ending with F; at EOF a last line without a newline is
//! written with P. Each record is one `write` on an O_APPEND file, so stdout and stderr
//! records never interleave mid-line.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// containerd's default `max_container_log_line_size`.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A container's log file; none when the container's output is discarded.
#[derive(Debug)]
pub struct LogFile {
    path: Option<PathBuf>,
    file: Option<File>,
}

impl LogFile {
    pub fn open(path: Option<PathBuf>) -> std::io::Result<Self> {
        let mut log = LogFile { path, file: None };
        log.reopen()?;
        Ok(log)
    }

    /// A log that drops everything.
    pub fn discard() -> Self {
        LogFile {
            path: None,
            file: None,
        }
    }

    /// Opens the path again: after the kubelet renamed the file away, this creates a new
    /// one (the old handle is closed).
    pub fn reopen(&mut self) -> std::io::Result<()> {
        self.file = None;
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)?;
        self.file = Some(file);
        Ok(())
    }

    fn write_record(&mut self, stream: Stream, partial: bool, content: &[u8]) {
        let Some(file) = &mut self.file else {
            return;
        };
        let mut rec = Vec::with_capacity(content.len() + 48);
        rec.extend_from_slice(timestamp(SystemTime::now()).as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(stream.name().as_bytes());
        rec.extend_from_slice(if partial { b" P " } else { b" F " });
        rec.extend_from_slice(content);
        rec.push(b'\n');
        // A failed write (disk full) drops the record but the pipe keeps being drained, so
        // the container never blocks on its output (containerd does the same).
        let _ = file.write_all(&rec);
    }
}

/// Cuts one stream's bytes into log records.
#[derive(Debug)]
pub struct LineSplitter {
    stream: Stream,
    /// The current line so far (without its newline).
    buf: Vec<u8>,
}

impl LineSplitter {
    pub fn new(stream: Stream) -> Self {
        LineSplitter {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn feed(&mut self, mut data: &[u8], log: &mut LogFile) {
        while let Some(nl) = data.iter().position(|b| *b == b'\n') {
            self.buf.extend_from_slice(&data[..nl]);
            data = &data[nl + 1..];
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            self.cut(MAX_LINE, log);
            log.write_record(self.stream, false, &self.buf);
            self.buf.clear();
        }
        self.buf.extend_from_slice(data);
        // One byte of slack: a trailing '\r' may still turn out to precede a newline.
        if self.buf.len() > MAX_LINE + 1 {
            self.cut(MAX_LINE + 1, log);
        }
    }

    /// End of the stream: what is left has no newline and is written as partial.
    pub fn finish(&mut self, log: &mut LogFile) {
        if self.buf.is_empty() {
            return;
        }
        self.cut(MAX_LINE, log);
        log.write_record(self.stream, true, &self.buf);
        self.buf.clear();
    }

    /// Writes 16 KiB partial records while more than `keep` bytes are buffered.
    fn cut(&mut self, keep: usize, log: &mut LogFile) {
        let mut start = 0;
        while self.buf.len() - start > keep {
            log.write_record(self.stream, true, &self.buf[start..start + MAX_LINE]);
            start += MAX_LINE;
        }
        self.buf.drain(..start);
    }
}

/// RFC 3339 in UTC with nanoseconds, e.g. `2024-05-01T12:00:00.000000001Z`.
pub fn timestamp(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day): H. Hinnant's civil_from_days.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn records(chunks: &[&[u8]]) -> Vec<(String, String, usize, Vec<u8>)> {
        let dir = tempfile::Builder::new()
            .prefix("berth-log")
            .tempdir()
            .unwrap();
        let path = dir.path().join("c.log");
        let mut log = LogFile::open(Some(path.clone())).unwrap();
        let mut s = LineSplitter::new(Stream::Stdout);
        for c in chunks {
            s.feed(c, &mut log);
        }
        s.finish(&mut log);
        let text = std::fs::read(&path).unwrap();
        text.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let mut it = l.splitn(4, |b| *b == b' ');
                let ts = String::from_utf8(it.next().unwrap().to_vec()).unwrap();
                let stream = String::from_utf8(it.next().unwrap().to_vec()).unwrap();
                let tag = String::from_utf8(it.next().unwrap().to_vec()).unwrap();
                let content = it.next().unwrap_or_default().to_vec();
                (stream, tag, ts.len(), content)
            })
            .collect()
    }

    #[test]
    fn lines_partials_and_eof() {
        let long = vec![b'x'; MAX_LINE * 2 + 5];
        let mut input = b"hello\r\nwor".to_vec();
        let r = records(&[&input, b"ld\n", &long, b"\n", b"tail"]);
        input.clear();
        let tags: Vec<(&str, usize)> = r.iter().map(|x| (x.1.as_str(), x.3.len())).collect();
        assert_eq!(
            tags,
            vec![
                ("F", 5),
                ("F", 5),
                ("P", MAX_LINE),
                ("P", MAX_LINE),
                ("F", 5),
                ("P", 4)
            ]
        );
        assert_eq!(r[0].3, b"hello");
        assert_eq!(r[1].3, b"world");
        assert!(r.iter().all(|x| x.0 == "stdout" && x.2 == 30));
    }

    #[test]
    fn exact_max_line_is_full_and_empty_line_kept() {
        let mut line = vec![b'y'; MAX_LINE];
        line.extend_from_slice(b"\r\n\n");
        let r = records(&[&line]);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].1.as_str(), r[0].3.len()), ("F", MAX_LINE));
        assert_eq!((r[1].1.as_str(), r[1].3.len()), ("F", 0));
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_709_251_199, 123_456_789);
        assert_eq!(timestamp(t), "2024-02-29T23:59:59.123456789Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(timestamp(t), "2000-02-29T00:00:00.000000000Z");
    }
}
