//! TLS material for SIP over TLS: the configured certificate chain and key, or, when none is
//! configured, a self-signed pair generated into the data directory on first start and reused
//! on later starts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why TLS material could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A PEM file held no certificate, or no private key, or could not be decoded.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        what: String,
    },
    /// Generating the self-signed certificate failed.
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
    /// rustls refused the certificate and key (for example a key that does not match).
    #[error("certificate and key rejected: {0}")]
    Rejected(String),
}

/// Where the material came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsOrigin {
    /// Files named in the configuration.
    Configured,
    /// A self-signed pair generated just now into the data directory.
    Generated,
    /// A self-signed pair generated on an earlier start, found in the data directory.
    PreviouslyGenerated,
}

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct TlsMaterial {
    /// The chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
    /// Where it came from.
    pub origin: TlsOrigin,
    /// The certificate file.
    pub cert_path: PathBuf,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads the certificates of a PEM file (one or more CERTIFICATE blocks).
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(io_err(path))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.to_owned(),
            what: format!("bad PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            what: "no CERTIFICATE block".into(),
        });
    }
    Ok(certs)
}

/// A client configuration (for TLS connections we open) that trusts the certificates in the
/// PEM file `ca_path`: a CA, or a server's self-signed certificate (`chorus serve` writes
/// its generated one to `DATA_DIR/tls/cert.pem`).
pub fn client_config(ca_path: &Path) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certificates(ca_path)? {
        roots.add(cert).map_err(|e| TlsError::Pem {
            path: ca_path.to_owned(),
            what: format!("not a usable certificate: {e}"),
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rejected(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn read_pair(
    cert_path: &Path,
    key_path: &Path,
    origin: TlsOrigin,
) -> Result<TlsMaterial, TlsError> {
    let chain = read_certificates(cert_path)?;
    let key_pem = std::fs::read(key_path).map_err(io_err(key_path))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        path: key_path.to_owned(),
        what: format!("no usable private key: {e}"),
    })?;
    Ok(TlsMaterial {
        chain,
        key,
        origin,
        cert_path: cert_path.to_owned(),
    })
}

/// Writes `data` to `path` through a temporary file and a rename, so a crash never leaves a
/// half-written key; `private` files are readable by the owner only.
fn write_atomically(path: &Path, data: &[u8], private: bool) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if private { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(&tmp).map_err(io_err(&tmp))?;
    f.write_all(data).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// The configured pair when given; otherwise `DATA_DIR/tls/{cert,key}.pem`, generated
/// (self-signed for `names`, e.g. "localhost" and the server's IPs) if not there yet.
pub fn load_or_generate(
    data_dir: &Path,
    configured: Option<(&Path, &Path)>,
    names: &[String],
) -> Result<TlsMaterial, TlsError> {
    if let Some((cert, key)) = configured {
        return read_pair(cert, key, TlsOrigin::Configured);
    }
    let dir = data_dir.join("tls");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert_path.exists() && key_path.exists() {
        return read_pair(&cert_path, &key_path, TlsOrigin::PreviouslyGenerated);
    }
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let generated = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    // Key first: a certificate on disk always has its key beside it.
    write_atomically(
        &key_path,
        generated.signing_key.serialize_pem().as_bytes(),
        true,
    )?;
    write_atomically(&cert_path, generated.cert.pem().as_bytes(), false)?;
    read_pair(&cert_path, &key_path, TlsOrigin::Generated)
}

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3, no client certificates)
/// for the material.
pub fn server_config(material: &TlsMaterial) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Rejected(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(material.chain.clone(), material.key.clone_key())
        .map_err(|e| TlsError::Rejected(e.to_string()))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["localhost".into(), "127.0.0.1".into()]
    }

    #[test]
    fn generates_once_then_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(dir.path(), None, &names()).unwrap();
        assert_eq!(first.origin, TlsOrigin::Generated);
        server_config(&first).expect("usable by rustls");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("tls/key.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "private key readable by others: {mode:o}");
        }
        let second = load_or_generate(dir.path(), None, &names()).unwrap();
        assert_eq!(second.origin, TlsOrigin::PreviouslyGenerated);
        assert_eq!(
            second.chain, first.chain,
            "the same certificate on every start"
        );
    }

    #[test]
    fn configured_files_are_used_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let gen_dir = dir.path().join("elsewhere");
        let made = load_or_generate(&gen_dir, None, &names()).unwrap();
        let (cert, key) = (gen_dir.join("tls/cert.pem"), gen_dir.join("tls/key.pem"));
        let m = load_or_generate(dir.path(), Some((&cert, &key)), &names()).unwrap();
        assert_eq!(m.origin, TlsOrigin::Configured);
        assert_eq!(m.chain, made.chain);
        assert!(
            !dir.path().join("tls").exists(),
            "nothing generated when configured"
        );

        // A key that does not belong to the certificate is refused by name.
        let other = load_or_generate(&dir.path().join("other"), None, &names()).unwrap();
        let mismatched = TlsMaterial {
            key: other.key.clone_key(),
            ..m
        };
        assert!(matches!(
            server_config(&mismatched),
            Err(TlsError::Rejected(_))
        ));

        // Files that are not PEM say which file.
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let err = load_or_generate(dir.path(), Some((&junk, &key)), &names()).unwrap_err();
        assert!(err.to_string().contains("junk.pem"), "{err}");
        let err = load_or_generate(dir.path(), Some((&cert, &junk)), &names()).unwrap_err();
        assert!(err.to_string().contains("junk.pem"), "{err}");
        let missing = dir.path().join("missing.pem");
        let err = load_or_generate(dir.path(), Some((&missing, &key)), &names()).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
