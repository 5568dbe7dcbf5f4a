//! The rustls server configuration for [`ServerTls`].

use std::io;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::server::ServerTls;

/// Builds a TLS acceptor offering ALPN "h2", requiring client certificates
/// when `tls.client_ca_pem` is set.
pub(crate) fn acceptor(tls: &ServerTls) -> io::Result<TlsAcceptor> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = parse_certs(&tls.cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).map_err(invalid)?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(invalid)?;
    let builder = match &tls.client_ca_pem {
        Some(ca_pem) => {
            let mut roots = RootCertStore::empty();
            for cert in parse_certs(ca_pem)? {
                roots.add(cert).map_err(invalid)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(invalid)?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(invalid)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn parse_certs(pem: &str) -> io::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    if certs.is_empty() {
        return Err(invalid("no certificate in PEM"));
    }
    Ok(certs)
}

fn invalid(error: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error)
}
