//! `click` and `type`: a batch of input events, injected through the session's desktop worker
//! like the screen stream's input (indicator, the customer's-mouse-wins pause). Under `control`.

use ponte_protocol::app::{Capability, Transfer};
use ponte_protocol::screen::{InputEvent, MAX_EVENTS};
use ponte_session::SecureStream;

use super::{Context, Decision, Handler, not_allowed};
use crate::desktop::Injected;
use crate::frontend::{Activity, Kind};

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
pub fn describe(events: &[InputEvent]) -> String {
    let parts: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            InputEvent::Move { x, y } => Some(format!("pointer to ({x}, {y})")),
            InputEvent::Button {
                button,
                pressed: true,
            } => Some(format!("button {button} click")),
            InputEvent::Key {
                keysym,
                pressed: true,
            } => Some(format!("key {keysym:#x}")),
            InputEvent::Text(text) => Some(format!("typed \"{text}\"")),
            InputEvent::Button { .. } | InputEvent::Key { .. } => None,
        })
        .collect();
    parts.join(", ")
}

impl Handler for Input {
    const GRANT: Capability = Capability::Control;

    fn describe(&self) -> String {
        format!("use the mouse and keyboard: {}", describe(&self.events))
    }

    async fn decide(&mut self, _: &Context, granted: bool) -> Decision {
        if self.events.len() > MAX_EVENTS || !self.events.iter().all(InputEvent::is_valid) {
            Decision::Refuse("malformed input events".into())
        } else if granted {
            Decision::Allow
        } else {
            not_allowed(Self::GRANT)
        }
    }

    async fn run(self, stream: &mut SecureStream, ctx: &Context) -> anyhow::Result<Activity> {
        let what = describe(&self.events);
        match ctx.desktop.inject(self.events).await? {
            Injected::Done => {
                stream.send.send(&Transfer::Done).await?;
                Ok(Activity {
                    kind: Kind::Control,
                    text: format!("the assistant's input: {what}"),
                })
            }
            Injected::LocalInputWins => {
                stream
                    .send
                    .send(&Transfer::Failed("the customer is using the mouse".into()))
                    .await?;
                Ok(Activity {
                    kind: Kind::Control,
                    text: format!("you moved the mouse: the assistant's input paused ({what})"),
                })
            }
            Injected::NotAllowed => anyhow::bail!("the customer has not allowed 'control'"),
        }
    }
}
