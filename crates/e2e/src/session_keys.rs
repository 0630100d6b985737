//! The established session: the two traffic secrets and the logical streams keyed from them.
//!
//! The relay renumbers QUIC streams, so Ponte numbers its streams itself: the agent opens
//! even numbers, the viewer odd ones, each counting up. Every number is used once per
//! session, which is what keeps a (key, nonce) pair from ever repeating and a recorded stream
//! from being replayed as a new one.

use std::collections::HashSet;

use crate::Role;
use crate::cipher::Backend;
use crate::key_schedule::{HandshakeSecrets, Secret};
use crate::record::{RecordError, RecordOpener, RecordSealer};

/// Most streams the peer may open in one session; each costs the opener 8 bytes of memory.
pub const MAX_PEER_STREAMS: usize = 1 << 20;

/// Both directions of one logical stream.
#[derive(Debug)]
pub struct StreamKeys {
    /// The stream's number, carried in every record header.
    pub number: u64,
    /// Seals what this side sends on the stream.
    pub sealer: RecordSealer,
    /// Opens what the peer sends on the stream.
    pub opener: RecordOpener,
}

/// The keys of an established session, from this side's point of view.
pub struct SessionKeys {
    role: Role,
    send: Secret,
    receive: Secret,
    backend: Backend,
    next_own: u64,
    peer_streams: HashSet<u64>,
    resume: Secret,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionKeys")
            .field("role", &self.role)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

fn first_number(role: Role) -> u64 {
    match role {
        Role::Agent => 0,
        Role::Viewer => 1,
    }
}

impl SessionKeys {
    /// The keys of `role` from the handshake secrets (normally produced by the handshake;
    /// public for benchmarks and test vectors).
    pub fn from_secrets(role: Role, secrets: &HandshakeSecrets) -> SessionKeys {
        SessionKeys {
            role,
            send: secrets.traffic(role).clone(),
            receive: secrets.traffic(role.peer()).clone(),
            backend: Backend::default(),
            next_own: first_number(role),
            peer_streams: HashSet::new(),
            resume: secrets.resume.clone(),
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The secret a resume of this session proves ([`crate::resume`]).
    pub fn resume_secret(&self) -> &Secret {
        &self.resume
    }

    /// The AES-256-GCM backend used for streams created from now on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Chooses the backend for streams created from now on (both backends produce the same
    /// bytes, so the peer need not agree).
    pub fn set_backend(&mut self, backend: Backend) {
        self.backend = backend;
    }

    fn keys(&self, number: u64) -> StreamKeys {
        StreamKeys {
            number,
            sealer: RecordSealer::new(self.backend, &self.send, self.role, number),
            opener: RecordOpener::new(self.backend, &self.receive, self.role.peer(), number),
        }
    }

    /// Opens a new stream of this side with the next unused number.
    pub fn open_stream(&mut self) -> Result<StreamKeys, RecordError> {
        let number = self.next_own;
        self.next_own = number.checked_add(2).ok_or(RecordError::TooManyStreams)?;
        Ok(self.keys(number))
    }

    /// Accepts a stream the peer opened, by the number in its first record header.
    ///
    /// Refuses numbers from this side's space and numbers seen before, so that neither a
    /// reflected nor a replayed stream is ever read.
    pub fn accept_stream(&mut self, number: u64) -> Result<StreamKeys, RecordError> {
        if number % 2 != first_number(self.role.peer()) {
            return Err(RecordError::WrongStreamSpace(number));
        }
        if self.peer_streams.contains(&number) {
            return Err(RecordError::StreamReused(number));
        }
        if self.peer_streams.len() >= MAX_PEER_STREAMS {
            return Err(RecordError::TooManyStreams);
        }
        self.peer_streams.insert(number);
        Ok(self.keys(number))
    }
}
