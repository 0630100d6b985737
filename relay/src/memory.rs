//! The memory peers can make the relay hold, and its caps.
//!
//! A QUIC peer may send as much as the relay's flow-control windows allow, and what it sends
//! stays in the relay until the other peer takes it. So the windows are promises of memory.
//! An unpaired connection gets tiny windows and no streams beyond its control line; a pairing
//! reserves each connection's windows — receive, send and datagram buffers — from a pool
//! capped in total and per source, before they are opened. (Copy tasks hold besides at most
//! one chunk per open stream, usually one packet's payload: see [`crate::forward`].) When the pool cannot give full
//! windows, the pairing gets small ones (slower, still working); when it cannot give even
//! those, the join is refused with `Capacity`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use quinn::{Connection, VarInt};

use crate::source::Source;

/// Largest chunk a copy task reads from a stream at a time.
pub const CHUNK: u64 = 64 * 1024;

/// An unpaired connection's receive window: room for its rendezvous messages, nothing more.
pub const UNPAIRED_WINDOW: u64 = 16 * 1024;

/// Buffer for datagrams in each direction of a connection (endpoint-wide in quinn).
pub const DATAGRAM_BUFFER: u64 = 64 * 1024;

/// Bidirectional streams a paired peer may have open at once at most (mirrored streams count
/// on both sides; credit comes back as streams end). Enough for every view of a session at
/// once (the peers' own QUIC stacks allow 100). quinn keeps a map entry for every stream a
/// peer may open, so this is memory at rest: 256 of each kind were about half of an idle
/// session's. A pairing starts with fewer ([`StreamCredit`]).
pub const PAIRED_BI_STREAMS: u32 = 64;

/// Unidirectional streams a paired peer may have open at once at most (Ponte's own protocol
/// opens none; they are forwarded for what is built on the relay).
pub const PAIRED_UNI_STREAMS: u32 = 16;

/// Bidirectional streams a peer may have open at once when its pairing starts: the control
/// line and the views an idle session keeps open, with room to spare.
pub const FIRST_BI_STREAMS: u32 = 8;

/// Unidirectional streams a peer may have open at once when its pairing starts.
pub const FIRST_UNI_STREAMS: u32 = 2;

/// The streams a paired peer may have open at once: [`FIRST_BI_STREAMS`] and
/// [`FIRST_UNI_STREAMS`] to start with, doubled whenever the peer has half as many streams open
/// as it may, up to [`PAIRED_BI_STREAMS`] and [`PAIRED_UNI_STREAMS`]. A session that never has
/// more than a few streams open at once — an idle one, or one whose assistant makes request
/// after request — then costs quinn a few stream entries, not 80; a peer that opens many at
/// once gets more credit before it runs out. Credit once given stays (QUIC cannot take it
/// back), so a limit only grows.
///
/// Doubling, not one more at a time: quinn announces new credit only once it has grown by more
/// than an eighth, and a peer waiting for it would open nothing more to raise it.
#[derive(Debug)]
pub struct StreamCredit {
    bi: Allowance,
    uni: Allowance,
}

impl Default for StreamCredit {
    fn default() -> Self {
        StreamCredit {
            bi: Allowance::new(FIRST_BI_STREAMS, PAIRED_BI_STREAMS),
            uni: Allowance::new(FIRST_UNI_STREAMS, PAIRED_UNI_STREAMS),
        }
    }
}

impl StreamCredit {
    /// The peer on `connection` opened another bidirectional stream, which counts as open until
    /// the returned token is dropped.
    pub fn opened_bi(&mut self, connection: &Connection) -> Arc<OpenStream> {
        let (open, grown) = self.bi.opened();
        if let Some(limit) = grown {
            connection.set_max_concurrent_bi_streams(limit);
        }
        open
    }

    /// The peer on `connection` opened another unidirectional stream, which counts as open
    /// until the returned token is dropped.
    pub fn opened_uni(&mut self, connection: &Connection) -> Arc<OpenStream> {
        let (open, grown) = self.uni.opened();
        if let Some(limit) = grown {
            connection.set_max_concurrent_uni_streams(limit);
        }
        open
    }
}

