//! Private database servers with TLS, for tests that need what the shared ones on 5432
//! and 3306 must not be given (a certificate of the test's own CA, secure transport
//! required): a PostgreSQL (`initdb` + `postgres`) or a MariaDB (`mariadb-install-db` +
//! `mariadbd`) on a free loopback port, in a temporary directory, run as the `postgres` /
//! `mysql` user when the test runs as root (the servers refuse root). Stopped (SIGTERM,
//! then SIGKILL after 10 s) and removed when dropped. `None` with the reason when the
//! server's binaries are not installed, so a test can say it was skipped.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::{self, Usage};

/// A running private server.
#[derive(Debug)]
pub struct DbServer {
    pub port: u16,
    /// The CA that signed the server's certificate (for `localhost` and 127.0.0.1).
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server shows: the wrong one.
    pub other_ca: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

impl DbServer {
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for DbServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// uid and gid of `user` when running as root (servers refuse to run as root), else none.
fn run_as(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, user]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    let me = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return None;
    }
    Some((id("-u")?, id("-g")?))
}

fn command(program: &Path, user: Option<(u32, u32)>, dir: &Path) -> Command {
    let mut c = Command::new(program);
    c.current_dir(dir).stdin(Stdio::null());
    if let Some((uid, gid)) = user {
        c.uid(uid).gid(gid);
    }
    c
}

/// The directory, the certificates and their owner: CA, server certificate and key
/// (mode 0600), a second CA.
fn prepare(user: Option<(u32, u32)>) -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::Builder::new().prefix("bp-db-").tempdir().unwrap();
    let ca = pki::ca(dir.path(), "db");
    let other = pki::ca(dir.path(), "other");
    let (cert, key) = pki::leaf(
        dir.path(),
        &ca,
        "server",
        &["localhost", "127.0.0.1"],
        Usage::ServerAuth,
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    if let Some((uid, gid)) = user {
        for p in [dir.path(), &cert, &key, &ca.path] {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
        }
    }
    (dir, ca.path, other.path, cert, key)
}

fn started(mut child: Child, port: u16, what: &str, log: &Path) -> Child {
    if !crate::net::wait_for_port(port, Duration::from_secs(30)) {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "the private {what} did not listen on {port}: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
    child
}

/// A PostgreSQL with `ssl = on` whose `pg_hba.conf` admits only TLS over TCP (`hostssl`,
/// trust): user `postgres`, no password.
pub fn postgres_tls() -> Result<DbServer, String> {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "no /usr/lib/postgresql: PostgreSQL's server is not installed".to_owned())?
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("postgres").exists())
        .max()
        .ok_or_else(|| "no initdb under /usr/lib/postgresql/*/bin".to_owned())?;
    let user = run_as("postgres");
    let (dir, ca, other_ca, cert, key) = prepare(user);
    let data = dir.path().join("data");
    let out = command(&bin.join("initdb"), user, dir.path())
        .args(["-D"])
        .arg(&data)
        .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
    )
    .unwrap();
    let port = crate::net::free_port();
    let log = dir.path().join("postgres.log");
    let child = command(&bin.join("postgres"), user, dir.path())
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir.path())
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "ssl=on",
            "-c",
            "fsync=off",
        ])
        .arg("-c")
        .arg(format!("ssl_cert_file={}", cert.display()))
        .arg("-c")
        .arg(format!("ssl_key_file={}", key.display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let child = started(child, port, "PostgreSQL", &log);
    // It listens before it takes sessions ("the database system is starting up").
    let deadline = Instant::now() + Duration::from_secs(30);
    while !Command::new(bin.join("pg_isready"))
        .arg("-h")
        .arg(dir.path())
        .args(["-p", &port.to_string(), "-q"])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            Instant::now() < deadline,
            "the private PostgreSQL never got ready"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(DbServer {
        port,
        ca,
        other_ca,
        child,
        dir,
    })
}

/// A MariaDB with the test CA's certificate and `require_secure_transport = ON`: user
/// `root`, no password.
pub fn mariadb_tls() -> Result<DbServer, String> {
    let server = ["/usr/sbin/mariadbd", "/usr/sbin/mysqld"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| "no /usr/sbin/mariadbd: MariaDB's server is not installed".to_owned())?;
    let install = ["/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| "no mariadb-install-db".to_owned())?;
    let user = run_as("mysql");
    let (dir, ca, other_ca, cert, key) = prepare(user);
    let data = dir.path().join("data");
    // Temporary tables in a directory of this server's own, not the shared /tmp.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).unwrap();
    }
    // The bootstrap once failed in a full test run ("Could not remove temporary table",
    // then "Unknown table mysql.tmp_user_sys") and passed alone: a second try from an
    // empty data directory, and both outputs in the message if that fails too.
    let mut failures = Vec::new();
    for _ in 0..2 {
        let _ = std::fs::remove_dir_all(&data);
        let mut install = Command::new(&install);
        install
            .current_dir(dir.path())
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if user.is_some() {
            install.arg("--user=mysql");
        }
        let out = install.output().unwrap();
        if out.status.success() {
            failures.clear();
            break;
        }
        failures.push(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    assert!(
        failures.is_empty(),
        "mariadb-install-db: {}",
        failures.join("\n--- second try ---\n")
    );
    let port = crate::net::free_port();
    let log = dir.path().join("mariadb.log");
    let path = |flag: &str, p: &Path| format!("--{flag}={}", p.display());
    let child = command(&server, user, dir.path())
        .arg("--no-defaults")
        .arg(path("datadir", &data))
        .arg(path("tmpdir", &tmp))
        .arg(path("socket", &dir.path().join("sock")))
        .arg(path("pid-file", &dir.path().join("pid")))
        .arg(path("log-error", &log))
        .arg(format!("--port={port}"))
        .args(["--bind-address=127.0.0.1", "--skip-log-bin"])
        .arg(path("ssl-cert", &cert))
        .arg(path("ssl-key", &key))
        .arg(path("ssl-ca", &ca))
        .arg("--require-secure-transport=ON")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let child = started(child, port, "MariaDB", &log);
    Ok(DbServer {
        port,
        ca,
        other_ca,
        child,
        dir,
    })
}
