//! Quick access, from the agent's side: the assistant's request during a session is only
//! noted ([`accept`]); the customer is asked ([`ask`]) once the assistant's access has ended,
//! and sets the terms of the opt-in in that question. The opt-ins themselves are kept in
//! [`opt_ins`].

pub mod opt_ins;

use ponte_e2e::app::{Control, Grants, QuickAccessGrant};
use ponte_e2e::identity::PeerIdentity;
use ponte_wire::os_rng;
use ponte_wire::rendezvous::RelayMessage;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::customer::Customer;
use crate::events::Events;
use crate::frontend::{Event, Kind, Question, QuickTerms};
use crate::i18n::t;
use crate::questions::{Answer, Questions};
use opt_ins::{OptIns, Scope as OptInScope};

/// Quick-access requests that are refused at once (a second one, one before consent, one in
/// a session opened by quick access) get an answer each — up to this many in a session; a
/// viewer that sends more (each answer would wait in memory while a viewer that does not read
/// holds the writer) ends the session.
const MAX_QUICK_REFUSALS: u32 = 32;

/// The viewer's quick-access requests in this session.
#[derive(Default)]
pub(crate) struct QuickRequests {
    /// One was answered other than by a refusal for flooding.
    pub(crate) asked: bool,
    /// The one the customer will be asked about once the assistant's access has ended.
    pub(crate) later: Option<QuickRequest>,
    refused: u32,
}

impl QuickRequests {
    /// Answers a request "no" without asking; `false` when the viewer has sent too many.
    pub(crate) fn refuse(&mut self, to_assistant: &mpsc::UnboundedSender<Control>) -> bool {
        self.refused += 1;
        if self.refused > MAX_QUICK_REFUSALS {
            return false;
        }
        let _ = to_assistant.send(Control::QuickAccess(None));
        true
    }
}

/// What the assistant asked for with [`Control::QuickAccessRequest`], once the agent knows it
/// may ask the customer.
#[derive(Clone)]
pub(crate) struct QuickRequest {
    /// The verified assistant who asked.
    peer: PeerIdentity,
    scope: OptInScope,
    /// Whom it would let in, as a sentence, and that key's fingerprint.
    who: String,
    key: String,
    /// The period proposed (at most [`crate::quick_access::opt_ins::DEFAULT_DAYS`]: a longer one the
    /// customer chooses themselves).
    days: u32,
}

/// Whether the customer will be asked about the assistant's quick-access request when the
/// session ends: only for a verified assistant, where someone can be asked and the opt-ins can
/// be kept. The customer sees that it was asked, and when they will be.
pub(crate) fn accept(
    config: &Config,
    events: &Events,
    peer: &PeerIdentity,
    organisation: bool,
    days: u32,
) -> Option<QuickRequest> {
    let tr = events.tr();
    let PeerIdentity::Verified {
        name,
        organisation: their_organisation,
        fingerprint,
        issuer,
        ..
    } = peer
    else {
        events.activity(Kind::Refused, t!(tr, "quick-unverified"));
        return None;
    };
    if config.opt_ins.is_none() || !config.interactive {
        return None;
    }
    let (scope, key) = if organisation {
        (OptInScope::Organisation, issuer)
    } else {
        (OptInScope::Assistant, fingerprint)
    };
    events.activity(Kind::Permissions, t!(tr, "quick-later"));
    Some(QuickRequest {
        peer: peer.clone(),
        scope,
        who: crate::i18n::phrases::quick_who(tr, name, their_organisation, scope),
        key: key.to_string(),
        days: days.clamp(1, crate::quick_access::opt_ins::DEFAULT_DAYS),
    })
}

/// Completes when the relay says the assistant left (or the connection to it goes).
pub(crate) async fn assistant_left(client: &mut ponte_transport::client::RelayClient) {
    while let Ok(message) = client.next().await {
        if matches!(message, RelayMessage::PeerLeft | RelayMessage::Refused(_)) {
            break;
        }
    }
}

/// Puts the assistant's quick-access request to the customer — called only once the
/// assistant's access has ended — and keeps the opt-in on the customer's terms. Returns what
/// the assistant is told (`None`: not allowed). The question is withdrawn when the assistant
/// disconnects (nobody would learn the device) or the customer ends again or closes the
/// window; anything but their explicit yes means no opt-in.
pub(crate) async fn ask(
    config: &Config,
    events: &Events,
    questions: &Questions,
    customer: &mut Customer,
    client: &mut ponte_transport::client::RelayClient,
    request: QuickRequest,
    offered: Grants,
) -> Option<QuickAccessGrant> {
    let tr = events.tr();
    let path = config.opt_ins.clone()?;
    let question = Question::QuickAccess {
        who: request.who.clone(),
        key: request.key.clone(),
        days: request.days,
        grants: offered,
    };
    // An End seen before now ended the session; only a later one (or the window closing)
    // answers this question.
    customer.end.borrow_and_update();
    let left = assistant_left(client);
    let answer = tokio::select! {
        answer = questions.ask(question) => answer,
        _ = customer.end.changed() => Answer::No,
        () = left => {
            events.activity(Kind::Refused, t!(tr, "quick-assistant-left"));
            return None;
        }
    };
    let Answer::Yes(terms) = answer else {
        events.activity(Kind::Refused, t!(tr, "quick-declined"));
        return None;
    };
    // The customer's terms, or the proposal; never more permissions than the session had,
    // and "without asking" only means something with permissions to apply.
    let terms = terms.unwrap_or(QuickTerms {
        days: request.days,
        without_asking: false,
        grants: offered,
    });
    let remembered: Grants = terms
        .grants
        .list()
        .into_iter()
        .filter(|c| offered.allows(*c))
        .collect();
    let without_asking = terms.without_asking && remembered != Grants::NONE;
    let now = ponte_session::now_unix();
    let until = crate::quick_access::opt_ins::ends(now, terms.days);
    let QuickRequest { peer, scope, who, .. } = request;
    let stored = OptIns::update_async(path, move |trusted| {
        let device = trusted.add(
            &peer,
            scope,
            terms.days,
            remembered,
            without_asking,
            now,
            &mut os_rng(),
        )?;
        Ok((device, trusted.entries().to_vec()))
    })
    .await;
    match stored {
        Ok((device, entries)) => {
            events.emit(Event::QuickAccess(entries));
            let mut line = t!(tr, "quick-granted", who = who, until = tr.date_time(until));
            if without_asking {
                line.push_str(&t!(tr, "quick-access-without-asking"));
            }
            events.activity(Kind::Permissions, line);
            Some(QuickAccessGrant {
                device,
                not_after: until,
            })
        }
        Err(e) => {
            events.activity(Kind::Failed, t!(tr, "quick-unavailable", error = e.to_string()));
            None
        }
    }
}
