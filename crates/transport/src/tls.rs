//! TLS for the live modes (rustls with the ring provider; no OpenSSL): [`TlsConnect`] speaks
//! HTTPS to a server (SNI, the system's trust store plus CA files, or no verification for test
//! farms), [`TlsListen`] serves it. A server's TLS handshake runs in the connection's own task
//! (on the first read or write), never in the accept loop, so a client that stalls its
//! handshake holds one connection, not the listener, and hyper's header timeout covers it.
//!
//! A refused certificate is a [`Refused`] error (inside the `io::Error` a connect returns):
//! it names the server and says why and what to do; [`crate::client::HttpConn::open`] reports
//! it as [`crate::client::Error::Tls`], which a client must not retry.

use std::{
    future::Future,
    io,
    path::{Path, PathBuf},
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use rustls::{
    ClientConfig, RootCertStore, ServerConfig,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject as _},
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub use rustls::{ClientConfig as ClientSettings, ServerConfig as ServerSettings};

use crate::{Accepted, BoxFuture, BoxIo, Connect, Listen, tcp::TcpConnect};

/// A TLS setting that cannot be used: which file, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A server's certificate was refused, or the handshake failed: not worth a retry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Whose certificates a client trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trust {
    /// PEM files of more certificate authorities (a test farm's own CA).
    pub ca_files: Vec<PathBuf>,
    /// Accept any certificate (test farms only: anyone in the middle can read and change the
    /// traffic).
    pub insecure: bool,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            ConfigError(format!(
                "{}: not a PEM certificate file: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(ConfigError(format!(
            "{}: no certificate in it (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(certs)
}

/// A client configuration: the system's trust store and `trust.ca_files`, or (insecure) none.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, ConfigError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(e.to_string()))?;
    let mut config = if trust.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        // Certificates of the system store that do not parse are skipped, as browsers do.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        for path in &trust.ca_files {
            for cert in pem_certs(path)? {
                roots.add(cert).map_err(|e| {
                    ConfigError(format!(
                        "{}: not a usable CA certificate: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider(),
        )
        .build()
        .map_err(|e| ConfigError(format!("no usable trusted certificate: {e}")))?;
        // The standard check, with the refused certificate's fingerprint kept for the error.
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Identifying(webpki)))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A server configuration from a PEM certificate chain and its PEM private key.
pub fn server_config(cert_file: &Path, key_file: &Path) -> Result<Arc<ServerConfig>, ConfigError> {
    let certs = pem_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        ConfigError(format!(
            "{}: no usable private key (PEM, PKCS#8, PKCS#1 or SEC1): {e}",
            key_file.display()
        ))
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ConfigError(format!(
                "{} and {} do not make a certificate and its key: {e}",
                cert_file.display(),
                key_file.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts every certificate (`--insecure`), still checking the handshake's signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A refused server certificate, with its SHA-256 fingerprint (which certificate it was).
#[derive(Debug)]
struct Presented {
    why: rustls::CertificateError,
    sha256: String,
}

impl std::fmt::Display for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} (certificate SHA-256 {})", self.why, self.sha256)
    }
}

impl std::error::Error for Presented {}

/// `AB:CD:...`: how browsers and `openssl x509 -fingerprint -sha256` show a certificate.
fn fingerprint(der: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The standard certificate check; a refusal carries the certificate's fingerprint.
#[derive(Debug)]
struct Identifying(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for Identifying {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(why) => rustls::Error::InvalidCertificate(
                    rustls::CertificateError::Other(rustls::OtherError(Arc::new(Presented {
                        why,
                        sha256: fingerprint(end_entity),
                    }))),
                ),
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The host of an authority (`[::1]:8443` → `::1`, `example.com` → `example.com`).
fn host_of(authority: &str) -> &str {
    match authority.rsplit_once(']') {
        Some((h, _)) => h.trim_start_matches('['),
        None => authority
            .rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(authority, |(h, _)| h),
    }
}

/// Why a handshake with `host` failed, in words a user can act on.
fn explain(host: &str, e: &io::Error) -> String {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    let why = match inner {
        Some(rustls::Error::InvalidCertificate(c)) => refused_because(host, c),
        Some(other) => format!("the TLS handshake failed: {other}"),
        None => format!("the TLS handshake failed: {e}"),
    };
    format!("TLS with {host}: {why}")
}

/// Why a certificate was refused, and which one (its fingerprint) when known.
fn refused_because(host: &str, c: &rustls::CertificateError) -> String {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer => "its certificate is signed by an authority this machine does not trust: give that authority's certificate with --ca-cert FILE (or --insecure for a test farm)".to_owned(),
        C::NotValidForName | C::NotValidForNameContext { .. } => format!("its certificate is not valid for the name {host:?}: connect by a name the certificate lists"),
        C::Expired | C::ExpiredContext { .. } => "its certificate has expired".to_owned(),
        C::NotValidYet | C::NotValidYetContext { .. } => "its certificate is not valid yet (check both machines' clocks)".to_owned(),
        C::Revoked => "its certificate has been revoked".to_owned(),
        C::Other(o) => match o.0.downcast_ref::<Presented>() {
            Some(p) => format!(
                "{} [the certificate presented: SHA-256 {}]",
                refused_because(host, &p.why),
                p.sha256
            ),
            None => format!("its certificate was refused: {o:?}"),
        },
        other => format!("its certificate was refused: {other:?}"),
    }
}

/// Connects over TLS: TCP to the authority (port 443 when it names none), then a handshake
/// for the authority's host (SNI, certificate checked against that name).
#[derive(Clone)]
pub struct TlsConnect {
    config: Arc<ClientConfig>,
}

impl TlsConnect {
    /// A connector with this client configuration ([`client_config`]).
    pub fn new(config: Arc<ClientConfig>) -> TlsConnect {
        TlsConnect { config }
    }
}

impl Connect for TlsConnect {
    fn connect<'a>(&'a self, authority: &'a str) -> BoxFuture<'a, io::Result<BoxIo>> {
        Box::pin(async move {
            let host = host_of(authority);
            let with_port = if crate::tcp::has_port(authority) {
                authority.to_owned()
            } else if host.contains(':') {
                format!("[{host}]:443")
            } else {
                format!("{host}:443")
            };
            let tcp = TcpConnect.connect(&with_port).await?;
            connect_over(self.config.clone(), host, tcp).await
        })
    }
}

/// TLS over a connection already open (`io`), for the server `name`.
pub async fn connect_over(config: Arc<ClientConfig>, name: &str, io: BoxIo) -> io::Result<BoxIo> {
    let server = ServerName::try_from(name.to_owned()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            Refused(format!(
                "{name:?} is not a name TLS can check a certificate against"
            )),
        )
    })?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(server, io)
        .await
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, Refused(explain(name, &e))))?;
    Ok(Box::new(tls))
}

/// Serves TLS on the connections of another listener.
pub struct TlsListen {
    inner: Box<dyn Listen>,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl TlsListen {
    /// TLS with `config` ([`server_config`]) over `inner`'s connections.
    pub fn new(inner: Box<dyn Listen>, config: Arc<ServerConfig>) -> TlsListen {
        TlsListen {
            inner,
            acceptor: tokio_rustls::TlsAcceptor::from(config),
        }
    }
}

impl Listen for TlsListen {
    fn accept(&mut self) -> BoxFuture<'_, io::Result<Accepted>> {
        Box::pin(async move {
            let a = self.inner.accept().await?;
            Ok(Accepted {
                io: Box::new(Handshaking::Pending(Box::new(self.acceptor.accept(a.io)))),
                peer: a.peer,
                conn: a.conn,
            })
        })
    }

    fn local_addr(&self) -> String {
        self.inner.local_addr()
    }
}

/// A server connection whose handshake completes on its first read or write.
enum Handshaking {
    Pending(Box<tokio_rustls::Accept<BoxIo>>),
    Ready(Box<tokio_rustls::server::TlsStream<BoxIo>>),
    Failed,
}

impl Handshaking {
    fn ready(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<&mut tokio_rustls::server::TlsStream<BoxIo>>> {
        if let Handshaking::Pending(accept) = self {
            match Pin::new(accept.as_mut()).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(stream)) => *self = Handshaking::Ready(Box::new(stream)),
                Poll::Ready(Err(e)) => {
                    *self = Handshaking::Failed;
                    return Poll::Ready(Err(e));
                }
            }
        }
        match self {
            Handshaking::Ready(s) => Poll::Ready(Ok(s)),
            _ => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the TLS handshake failed",
            ))),
        }
    }
}

