//! # ponte-agent
//!
//! The core of the program a customer starts to let an assistant help: waiting for the
//! assistant ([`rendezvous`]), the consent and the session ([`session`]), every request served
//! by one [`dispatch`]er under the live [`grants`], one [`capability`] module per thing the
//! assistant can do, questions one at a time ([`questions`]), the file [`scope`], and the
//! session [`journal`]. Front-ends — the window, the terminal UI and JSON lines, in the
//! `ponte-agent` binary — talk to it only through [`frontend`]'s events and inputs.
//!
//! Against a hostile assistant (a modified viewer sending anything) the promises hold here,
//! on the customer's machine: nothing runs without its grant and stops when the grant is
//! revoked; a "yes" approves only the question shown; everything from the assistant is shown
//! inert; files are written only where the customer can see, safely; the customer sees
//! everything the assistant does, and it is in the log.

#![forbid(unsafe_code)]

pub mod capability;
pub mod config;
pub mod customer;
pub mod desktop;
pub mod dispatch;
pub mod events;
pub mod frontend;
pub mod grants;
pub mod i18n;
pub mod journal;
pub mod own_files;
pub mod process;
pub mod questions;
pub mod quick_access;
pub mod rendezvous;
pub mod scope;
pub mod session;
pub mod transcript;

pub use config::Config;
pub use frontend::{Event, Frontend, Input};

use anyhow::Context as _;

use crate::events::Events;
use crate::grants::LiveGrants;
use crate::i18n::t;
use crate::journal::Journal;
use crate::questions::Questions;

/// Runs the agent until the session ends (or the customer quits waiting); the last event is
/// [`Event::Ended`], or [`Event::Failed`] with the error that is also returned.
pub async fn run(config: Config, frontend: Frontend) -> anyhow::Result<()> {
    let Frontend {
        events: to_frontend,
        inputs,
        injected,
    } = frontend;
    let events = Events::new(to_frontend, Journal::new(config.tr.clone()));
    let questions = Questions::new(events.clone());
    let grants = LiveGrants::new();
    let mut customer = customer::route(
        inputs,
        events.clone(),
        questions.clone(),
        grants.clone(),
        injected.clone(),
        config.opt_ins.clone(),
    );
    let result = async {
        process::adopt_orphans().context("becoming the reaper of the assistant's processes")?;
        let scope = scope::Scope::new(&config.scope, dirs::home_dir(), &config.own_files())
            .with_context(|| format!("the shared folder {}", config.scope.display()))?;
        Ok(
            match rendezvous::pair(&config, &events, &questions, &mut customer).await? {
                None => t!(config.tr, "ended-quit-waiting"),
                Some(paired) => {
                    let parts = session::Parts {
                        events: &events,
                        questions: &questions,
                        grants: &grants,
                        injected,
                    };
                    session::run(&config, scope, paired, parts, &mut customer).await?
                }
            },
        )
    }
    .await;
    match result {
        Ok(reason) => {
            let log = events.journal().path();
            events.emit(Event::Ended { reason, log });
            Ok(())
        }
        Err(e) => {
            // The chain may quote the relay (close reasons): inert.
            events.emit(Event::Failed {
                error: ponte_wire::PeerText::new(format!("{e:#}")),
            });
            Err(e)
        }
    }
}
