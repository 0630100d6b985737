//! The session table: which agent waits under which session ID, who is paired with whom,
//! and every limit on registering and joining.
//!
//! It is synchronous and generic over the agent and viewer handles, so the rules are tested
//! without sockets; the server keeps it behind a mutex and does the I/O.
//!
//! Two rules keep a known session ID from being locked out or probed:
//! - only pairings that could have cost the customer a code attempt count against a session
//!   (the viewer sent something towards the agent); refused joins and viewers that left
//!   without a word do not;
//! - a viewer hears the same answer, `UnknownSession`, for IDs that are unknown, expired,
//!   burned, in use or used up, so scanning tells it only which IDs it could join right now.
//!   The agent is told the real reason of every join turned away from its session.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ponte_transport::bucket::TokenBucket;
use ponte_wire::rendezvous::Refusal;
use ponte_wire::{DeviceTag, SessionId};
use rand_core::CryptoRng;

use crate::source::Source;

/// Most recently ended session IDs kept out of reuse.
pub const MAX_TOMBSTONES: usize = 100_000;

/// The limits the registry enforces.
#[derive(Debug, Clone)]
pub struct RegistryLimits {
    /// How long a session ID can be joined after registration (or release).
    pub pairing_ttl: Duration,
    /// Join attempts per source: sustained rate per second.
    pub join_rate: f64,
    /// Join attempts per source: burst.
    pub join_burst: f64,
    /// Registrations per source: sustained rate per second.
    pub register_rate: f64,
    /// Registrations per source: burst.
    pub register_burst: f64,
    /// Pairings with a viewer that spoke (a possible code guess) one session ID allows.
    pub attempts_per_session: u32,
    /// Waiting (unpaired) sessions one source may hold.
    pub waiting_per_source: u32,
    /// Waiting sessions in total.
    pub waiting_total: usize,
    /// Device-tag lookups (quick-access joins) per source: sustained rate per second. Lower
    /// than joins: a tag is long-lived, so probing tags must be slow.
    pub device_lookup_rate: f64,
    /// Device-tag lookups per source: burst.
    pub device_lookup_burst: f64,
}

/// Where a session is in its life.
#[derive(Debug)]
enum State<V> {
    /// The agent waits for a viewer until `expires`.
    Waiting { expires: Instant },
    /// A viewer is paired; `generation` tells this pairing from later ones.
    Paired { viewer: V, generation: u64 },
    /// The paired viewer left; nobody may join until the agent releases the session, so a
    /// release meant for that viewer can never turn away a newer one.
    Vacated,
}

#[derive(Debug)]
struct Entry<A, V> {
    agent: A,
    agent_source: Source,
    registered: Instant,
    attempts: u32,
    state: State<V>,
    /// The device tag this session is findable under (quick access), while it holds it.
    device: Option<DeviceTag>,
    /// Registered for quick access: joined by its device tag only, never by its ID (which the
    /// customer never read out, and which the key handshake's viewer learns). Its failed
    /// pairings are not counted: attempts bound guessing a code, and a key handshake cannot be
    /// guessed — counting them would let anyone who knows the tag use the session up.
    quick: bool,
}

/// The session a viewer asks for, and how it found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joining {
    /// By the session ID the customer read out: a code session.
    Id(SessionId),
    /// By a device tag (quick access) that led to this session.
    Device(SessionId),
    /// By a resume tag that led to this session; its lookup ([`Registry::find_resume`]) took
    /// the join token already.
    Resume(SessionId),
}

/// The outcome of a successful join.
#[derive(Debug)]
pub struct Pairing<A, R> {
    /// The agent's handle.
    pub agent: A,
    /// Identifies this pairing in [`Registry::viewer_left`].
    pub generation: u64,
    /// Time from registration (or release) to pairing.
    pub latency: Duration,
    /// What the caller's `reserve` returned for this pairing.
    pub reserved: R,
}

/// What [`Registry::release`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct Released<V> {
    /// A pairing was released (the session was paired, or vacated by its viewer).
    pub pairing: bool,
    /// The viewer to disconnect, if it was still there.
    pub viewer: Option<V>,
    /// How long the session can now be joined.
    pub window: Duration,
}

/// A join turned away: what the viewer hears and, when the join reached a live session, the
/// agent to tell and why.
#[derive(Debug)]
pub struct TurnedAway<A> {
    /// The refusal the viewer gets.
    pub to_viewer: Refusal,
    /// The session's agent and the real reason, for the customer.
    pub tell_agent: Option<(A, Refusal)>,
}

impl<A> TurnedAway<A> {
    fn viewer_only(to_viewer: Refusal) -> Self {
        TurnedAway {
            to_viewer,
            tell_agent: None,
        }
    }
}

/// One registration's token, taken from its source's registration bucket by
/// [`Registry::take_registration`] and spent by [`Registry::register_with`] or
/// [`Registry::register_as`]: a registration cannot be made without one.
#[derive(Debug)]
#[must_use = "a registration token is spent by registering"]
pub struct RegistrationToken {
    source: Source,
}

/// What an agent left when the customer ended a session that waited to be resumed.
#[derive(Debug, Clone, Copy)]
struct EndedResume {
    proof: [u8; 32],
    until: Instant,
    source: Source,
}

