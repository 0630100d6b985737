//! Terminals kept across a resume: when the connection is lost, a shell is not killed but
//! parked — its output of the gap kept, bounded — until the assistant's viewer reattaches it
//! on the resumed session ([`Request::Reattach`](ponte_e2e::app::Request::Reattach)), or the
//! session ends (every lease ends, the shell with it), or [`PARK_LIMIT`] passes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use ponte_session::SecureStream;
use tokio::sync::{oneshot, watch};

/// How long a parked terminal waits for its viewer after a resume: as long as the session
/// waits to be resumed, and a little more.
pub const PARK_LIMIT: Duration = Duration::from_secs(90);

/// Output of a parked terminal kept for its viewer; older output beyond it is dropped (the
/// session log keeps the whole transcript).
pub const MAX_PARKED_OUTPUT: usize = 256 << 10;

/// How long a stream that failed waits to hear whether a resume cut it: the session loop may
/// notice the lost connection a moment after the stream does.
const NOTICE_WAIT: Duration = Duration::from_secs(2);

/// How long a reattach waits for its terminal to park (its stream may fail a moment after the
/// session was resumed).
const REATTACH_WAIT: Duration = Duration::from_secs(5);

/// Where the session's connection is: being resumed, and how many resumes so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Link {
    resuming: bool,
    resumes: u32,
}

/// The session's parked terminals and the state of its connection.
#[derive(Debug)]
pub struct Parked {
    link: watch::Sender<Link>,
    waiting: Mutex<HashMap<u64, oneshot::Sender<SecureStream>>>,
}

impl Default for Parked {
    fn default() -> Parked {
        Parked {
            link: watch::Sender::new(Link::default()),
            waiting: Mutex::new(HashMap::new()),
        }
    }
}

impl Parked {
    /// The session loop: the connection was lost and a resume is under way.
    pub fn resuming(&self) {
        self.link.send_modify(|l| l.resuming = true);
    }

    /// The session loop: the resume ended (`resumed`: the session goes on).
    pub fn resumed(&self, resumed: bool) {
        self.link.send_modify(|l| {
            l.resuming = false;
            l.resumes += u32::from(resumed);
        });
    }

    /// How many resumes so far.
    pub fn resumes(&self) -> u32 {
        self.link.borrow().resumes
    }

    /// After a stream failed: whether the session was (or is being) resumed since it had been
    /// resumed `resumes` times — so the stream was cut by the lost connection, not ended by the
    /// assistant. Waits for the resume to be over.
    pub async fn cut_by_resume(&self, resumes: u32) -> bool {
        let mut link = self.link.subscribe();
        let noticed = link.wait_for(|l| l.resuming || l.resumes > resumes);
        if tokio::time::timeout(NOTICE_WAIT, noticed).await.is_err() {
            return false;
        }
        let _ = link.wait_for(|l| !l.resuming).await;
        self.resumes() > resumes
    }

    /// Parks terminal `terminal` until the returned [`Waiting`] is dropped: the stream its
    /// viewer reattaches comes there.
    pub fn park(&self, terminal: u64) -> Waiting<'_> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(terminal, tx);
        Waiting {
            parked: self,
            terminal,
            reattached: rx,
        }
    }

    /// The way to the parked terminal `terminal`, waiting a moment for it to park (its stream
    /// may fail a moment after the session was resumed); `None` if there is no such terminal.
    pub async fn take(&self, terminal: u64) -> Option<oneshot::Sender<SecureStream>> {
        let deadline = tokio::time::Instant::now() + REATTACH_WAIT;
        loop {
            if let Some(parked) = self.lock().remove(&terminal) {
                return Some(parked);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<SecureStream>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A parked terminal; dropped, it is no longer found (so a late `Reattach` is refused, not
/// accepted and dropped).
#[derive(Debug)]
pub struct Waiting<'a> {
    parked: &'a Parked,
    terminal: u64,
    /// The stream its viewer reattaches.
    pub reattached: oneshot::Receiver<SecureStream>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.parked.lock().remove(&self.terminal);
    }
}
