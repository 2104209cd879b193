//! Certificates made by the test, with the `openssl` command (never committed): a CA, and
//! certificates it signs for given names and validity (expired ones included).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::HarnessError;

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate authority in a directory of its own.
#[derive(Debug, Clone)]
pub struct Ca {
    dir: PathBuf,
    /// The CA's certificate, what a peer verifies against.
    pub cert: PathBuf,
    key: PathBuf,
}

impl Ca {
    /// A new CA named `name` (its common name), in `dir/name/`.
    pub fn new(dir: &Path, name: &str) -> Result<Ca, HarnessError> {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| HarnessError::io(format!("create {}", dir.display()), e))?;
        let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            path(&key),
            "-out",
            path(&cert),
        ])?;
        std::fs::write(dir.join("index.txt"), "")
            .and_then(|()| std::fs::write(dir.join("serial"), "1000\n"))
            .and_then(|()| std::fs::write(dir.join("ca.cnf"), ca_config(&dir)))
            .map_err(|e| HarnessError::io(format!("write the CA files in {}", dir.display()), e))?;
        Ok(Ca { dir, cert, key })
    }

    /// A certificate for common name `name` and subjectAltNames `alt` (`DNS:x`, `IP:y`),
    /// valid from a day ago for `days` days (negative: expired that many days ago).
    pub fn issue(&self, name: &str, alt: &[&str], days: i64) -> Result<Issued, HarnessError> {
        let (cert, key, csr) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
            self.dir.join(format!("{name}.csr")),
        );
        let mut req = vec![
            "req".to_owned(),
            "-new".into(),
            "-newkey".into(),
            "ec".into(),
            "-pkeyopt".into(),
            "ec_paramgen_curve:P-256".into(),
            "-nodes".into(),
            "-subj".into(),
            format!("/CN={name}"),
            "-keyout".into(),
            path(&key).into(),
            "-out".into(),
            path(&csr).into(),
        ];
        // An extension always, so that the certificate is X.509 v3 (webpki takes no
        // other).
        req.push("-addext".into());
        req.push("basicConstraints=critical,CA:FALSE".into());
        if !alt.is_empty() {
            req.push("-addext".into());
            req.push(format!("subjectAltName={}", alt.join(",")));
        }
        openssl(&req.iter().map(String::as_str).collect::<Vec<_>>())?;
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        let (start, end) = if days >= 0 {
            (now - day, now + day * days as u32)
        } else {
            let ago = day * days.unsigned_abs() as u32;
            (now - ago - day * 30, now - ago)
        };
        openssl(&[
            "ca",
            "-batch",
            "-notext",
            "-config",
            path(&self.dir.join("ca.cnf")),
            "-cert",
            path(&self.cert),
            "-keyfile",
            path(&self.key),
            "-in",
            path(&csr),
            "-out",
            path(&cert),
            "-startdate",
            &asn1_time(start),
            "-enddate",
            &asn1_time(end),
        ])?;
        Ok(Issued { cert, key })
    }
}

fn ca_config(dir: &Path) -> String {
    format!(
        "[ca]\ndefault_ca = here\n[here]\ndatabase = {db}\nnew_certs_dir = {dir}\n\
         serial = {serial}\ndefault_md = sha256\npolicy = any\ncopy_extensions = copy\n\
         unique_subject = no\n[any]\ncommonName = supplied\n",
        db = dir.join("index.txt").display(),
        dir = dir.display(),
        serial = dir.join("serial").display(),
    )
}

/// `YYYYMMDDHHMMSSZ`, as `openssl ca -startdate` takes it.
fn asn1_time(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (year, month, day, rest) = link::x509::civil(secs);
    format!(
        "{year:04}{month:02}{day:02}{:02}{:02}{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn openssl(args: &[&str]) -> Result<(), HarnessError> {
    let out = Command::new("openssl").args(args).output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            HarnessError::Missing(
                "the openssl command is not installed: apt-get install openssl \
                 (scripts/setup.sh does)"
                    .into(),
            )
        } else {
            HarnessError::io("run openssl", e)
        }
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(HarnessError::io(
            format!("openssl {}", args.first().unwrap_or(&"")),
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
        ))
    }
}
