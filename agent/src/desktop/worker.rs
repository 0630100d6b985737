//! The session's one desktop worker: a thread that owns the connection to the customer's
//! desktop and does everything with it — capture for screen streams, input from them and from
//! `click`/`type` requests — so the indicator and the customer's-mouse-wins pause apply to all
//! input alike, and held keys and buttons are released and the keymap restored the moment
//! control ends (the thread looks at the live grants every [`TICK`]). It uses what parts the
//! back end has: a view-only desktop answers input with [`Injected::ViewOnly`], one whose
//! pointer cannot be read sends no pointer position and cannot tell when the customer moves
//! the mouse, and one that shows its own indicator gets none of ours.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ponte_e2e::app::Capability;
use ponte_e2e::screen::InputEvent;
use ponte_screen::{EncodedFrame, Encoder};
use tokio::sync::{oneshot, watch};

use super::{CursorImage, Desktop, DesktopError, Indication, Monitor, Monitors, Want};
use crate::grants;

/// How often the worker looks at the grants when nothing else happens.
const TICK: Duration = Duration::from_millis(100);

/// How long the assistant's input pauses after the customer moves the mouse.
pub const LOCAL_INPUT_PAUSE: Duration = Duration::from_secs(1);

/// Where the desktop is.
#[derive(Debug, Clone, Default)]
pub struct DisplayOptions {
    /// Which kind of desktop (default: as the session's environment says).
    pub desktop: Option<super::SessionKind>,
    /// X display name (default `$DISPLAY`).
    pub display: Option<String>,
    /// RandR monitor index (default the primary one).
    pub monitor: Option<usize>,
    /// What the indicator says, in the customer's language.
    pub indicator: IndicatorText,
}

/// The indicator's sentences.
#[derive(Debug, Clone, Default)]
pub struct IndicatorText {
    /// While the screen is shared, view only.
    pub viewing: String,
    /// While the assistant may use the mouse and keyboard.
    pub controlling: String,
}

/// What one capture step produced.
#[derive(Default)]
pub struct Step {
    /// Changed tiles, if a frame was captured and something changed.
    pub frame: Option<EncodedFrame>,
    /// Where the pointer is on the shared monitor, if the desktop says.
    pub pointer: Option<(i32, i32)>,
    /// The pointer's image, when it changed.
    pub shape: Option<CursorImage>,
    /// The monitors one may switch among, and the shared one.
    pub monitors: Monitors,
}

/// What happened to a batch of input events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// Injected.
    Done,
    /// The customer is using the mouse; the assistant's input waits.
    LocalInputWins,
    /// Control is not granted (any more).
    NotAllowed,
    /// The desktop takes no input (view only).
    ViewOnly,
}

/// The opened desktop, as the capabilities need to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The shared monitor.
    pub monitor: Monitor,
    /// Whether it takes the assistant's input (it is view only if not).
    pub input: bool,
    /// The monitors one may switch among, and the shared one.
    pub monitors: Monitors,
}

/// How the worker opens the desktop, on first use.
type Open = Box<dyn FnMut() -> anyhow::Result<Box<dyn Desktop>> + Send>;

type Reply<T> = oneshot::Sender<anyhow::Result<T>>;

enum Job {
    Open(Reply<Opened>),
    Step {
        stream: u64,
        sync: u64,
        budget: Option<usize>,
        encoder: Box<Encoder>,
        reply: oneshot::Sender<(Box<Encoder>, anyhow::Result<Step>)>,
    },
    Inject(Vec<InputEvent>, Reply<Injected>),
    Select(usize, Reply<Option<Monitor>>),
    /// Draw the guide where [`DesktopWorker::guide`] last put it.
    Guide,
}

/// Where the assistant's guide is to go, waiting for the worker: the latest position only, so a
/// flood of them queues nothing.
type GuideSlot = Arc<std::sync::Mutex<Option<Option<(u16, u16)>>>>;

/// The handle of the session's desktop worker.
pub struct DesktopWorker {
    jobs: Option<std_mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    sharing: Arc<AtomicUsize>,
    /// Whether the customer was told of the system's dialog that opening the desktop shows.
    announced: Arc<AtomicBool>,
    /// Whether opening the desktop shows the system's dialog.
    asks: bool,
    guide: GuideSlot,
}

