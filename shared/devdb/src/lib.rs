#![doc = include_str!("../README.md")]

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh cluster may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DevDbError {
    #[error(
        "PostgreSQL server binaries not found (looked in PG_BIN_DIR, /usr/lib/postgresql/*/bin and PATH): install the PostgreSQL server package"
    )]
    BinariesNotFound,
    #[error("running as root, but there is no `postgres` user to run PostgreSQL as (PostgreSQL refuses root)")]
    NoPostgresUser,
    #[error("{step} failed: {detail}")]
    Step { step: &'static str, detail: String },
}

/// A server process under a supervisor shell that stops it and deletes its directory once
/// the owner lets go: on drop, on exit, or when the owner is killed.
#[derive(Debug)]
struct Supervised {
    dir: PathBuf,
    supervisor: Child,
    lifeline: Option<ChildStdin>,
}

impl Supervised {
    fn start(server: Command, dir: PathBuf, stop_signal: &str) -> Result<Self, DevDbError> {
        let mut supervisor = supervise(server, &dir, stop_signal)?;
        let lifeline = supervisor.stdin.take();
        Ok(Self { dir, supervisor, lifeline })
    }

    fn exited(&mut self) -> bool {
        self.supervisor.try_wait().ok().flatten().is_some()
    }

    fn log(&self) -> String {
        let mut log = String::new();
        let _ = std::fs::File::open(self.dir.join("server.log")).and_then(|mut f| f.read_to_string(&mut log));
        log
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // Closing the lifeline tells the supervisor to stop the server and delete the files.
        drop(self.lifeline.take());
        let _ = self.supervisor.wait();
    }
}

/// A running throwaway cluster. Dropping it stops the server and deletes its files.
#[derive(Debug)]
pub struct Cluster {
    port: u16,
    server: Supervised,
}

impl Cluster {
    /// Creates, starts and waits for a new cluster tuned for speed (`fsync=off`).
    pub fn start() -> Result<Self, DevDbError> {
        Self::start_with(&[])
    }

    /// Like `start`, with server settings (`name`, `value`) applied after the defaults, so they
    /// win: a benchmark passes `fsync=on`, `synchronous_commit=on`, `full_page_writes=on` to
    /// measure PostgreSQL as production runs it.
    pub fn start_with(settings: &[(&str, &str)]) -> Result<Self, DevDbError> {
        let bin = find_bin_dir().ok_or(DevDbError::BinariesNotFound)?;
        let as_root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        let dir = std::env::temp_dir().join(format!("events-pg-{}-{}", std::process::id(), unique_suffix()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| step("creating the cluster directory", e))?;
        if as_root {
            run(Command::new("chown").arg("postgres:postgres").arg(&dir), "chown to the postgres user")
                .map_err(|_| DevDbError::NoPostgresUser)?;
        }
        let data = dir.join("data");
        let mut initdb = server_command(as_root, &bin.join("initdb"));
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]);
        if let Err(err) = run(&mut initdb, "initdb") {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(err);
        }

        let port = free_port().map_err(|e| step("finding a free port", e))?;
        let mut postgres = server_command(as_root, &bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=300", "-c", "log_min_messages=warning"]);
        for (name, value) in settings {
            postgres.arg("-c").arg(format!("{name}={value}"));
        }
        let mut cluster = Self { port, server: Supervised::start(postgres, dir, "INT")? };
        cluster.wait_until_ready(&bin)?;
        Ok(cluster)
    }

    /// A URL for `database` on this cluster, as the superuser `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The TCP port the server listens on (loopback only).
    pub fn port(&self) -> u16 {
        self.port
    }

