//! The agent's state directory (`--state-dir`), what lets a controller-programmed agent run
//! headless: it restarts from the last configuration it applied, before the controller answers.
//!
//! ```text
//! STATE_DIR/config.json   the last applied NodeConfig (JSON), replaced atomically after each apply
//! STATE_DIR/taps.json     the tap devices the agent created (name and ifindex), to delete them
//!                         when their port goes, and only them
//! ```
//!
//! Every write goes to a temporary file in the same directory, is fsynced, renamed over the old
//! file and the directory fsynced: after a crash the file is the old one or the new one, never a
//! mix. A file that does not parse (or does not validate) is moved aside to `NAME.corrupt` and
//! the agent carries on as if it were absent.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use weft_dataplane::config::NodeConfig;

/// The last applied configuration.
const CONFIG_FILE: &str = "config.json";
/// Taps the agent created.
const TAPS_FILE: &str = "taps.json";
/// Largest state file read back (a node configuration of a busy hypervisor is a few MiB).
const MAX_STATE_FILE: u64 = 256 * 1024 * 1024;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory could not be created.
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A state file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A value could not be serialized.
    #[error("cannot serialize {0}: {1}")]
    Serialize(&'static str, String),
}

/// A tap the agent created, by name and by the interface index it got: a device of the same
/// name with another index (re-created by someone else, e.g. after a reboot) is not ours.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatedTap {
    /// The interface name.
    pub name: String,
    /// Its interface index when the agent created it.
    pub ifindex: u32,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Uses `dir`, creating it (mode 0700) if needed.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StateError::CreateDir {
                path: dir.to_owned(),
                source,
            })?;
        Ok(StateDir {
            dir: dir.to_owned(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The last applied configuration, if there is one that parses and validates. A corrupt or
    /// invalid file is moved aside (logged) and reads as absent.
    pub fn load_config(&self) -> Option<NodeConfig> {
        let cfg: NodeConfig = self.read_json(CONFIG_FILE)?;
        match cfg.validate() {
            Ok(_) => Some(cfg),
            Err(e) => {
                self.set_aside(CONFIG_FILE, &e.to_string());
                None
            }
        }
    }

    /// Replaces the saved configuration with `cfg`, atomically.
    pub fn save_config(&self, cfg: &NodeConfig) -> Result<(), StateError> {
        let text = serde_json::to_vec_pretty(cfg)
            .map_err(|e| StateError::Serialize("the node configuration", e.to_string()))?;
        self.write_atomically(CONFIG_FILE, &text)
    }

    /// The taps the agent created (empty when the file is absent or corrupt).
    pub fn load_taps(&self) -> Vec<CreatedTap> {
        self.read_json(TAPS_FILE).unwrap_or_default()
    }

    /// Replaces the list of created taps, atomically.
    pub fn save_taps(&self, taps: &[CreatedTap]) -> Result<(), StateError> {
        let text = serde_json::to_vec_pretty(taps)
            .map_err(|e| StateError::Serialize("the tap list", e.to_string()))?;
        self.write_atomically(TAPS_FILE, &text)
    }

    /// Reads and parses `name`; `None` if absent, unreadable or corrupt (then set aside).
    fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Option<T> {
        let path = self.dir.join(name);
        let text = match read_bounded(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read a state file; ignoring it");
                return None;
            }
        };
        match serde_json::from_slice(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                self.set_aside(name, &e.to_string());
                None
            }
        }
    }

    /// Moves a state file that cannot be used to `NAME.corrupt`, for a human to look at.
    fn set_aside(&self, name: &str, why: &str) {
        let path = self.dir.join(name);
        let aside = self.dir.join(format!("{name}.corrupt"));
        tracing::warn!(file = %path.display(), error = why, moved_to = %aside.display(),
            "state file unusable; starting without it");
        if let Err(e) = fs::rename(&path, &aside) {
            tracing::warn!(file = %path.display(), error = %e, "cannot move the state file aside");
        }
    }

    /// Writes `NAME.tmp`, fsyncs it, renames it over `NAME` and fsyncs the directory.
    fn write_atomically(&self, name: &str, data: &[u8]) -> Result<(), StateError> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!("{name}.tmp"));
        let err = |source| StateError::Write {
            path: path.clone(),
            source,
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(data).map_err(err)?;
        f.sync_all().map_err(err)?;
        drop(f);
        fs::rename(&tmp, &path).map_err(err)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
        Ok(())
    }
}

/// Reads a whole file, refusing one larger than [`MAX_STATE_FILE`].
fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let len = f.metadata()?.len();
    if len > MAX_STATE_FILE {
        return Err(std::io::Error::other(format!(
            "{len} bytes, more than the {MAX_STATE_FILE} a state file may have"
        )));
    }
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_STATE_FILE), &mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(revision: u64) -> NodeConfig {
        let mut c: NodeConfig = serde_json::from_str(
            r#"{"node": "hv1", "underlay": {"local_ip": "192.168.100.1"},
                "segments": [{"vni": 100, "mtu": 1400}],
                "ports": [{"name": "6f1c0d2e-aaaa", "interface": "tap6f1c0d2e-aa", "vni": 100,
                           "mac": "fa:16:3e:00:00:01", "ips": ["10.0.0.1"]}]}"#,
        )
        .unwrap();
        c.revision = revision;
        c
    }

    #[test]
    fn config_round_trips_and_replaces() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(&d.path().join("sub/state")).unwrap();
        assert_eq!(s.load_config(), None);
        s.save_config(&config(7)).unwrap();
        assert_eq!(s.load_config(), Some(config(7)));
        s.save_config(&config(9)).unwrap();
        assert_eq!(s.load_config(), Some(config(9)));
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(s.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["config.json".to_owned()]);
    }

    #[test]
    fn corrupt_config_is_set_aside_and_reads_as_absent() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path()).unwrap();
        s.save_config(&config(3)).unwrap();
        let path = d.path().join("config.json");
        // Truncated mid-write by something else than the agent.
        let text = fs::read(&path).unwrap();
        fs::write(&path, &text[..text.len() / 2]).unwrap();
        assert_eq!(s.load_config(), None);
        assert!(!path.exists());
        assert!(d.path().join("config.json.corrupt").exists());
        // Saving again works, and the next load finds it.
        s.save_config(&config(4)).unwrap();
        assert_eq!(s.load_config(), Some(config(4)));
    }

    #[test]
    fn config_that_does_not_validate_reads_as_absent() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path()).unwrap();
        let mut bad = config(5);
        bad.ports[0].vni = weft_dataplane::wire::Vni::new(999).unwrap();
        s.save_config(&bad).unwrap();
        assert_eq!(s.load_config(), None);
        assert!(d.path().join("config.json.corrupt").exists());
    }

    #[test]
    fn taps_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let s = StateDir::open(d.path()).unwrap();
        assert!(s.load_taps().is_empty());
        let taps = vec![CreatedTap {
            name: "tap6f1c0d2e-aa".into(),
            ifindex: 12,
        }];
        s.save_taps(&taps).unwrap();
        assert_eq!(s.load_taps(), taps);
        fs::write(d.path().join("taps.json"), b"[{\"name\": 3}]").unwrap();
        assert!(s.load_taps().is_empty());
    }
}
