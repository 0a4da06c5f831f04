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

/// A running throwaway cluster. Dropping it stops the server and deletes its files.
#[derive(Debug)]
pub struct Cluster {
    port: u16,
    dir: PathBuf,
    supervisor: Child,
    lifeline: Option<ChildStdin>,
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
        let supervisor = supervise(postgres, &dir)?;
        let mut cluster = Self { port, dir, supervisor, lifeline: None };
        cluster.lifeline = cluster.supervisor.stdin.take();
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
            let exited = self.supervisor.try_wait().ok().flatten().is_some();
            if exited || started.elapsed() > START_TIMEOUT {
                let mut log = String::new();
                let _ = std::fs::File::open(self.dir.join("postgres.log")).and_then(|mut f| f.read_to_string(&mut log));
                return Err(DevDbError::Step {
                    step: "starting postgres",
                    detail: format!("not ready after {:?}; server log:\n{log}", started.elapsed()),
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Closing the lifeline tells the supervisor to stop the server and delete the files.
        drop(self.lifeline.take());
        let _ = self.supervisor.wait();
    }
}

/// Starts `postgres` under a shell that stops it and removes `dir` once its stdin closes.
fn supervise(postgres: Command, dir: &Path) -> Result<Child, DevDbError> {
    const SCRIPT: &str = r#"
dir=$1; shift
"$@" >"$dir/postgres.log" 2>&1 </dev/null &
server=$!
# Returns when the owner closes the pipe: on drop, on exit, or when it is killed.
while read -r _; do :; done
kill -INT "$server" 2>/dev/null
wait "$server"
rm -rf "$dir"
"#;
    let program = postgres.get_program().to_owned();
    let args: Vec<_> = postgres.get_args().map(ToOwned::to_owned).collect();
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("devdb-supervisor")
        .arg(dir)
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
    fn starts_serves_and_cleans_up() {
        let cluster = Cluster::start().expect("cluster starts");
        let dir = cluster.dir.clone();
        let port = cluster.port();
        assert!(cluster.url("events").ends_with(&format!(":{port}/events")));
        assert!(std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok());
        drop(cluster);
        assert!(!dir.exists(), "cluster directory removed");
        assert!(std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(), "server stopped");
    }
}