/// A stream the peer has open, held by the tasks that copy it.
#[derive(Debug)]
pub struct OpenStream(Arc<AtomicU32>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Streams of one kind: how many are open, how many may be open at once.
#[derive(Debug)]
struct Allowance {
    open: Arc<AtomicU32>,
    limit: u32,
    max: u32,
}

impl Allowance {
    fn new(first: u32, max: u32) -> Self {
        Allowance {
            open: Arc::new(AtomicU32::new(0)),
            limit: first,
            max,
        }
    }

    /// Counts one more open stream; its token, and the new limit if it grows.
    fn opened(&mut self) -> (Arc<OpenStream>, Option<VarInt>) {
        let open = self.open.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let token = Arc::new(OpenStream(self.open.clone()));
        if self.limit >= self.max || open.saturating_mul(2) < self.limit {
            return (token, None);
        }
        self.limit = self.limit.saturating_mul(2).min(self.max);
        (token, Some(VarInt::from_u32(self.limit)))
    }
}

/// The smallest windows a pairing gets when the pool is tight.
pub const MIN_WINDOW: u64 = 64 * 1024;

/// How much a paired connection may make the relay hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    /// Connection receive window and send window, each, in bytes.
    pub window: u64,
}

impl Tier {
    /// Everything reserved for one connection of this tier.
    pub fn bytes(&self) -> u64 {
        2 * self.window + 2 * DATAGRAM_BUFFER
    }
}

/// The caps of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferLimits {
    /// Bytes reserved for all connections together.
    pub total: u64,
    /// Bytes reserved for the connections of one source.
    pub per_source: u64,
    /// The windows a pairing gets when they fit.
    pub full: Tier,
}

#[derive(Debug)]
struct Pool {
    limits: BufferLimits,
    used: u64,
    by_source: HashMap<Source, u64>,
}

impl Pool {
    fn fits(&self, source: Source, bytes: u64) -> bool {
        let theirs = self.by_source.get(&source).copied().unwrap_or(0);
        self.used.saturating_add(bytes) <= self.limits.total
            && theirs.saturating_add(bytes) <= self.limits.per_source
    }
}

/// The relay's buffer pool, shared by every connection.
#[derive(Debug, Clone)]
pub struct Buffers(Arc<Mutex<Pool>>);

/// Memory reserved for one connection, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    pool: Buffers,
    source: Source,
    tier: Tier,
}

impl Reservation {
    /// The windows this reservation pays for.
    pub fn tier(&self) -> Tier {
        self.tier
    }
}

