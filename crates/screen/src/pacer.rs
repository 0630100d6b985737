//! How much the agent sends, and when. Frames are sized by what the path delivers now — the
//! rate at which the viewer's acknowledgements show frames arriving, measured BBR-style as
//! a running mean of the delivery rate while the path was busy (samples from an idle path
//! count only when they raise it), capped by the QUIC connection's congestion window over its round-trip time — so a
//! frame drains in about [`FRAME_TIME`]. A new frame is captured only while less than three
//! frames' worth of bytes (and at most [`MAX_IN_FLIGHT`] frames) wait for acknowledgement:
//! more than a round trip in flight keeps the path busy while the agent captures and encodes
//! (which is what makes the acknowledgements measure it), a slow path gets fewer, newer frames
//! instead of a queue, and small frames (typing, scrolling) still follow each other closely.
//! While a picture that stood still for [`QUIET`] is being sharpened and the connection has
//! lost a packet of the waiting frames, twice as many may wait: the frames behind the hole
//! cannot be acknowledged until it is filled, but the path still carries them.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Frames sent but not yet acknowledged before the agent stops capturing.
pub const MAX_IN_FLIGHT: usize = 4;

/// How long one frame's pixels should take on the path: short enough for 25 frames a second
/// when the path is the limit.
pub const FRAME_TIME: Duration = Duration::from_millis(40);

/// Frames' worth of bytes that may wait for acknowledgement. More than one round trip of the
/// path must be in flight, or the path idles while the agent captures and encodes (and the
/// acknowledgements, seeing an idle path, never measure it); bounded, so the queue behind a
/// change is too (3 × 40 ms × the probe gain: 150 ms of the path's rate).
const FRAMES_IN_FLIGHT: usize = 3;

/// No frame gets a smaller budget: a few text tiles, a 1080p photo screen's preview at the
/// ladder's third rung (q50 at half size, ~10.7 KB), a raw 64×64 tile with its framing (so
/// refinement always progresses). Small enough that a 2 Mbit/s uplink carries 15 frames a
/// second of a scrolling page (16 KiB gave 11–13).
pub const MIN_BUDGET: usize = 12 * 1024 + 64;

/// Budgets ask for this much more than the path was seen to deliver, so that a path faster
/// than what the frames so far needed shows itself in the next samples.
const PROBE_GAIN: f64 = 1.25;

/// How long the screen must have stood still before its refinement may keep more frames in
/// flight past a lost packet (longer than the pauses between the steps of a scroll).
pub const QUIET: Duration = Duration::from_millis(300);

/// Acknowledgements closer together than this make no sample (their spacing is noise).
const MIN_SPAN: Duration = Duration::from_millis(5);

/// The QUIC connection's view of the path (quinn's `PathStats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathSample {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Packets the connection has declared lost so far.
    pub lost_packets: u64,
}

/// The pacer's state.
#[derive(Debug)]
pub struct Pacer {
    /// Frames sent and not acknowledged: number, bytes, when sent, whether the path was the
    /// limit (the frame filled its budget and an earlier frame was still on its way).
    in_flight: VecDeque<(u64, usize, Instant, bool)>,
    path: Option<PathSample>,
    /// Delivery rate, bytes per second (a running mean of samples).
    delivered: Option<f64>,
    /// When the last acknowledgement came (a busy path's sample spans from there).
    last_ack: Option<Instant>,
    /// Round trip from a frame's sending to its acknowledgement (smoothed).
    ack_rtt: Option<Duration>,
    /// When the connection last declared a packet lost.
    last_loss: Option<Instant>,
    /// When the last frame with a change of the screen went out.
    changed_at: Option<Instant>,
    /// The last frame sent only sharpened a picture that had stood still for [`QUIET`].
    quiet: bool,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

impl Pacer {
    /// A pacer that knows nothing of the path yet.
    pub fn new() -> Pacer {
        Pacer {
            in_flight: VecDeque::new(),
            path: None,
            delivered: None,
            last_ack: None,
            ack_rtt: None,
            last_loss: None,
            changed_at: None,
            quiet: false,
        }
    }

    /// The latest figures of the QUIC connection, read at `now`.
    pub fn on_path(&mut self, sample: PathSample, now: Instant) {
        if self.path.is_some_and(|p| sample.lost_packets > p.lost_packets) {
            self.last_loss = Some(now);
        }
        self.path = Some(sample);
    }