/// Marks the screen as shared while it lives (the indicator shows); a screen stream steps
/// through it.
pub struct Sharing {
    count: Arc<AtomicUsize>,
    /// Tells the session's screen streams apart.
    id: u64,
}

impl Drop for Sharing {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

impl DesktopWorker {
    /// Starts the worker on the platform's desktop as `options` say; the desktop itself is
    /// opened on first use.
    pub fn start(
        options: DisplayOptions,
        grants: watch::Receiver<grants::State>,
        injected: super::InjectedInput,
    ) -> DesktopWorker {
        let DisplayOptions {
            desktop,
            display,
            monitor,
            indicator,
        } = options;
        let kind = super::SessionKind::resolve(desktop, display.as_deref());
        let open = move || super::open(kind, display.as_deref(), monitor);
        let mut worker = DesktopWorker::start_with(open, indicator, grants, injected);
        worker.asks = kind.asks_customer();
        worker
    }

    /// Starts the worker on the desktop `open` opens, on first use (and again after it failed).
    pub fn start_with(
        open: impl FnMut() -> anyhow::Result<Box<dyn Desktop>> + Send + 'static,
        indicator: IndicatorText,
        grants: watch::Receiver<grants::State>,
        injected: super::InjectedInput,
    ) -> DesktopWorker {
        let (jobs, rx) = std_mpsc::channel();
        let sharing = Arc::new(AtomicUsize::new(0));
        let announced = Arc::new(AtomicBool::new(false));
        let guide = GuideSlot::default();
        let mut worker = Worker {
            guide: guide.clone(),
            open: Box::new(open),
            announced: announced.clone(),
            text: indicator,
            grants,
            injected,
            sharing: sharing.clone(),
            desktop: None,
            paused_until: None,
            held_keys: Vec::new(),
            held_buttons: Vec::new(),
            control: false,
            screen: false,
            declined: None,
            injected_since_grant: false,
            captured_for: None,
            indicator: None,
        };
        let thread = std::thread::Builder::new()
            .name("ponte-desktop".into())
            .spawn(move || worker.run(&rx))
            .ok();
        DesktopWorker {
            jobs: Some(jobs),
            thread,
            sharing,
            announced,
            asks: false,
            guide,
        }
    }

    /// Whether to tell the customer now that their system is about to ask: true once per
    /// dialog, for the first of the requests that will wait on it (a flood of them must not
    /// repeat it); never where the system cannot share at all (no PipeWire), so no dialog
    /// comes.
    pub fn announce_dialog(&self) -> bool {
        self.asks && super::screencast::running().is_ok() && !self.announced.swap(true, Ordering::SeqCst)
    }

    fn submit(&self, job: Job) -> anyhow::Result<()> {
        self.jobs
            .as_ref()
            .context("the desktop worker has stopped")?
            .send(job)
            .ok()
            .context("the desktop worker has stopped")
    }

    /// Opens the desktop if needed; says what it shares and whether it takes input.
    pub async fn open(&self) -> anyhow::Result<Opened> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Open(reply))?;
        rx.await.context("the desktop worker has stopped")?
    }

    /// Captures (when `capture`) and encodes a frame with `encoder` for the screen stream
    /// `sharing`; answers refresh `sync`. The encoder comes back with the result.
    pub async fn step(
        &self,
        sharing: &Sharing,
        sync: u64,
        budget: Option<usize>,
        encoder: Box<Encoder>,
    ) -> anyhow::Result<(Box<Encoder>, anyhow::Result<Step>)> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Step {
            stream: sharing.id,
            sync,
            budget,
            encoder,
            reply,
        })?;
        rx.await.context("the desktop worker has stopped")
    }

    /// Injects input events, if control is granted and the customer is not using the mouse.
    pub async fn inject(&self, events: Vec<InputEvent>) -> anyhow::Result<Injected> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Inject(events, reply))?;
        rx.await.context("the desktop worker has stopped")?
    }

    /// Shares monitor `index` of [`Opened::monitors`] from now on, for every screen stream and
    /// all input; the monitor now shared, or `None` when nothing changed (it was shared
    /// already, or there is no such monitor).
    pub async fn select(&self, index: usize) -> anyhow::Result<Option<Monitor>> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Select(index, reply))?;
        rx.await.context("the desktop worker has stopped")?
    }

    /// Shows the assistant's guide at a position of the shared monitor, or (`None`) removes
    /// it; only while the screen is granted and shown. Nothing waits for it.
    pub fn guide(&self, at: Option<(u16, u16)>) {
        let waiting = self
            .guide
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(at)
            .is_some();
        if !waiting {
            let _ = self.submit(Job::Guide);
        }
    }

    /// Counts a screen stream while the returned guard lives; `None` when `max` are shared
    /// already (each holds whole frames: a flood of them must not exhaust memory).
    pub fn share(&self, max: usize) -> Option<Sharing> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        self.sharing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1))
            .ok()?;
        Some(Sharing {
            count: self.sharing.clone(),
            id: NEXT.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Stops the worker: input is released, the indicator removed, the keymap restored.
    pub async fn close(mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let joined = tokio::task::spawn_blocking(move || thread.join());
            let _ = tokio::time::timeout(Duration::from_secs(5), joined).await;
        }
    }
}