impl Buffers {
    /// An empty pool with these caps.
    pub fn new(limits: BufferLimits) -> Buffers {
        Buffers(Arc::new(Mutex::new(Pool {
            limits,
            used: 0,
            by_source: HashMap::new(),
        })))
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Pool> {
        // The pool's fields are updated together under the lock; a panic elsewhere cannot
        // leave them half-written.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reserves full windows for a connection from `source`, or the smallest ones if full
    /// ones do not fit; `None` if neither does.
    pub fn reserve(&self, source: Source) -> Option<Reservation> {
        let mut pool = self.pool();
        let full = pool.limits.full;
        let small = Tier {
            window: MIN_WINDOW.min(full.window),
        };
        let tier = [full, small].into_iter().find(|t| pool.fits(source, t.bytes()))?;
        pool.used += tier.bytes();
        *pool.by_source.entry(source).or_insert(0) += tier.bytes();
        crate::metrics::buffers_reserved(pool.used);
        Some(Reservation {
            pool: self.clone(),
            source,
            tier,
        })
    }

    /// Bytes reserved right now, in total.
    pub fn used(&self) -> u64 {
        self.pool().used
    }

    /// Bytes reserved right now for one source.
    pub fn used_by(&self, source: Source) -> u64 {
        self.pool().by_source.get(&source).copied().unwrap_or(0)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut pool = self.pool.pool();
        let bytes = self.tier.bytes();
        pool.used = pool.used.saturating_sub(bytes);
        if let Some(n) = pool.by_source.get_mut(&self.source) {
            *n = n.saturating_sub(bytes);
            if *n == 0 {
                pool.by_source.remove(&self.source);
            }
        }
        crate::metrics::buffers_reserved(pool.used);
    }
}

/// Transport settings every connection starts with: one bidirectional stream (the control
/// line), no unidirectional one, and windows for rendezvous messages only. `stream_window`
/// bounds each stream once paired.
pub fn unpaired_transport(stream_window: u64) -> quinn::TransportConfig {
    let mut t = ponte_transport::tls::transport_config(std::time::Duration::from_secs(30));
    t.max_concurrent_bidi_streams(VarInt::from_u32(1))
        .max_concurrent_uni_streams(VarInt::from_u32(0))
        .receive_window(VarInt::from_u32(UNPAIRED_WINDOW as u32))
        .stream_receive_window(VarInt::from_u64(stream_window).unwrap_or(VarInt::MAX))
        .send_window(UNPAIRED_WINDOW)
        .datagram_receive_buffer_size(Some(DATAGRAM_BUFFER as usize))
        .datagram_send_buffer_size(DATAGRAM_BUFFER as usize);
    t
}

/// Opens a connection up for forwarding with the windows of `tier`, and the first streams of
/// its [`StreamCredit`].
pub fn open_up(connection: &Connection, tier: Tier) {
    connection.set_receive_window(VarInt::from_u64(tier.window).unwrap_or(VarInt::MAX));
    connection.set_send_window(tier.window);
    connection.set_max_concurrent_bi_streams(VarInt::from_u32(FIRST_BI_STREAMS));
    connection.set_max_concurrent_uni_streams(VarInt::from_u32(FIRST_UNI_STREAMS));
}

/// Takes a connection back to unpaired limits (its pairing ended; it waits for another).
/// Credit already granted cannot be taken back in QUIC, so its reservation stays until the
/// connection closes.
pub fn close_down(connection: &Connection) {
    connection.set_max_concurrent_bi_streams(VarInt::from_u32(1));
    connection.set_max_concurrent_uni_streams(VarInt::from_u32(0));
    connection.set_receive_window(VarInt::from_u32(UNPAIRED_WINDOW as u32));
    connection.set_send_window(UNPAIRED_WINDOW);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::SourceMask;

    fn src(s: &str) -> Source {
        SourceMask::default().source(s.parse().unwrap())
    }

    #[test]
    fn stream_credit_doubles_with_the_streams_open_at_once_up_to_the_paired_limit() {
        let mut bi = Allowance::new(FIRST_BI_STREAMS, PAIRED_BI_STREAMS);
        // Request after request, one open at a time: the first credit does.
        for _ in 0..200 {
            assert_eq!(bi.opened().1, None);
        }
        // Streams kept open: each step more than an eighth (quinn announces nothing smaller),
        // taken while half the limit is still free, never past the paired limit.
        let mut held = Vec::new();
        let mut grown = Vec::new();
        for n in 1..=100 {
            let (token, limit) = bi.opened();
            held.push(token);
            if let Some(limit) = limit {
                grown.push((n, limit.into_inner()));
            }
        }
        assert_eq!(grown, [(4, 16), (8, 32), (16, 64)]);
        // Closing them takes no credit back.
        held.clear();
        assert_eq!(bi.opened().1, None);
        assert_eq!(bi.limit, PAIRED_BI_STREAMS);

        let mut uni = Allowance::new(FIRST_UNI_STREAMS, PAIRED_UNI_STREAMS);
        let mut held = Vec::new();
        let mut grown = Vec::new();
        for _ in 0..100 {
            let (token, limit) = uni.opened();
            held.push(token);
            grown.extend(limit.map(VarInt::into_inner));
        }
        assert_eq!(grown, [4, 8, 16]);
    }

    #[test]
    fn reservations_are_capped_per_source_and_in_total_and_given_back() {
        let full = Tier { window: 1 << 20 };
        let small = Tier { window: MIN_WINDOW };
        let buffers = Buffers::new(BufferLimits {
            total: 3 * full.bytes(),
            per_source: 2 * full.bytes(),
            full,
        });
        let a1 = buffers.reserve(src("192.0.2.1")).unwrap();
        let a2 = buffers.reserve(src("192.0.2.1")).unwrap();
        assert_eq!((a1.tier(), a2.tier()), (full, full));
        // Source .1 has used its whole share (exactly two full reservations).
        assert!(buffers.reserve(src("192.0.2.1")).is_none());
        assert_eq!(buffers.used_by(src("192.0.2.1")), 2 * full.bytes());
        // Another source gets the last full reservation, then only small ones.
        let b1 = buffers.reserve(src("192.0.2.2")).unwrap();
        assert_eq!(b1.tier(), full);
        drop(a1);
        let b2 = buffers.reserve(src("192.0.2.2")).unwrap();
        assert_eq!(b2.tier(), full);
        let b3 = buffers.reserve(src("192.0.2.3"));
        assert!(b3.is_none(), "total cap reached");
        drop((a2, b1, b2));
        assert_eq!(buffers.used(), 0);
        assert_eq!(buffers.used_by(src("192.0.2.1")), 0);
        // A pool with room for less than a full reservation hands out small ones.
        let tight = Buffers::new(BufferLimits {
            total: full.bytes() - 1,
            per_source: u64::MAX,
            full,
        });
        assert_eq!(tight.reserve(src("192.0.2.9")).unwrap().tier(), small);
    }

    #[test]
    fn ipv6_sources_share_their_prefix_budget() {
        let full = Tier { window: 1 << 20 };
        let buffers = Buffers::new(BufferLimits {
            total: u64::MAX,
            per_source: full.bytes(),
            full,
        });
        let _a = buffers.reserve(src("2001:db8:0:1::1")).unwrap();
        // Same /64, another address: the /64's budget is spent; small windows do not fit either.
        assert!(buffers.reserve(src("2001:db8:0:1::2")).is_none());
        assert!(buffers.reserve(src("2001:db8:0:2::1")).is_some());
    }
}
