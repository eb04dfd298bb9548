//! The host interfaces of a controller-programmed agent's ports.
//!
//! The controller names a port's interface `tap` + the first 11 characters of its Neutron port
//! id (as Nova's libvirt driver does). Before a configuration is applied, every configured
//! port's interface gets its segment's MTU and is brought up; one that does not exist yet is
//! created as a persistent tap, and remembered (`state::CreatedTap`). After the apply, taps the
//! agent created for ports that are gone are deleted. Uplink interfaces are only brought up.
//! Other interfaces are never touched, and a tap is only deleted if it is still the device the agent created
//! (same interface index).

use std::collections::{BTreeMap, HashSet};
use std::io;

use weft_dataplane::config::NodeConfig;
use weft_dataplane_io::sys;

use crate::state::{CreatedTap, StateDir};

/// The taps this agent created, by name (with their interface index).
#[derive(Debug)]
pub struct Interfaces {
    state: StateDir,
    created: BTreeMap<String, u32>,
}

/// Each configured port's interface and the MTU it must have.
pub fn port_mtus(cfg: &NodeConfig) -> Vec<(String, u32)> {
    let default = cfg.default_segment_mtu();
    cfg.ports
        .iter()
        .map(|p| {
            let mtu = cfg
                .segments
                .iter()
                .find(|s| s.vni == p.vni)
                .and_then(|s| s.mtu)
                .unwrap_or(default);
            (p.interface.clone(), mtu)
        })
        .collect()
}

impl Interfaces {
    /// Reads the list of created taps from the state directory.
    pub fn load(state: StateDir) -> Interfaces {
        let created = state
            .load_taps()
            .into_iter()
            .map(|t| (t.name, t.ifindex))
            .collect();
        Interfaces { state, created }
    }

    fn save(&self) {
        let taps: Vec<CreatedTap> = self
            .created
            .iter()
            .map(|(name, &ifindex)| CreatedTap {
                name: name.clone(),
                ifindex,
            })
            .collect();
        if let Err(e) = self.state.save_taps(&taps) {
            tracing::error!(error = %e, "cannot record the taps the agent created");
        }
    }

    /// Makes every port interface of `cfg` exist, with its segment's MTU, up, and brings
    /// every uplink interface up. Failures are logged per interface: that port stays
    /// detached, the others go on.
    pub fn prepare(&mut self, cfg: &NodeConfig) {
        let mut changed = false;
        for (interface, mtu) in port_mtus(cfg) {
            match self.prepare_one(&interface, mtu) {
                Ok(created) => changed |= created,
                Err(e) => tracing::warn!(%interface, mtu, error = %e,
                    "cannot prepare the port's interface; the port stays detached"),
            }
        }
        if changed {
            self.save();
        }
        // Uplinks are the operator's interfaces: never created nor resized here, only
        // brought up, as a VM's tap is, so that the worker can use them.
        for interface in cfg.segments.iter().filter_map(|s| s.uplink.as_deref()) {
            if let Err(e) = sys::set_interface_up(interface) {
                tracing::warn!(%interface, error = %e,
                    "cannot bring the uplink interface up; its external network stays detached");
            }
        }
    }

    /// `Ok(true)` when the tap was created here.
    fn prepare_one(&mut self, interface: &str, mtu: u32) -> io::Result<bool> {
        let mut created = false;
        if sys::interface_index(interface).is_err() {
            match sys::create_persistent_tap(interface) {
                Ok(()) => {
                    let ifindex = sys::interface_index(interface)?;
                    tracing::info!(%interface, ifindex, "created a persistent tap for the port");
                    self.created.insert(interface.to_owned(), ifindex);
                    created = true;
                }
                // Appeared meanwhile (the hypervisor made it): use it as it is.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => return Err(e),
            }
        }
        if sys::interface_mtu(interface)? != mtu {
            sys::set_interface_mtu(interface, mtu)?;
            tracing::info!(%interface, mtu, "interface MTU set to the segment's");
        }
        sys::set_interface_up(interface)?;
        Ok(created)
    }

    /// Deletes the taps this agent created whose port is not in `cfg`. A tap still held open
    /// (a VM not yet stopped) is kept and tried again after the next apply.
    pub fn remove_unused(&mut self, cfg: &NodeConfig) {
        let wanted: HashSet<&str> = cfg.ports.iter().map(|p| p.interface.as_str()).collect();
        let stale: Vec<(String, u32)> = self
            .created
            .iter()
            .filter(|(name, _)| !wanted.contains(name.as_str()))
            .map(|(n, &i)| (n.clone(), i))
            .collect();
        if stale.is_empty() {
            return;
        }
        for (name, ifindex) in stale {
            match sys::interface_index(&name) {
                Ok(i) if i == ifindex => match sys::delete_persistent_tap(&name) {
                    Ok(()) => {
                        tracing::info!(interface = %name, "deleted the tap of a removed port");
                        self.created.remove(&name);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        tracing::info!(interface = %name,
                            "the tap of a removed port is still in use; deleting it later");
                    }
                    Err(e) => {
                        tracing::warn!(interface = %name, error = %e,
                            "cannot delete the tap of a removed port; leaving it");
                        self.created.remove(&name);
                    }
                },
                // Gone, or another device under the same name now: not ours to delete.
                _ => {
                    self.created.remove(&name);
                }
            }
        }
        self.save();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_mtu_is_the_segments_or_the_default() {
        let cfg: NodeConfig = serde_json::from_str(
            r#"{"node": "hv1", "underlay": {"local_ip": "192.168.100.1", "mtu": 9000},
                "segments": [{"vni": 100, "mtu": 1400}, {"vni": 200}],
                "ports": [
                  {"name": "a", "interface": "tapa", "vni": 100, "mac": "fa:16:3e:00:00:01"},
                  {"name": "b", "interface": "tapb", "vni": 200, "mac": "fa:16:3e:00:00:02"}]}"#,
        )
        .unwrap();
        assert_eq!(
            port_mtus(&cfg),
            vec![("tapa".to_owned(), 1400), ("tapb".to_owned(), 8950)]
        );
    }
}
