//! What the gateway harness reads from `/proc`: a process's resident memory and CPU time, and
//! the machine's CPU split (including steal).

use std::time::Duration;

use anyhow::Context;

/// Clock ticks per second for `/proc/*/stat` times (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// The RSS split of `/proc/PID/status` (`RssAnon`, `RssFile`), in KiB, when the kernel shows it.
pub fn rss_anon_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Threads of a process.
pub fn threads(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

/// User + system CPU time of a process, in clock ticks (fields 14 and 15 of `/proc/PID/stat`).
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    cpu_split(pid).map(|(u, s)| u + s)
}

/// User and system CPU time of a process, in clock ticks.
/// [`cpu_split`] summed over several processes (the nodes of a cluster).
pub fn cpu_split_all(pids: &[u32]) -> anyhow::Result<(u64, u64)> {
    pids.iter().try_fold((0, 0), |(u, s), pid| {
        let (pu, ps) = cpu_split(*pid)?;
        Ok((u + pu, s + ps))
    })
}

pub fn cpu_split(pid: u32) -> anyhow::Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may contain spaces; everything after its closing paren is
    // space-separated, starting with field 3.
    let rest = text
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields
        .get(11)
        .and_then(|v| v.parse().ok())
        .context("utime")?;
    let stime: u64 = fields
        .get(12)
        .and_then(|v| v.parse().ok())
        .context("stime")?;
    Ok((utime, stime))
}

/// Machine-wide CPU jiffies from the `cpu` line of `/proc/stat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct MachineCpu {
    pub user: u64,
    pub system: u64,
    pub idle: u64,
    pub steal: u64,
}

impl MachineCpu {
    pub fn read() -> anyhow::Result<MachineCpu> {
        let text = std::fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        let line = text
            .lines()
            .find(|l| l.starts_with("cpu "))
            .context("no cpu line in /proc/stat")?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap_or(0))
            .collect();
        let f = |i: usize| v.get(i).copied().unwrap_or(0);
        Ok(MachineCpu {
            user: f(0) + f(1),
            system: f(2) + f(5) + f(6),
            idle: f(3) + f(4),
            steal: f(7),
        })
    }

    /// Shares (percent) of user, system, idle and steal between two readings.
    pub fn shares_since(&self, before: &MachineCpu) -> [f64; 4] {
        let d = [
            self.user.saturating_sub(before.user),
            self.system.saturating_sub(before.system),
            self.idle.saturating_sub(before.idle),
            self.steal.saturating_sub(before.steal),
        ];
        let total: u64 = d.iter().sum();
        if total == 0 {
            return [0.0; 4];
        }
        d.map(|x| 100.0 * x as f64 / total as f64)
    }
}

/// CPU used by the server and by this process over a window, with the machine's split.
#[derive(Clone, Copy, Debug)]
pub struct CpuWindow {
    server: (u64, u64),
    me: u64,
    machine: MachineCpu,
    at: std::time::Instant,
}

/// The CPU a window used.
#[derive(Clone, Copy, Debug)]
pub struct CpuUsed {
    pub wall: Duration,
    pub server_s: f64,
    /// The part of `server_s` spent in the kernel (on loopback this includes much of the
    /// receiving side's TCP work, done in the sender's system call).
    pub server_sys_s: f64,
    pub generator_s: f64,
    /// CPU used by everything else on the machine (other processes, kernel threads).
    pub others_s: f64,
    /// user, system, idle, steal (percent of the machine).
    pub machine: [f64; 4],
}

impl CpuWindow {
    /// Starts a window over the server processes `server_pids` (their CPU is summed).
    pub fn start(server_pids: &[u32]) -> anyhow::Result<CpuWindow> {
        Ok(CpuWindow {
            server: cpu_split_all(server_pids)?,
            me: cpu_ticks(std::process::id())?,
            machine: MachineCpu::read()?,
            at: std::time::Instant::now(),
        })
    }

    pub fn end(&self, server_pids: &[u32], ticks: u64) -> anyhow::Result<CpuUsed> {
        let t = ticks as f64;
        let (u, s) = cpu_split_all(server_pids)?;
        let server = (u + s).saturating_sub(self.server.0 + self.server.1) as f64 / t;
        let generator = cpu_ticks(std::process::id())?.saturating_sub(self.me) as f64 / t;
        let machine = MachineCpu::read()?;
        let busy = |m: &MachineCpu| m.user + m.system;
        // /proc/stat counts in USER_HZ, the same unit as /proc/PID/stat.
        let machine_busy = busy(&machine).saturating_sub(busy(&self.machine)) as f64 / t;
        Ok(CpuUsed {
            wall: self.at.elapsed(),
            server_s: server,
            server_sys_s: s.saturating_sub(self.server.1) as f64 / t,
            generator_s: generator,
            others_s: (machine_busy - server - generator).max(0.0),
            machine: machine.shares_since(&self.machine),
        })
    }
}

impl CpuUsed {
    pub fn describe(&self) -> String {
        let w = self.wall.as_secs_f64().max(1e-9);
        format!(
            "{:.2} s wall: server {:.2} CPU-s ({:.0}% of one core; {:.0}% of it system), generator {:.2} CPU-s ({:.0}%), rest of machine (other processes, interrupts) {:.2} CPU-s ({:.0}%); machine user {:.0}% system {:.0}% idle {:.0}% steal {:.0}%",
            w,
            self.server_s,
            100.0 * self.server_s / w,
            100.0 * self.server_sys_s / self.server_s.max(1e-9),
            self.generator_s,
            100.0 * self.generator_s / w,
            self.others_s,
            100.0 * self.others_s / w,
            self.machine[0],
            self.machine[1],
            self.machine[2],
            self.machine[3],
        )
    }
}

/// The soft limit on open files of this process (`Max open files` in `/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
