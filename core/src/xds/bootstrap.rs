//! The xDS bootstrap (gRPC A27): which control plane to ask and who the client is. It comes
//! from the pool's `xds_bootstrap` setting, else the file `GRPC_XDS_BOOTSTRAP` names, else the
//! JSON in `GRPC_XDS_BOOTSTRAP_CONFIG`, as gRPC reads them.

use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{Locality, Node};
use envoy_types::pb::google::protobuf::value::Kind as ProtoKind;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value as ProtoValue};
use serde_json::{Map, Value};

/// The environment variable naming a bootstrap file.
pub(crate) const BOOTSTRAP_FILE_ENV: &str = "GRPC_XDS_BOOTSTRAP";
/// The environment variable holding the bootstrap JSON itself.
pub(crate) const BOOTSTRAP_CONFIG_ENV: &str = "GRPC_XDS_BOOTSTRAP_CONFIG";

/// How the connection to a control plane is secured (the first of `channel_creds` that the
/// pool supports, as gRPC picks it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChannelCreds {
    /// `insecure`: plaintext HTTP/2.
    Insecure,
    /// `tls`: TLS with the pool's TLS settings (roots, client certificate).
    Tls,
}

/// One entry of `xds_servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XdsServer {
    /// `server_uri`: `host:port`, `dns:///host:port` or `unix:/path`.
    pub(crate) uri: String,
    pub(crate) creds: ChannelCreds,
    /// `server_features`, e.g. `ignore_resource_deletion`.
    pub(crate) features: Vec<String>,
}

impl XdsServer {
    /// Whether the server asked for resources it stops sending to be kept (gRPC A53).
    pub(crate) fn ignores_resource_deletion(&self) -> bool {
        self.features
            .iter()
            .any(|feature| feature == "ignore_resource_deletion")
    }
}

/// The parts of `node` the client sends to the control plane.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct NodeInfo {
    pub(crate) id: String,
    pub(crate) cluster: String,
    /// `locality`: region, zone, sub_zone.
    pub(crate) locality: Option<(String, String, String)>,
    /// `metadata`, a JSON object sent as a `google.protobuf.Struct`.
    pub(crate) metadata: Map<String, Value>,
}

/// A parsed bootstrap.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bootstrap {
    /// The control plane: the first of `xds_servers` (gRPC uses the others only as
    /// fallbacks, which the pool does not do).
    pub(crate) server: XdsServer,
    pub(crate) node: NodeInfo,
}

impl Bootstrap {
    /// The bootstrap the pool runs under: `setting` (the pool's `xds_bootstrap`) if given,
    /// else the file `GRPC_XDS_BOOTSTRAP` names, else `GRPC_XDS_BOOTSTRAP_CONFIG`.
    pub(crate) fn load(setting: Option<&str>) -> Result<Bootstrap, String> {
        if let Some(json) = setting {
            return Bootstrap::parse(json).map_err(|error| format!("xds_bootstrap: {error}"));
        }
        if let Some(path) = std::env::var_os(BOOTSTRAP_FILE_ENV).filter(|path| !path.is_empty()) {
            let text = std::fs::read_to_string(&path).map_err(|error| {
                format!(
                    "reading the xDS bootstrap {} ({BOOTSTRAP_FILE_ENV}): {error}",
                    path.to_string_lossy()
                )
            })?;
            return Bootstrap::parse(&text).map_err(|error| {
                format!(
                    "the xDS bootstrap {} ({BOOTSTRAP_FILE_ENV}): {error}",
                    path.to_string_lossy()
                )
            });
        }
        if let Ok(json) = std::env::var(BOOTSTRAP_CONFIG_ENV) {
            if !json.is_empty() {
                return Bootstrap::parse(&json)
                    .map_err(|error| format!("{BOOTSTRAP_CONFIG_ENV}: {error}"));
            }
        }
        Err(format!(
            "no xDS bootstrap: set the pool's xds_bootstrap, {BOOTSTRAP_FILE_ENV} or \
             {BOOTSTRAP_CONFIG_ENV}"
        ))
    }

    /// Parses bootstrap JSON; unknown fields are ignored, as gRPC ignores them.
    pub(crate) fn parse(json: &str) -> Result<Bootstrap, String> {
        let root: Value =
            serde_json::from_str(json).map_err(|error| format!("not JSON: {error}"))?;
        let root = root.as_object().ok_or("not a JSON object")?;
        let servers = root
            .get("xds_servers")
            .and_then(Value::as_array)
            .ok_or("xds_servers must be a list")?;
        let first = servers.first().ok_or("xds_servers is empty")?;
        let server = parse_server(first)?;
        let node = match root.get("node") {
            None | Some(Value::Null) => NodeInfo::default(),
            Some(node) => parse_node(node)?,
        };
        Ok(Bootstrap { server, node })
    }
}