struct Worker {
    open: Open,
    guide: GuideSlot,
    /// Whether the next system dialog was announced, for the handle: cleared when another may
    /// show.
    announced: Arc<AtomicBool>,
    /// What the indicator says.
    text: IndicatorText,
    grants: watch::Receiver<grants::State>,
    injected: super::InjectedInput,
    sharing: Arc<AtomicUsize>,
    desktop: Option<Box<dyn Desktop>>,
    paused_until: Option<Instant>,
    held_keys: Vec<u32>,
    held_buttons: Vec<u8>,
    /// Whether control was granted at the last look.
    control: bool,
    /// Whether the screen was granted at the last look.
    screen: bool,
    /// The customer cancelled (or left unanswered) the system's sharing dialog: it is not shown
    /// again until they grant `screen` or `control` anew.
    declined: Option<DesktopError>,
    /// Whether the assistant injected input since control was last granted.
    injected_since_grant: bool,
    /// The screen stream the last capture was for.
    captured_for: Option<u64>,
    indicator: Option<Indication>,
}

impl Worker {
    fn run(&mut self, jobs: &std_mpsc::Receiver<Job>) {
        loop {
            match jobs.recv_timeout(TICK) {
                Ok(job) => {
                    self.reconcile();
                    self.handle(job);
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
            self.reconcile();
        }
        self.close();
    }

    fn desktop(&mut self) -> anyhow::Result<&mut dyn Desktop> {
        let desktop = match &mut self.desktop {
            Some(desktop) => desktop,
            none => {
                // A job that was waiting when the customer revoked both must not open it again
                // (on Wayland: the system's dialog once more).
                if !self.screen && !self.control {
                    anyhow::bail!("the customer has not allowed 'screen' or 'control'");
                }
                // Jobs queued behind a dialog the customer said no to must not show it again.
                if let Some(no) = &self.declined {
                    return Err(no.clone().into());
                }
                let desktop = (self.open)().inspect_err(|e| {
                    match e.downcast_ref::<DesktopError>() {
                        Some(no @ (DesktopError::PortalCancelled | DesktopError::PortalUnanswered(_))) => {
                            self.declined = Some(no.clone());
                        }
                        // The next request tries, and the system may ask, again.
                        _ => self.announced.store(false, Ordering::SeqCst),
                    }
                })?;
                none.insert(opened(desktop))
            }
        };
        Ok(&mut **desktop)
    }

    /// Releases input, removes the indicator and closes the desktop (on Wayland: the portal
    /// session, so the system's own indicator goes away and the compositor stops streaming).
    fn close(&mut self) {
        self.release();
        if let Some(indicator) = self.desktop.as_deref_mut().and_then(Desktop::indicator) {
            let _ = indicator.show(None);
        }
        self.indicator = None;
        // Opened again for the assistant's input, its indicator goes up before the first event.
        self.injected_since_grant = false;
        if self.desktop.take().is_some() {
            self.announced.store(false, Ordering::SeqCst);
            tracing::info!("the desktop is closed: nothing that needs it is allowed any more");
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Open(reply) => {
                let opened = self.desktop().map(|d| Opened {
                    monitor: d.monitor().clone(),
                    monitors: d.monitors(),
                    input: d.input().is_some(),
                });
                let _ = reply.send(opened);
            }
            Job::Step {
                stream,
                sync,
                budget,
                mut encoder,
                reply,
            } => {
                let step = self.step(stream, sync, budget, &mut encoder);
                let _ = reply.send((encoder, step));
            }
            Job::Inject(events, reply) => {
                let _ = reply.send(self.inject(&events));
            }
            Job::Select(index, reply) => {
                let _ = reply.send(self.select(index));
            }
            Job::Guide => {
                let Some(at) = self.guide.lock().unwrap_or_else(|e| e.into_inner()).take() else {
                    return;
                };
                let at = at.filter(|_| self.screen && self.indicator.is_some());
                if let Some(indicator) = self.desktop.as_deref_mut().and_then(Desktop::indicator)
                    && let Err(e) = indicator.guide(at.map(|(x, y)| (i32::from(x), i32::from(y))))
                {
                    tracing::warn!("drawing the guide: {e:#}");
                }
            }
        }
    }

    fn step(
        &mut self,
        stream: u64,
        sync: u64,
        budget: Option<usize>,
        encoder: &mut Encoder,
    ) -> anyhow::Result<Step> {
        if !self.screen {
            anyhow::bail!("the customer has not allowed 'screen'");
        }
        // The desktop tracks changes since its last capture, whichever stream took it: another
        // stream's encoder still compares the latest picture with what it sent (after a
        // monitor switch, too).
        let other = budget.is_some() && self.captured_for.replace(stream).is_some_and(|s| s != stream);
        let desktop = self.desktop()?;
        let mut step = Step::default();
        let started = Instant::now();
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        if let Some(budget) = budget
            && let Some(image) = desktop.capture(if sync != 0 {
                Want::Fresh
            } else if encoder.pending() || other {
                Want::Latest
            } else {
                Want::Changes
            })?
        {
            let captured = Instant::now();
            step.frame = encoder.encode_within(&image, sync, budget, captured)?;
            if let Some(stats) = step.frame.as_mut().and_then(EncodedFrame::stats_mut) {
                let micros = |d: Duration| d.as_micros().min(u32::MAX.into()) as u32;
                stats.captured_unix_us = unix.as_micros().min(u64::MAX.into()) as u64;
                stats.capture_us = micros(captured - started);
                stats.encode_us = micros(captured.elapsed());
            }
        }
        step.pointer = desktop.pointer().map(|p| p.position()).transpose()?;
        step.shape = desktop.cursor_shape()?;
        step.monitors = desktop.monitors();
        Ok(step)
    }

    fn select(&mut self, index: usize) -> anyhow::Result<Option<Monitor>> {
        if !self.screen {
            anyhow::bail!("the customer has not allowed 'screen'");
        }
        let desktop = self.desktop()?;
        let monitors = desktop.monitors();
        if index >= monitors.names.len() || index == monitors.current {
            return Ok(None);
        }
        // Nothing held carries over to the other monitor (on Wayland its stream is another).
        self.release();
        if let Err(e) = self.desktop()?.select(index) {
            // Half switched is no state to share from: the next request opens it afresh.
            self.close();
            return Err(e);
        }
        Ok(Some(self.desktop()?.monitor().clone()))
    }

    /// Injects `events` one by one while control stays granted and the customer leaves the
    /// mouse alone: both are looked at before every event, so a long batch stops at once.
    fn inject(&mut self, events: &[InputEvent]) -> anyhow::Result<Injected> {
        if !self.control {
            return Ok(Injected::NotAllowed);
        }
        if self.desktop()?.input().is_none() {
            return Ok(Injected::ViewOnly);
        }
        // Text goes character by character, so that it too stops mid-way.
        let events = events.iter().flat_map(|event| match event {
            InputEvent::Text(text) => text
                .as_raw()
                .chars()
                .map(|c| InputEvent::Text(c.to_string().into()))
                .collect(),
            other => vec![other.clone()],
        });
        for (n, event) in events.enumerate() {
            if n > 0 {
                self.reconcile();
            }
            if !self.control {
                return Ok(Injected::NotAllowed);
            }
            let now = Instant::now();
            if self.paused_until.is_some_and(|t| now < t) {
                return Ok(Injected::LocalInputWins);
            }
            if self.local_input()? {
                self.paused_until = Some(now + LOCAL_INPUT_PAUSE);
                // A button or key the assistant holds would keep a grab or a modifier on the
                // customer's own input (a click meant for End landing elsewhere).
                self.release();
                return Ok(Injected::LocalInputWins);
            }
            // A pointer warped onto a button right before the customer's click counts as much
            // as a key or button of the assistant's.
            self.injected.mark();
            // The indicator goes up before the first event lands.
            if !self.injected_since_grant {
                self.injected_since_grant = true;
                self.reconcile();
            }
            let desktop = self.desktop()?;
            let Some(input) = desktop.input() else {
                return Ok(Injected::ViewOnly);
            };
            input.inject(&event)?;
            match event {
                InputEvent::Key { keysym, pressed } => {
                    self.held_keys.retain(|k| *k != keysym);
                    if pressed {
                        self.held_keys.push(keysym);
                    }
                }
                InputEvent::Button { button, pressed } => {
                    self.held_buttons.retain(|b| *b != button);
                    if pressed {
                        self.held_buttons.push(button);
                    }
                }
                _ => {}
            }
        }
        Ok(Injected::Done)
    }

    /// Whether the customer moved the pointer since our last injected event (or since the
    /// last time this said so). Without a pointer to read, this cannot be seen: control still
    /// ends the moment the customer revokes it.
    fn local_input(&mut self) -> anyhow::Result<bool> {
        match self.desktop()?.pointer() {
            Some(pointer) => pointer.customer_moved(),
            None => Ok(false),
        }
    }

    /// Releases every key and button the assistant holds and gives back borrowed keycodes.
    fn release(&mut self) {
        let Some(input) = self.desktop.as_deref_mut().and_then(Desktop::input) else {
            return;
        };
        for keysym in self.held_keys.drain(..) {
            let _ = input.inject(&InputEvent::Key {
                keysym,
                pressed: false,
            });
        }
        for button in self.held_buttons.drain(..) {
            let _ = input.inject(&InputEvent::Button {
                button,
                pressed: false,
            });
        }
        if let Err(e) = input.restore_keymap() {
            tracing::warn!("restoring the keymap: {e:#}");
        }
    }

    /// Follows the grants: releases input when control ends, closes the desktop when the
    /// screen is revoked or nothing that needs it is allowed any more, and shows the indicator
    /// that tells the truth — red while the assistant may control, blue while the screen is
    /// seen.
    fn reconcile(&mut self) {
        let state = *self.grants.borrow();
        let control = state.grants.allows(Capability::Control) && !state.ended();
        let screen = state.grants.allows(Capability::Screen) && !state.ended();
        if self.control && !control {
            self.release();
            self.injected_since_grant = false;
        }
        let revoked_screen = self.screen && !screen;
        let granted_anew = (screen && !self.screen) || (control && !self.control);
        if granted_anew && self.declined.take().is_some() {
            // After a no: the system asks again, and the customer is told so first.
            self.announced.store(false, Ordering::SeqCst);
        }
        self.control = control;
        self.screen = screen;
        if revoked_screen || (!screen && !control) {
            self.close();
        }
        let sharing = self.sharing.load(Ordering::SeqCst) > 0;
        let want = if control && (sharing || self.injected_since_grant) {
            Some(Indication::Controlling)
        } else if sharing && !state.ended() {
            Some(Indication::Viewing)
        } else {
            None
        };
        if want != self.indicator
            && let Some(indicator) = self.desktop.as_deref_mut().and_then(Desktop::indicator)
        {
            let text = &self.text;
            let shown = want.map(|state| match state {
                Indication::Viewing => (state, text.viewing.as_str()),
                Indication::Controlling => (state, text.controlling.as_str()),
            });
            match indicator.show(shown) {
                Ok(()) => self.indicator = want,
                Err(e) => tracing::warn!("showing the indicator: {e:#}"),
            }
        }
    }
}

/// Logs once what the opened desktop goes without.
fn opened(mut desktop: Box<dyn Desktop>) -> Box<dyn Desktop> {
    if desktop.input().is_none() {
        tracing::info!("the desktop takes no input: the screen is shared view only");
    }
    if desktop.pointer().is_none() {
        tracing::info!(
            "the desktop's pointer cannot be read: the customer's mouse cannot pause the \
             assistant's input (revoking control still ends it)"
        );
    }
    if desktop.indicator().is_none() {
        tracing::info!("the desktop shows its own sharing indicator");
    }
    desktop
}
