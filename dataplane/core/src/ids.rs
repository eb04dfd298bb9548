//! Index newtypes into the validated tables ([`crate::tables::Tables`]).
//!
//! An index is only meaningful for the table set it was taken from; a table swap re-resolves
//! everything that holds one across swaps (the learned FDB keys on VNI, not on [`SegIdx`]).

/// A local (VM-facing) port, as an index into [`crate::tables::Tables::ports`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortIdx(pub u16);

/// A segment (one tenant L2 network, one VNI), as an index into
/// [`crate::tables::Tables::segments`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegIdx(pub u16);

/// A remote VTEP, as an index into [`crate::tables::Tables::vteps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VtepIdx(pub u16);

impl PortIdx {
    /// The index as a `usize`.
    #[inline]
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl SegIdx {
    /// The index as a `usize`.
    #[inline]
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl VtepIdx {
    /// The index as a `usize`.
    #[inline]
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

/// A tenant router hosted on this node, as an index into [`crate::tables::Tables::routers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouterIdx(pub u16);

/// A router interface, as an index into [`crate::tables::Tables::router_ifs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RifIdx(pub u16);

impl RouterIdx {
    /// The index as a `usize`.
    #[inline]
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl RifIdx {
    /// The index as a `usize`.
    #[inline]
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}