impl AsyncRead for Handshaking {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().ready(cx) {
            Poll::Ready(Ok(s)) => Pin::new(s).poll_read(cx, buf),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Handshaking {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().ready(cx) {
            Poll::Ready(Ok(s)) => Pin::new(s).poll_write(cx, buf),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().ready(cx) {
            Poll::Ready(Ok(s)) => Pin::new(s).poll_flush(cx),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Handshaking::Ready(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            _ => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    #[test]
    fn hosts_and_ports_of_authorities() {
        assert_eq!(host_of("example.com"), "example.com");
        assert_eq!(host_of("example.com:8443"), "example.com");
        assert_eq!(host_of("[::1]:8443"), "::1");
        assert_eq!(host_of("[::1]"), "::1");
    }

    /// A certificate for `localhost` signed by a CA of the test's own; (CA file, server config).
    fn pki(dir: &Path) -> (PathBuf, Arc<ServerConfig>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let files = [
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
        ];
        std::fs::write(&files[0], ca_cert.pem()).unwrap();
        std::fs::write(&files[1], cert.pem()).unwrap();
        std::fs::write(&files[2], key.serialize_pem()).unwrap();
        let server = server_config(&files[1], &files[2]).unwrap();
        (files[0].clone(), server)
    }

    /// A client that connects and never starts its handshake holds its own connection only:
    /// the listener accepts the next one, whose handshake completes on its first read, and
    /// bytes go both ways.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_handshake_does_not_hold_the_listener() {
        let dir = std::env::temp_dir().join(format!("transport-tls-{}", std::process::id()));
        let (ca, server) = pki(&dir);
        let tcp = crate::tcp::TcpListen::bind("127.0.0.1:0").await.unwrap();
        let port = tcp.local_addr().rsplit(':').next().unwrap().to_owned();
        let mut listener = TlsListen::new(Box::new(tcp), server);
        let _silent = tokio::net::TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap()))
            .await
            .unwrap();
        let trust = Trust {
            ca_files: vec![ca],
            insecure: false,
        };
        let client = TlsConnect::new(client_config(&trust).unwrap());
        let authority = format!("localhost:{port}");
        let talk = tokio::spawn(async move {
            let mut io = client.connect(&authority).await.unwrap();
            io.write_all(b"ping").await.unwrap();
            let mut buf = [0u8; 4];
            io.read_exact(&mut buf).await.unwrap();
            buf
        });
        // Bounded, so a listener that waits on the silent handshake fails the test instead of
        // hanging it.
        let (first, mut second) = tokio::time::timeout(std::time::Duration::from_secs(30), async {
            (
                listener.accept().await.unwrap(),
                listener.accept().await.unwrap(),
            )
        })
        .await
        .expect("the listener accepted past the stalled handshake");
        let mut buf = [0u8; 4];
        second.io.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        second.io.write_all(b"pong").await.unwrap();
        assert_eq!(&talk.await.unwrap(), b"pong");
        drop(first);
        // A CA file with no certificate is a clear error.
        std::fs::write(dir.join("empty.pem"), "").unwrap();
        let e = client_config(&Trust {
            ca_files: vec![dir.join("empty.pem")],
            insecure: false,
        })
        .unwrap_err();
        assert!(e.0.contains("no certificate in it"), "{e}");
    }
}
