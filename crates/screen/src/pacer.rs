//! How much the agent sends, and when. Frames are sized by what the path delivers now — the
//! rate at which the viewer's acknowledgements show frames arriving, measured BBR-style as
//! a running mean of the delivery rate while the path was busy (samples from an idle path
//! count only when they raise it), capped by the QUIC connection's congestion window over its round-trip time — so a
//! frame drains in about [`FRAME_TIME`]. A new frame is captured only while less than three
//! frames' worth of bytes (and at most [`MAX_IN_FLIGHT`] frames) wait for acknowledgement:
//! more than a round trip in flight keeps the path busy while the agent captures and encodes
//! (which is what makes the acknowledgements measure it), a slow path gets fewer, newer frames
//! instead of a queue, and small frames (typing, scrolling) still follow each other closely.

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

/// No frame gets a smaller budget (a few text tiles, a preview of a photo screen, and more
/// than one raw 64×64 tile with its framing, so refinement always progresses).
pub const MIN_BUDGET: usize = 16 * 1024;

/// Budgets ask for this much more than the path was seen to deliver, so that a path faster
/// than what the frames so far needed shows itself in the next samples.
const PROBE_GAIN: f64 = 1.25;

/// Acknowledgements closer together than this make no sample (their spacing is noise).
const MIN_SPAN: Duration = Duration::from_millis(5);

/// The QUIC connection's view of the path (quinn's `PathStats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathSample {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Congestion window, bytes.
    pub cwnd: u64,
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
        }
    }

    /// The latest figures of the QUIC connection.
    pub fn on_path(&mut self, sample: PathSample) {
        self.path = Some(sample);
    }

    /// Whether a new frame may be captured now.
    pub fn may_send(&self) -> bool {
        let waiting: usize = self.in_flight.iter().map(|f| f.1).sum();
        self.in_flight.len() < MAX_IN_FLIGHT && waiting < self.budget().saturating_mul(FRAMES_IN_FLIGHT)
    }

    /// Frame `frame` of `bytes` went out; `full`: the encoder had more to send than the
    /// budget let it and the frame used most of the budget (otherwise the frame says little
    /// about what the path could carry).
    pub fn sent(&mut self, frame: u64, bytes: usize, full: bool, now: Instant) {
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
            p.sent(n, 500, false, t);
        }
        assert!(!p.may_send(), "{MAX_IN_FLIGHT} frames wait");
        p.acked(1, t + 50 * MS);
        assert!(p.may_send());
        // An old or repeated acknowledgement changes nothing.
        p.acked(1, t + 60 * MS);
        p.acked(MAX_IN_FLIGHT as u64, t + 70 * MS);
        assert!(p.in_flight.is_empty());
        // Frames as large as the budget: FRAMES_IN_FLIGHT of them, no more.
        p.on_path(PathSample {
            rtt: 50 * MS,
            cwnd: 32_000,
        });
        for n in 0..FRAMES_IN_FLIGHT as u64 {
            assert!(p.may_send());
            p.sent(10 + n, p.budget(), true, t + 80 * MS);
        }
        assert!(!p.may_send(), "{FRAMES_IN_FLIGHT} budgets' worth of bytes wait");
        p.acked(10 + FRAMES_IN_FLIGHT as u64, t + 200 * MS);
        assert!(p.may_send());
    }

    #[test]
    fn the_window_caps_the_budget() {
        let mut p = Pacer::new();
        assert_eq!(p.budget(), usize::MAX, "nothing known: as today");
        // 5 Mbit/s with 50 ms RTT: a 32 KB window, 640 KB/s.
        p.on_path(PathSample {
            rtt: 50 * MS,
            cwnd: 32_000,
        });
        assert_eq!(
            p.budget(),
            (640_000.0 * PROBE_GAIN * FRAME_TIME.as_secs_f64()) as usize
        );
        // A collapsed window still leaves a usable frame.
        p.on_path(PathSample {
            rtt: 500 * MS,
            cwnd: 2_400,
        });
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
                p.sent(n, bytes, true, *t);
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
        p.on_path(PathSample {
            rtt: 50 * MS,
            cwnd: 15_000,
        });
        // The window says 300 KB/s; the acknowledgements find the path's 625 KB/s (5 Mbit/s)
        // after a few frames, and the window (grown meanwhile) no longer limits.
        p.on_path(PathSample {
            rtt: 50 * MS,
            cwnd: 1_000_000,
        });
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
            p.sent(n, 600, false, t);
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
        p.on_path(PathSample {
            rtt: 50 * MS,
            cwnd: 32_000,
        });
        let budget = p.budget();
        p.acked(u64::MAX, t);
        p.acked(7, t + MS);
        assert_eq!(p.budget(), budget, "acks of nothing measure nothing");
        for n in 1..=FRAMES_IN_FLIGHT as u64 {
            p.sent(n, budget, true, t);
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
        p.sent(1, 1000, false, t);
        p.acked(1, t + 80 * MS);
        assert_eq!(p.rtt(), Some(80 * MS));
        p.on_path(PathSample {
            rtt: 50 * MS,
            cwnd: 15_000,
        });
        assert_eq!(p.rtt(), Some(50 * MS));
    }
}
