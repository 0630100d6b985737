//! Forwarding between a paired agent and viewer: every stream one side opens is mirrored on
//! the other side's connection, bytes are copied both ways, FIN, RESET_STREAM and
//! STOP_SENDING propagate, datagrams are passed on.
//!
//! Copying reads one chunk at a time and writes it before reading the next, so a slow reader
//! slows the writer through QUIC flow control and the relay holds at most one chunk per
//! stream direction besides what the connections' windows allow (see [`crate::memory`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ponte_transport::bucket::TokenBucket;
use ponte_wire::rendezvous::LOST_CODE;
use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::Mutex;
use tokio::task::JoinSet;

use crate::memory::{OpenStream, StreamCredit};

/// How long the data a departed peer sent before leaving may still take to be passed on.
const DRAIN: Duration = Duration::from_secs(3);

/// Largest chunk read from a stream at a time.
const CHUNK: usize = crate::memory::CHUNK as usize;

/// Which way bytes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the agent to the viewer.
    AgentToViewer,
    /// From the viewer to the agent.
    ViewerToAgent,
}

/// Bandwidth limits and activity tracking shared by a session's copy tasks.
#[derive(Debug)]
pub struct Budget {
    session: Option<Mutex<TokenBucket>>,
    total: Option<Arc<Mutex<TokenBucket>>>,
    start: Instant,
    /// Milliseconds since `start` of the last forwarded byte.
    last_activity_ms: AtomicU64,
    #[cfg(feature = "test-tap")]
    tap: Option<crate::tap::Tap>,
    agent_to_viewer: AtomicU64,
    viewer_to_agent: AtomicU64,
}

impl Budget {
    /// A budget limited per session (bytes/s) and by the relay-wide bucket.
    pub fn new(session_rate: Option<u64>, total: Option<Arc<Mutex<TokenBucket>>>) -> Budget {
        let now = Instant::now();
        Budget {
            // A quarter second of burst keeps short bursts fast without defeating the limit.
            session: session_rate.map(|r| {
                Mutex::new(TokenBucket::new(
                    r as f64,
                    (r as f64 / 4.0).max(CHUNK as f64),
                    now,
                ))
            }),
            total,
            start: now,
            last_activity_ms: AtomicU64::new(0),
            #[cfg(feature = "test-tap")]
            tap: None,
            agent_to_viewer: AtomicU64::new(0),
            viewer_to_agent: AtomicU64::new(0),
        }
    }

    /// The budget with `tap` on every stream direction it forwards.
    #[cfg(feature = "test-tap")]
    pub fn tapped(self, tap: Option<crate::tap::Tap>) -> Budget {
        Budget { tap, ..self }
    }

    /// Bytes forwarded so far in one direction.
    pub fn forwarded(&self, direction: Direction) -> u64 {
        match direction {
            Direction::AgentToViewer => self.agent_to_viewer.load(Ordering::Relaxed),
            Direction::ViewerToAgent => self.viewer_to_agent.load(Ordering::Relaxed),
        }
    }