/// The session table.
#[derive(Debug)]
pub struct Registry<A, V> {
    limits: RegistryLimits,
    sessions: HashMap<SessionId, Entry<A, V>>,
    /// Recently ended IDs and until when they are kept out of reuse, so that an assistant
    /// with an old ID never lands in a new customer's session.
    tombstones: HashMap<SessionId, Instant>,
    waiting_by_source: HashMap<Source, u32>,
    waiting: usize,
    paired: usize,
    join_buckets: HashMap<Source, TokenBucket>,
    register_buckets: HashMap<Source, TokenBucket>,
    /// Which session holds each device tag: at most one tag per session, so this is bounded
    /// by the session table.
    devices: HashMap<DeviceTag, SessionId>,
    /// Resume slots of sessions the customer ended while they waited to be resumed: the
    /// agent's proof for the viewer, until when it is kept, and who left it.
    ended_resumes: HashMap<DeviceTag, EndedResume>,
    device_buckets: HashMap<Source, TokenBucket>,
    next_generation: u64,
}

fn take(
    buckets: &mut HashMap<Source, TokenBucket>,
    source: Source,
    rate: f64,
    burst: f64,
    now: Instant,
) -> Result<(), Refusal> {
    let bucket = buckets
        .entry(source)
        .or_insert_with(|| TokenBucket::new(rate, burst, now));
    bucket.try_take(1.0, now).map_err(|wait| Refusal::RateLimited {
        retry_after_secs: wait.as_secs().clamp(1, u64::from(u32::MAX)) as u32,
    })
}

impl<A: Clone, V> Registry<A, V> {
    /// An empty table.
    pub fn new(limits: RegistryLimits) -> Self {
        Registry {
            limits,
            sessions: HashMap::new(),
            tombstones: HashMap::new(),
            waiting_by_source: HashMap::new(),
            waiting: 0,
            paired: 0,
            join_buckets: HashMap::new(),
            register_buckets: HashMap::new(),
            devices: HashMap::new(),
            ended_resumes: HashMap::new(),
            device_buckets: HashMap::new(),
            next_generation: 0,
        }
    }

    /// Sessions waiting for a viewer.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// Sessions with a paired viewer.
    pub fn paired(&self) -> usize {
        self.paired
    }