    fn wait_until_ready(&mut self, bin: &Path) -> Result<(), DevDbError> {
        let started = Instant::now();
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-d", "postgres"])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if self.server.exited() || started.elapsed() > START_TIMEOUT {
                return Err(DevDbError::Step {
                    step: "starting postgres",
                    detail: format!("not ready after {:?}; server log:\n{}", started.elapsed(), self.server.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts `server` under a shell that stops it with `stop_signal` and removes `dir` once its
/// stdin closes.
fn supervise(server: Command, dir: &Path, stop_signal: &str) -> Result<Child, DevDbError> {
    const SCRIPT: &str = r#"
dir=$1; signal=$2; shift 2
"$@" >"$dir/server.log" 2>&1 </dev/null &
server=$!
# Returns when the owner closes the pipe: on drop, on exit, or when it is killed.
while read -r _; do :; done
kill -"$signal" "$server" 2>/dev/null
wait "$server"
rm -rf "$dir"
"#;
    let program = server.get_program().to_owned();
    let args: Vec<_> = server.get_args().map(ToOwned::to_owned).collect();
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("devdb-supervisor")
        .arg(dir)
        .arg(stop_signal)
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a terminal's Ctrl-C goes to the owner, not to the server.
        .process_group(0)
        .spawn()
        .map_err(|e| step("starting the supervisor shell", e))
}

/// Where the gcloud SDK keeps the Pub/Sub emulator.
const PUBSUB_EMULATOR: &str = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator";

/// A running Pub/Sub emulator (from the installed gcloud SDK) on a free loopback port.
/// Dropping it stops the emulator and deletes its data.
#[derive(Debug)]
pub struct PubSubEmulator {
    port: u16,
    _server: Supervised,
}

impl PubSubEmulator {
    /// Starts the emulator and waits until it answers (a JVM: several seconds).
    pub fn start() -> Result<Self, DevDbError> {
        let program =
            std::env::var_os("PUBSUB_EMULATOR_BIN").map_or_else(|| PathBuf::from(PUBSUB_EMULATOR), PathBuf::from);
        if !program.is_file() {
            return Err(DevDbError::Step {
                step: "finding the Pub/Sub emulator",
                detail: format!("{} is missing: install the gcloud SDK's pubsub-emulator component", program.display()),
            });
        }
        let dir = std::env::temp_dir().join(format!("events-pubsub-{}-{}", std::process::id(), unique_suffix()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(|e| step("creating the emulator directory", e))?;
        let port = free_port().map_err(|e| step("finding a free port", e))?;
        let mut emulator = Command::new(program);
        emulator.arg("--host=127.0.0.1").arg(format!("--port={port}"));
        let mut server = Supervised::start(emulator, dir, "TERM")?;
        let started = Instant::now();
        while !answers_ok(port) {
            if server.exited() || started.elapsed() > Duration::from_secs(60) {
                return Err(DevDbError::Step {
                    step: "starting the Pub/Sub emulator",
                    detail: format!("not ready after {:?}; log:\n{}", started.elapsed(), server.log()),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Self { port, _server: server })
    }

    /// `127.0.0.1:<port>`, the value for `PUBSUB_EMULATOR_HOST`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// The emulator answers `Ok` on `/` once it serves.
fn answers_ok(port: u16) -> bool {
    use std::io::Write;
    let Ok(mut stream) = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut reply = [0u8; 12];
    stream.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && reply.starts_with(b"HTTP/1.1 200")
}

fn server_command(as_root: bool, program: &Path) -> Command {
    if as_root {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=postgres", "--regid=postgres", "--init-groups", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run(command: &mut Command, what: &'static str) -> Result<(), DevDbError> {
    let output = command.output().map_err(|e| step(what, e))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(DevDbError::Step { step: what, detail: String::from_utf8_lossy(&output.stderr).trim().to_owned() })
    }
}

fn step(step: &'static str, err: std::io::Error) -> DevDbError {
    DevDbError::Step { step, detail: err.to_string() }
}

fn find_bin_dir() -> Option<PathBuf> {
    let has_initdb = |dir: &Path| dir.join("initdb").is_file();
    if let Some(dir) = std::env::var_os("PG_BIN_DIR").map(PathBuf::from) {
        return has_initdb(&dir).then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            has_initdb(&bin).then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| has_initdb(dir))
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pubsub_emulator_starts_and_stops() {
        let emulator = PubSubEmulator::start().expect("emulator starts");
        let port = emulator.port;
        assert!(answers_ok(port));
        drop(emulator);
        assert!(!answers_ok(port), "emulator stopped");
    }

    #[test]
    fn starts_serves_and_cleans_up() {
        let cluster = Cluster::start().expect("cluster starts");
        let dir = cluster.server.dir.clone();
        let port = cluster.port();
        assert!(cluster.url("events").ends_with(&format!(":{port}/events")));
        assert!(std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok());
        drop(cluster);
        assert!(!dir.exists(), "cluster directory removed");
        assert!(std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(), "server stopped");
    }
}
