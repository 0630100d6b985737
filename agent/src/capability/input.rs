//! `click` and `type`: a batch of input events, injected through the session's desktop worker
//! like the screen stream's input (indicator, the customer's-mouse-wins pause). Under `control`;
//! refused plainly on a view-only desktop.

use ponte_e2e::app::{Capability, Transfer};
use ponte_e2e::screen::{InputEvent, MAX_EVENTS};
use ponte_session::SecureStream;

use super::{Context, Decision, Handler, Reason, not_allowed};
use crate::desktop::{DesktopError, Injected};
use crate::frontend::{Activity, Kind};
use crate::i18n::{Tr, t};

/// An input request.
pub struct Input {
    events: Vec<InputEvent>,
}

impl Input {
    /// A request to inject `events`.
    pub fn new(events: Vec<InputEvent>) -> Input {
        Input { events }
    }
}

/// The input events as the customer reads them.
pub fn describe(tr: &Tr, events: &[InputEvent]) -> String {
    let parts: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            InputEvent::Move { x, y } => Some(t!(tr, "input-pointer", x = *x, y = *y)),
            InputEvent::Button {
                button,
                pressed: true,
            } => Some(t!(tr, "input-click", button = *button)),
            InputEvent::Key {
                keysym,
                pressed: true,
            } => Some(t!(tr, "input-key", key = format!("{keysym:#x}"))),
            InputEvent::Text(text) => Some(t!(tr, "input-typed", text = text)),
            InputEvent::Button { .. } | InputEvent::Key { .. } => None,
        })
        .collect();
    if parts.is_empty() {
        return t!(tr, "input-release");
    }
    parts.join(", ")
}

impl Handler for Input {
    const GRANT: Capability = Capability::Control;

    fn describe(&self, tr: &Tr) -> String {
        t!(tr, "request-input", what = describe(tr, &self.events))
    }

    async fn decide(&mut self, ctx: &Context, granted: bool) -> Decision {
        if self.events.len() > MAX_EVENTS || !self.events.iter().all(InputEvent::is_valid) {
            Decision::Refuse(Reason::Malformed)
        } else if granted {
            // A desktop that cannot be opened fails as the request runs, saying why.
            match ctx.open_desktop().await {
                Ok(opened) if !opened.input => Decision::Refuse(Reason::Desktop(DesktopError::ViewOnly)),
                _ => Decision::Allow,
            }
        } else {
            not_allowed(Self::GRANT)
        }
    }

    async fn run(self, stream: &mut SecureStream, ctx: &Context) -> anyhow::Result<Activity> {
        let what = describe(ctx.tr(), &self.events);
        match ctx.desktop.inject(self.events).await? {
            Injected::Done => {
                stream.send.send(&Transfer::Done).await?;
                Ok(Activity {
                    kind: Kind::Control,
                    text: t!(ctx.tr(), "input-done", what = &what),
                })
            }
            Injected::LocalInputWins => {
                stream
                    .send
                    .send(&Transfer::Failed("the customer is using the mouse".into()))
                    .await?;
                Ok(Activity {
                    kind: Kind::Control,
                    text: t!(ctx.tr(), "input-paused", what = &what),
                })
            }
            Injected::NotAllowed => anyhow::bail!("the customer has not allowed 'control'"),
            Injected::ViewOnly => anyhow::bail!(DesktopError::ViewOnly),
        }
    }
}
