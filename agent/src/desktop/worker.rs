//! The session's one desktop worker: a thread that owns the connection to the customer's
//! desktop and does everything with it — capture for screen streams, input from them and from
//! `click`/`type` requests — so the indicator and the customer's-mouse-wins pause apply to all
//! input alike, and held keys and buttons are released and the keymap restored the moment
//! control ends (the thread looks at the live grants every [`TICK`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ponte_e2e::app::Capability;
use ponte_e2e::screen::InputEvent;
use ponte_screen::{EncodedFrame, Encoder};
use tokio::sync::{oneshot, watch};

use super::{CursorImage, Desktop, Indicator, Monitor, Want};
use crate::grants;

/// How often the worker looks at the grants when nothing else happens.
const TICK: Duration = Duration::from_millis(100);

/// How long the assistant's input pauses after the customer moves the mouse.
pub const LOCAL_INPUT_PAUSE: Duration = Duration::from_secs(1);

/// Where the desktop is.
#[derive(Debug, Clone, Default)]
pub struct DisplayOptions {
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
    /// Where the pointer is on the shared monitor.
    pub pointer: (i32, i32),
    /// The pointer's image, when it changed.
    pub shape: Option<CursorImage>,
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
}

type Reply<T> = oneshot::Sender<anyhow::Result<T>>;

enum Job {
    Open(Reply<Monitor>),
    Step {
        sync: u64,
        budget: Option<usize>,
        encoder: Box<Encoder>,
        reply: oneshot::Sender<(Box<Encoder>, anyhow::Result<Step>)>,
    },
    Inject(Vec<InputEvent>, Reply<Injected>),
}

/// The handle of the session's desktop worker.
pub struct DesktopWorker {
    jobs: Option<std_mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    sharing: Arc<AtomicUsize>,
}

/// Marks the screen as shared while it lives (the indicator shows).
pub struct Sharing(Arc<AtomicUsize>);

impl Drop for Sharing {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl DesktopWorker {
    /// Starts the worker; the desktop itself is opened on first use.
    pub fn start(
        options: DisplayOptions,
        grants: watch::Receiver<grants::State>,
        injected: super::InjectedInput,
    ) -> DesktopWorker {
        let (jobs, rx) = std_mpsc::channel();
        let sharing = Arc::new(AtomicUsize::new(0));
        let mut worker = Worker {
            options,
            grants,
            injected,
            sharing: sharing.clone(),
            desktop: None,
            paused_until: None,
            held_keys: Vec::new(),
            held_buttons: Vec::new(),
            control: false,
            injected_since_grant: false,
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
        }
    }

    fn submit(&self, job: Job) -> anyhow::Result<()> {
        self.jobs
            .as_ref()
            .context("the desktop worker has stopped")?
            .send(job)
            .ok()
            .context("the desktop worker has stopped")
    }

