//! A throwaway certificate authority for TLS tests.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// A self-made CA that issues server and client certificates, all PEM.
#[derive(Debug)]
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
}

impl TestCa {
    /// Makes a new CA with a fresh key.
    pub fn new() -> Result<TestCa, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = common_name("grpcpool test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(TestCa {
            issuer: Issuer::new(params, key),
            ca_pem: cert.pem(),
        })
    }

    /// The CA certificate, to trust as a root.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// Issues a server certificate for `names`: each is a DNS name, or an IP
    /// address SAN when it parses as one (such as "127.0.0.1").
    /// Returns `(certificate PEM, private key PEM)`.
    pub fn server_cert(&self, names: &[&str]) -> Result<(String, String), rcgen::Error> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone())?;
        params.distinguished_name =
            common_name(names.first().map_or("grpcpool test server", String::as_str));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// Issues a server certificate like [`TestCa::server_cert`] for a key made elsewhere (for
    /// example an RSA key, which rcgen cannot generate). Returns the certificate PEM.
    pub fn server_cert_for_key(
        &self,
        names: &[&str],
        key_pem: &str,
    ) -> Result<String, rcgen::Error> {
        let key = KeyPair::from_pem(key_pem)?;
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone())?;
        params.distinguished_name =
            common_name(names.first().map_or("grpcpool test server", String::as_str));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        Ok(params.signed_by(&key, &self.issuer)?.pem())
    }

    /// Issues a client certificate with subject CN `common_name`.
    /// Returns `(certificate PEM, private key PEM)`.
    pub fn client_cert(&self, common_name: &str) -> Result<(String, String), rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = self::common_name(common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }

    fn issue(&self, mut params: CertificateParams) -> Result<(String, String), rcgen::Error> {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}