fn parse_server(value: &Value) -> Result<XdsServer, String> {
    let server = value
        .as_object()
        .ok_or("an xds_servers entry is not an object")?;
    let uri = server
        .get("server_uri")
        .and_then(Value::as_str)
        .filter(|uri| !uri.is_empty())
        .ok_or("xds_servers[0].server_uri must be a non-empty string")?
        .to_owned();
    let creds = server
        .get("channel_creds")
        .and_then(Value::as_array)
        .ok_or("xds_servers[0].channel_creds must be a list")?;
    let mut picked = None;
    let mut seen = Vec::new();
    for entry in creds {
        let kind = entry
            .get("type")
            .and_then(Value::as_str)
            .ok_or("every channel_creds entry needs a \"type\"")?;
        seen.push(kind.to_owned());
        picked = match kind {
            "insecure" => Some(ChannelCreds::Insecure),
            "tls" => Some(ChannelCreds::Tls),
            _ => continue,
        };
        break;
    }
    let creds = picked
        .ok_or_else(|| format!("no supported channel_creds (insecure or tls) among {seen:?}"))?;
    let features = match server.get("server_features") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(features)) => features
            .iter()
            .map(|feature| {
                feature
                    .as_str()
                    .map(str::to_owned)
                    .ok_or("server_features holds strings only")
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("server_features must be a list".to_owned()),
    };
    Ok(XdsServer {
        uri,
        creds,
        features,
    })
}

fn parse_node(value: &Value) -> Result<NodeInfo, String> {
    let node = value.as_object().ok_or("node must be an object")?;
    let text = |name: &str| -> Result<String, String> {
        match node.get(name) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(text)) => Ok(text.clone()),
            Some(_) => Err(format!("node.{name} must be a string")),
        }
    };
    let locality = match node.get("locality") {
        None | Some(Value::Null) => None,
        Some(Value::Object(locality)) => {
            let part = |name: &str| {
                locality
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            Some((part("region"), part("zone"), part("sub_zone")))
        }
        Some(_) => return Err("node.locality must be an object".to_owned()),
    };
    let metadata = match node.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(metadata)) => metadata.clone(),
        Some(_) => return Err("node.metadata must be an object".to_owned()),
    };
    Ok(NodeInfo {
        id: text("id")?,
        cluster: text("cluster")?,
        locality,
        metadata,
    })
}

impl NodeInfo {
    /// The `Node` the first request of each ADS stream carries.
    pub(crate) fn to_proto(&self) -> Node {
        Node {
            id: self.id.clone(),
            cluster: self.cluster.clone(),
            metadata: (!self.metadata.is_empty()).then(|| object_to_struct(&self.metadata)),
            locality: self
                .locality
                .as_ref()
                .map(|(region, zone, sub_zone)| Locality {
                    region: region.clone(),
                    zone: zone.clone(),
                    sub_zone: sub_zone.clone(),
                }),
            user_agent_name: "grpcpool".to_owned(),
            user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion(
                env!("CARGO_PKG_VERSION").to_owned(),
            )),
            // As gRPC: no overprovisioning factor, and resources wrapped in `Resource` are
            // understood in state-of-the-world responses.
            client_features: vec![
                "envoy.lb.does_not_support_overprovisioning".to_owned(),
                "xds.config.resource-in-sotw".to_owned(),
            ],
            ..Node::default()
        }
    }
}

fn object_to_struct(object: &Map<String, Value>) -> Struct {
    Struct {
        fields: object
            .iter()
            .map(|(key, value)| (key.clone(), json_to_proto(value)))
            .collect(),
    }
}

fn json_to_proto(value: &Value) -> ProtoValue {
    let kind = match value {
        Value::Null => ProtoKind::NullValue(0),
        Value::Bool(flag) => ProtoKind::BoolValue(*flag),
        Value::Number(number) => ProtoKind::NumberValue(number.as_f64().unwrap_or_default()),
        Value::String(text) => ProtoKind::StringValue(text.clone()),
        Value::Array(items) => ProtoKind::ListValue(ListValue {
            values: items.iter().map(json_to_proto).collect(),
        }),
        Value::Object(object) => ProtoKind::StructValue(object_to_struct(object)),
    };
    ProtoValue { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_servers_creds_features_and_node() {
        let bootstrap = Bootstrap::parse(
            r#"{
              "xds_servers": [{
                "server_uri": "127.0.0.1:18000",
                "channel_creds": [{"type": "google_default"}, {"type": "tls"}],
                "server_features": ["xds_v3", "ignore_resource_deletion"]
              }],
              "node": {"id": "n1", "cluster": "c", "locality": {"zone": "z"},
                       "metadata": {"k": 1}},
              "certificate_providers": {}
            }"#,
        )
        .expect("valid");
        assert_eq!(bootstrap.server.uri, "127.0.0.1:18000");
        assert_eq!(bootstrap.server.creds, ChannelCreds::Tls);
        assert!(bootstrap.server.ignores_resource_deletion());
        assert_eq!(bootstrap.node.id, "n1");
        assert_eq!(
            bootstrap.node.locality,
            Some((String::new(), "z".to_owned(), String::new()))
        );
        assert_eq!(bootstrap.node.metadata.len(), 1);
    }

    #[test]
    fn refuses_what_cannot_be_used_with_a_reason() {
        for (bad, says) in [
            ("[]", "object"),
            ("{}", "xds_servers"),
            (r#"{"xds_servers": []}"#, "empty"),
            (r#"{"xds_servers": [{"channel_creds": []}]}"#, "server_uri"),
            (
                r#"{"xds_servers": [{"server_uri": "a:1", "channel_creds": [{"type": "x"}]}]}"#,
                "channel_creds",
            ),
            (
                r#"{"xds_servers": [{"server_uri": "a:1", "channel_creds": [{"type": "insecure"}]}],
                    "node": {"id": 5}}"#,
                "node.id",
            ),
        ] {
            let error = Bootstrap::parse(bad).expect_err(bad);
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
