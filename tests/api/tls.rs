//! TLS to PostgreSQL, as `DATABASE_URL`'s `sslmode` and `sslrootcert` ask (libpq's meanings),
//! against a real server with a certificate from a throwaway CA. Its certificate names
//! `localhost` only, as a Cloud SQL server certificate names no IP address: `verify-full`
//! must then refuse the IP, `verify-ca` accept it, and a foreign CA be refused by both.

use std::path::{Path, PathBuf};
use std::process::Command;

use diesel::QueryableByName;
use diesel::sql_types::Bool;
use diesel_async::RunQueryDsl;

use crate::harness::binary;

/// A CA, a server certificate it signed for `localhost`, and an unrelated second CA.
struct Certificates {
    dir: PathBuf,
}

impl Certificates {
    fn make() -> Self {
        let dir = std::env::temp_dir().join(format!("events-tls-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).expect("certificate directory");
        let openssl = |args: &[&str]| {
            let output = Command::new("openssl").args(args).current_dir(&dir).output().expect("run openssl");
            assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
        }
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=db",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n")
            .expect("extensions");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
        // PostgreSQL insists that its key be private to the user it runs as.
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(dir.join("server.key"), mode).expect("chmod");
        let as_root = Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
        if as_root {
            let chowned = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status().expect("chown");
            assert!(chowned.success());
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(QueryableByName)]
struct Ssl {
    #[diesel(sql_type = Bool)]
    ssl: bool,
}

/// Whether a pool built from `url` reaches the server, and over TLS.
async fn connects_with_tls(url: &str) -> Result<bool, String> {
    let pool = data::connect_pool(url, &data::PoolConfig::default()).map_err(|e| e.to_string())?;
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let row: Ssl = diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result(&mut conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.ssl)
}

fn url(port: u16, host: &str, query: &str) -> String {
    format!("postgres://postgres@{host}:{port}/postgres?{query}")
}

#[tokio::test]
async fn sslmode_is_honoured_and_the_certificate_checked() {
    let certs = Certificates::make();
    let server = devdb::Cluster::start_with(&[
        ("ssl", "on"),
        ("ssl_cert_file", &certs.path("server.pem")),
        ("ssl_key_file", &certs.path("server.key")),
    ])
    .expect("a PostgreSQL server with TLS");
    let port = server.port();
    let (ca, other_ca) = (certs.path("ca.pem"), certs.path("other-ca.pem"));

    assert_eq!(connects_with_tls(&url(port, "127.0.0.1", "")).await, Ok(false), "no sslmode: plaintext");
    assert_eq!(connects_with_tls(&url(port, "127.0.0.1", "sslmode=disable")).await, Ok(false));
    assert_eq!(connects_with_tls(&url(port, "127.0.0.1", "sslmode=require")).await, Ok(true));
    let full = format!("sslmode=verify-full&sslrootcert={ca}");
    assert_eq!(connects_with_tls(&url(port, "localhost", &full)).await, Ok(true), "the certificate names localhost");
    let refused = connects_with_tls(&url(port, "127.0.0.1", &full)).await;
    assert!(refused.is_err(), "verify-full must refuse a host the certificate does not name: {refused:?}");
    let chain_only = format!("sslmode=verify-ca&sslrootcert={ca}");
    assert_eq!(connects_with_tls(&url(port, "127.0.0.1", &chain_only)).await, Ok(true), "verify-ca skips the name");
    assert_eq!(
        connects_with_tls(&url(port, "127.0.0.1", &format!("sslmode=require&sslrootcert={ca}"))).await,
        Ok(true)
    );
    for mode in ["verify-ca", "verify-full", "require"] {
        let foreign =
            connects_with_tls(&url(port, "localhost", &format!("sslmode={mode}&sslrootcert={other_ca}"))).await;
        assert!(foreign.is_err(), "{mode} with another CA must fail: {foreign:?}");
    }

    // Migrations and the real binaries go through the same connection code.
    let tls_url = url(port, "localhost", &full);
    assert!(!data::run_migrations(&tls_url).await.expect("migrate over TLS").is_empty());
    let migrate =
        |url: String| tokio::process::Command::new(binary("migrate")).env_clear().env("DATABASE_URL", url).output();
    let output = migrate(tls_url).await.expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let output = migrate(url(port, "127.0.0.1", &full)).await.expect("run");
    assert!(!output.status.success(), "migrate must not connect to a host the certificate does not name");
    drop(server);
    drop(certs);
}

#[test]
fn unusable_tls_settings_stop_start_up_with_one_line() {
    let missing = Path::new("/nonexistent/ca.pem").display().to_string();
    for query in ["sslmode=prefer", "sslmode=verify-full", &format!("sslmode=verify-ca&sslrootcert={missing}")] {
        let output = Command::new(binary("metrics"))
            .env_clear()
            .env("DATABASE_URL", format!("postgres://u:hunter2@127.0.0.1:1/db?{query}"))
            .env("TENANT_KEYS", r#"{"a": ["key-key-key"]}"#)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{query}: {stderr}");
        assert!(stderr.starts_with("error: DATABASE_URL is invalid"), "{query}: {stderr}");
        assert!(!stderr.contains("hunter2"), "{query}: {stderr}");
    }
}
