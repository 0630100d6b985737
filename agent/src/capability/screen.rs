//! Sharing the screen on a request stream (under `screen`), with the assistant's mouse and
//! keyboard on the same stream (each event only while `control` is granted when it arrives).

use std::time::{Duration, Instant};

use ponte_e2e::app::Capability;
use ponte_e2e::screen::{InputEvent, MAX_MONITOR_NAME, MAX_MONITORS, Quality, ScreenFeedback, ScreenUpdate};
use ponte_screen::{Encoder, MIN_BUDGET, Pacer, PathSample};
use ponte_session::{SecureSend, SecureStream};
use ponte_transport::bucket::TokenBucket;

use super::{Context, Handler};
use crate::desktop::{DesktopError, Injected, Opened, Step};
use crate::frontend::{Activity, Kind};
use crate::i18n::{Tr, t};
use ponte_wire::text::PeerText;

/// Screen streams at once.
pub const MAX_STREAMS: usize = 2;

/// The agent's own cap on frames per second.
pub const MAX_FPS: u8 = 60;

/// How long a refresh waits for the picture to become exact by itself before the frame
/// budget is lifted to make it so (a screenshot of a continuously changing photo screen).
const REFRESH_PATIENCE: Duration = Duration::from_secs(5);

/// The least time between two monitor switches of one stream; what is asked in between
/// waits, the last ask winning, while frames go on. A flood of switches would flood the
/// customer's activity list (and restart a PipeWire stream each on Wayland).
const SWITCH_SPACING: Duration = Duration::from_millis(500);

/// How often a stream of dropped or paused input is reported to the customer.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Rate-limits a repeated report to the customer: at most one per [`REPORT_EVERY`], telling
/// how many occurred since the last.
struct Reporter {
    bucket: TokenBucket,
    count: u64,
}

impl Reporter {
    fn new(now: Instant) -> Reporter {
        let rate = 1.0 / REPORT_EVERY.as_secs_f64();
        Reporter {
            bucket: TokenBucket::new(rate, 1.0, now),
            count: 0,
        }
    }

    /// Counts one occurrence; returns how many to report now, if it is time.
    fn count(&mut self, now: Instant) -> Option<u64> {
        self.count += 1;
        self.bucket.try_take(1.0, now).ok()?;
        Some(std::mem::take(&mut self.count))
    }
}

/// Removes the assistant's guide when dropped.
struct GuideOff<'a>(&'a crate::desktop::DesktopWorker);

impl Drop for GuideOff<'_> {
    fn drop(&mut self) {
        self.0.guide(None);
    }
}

/// A screen request.
pub struct Screen {
    max_fps: u8,
}

impl Screen {
    /// A screen stream of at most `max_fps` frames per second.
    pub fn new(max_fps: u8) -> Screen {
        Screen { max_fps }
    }
}

impl Handler for Screen {
    const GRANT: Capability = Capability::Screen;

    async fn tell_ended(send: &mut SecureSend, told: PeerText) {
        let _ = send.send(&ScreenUpdate::Ended(told)).await;
    }

    fn describe(&self, tr: &Tr) -> String {
        t!(tr, "request-screen")
    }

