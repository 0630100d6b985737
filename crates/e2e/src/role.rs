//! Which end of a session a peer is.

use serde::{Deserialize, Serialize};

/// The two ends of a Ponte session. The relay is not a role: it only forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// The customer's side, which shows the code and grants permissions.
    Agent,
    /// The assistant's side, which knows the code because the customer read it out.
    Viewer,
}

impl Role {
    /// The other end.
    pub fn peer(self) -> Role {
        match self {
            Role::Agent => Role::Viewer,
            Role::Viewer => Role::Agent,
        }
    }

    /// The role's name as bound into handshake identities and key-schedule labels.
    pub fn label(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Viewer => "viewer",
        }
    }

    /// The byte that marks records sent by this role (ASCII `A` or `V`).
    pub(crate) fn wire_byte(self) -> u8 {
        match self {
            Role::Agent => b'A',
            Role::Viewer => b'V',
        }
    }

    pub(crate) fn from_wire_byte(b: u8) -> Option<Role> {
        match b {
            b'A' => Some(Role::Agent),
            b'V' => Some(Role::Viewer),
            _ => None,
        }
    }
}
