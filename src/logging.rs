//! Logging set-up: `tracing` to stdout and/or a size-rotated file. Both sinks write
//! through `tracing-appender`'s non-blocking worker, so a slow disk or terminal never
//! stalls a shard; and the panic policy: any panic aborts the process.
//!
//! Used by both binaries; depends on the configuration model only.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::config::{log_level, Log};

/// A file that is renamed to `<path>.1` (shifting older ones up to `<path>.<keep>`)
/// when it would grow past `max` bytes.
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
    keep: u32,
}

impl RotatingFile {
    /// # Errors
    /// The parent folder cannot be created or the file cannot be opened.
    pub fn open(path: impl Into<PathBuf>, max: u64, keep: u32) -> io::Result<Self> {
        let path = path.into();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path,
            file,
            size,
            max,
            keep,
        })
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.keep == 0 {
            self.file.set_len(0)?;
        } else {
            for n in (1..self.keep).rev() {
                let from = self.numbered(n);
                if from.exists() {
                    fs::rename(&from, self.numbered(n + 1))?;
                }
            }
            fs::rename(&self.path, self.numbered(1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Installs the global subscriber. Keep the guards alive until exit so buffered lines
/// are flushed.
///
/// # Errors
/// The log file cannot be opened.
/// Makes any panic end the whole process (after the usual message on stderr and a log
/// line), so that a supervisor restarts it. A panicking shard thread would otherwise leave
/// a half-alive process: admin API answering, a share of client connections hanging.
pub fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        let thread = std::thread::current();
        tracing::error!(thread = thread.name().unwrap_or("?"), %info, "panic: aborting the process");
        std::process::abort();
    }));
}

pub fn init(conf: &Log) -> io::Result<Vec<WorkerGuard>> {
    let level = log_level(&conf.debug_level).unwrap_or(tracing::Level::INFO);
    let mut guards = Vec::new();
    let stdout = if conf.log_to_stdout {
        let (w, g) = tracing_appender::non_blocking(io::stdout());
        guards.push(g);
        Some(w)
    } else {
        None
    };
    let file = if conf.log_to_file.is_empty() {
        None
    } else {
        let f = RotatingFile::open(&conf.log_to_file, conf.log_file_size, conf.log_file_rotate)?;
        let (w, g) = tracing_appender::non_blocking(f);
        guards.push(g);
        Some(w)
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_thread_names(true)
        .with_ansi(false);
    let _ = match (stdout, file) {
        (Some(s), Some(f)) => builder.with_writer(s.and(f)).try_init(),
        (Some(s), None) => builder.with_writer(s).try_init(),
        (None, Some(f)) => builder.with_writer(f).try_init(),
        (None, None) => builder.with_writer(io::sink).try_init(),
    };
    Ok(guards)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/proxy.log");
        let mut f = RotatingFile::open(&p, 10, 2).unwrap();
        for _ in 0..5 {
            f.write_all(b"12345678\n").unwrap();
        }
        assert!(p.exists());
        assert!(dir.path().join("sub/proxy.log.1").exists());
        assert!(dir.path().join("sub/proxy.log.2").exists());
        assert!(!dir.path().join("sub/proxy.log.3").exists());
        assert_eq!(fs::read(&p).unwrap().len(), 9);
    }
}
