//! `clipboard` (under `clipboard`): the assistant reads the text on the customer's clipboard,
//! or puts text on it — each time on a request of theirs, never synchronised by itself. The
//! live list shows each use with its length; the session log keeps the text.
//!
//! X11 selections (the `CLIPBOARD` one, which Ctrl+C and Ctrl+V use) through `arboard`. Text put
//! on the clipboard stays there while the agent runs (the agent owns the selection) or until
//! something else is copied.

use std::sync::{Arc, Mutex};

use ponte_e2e::app::{Capability, MAX_CLIPBOARD, Transfer};
use ponte_session::SecureStream;
use ponte_wire::text::PeerText;

use super::{Context, Decision, Handler, Reason, not_allowed};
use crate::frontend::{Activity, Event, Kind};
use crate::i18n::{Tr, t};

/// The desktop's clipboard, opened on first use and kept for the session: an X11 selection is
/// served by its owner, so the text put on it lives as long as this does.
#[derive(Default, Clone)]
pub struct Board(Arc<Mutex<Option<arboard::Clipboard>>>);

impl Board {
    /// Runs `f` on the clipboard, opening it first if needed (blocking: X11 round trips).
    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut arboard::Clipboard) -> Result<T, arboard::Error> + Send + 'static,
    ) -> Result<T, String> {
        let board = self.0.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut board = board.lock().unwrap_or_else(|e| e.into_inner());
            let clipboard = match board.as_mut() {
                Some(clipboard) => clipboard,
                None => board.insert(arboard::Clipboard::new()?),
            };
            f(clipboard)
        });
        match done.await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl std::fmt::Debug for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Board")
    }
}

/// A clipboard request.
pub enum Clipboard {
    /// Send the customer's clipboard text.
    Get,
    /// Put this text on the customer's clipboard.
    Set(PeerText),
}

impl Handler for Clipboard {
    const GRANT: Capability = Capability::Clipboard;

    fn describe(&self, tr: &Tr) -> String {
        match self {
            Clipboard::Get => t!(tr, "request-clipboard-get"),
            Clipboard::Set(_) => t!(tr, "request-clipboard-set"),
        }
    }

    async fn decide(&mut self, _ctx: &Context, granted: bool) -> Decision {
        match self {
            _ if !granted => not_allowed(Self::GRANT),
            Clipboard::Set(text) if text.len() > MAX_CLIPBOARD => Decision::Refuse(Reason::TooLong),
            _ => Decision::Allow,
        }
    }

    async fn run(self, stream: &mut SecureStream, ctx: &Context) -> anyhow::Result<Activity> {
        let tr = ctx.tr();
        let unavailable = |error: String| anyhow::anyhow!(t!(tr, "clipboard-unavailable", error = error));
        let (to_customer, text) = match self {
            Clipboard::Get => {
                // Nothing copied (or no text among what was) reads as empty text.
                let read = |c: &mut arboard::Clipboard| match c.get_text() {
                    Err(arboard::Error::ContentNotAvailable) => Ok(String::new()),
                    other => other,
                };
                let text = ctx.clipboard.with(read).await.map_err(unavailable)?;
                if text.len() > MAX_CLIPBOARD {
                    anyhow::bail!(
                        "the clipboard holds more than {} KiB of text",
                        MAX_CLIPBOARD / 1024
                    );
                }
                let text = PeerText::new(text);
                stream.send.send(&Transfer::Clipboard(text.clone())).await?;
                (false, text)
            }
            Clipboard::Set(text) => {
                let raw = text.as_raw().to_owned();
                ctx.clipboard
                    .with(move |c| c.set_text(raw))
                    .await
                    .map_err(unavailable)?;
                stream.send.send(&Transfer::Done).await?;
                (true, text)
            }
        };
        let _ = stream.send.finish().await;
        let count = text.as_raw().chars().count() as u64;
        ctx.events.emit(Event::ClipboardText { to_customer, text });
        Ok(Activity {
            kind: Kind::Clipboard,
            text: match to_customer {
                true => t!(tr, "clipboard-put", count = count),
                false => t!(tr, "clipboard-read", count = count),
            },
        })
    }
}
