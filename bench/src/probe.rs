//! What the processes cost while a point runs, read from /proc: CPU time (utime + stime) of the
//! service, of PostgreSQL (the postmaster and every process it forked) and of the load generator
//! (this process, or pgbench), the whole machine's busy time, and the service's resident memory.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use procfs::process::Process;
use procfs::{CurrentSI, KernelStats};

/// Clock ticks per second of /proc's CPU times (`sysconf(_SC_CLK_TCK)`; 100 on Linux).
pub fn clock_ticks() -> f64 {
    procfs::ticks_per_second() as f64
}

/// Logical CPUs of the machine.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

#[derive(Debug, Clone, Copy, Default)]
struct ProcStat {
    ppid: u32,
    /// utime + stime of the process (all its threads).
    own: u64,
    /// cutime + cstime: children it has waited for.
    children: u64,
}

impl ProcStat {
    fn of(process: &Process) -> Option<Self> {
        let stat = process.stat().ok()?;
        Some(Self {
            ppid: u32::try_from(stat.ppid).ok()?,
            own: stat.utime + stat.stime,
            children: u64::try_from(stat.cutime + stat.cstime).ok()?,
        })
    }
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    ProcStat::of(&Process::new(i32::try_from(pid).ok()?).ok()?)
}

/// CPU ticks of one process, 0 once it is gone.
fn ticks_of(pid: u32) -> u64 {
    proc_stat(pid).map_or(0, |s| s.own)
}

/// CPU ticks of the PostgreSQL cluster: the postmaster, the processes it has reaped (backends
/// that ended) and every live process it forked (backends, walwriter, checkpointer, ...).
fn postgres_ticks(postmaster: u32) -> u64 {
    let Some(master) = proc_stat(postmaster) else { return 0 };
    let forked: u64 = procfs::process::all_processes()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|process| ProcStat::of(&process))
        .filter(|stat| stat.ppid == postmaster)
        .map(|stat| stat.own)
        .sum();
    master.own + master.children + forked
}

/// Busy and total ticks of the whole machine, all cores, from /proc/stat.
fn machine_ticks() -> (u64, u64) {
    let Ok(stats) = KernelStats::current() else { return (0, 0) };
    let t = stats.total;
    let extra = |ticks: Option<u64>| ticks.unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = t.user + t.nice + t.system + extra(t.irq) + extra(t.softirq) + extra(t.steal);
    (busy, busy + t.idle + extra(t.iowait))
}

/// How busy the whole machine is over `window`, as a percentage of all cores: taken before the
/// run starts anything, it tells whether something else is using the machine.
pub fn machine_busy_over(window: Duration) -> f64 {
    let (busy0, total0) = machine_ticks();
    std::thread::sleep(window);
    let (busy1, total1) = machine_ticks();
    let total = total1.saturating_sub(total0);
    if total == 0 { 0.0 } else { busy1.saturating_sub(busy0) as f64 / total as f64 * 100.0 }
}

/// Resident memory of a process in KiB (`VmRSS` of /proc/PID/status).
pub fn rss_kib(pid: u32) -> Option<u64> {
    Process::new(i32::try_from(pid).ok()?).ok()?.status().ok()?.vmrss
}

/// Which processes to account for.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    /// The service under load, if the point has one.
    pub service: Option<u32>,
    /// The load generator: this process, or the pgbench child.
    pub generator: u32,
    /// The cluster's postmaster.
    pub postmaster: u32,
}

#[derive(Debug, Clone, Copy)]
struct Snapshot {
    at: Instant,
    service: u64,
    postgres: u64,
    generator: u64,
    machine_busy: u64,
    machine_total: u64,
}

impl Snapshot {
    fn take(watch: &Watch) -> Self {
        let (machine_busy, machine_total) = machine_ticks();
        Self {
            at: Instant::now(),
            service: watch.service.map_or(0, ticks_of),
            postgres: postgres_ticks(watch.postmaster),
            generator: ticks_of(watch.generator),
            machine_busy,
            machine_total,
        }
    }
}

/// CPU used during a point, each as a percentage of the whole machine (100% = every core busy
/// for the whole window). `other` is what the machine spent beyond the three: the idle
/// services, the kernel's work for nobody in particular, and anything else running here.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuShare {
    pub service: f64,
    pub postgres: f64,
    pub generator: f64,
    pub other: f64,
}

/// What was observed during a point.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observation {
    pub cpu: CpuShare,
    /// Highest sampled RSS of the service, KiB.
    pub service_rss_max_kib: Option<u64>,
}

/// Watches the processes from `from` to `to` on a thread of its own: CPU at both ends, the
/// service's RSS every 100 ms in between.
pub fn observe(watch: Watch, from: Instant, to: Instant) -> JoinHandle<Observation> {
    std::thread::spawn(move || {
        let ticks_per_s = clock_ticks();
        let cores = cores() as f64;
        std::thread::sleep(from.saturating_duration_since(Instant::now()));
        let start = Snapshot::take(&watch);
        let mut rss_max: Option<u64> = None;
        loop {
            if let Some(rss) = watch.service.and_then(rss_kib) {
                rss_max = Some(rss_max.map_or(rss, |m| m.max(rss)));
            }
            let left = to.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
        let end = Snapshot::take(&watch);
        let seconds = end.at.duration_since(start.at).as_secs_f64().max(1e-3);
        let share = |delta: u64| delta as f64 / ticks_per_s / seconds / cores * 100.0;
        let service = share(end.service.saturating_sub(start.service));
        let postgres = share(end.postgres.saturating_sub(start.postgres));
        let generator = share(end.generator.saturating_sub(start.generator));
        let busy = end.machine_busy.saturating_sub(start.machine_busy) as f64;
        let total = end.machine_total.saturating_sub(start.machine_total) as f64;
        let machine = if total > 0.0 { busy / total * 100.0 } else { 0.0 };
        let other = (machine - service - postgres - generator).max(0.0);
        Observation { cpu: CpuShare { service, postgres, generator, other }, service_rss_max_kib: rss_max }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        let stat = proc_stat(me).expect("own stat");
        assert!(stat.ppid > 0);
        assert!(rss_kib(me).expect("own rss") > 0);
        let (busy, total) = machine_ticks();
        assert!(total >= busy && total > 0);
    }
}