    async fn run(self, stream: &mut SecureStream, ctx: &Context) -> anyhow::Result<Activity> {
        let Opened {
            monitor,
            monitors,
            input,
        } = ctx.open_desktop().await?;
        let Some(sharing) = ctx.desktop.share(MAX_STREAMS) else {
            anyhow::bail!("the screen is already shared {MAX_STREAMS} times");
        };
        let started = t!(
            ctx.tr(),
            "screen-started",
            monitor = PeerText::new(monitor.name.clone()).to_string(),
            width = monitor.width,
            height = monitor.height
        );
        ctx.events.activity(Kind::Screen, started);
        if !input {
            let why = DesktopError::ViewOnly.to_string();
            stream
                .send
                .send(&ScreenUpdate::ViewOnly(PeerText::new(why)))
                .await?;
            ctx.events
                .activity(Kind::Screen, t!(ctx.tr(), "screen-view-only"));
        }
        send_monitors(&mut stream.send, &monitors).await?;
        let mut monitors = monitors;
        let mut switched = Instant::now() - SWITCH_SPACING;
        let mut switch: Option<usize> = None;
        let _shown = Shown::new(&ctx.events, input);
        let fps = self.max_fps.clamp(1, MAX_FPS);
        let mut ticker = tokio::time::interval(Duration::from_secs(1) / u32::from(fps));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut encoder = Box::new(Encoder::new()?);
        // Frames are paced by the viewer's acknowledgements and sized by the QUIC path.
        let mut pacer = Pacer::new();
        let mut sync = 0u64;
        let mut sync_since = Instant::now();
        let mut pointer = None;
        let mut control = Control::new();
        let mut quality = Quality::default();
        let mut guide = None;
        // The guide goes with the stream that drew it, however the stream ends.
        let _guide_off = GuideOff(&ctx.desktop);
        let end = loop {
            tokio::select! {
                _ = ticker.tick() => {
                    if let Some(at) = guide.take() {
                        ctx.desktop.guide(at);
                    }
                    // A monitor not in the list, or the one shared, changes nothing.
                    if let Some(index) = switch.take_if(|_| switched.elapsed() >= SWITCH_SPACING)
                        && index < monitors.names.len()
                        && index != monitors.current
                    {
                        switched = Instant::now();
                        if let Some(m) = ctx.desktop.select(index).await? {
                            let text = t!(
                                ctx.tr(),
                                "screen-monitor",
                                monitor = PeerText::new(m.name).to_string(),
                                width = m.width,
                                height = m.height
                            );
                            ctx.events.activity(Kind::Screen, text);
                        }
                    }
                    let want = sync;
                    if let Some(session) = &ctx.session {
                        let path = session.connection().stats().path;
                        let sample = PathSample { rtt: path.rtt, cwnd: path.cwnd, lost_packets: path.lost_packets };
                        pacer.on_path(sample, Instant::now());
                    }
                    let budget = if want != 0 && sync_since.elapsed() > REFRESH_PATIENCE {
                        usize::MAX
                    } else if quality == Quality::Fast {
                        // Smaller frames come back sooner: smoother motion.
                        (pacer.budget() / 2).max(MIN_BUDGET)
                    } else {
                        pacer.budget()
                    };
                    encoder.set_quality(quality);
                    let capture = pacer.may_send().then_some(budget);
                    let (back, step) = ctx.desktop.step(&sharing, want, capture, encoder).await?;
                    encoder = back;
                    let mut step = step?;
                    if let Some(frame) = &mut step.frame {
                        if let Some(stats) = frame.stats_mut() {
                            stats.rtt_us = pacer.rtt().map_or(0, |r| r.as_micros().min(u32::MAX.into()) as u32);
                            stats.rate = pacer.rate().map_or(0, |r| r.min(f64::from(u32::MAX)) as u32);
                        }
                        // A frame says what the path carries only if it was cut to the budget.
                        let full = encoder.pending() && frame.bytes.saturating_mul(2) >= budget;
                        pacer.sent(frame.number, frame.bytes, full, frame.still, Instant::now());
                        if want != 0 && frame.answers(want) {
                            sync = 0;
                        }
                    }
                    if step.monitors != monitors {
                        monitors = step.monitors.clone();
                        send_monitors(&mut stream.send, &monitors).await?;
                    }
                    send_step(&mut stream.send, step, &mut pointer).await?;
                }
                message = stream.recv.recv::<ScreenFeedback>() => match message {
                    Ok(Some(ScreenFeedback::Ack { frame })) => pacer.acked(frame, Instant::now()),
                    Ok(Some(ScreenFeedback::Refresh { sync: s })) => {
                        if sync == 0 {
                            sync_since = Instant::now();
                        }
                        sync = sync.max(s);
                    }
                    Ok(Some(ScreenFeedback::Input(event))) => control.input(ctx, event).await?,
                    // Applied at the next tick that may switch: the last one asked wins.
                    Ok(Some(ScreenFeedback::Monitor(index))) => switch = Some(usize::from(index)),
                    // Drawn at the next tick: a flood moves the ring at most once a frame.
                    Ok(Some(ScreenFeedback::Guide(at))) => guide = Some(at),
                    Ok(Some(ScreenFeedback::Quality(chosen))) => quality = chosen,
                    Ok(None) => break t!(ctx.tr(), "screen-ended-closed"),
                    Err(e) => break t!(ctx.tr(), "screen-ended-failed", error = e.to_string()),
                },
            }
        };
        Ok(Activity {
            kind: Kind::Screen,
            text: t!(ctx.tr(), "screen-ended", reason = end),
        })
    }
}

