//! Readings from `/proc`: CPU time and resident memory of the processes under test.
//!
//! The load client shares two cores with the targets, so its own timings are blurred by
//! scheduling; the CPU a proxy spends per request or per byte, read from the kernel's
//! accounting, is the figure it cannot blur.
//!
//! CPU time is each thread's on-CPU time in nanoseconds (`/proc/PID/task/TID/schedstat`, the
//! runtime utime + stime are scaled from), summed per thread across a window. utime + stime in
//! `/proc/PID/stat` count in 10 ms clock ticks, too coarse for a few dozen container creates.
//! A thread that exits inside a window loses its time in that window; the targets' threads
//! live long (tokio's blocking threads leave only after 10 s idle), so that is noise.

use std::collections::HashMap;
use std::fs;
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

    /// On-CPU nanoseconds of every thread of the set, by thread ID.
    fn thread_cpu(&self) -> HashMap<u32, u64> {
        let mut threads = HashMap::new();
        for pid in self.pids() {
            let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
                continue;
            };
            for tid in tasks.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
                let ns = fs::read_to_string(format!("/proc/{pid}/task/{tid}/schedstat"))
                    .ok()
                    .and_then(|s| s.split_whitespace().next()?.parse().ok());
                if let Some(ns) = ns {
                    threads.insert(tid, ns);
                }
            }
        }
        threads
    }

    /// Resident set size in KiB, summed over the set.
    pub fn rss_kib(&self) -> u64 {
        self.pids().into_iter().map(rss_kib).sum()
    }
}

/// The fields of `/proc/PID/stat` after the parenthesised command name, which may contain
/// spaces: field 3 (state) is at index 0.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
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
    start: HashMap<u32, u64>,
}

impl CpuWindow {
    pub fn start(procs: &Procs) -> CpuWindow {
        CpuWindow {
            procs: procs.clone(),
            start: procs.thread_cpu(),
        }
    }

    /// CPU used since the start by the threads alive now.
    pub fn elapsed(&self) -> Duration {
        let ns: u64 = self
            .procs
            .thread_cpu()
            .into_iter()
            .map(|(tid, now)| now.saturating_sub(self.start.get(&tid).copied().unwrap_or(0)))
            .sum();
        Duration::from_nanos(ns)
    }
}
