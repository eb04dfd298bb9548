//! Request bodies: what clients may send when creating and updating resources.
//!
//! Every body is parsed into one of these types before anything else happens: an attribute
//! that is not listed is refused ("Unrecognized attribute(s)"), a value of the wrong type is
//! refused with the attribute's path (`fixed_ips[1].ip_address`), and nothing touches the
//! store until the whole body parsed. [`Field`] keeps Neutron's distinction between an absent
//! attribute (the default applies) and an explicit `null` (e.g. `gateway_ip: null`: no gateway).

use std::net::IpAddr;

use ipnetwork::IpNetwork;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{
    AllocationPool, Direction, EtherType, Ipv6Mode, MacAddr, NetworkId, PortId, Route,
    SecurityGroupId, SubnetId,
};

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not a JSON object with the resource's key.
    #[error("Resource body required: expected a JSON object with key '{0}'")]
    BodyRequired(String),
    /// Attributes nobody implements.
    #[error("Unrecognized attribute(s) '{}'", .0.join(", "))]
    Unrecognized(Vec<String>),
    /// A value of the wrong type or form.
    #[error("Invalid input for {attr}. Reason: {reason}.")]
    Invalid {
        /// The attribute's path in the resource (`fixed_ips[0].subnet_id`).
        attr: String,
        /// What is wrong.
        reason: String,
    },
}

/// An attribute of a request: absent, explicitly `null`, or a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Field<T> {
    /// Not in the body: the default (create) or the current value (update) applies.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A value.
    Value(T),
}

impl<T> Field<T> {
    /// The value, if one was given.
    pub fn value(self) -> Option<T> {
        match self {
            Field::Value(v) => Some(v),
            _ => None,
        }
    }

    /// Whether the attribute was in the body (even as `null`).
    pub fn is_present(&self) -> bool {
        !matches!(self, Field::Absent)
    }

    /// A reference to the value, if any.
    pub fn as_ref(&self) -> Field<&T> {
        match self {
            Field::Absent => Field::Absent,
            Field::Null => Field::Null,
            Field::Value(v) => Field::Value(v),
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(d)? {
            Some(v) => Field::Value(v),
            None => Field::Null,
        })
    }
}

/// A boolean as Neutron accepts it: `true`/`false`, or the strings "true"/"false"/"1"/"0" in
/// any case, or the numbers 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bool(pub bool);

impl<'de> Deserialize<'de> for Bool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let b = match &v {
            Value::Bool(b) => Some(*b),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            Value::Number(n) => match n.as_u64() {
                Some(1) => Some(true),
                Some(0) => Some(false),
                _ => None,
            },
            _ => None,
        };
        b.map(Bool)
            .ok_or_else(|| serde::de::Error::custom(format!("'{v}' is not a valid boolean value")))
    }
}

/// A number as Neutron accepts it: a JSON number or a string of digits (the `openstack` CLI
/// sends `"mtu": "1400"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Num<T>(pub T);

impl<'de, T: std::str::FromStr + DeserializeOwned> Deserialize<'de> for Num<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        let parsed = match &v {
            Value::String(s) => s.trim().parse::<T>().ok(),
            Value::Number(_) => serde_json::from_value::<T>(v.clone()).ok(),
            _ => None,
        };
        parsed.map(Num).ok_or_else(|| {
            serde::de::Error::custom(format!("'{v}' is not a valid integer in range"))
        })
    }
}

/// The owner attributes every create body may carry (`tenant_id` is the old name).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Owner {
    /// `project_id`.
    #[serde(default)]
    pub project_id: Field<String>,
    /// `tenant_id`.
    #[serde(default)]
    pub tenant_id: Field<String>,
}

impl Owner {
    /// The project asked for, if any. Both given and different is an error.
    pub fn requested(&self) -> Result<Option<String>, RequestError> {
        match (
            self.project_id.as_ref().value(),
            self.tenant_id.as_ref().value(),
        ) {
            (Some(p), Some(t)) if p != t => Err(RequestError::Invalid {
                attr: "project_id".into(),
                reason: "project_id and tenant_id do not match".into(),
            }),
            (Some(p), _) | (None, Some(p)) => Ok(Some(p.clone())),
            (None, None) => Ok(None),
        }
    }
}