    /// Whether a new frame may be captured now.
    pub fn may_send(&self) -> bool {
        // A packet lost after the oldest waiting frame went out holds up every frame behind it
        // on the stream until it is sent again (a round trip or more): acknowledgements stop
        // although the path still delivers. While a quiet picture is being sharpened, twice
        // the frames may wait then, so the path keeps carrying the refinement instead of
        // idling until the hole is filled. Not while the screen changes: there the frames
        // behind the hole would only age.
        let stalled = match (self.in_flight.front(), self.last_loss) {
            (Some(oldest), Some(loss)) => self.quiet && loss > oldest.2,
            _ => false,
        };
        let share = if stalled { 2 } else { 1 };
        let waiting: usize = self.in_flight.iter().map(|f| f.1).sum();
        self.in_flight.len() < MAX_IN_FLIGHT * share
            && waiting < self.budget().saturating_mul(FRAMES_IN_FLIGHT * share)
    }

    /// Frame `frame` of `bytes` went out; `full`: the encoder had more to send than the
    /// budget let it and the frame used most of the budget (otherwise the frame says little
    /// about what the path could carry); `still`: nothing on the screen had changed, the frame
    /// only sharpened the picture.
    pub fn sent(&mut self, frame: u64, bytes: usize, full: bool, still: bool, now: Instant) {
        if !still {
            self.changed_at = Some(now);
        }
        self.quiet = still
            && self
                .changed_at
                .is_none_or(|c| now.saturating_duration_since(c) >= QUIET);
        let busy = full && !self.in_flight.is_empty();
        self.in_flight.push_back((frame, bytes, now, busy));
    }

    /// The viewer has shown every frame up to `frame`.
    pub fn acked(&mut self, frame: u64, now: Instant) {
        let (mut bytes, mut first) = (0, None);
        while let Some(&(n, b, sent, busy)) = self.in_flight.front() {
            if n > frame {
                break;
            }
            self.in_flight.pop_front();
            bytes += b;
            first.get_or_insert((sent, busy));
            let rtt = now.saturating_duration_since(sent);
            self.ack_rtt = Some(self.ack_rtt.map_or(rtt, |r| (r * 7 + rtt) / 8));
        }
        let Some((sent, busy)) = first else { return };
        // On a busy path the frames arrive back to back: the time since the previous
        // acknowledgement is the time these bytes took. Otherwise the frame also waited a
        // round trip or for the screen to change, so its sample is low and only counts if it
        // raises the estimate.
        let from = match self.last_ack {
            Some(t) if busy => t.max(sent),
            _ => sent,
        };
        self.last_ack = Some(now);
        let span = now.saturating_duration_since(from);
        if span < MIN_SPAN || bytes == 0 {
            return;
        }
        let rate = bytes as f64 / span.as_secs_f64();
        self.delivered = match self.delivered {
            // The first sample from a busy path starts the estimate; until then the window
            // rules (an idle path's sample is mostly round trip).
            None if busy => Some(rate),
            None => None,
            // One sample may at most double the estimate (acknowledgements bunched by jitter);
            // a busy path's samples are averaged, so single outliers do not steer.
            Some(k) if busy => Some((k * 3.0 + rate.min(k * 2.0)) / 4.0),
            Some(k) => Some(k.max(rate.min(k * 2.0))),
        };
    }

    /// What the path carries now, bytes per second (`None` before anything is known).
    pub fn rate(&self) -> Option<f64> {
        let window = self
            .path
            .filter(|p| !p.rtt.is_zero())
            .map(|p| p.cwnd as f64 / p.rtt.as_secs_f64());
        match (window, self.delivered) {
            (Some(w), Some(d)) => Some(w.min(d)),
            (w, d) => w.or(d),
        }
    }

    /// The round-trip time: the connection's, else the acknowledgements'.
    pub fn rtt(&self) -> Option<Duration> {
        self.path.map(|p| p.rtt).or(self.ack_rtt)
    }

