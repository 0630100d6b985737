//! The agent's front-ends: [`window`] for the customer (the default on a desktop), [`text`] for
//! a person at a terminal, [`json`] for scripts. Each shows the core's events and sends back
//! the customer's inputs.

pub mod json;
pub mod text;
pub mod window;

use tokio::signal::unix::{Signal, SignalKind, signal};

/// The signals that mean "end the session": Ctrl-C, SIGTERM, and SIGHUP (the customer closed
/// the terminal window). They end it the regular way, so everything the assistant started is
/// stopped and the log completed, rather than killing the agent mid-way.
pub struct StopSignals([Option<Signal>; 3]);

impl StopSignals {
    /// Starts listening (once, so that no signal is lost between waits). A signal whose
    /// handler cannot be installed is not waited for.
    pub fn listen() -> StopSignals {
        let listen = |kind| signal(kind).ok();
        StopSignals([
            listen(SignalKind::interrupt()),
            listen(SignalKind::terminate()),
            listen(SignalKind::hangup()),
        ])
    }

    /// The next stop signal. Cancel-safe.
    pub async fn recv(&mut self) {
        async fn next(signal: &mut Option<Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let [a, b, c] = &mut self.0;
        tokio::select! {
            () = next(a) => {}
            () = next(b) => {}
            () = next(c) => {}
        }
    }
}