/// Body of `POST /v2.0/networks`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkCreate {
    #[serde(default)]
    pub name: Field<String>,
    #[serde(default)]
    pub description: Field<String>,
    #[serde(default)]
    pub admin_state_up: Field<Bool>,
    #[serde(default)]
    pub shared: Field<Bool>,
    #[serde(default, rename = "router:external")]
    pub external: Field<Bool>,
    #[serde(default)]
    pub mtu: Field<Num<u32>>,
    #[serde(default)]
    pub port_security_enabled: Field<Bool>,
    #[serde(default, rename = "provider:network_type")]
    pub network_type: Field<String>,
    #[serde(default, rename = "provider:physical_network")]
    pub physical_network: Field<String>,
    #[serde(default, rename = "provider:segmentation_id")]
    pub segmentation_id: Field<Num<u32>>,
    #[serde(default)]
    pub tags: Field<Vec<String>>,
    #[serde(default)]
    pub project_id: Field<String>,
    #[serde(default)]
    pub tenant_id: Field<String>,
}

/// Body of `PUT /v2.0/networks/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkUpdate {
    #[serde(default)]
    pub name: Field<String>,
    #[serde(default)]
    pub description: Field<String>,
    #[serde(default)]
    pub admin_state_up: Field<Bool>,
    #[serde(default)]
    pub shared: Field<Bool>,
    #[serde(default, rename = "router:external")]
    pub external: Field<Bool>,
    #[serde(default)]
    pub mtu: Field<Num<u32>>,
    #[serde(default)]
    pub port_security_enabled: Field<Bool>,
}

/// Body of `POST /v2.0/subnets`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetCreate {
    #[serde(default)]
    pub name: Field<String>,
    #[serde(default)]
    pub description: Field<String>,
    #[serde(default)]
    pub network_id: Field<NetworkId>,
    #[serde(default)]
    pub ip_version: Field<Num<u8>>,
    #[serde(default)]
    pub cidr: Field<IpNetwork>,
    #[serde(default)]
    pub gateway_ip: Field<IpAddr>,
    #[serde(default)]
    pub allocation_pools: Field<Vec<AllocationPool>>,
    #[serde(default)]
    pub dns_nameservers: Field<Vec<IpAddr>>,
    #[serde(default)]
    pub host_routes: Field<Vec<Route>>,
    #[serde(default)]
    pub enable_dhcp: Field<Bool>,
    #[serde(default)]
    pub ipv6_ra_mode: Field<Ipv6Mode>,
    #[serde(default)]
    pub ipv6_address_mode: Field<Ipv6Mode>,
    /// Only `null` is accepted (subnet pools are not implemented).
    #[serde(default)]
    pub subnetpool_id: Field<Value>,
    #[serde(default)]
    pub tags: Field<Vec<String>>,
    #[serde(default)]
    pub project_id: Field<String>,
    #[serde(default)]
    pub tenant_id: Field<String>,
}

/// Body of `PUT /v2.0/subnets/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetUpdate {
    #[serde(default)]
    pub name: Field<String>,
    #[serde(default)]
    pub description: Field<String>,
    #[serde(default)]
    pub gateway_ip: Field<IpAddr>,
    #[serde(default)]
    pub allocation_pools: Field<Vec<AllocationPool>>,
    #[serde(default)]
    pub dns_nameservers: Field<Vec<IpAddr>>,
    #[serde(default)]
    pub host_routes: Field<Vec<Route>>,
    #[serde(default)]
    pub enable_dhcp: Field<Bool>,
}

/// One entry of a port's requested `fixed_ips`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FixedIpRequest {
    /// Allocate from this subnet.
    #[serde(default)]
    pub subnet_id: Option<SubnetId>,
    /// This address.
    #[serde(default)]
    pub ip_address: Option<IpAddr>,
}

/// One requested allowed address pair.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AddressPairRequest {
    /// An address or prefix.
    pub ip_address: String,
    /// Defaults to the port's MAC.
    #[serde(default)]
    pub mac_address: Option<MacAddr>,
}

/// Body of `POST /v2.0/ports`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortCreate {
    #[serde(default)]
    pub name: Field<String>,
    #[serde(default)]
    pub description: Field<String>,
    #[serde(default)]
    pub network_id: Field<NetworkId>,
    #[serde(default)]
    pub admin_state_up: Field<Bool>,
    #[serde(default)]
    pub mac_address: Field<MacAddr>,
    #[serde(default)]
    pub fixed_ips: Field<Vec<FixedIpRequest>>,
    #[serde(default)]
    pub device_id: Field<String>,
    #[serde(default)]
    pub device_owner: Field<String>,
    #[serde(default)]
    pub security_groups: Field<Vec<SecurityGroupId>>,
    #[serde(default)]
    pub port_security_enabled: Field<Bool>,
    #[serde(default)]
    pub allowed_address_pairs: Field<Vec<AddressPairRequest>>,
    #[serde(default, rename = "binding:host_id")]
    pub host_id: Field<String>,
    /// Only `normal` is accepted.
    #[serde(default, rename = "binding:vnic_type")]
    pub vnic_type: Field<String>,
    #[serde(default)]
    pub tags: Field<Vec<String>>,
    #[serde(default)]
    pub project_id: Field<String>,
    #[serde(default)]
    pub tenant_id: Field<String>,
}

