//! Differences between two node configurations, as the controller streams them to agents
//! (`docs/node-api.md`).
//!
//! A [`ConfigDelta`] lists, for each keyed collection of a [`NodeConfig`], the elements to insert
//! or replace and the keys to remove. The node's identity, underlay and learning settings are
//! never part of a delta, nor are the state-table limits: when they change, [`diff`] answers
//! `None` and the controller sends a whole configuration instead. Applying the delta of `old → new` to `old` gives `new` exactly,
//! provided both keep their collections sorted by key ([`NodeConfig::sort_by_key`]), which the
//! compiler does and [`ConfigDelta::apply`] preserves.
//!
//! Address sets are the exception to "whole elements": a set both configurations have travels
//! as the addresses added and removed ([`AddressSetPatch`]) when that is shorter than the set,
//! so that one port joining a security group of thousands costs its own addresses, not the
//! group's.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use ipnetwork::IpNetwork;

use crate::config::{
    AddressSetConfig, NodeConfig, PortConfig, RemoteBindingConfig, RemoteVtepConfig, RouterConfig,
    SecurityGroupConfig, SegmentConfig,
};
use crate::wire::mac::MacAddr;
use crate::wire::vxlan::Vni;

/// Why a delta does not apply to a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The delta patches the members of an address set the configuration does not have.
    #[error("the delta patches address set {0:?}, which the configuration does not have")]
    UnknownAddressSet(String),
}

/// An element of a keyed collection of a node configuration.
pub trait Keyed {
    /// What identifies the element in its collection (the order collections are kept in).
    type Key: Ord + ToString;
    /// The element's key.
    fn key(&self) -> Self::Key;
}

impl Keyed for SegmentConfig {
    type Key = u32;
    fn key(&self) -> u32 {
        self.vni.get()
    }
}

impl Keyed for PortConfig {
    type Key = String;
    fn key(&self) -> String {
        self.name.clone()
    }
}

impl Keyed for RemoteVtepConfig {
    type Key = IpAddr;
    fn key(&self) -> IpAddr {
        self.ip
    }
}

impl Keyed for RouterConfig {
    type Key = String;
    fn key(&self) -> String {
        self.name.clone()
    }
}

impl Keyed for SecurityGroupConfig {
    type Key = String;
    fn key(&self) -> String {
        self.name.clone()
    }
}

impl Keyed for AddressSetConfig {
    type Key = String;
    fn key(&self) -> String {
        self.name.clone()
    }
}

/// A remote binding's key: its segment and MAC, written `vni/mac`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BindingKey(pub Vni, pub MacAddr);

impl std::fmt::Display for BindingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.0, self.1)
    }
}

impl Keyed for RemoteBindingConfig {
    type Key = BindingKey;
    fn key(&self) -> BindingKey {
        BindingKey(self.vni, self.mac)
    }
}

/// Changes to one keyed collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Changes<T> {
    /// Elements to insert, or to replace the element with the same key.
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    pub upsert: Vec<T>,
    /// Keys of elements to remove (their string form, see [`Keyed`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl<T> Default for Changes<T> {
    fn default() -> Self {
        Changes {
            upsert: Vec::new(),
            remove: Vec::new(),
        }
    }
}

impl<T: Keyed + Clone + PartialEq> Changes<T> {
    /// What turns `old` into `new` (both sorted by key, keys unique).
    fn between(old: &[T], new: &[T]) -> Changes<T> {
        let old_by_key: BTreeMap<T::Key, &T> = old.iter().map(|e| (e.key(), e)).collect();
        let new_keys: BTreeMap<T::Key, ()> = new.iter().map(|e| (e.key(), ())).collect();
        Changes {
            upsert: new
                .iter()
                .filter(|e| old_by_key.get(&e.key()) != Some(e))
                .cloned()
                .collect(),
            remove: old_by_key
                .keys()
                .filter(|k| !new_keys.contains_key(k))
                .map(ToString::to_string)
                .collect(),
        }
    }

