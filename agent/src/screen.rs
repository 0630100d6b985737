//! Sharing the screen on a request stream, and injecting the assistant's input — each only
//! while the customer grants it, checked again for every frame and every event.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use ponte_protocol::app::{Capability, Response, Transfer};
use ponte_protocol::screen::{InputEvent, ScreenFeedback, ScreenUpdate};
use ponte_screen::{EncodedFrame, Encoder, Image};
use ponte_session::{SecureSend, SecureStream};

use crate::desktop::{self, CursorImage, Desktop, Indicator};
use crate::serve::Context;

/// The agent's own cap on frames per second.
pub const MAX_FPS: u8 = 60;

/// Frames sent but not yet acknowledged before the agent stops capturing: a slow viewer gets
/// fewer, newer frames rather than a queue.
const IN_FLIGHT: u64 = 2;

/// How long the assistant's input pauses after the customer moves the mouse.
const LOCAL_INPUT_PAUSE: Duration = Duration::from_secs(1);

/// How often a stream of dropped or paused input is reported to the customer.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Where the desktop is, from the agent's command line.
#[derive(Debug, Clone, Default)]
pub struct DisplayOptions {
    /// X display name (default `$DISPLAY`).
    pub display: Option<String>,
    /// RandR monitor index (default the primary one).
    pub monitor: Option<usize>,
}

/// The desktop and the encoder, moved onto a blocking thread for each step.
struct Worker {
    desktop: Box<dyn Desktop>,
    encoder: Encoder,
    pointer: Option<(i32, i32)>,
    indicator: Option<Indicator>,
    paused_until: Option<Instant>,
}

/// What one capture step produced.
#[derive(Default)]
struct Step {
    frame: Option<EncodedFrame>,
    pointer: Option<(i32, i32)>,
    shape: Option<CursorImage>,
}

/// What happened to an input event.
enum Injected {
    Done,
    /// The customer is using the mouse; the assistant's input waits.
    LocalInputWins,
}

impl Worker {
    fn open(options: &DisplayOptions) -> anyhow::Result<Worker> {
        Ok(Worker {
            desktop: desktop::open(options.display.as_deref(), options.monitor)?,
            encoder: Encoder::new()?,
            pointer: None,
            indicator: None,
            paused_until: None,
        })
    }

    fn step(&mut self, sync: u64, indicator: Option<Indicator>, capture: bool) -> anyhow::Result<Step> {
        if indicator != self.indicator {
            self.desktop.show_indicator(indicator)?;
            self.indicator = indicator;
        }
        let mut step = Step::default();
        if capture && let Some(c) = self.desktop.capture(sync != 0)? {
            let image = Image {
                width: c.width,
                height: c.height,
                stride: c.stride,
                data: c.data,
            };
            step.frame = self.encoder.encode(&image, sync)?;
        }
        let pointer = self.desktop.pointer()?;
        if self.pointer != Some(pointer) {
            self.pointer = Some(pointer);
            step.pointer = Some(pointer);
        }
        step.shape = self.desktop.cursor_shape()?;
        Ok(step)
    }

    fn inject(&mut self, events: &[InputEvent]) -> anyhow::Result<Injected> {
        let now = Instant::now();
        if self.paused_until.is_some_and(|t| now < t) {
            return Ok(Injected::LocalInputWins);
        }
        if self.desktop.local_input_since_injection()? {
            self.paused_until = Some(now + LOCAL_INPUT_PAUSE);
            return Ok(Injected::LocalInputWins);
        }
        for event in events {
            self.desktop.inject(event)?;
        }
        Ok(Injected::Done)
    }
}

/// Runs `f` on the worker on a blocking thread (X11 calls block).
async fn on_worker<T: Send + 'static>(
    worker: &mut Option<Worker>,
    f: impl FnOnce(&mut Worker) -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let mut w = worker.take().context("the screen worker failed earlier")?;
    let (w, result) = tokio::task::spawn_blocking(move || {
        let result = f(&mut w);
        (w, result)
    })
    .await?;
    *worker = Some(w);
    result
}

async fn open_worker(ctx: &Context) -> anyhow::Result<Worker> {
    let options = ctx.display.clone();
    tokio::task::spawn_blocking(move || Worker::open(&options)).await?
}

/// Rate-limits a repeated report to the customer.
struct Reporter {
    last: Option<Instant>,
    count: u64,
}

impl Reporter {
    fn new() -> Reporter {
        Reporter { last: None, count: 0 }
    }

    /// Counts one occurrence; returns how many to report now, if it is time.
    fn count(&mut self) -> Option<u64> {
        self.count += 1;
        if self.last.is_some_and(|t| t.elapsed() < REPORT_EVERY) {
            return None;
        }
        self.last = Some(Instant::now());
        Some(std::mem::take(&mut self.count))
    }
}

