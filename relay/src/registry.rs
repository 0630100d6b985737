//! The session table: which agent waits under which session ID, who is paired with whom,
//! and every limit on registering and joining.
//!
//! It is synchronous and generic over the agent and viewer handles, so the rules are tested
//! without sockets; the server keeps it behind a mutex and does the I/O.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ponte_protocol::SessionId;
use ponte_protocol::rendezvous::Refusal;
use rand_core::CryptoRng;

use crate::bucket::TokenBucket;

/// Most recently ended session IDs remembered for their refusal reason.
pub const MAX_TOMBSTONES: usize = 100_000;

/// The limits the registry enforces.
#[derive(Debug, Clone)]
pub struct RegistryLimits {
    /// How long a session ID can be joined after registration (or release).
    pub pairing_ttl: Duration,
    /// Join attempts per IP: sustained rate per second.
    pub join_rate: f64,
    /// Join attempts per IP: burst.
    pub join_burst: f64,
    /// Join attempts against one session ID over its lifetime.
    pub joins_per_session: u32,
    /// Waiting (unpaired) sessions one IP may hold.
    pub waiting_per_ip: u32,
    /// Waiting sessions in total.
    pub waiting_total: usize,
}

/// Where a session is in its life.
#[derive(Debug)]
enum State<V> {
    /// The agent waits for a viewer until `expires`.
    Waiting { expires: Instant },
    /// A viewer is paired; `generation` tells this pairing from later ones.
    Paired { viewer: V, generation: u64 },
    /// The paired viewer left; nobody may join until the agent releases the session.
    Vacated,
}

#[derive(Debug)]
struct Entry<A, V> {
    agent: A,
    agent_ip: IpAddr,
    registered: Instant,
    joins: u32,
    state: State<V>,
}

/// The outcome of a successful join.
#[derive(Debug)]
pub struct Pairing<A> {
    /// The agent's handle.
    pub agent: A,
    /// Identifies this pairing in [`Registry::viewer_left`].
    pub generation: u64,
    /// Time from registration to pairing.
    pub latency: Duration,
}

/// The session table.
#[derive(Debug)]
pub struct Registry<A, V> {
    limits: RegistryLimits,
    sessions: HashMap<SessionId, Entry<A, V>>,
    /// Recently ended IDs and why, so a late join hears "expired" or "burned", not "unknown".
    tombstones: HashMap<SessionId, (Refusal, Instant)>,
    waiting_by_ip: HashMap<IpAddr, u32>,
    join_buckets: HashMap<IpAddr, TokenBucket>,
    next_generation: u64,
}

impl<A: Clone, V> Registry<A, V> {
    /// An empty table.
    pub fn new(limits: RegistryLimits) -> Self {
        Registry {
            limits,
            sessions: HashMap::new(),
            tombstones: HashMap::new(),
            waiting_by_ip: HashMap::new(),
            join_buckets: HashMap::new(),
            next_generation: 0,
        }
    }

    /// Sessions waiting for a viewer.
    pub fn waiting(&self) -> usize {
        self.waiting_by_ip.values().map(|&n| n as usize).sum()
    }

    /// Sessions with a paired viewer.
    pub fn paired(&self) -> usize {
        self.sessions
            .values()
            .filter(|e| matches!(e.state, State::Paired { .. }))
            .count()
    }