    /// Applies the changes to `list`, which is then sorted by key.
    fn apply_to(&self, list: &mut Vec<T>) {
        if self.is_empty() {
            return;
        }
        let mut by_key: BTreeMap<T::Key, T> = list.drain(..).map(|e| (e.key(), e)).collect();
        if !self.remove.is_empty() {
            by_key.retain(|k, _| !self.remove.contains(&k.to_string()));
        }
        for e in &self.upsert {
            by_key.insert(e.key(), e.clone());
        }
        list.extend(by_key.into_values());
    }

    fn is_empty(&self) -> bool {
        self.upsert.is_empty() && self.remove.is_empty()
    }
}

/// What changed between two configurations of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDelta {
    /// Segments, by VNI.
    #[serde(default, skip_serializing_if = "Changes::is_empty")]
    pub segments: Changes<SegmentConfig>,
    /// Local ports, by name.
    #[serde(default, skip_serializing_if = "Changes::is_empty")]
    pub ports: Changes<PortConfig>,
    /// Remote VTEPs, by address.
    #[serde(default, skip_serializing_if = "Changes::is_empty")]
    pub remote_vteps: Changes<RemoteVtepConfig>,
    /// Remote bindings, by `vni/mac`.
    #[serde(default, skip_serializing_if = "Changes::is_empty")]
    pub remote_bindings: Changes<RemoteBindingConfig>,
    /// Hosted routers, by name.
    #[serde(default, skip_serializing_if = "Changes::is_empty")]
    pub routers: Changes<RouterConfig>,
    /// Security groups, by name.
    #[serde(default, skip_serializing_if = "Changes::is_empty")]
    pub security_groups: Changes<SecurityGroupConfig>,
    /// Address sets, by name: new sets, sets replaced whole, sets removed.
    #[serde(default, skip_serializing_if = "Changes::is_empty")]
    pub address_sets: Changes<AddressSetConfig>,
    /// Addresses added to and removed from sets the node already has (applied after
    /// `address_sets`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address_set_members: Vec<AddressSetPatch>,
}

/// Addresses added to and removed from one address set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressSetPatch {
    /// The set's name. A set the node does not have is created (empty, then patched).
    pub name: String,
    /// Addresses to add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub add: Vec<IpNetwork>,
    /// Addresses to remove (absent ones are ignored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<IpNetwork>,
}

impl AddressSetPatch {
    /// What turns `old` into `new` (both sorted, without duplicates): a sorted merge.
    fn between(old: &[IpNetwork], new: &[IpNetwork]) -> (Vec<IpNetwork>, Vec<IpNetwork>) {
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            match (old.get(i), new.get(j)) {
                (Some(a), Some(b)) if a == b => {
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a < b => {
                    remove.push(*a);
                    i += 1;
                }
                (Some(a), None) => {
                    remove.push(*a);
                    i += 1;
                }
                (_, Some(b)) => {
                    add.push(*b);
                    j += 1;
                }
                (None, None) => break,
            }
        }
        (add, remove)
    }

    /// Applies the patch to `addresses`, which end up sorted and without duplicates.
    fn apply_to(&self, addresses: &mut Vec<IpNetwork>) {
        if !self.remove.is_empty() {
            let mut gone = self.remove.clone();
            gone.sort_unstable();
            addresses.retain(|a| gone.binary_search(a).is_err());
        }
        addresses.extend_from_slice(&self.add);
        addresses.sort_unstable();
        addresses.dedup();
    }
}

/// The address-set part of a delta: sets `new` has and `old` does not, or whose change is no
/// shorter than the set, go whole; other changed sets go as patches.
fn address_set_changes(
    old: &[AddressSetConfig],
    new: &[AddressSetConfig],
) -> (Changes<AddressSetConfig>, Vec<AddressSetPatch>) {
    let old_by_name: BTreeMap<&str, &AddressSetConfig> =
        old.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut whole = Changes::between(old, new);
    let mut patches = Vec::new();
    whole.upsert.retain(|s| {
        let Some(before) = old_by_name.get(s.name.as_str()) else {
            return true;
        };
        let (add, remove) = AddressSetPatch::between(&before.addresses, &s.addresses);
        if add.len() + remove.len() >= s.addresses.len().max(1) {
            return true;
        }
        patches.push(AddressSetPatch {
            name: s.name.clone(),
            add,
            remove,
        });
        false
    });
    (whole, patches)
}