/// Body of `PUT /v2.0/ports/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortUpdate {
    #[serde(default)]
    pub name: Field<String>,
    #[serde(default)]
    pub description: Field<String>,
    #[serde(default)]
    pub admin_state_up: Field<Bool>,
    #[serde(default)]
    pub mac_address: Field<MacAddr>,
    #[serde(default)]
    pub fixed_ips: Field<Vec<FixedIpRequest>>,
    #[serde(default)]
    pub device_id: Field<String>,
    #[serde(default)]
    pub device_owner: Field<String>,
    #[serde(default)]
    pub security_groups: Field<Vec<SecurityGroupId>>,
    #[serde(default)]
    pub port_security_enabled: Field<Bool>,
    #[serde(default)]
    pub allowed_address_pairs: Field<Vec<AddressPairRequest>>,
    #[serde(default, rename = "binding:host_id")]
    pub host_id: Field<String>,
    #[serde(default, rename = "binding:vnic_type")]
    pub vnic_type: Field<String>,
}

/// A router's requested `external_gateway_info`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct GatewayRequest {
    /// The external network; an empty object (no network) removes the gateway, as the
    /// `openstack router unset --external-gateway` sends it.
    #[serde(default)]
    pub network_id: Option<NetworkId>,
    /// Default true.
    #[serde(default)]
    pub enable_snat: Option<Bool>,
    /// Addresses for the gateway port (admin only).
    #[serde(default)]
    pub external_fixed_ips: Option<Vec<FixedIpRequest>>,
}

/// Body of `POST /v2.0/routers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterCreate {
    #[serde(default)]
    pub name: Field<String>,
    #[serde(default)]
    pub description: Field<String>,
    #[serde(default)]
    pub admin_state_up: Field<Bool>,
    #[serde(default)]
    pub external_gateway_info: Field<GatewayRequest>,
    #[serde(default)]
    pub tags: Field<Vec<String>>,
    #[serde(default)]
    pub project_id: Field<String>,
    #[serde(default)]
    pub tenant_id: Field<String>,
}

/// Body of `PUT /v2.0/routers/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterUpdate {
    #[serde(default)]
    pub name: Field<String>,
    #[serde(default)]
    pub description: Field<String>,
    #[serde(default)]
    pub admin_state_up: Field<Bool>,
    #[serde(default)]
    pub external_gateway_info: Field<GatewayRequest>,
    #[serde(default)]
    pub routes: Field<Vec<Route>>,
}

/// Body of `PUT /v2.0/routers/{id}/add_router_interface` (and remove): one of the two.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceRequest {
    #[serde(default)]
    pub subnet_id: Option<SubnetId>,
    #[serde(default)]
    pub port_id: Option<PortId>,
}

/// Body of `POST /v2.0/floatingips`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatingIpCreate {
    #[serde(default)]
    pub floating_network_id: Field<NetworkId>,
    #[serde(default)]
    pub floating_ip_address: Field<IpAddr>,
    #[serde(default)]
    pub subnet_id: Field<SubnetId>,
    #[serde(default)]
    pub port_id: Field<PortId>,
    #[serde(default)]
    pub fixed_ip_address: Field<IpAddr>,
    #[serde(default)]
    pub description: Field<String>,
    #[serde(default)]
    pub tags: Field<Vec<String>>,
    #[serde(default)]
    pub project_id: Field<String>,
    #[serde(default)]
    pub tenant_id: Field<String>,
}

/// Body of `PUT /v2.0/floatingips/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatingIpUpdate {
    #[serde(default)]
    pub port_id: Field<PortId>,
    #[serde(default)]
    pub fixed_ip_address: Field<IpAddr>,
    #[serde(default)]
    pub description: Field<String>,
}

