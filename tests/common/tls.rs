//! TLS for the tests: a certificate authority made with the `openssl` command, and `stunnel`
//! (Debian's stunnel4) terminating TLS in front of a plain-text server.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A certificate authority and what it signs, made with the `openssl` command.
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        run(Command::new("openssl")
            .current_dir(dir)
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-subj",
                "/CN=condmon test CA",
            ]));
        Pki { dir: dir.into() }
    }

    /// A key and a certificate signed by this authority, for `localhost` and 127.0.0.1.
    pub fn issue(&self, name: &str) -> (PathBuf, PathBuf) {
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        run(Command::new("openssl")
            .current_dir(&self.dir)
            .args([
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr,
            ])
            .args(["-subj", &format!("/CN={name}")]));
        std::fs::write(
            self.dir.join("san.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        run(Command::new("openssl")
            .current_dir(&self.dir)
            .args([
                "x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key",
            ])
            .args([
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                "san.cnf",
            ]));
        (self.dir.join(key), self.dir.join(pem))
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
}

pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn wait_listening(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// stunnel in server mode: TLS on `outer` with `cert`, plain text to `inner`; with `client_ca`,
/// a client certificate that authority signed is required.
pub fn stunnel(
    dir: &Path,
    outer: u16,
    inner: u16,
    (key, cert): &(PathBuf, PathBuf),
    client_ca: Option<&Path>,
) -> Killed {
    let conf = dir.join(format!("stunnel-{outer}.conf"));
    let verify = client_ca.map_or(String::new(), |ca| {
        format!(
            "CAfile = {}\nverifyChain = yes\nrequireCert = yes\n",
            ca.display()
        )
    });
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\ndebug = 4\noutput = {log}\n\n[tls]\naccept = 127.0.0.1:{outer}\n\
             connect = 127.0.0.1:{inner}\ncert = {cert}\nkey = {key}\n{verify}",
            log = dir.join(format!("stunnel-{outer}.log")).display(),
            cert = cert.display(),
            key = key.display(),
        ),
    )
    .unwrap();
    let child = Killed(
        Command::new(stunnel_binary())
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start stunnel (deploy/install-deps.sh installs Debian's stunnel4)"),
    );
    wait_listening(&format!("127.0.0.1:{outer}"));
    child
}

pub fn stunnel_binary() -> &'static str {
    if Path::new("/usr/bin/stunnel4").exists() {
        "/usr/bin/stunnel4"
    } else {
        "stunnel"
    }
}
