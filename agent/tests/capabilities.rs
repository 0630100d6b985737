//! The capability handlers' decisions, in process, through the front-end seam
//! (`frontend::channel`): what a hostile assistant asks for is decided as the customer answers
//! in a front end — here the test — with no network, relay or display.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use ponte_agent::capability::files::Get;
use ponte_agent::capability::{Context, Decision, Handler, LISTED_REFUSALS, Reason};
use ponte_agent::desktop::{DesktopWorker, DisplayOptions};
use ponte_agent::events::Events;
use ponte_agent::frontend::{self, Activity, Event, FrontendEnds, Input, Kind, Question, Reply};
use ponte_agent::grants::LiveGrants;
use ponte_agent::i18n::{Lang, Tr};
use ponte_agent::journal::Journal;
use ponte_agent::questions::Questions;
use ponte_agent::scope::Scope;
use ponte_e2e::app::{Capability, Grants};
use ponte_wire::PeerText;

/// A session's core around a shared folder, and the front end's ends.
struct Desk {
    ctx: Context,
    ends: FrontendEnds,
    folder: tempfile::TempDir,
    _customer: ponte_agent::customer::Customer,
}

fn desk(granted: &[Capability]) -> Desk {
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("invoice.pdf"), b"numbers").unwrap();
    std::fs::create_dir(folder.path().join(".ssh")).unwrap();
    std::fs::write(folder.path().join(".ssh/id_ed25519"), b"secret").unwrap();
    let tr = Arc::new(Tr::new(Lang::En));
    let (core, ends) = frontend::channel(tr.clone());
    let events = Events::new(core.events, Journal::new(tr));
    let questions = Questions::new(events.clone());
    let grants = LiveGrants::new();
    grants.set(granted.iter().copied().collect::<Grants>());
    let customer = ponte_agent::customer::route(
        core.inputs,
        events.clone(),
        questions.clone(),
        grants.clone(),
        core.injected.clone(),
        None,
    );
    customer.activate();
    let scope = Scope::new(folder.path(), None, &[]).unwrap();
    let desktop = DesktopWorker::start(DisplayOptions::default(), grants.subscribe(), core.injected);
    let ctx = Context::new(events, grants, questions, scope, true, desktop, None);
    Desk {
        ctx,
        ends,
        folder,
        _customer: customer,
    }
}

impl Desk {
    /// Decides a download of `path` (as the assistant wrote it) while the customer answers
    /// every question with `reply`; returns the decision and the questions shown.
    async fn get(&mut self, path: &str, reply: Reply) -> (Decision, Vec<Question>) {
        let granted = self.ctx.grants.now().allows(Get::GRANT);
        let mut get = Get::new(PeerText::new(path.to_owned()));
        let decide = get.decide(&self.ctx, granted);
        tokio::pin!(decide);
        let mut asked = Vec::new();
        let decision = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                tokio::select! {
                    decision = &mut decide => break decision,
                    Some(event) = self.ends.events.recv() => {
                        if let Event::Question { id, question } = event {
                            asked.push(question);
                            let answer = Input::Answer { question: id, reply };
                            self.ends.inputs.send(answer).await.unwrap();
                        }
                    }
                }
            }
        })
        .await
        .expect("decided within 10 s");
        (decision, asked)
    }
}

#[tokio::test]
async fn a_download_without_the_grant_is_the_customers_to_allow() {
    let mut desk = desk(&[]);
    let (decision, asked) = desk.get("invoice.pdf", Reply::No).await;
    assert_eq!(decision, Decision::Refuse(Reason::Declined));
    assert!(matches!(asked.as_slice(), [Question::Copy { .. }]), "{asked:?}");
    let (decision, asked) = desk.get("invoice.pdf", Reply::Yes).await;
    assert_eq!(decision, Decision::Allow);
    assert_eq!(asked.len(), 1);
}

#[tokio::test]
async fn the_grant_copies_what_is_plainly_shared_without_a_question() {
    let mut desk = desk(&[Capability::Download]);
    let (decision, asked) = desk.get("invoice.pdf", Reply::No).await;
    assert_eq!(decision, Decision::Allow);
    assert!(asked.is_empty(), "{asked:?}");
}

#[tokio::test]
async fn hidden_files_and_the_world_outside_are_asked_for_even_with_the_grant() {
    let mut desk = desk(&[Capability::Download]);
    let outside = tempfile::NamedTempFile::new().unwrap();
    let escape = format!("{}/../{}", desk.folder.path().display(), outside.path().display());
    for path in [
        ".ssh/id_ed25519",
        "../../../../etc/passwd",
        outside.path().to_str().unwrap(),
        escape.as_str(),
    ] {
        let (decision, asked) = desk.get(path, Reply::No).await;
        assert_ne!(
            decision,
            Decision::Allow,
            "{path} was allowed without the customer"
        );
        // Refused outright (it cannot be copied), or asked and refused by the customer.
        assert!(
            asked.is_empty() || decision == Decision::Refuse(Reason::Declined),
            "{path}: {decision:?} after {asked:?}"
        );
    }
}

#[tokio::test]
async fn a_flood_of_refusals_is_listed_only_up_to_a_point_then_counted() {
    let mut desk = desk(&[]);
    let flood = 3 * LISTED_REFUSALS;
    for n in 1..=flood {
        desk.ctx.refused(format!("refusal {n}"));
    }
    let mut shown = Vec::new();
    while let Ok(event) = desk.ends.events.try_recv() {
        if let Event::Activity(Activity {
            kind: Kind::Refused,
            text,
        }) = event
        {
            shown.push(text);
        }
    }
    let listed: Vec<String> = (1..=LISTED_REFUSALS).map(|n| format!("refusal {n}")).collect();
    assert_eq!(shown[..listed.len()], listed[..]);
    let counts = &shown[listed.len()..];
    assert_eq!(counts.len(), 2, "{counts:#?}");
    assert!(counts[1].contains(&format!("{flood} requests")), "{counts:#?}");
}