/// Body of `POST /v2.0/floatingips/{id}/port_forwardings` and of `PUT .../{pf_id}` (where
/// every attribute is optional).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortForwardingRequest {
    #[serde(default)]
    pub protocol: Field<String>,
    #[serde(default)]
    pub external_port: Field<Num<i64>>,
    #[serde(default)]
    pub internal_port: Field<Num<i64>>,
    #[serde(default)]
    pub internal_ip_address: Field<IpAddr>,
    #[serde(default)]
    pub internal_port_id: Field<PortId>,
    #[serde(default)]
    pub description: Field<String>,
    /// Only `null` is accepted (port ranges are not implemented).
    #[serde(default)]
    pub external_port_range: Field<Value>,
    /// Only `null` is accepted (port ranges are not implemented).
    #[serde(default)]
    pub internal_port_range: Field<Value>,
    #[serde(default)]
    pub project_id: Field<String>,
    #[serde(default)]
    pub tenant_id: Field<String>,
}

/// Body of `POST /v2.0/security-groups`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupCreate {
    #[serde(default)]
    pub name: Field<String>,
    #[serde(default)]
    pub description: Field<String>,
    /// Only `true` is accepted.
    #[serde(default)]
    pub stateful: Field<Bool>,
    #[serde(default)]
    pub tags: Field<Vec<String>>,
    #[serde(default)]
    pub project_id: Field<String>,
    #[serde(default)]
    pub tenant_id: Field<String>,
}

/// Body of `PUT /v2.0/security-groups/{id}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupUpdate {
    #[serde(default)]
    pub name: Field<String>,
    #[serde(default)]
    pub description: Field<String>,
}

/// A protocol as a name or a number (JSON string or integer).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ProtocolValue {
    /// `"tcp"`, `"6"`, ...
    Text(String),
    /// `6`.
    Number(i64),
}

/// Body of `POST /v2.0/security-group-rules`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleCreate {
    #[serde(default)]
    pub security_group_id: Field<SecurityGroupId>,
    #[serde(default)]
    pub direction: Field<Direction>,
    #[serde(default)]
    pub ethertype: Field<EtherType>,
    #[serde(default)]
    pub protocol: Field<ProtocolValue>,
    #[serde(default)]
    pub port_range_min: Field<Num<i64>>,
    #[serde(default)]
    pub port_range_max: Field<Num<i64>>,
    #[serde(default)]
    pub remote_ip_prefix: Field<IpNetwork>,
    #[serde(default)]
    pub remote_group_id: Field<SecurityGroupId>,
    /// Only `null` is accepted (address groups are not implemented).
    #[serde(default)]
    pub remote_address_group_id: Field<Value>,
    #[serde(default)]
    pub description: Field<String>,
    #[serde(default)]
    pub project_id: Field<String>,
    #[serde(default)]
    pub tenant_id: Field<String>,
}

/// Body of `PUT /v2.0/{collection}/{id}/tags` and `POST` (add).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagsBody {
    /// The tags.
    pub tags: Vec<String>,
}

/// Turns a serde error at `path` into a [`RequestError`] that names the attribute.
fn from_serde(e: serde_path_to_error::Error<serde_json::Error>) -> RequestError {
    let path = e.path().to_string();
    let msg = e.inner().to_string();
    // serde's unknown-field message: "unknown field `foo`, expected one of ..."
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or(rest);
        let full = if path == "." || path.is_empty() {
            name.to_owned()
        } else if path.ends_with(name) {
            path
        } else {
            format!("{path}.{name}")
        };
        return RequestError::Unrecognized(vec![full]);
    }
    let reason = msg
        .split(" at line ")
        .next()
        .unwrap_or(&msg)
        .trim_end_matches('.')
        .to_owned();
    let attr = if path == "." || path.is_empty() {
        "body".to_owned()
    } else {
        path
    };
    RequestError::Invalid { attr, reason }
}

/// Parses one resource's attributes (the object under the resource key) into `T`.
pub fn parse_attrs<T: DeserializeOwned>(attrs: &Value) -> Result<T, RequestError> {
    if !attrs.is_object() {
        return Err(RequestError::Invalid {
            attr: "body".into(),
            reason: "expected a JSON object of attributes".into(),
        });
    }
    serde_path_to_error::deserialize(attrs).map_err(from_serde)
}