    /// All sessions, in any state.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn count_waiting(&mut self, source: Source, waiting: bool) {
        let n = self.waiting_by_source.entry(source).or_insert(0);
        if waiting {
            *n += 1;
            self.waiting += 1;
        } else {
            *n = n.saturating_sub(1);
            self.waiting = self.waiting.saturating_sub(1);
            if *n == 0 {
                self.waiting_by_source.remove(&source);
            }
        }
    }

    /// Takes a registration token from `source`'s bucket, and checks that it may hold one more
    /// waiting session. Taken before anything is spent on a registration (a quick-access
    /// registration's challenge key pair and its wait for the proof), so a source past its
    /// limits costs the relay nothing more.
    pub fn take_registration(&mut self, source: Source, now: Instant) -> Result<RegistrationToken, Refusal> {
        take(
            &mut self.register_buckets,
            source,
            self.limits.register_rate,
            self.limits.register_burst,
            now,
        )?;
        self.check_waiting(source)?;
        Ok(RegistrationToken { source })
    }

    /// Registers a waiting agent from `source` under a fresh random session ID; `agent` makes
    /// the agent's handle once the ID is chosen. Takes the registration token itself.
    pub fn register(
        &mut self,
        agent: impl FnOnce(SessionId) -> A,
        source: Source,
        now: Instant,
        rng: &mut impl CryptoRng,
    ) -> Result<(SessionId, Duration), Refusal> {
        let token = self.take_registration(source, now)?;
        self.register_with(token, agent, now, rng)
    }

    /// Registers a waiting agent under a fresh random session ID with a registration token
    /// taken earlier. The waiting caps are checked again: others may have registered since.
    pub fn register_with(
        &mut self,
        token: RegistrationToken,
        agent: impl FnOnce(SessionId) -> A,
        now: Instant,
        rng: &mut impl CryptoRng,
    ) -> Result<(SessionId, Duration), Refusal> {
        self.check_waiting(token.source)?;
        let id = loop {
            let id = SessionId::random(rng);
            if self.is_free(id) {
                break id;
            }
        };
        Ok((id, self.insert(id, agent(id), token.source, now)))
    }

    /// Registers a waiting agent under `id`, which the caller chose and claimed elsewhere (a
    /// relay cluster claims IDs in its shared state first), with a registration token taken
    /// earlier. The waiting caps are checked again; an ID this node still knows is refused as
    /// [`Refusal::Capacity`].
    pub fn register_as(
        &mut self,
        token: RegistrationToken,
        id: SessionId,
        agent: impl FnOnce(SessionId) -> A,
        now: Instant,
    ) -> Result<Duration, Refusal> {
        self.check_waiting(token.source)?;
        if !self.is_free(id) {
            return Err(Refusal::Capacity);
        }
        Ok(self.insert(id, agent(id), token.source, now))
    }

    /// Makes session `id` findable under device tag `tag` (quick access). The latest claim
    /// holds the tag: a customer who restarts the agent takes it back from the old session.
    /// Nothing is checked about the claimant — whoever answers under a tag must still complete
    /// the key-authenticated handshake with the device's private key.
    pub fn claim_device(&mut self, id: SessionId, tag: DeviceTag) {
        let Some(entry) = self.sessions.get_mut(&id) else {
            return;
        };
        entry.quick = true;
        if let Some(old) = entry.device.replace(tag) {
            self.devices.remove(&old);
        }
        if let Some(previous) = self.devices.insert(tag, id)
            && previous != id
            && let Some(e) = self.sessions.get_mut(&previous)
        {
            e.device = None;
        }
    }

    /// Every device tag (and resume slot) a session of this node holds, and every resume
    /// slot whose end it keeps.
    pub fn device_tags(&self) -> Vec<DeviceTag> {
        self.devices
            .keys()
            .chain(self.ended_resumes.keys())
            .copied()
            .collect()
    }

    /// Whether a session of this node holds `tag`, or this node keeps the end of the session
    /// that waited under it.
    pub fn holds_device(&self, tag: DeviceTag) -> bool {
        self.devices.contains_key(&tag) || self.ended_resumes.contains_key(&tag)
    }

    /// The customer ended the session that waited under resume slot `slot` (an agent from
    /// `source` says so): its viewer hears `proof` ([`Registry::resume_ended`]) for as long
    /// as a session can be joined. Each was paid for with a registration; a source keeps as
    /// many as it may have sessions waiting, and when the relay keeps as many as sessions may
    /// wait in all, the oldest goes — never a customer's end refused.
    pub fn end_resume(&mut self, slot: DeviceTag, proof: [u8; 32], source: Source, now: Instant) {
        let oldest = |ended: &HashMap<DeviceTag, EndedResume>, of: Option<Source>| {
            ended
                .iter()
                .filter(|(_, e)| of.is_none_or(|s| e.source == s))
                .min_by_key(|(_, e)| e.until)
                .map(|(slot, _)| *slot)
        };
        if !self.ended_resumes.contains_key(&slot) {
            let mine = self.ended_resumes.values().filter(|e| e.source == source).count();
            let full = self.ended_resumes.len() >= self.limits.waiting_total;
            let evict = match (mine >= self.limits.waiting_per_source as usize, full) {
                (true, _) => oldest(&self.ended_resumes, Some(source)),
                (false, true) => oldest(&self.ended_resumes, None),
                (false, false) => None,
            };
            if let Some(old) = evict {
                self.ended_resumes.remove(&old);
            }
        }
        let until = now + self.limits.pairing_ttl;
        self.ended_resumes
            .insert(slot, EndedResume { proof, until, source });
    }

    /// The proof the agent left when the customer ended the session that waited under resume
    /// slot `slot`, if it did and no agent waits there now (whoever made up an end under the
    /// tag does not stand in the way of a resume).
    pub fn resume_ended(&self, slot: DeviceTag, now: Instant) -> Option<[u8; 32]> {
        if self.devices.contains_key(&slot) {
            return None;
        }
        self.ended_resumes
            .get(&slot)
            .filter(|e| now < e.until)
            .map(|e| e.proof)
    }

    /// The session findable under `tag`, for a viewer from `source`; each lookup costs one
    /// token of the source's device-lookup bucket. Unknown tags are `UnknownSession`, like
    /// unknown IDs.
    pub fn find_device(
        &mut self,
        tag: DeviceTag,
        source: Source,
        now: Instant,
    ) -> Result<SessionId, Refusal> {
        take(
            &mut self.device_buckets,
            source,
            self.limits.device_lookup_rate,
            self.limits.device_lookup_burst,
            now,
        )?;
        self.devices.get(&tag).copied().ok_or(Refusal::UnknownSession)
    }

    /// The session waiting under the resume slot `tag`, for a viewer from `source`; each
    /// lookup, found or not, costs one token of the source's join bucket (a resume tag is
    /// one-time, so the stricter device-lookup limit is not needed; a flood still is limited).
    pub fn find_resume(
        &mut self,
        tag: DeviceTag,
        source: Source,
        now: Instant,
    ) -> Result<SessionId, Refusal> {
        take(
            &mut self.join_buckets,
            source,
            self.limits.join_rate,
            self.limits.join_burst,
            now,
        )?;
        self.devices.get(&tag).copied().ok_or(Refusal::UnknownSession)
    }

    /// The session waiting under resume slot `slot`, looked up again for a viewer whose
    /// [`Registry::find_resume`] paid already.
    pub fn resume_waiting(&self, slot: DeviceTag) -> Option<SessionId> {
        self.devices.get(&slot).copied()
    }

    /// Whether `id` is neither in use nor recently ended on this node.
    pub fn is_free(&self, id: SessionId) -> bool {
        !self.sessions.contains_key(&id) && !self.tombstones.contains_key(&id)
    }

    /// Whether this node holds session `id` (in any state).
    pub fn contains(&self, id: SessionId) -> bool {
        self.sessions.contains_key(&id)
    }

    /// Every session held and whether a viewer could join it now.
    pub fn sessions(&self) -> Vec<(SessionId, bool)> {
        self.sessions.iter().map(|(id, e)| (*id, self.open(e))).collect()
    }

    /// Every session held: its agent and, when paired, its viewer.
    pub fn entries(&self) -> impl Iterator<Item = (SessionId, &A, Option<&V>)> {
        self.sessions.iter().map(|(id, e)| {
            let viewer = match &e.state {
                State::Paired { viewer, .. } => Some(viewer),
                _ => None,
            };
            (*id, &e.agent, viewer)
        })
    }

    /// Whether a viewer could join session `id` now.
    pub fn joinable(&self, id: SessionId) -> bool {
        self.sessions.get(&id).is_some_and(|e| self.open(e))
    }

    /// Whether a viewer could join by ID (a quick-access session never can).
    fn open(&self, e: &Entry<A, V>) -> bool {
        matches!(e.state, State::Waiting { .. }) && e.attempts < self.limits.attempts_per_session && !e.quick
    }

    fn check_waiting(&self, source: Source) -> Result<(), Refusal> {
        if self.waiting_by_source.get(&source).copied().unwrap_or(0) >= self.limits.waiting_per_source
            || self.waiting >= self.limits.waiting_total
        {
            return Err(Refusal::Capacity);
        }
        Ok(())
    }

    fn insert(&mut self, id: SessionId, agent: A, source: Source, now: Instant) -> Duration {
        self.sessions.insert(
            id,
            Entry {
                agent,
                agent_source: source,
                registered: now,
                attempts: 0,
                state: State::Waiting {
                    expires: now + self.limits.pairing_ttl,
                },
                device: None,
                quick: false,
            },
        );
        self.count_waiting(source, true);
        self.limits.pairing_ttl
    }

    /// A viewer from `source` asks to join `id`. `credential` is the verdict on the
    /// credential it presented (the caller checks it outside the lock). `reserve` is called
    /// with the agent once everything else allows the pairing; `None` from it refuses the join
    /// for lack of capacity.
    pub fn join<R>(
        &mut self,
        joining: Joining,
        viewer: V,
        source: Source,
        now: Instant,
        credential: Result<(), Refusal>,
        reserve: impl FnOnce(&A) -> Option<R>,
    ) -> Result<Pairing<A, R>, TurnedAway<A>> {
        // Paid once: a resume found with a source's last token must not be turned away for
        // the next one, or its viewer would look and be refused in turn until the window ends.
        if !matches!(joining, Joining::Resume(_)) {
            take(
                &mut self.join_buckets,
                source,
                self.limits.join_rate,
                self.limits.join_burst,
                now,
            )
            .map_err(TurnedAway::viewer_only)?;
        }
        let (id, by_device) = match joining {
            Joining::Id(id) => (id, false),
            Joining::Device(id) | Joining::Resume(id) => (id, true),
        };
        // A quick-access session is not there for a join by ID, nor a code session for a
        // join by tag: the same answer as for an ID nobody holds.
        let entry = self.sessions.get_mut(&id).filter(|e| e.quick == by_device);
        if let Err(refusal) = credential {
            // The answer does not depend on the ID, so it tells a scanner nothing.
            return Err(TurnedAway {
                to_viewer: refusal,
                tell_agent: entry.map(|e| (e.agent.clone(), refusal)),
            });
        }
        let Some(entry) = entry else {
            return Err(TurnedAway::viewer_only(Refusal::UnknownSession));
        };
        let turned = |reason| TurnedAway {
            to_viewer: Refusal::UnknownSession,
            tell_agent: Some((entry.agent.clone(), reason)),
        };
        if entry.attempts >= self.limits.attempts_per_session {
            return Err(turned(Refusal::LimitExceeded));
        }
        match entry.state {
            // Left in place for `sweep`, which removes it and tells the agent.
            State::Waiting { expires } if now >= expires => {
                Err(TurnedAway::viewer_only(Refusal::UnknownSession))
            }
            State::Paired { .. } | State::Vacated => Err(turned(Refusal::AlreadyPaired)),
            State::Waiting { .. } => {
                let Some(reserved) = reserve(&entry.agent) else {
                    return Err(TurnedAway {
                        to_viewer: Refusal::Capacity,
                        tell_agent: Some((entry.agent.clone(), Refusal::Capacity)),
                    });
                };
                let generation = self.next_generation;
                self.next_generation += 1;
                entry.state = State::Paired { viewer, generation };
                let pairing = Pairing {
                    agent: entry.agent.clone(),
                    generation,
                    latency: now.saturating_duration_since(entry.registered),
                    reserved,
                };
                let agent_source = entry.agent_source;
                self.count_waiting(agent_source, false);
                self.paired += 1;
                Ok(pairing)
            }
        }
    }

    /// The viewer paired with `id` right now, if any.
    pub fn viewer(&self, id: SessionId) -> Option<&V> {
        match &self.sessions.get(&id)?.state {
            State::Paired { viewer, .. } => Some(viewer),
            _ => None,
        }
    }

    /// The agent turned its viewer away (the end-to-end handshake failed): the session waits
    /// again with a fresh joining window. `viewer_spoke` says whether the paired viewer sent
    /// anything to the agent (only then was it an attempt at the code).
    pub fn release(&mut self, id: SessionId, now: Instant, viewer_spoke: bool) -> Option<Released<V>> {
        let entry = self.sessions.get_mut(&id)?;
        let viewer = match &entry.state {
            State::Waiting { expires } => {
                // Nothing to release; the window is not extended by asking.
                return Some(Released {
                    pairing: false,
                    viewer: None,
                    window: expires.saturating_duration_since(now),
                });
            }
            State::Paired { .. } | State::Vacated => {
                let expires = now + self.limits.pairing_ttl;
                match std::mem::replace(&mut entry.state, State::Waiting { expires }) {
                    State::Paired { viewer, .. } => {
                        self.paired = self.paired.saturating_sub(1);
                        if viewer_spoke && !entry.quick {
                            entry.attempts += 1;
                        }
                        Some(viewer)
                    }
                    _ => None,
                }
            }
        };
        entry.registered = now;
        let source = entry.agent_source;
        self.count_waiting(source, true);
        Some(Released {
            pairing: true,
            viewer,
            window: self.limits.pairing_ttl,
        })
    }

    /// The viewer of pairing `generation` disconnected (`viewer_spoke`: it had sent something
    /// to the agent). Returns the agent to tell, unless the session has moved on (released,
    /// re-paired or gone).
    pub fn viewer_left(&mut self, id: SessionId, generation: u64, viewer_spoke: bool) -> Option<A> {
        let entry = self.sessions.get_mut(&id)?;
        match entry.state {
            State::Paired { generation: g, .. } if g == generation => {
                entry.state = State::Vacated;
                if viewer_spoke && !entry.quick {
                    entry.attempts += 1;
                }
                self.paired = self.paired.saturating_sub(1);
                Some(entry.agent.clone())
            }
            _ => None,
        }
    }

    /// The session ends (agent left, burned it, or a limit ended it). Returns the paired
    /// viewer, if any, to disconnect.
    pub fn remove(&mut self, id: SessionId, now: Instant) -> Option<V> {
        let entry = self.sessions.remove(&id)?;
        if let Some(tag) = entry.device
            && self.devices.get(&tag) == Some(&id)
        {
            self.devices.remove(&tag);
        }
        // Bounded: a client that registers and leaves in a loop must not grow the table
        // without limit; past the cap an ID may come back sooner.
        if self.tombstones.len() < MAX_TOMBSTONES {
            self.tombstones.insert(id, now + self.limits.pairing_ttl);
        }
        match entry.state {
            State::Waiting { .. } => {
                self.count_waiting(entry.agent_source, false);
                None
            }
            State::Paired { viewer, .. } => {
                self.paired = self.paired.saturating_sub(1);
                Some(viewer)
            }
            State::Vacated => None,
        }
    }

    /// Ends waiting sessions whose joining window has passed and forgets old tombstones and
    /// idle rate-limit buckets. Returns the agents to tell.
    pub fn sweep(&mut self, now: Instant) -> Vec<(SessionId, A)> {
        let expired: Vec<SessionId> = self
            .sessions
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Waiting { expires } if now >= expires))
            .map(|(id, _)| *id)
            .collect();
        let mut agents = Vec::with_capacity(expired.len());
        for id in expired {
            if let Some(entry) = self.sessions.get(&id) {
                agents.push((id, entry.agent.clone()));
            }
            self.remove(id, now);
        }
        self.tombstones.retain(|_, until| now < *until);
        self.ended_resumes.retain(|_, e| now < e.until);
        self.join_buckets.retain(|_, b| !b.is_full(now));
        self.register_buckets.retain(|_, b| !b.is_full(now));
        self.device_buckets.retain(|_, b| !b.is_full(now));
        agents
    }

    /// Every agent whose session is still waiting (to tell them the relay shuts down).
    pub fn waiting_agents(&self) -> Vec<(SessionId, A)> {
        self.sessions
            .iter()
            .filter(|(_, e)| matches!(e.state, State::Waiting { .. }))
            .map(|(id, e)| (*id, e.agent.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn default_source(ip: IpAddr) -> Source {
        crate::source::SourceMask::default().source(ip)
    }

    fn limits() -> RegistryLimits {
        RegistryLimits {
            pairing_ttl: Duration::from_secs(60),
            join_rate: 1.0,
            join_burst: 5.0,
            register_rate: 1.0,
            register_burst: 100.0,
            attempts_per_session: 3,
            waiting_per_source: 2,
            waiting_total: 3,
            device_lookup_rate: 0.1,
            device_lookup_burst: 3.0,
        }
    }

    fn ip(n: u8) -> Source {
        default_source(IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)))
    }

    fn v6(s: &str) -> Source {
        default_source(s.parse().unwrap())
    }

    fn reg() -> Registry<u32, u32> {
        Registry::new(limits())
    }

    fn join(
        r: &mut Registry<u32, u32>,
        id: SessionId,
        viewer: u32,
        from: Source,
        t: Instant,
    ) -> Result<Pairing<u32, ()>, TurnedAway<u32>> {
        r.join(Joining::Id(id), viewer, from, t, Ok(()), |_| Some(()))
    }

    fn refusal(r: Result<Pairing<u32, ()>, TurnedAway<u32>>) -> (Refusal, Option<(u32, Refusal)>) {
        let t = r.unwrap_err();
        (t.to_viewer, t.tell_agent)
    }

    #[test]
    fn register_join_once() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        let (id, ttl) = r.register(|_| 1, ip(1), t, &mut rng).unwrap();
        assert_eq!(ttl, Duration::from_secs(60));
        assert_eq!(r.waiting(), 1);
        let p = join(&mut r, id, 100, ip(2), t + Duration::from_secs(1)).unwrap();
        assert_eq!(p.agent, 1);
        assert_eq!(p.latency, Duration::from_secs(1));
        assert_eq!((r.waiting(), r.paired()), (0, 1));
        assert_eq!(r.viewer(id), Some(&100));
        // Another viewer hears "unknown"; the agent hears the truth.
        assert_eq!(
            refusal(join(&mut r, id, 101, ip(3), t)),
            (Refusal::UnknownSession, Some((1, Refusal::AlreadyPaired)))
        );
    }

    #[test]
    fn quick_access_sessions_are_joined_by_tag_only_and_code_sessions_by_id_only() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        let (code, _) = r.register(|_| 1, ip(1), t, &mut rng).unwrap();
        let (quick, _) = r.register(|_| 2, ip(1), t, &mut rng).unwrap();
        r.claim_device(quick, DeviceTag([7; 16]));
        let mut attempt = |joining| {
            r.join(joining, 5, ip(2), t, Ok(()), |_| Some(()))
                .map(|p| p.agent)
                .map_err(|e| (e.to_viewer, e.tell_agent))
        };
        // The wrong way in is an unknown session, and neither agent hears of it.
        assert_eq!(attempt(Joining::Id(quick)), Err((Refusal::UnknownSession, None)));
        assert_eq!(
            attempt(Joining::Device(code)),
            Err((Refusal::UnknownSession, None))
        );
        assert_eq!(attempt(Joining::Device(quick)), Ok(2));
        assert_eq!(attempt(Joining::Id(code)), Ok(1));
        // A session that lost its tag to a newer claim stays a quick-access session.
        let (newer, _) = r.register(|_| 3, ip(1), t, &mut rng).unwrap();
        r.claim_device(newer, DeviceTag([7; 16]));
        r.release(quick, t, false);
        let mut attempt = |joining| {
            r.join(joining, 6, ip(3), t, Ok(()), |_| Some(()))
                .map(|p| p.agent)
        };
        assert!(attempt(Joining::Id(quick)).is_err());
        // Failed key handshakes do not use a quick-access session up, and the cluster never
        // hears of it as joinable by ID.
        for _ in 0..limits().attempts_per_session + 2 {
            let device = |r: &mut Registry<u32, u32>| {
                r.join(Joining::Device(newer), 7, ip(4), t, Ok(()), |_| Some(()))
            };
            assert!(device(&mut r).is_ok());
            r.release(newer, t, true);
        }
        assert!(!r.joinable(quick) && !r.joinable(newer));
        assert!(r.joinable(code) || r.viewer(code).is_some());
    }

    #[test]
    fn device_tags_find_the_latest_live_claim_and_lookups_are_limited() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        let tag = DeviceTag([7; 16]);
        let (first, _) = r.register(|_| 1, ip(1), t, &mut rng).unwrap();
        r.claim_device(first, tag);
        assert_eq!(r.find_device(tag, ip(9), t), Ok(first));
        assert_eq!(
            r.find_device(DeviceTag([8; 16]), ip(9), t),
            Err(Refusal::UnknownSession)
        );
        // A later claim (the customer restarted the agent, or someone else) takes the tag.
        let (second, _) = r.register(|_| 2, ip(2), t, &mut rng).unwrap();
        r.claim_device(second, tag);
        assert_eq!(r.find_device(tag, ip(9), t), Ok(second));
        // That source's burst (3) is spent.
        assert_eq!(
            r.find_device(tag, ip(9), t),
            Err(Refusal::RateLimited { retry_after_secs: 10 })
        );
        assert_eq!(r.find_device(tag, ip(10), t), Ok(second));
        // The old session ending does not take the tag from the new one; the new one ending does.
        r.remove(first, t);
        assert_eq!(r.find_device(tag, ip(10), t), Ok(second));
        r.remove(second, t);
        assert_eq!(r.find_device(tag, ip(10), t), Err(Refusal::UnknownSession));
        // Lookups of a source are rate-limited whatever the answer; the bucket refills.
        assert!(matches!(
            r.find_device(tag, ip(10), t),
            Err(Refusal::RateLimited { .. })
        ));
        assert_eq!(
            r.find_device(tag, ip(10), t + Duration::from_secs(10)),
            Err(Refusal::UnknownSession)
        );
        assert!(r.devices.is_empty());
    }

    #[test]
    fn unknown_expired_burned_and_paired_ids_get_one_answer() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        let unknown: SessionId = "000000000".parse().unwrap();
        assert_eq!(
            refusal(join(&mut r, unknown, 1, ip(2), t)),
            (Refusal::UnknownSession, None)
        );

        let (id, _) = r.register(|_| 1, ip(1), t, &mut rng).unwrap();
        let late = t + Duration::from_secs(61);
        assert_eq!(
            refusal(join(&mut r, id, 1, ip(2), late)),
            (Refusal::UnknownSession, None)
        );
        // The sweep removes it and hands back the agent to tell.
        assert_eq!(r.sweep(late), vec![(id, 1)]);
        assert_eq!(
            refusal(join(&mut r, id, 1, ip(3), late)),
            (Refusal::UnknownSession, None)
        );
        assert_eq!(r.waiting(), 0);

        let (id, _) = r.register(|_| 1, ip(1), t, &mut rng).unwrap();
        assert_eq!(r.remove(id, t), None);
        assert_eq!(
            refusal(join(&mut r, id, 1, ip(4), t)),
            (Refusal::UnknownSession, None)
        );
    }

    #[test]
    fn ended_ids_are_not_reissued_for_a_while_and_tombstones_are_bounded() {
        let mut r: Registry<u32, u32> = Registry::new(RegistryLimits {
            waiting_per_source: u32::MAX,
            waiting_total: usize::MAX,
            register_burst: f64::MAX,
            ..limits()
        });
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        for _ in 0..MAX_TOMBSTONES + 10 {
            let (id, _) = r.register(|_| 1, ip(1), t, &mut rng).unwrap();
            r.remove(id, t);
        }
        assert_eq!(r.tombstones.len(), MAX_TOMBSTONES);
        assert!(r.is_empty());
        r.sweep(t + Duration::from_secs(3600));
        assert!(r.tombstones.is_empty());
    }

    #[test]
    fn sweep_reports_expired_agents() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        let (id, _) = r.register(|_| 7, ip(1), t, &mut rng).unwrap();
        assert!(r.sweep(t + Duration::from_secs(59)).is_empty());
        assert_eq!(r.sweep(t + Duration::from_secs(60)), vec![(id, 7)]);
        assert!(r.is_empty());
    }

    #[test]
    fn waiting_caps_per_source_and_total() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        r.register(|_| 1, ip(1), t, &mut rng).unwrap();
        r.register(|_| 2, ip(1), t, &mut rng).unwrap();
        assert_eq!(
            r.register(|_| 3, ip(1), t, &mut rng).unwrap_err(),
            Refusal::Capacity
        );
        r.register(|_| 4, ip(2), t, &mut rng).unwrap();
        assert_eq!(
            r.register(|_| 5, ip(3), t, &mut rng).unwrap_err(),
            Refusal::Capacity
        );
    }

    #[test]
    fn registrations_are_rate_limited_per_source() {
        let mut r: Registry<u32, u32> = Registry::new(RegistryLimits {
            register_burst: 2.0,
            waiting_per_source: 100,
            waiting_total: 100,
            ..limits()
        });
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        for _ in 0..2 {
            let (id, _) = r.register(|_| 1, ip(1), t, &mut rng).unwrap();
            r.remove(id, t);
        }
        assert!(matches!(
            r.register(|_| 1, ip(1), t, &mut rng),
            Err(Refusal::RateLimited { retry_after_secs: 1 })
        ));
        r.register(|_| 1, ip(2), t, &mut rng).unwrap();
        r.register(|_| 1, ip(1), t + Duration::from_secs(1), &mut rng)
            .unwrap();
    }

    #[test]
    fn a_registration_token_comes_first_and_the_caps_hold_again_when_it_is_spent() {
        let mut r: Registry<u32, u32> = Registry::new(RegistryLimits {
            register_burst: 2.0,
            waiting_per_source: 1,
            waiting_total: 100,
            ..limits()
        });
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        let first = r.take_registration(ip(1), t).unwrap();
        let second = r.take_registration(ip(1), t).unwrap();
        // The burst is spent: refused before the caller has made anything for it.
        assert!(matches!(
            r.take_registration(ip(1), t),
            Err(Refusal::RateLimited { .. })
        ));
        r.register_with(first, |_| 1, t, &mut rng).unwrap();
        // The source took its one waiting session while the second registration was pending.
        assert_eq!(
            r.register_with(second, |_| 2, t, &mut rng).unwrap_err(),
            Refusal::Capacity
        );
        // A source at its cap is refused when it asks, not after.
        assert_eq!(
            r.take_registration(ip(1), t + Duration::from_secs(1))
                .unwrap_err(),
            Refusal::Capacity
        );
        assert_eq!(r.waiting(), 1);
    }

    #[test]
    fn per_source_limits_aggregate_an_ipv6_prefix() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        // Waiting sessions: two per source, and every address of a /64 is the same source.
        r.register(|_| 1, v6("2001:db8:1:1::1"), t, &mut rng).unwrap();
        r.register(|_| 2, v6("2001:db8:1:1::2"), t, &mut rng).unwrap();
        assert_eq!(
            r.register(|_| 3, v6("2001:db8:1:1:8000::3"), t, &mut rng)
                .unwrap_err(),
            Refusal::Capacity
        );
        // Joins: a burst of five per source, spread over many addresses of one /64.
        let unknown: SessionId = "999999999".parse().unwrap();
        let mut limited = 0;
        for n in 0..20u16 {
            let from = v6(&format!("2001:db8:2:2::{n:x}"));
            if let Err(TurnedAway {
                to_viewer: Refusal::RateLimited { .. },
                ..
            }) = join(&mut r, unknown, 0, from, t)
            {
                limited += 1;
            }
        }
        assert_eq!(limited, 15, "the /64 shares one burst of 5");
        // The next /64 has its own.
        assert_eq!(
            refusal(join(&mut r, unknown, 0, v6("2001:db8:2:3::1"), t)).0,
            Refusal::UnknownSession
        );
        // Registrations share a bucket per /64 too.
        let mut tight: Registry<u32, u32> = Registry::new(RegistryLimits {
            register_burst: 1.0,
            ..limits()
        });
        tight.register(|_| 1, v6("2001:db8:9:9::1"), t, &mut rng).unwrap();
        assert!(matches!(
            tight.register(|_| 2, v6("2001:db8:9:9::2"), t, &mut rng),
            Err(Refusal::RateLimited { .. })
        ));
    }

    #[test]
    fn join_flood_from_one_source_is_throttled_others_get_through() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        let (id, _) = r.register(|_| 1, ip(1), t, &mut rng).unwrap();
        let unknown: SessionId = "999999999".parse().unwrap();
        let mut limited = 0;
        for _ in 0..20 {
            if let Err(TurnedAway {
                to_viewer: Refusal::RateLimited { .. },
                ..
            }) = join(&mut r, unknown, 0, ip(66), t)
            {
                limited += 1;
            }
        }
        assert_eq!(limited, 15, "burst of 5, then throttled");
        assert!(join(&mut r, id, 9, ip(2), t).is_ok());
    }

    #[test]
    fn only_pairings_where_the_viewer_spoke_count_against_a_session() {
        let mut r: Registry<u32, u32> = Registry::new(RegistryLimits {
            join_burst: 1000.0,
            ..limits()
        });
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        let (id, _) = r.register(|_| 1, ip(1), t, &mut rng).unwrap();
        // Many viewers that pair and leave without a word, and refused joins while paired,
        // cost nothing.
        for n in 0..50u32 {
            let p = join(&mut r, id, n, ip(10), t).unwrap();
            assert!(join(&mut r, id, 1000 + n, ip(11), t).is_err());
            assert_eq!(r.viewer_left(id, p.generation, false), Some(1));
            r.release(id, t, false).unwrap();
        }
        // Three that spoke (possible code guesses) use the session up.
        for n in 0..3u32 {
            let p = join(&mut r, id, n, ip(12), t).unwrap();
            if n == 0 {
                // Turned away by the agent while still connected.
                assert_eq!(r.release(id, t, true).unwrap().viewer, Some(n));
            } else {
                r.viewer_left(id, p.generation, true);
                r.release(id, t, false).unwrap();
            }
        }
        assert_eq!(
            refusal(join(&mut r, id, 9, ip(13), t)),
            (Refusal::UnknownSession, Some((1, Refusal::LimitExceeded)))
        );
    }

    #[test]
    fn credential_refusals_do_not_depend_on_the_id_and_reach_the_agent() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        let (id, _) = r.register(|_| 1, ip(1), t, &mut rng).unwrap();
        let unknown: SessionId = "999999999".parse().unwrap();
        let mut attempt = |id, credential| {
            r.join(Joining::Id(id), 5, ip(2), t, credential, |_| Some(()))
                .map(|_| ())
                .map_err(|e| (e.to_viewer, e.tell_agent))
        };
        assert_eq!(
            attempt(unknown, Err(Refusal::CredentialRequired)),
            Err((Refusal::CredentialRequired, None))
        );
        assert_eq!(
            attempt(id, Err(Refusal::CredentialRefused)),
            Err((Refusal::CredentialRefused, Some((1, Refusal::CredentialRefused))))
        );
        assert_eq!(attempt(id, Ok(())), Ok(()));
    }

    #[test]
    fn a_pairing_the_reservation_cannot_pay_for_is_refused_for_capacity() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        let (id, _) = r.register(|_| 1, ip(1), t, &mut rng).unwrap();
        let refused = r.join(Joining::Id(id), 5, ip(2), t, Ok(()), |_| None::<()>);
        let turned = refused.unwrap_err();
        assert_eq!(turned.to_viewer, Refusal::Capacity);
        assert_eq!(turned.tell_agent, Some((1, Refusal::Capacity)));
        assert_eq!((r.waiting(), r.paired()), (1, 0));
        let p = r
            .join(Joining::Id(id), 5, ip(2), t, Ok(()), |agent| Some(*agent * 10))
            .unwrap();
        assert_eq!(p.reserved, 10);
    }

    #[test]
    fn release_and_viewer_left() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_wire::os_rng();
        let (id, _) = r.register(|_| 1, ip(1), t, &mut rng).unwrap();
        let p = join(&mut r, id, 100, ip(2), t).unwrap();
        // The viewer leaves: the agent is told, nobody can join until it releases.
        assert_eq!(r.viewer_left(id, p.generation, false), Some(1));
        assert_eq!(
            refusal(join(&mut r, id, 101, ip(3), t)).0,
            Refusal::UnknownSession
        );
        let released = r.release(id, t, false).unwrap();
        assert!(released.pairing && released.viewer.is_none());
        let p2 = join(&mut r, id, 102, ip(4), t).unwrap();
        // Releasing hands back the viewer to disconnect; its late departure is ignored.
        assert_eq!(r.release(id, t, false).unwrap().viewer, Some(102));
        assert_eq!(r.viewer_left(id, p2.generation, false), None);
        assert_eq!((r.waiting(), r.paired()), (1, 0));
        // A release with nobody paired changes nothing and does not extend the window.
        let later = t + Duration::from_secs(10);
        assert_eq!(
            r.release(id, later, false).unwrap(),
            Released {
                pairing: false,
                viewer: None,
                window: Duration::from_secs(50)
            }
        );
        assert_eq!(r.waiting(), 1);
        assert_eq!(r.remove(id, t), None);
        assert_eq!(r.waiting(), 0);
    }

    #[test]
    fn an_ended_resume_is_kept_for_its_viewer_until_the_pairing_ttl_and_bounded_per_source() {
        let mut r = reg();
        let t = Instant::now();
        let slot = DeviceTag([1; 16]);
        assert_eq!(r.resume_ended(slot, t), None);
        r.end_resume(slot, [7; 32], ip(1), t);
        assert_eq!(r.resume_ended(slot, t + Duration::from_secs(59)), Some([7; 32]));
        assert!(r.holds_device(slot), "the cluster keeps pointing here");
        assert!(
            r.device_tags().contains(&slot),
            "and the heartbeat renews the claim"
        );
        // The latest end under a slot holds (the customer's own comes after any made up).
        r.end_resume(slot, [8; 32], ip(1), t);
        assert_eq!(r.resume_ended(slot, t), Some([8; 32]));
        // A source keeps as many as it may have sessions waiting (2 here): its oldest goes.
        let later = t + Duration::from_secs(1);
        r.end_resume(DeviceTag([2; 16]), [2; 32], ip(1), later);
        // Apart in time, so that which is the oldest of all below does not rest on a tie.
        r.end_resume(
            DeviceTag([3; 16]),
            [3; 32],
            ip(1),
            later + Duration::from_millis(500),
        );
        assert_eq!(r.resume_ended(slot, later), None, "the source's oldest went");
        assert_eq!(r.resume_ended(DeviceTag([3; 16]), later), Some([3; 32]));
        // The relay as many as sessions may wait (3 here): the oldest of all goes.
        r.end_resume(DeviceTag([4; 16]), [4; 32], ip(2), later + Duration::from_secs(1));
        r.end_resume(DeviceTag([5; 16]), [5; 32], ip(3), later + Duration::from_secs(2));
        assert_eq!(r.resume_ended(DeviceTag([2; 16]), later), None);
        assert_eq!(r.resume_ended(DeviceTag([5; 16]), later), Some([5; 32]));
        // An agent waiting under a slot stands before an end made up there.
        let (id, _) = r
            .register(|_| 1, ip(4), later, &mut ponte_wire::os_rng())
            .unwrap();
        r.claim_device(id, DeviceTag([5; 16]));
        assert_eq!(r.resume_ended(DeviceTag([5; 16]), later), None);
        let gone = t + Duration::from_secs(70);
        assert_eq!(r.resume_ended(DeviceTag([3; 16]), gone), None);
        r.sweep(gone);
        assert!(!r.holds_device(DeviceTag([3; 16])));
    }

    #[test]
    fn a_resume_found_with_the_last_join_token_pairs() {
        let mut r = reg();
        let t = Instant::now();
        let (id, _) = r.register(|_| 1, ip(1), t, &mut ponte_wire::os_rng()).unwrap();
        let slot = DeviceTag([9; 16]);
        r.claim_device(id, slot);
        // The viewer's source spent all but one of its 5 join tokens looking.
        for _ in 0..4 {
            assert_eq!(
                r.find_resume(DeviceTag([1; 16]), ip(2), t),
                Err(Refusal::UnknownSession)
            );
        }
        assert_eq!(r.find_resume(slot, ip(2), t), Ok(id));
        assert!(
            r.join(Joining::Resume(id), 5, ip(2), t, Ok(()), |_| Some(()))
                .is_ok()
        );
    }
}