    /// All sessions, in any state.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn set_waiting(&mut self, ip: IpAddr, waiting: bool) {
        let n = self.waiting_by_ip.entry(ip).or_insert(0);
        if waiting {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.waiting_by_ip.remove(&ip);
            }
        }
    }

    /// Registers a waiting agent under a fresh random session ID.
    pub fn register(
        &mut self,
        agent: A,
        ip: IpAddr,
        now: Instant,
        rng: &mut impl CryptoRng,
    ) -> Result<(SessionId, Duration), Refusal> {
        if self.waiting_by_ip.get(&ip).copied().unwrap_or(0) >= self.limits.waiting_per_ip
            || self.waiting() >= self.limits.waiting_total
        {
            return Err(Refusal::Capacity);
        }
        let id = loop {
            let id = SessionId::random(rng);
            if !self.sessions.contains_key(&id) && !self.tombstones.contains_key(&id) {
                break id;
            }
        };
        self.sessions.insert(
            id,
            Entry {
                agent,
                agent_ip: ip,
                registered: now,
                joins: 0,
                state: State::Waiting {
                    expires: now + self.limits.pairing_ttl,
                },
            },
        );
        self.set_waiting(ip, true);
        Ok((id, self.limits.pairing_ttl))
    }

    /// A viewer from `ip` asks to join `id`.
    pub fn join(
        &mut self,
        id: SessionId,
        viewer: V,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Pairing<A>, Refusal> {
        let bucket = self
            .join_buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(self.limits.join_rate, self.limits.join_burst, now));
        if let Err(wait) = bucket.try_take(1.0, now) {
            return Err(Refusal::RateLimited {
                retry_after_secs: wait.as_secs().max(1) as u32,
            });
        }
        let Some(entry) = self.sessions.get_mut(&id) else {
            return Err(self.tombstones.get(&id).map_or(Refusal::UnknownSession, |t| t.0));
        };
        entry.joins += 1;
        if entry.joins > self.limits.joins_per_session {
            return Err(Refusal::RateLimited {
                retry_after_secs: self.limits.pairing_ttl.as_secs() as u32,
            });
        }
        match entry.state {
            // Left in place for `sweep`, which removes it and tells the agent.
            State::Waiting { expires } if now >= expires => Err(Refusal::Expired),
            State::Waiting { .. } => {
                let generation = self.next_generation;
                self.next_generation += 1;
                entry.state = State::Paired { viewer, generation };
                let pairing = Pairing {
                    agent: entry.agent.clone(),
                    generation,
                    latency: now.saturating_duration_since(entry.registered),
                };
                let agent_ip = entry.agent_ip;
                self.set_waiting(agent_ip, false);
                Ok(pairing)
            }
            State::Paired { .. } | State::Vacated => Err(Refusal::AlreadyPaired),
        }
    }

    /// The agent turned its viewer away (failed handshake): the session waits again with a
    /// fresh joining window. Returns the viewer to disconnect, and the new window.
    pub fn release(&mut self, id: SessionId, now: Instant) -> Option<(Option<V>, Duration)> {
        let entry = self.sessions.get_mut(&id)?;
        let expires = now + self.limits.pairing_ttl;
        let previous = std::mem::replace(&mut entry.state, State::Waiting { expires });
        let ip = entry.agent_ip;
        entry.registered = now;
        let viewer = match previous {
            State::Paired { viewer, .. } => Some(viewer),
            State::Vacated => None,
            State::Waiting { .. } => return Some((None, self.limits.pairing_ttl)),
        };
        self.set_waiting(ip, true);
        Some((viewer, self.limits.pairing_ttl))
    }

    /// The viewer of pairing `generation` disconnected. Returns the agent to tell, unless
    /// the session has moved on (released, re-paired or gone).
    pub fn viewer_left(&mut self, id: SessionId, generation: u64) -> Option<A> {
        let entry = self.sessions.get_mut(&id)?;
        match entry.state {
            State::Paired { generation: g, .. } if g == generation => {
                entry.state = State::Vacated;
                Some(entry.agent.clone())
            }
            _ => None,
        }
    }

    /// The session ends (agent left, burned it, or a limit ended it). Returns the paired
    /// viewer, if any, to disconnect.
    pub fn remove(&mut self, id: SessionId, reason: Refusal, now: Instant) -> Option<V> {
        let entry = self.sessions.remove(&id)?;
        // Bounded: a client that registers and leaves in a loop must not grow the table
        // without limit; past the cap a late join just hears "unknown".
        if self.tombstones.len() < MAX_TOMBSTONES {
            self.tombstones
                .insert(id, (reason, now + self.limits.pairing_ttl));
        }
        match entry.state {
            State::Waiting { .. } => {
                self.set_waiting(entry.agent_ip, false);
                None
            }
            State::Paired { viewer, .. } => Some(viewer),
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
            self.remove(id, Refusal::Expired, now);
        }
        self.tombstones.retain(|_, (_, until)| now < *until);
        self.join_buckets.retain(|_, b| !b.is_full(now));
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
    use std::net::Ipv4Addr;

    fn limits() -> RegistryLimits {
        RegistryLimits {
            pairing_ttl: Duration::from_secs(60),
            join_rate: 1.0,
            join_burst: 5.0,
            joins_per_session: 3,
            waiting_per_ip: 2,
            waiting_total: 3,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }

    fn reg() -> Registry<u32, u32> {
        Registry::new(limits())
    }

    #[test]
    fn register_join_once() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_protocol::os_rng();
        let (id, ttl) = r.register(1, ip(1), t, &mut rng).unwrap();
        assert_eq!(ttl, Duration::from_secs(60));
        assert_eq!(r.waiting(), 1);
        let p = r.join(id, 100, ip(2), t + Duration::from_secs(1)).unwrap();
        assert_eq!(p.agent, 1);
        assert_eq!(p.latency, Duration::from_secs(1));
        assert_eq!((r.waiting(), r.paired()), (0, 1));
        assert_eq!(r.join(id, 101, ip(3), t).unwrap_err(), Refusal::AlreadyPaired);
    }

    #[test]
    fn unknown_expired_burned() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_protocol::os_rng();
        let unknown: SessionId = "000000000".parse().unwrap();
        assert_eq!(r.join(unknown, 1, ip(2), t).unwrap_err(), Refusal::UnknownSession);

        let (id, _) = r.register(1, ip(1), t, &mut rng).unwrap();
        let late = t + Duration::from_secs(61);
        assert_eq!(r.join(id, 1, ip(2), late).unwrap_err(), Refusal::Expired);
        // The sweep removes it and hands back the agent to tell.
        assert_eq!(r.sweep(late), vec![(id, 1)]);
        assert_eq!(r.join(id, 1, ip(2), late).unwrap_err(), Refusal::Expired);
        assert_eq!(r.waiting(), 0);

        let (id, _) = r.register(1, ip(1), t, &mut rng).unwrap();
        assert_eq!(r.remove(id, Refusal::Burned, t), None);
        assert_eq!(r.join(id, 1, ip(2), t).unwrap_err(), Refusal::Burned);
        // Tombstones are forgotten after a while.
        r.sweep(t + Duration::from_secs(3600));
        assert_eq!(
            r.join(id, 1, ip(3), t + Duration::from_secs(3600)).unwrap_err(),
            Refusal::UnknownSession
        );
    }

    #[test]
    fn tombstones_are_bounded() {
        let mut r: Registry<u32, u32> = Registry::new(RegistryLimits {
            waiting_per_ip: u32::MAX,
            waiting_total: usize::MAX,
            ..limits()
        });
        let t = Instant::now();
        let mut rng = ponte_protocol::os_rng();
        for _ in 0..MAX_TOMBSTONES + 10 {
            let (id, _) = r.register(1, ip(1), t, &mut rng).unwrap();
            r.remove(id, Refusal::Burned, t);
        }
        assert_eq!(r.tombstones.len(), MAX_TOMBSTONES);
        assert!(r.is_empty());
    }

    #[test]
    fn sweep_reports_expired_agents() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_protocol::os_rng();
        let (id, _) = r.register(7, ip(1), t, &mut rng).unwrap();
        assert!(r.sweep(t + Duration::from_secs(59)).is_empty());
        assert_eq!(r.sweep(t + Duration::from_secs(60)), vec![(id, 7)]);
        assert!(r.is_empty());
    }

    #[test]
    fn waiting_caps_per_ip_and_total() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_protocol::os_rng();
        r.register(1, ip(1), t, &mut rng).unwrap();
        r.register(2, ip(1), t, &mut rng).unwrap();
        assert_eq!(r.register(3, ip(1), t, &mut rng).unwrap_err(), Refusal::Capacity);
        r.register(4, ip(2), t, &mut rng).unwrap();
        assert_eq!(r.register(5, ip(3), t, &mut rng).unwrap_err(), Refusal::Capacity);
    }

    #[test]
    fn join_flood_from_one_ip_is_throttled_others_get_through() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_protocol::os_rng();
        let (id, _) = r.register(1, ip(1), t, &mut rng).unwrap();
        let unknown: SessionId = "999999999".parse().unwrap();
        let mut limited = 0;
        for _ in 0..20 {
            if let Err(Refusal::RateLimited { .. }) = r.join(unknown, 0, ip(66), t) {
                limited += 1;
            }
        }
        assert_eq!(limited, 15, "burst of 5, then throttled");
        assert!(r.join(id, 9, ip(2), t).is_ok());
    }

    #[test]
    fn joins_per_session_are_capped() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_protocol::os_rng();
        let (id, _) = r.register(1, ip(1), t, &mut rng).unwrap();
        for n in 0..3 {
            r.join(id, n, ip(10 + n as u8), t).unwrap();
            r.release(id, t).unwrap();
        }
        assert!(matches!(
            r.join(id, 9, ip(20), t),
            Err(Refusal::RateLimited { .. })
        ));
    }

    #[test]
    fn release_and_viewer_left() {
        let mut r = reg();
        let t = Instant::now();
        let mut rng = ponte_protocol::os_rng();
        let (id, _) = r.register(1, ip(1), t, &mut rng).unwrap();
        let p = r.join(id, 100, ip(2), t).unwrap();
        // The viewer leaves: the agent is told, nobody can join until it releases.
        assert_eq!(r.viewer_left(id, p.generation), Some(1));
        assert_eq!(r.join(id, 101, ip(3), t).unwrap_err(), Refusal::AlreadyPaired);
        assert_eq!(r.release(id, t).unwrap().0, None);
        let p2 = r.join(id, 102, ip(4), t).unwrap();
        // Releasing hands back the viewer to disconnect; its late departure is ignored.
        assert_eq!(r.release(id, t).unwrap().0, Some(102));
        assert_eq!(r.viewer_left(id, p2.generation), None);
        assert_eq!(r.waiting(), 1);
        assert_eq!(r.remove(id, Refusal::PeerLeft, t), None);
        assert_eq!(r.waiting(), 0);
    }
}