impl ConfigDelta {
    /// Whether the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
            && self.ports.is_empty()
            && self.remote_vteps.is_empty()
            && self.remote_bindings.is_empty()
            && self.routers.is_empty()
            && self.security_groups.is_empty()
            && self.address_sets.is_empty()
            && self.address_set_members.is_empty()
    }

    /// Applies the delta to `cfg` (whose collections end up sorted by key). The revision is the
    /// caller's to set.
    ///
    /// A patch to an address set `cfg` lacks means the delta was made against another
    /// configuration than `cfg` (one saved by an older controller, say): `cfg` is left partly
    /// changed and the caller must fetch a whole configuration instead.
    pub fn apply(&self, cfg: &mut NodeConfig) -> Result<(), DeltaError> {
        self.segments.apply_to(&mut cfg.segments);
        self.ports.apply_to(&mut cfg.ports);
        self.remote_vteps.apply_to(&mut cfg.remote_vteps);
        self.remote_bindings.apply_to(&mut cfg.remote_bindings);
        self.routers.apply_to(&mut cfg.routers);
        self.security_groups.apply_to(&mut cfg.security_groups);
        self.address_sets.apply_to(&mut cfg.address_sets);
        if !self.address_set_members.is_empty() {
            for p in &self.address_set_members {
                let set = cfg
                    .address_sets
                    .iter()
                    .position(|s| s.name == p.name)
                    .ok_or_else(|| DeltaError::UnknownAddressSet(p.name.clone()))?;
                p.apply_to(&mut cfg.address_sets[set].addresses);
            }
        }
        Ok(())
    }

    /// Number of elements upserted or removed, for logs.
    pub fn len(&self) -> usize {
        fn n<T>(c: &Changes<T>) -> usize {
            c.upsert.len() + c.remove.len()
        }
        n(&self.segments)
            + n(&self.ports)
            + n(&self.remote_vteps)
            + n(&self.remote_bindings)
            + n(&self.routers)
            + n(&self.security_groups)
            + n(&self.address_sets)
            + self
                .address_set_members
                .iter()
                .map(|p| p.add.len() + p.remove.len())
                .sum::<usize>()
    }
}

/// The delta that turns `old` into `new`, or `None` when they differ in something a delta does
/// not carry (node name, underlay, learning, limits): then the whole of `new` must be sent.
/// Both must be sorted by key. The revisions are not compared.
pub fn diff(old: &NodeConfig, new: &NodeConfig) -> Option<ConfigDelta> {
    if old.node != new.node
        || old.underlay != new.underlay
        || old.learning != new.learning
        || old.limits != new.limits
    {
        return None;
    }
    let (address_sets, address_set_members) =
        address_set_changes(&old.address_sets, &new.address_sets);
    Some(ConfigDelta {
        segments: Changes::between(&old.segments, &new.segments),
        ports: Changes::between(&old.ports, &new.ports),
        remote_vteps: Changes::between(&old.remote_vteps, &new.remote_vteps),
        remote_bindings: Changes::between(&old.remote_bindings, &new.remote_bindings),
        routers: Changes::between(&old.routers, &new.routers),
        security_groups: Changes::between(&old.security_groups, &new.security_groups),
        address_sets,
        address_set_members,
    })
}

