//! JSON lines for scripts: one object per event on stdout, the first always `ready`; notes go
//! to stderr. Nothing is asked (the core is told the agent is not interactive); Ctrl-C ends.

use std::io::Write as _;

use ponte_e2e::app::Grants;
use serde_json::{Value, json};

use ponte_agent::frontend::{Attempt, Closed, Event, FrontendEnds, Input, Party};
use ponte_agent::i18n::Tr;
use ponte_agent::i18n::phrases;

fn names(grants: Grants) -> Vec<&'static str> {
    grants.list().iter().map(|c| c.name()).collect()
}

/// The JSON object for an event (`None`: not printed).
pub fn to_json(event: &Event, tr: &Tr) -> Option<Value> {
    Some(match event {
        // Nobody is asked in JSON mode, so the end is told once, by `ended`.
        Event::Note(_) | Event::QuickAccess(_) | Event::AccessEnded { .. } => return None,
        Event::Ready {
            session,
            code,
            valid_for,
        } => json!({
            "event": "ready",
            "session_id": session.to_digits(),
            "code": code.digits(),
            "expires_in_secs": valid_for.as_secs(),
        }),
        Event::Attempt(attempt) => {
            let mut v = json!({"event": "attempt", "text": phrases::attempt(tr, attempt)});
            let outcome = match attempt {
                Attempt::Connecting => "connecting",
                Attempt::WrongCode { attempts_left } => {
                    v["attempts_left"] = json!(attempts_left);
                    "wrong_code"
                }
                Attempt::Abandoned => "abandoned",
                Attempt::Failed(reason) => {
                    v["reason"] = json!(reason.to_string());
                    "failed"
                }
                Attempt::TurnedAway(reason) => {
                    v["reason"] = json!(reason.to_string());
                    "turned_away"
                }
                Attempt::Burned => "burned",
                Attempt::Expired => "expired",
                Attempt::NotTrusted(peer) => {
                    v["peer"] = json!(peer.to_string());
                    "not_trusted"
                }
                Attempt::QuickConnecting => "quick_connecting",
                Attempt::QuickFailed(reason) => {
                    if let Some(reason) = reason {
                        v["reason"] = json!(reason.to_string());
                    }
                    "quick_failed"
                }
                Attempt::ResumeFailed(reason) => {
                    v["reason"] = json!(reason.to_string());
                    "resume_failed"
                }
            };
            v["outcome"] = json!(outcome);
            v
        }
        Event::ConsentNeeded {
            peer,
            scope,
            remembered,
        } => json!({
            "event": "consent_needed",
            "peer": peer.to_string(),
            "verified": peer.is_verified(),
            "folder": ponte_wire::PeerText::path(scope).to_string(),
            "remembered": names(*remembered),
        }),
        Event::Connected { peer, granted } => json!({
            "event": "consent",
            "peer": peer.to_string(),
            "verified": peer.is_verified(),
            "granted": names(*granted),
        }),
        Event::Sharing { active, input } => {
            json!({"event": "sharing", "active": active, "input": input})
        }
        Event::Grants(grants) => json!({"event": "grants", "granted": names(*grants)}),
        Event::Question { id, question } => json!({
            "event": "question", "id": id.0, "text": phrases::question(tr, question).join("\n"),
        }),
        Event::QuestionClosed { id, outcome } => json!({
            "event": "question_closed",
            "id": id.0,
            "outcome": match outcome {
                Closed::Answered { allow: true } => "yes",
                Closed::Answered { allow: false } => "no",
                Closed::Withdrawn => "withdrawn",
            },
        }),
        Event::Activity(a) => json!({"event": "activity", "kind": a.kind.name(), "text": a.text}),
        Event::Reconnecting(Some(window)) => {
            json!({"event": "reconnecting", "window_secs": window.as_secs()})
        }
        Event::Reconnecting(None) => json!({"event": "reconnected"}),
        Event::Terminal { terminal, line } => json!({
            "event": "terminal", "terminal": terminal, "line": line.to_string(),
        }),
        // The activity line says the length; the text is in the session log only.
        Event::Transfer { .. } | Event::ClipboardText { .. } => return None,
        Event::Chat { from, text } => json!({
            "event": "chat",
            "from": match from { Party::Assistant => "assistant", Party::Customer => "customer" },
            "text": text.to_string(),
        }),
        Event::Failed { error } => json!({"event": "error", "message": error.to_string()}),
        Event::Ended { reason, log } => json!({
            "event": "ended",
            "reason": reason,
            "log": log.as_ref().map(|p| p.display().to_string()),
        }),
    })
}

/// Runs the JSON front-end until the session has ended.
pub async fn run(ends: FrontendEnds) {
    let FrontendEnds {
        mut events,
        inputs,
        tr,
        ..
    } = ends;
    let mut stop = super::StopSignals::listen();
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                if let Event::Note(text) = &event {
                    eprintln!("ponte-agent: {text}");
                }
                if let Some(value) = to_json(&event, &tr) {
                    let mut out = std::io::stdout().lock();
                    let _ = writeln!(out, "{value}");
                    let _ = out.flush();
                }
                if matches!(event, Event::Ended { .. } | Event::Failed { .. }) {
                    break;
                }
            }
            () = stop.recv() => {
                let _ = inputs.send(Input::End).await;
            }
        }
    }
}