/// The assistant's input on a screen stream, and what the customer is told of it.
struct Control {
    /// Whether the customer was told the assistant is using mouse and keyboard.
    controlling: bool,
    /// Input dropped: without `control`, or on a desktop that takes none.
    dropped: Reporter,
    /// Input paused because the customer is using mouse or keyboard.
    paused: Reporter,
}

impl Control {
    fn new() -> Control {
        Control {
            controlling: false,
            dropped: Reporter::new(Instant::now()),
            paused: Reporter::new(Instant::now()),
        }
    }

    /// Injects `event` if `control` is granted now, and says what became of it.
    async fn input(&mut self, ctx: &Context, event: InputEvent) -> anyhow::Result<()> {
        let allowed = ctx.grants.now().allows(Capability::Control) && event.is_valid();
        let injected = if allowed {
            ctx.desktop.inject(vec![event]).await?
        } else {
            Injected::NotAllowed
        };
        let tr = ctx.tr();
        match injected {
            Injected::Done if !self.controlling => {
                self.controlling = true;
                ctx.events.activity(Kind::Control, t!(tr, "control-using"));
            }
            Injected::Done => {}
            Injected::LocalInputWins => {
                if let Some(n) = self.paused.count(Instant::now()) {
                    ctx.events
                        .activity(Kind::Control, t!(tr, "control-paused", count = n));
                }
            }
            Injected::NotAllowed => {
                if let Some(n) = self.dropped.count(Instant::now()) {
                    ctx.events
                        .activity(Kind::Refused, t!(tr, "control-dropped", count = n));
                }
            }
            Injected::ViewOnly => {
                if let Some(n) = self.dropped.count(Instant::now()) {
                    ctx.events
                        .activity(Kind::Refused, t!(tr, "control-view-only", count = n));
                }
            }
        }
        Ok(())
    }
}

/// Tells the front-end the screen is shared for as long as it lives (however the stream ends).
struct Shown<'a>(&'a crate::events::Events, bool);

impl<'a> Shown<'a> {
    fn new(events: &'a crate::events::Events, input: bool) -> Shown<'a> {
        events.emit(crate::frontend::Event::Sharing { active: true, input });
        Shown(events, input)
    }
}

impl Drop for Shown<'_> {
    fn drop(&mut self) {
        let input = self.1;
        self.0
            .emit(crate::frontend::Event::Sharing { active: false, input });
    }
}

/// Tells the viewer which monitors it may switch among (the names bounded as the protocol says).
async fn send_monitors(send: &mut SecureSend, monitors: &crate::desktop::Monitors) -> anyhow::Result<()> {
    let names = monitors
        .names
        .iter()
        .take(MAX_MONITORS)
        .map(|n| PeerText::new(n.chars().take(MAX_MONITOR_NAME / 4).collect::<String>()))
        .collect();
    let current = u8::try_from(monitors.current).unwrap_or(0);
    send.send(&ScreenUpdate::Monitors { names, current }).await?;
    Ok(())
}

async fn send_step(
    send: &mut SecureSend,
    step: Step,
    last_pointer: &mut Option<(i32, i32)>,
) -> anyhow::Result<()> {
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
    if let Some((x, y)) = step.pointer
        && *last_pointer != step.pointer
    {
        *last_pointer = step.pointer;
        send.send(&ScreenUpdate::Cursor { x, y }).await?;
    }
    if let Some(frame) = step.frame {
        // The frame's figures go out after its pixels: they can say how long those took.
        let started = Instant::now();
        for mut update in frame.updates {
            if let ScreenUpdate::Stats(stats) = &mut update {
                stats.send_us = started.elapsed().as_micros().min(u32::MAX.into()) as u32;
            }
            send.send(&update).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_report_is_told_at_most_every_few_seconds_with_its_count() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut reporter = Reporter::new(t0);
        assert_eq!(reporter.count(t0), Some(1), "the first at once");
        assert_eq!(reporter.count(at(1000)), None);
        assert_eq!(reporter.count(at(4900)), None);
        assert_eq!(reporter.count(at(5100)), Some(3), "then how many since");
        assert_eq!(reporter.count(at(6000)), None);
        assert_eq!(reporter.count(at(60_000)), Some(2));
    }
}
