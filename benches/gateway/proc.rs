//! Readings from `/proc`: CPU time and resident memory of the processes under test.
//!
//! The load client shares two cores with the targets, so its own timings are blurred by
//! scheduling; the CPU a proxy spends per request or per byte, read from the kernel's
//! accounting, is the figure it cannot blur. Only `/proc/PID/stat` and `/proc/PID/status`
//! are read: utime + stime include the process's exited threads, unlike per-thread
//! counters.

use std::fs;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// A set of processes measured together: one process, or nginx's master and its workers.
#[derive(Debug, Clone)]
pub struct Procs {
    root: u32,
    /// Include the direct children of `root` (nginx's workers).
    with_children: bool,
}

impl Procs {
    pub fn one(pid: u32) -> Procs {
        Procs {
            root: pid,
            with_children: false,
        }
    }

    pub fn with_children(pid: u32) -> Procs {
        Procs {
            root: pid,
            with_children: true,
        }
    }

    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.root];
        if self.with_children {
            pids.extend(children(self.root));
        }
        pids
    }

    /// utime + stime of every process of the set.
    pub fn cpu(&self) -> Duration {
        let ticks: u64 = self.pids().into_iter().map(cpu_ticks).sum();
        Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64)
    }

    /// Resident set size in KiB, summed over the set.
    pub fn rss_kib(&self) -> u64 {
        self.pids().into_iter().map(rss_kib).sum()
    }
}

/// The kernel's clock tick (`getconf CLK_TCK`), the unit of utime and stime.
pub fn clock_ticks() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The fields of `/proc/PID/stat` after the parenthesised command name, which may contain
/// spaces: field 3 (state) is at index 0.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// utime (field 14) + stime (field 15) in clock ticks; 0 for a process that is gone.
fn cpu_ticks(pid: u32) -> u64 {
    let Some(fields) = stat_fields(pid) else {
        return 0;
    };
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Processes whose parent (field 4) is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            stat_fields(child).and_then(|f| f.get(1).and_then(|p| p.parse::<u32>().ok()))
                == Some(pid)
        })
        .collect()
}

/// CPU time of a set of processes across one measured workload.
pub struct CpuWindow {
    procs: Procs,
    start: Duration,
}

impl CpuWindow {
    pub fn start(procs: &Procs) -> CpuWindow {
        CpuWindow {
            procs: procs.clone(),
            start: procs.cpu(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.procs.cpu().saturating_sub(self.start)
    }
}
