//! The rustls client settings shared by every `https://` connection of a pool.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use crate::config::TlsConfig;
use crate::Error;

/// Builds the client config: the chosen roots, an optional client identity, ALPN `h2`.
pub(crate) fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| Error::Tls(error.to_string()))?
        .with_root_certificates(roots(tls)?);
    let mut config = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (Some(cert_pem), Some(key_pem)) => {
            let chain = certificates(cert_pem, "client certificate")?;
            let key = PrivateKeyDer::from_pem_slice(key_pem)
                .map_err(|error| Error::Tls(format!("client key: {error}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| Error::Tls(format!("client certificate: {error}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(Error::Tls(
                "a client certificate needs its key, and a key its certificate".to_owned(),
            ))
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The name to verify: the override if set, else the target's host.
pub(crate) fn server_name(tls: &TlsConfig, host: &str) -> Result<ServerName<'static>, Error> {
    let name = tls.server_name_override.as_deref().unwrap_or(host);
    ServerName::try_from(name.to_owned())
        .map_err(|error| Error::Tls(format!("server name {name:?}: {error}")))
}

fn roots(tls: &TlsConfig) -> Result<RootCertStore, Error> {
    let mut store = RootCertStore::empty();
    match &tls.ca_pem {
        Some(pem) => {
            for certificate in certificates(pem, "CA")? {
                store
                    .add(certificate)
                    .map_err(|error| Error::Tls(format!("CA certificate: {error}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for certificate in found.certs {
                // One unparsable system certificate should not make TLS unusable.
                let _ = store.add(certificate);
            }
            if store.is_empty() {
                return Err(Error::Tls(format!(
                    "no system root certificates found ({} errors); set a CA",
                    found.errors.len()
                )));
            }
        }
    }
    Ok(store)
}

fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Error::Tls(format!("{what} PEM: {error}")))?;
    if chain.is_empty() {
        return Err(Error::Tls(format!("{what} PEM holds no certificate")));
    }
    Ok(chain)
}