    /// Opens the desktop if needed; returns the shared monitor.
    pub async fn open(&self) -> anyhow::Result<Monitor> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Open(reply))?;
        rx.await.context("the desktop worker has stopped")?
    }

    /// Captures (when `capture`) and encodes a frame with `encoder`; answers refresh `sync`.
    /// The encoder comes back with the result.
    pub async fn step(
        &self,
        sync: u64,
        budget: Option<usize>,
        encoder: Box<Encoder>,
    ) -> anyhow::Result<(Box<Encoder>, anyhow::Result<Step>)> {
        let (reply, rx) = oneshot::channel();
        self.submit(Job::Step {
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

    /// Counts a screen stream while the returned guard lives; `None` when `max` are shared
    /// already (each holds whole frames: a flood of them must not exhaust memory).
    pub fn share(&self, max: usize) -> Option<Sharing> {
        self.sharing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < max).then_some(n + 1))
            .ok()?;
        Some(Sharing(self.sharing.clone()))
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
    options: DisplayOptions,
    grants: watch::Receiver<grants::State>,
    injected: super::InjectedInput,
    sharing: Arc<AtomicUsize>,
    desktop: Option<Box<dyn Desktop>>,
    paused_until: Option<Instant>,
    held_keys: Vec<u32>,
    held_buttons: Vec<u8>,
    /// Whether control was granted at the last look.
    control: bool,
    /// Whether the assistant injected input since control was last granted.
    injected_since_grant: bool,
    indicator: Option<Indicator>,
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
        self.release();
        if let Some(desktop) = &mut self.desktop {
            let _ = desktop.show_indicator(None);
        }
        // Dropping the desktop closes the connection.
    }

    fn desktop(&mut self) -> anyhow::Result<&mut dyn Desktop> {
        if self.desktop.is_none() {
            self.desktop = Some(super::open(
                self.options.display.as_deref(),
                self.options.monitor,
            )?);
        }
        match self.desktop.as_deref_mut() {
            Some(desktop) => Ok(desktop),
            None => anyhow::bail!("no desktop"),
        }
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Open(reply) => {
                let _ = reply.send(self.desktop().map(|d| d.monitor().clone()));
            }
            Job::Step {
                sync,
                budget,
                mut encoder,
                reply,
            } => {
                let step = self.step(sync, budget, &mut encoder);
                let _ = reply.send((encoder, step));
            }
            Job::Inject(events, reply) => {
                let _ = reply.send(self.inject(&events));
            }
        }
    }

    fn step(&mut self, sync: u64, budget: Option<usize>, encoder: &mut Encoder) -> anyhow::Result<Step> {
        let desktop = self.desktop()?;
        let mut step = Step::default();
        let started = Instant::now();
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        if let Some(budget) = budget
            && let Some(image) = desktop.capture(if sync != 0 {
                Want::Fresh
            } else if encoder.pending() {
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
        step.pointer = desktop.pointer()?;
        step.shape = desktop.cursor_shape()?;
        Ok(step)
    }

    /// Injects `events` one by one while control stays granted and the customer leaves the
    /// mouse alone: both are looked at before every event, so a long batch stops at once.
    fn inject(&mut self, events: &[InputEvent]) -> anyhow::Result<Injected> {
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
            if self.desktop()?.local_input_since_injection()? {
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
            self.desktop()?.inject(&event)?;
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

    /// Releases every key and button the assistant holds and gives back borrowed keycodes.
    fn release(&mut self) {
        let Some(desktop) = &mut self.desktop else {
            return;
        };
        for keysym in self.held_keys.drain(..) {
            let _ = desktop.inject(&InputEvent::Key {
                keysym,
                pressed: false,
            });
        }
        for button in self.held_buttons.drain(..) {
            let _ = desktop.inject(&InputEvent::Button {
                button,
                pressed: false,
            });
        }
        if let Err(e) = desktop.restore_keymap() {
            tracing::warn!("restoring the keymap: {e:#}");
        }
    }

    /// Follows the grants: releases input when control ends, and shows the indicator that
    /// tells the truth — red while the assistant may control, blue while the screen is seen.
    fn reconcile(&mut self) {
        let state = *self.grants.borrow();
        let control = state.grants.allows(Capability::Control) && !state.ended();
        if self.control && !control {
            self.release();
            self.injected_since_grant = false;
        }
        self.control = control;
        let sharing = self.sharing.load(Ordering::SeqCst) > 0;
        let want = if control && (sharing || self.injected_since_grant) {
            Some(Indicator::Controlling)
        } else if sharing && !state.ended() {
            Some(Indicator::Viewing)
        } else {
            None
        };
        if want != self.indicator
            && let Some(desktop) = &mut self.desktop
        {
            let text = &self.options.indicator;
            let shown = want.map(|state| match state {
                Indicator::Viewing => (state, text.viewing.as_str()),
                Indicator::Controlling => (state, text.controlling.as_str()),
            });
            match desktop.show_indicator(shown) {
                Ok(()) => self.indicator = want,
                Err(e) => tracing::warn!("showing the indicator: {e:#}"),
            }
        }
    }
}
