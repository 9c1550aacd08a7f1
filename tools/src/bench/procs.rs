//! The ingest and aggregator processes under test: started from the release binaries with a
//! bench configuration of their own (throwaway topics and database), measured through /proc
//! (CPU seconds, peak RSS), and stopped by their process id.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ToolsError;

/// A service process this bench started.
pub struct Service {
    child: Child,
    /// Where it answers HTTP (`http://127.0.0.1:PORT`).
    pub url: String,
}

/// CPU time (user + system) and memory of a process, from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub cpu_secs: f64,
    /// Peak resident set size so far (VmHWM), bytes.
    pub peak_rss: u64,
}

impl Service {
    /// Starts `bin` with `args` and waits until `ready_path` answers 200.
    pub async fn start(
        name: &'static str,
        bin: &Path,
        args: &[&str],
        port: u16,
        ready_path: &str,
        log: &Path,
    ) -> Result<Self, ToolsError> {
        let log_file = std::fs::File::create(log)?;
        let child = Command::new(bin)
            .args(args)
            .env("UPTAKE_LOG_FORMAT", "json")
            .env("RUST_LOG", std::env::var("SERVICES_RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| ToolsError::Setup(format!("starting {}: {e}", bin.display())))?;
        let mut service = Self { child, url: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        let ready = format!("{}{ready_path}", service.url);
        loop {
            if let Some(status) = service.child.try_wait()? {
                return Err(ToolsError::Setup(format!(
                    "{name} exited ({status}) during start-up; see {}",
                    log.display()
                )));
            }
            if reqwest::get(&ready).await.is_ok_and(|r| r.status().is_success()) {
                return Ok(service);
            }
            if Instant::now() > deadline {
                service.stop();
                return Err(ToolsError::Setup(format!("{name} not ready within 60 s; see {}", log.display())));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds used so far and the peak RSS.
    pub fn usage(&self) -> Usage {
        usage(self.pid())
    }

    /// SIGKILL, by this process's own handle: a crash, no drain, no flush.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a graceful stop: the services drain), then SIGKILL after 15 s. By pid only.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// User + system CPU seconds and VmHWM of `pid`; zeros when it is gone.
pub fn usage(pid: u32) -> Usage {
    let ticks = clock_ticks();
    let cpu_secs = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command name (which may hold spaces) in parentheses.
            let rest = stat.rsplit_once(") ")?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .unwrap_or(0.0);
    let peak_rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
            let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024)
        })
        .unwrap_or(0);
    Usage { cpu_secs, peak_rss }
}

/// Resets this process's peak RSS (VmHWM) to its current RSS (Linux ≥ 4.0), so that a phase
/// run in-process can read its own peak afterwards with `usage(std::process::id())`.
pub fn reset_own_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Clock ticks per second of /proc/PID/stat times (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A free local port (bound, then released for the service to take).
pub fn free_port() -> Result<u16, ToolsError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The release binaries: `target/release` next to this executable, or `--bin-dir`.
pub fn binary(dir: &Path, name: &str) -> Result<PathBuf, ToolsError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ToolsError::Setup(format!("{} not found: build with `cargo build --release --bins`", path.display())))
    }
}