    async fn spend(&self, bytes: usize, direction: Direction) {
        self.last_activity_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
        let counter = match direction {
            Direction::AgentToViewer => &self.agent_to_viewer,
            Direction::ViewerToAgent => &self.viewer_to_agent,
        };
        counter.fetch_add(bytes as u64, Ordering::Relaxed);
        crate::metrics::forwarded(bytes);
        let mut wait = Duration::ZERO;
        if let Some(b) = &self.session {
            wait = wait.max(b.lock().await.take_with_debt(bytes as f64, Instant::now()));
        }
        if let Some(b) = &self.total {
            wait = wait.max(b.lock().await.take_with_debt(bytes as f64, Instant::now()));
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Time since the last forwarded byte (or since the start).
    pub fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Copies one stream direction until it ends, propagating FIN, RESET and STOP_SENDING.
///
/// Only the sender's FIN becomes a FIN: a stream cut short any other way (its sender's
/// connection lost, the copy aborted) is reset, so the reader never takes a truncated stream
/// for a complete one.
async fn copy(mut from: RecvStream, to: SendStream, budget: Arc<Budget>, direction: Direction) {
    let mut to = Outgoing {
        stream: to,
        ended: false,
    };
    #[cfg(feature = "test-tap")]
    let mut tap = budget.tap.as_ref().map(|tap| (tap.0)(direction));
    loop {
        let chunk = tokio::select! {
            chunk = from.read_chunk(CHUNK, true) => chunk,
            stopped = to.stream.stopped() => {
                if let Ok(Some(code)) = stopped {
                    let _ = from.stop(code);
                }
                return;
            }
        };
        match chunk {
            Ok(Some(chunk)) => {
                #[cfg(feature = "test-tap")]
                let (bytes, finish) = crate::tap::apply(tap.as_mut(), chunk.bytes);
                #[cfg(not(feature = "test-tap"))]
                let (bytes, finish) = (chunk.bytes, false);
                budget.spend(bytes.len(), direction).await;
                if !bytes.is_empty()
                    && let Err(e) = to.stream.write_chunk(bytes).await
                {
                    if let quinn::WriteError::Stopped(code) = e {
                        let _ = from.stop(code);
                    }
                    return;
                }
                if finish {
                    // A test's relay cutting the stream: the reader sees a clean end here.
                    to.ended = to.stream.finish().is_ok();
                    let _ = from.stop(quinn::VarInt::from_u32(0));
                    return;
                }
            }
            Ok(None) => {
                to.ended = to.stream.finish().is_ok();
                return;
            }
            // The sender's own reset, passed on — except the code that means "lost", which only
            // this relay says.
            Err(quinn::ReadError::Reset(code)) => {
                let code = if code == quinn::VarInt::from_u32(LOST_CODE) {
                    quinn::VarInt::from_u32(0)
                } else {
                    code
                };
                to.ended = to.stream.reset(code).is_ok();
                return;
            }
            // The sender's connection fell silent or was reset: it may be coming back.
            Err(quinn::ReadError::ConnectionLost(
                quinn::ConnectionError::TimedOut
                | quinn::ConnectionError::Reset
                | quinn::ConnectionError::TransportError(_),
            )) => {
                to.ended = to.stream.reset(quinn::VarInt::from_u32(LOST_CODE)).is_ok();
                return;
            }
            // Closed on purpose, or cut by this relay: `Outgoing` resets it.
            Err(_) => return,
        }
    }
}

/// A forwarded stream's sending half, reset when dropped before its sender's FIN or RESET
/// was passed on (quinn's own drop would finish it: a cut stream would look complete).
struct Outgoing {
    stream: SendStream,
    ended: bool,
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        if !self.ended {
            // Fails harmlessly on a stopped stream or a closed connection.
            let _ = self.stream.reset(quinn::VarInt::from_u32(0));
        }
    }
}

/// Mirrors streams and datagrams opened on `a` onto `b` until either connection fails.
async fn mirror(
    a: Connection,
    b: Connection,
    budget: Arc<Budget>,
    tasks: Arc<std::sync::Mutex<JoinSet<()>>>,
    direction: Direction,
) {
    let back = match direction {
        Direction::AgentToViewer => Direction::ViewerToAgent,
        Direction::ViewerToAgent => Direction::AgentToViewer,
    };
    // Each copy holds its stream's token: the stream counts as open until its copies end.
    let spawn = |f, open: Arc<OpenStream>| {
        let mut tasks = tasks.lock().unwrap_or_else(|e| e.into_inner());
        // Reap finished copies so a long session with many streams does not accumulate them.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(async move {
            let _open = open;
            f.await
        });
    };
    let mut credit = StreamCredit::default();
    loop {
        tokio::select! {
            bi = a.accept_bi() => {
                let Ok((a_send, a_recv)) = bi else { return };
                let Ok((b_send, b_recv)) = b.open_bi().await else { return };
                let open = credit.opened_bi(&a);
                spawn(copy(a_recv, b_send, budget.clone(), direction), open.clone());
                spawn(copy(b_recv, a_send, budget.clone(), back), open);
            }
            uni = a.accept_uni() => {
                let Ok(a_recv) = uni else { return };
                let Ok(b_send) = b.open_uni().await else { return };
                spawn(copy(a_recv, b_send, budget.clone(), direction), credit.opened_uni(&a));
            }
            datagram = a.read_datagram() => {
                let Ok(datagram) = datagram else { return };
                budget.spend(datagram.len(), direction).await;
                // Datagrams are unreliable by nature; one the other side cannot take is dropped.
                let _ = b.send_datagram(datagram);
            }
        }
    }
}

/// Why forwarding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The agent's connection closed.
    AgentGone,
    /// The viewer's connection closed.
    ViewerGone,
    /// No traffic for the idle timeout.
    Idle,
    /// The session reached its maximum duration.
    MaxDuration,
}

/// Forwards between `agent` and `viewer` until one leaves or a limit ends the session.
pub async fn run(
    agent: Connection,
    viewer: Connection,
    budget: Arc<Budget>,
    idle: Duration,
    max: Duration,
) -> End {
    let tasks = Arc::new(std::sync::Mutex::new(JoinSet::new()));
    let idle_watch = async {
        loop {
            let remaining = idle.saturating_sub(budget.idle_for());
            if remaining.is_zero() {
                return;
            }
            tokio::time::sleep(remaining.max(Duration::from_millis(100))).await;
        }
    };
    let end = tokio::select! {
        _ = mirror(agent.clone(), viewer.clone(), budget.clone(), tasks.clone(), Direction::AgentToViewer) => {
            if agent.close_reason().is_some() { End::AgentGone } else { End::ViewerGone }
        }
        _ = mirror(viewer.clone(), agent.clone(), budget.clone(), tasks.clone(), Direction::ViewerToAgent) => {
            if viewer.close_reason().is_some() { End::ViewerGone } else { End::AgentGone }
        }
        _ = agent.closed() => End::AgentGone,
        _ = viewer.closed() => End::ViewerGone,
        _ = idle_watch => End::Idle,
        _ = tokio::time::sleep(max) => End::MaxDuration,
    };
    let mut tasks = std::mem::take(&mut *tasks.lock().unwrap_or_else(|e| e.into_inner()));
    if matches!(end, End::AgentGone | End::ViewerGone) {
        // What the leaving side sent before it left (its last chat line, why it ended) was
        // acknowledged by this relay: pass it on. Copies towards the closed connection end
        // at once; copies from it end once its received data is read.
        let drained = async { while tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(DRAIN, drained).await;
    }
    // Whatever is still copying is cut: its streams are reset (see `Outgoing`).
    tasks.abort_all();
    end
}
