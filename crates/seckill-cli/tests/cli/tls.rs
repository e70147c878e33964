//! `--tls-cert` / `--tls-key`: the engine speaks HTTPS (HTTP/1.1 over
//! rustls) and nothing else on that port.

use seckill_test_support::*;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/tls/{name}"));
    path.to_str().expect("a UTF-8 path").to_string()
}

/// A client that trusts only the test CA, which signed `cert.pem`.
fn connector() -> TlsConnector {
    let mut roots = RootCertStore::empty();
    let cert = CertificateDer::from_pem_file(fixture("ca.pem")).expect("the test CA");
    roots.add(cert).expect("a usable root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// One request over a fresh TLS connection; the whole answer as text.
async fn https(addr: &str, request: &str) -> String {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("a server name");
    let mut tls = connector().connect(name, tcp).await.expect("TLS handshake");
    tls.write_all(request.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.expect("read the answer");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn serves_https_with_the_configured_certificate() {
    let seckill = Seckill::start_with(&[
        "--tls-cert",
        &fixture("cert.pem"),
        "--tls-key",
        &fixture("key.pem"),
    ])
    .await;
    let addr = seckill
        .base
        .strip_prefix("https://")
        .expect("the engine announces an https URL")
        .to_string();

    let health = https(
        &addr,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    let body = r#"{"name": "over TLS", "stock": 3, "price_cents": 100}"#;
    let created = https(
        &addr,
        &format!(
            "POST /api/v1/sales HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
             Authorization: Bearer {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            seckill.admin_token(),
            body.len()
        ),
    )
    .await;
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");

    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut plain = TcpStream::connect(&addr).await.expect("connect");
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, plain.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "plain HTTP was served on the TLS port"
    );
}

#[tokio::test]
async fn a_key_without_its_certificate_is_refused_at_start() {
    let (_, stderr) = serve_refusal(&["--tls-key", &fixture("key.pem")]);
    assert!(stderr.contains("--tls-cert"), "{stderr}");
}