/// Serves a screen stream until the viewer closes it, the customer stops sharing, or the
/// session ends.
pub async fn share(stream: SecureStream, ctx: &Context, max_fps: u8) -> anyhow::Result<()> {
    let SecureStream {
        mut send, mut recv, ..
    } = stream;
    let mut worker = match open_worker(ctx).await {
        Ok(w) => Some(w),
        Err(e) => {
            send.send(&Response::Refused(format!("cannot share the screen: {e:#}")))
                .await?;
            return Ok(send.finish().await?);
        }
    };
    send.send(&Response::Accepted).await?;
    if let Some(w) = &worker {
        let m = w.desktop.monitor();
        ctx.ui.activity(
            "screen",
            &format!("screen sharing started ({} {}×{})", m.name, m.width, m.height),
        );
    }
    let fps = max_fps.clamp(1, MAX_FPS);
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / u32::from(fps));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut sent, mut acked, mut sync) = (0u64, 0u64, 0u64);
    let (mut dropped, mut paused) = (Reporter::new(), Reporter::new());
    let mut controlling = false;
    let end = loop {
        tokio::select! {
            _ = ticker.tick() => {
                let grants = ctx.grants();
                if !grants.allows(Capability::Screen) {
                    break "the customer stopped sharing the screen".to_owned();
                }
                let control = grants.allows(Capability::Control);
                let indicator = Some(if control { Indicator::Controlling } else { Indicator::Viewing });
                let capture = sent - acked < IN_FLIGHT;
                let want = sync;
                let step = on_worker(&mut worker, move |w| w.step(want, indicator, capture)).await?;
                let framed = step.frame.is_some();
                send_step(&mut send, step).await?;
                if framed {
                    sent += 1;
                    if want == sync {
                        sync = 0; // Answered.
                    }
                }
            }
            message = recv.recv::<ScreenFeedback>() => match message {
                Ok(Some(ScreenFeedback::Ack { frame })) => acked = acked.max(frame.min(sent)),
                Ok(Some(ScreenFeedback::Refresh { sync: s })) => sync = sync.max(s),
                Ok(Some(ScreenFeedback::Input(event))) => {
                    if !ctx.grants().allows(Capability::Control) || !event.is_valid() {
                        if let Some(n) = dropped.count() {
                            ctx.ui.activity("refused", &format!(
                                "dropped {n} input event(s) from the assistant: control is not allowed"
                            ));
                        }
                        continue;
                    }
                    if !controlling {
                        controlling = true;
                        ctx.ui.activity("control", "the assistant is using your mouse and keyboard");
                    }
                    let injected = on_worker(&mut worker, move |w| w.inject(&[event])).await?;
                    if let Injected::LocalInputWins = injected
                        && let Some(n) = paused.count()
                    {
                        ctx.ui.activity("control", &format!(
                            "you moved the mouse: {n} input event(s) of the assistant paused"
                        ));
                    }
                }
                Ok(None) => break "the assistant closed the screen".to_owned(),
                Err(e) => break format!("the screen stream failed ({e})"),
            },
        }
    };
    let _ = on_worker(&mut worker, |w| w.desktop.show_indicator(None)).await;
    let _ = send.finish().await;
    ctx.ui.activity("screen", &format!("screen sharing ended: {end}"));
    Ok(())
}

async fn send_step(send: &mut SecureSend, step: Step) -> anyhow::Result<()> {
    if let Some(shape) = step.shape {
        send.send(&ScreenUpdate::CursorShape {
            width: shape.width,
            height: shape.height,
            hot_x: shape.hot_x,
            hot_y: shape.hot_y,
            argb: shape.argb.iter().flat_map(|p| p.to_le_bytes()).collect(),
        })
        .await?;
    }
    if let Some((x, y)) = step.pointer {
        send.send(&ScreenUpdate::Cursor { x, y }).await?;
    }
    if let Some(frame) = step.frame {
        for update in &frame.updates {
            send.send(update).await?;
        }
    }
    Ok(())
}

/// Injects a batch of input events (`click`, `type` of the viewer), answering `Done`.
pub async fn input(stream: &mut SecureStream, ctx: &Context, events: Vec<InputEvent>) -> anyhow::Result<()> {
    let mut worker = match open_worker(ctx).await {
        Ok(w) => Some(w),
        Err(e) => {
            stream
                .send
                .send(&Response::Refused(format!("cannot reach the display: {e:#}")))
                .await?;
            return Ok(stream.send.finish().await?);
        }
    };
    stream.send.send(&Response::Accepted).await?;
    ctx.ui.activity(
        "control",
        &format!("the assistant's input: {}", describe(&events)),
    );
    let outcome = match on_worker(&mut worker, move |w| w.inject(&events)).await {
        Ok(Injected::Done) => Transfer::Done,
        Ok(Injected::LocalInputWins) => Transfer::Failed("the customer is using the mouse".into()),
        Err(e) => Transfer::Failed(format!("{e:#}")),
    };
    stream.send.send(&outcome).await?;
    stream.send.finish().await?;
    Ok(())
}

/// The input events as the customer reads them.
pub fn describe(events: &[InputEvent]) -> String {
    let parts: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            InputEvent::Move { x, y } => Some(format!("pointer to ({x}, {y})")),
            InputEvent::Button {
                button,
                pressed: true,
            } => Some(format!("button {button} click")),
            InputEvent::Button { .. } => None,
            InputEvent::Key {
                keysym,
                pressed: true,
            } => Some(format!("key {keysym:#x}")),
            InputEvent::Key { .. } => None,
            InputEvent::Text(text) => Some(format!("typed {text:?}")),
        })
        .collect();
    parts.join(", ")
}