    /// Bytes of pixel data the next frame may carry (unlimited while nothing is known).
    pub fn budget(&self) -> usize {
        match self.rate() {
            Some(rate) => ((rate * PROBE_GAIN * FRAME_TIME.as_secs_f64()) as usize).max(MIN_BUDGET),
            None => usize::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn frames_wait_for_the_viewer_by_count_and_by_bytes() {
        let mut p = Pacer::new();
        let t = Instant::now();
        // Small frames: up to MAX_IN_FLIGHT of them.
        for n in 1..=MAX_IN_FLIGHT as u64 {
            assert!(p.may_send());
            p.sent(n, 500, false, false, t);
        }
        assert!(!p.may_send(), "{MAX_IN_FLIGHT} frames wait");
        p.acked(1, t + 50 * MS);
        assert!(p.may_send());
        // An old or repeated acknowledgement changes nothing.
        p.acked(1, t + 60 * MS);
        p.acked(MAX_IN_FLIGHT as u64, t + 70 * MS);
        assert!(p.in_flight.is_empty());
        // Frames as large as the budget: FRAMES_IN_FLIGHT of them, no more.
        p.on_path(
            PathSample {
                rtt: 50 * MS,
                cwnd: 32_000,
                lost_packets: 0,
            },
            t,
        );
        for n in 0..FRAMES_IN_FLIGHT as u64 {
            assert!(p.may_send());
            p.sent(10 + n, p.budget(), true, false, t + 80 * MS);
        }
        assert!(!p.may_send(), "{FRAMES_IN_FLIGHT} budgets' worth of bytes wait");
        p.acked(10 + FRAMES_IN_FLIGHT as u64, t + 200 * MS);
        assert!(p.may_send());
    }

    #[test]
    fn a_loss_behind_the_waiting_frames_lets_refinement_go_on() {
        let path = |lost_packets| PathSample {
            rtt: 80 * MS,
            cwnd: 32_000,
            lost_packets,
        };
        // Fills the pacer with full frames numbered from `first`, sent at `at`; returns how
        // many it let out.
        let fill = |p: &mut Pacer, first: u64, still: bool, at: Instant| {
            let mut n = 0;
            while p.may_send() && n < 100 {
                p.sent(first + n, p.budget(), true, still, at);
                n += 1;
            }
            n
        };
        for still in [true, false] {
            let mut p = Pacer::new();
            let t = Instant::now();
            p.on_path(path(2), t);
            // A loss declared before these frames went out says nothing about them.
            p.on_path(path(3), t);
            let normal = fill(&mut p, 1, still, t + MS);
            assert_eq!(normal, FRAMES_IN_FLIGHT as u64);
            p.on_path(path(3), t + 50 * MS);
            assert!(!p.may_send());
            // A packet of theirs is declared lost: the stream is held up behind it.
            p.on_path(path(4), t + 100 * MS);
            let more = fill(&mut p, normal + 1, still, t + 100 * MS);
            if still {
                assert_eq!(more, FRAMES_IN_FLIGHT as u64, "refinement goes on past the hole");
            } else {
                assert_eq!(more, 0, "changing frames would only age behind the hole");
            }
            // Once the held-up frames arrive, the usual limit holds again.
            p.acked(normal, t + 300 * MS);
            assert_eq!(p.may_send(), !still, "{} frames still wait", p.in_flight.len());
        }
        // A pause between the steps of a scroll is not a quiet picture.
        let mut p = Pacer::new();
        let t = Instant::now();
        p.on_path(path(0), t);
        p.sent(1, 100, false, false, t);
        p.acked(1, t + 50 * MS);
        let normal = fill(&mut p, 2, true, t + 100 * MS);
        p.on_path(path(1), t + 200 * MS);
        assert_eq!(fill(&mut p, 10, true, t + 200 * MS), 0);
        p.acked(normal + 1, t + 250 * MS);
        // Quiet for long enough, it is.
        let normal = fill(&mut p, 20, true, t + QUIET);
        p.on_path(path(2), t + QUIET + 100 * MS);
        assert_eq!(fill(&mut p, 30, true, t + QUIET + 100 * MS), normal);
    }

    #[test]
    fn the_window_caps_the_budget() {
        let mut p = Pacer::new();
        let t = Instant::now();
        assert_eq!(p.budget(), usize::MAX, "nothing known: as today");
        // 5 Mbit/s with 50 ms RTT: a 32 KB window, 640 KB/s.
        p.on_path(
            PathSample {
                rtt: 50 * MS,
                cwnd: 32_000,
                lost_packets: 0,
            },
            t,
        );
        assert_eq!(
            p.budget(),
            (640_000.0 * PROBE_GAIN * FRAME_TIME.as_secs_f64()) as usize
        );
        // A collapsed window still leaves a usable frame.
        p.on_path(
            PathSample {
                rtt: 500 * MS,
                cwnd: 2_400,
                lost_packets: 0,
            },
            t,
        );
        assert_eq!(p.budget(), MIN_BUDGET);
    }

    /// Full frames sent whenever the pacer lets over a path of `rate` bytes per second, each
    /// acknowledged when it has drained (plus a fixed delay), for `seconds`. Returns the rate
    /// the pacer believes afterwards.
    fn saturate(p: &mut Pacer, rate: f64, seconds: f64, t: &mut Instant) -> f64 {
        let end = *t + Duration::from_secs_f64(seconds);
        let (mut free, mut n) = (*t, 0);
        let mut acks = VecDeque::new();
        while *t < end {
            if p.may_send() {
                n += 1;
                let bytes = p.budget().min(10_000_000);
                p.sent(n, bytes, true, false, *t);
                free = free.max(*t) + Duration::from_secs_f64(bytes as f64 / rate);
                acks.push_back((free + 25 * MS, n));
            } else {
                let (at, frame) = acks.pop_front().unwrap();
                *t = at;
                p.acked(frame, at);
            }
        }
        for (at, frame) in acks {
            *t = at;
            p.acked(frame, at);
        }
        p.rate().unwrap()
    }

    #[test]
    fn a_busy_path_is_measured_and_a_faster_one_is_found() {
        let mut p = Pacer::new();
        let mut t = Instant::now();
        p.on_path(
            PathSample {
                rtt: 50 * MS,
                cwnd: 15_000,
                lost_packets: 0,
            },
            t,
        );
        // The window says 300 KB/s; the acknowledgements find the path's 625 KB/s (5 Mbit/s)
        // after a few frames, and the window (grown meanwhile) no longer limits.
        p.on_path(
            PathSample {
                rtt: 50 * MS,
                cwnd: 1_000_000,
                lost_packets: 0,
            },
            t,
        );
        let rate = saturate(&mut p, 625_000.0, 3.0, &mut t);
        assert!((550_000.0..=700_000.0).contains(&rate), "{rate}");
        // The budget drains in about FRAME_TIME (with the probing gain).
        let drain = p.budget() as f64 / 625_000.0;
        let frame = FRAME_TIME.as_secs_f64();
        assert!((frame * 0.8..=frame * 1.4).contains(&drain), "{drain}");
        // The path gets slower: believed within a second or so.
        let rate = saturate(&mut p, 200_000.0, 3.0, &mut t);
        assert!((150_000.0..=260_000.0).contains(&rate), "{rate}");
    }

    #[test]
    fn small_frames_do_not_lower_the_estimate() {
        let mut p = Pacer::new();
        let mut t = Instant::now();
        saturate(&mut p, 625_000.0, 3.0, &mut t);
        let before = p.rate().unwrap();
        // Typing: a tiny frame every 100 ms, each acknowledged a round trip later.
        for n in 100..130 {
            p.sent(n, 600, false, false, t);
            p.acked(n, t + 50 * MS);
            t += 100 * MS;
        }
        let after = p.rate().unwrap();
        assert!(after >= before * 0.99, "{before} → {after}");
    }

    #[test]
    fn a_hostile_viewers_acknowledgements_do_not_open_the_gate() {
        // Acknowledgements of frames never sent, of u64::MAX, or going backwards: the pacer
        // forgets only frames it sent, and the budget stays what the path allows.
        let mut p = Pacer::new();
        let t = Instant::now();
        p.on_path(
            PathSample {
                rtt: 50 * MS,
                cwnd: 32_000,
                lost_packets: 0,
            },
            t,
        );
        let budget = p.budget();
        p.acked(u64::MAX, t);
        p.acked(7, t + MS);
        assert_eq!(p.budget(), budget, "acks of nothing measure nothing");
        for n in 1..=FRAMES_IN_FLIGHT as u64 {
            p.sent(n, budget, true, false, t);
        }
        assert!(!p.may_send());
        p.acked(0, t + 10 * MS);
        assert!(!p.may_send(), "an ack of an older frame frees nothing");
        // Acknowledging everything at once, however early, is bounded by the window.
        p.acked(u64::MAX, t + 10 * MS);
        assert!(p.may_send());
        assert!(p.budget() <= budget, "{} > {budget}", p.budget());
    }

    #[test]
    fn the_round_trip_comes_from_the_connection_else_the_acknowledgements() {
        let mut p = Pacer::new();
        let t = Instant::now();
        p.sent(1, 1000, false, false, t);
        p.acked(1, t + 80 * MS);
        assert_eq!(p.rtt(), Some(80 * MS));
        p.on_path(
            PathSample {
                rtt: 50 * MS,
                cwnd: 15_000,
                lost_packets: 0,
            },
            t,
        );
        assert_eq!(p.rtt(), Some(50 * MS));
    }
}