impl NodeConfig {
    /// Sorts every keyed collection by key: the canonical form deltas are computed on.
    pub fn sort_by_key(&mut self) {
        fn sort<T: Keyed>(v: &mut [T]) {
            v.sort_by_key(Keyed::key);
        }
        sort(&mut self.segments);
        sort(&mut self.ports);
        sort(&mut self.remote_vteps);
        sort(&mut self.remote_bindings);
        sort(&mut self.routers);
        sort(&mut self.security_groups);
        sort(&mut self.address_sets);
        for s in &mut self.address_sets {
            s.addresses.sort_unstable();
            s.addresses.dedup();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> NodeConfig {
        let mut c = NodeConfig::from_toml(
            r#"
node = "hv1"
[underlay]
local_ip = "192.168.100.1"
[[segments]]
vni = 100
[[segments]]
vni = 20
[[ports]]
name = "p1"
interface = "tapp1"
vni = 100
mac = "fa:16:3e:00:00:01"
ips = ["10.0.0.1"]
[[remote_vteps]]
ip = "192.168.100.2"
vnis = [100, 20]
[[remote_bindings]]
vni = 100
mac = "fa:16:3e:00:00:02"
ips = ["10.0.0.2"]
vtep = "192.168.100.2"
"#,
        )
        .unwrap();
        c.sort_by_key();
        c
    }

    #[test]
    fn sorting_is_by_typed_key() {
        let c = base();
        // Numeric, not textual: 20 before 100.
        let vnis: Vec<u32> = c.segments.iter().map(|s| s.vni.get()).collect();
        assert_eq!(vnis, [20, 100]);
    }

    #[test]
    fn identical_configs_give_an_empty_delta() {
        let d = diff(&base(), &base()).unwrap();
        assert!(d.is_empty());
        assert_eq!(d.len(), 0);
        assert_eq!(serde_json::to_string(&d).unwrap(), "{}");
    }

    #[test]
    fn delta_round_trips_every_collection() {
        let old = base();
        let mut new = base();
        new.segments.retain(|s| s.vni.get() != 20);
        new.remote_vteps[0].vnis.retain(|v| v.get() != 20);
        new.ports[0].ips.push("10.0.0.9".parse().unwrap());
        let mut p2 = new.ports[0].clone();
        p2.name = "p0".into();
        p2.interface = "tapp0".into();
        p2.mac = "fa:16:3e:00:00:03".parse().unwrap();
        p2.ips = vec!["10.0.0.3".parse().unwrap()];
        new.ports.push(p2);
        new.remote_bindings.clear();
        new.sort_by_key();
        new.validate().unwrap();

        let d = diff(&old, &new).unwrap();
        assert_eq!(d.segments.remove, ["20"]);
        assert_eq!(d.ports.upsert.len(), 2);
        assert_eq!(d.remote_bindings.remove, ["100/fa:16:3e:00:00:02"]);
        assert_eq!(d.routers, Changes::default());

        // Through JSON, as on the wire.
        let wire = serde_json::to_string(&d).unwrap();
        let d: ConfigDelta = serde_json::from_str(&wire).unwrap();
        let mut applied = old.clone();
        d.apply(&mut applied).unwrap();
        assert_eq!(applied, new);
    }

    #[test]
    fn security_groups_travel_in_deltas() {
        use crate::config::{RuleDirection, RuleEtherType, SecurityRuleConfig};
        let rule = |port: u16| SecurityRuleConfig {
            direction: RuleDirection::Ingress,
            ethertype: RuleEtherType::IPv4,
            protocol: Some(6),
            port_range_min: Some(port),
            port_range_max: Some(port),
            remote: Some(vec!["10.0.0.2/32".parse().unwrap()]),
            remote_set: None,
        };
        let mut old = base();
        old.security_groups = vec![
            SecurityGroupConfig {
                name: "web".into(),
                rules: vec![rule(80)],
            },
            SecurityGroupConfig {
                name: "db".into(),
                rules: vec![],
            },
        ];
        old.ports[0].security_groups = Some(vec!["web".into(), "db".into()]);
        old.sort_by_key();
        old.validate().unwrap();
        let mut new = old.clone();
        new.security_groups[1].rules.push(rule(443));
        new.security_groups.retain(|g| g.name != "db");
        new.ports[0].security_groups = Some(vec!["web".into()]);
        new.validate().unwrap();

        let d = diff(&old, &new).unwrap();
        assert_eq!(d.security_groups.remove, ["db"]);
        assert_eq!(d.security_groups.upsert.len(), 1);
        let wire = serde_json::to_string(&d).unwrap();
        let d: ConfigDelta = serde_json::from_str(&wire).unwrap();
        let mut applied = old.clone();
        d.apply(&mut applied).unwrap();
        assert_eq!(applied, new);
        // A change of rules only is a delta too, never "nothing".
        let mut rules_only = new.clone();
        rules_only.security_groups[0].rules[0].port_range_max = Some(81);
        assert!(!diff(&new, &rules_only).unwrap().is_empty());
    }

    #[test]
    fn address_sets_travel_as_their_changes() {
        use crate::config::{RuleDirection, RuleEtherType, SecurityRuleConfig};
        let host = |i: u32| IpNetwork::from(IpAddr::from((0x0a01_0000 + i).to_be_bytes()));
        let set = |name: &str, members: std::ops::Range<u32>| AddressSetConfig {
            name: name.into(),
            addresses: members.map(host).collect(),
        };
        let mut old = base();
        old.security_groups = vec![SecurityGroupConfig {
            name: "web".into(),
            rules: vec![SecurityRuleConfig {
                direction: RuleDirection::Ingress,
                ethertype: RuleEtherType::IPv4,
                protocol: None,
                port_range_min: None,
                port_range_max: None,
                remote: None,
                remote_set: Some("big".into()),
            }],
        }];
        old.ports[0].security_groups = Some(vec!["web".into()]);
        old.address_sets = vec![set("big", 0..1000), set("small", 0..2)];
        old.sort_by_key();
        old.validate().unwrap();

        // One member in, one out of a big set; a small set changed entirely; a new set.
        let mut new = old.clone();
        new.address_sets[0].addresses.retain(|a| *a != host(500));
        new.address_sets[0].addresses.push(host(5000));
        new.address_sets[1] = set("small", 7..9);
        new.address_sets.push(set("added", 3..4));
        new.sort_by_key();
        new.validate().unwrap();

        let d = diff(&old, &new).unwrap();
        assert_eq!(
            d.address_set_members,
            [AddressSetPatch {
                name: "big".into(),
                add: vec![host(5000)],
                remove: vec![host(500)],
            }]
        );
        let whole: Vec<&str> = d.address_sets.upsert.iter().map(|s| &*s.name).collect();
        assert_eq!(whole, ["added", "small"]);
        assert_eq!(d.len(), 4);
        let wire = serde_json::to_string(&d).unwrap();
        assert!(wire.len() < 400, "{wire}");
        let d: ConfigDelta = serde_json::from_str(&wire).unwrap();
        let mut applied = old.clone();
        d.apply(&mut applied).unwrap();
        assert_eq!(applied, new);

        // Removed sets go by name; a patch to a set the node lacks is refused (the delta was
        // made against another configuration).
        let mut fewer = new.clone();
        fewer.address_sets.retain(|s| s.name != "small");
        let d = diff(&new, &fewer).unwrap();
        assert_eq!(d.address_sets.remove, ["small"]);
        let patch = ConfigDelta {
            address_set_members: vec![AddressSetPatch {
                name: "x".into(),
                add: vec![host(2), host(1), host(2)],
                remove: vec![host(9)],
            }],
            ..ConfigDelta::default()
        };
        let mut c = base();
        assert_eq!(
            patch.apply(&mut c),
            Err(DeltaError::UnknownAddressSet("x".into()))
        );
        let mut c = base();
        c.address_sets = vec![set("x", 9..10)];
        patch.apply(&mut c).unwrap();
        assert_eq!(c.address_sets, [set("x", 1..3)]);
    }

    #[test]
    fn underlay_changes_need_a_snapshot() {
        let mut new = base();
        new.limits.conntrack_max = 10;
        assert!(diff(&base(), &new).is_none(), "limits are not in deltas");
        let mut new = base();
        new.underlay.mtu = 9000;
        assert!(diff(&base(), &new).is_none());
        let mut new = base();
        new.node = "hv2".into();
        assert!(diff(&base(), &new).is_none());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let r: Result<ConfigDelta, _> =
            serde_json::from_str(r#"{"ports":{"upsert":[],"bogus":1}}"#);
        assert!(r.is_err());
        let r: Result<ConfigDelta, _> = serde_json::from_str(r#"{"nodes":{}}"#);
        assert!(r.is_err());
    }

    #[test]
    fn removing_an_absent_key_is_harmless() {
        let mut c = base();
        let d = ConfigDelta {
            ports: Changes {
                upsert: Vec::new(),
                remove: vec!["nope".into()],
            },
            ..ConfigDelta::default()
        };
        d.apply(&mut c).unwrap();
        assert_eq!(c, base());
    }
}