/// Parses a body `{"<key>": {...}}` into `T`.
pub fn parse_one<T: DeserializeOwned>(body: &Value, key: &str) -> Result<T, RequestError> {
    let attrs = body
        .as_object()
        .and_then(|o| o.get(key))
        .ok_or_else(|| RequestError::BodyRequired(key.to_owned()))?;
    if let Some(o) = body.as_object()
        && o.len() > 1
    {
        let extra: Vec<String> = o.keys().filter(|k| *k != key).cloned().collect();
        return Err(RequestError::Unrecognized(extra));
    }
    parse_attrs(attrs)
}

/// Parses a create body: `{"<key>": {...}}` (one) or `{"<keys>": [{...}, ...]}` (bulk, all in
/// one transaction).
pub fn parse_create<T: DeserializeOwned>(
    body: &Value,
    key: &str,
    plural: &str,
) -> Result<Vec<T>, RequestError> {
    let Some(o) = body.as_object() else {
        return Err(RequestError::BodyRequired(key.to_owned()));
    };
    if let Some(list) = o.get(plural) {
        if o.len() > 1 {
            let extra: Vec<String> = o.keys().filter(|k| *k != plural).cloned().collect();
            return Err(RequestError::Unrecognized(extra));
        }
        let Some(items) = list.as_array() else {
            return Err(RequestError::Invalid {
                attr: plural.to_owned(),
                reason: "expected a list of objects".into(),
            });
        };
        if items.is_empty() {
            return Err(RequestError::Invalid {
                attr: plural.to_owned(),
                reason: "the list is empty".into(),
            });
        }
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                parse_attrs(item).map_err(|e| match e {
                    RequestError::Invalid { attr, reason } => RequestError::Invalid {
                        attr: format!("{plural}[{i}].{attr}"),
                        reason,
                    },
                    other => other,
                })
            })
            .collect();
    }
    parse_one(body, key).map(|one| vec![one])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_distinguish_absent_null_and_value() {
        let s: SubnetCreate = parse_attrs(&json!({"gateway_ip": null})).unwrap();
        assert_eq!(s.gateway_ip, Field::Null);
        assert_eq!(s.cidr, Field::Absent);
        let s: SubnetCreate = parse_attrs(&json!({"gateway_ip": "10.0.0.1"})).unwrap();
        assert_eq!(s.gateway_ip, Field::Value("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn unknown_attributes_are_named() {
        let e =
            parse_one::<NetworkCreate>(&json!({"network": {"name": "a", "colour": 1}}), "network")
                .unwrap_err();
        assert_eq!(e, RequestError::Unrecognized(vec!["colour".into()]));
        let e = parse_one::<PortCreate>(&json!({"port": {"fixed_ips": [{"subnet": "x"}]}}), "port")
            .unwrap_err();
        assert_eq!(
            e,
            RequestError::Unrecognized(vec!["fixed_ips[0].subnet".into()])
        );
    }

    #[test]
    fn wrong_types_name_the_attribute() {
        let e =
            parse_one::<NetworkCreate>(&json!({"network": {"admin_state_up": "maybe"}}), "network")
                .unwrap_err();
        match e {
            RequestError::Invalid { attr, .. } => assert_eq!(attr, "admin_state_up"),
            other => panic!("{other:?}"),
        }
        let e = parse_one::<PortCreate>(
            &json!({"port": {"fixed_ips": [{"ip_address": "10.0.0.300"}]}}),
            "port",
        )
        .unwrap_err();
        match e {
            RequestError::Invalid { attr, .. } => assert_eq!(attr, "fixed_ips[0].ip_address"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_one::<NetworkCreate>(&json!([1, 2]), "network"),
            Err(RequestError::BodyRequired(_))
        ));
    }

    #[test]
    fn booleans_are_lenient_like_neutron() {
        for (v, want) in [
            (json!(true), true),
            (json!("False"), false),
            (json!(1), true),
        ] {
            let n: NetworkCreate = parse_attrs(&json!({ "shared": v })).unwrap();
            assert_eq!(n.shared, Field::Value(Bool(want)));
        }
        assert!(parse_attrs::<NetworkCreate>(&json!({"shared": "yes"})).is_err());
    }

    #[test]
    fn bulk_bodies() {
        let v: Vec<NetworkCreate> = parse_create(
            &json!({"networks": [{"name": "a"}, {"name": "b"}]}),
            "network",
            "networks",
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        let e = parse_create::<NetworkCreate>(
            &json!({"networks": [{"name": "a"}, {"mtu": "x"}]}),
            "network",
            "networks",
        )
        .unwrap_err();
        match e {
            RequestError::Invalid { attr, .. } => assert_eq!(attr, "networks[1].mtu"),
            other => panic!("{other:?}"),
        }
    }
}
