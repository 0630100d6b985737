//! How much the agent sends, and when: frames are paced by the viewer's acknowledgements (at
//! most [`MAX_IN_FLIGHT`] frames unacknowledged, so a slow path gets fewer, newer frames
//! instead of a queue) and sized by what the path carries now (the QUIC connection's
//! congestion window over its round-trip time, or the delivery rate the acknowledgements
//! show, whichever is higher), so a frame drains in about [`FRAME_TIME`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Frames sent but not yet acknowledged before the agent stops capturing.
pub const MAX_IN_FLIGHT: usize = 2;

/// How long one frame's pixels should take on the path. Two frames in flight bound the
/// queue behind a change to about twice this, plus the round trip.
pub const FRAME_TIME: Duration = Duration::from_millis(100);

/// No frame gets a smaller budget (a few text tiles, or a preview of a photo screen).
pub const MIN_BUDGET: usize = 12 * 1024;

/// The QUIC connection's view of the path (quinn's `PathStats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathSample {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Packets lost so far.
    pub lost_packets: u64,
}

/// The pacer's state.
#[derive(Debug)]
pub struct Pacer {
    /// Frames sent and not acknowledged: number, bytes, when sent.
    in_flight: VecDeque<(u64, usize, Instant)>,
    path: Option<PathSample>,
    /// Delivery rate the acknowledgements showed, bytes per second (smoothed).
    delivered: f64,
    /// When the last acknowledgement came (a delivery sample spans from there).
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
            delivered: 0.0,
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
        self.in_flight.len() < MAX_IN_FLIGHT
    }

    /// Frame `frame` of `bytes` went out.
    pub fn sent(&mut self, frame: u64, bytes: usize, now: Instant) {
        self.in_flight.push_back((frame, bytes, now));
    }

    /// The viewer has shown every frame up to `frame`.
    pub fn acked(&mut self, frame: u64, now: Instant) {
        let mut bytes = 0;
        while let Some(&(n, b, sent)) = self.in_flight.front() {
            if n > frame {
                break;
            }
            self.in_flight.pop_front();
            bytes += b;
            let rtt = now.saturating_duration_since(sent);
            self.ack_rtt = Some(self.ack_rtt.map_or(rtt, |r| (r * 7 + rtt) / 8));
            // Bytes delivered since the previous acknowledgement, or since this frame left
            // if the path was idle in between.
            let from = self.last_ack.map_or(sent, |t| t.max(sent));
            let span = now.saturating_duration_since(from).as_secs_f64();
            if span > 0.001 && bytes > 0 {
                let rate = bytes as f64 / span;
                self.delivered = if self.delivered == 0.0 {
                    rate
                } else {
                    (self.delivered * 3.0 + rate) / 4.0
                };
                bytes = 0;
            }
            self.last_ack = Some(now);
        }
    }

    /// What the path carries now, bytes per second (`None` before anything is known).
    pub fn rate(&self) -> Option<f64> {
        let window = self
            .path
            .filter(|p| !p.rtt.is_zero())
            .map(|p| p.cwnd as f64 / p.rtt.as_secs_f64());
        match (window, self.delivered > 0.0) {
            (Some(w), true) => Some(w.max(self.delivered)),
            (Some(w), false) => Some(w),
            (None, true) => Some(self.delivered),
            (None, false) => None,
        }
    }

    /// The round-trip time: the connection's, else the acknowledgements'.
    pub fn rtt(&self) -> Option<Duration> {
        self.path.map(|p| p.rtt).or(self.ack_rtt)
    }

    /// Bytes of pixel data the next frame may carry (unlimited while nothing is known).
    pub fn budget(&self) -> usize {
        match self.rate() {
            Some(rate) => ((rate * FRAME_TIME.as_secs_f64()) as usize).max(MIN_BUDGET),
            None => usize::MAX,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_two_frames_wait_for_the_viewer() {
        let mut p = Pacer::new();
        let t = Instant::now();
        assert!(p.may_send());
        p.sent(1, 1000, t);
        p.sent(2, 1000, t);
        assert!(!p.may_send());
        p.acked(1, t + Duration::from_millis(50));
        assert!(p.may_send());
        // An old or repeated acknowledgement changes nothing.
        p.acked(1, t + Duration::from_millis(60));
        p.sent(3, 1000, t);
        assert!(!p.may_send());
        p.acked(3, t + Duration::from_millis(70));
        assert!(p.in_flight.is_empty());
    }

    #[test]
    fn the_budget_follows_the_path() {
        let mut p = Pacer::new();
        assert_eq!(p.budget(), usize::MAX, "nothing known: as today");
        // 5 Mbit/s with 50 ms RTT: a 32 KB window.
        p.on_path(PathSample {
            rtt: Duration::from_millis(50),
            cwnd: 32_000,
            lost_packets: 0,
        });
        assert_eq!(p.budget(), 64_000);
        // A loopback path: megabytes per frame.
        p.on_path(PathSample {
            rtt: Duration::from_micros(200),
            cwnd: 100_000,
            lost_packets: 0,
        });
        assert!(p.budget() > 10_000_000);
        // A collapsed window still leaves a usable frame.
        p.on_path(PathSample {
            rtt: Duration::from_millis(500),
            cwnd: 2_400,
            lost_packets: 9,
        });
        assert_eq!(p.budget(), MIN_BUDGET);
    }

    #[test]
    fn acknowledgements_measure_delivery() {
        let mut p = Pacer::new();
        let t = Instant::now();
        p.sent(1, 50_000, t);
        p.sent(2, 50_000, t);
        p.acked(1, t + Duration::from_millis(100));
        p.acked(2, t + Duration::from_millis(200));
        let rate = p.rate().unwrap();
        assert!((rate - 500_000.0).abs() < 1.0, "{rate}");
        assert_eq!(p.budget(), 50_000);
        assert_eq!(p.rtt(), Some(Duration::from_micros(112_500)));
    }
}
