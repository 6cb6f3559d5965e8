//! Flows run early: inbound and outbound sync run an object's flows in their first pass when
//! what they resolve cannot change before the second; what each object's first pass did
//! decides whether the second runs them.

/// Whether pass 1 ran an object's flows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Early {
    /// Not run: pass 2 runs them.
    No,
    Flowed,
    /// Flowed, and updated its metaverse object (inbound).
    Updated,
    /// A flow failed (reported): evaluated again, it fails the same way.
    Failed,
    /// Run, and what they gave waits for pass 2 to resolve its references (inbound).
    Waiting,
}

impl Early {
    /// Does pass 2 run the object's flows? `again`: pass 1 undid something early flows may
    /// have relied on (unlinked, deprovisioned), so those run again; a failure is reported once.
    pub(crate) fn in_pass_2(self, again: bool) -> bool {
        match self {
            Early::No => true,
            Early::Flowed | Early::Updated | Early::Waiting => again,
            Early::Failed => false,
        }
    }
}
