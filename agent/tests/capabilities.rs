//! The capability handlers' decisions, in process, through the front-end seam
//! (`frontend::channel`): what a hostile assistant asks for is decided as the customer answers
//! in a front end — here the test — with no network, relay or display (desktops are fakes of
//! the desktop seam).

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ponte_agent::capability::files::Get;
use ponte_agent::capability::input;
use ponte_agent::capability::{Context, Decision, Handler, LISTED_REFUSALS, Reason};
use ponte_agent::desktop::{
    Capture, CursorImage, Desktop, DesktopError, DesktopWorker, Image, Indicator, IndicatorText, Injected,
    Injector, Monitor, Monitors, Pointer, Want,
};
use ponte_agent::events::Events;
use ponte_agent::frontend::{self, Activity, Event, FrontendEnds, Input, Kind, Question, Reply};
use ponte_agent::grants::LiveGrants;
use ponte_agent::i18n::{Lang, Tr};
use ponte_agent::journal::Journal;
use ponte_agent::questions::Questions;
use ponte_agent::scope::Scope;
use ponte_e2e::app::{Capability, Grants};
use ponte_e2e::screen::InputEvent;
use ponte_wire::PeerText;

/// A session's core around a shared folder, and the front end's ends.
struct Desk {
    ctx: Context,
    ends: FrontendEnds,
    folder: tempfile::TempDir,
    _customer: ponte_agent::customer::Customer,
}

/// Opens a desktop for the session's worker.
type Open = Box<dyn FnMut() -> anyhow::Result<Box<dyn Desktop>> + Send>;

fn desk(granted: &[Capability]) -> Desk {
    desk_on(granted, Box::new(|| anyhow::bail!("no display in these tests")))
}

fn desk_on(granted: &[Capability], open: Open) -> Desk {
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
    let text = IndicatorText::default();
    let desktop = DesktopWorker::start_with(open, text, grants.subscribe(), core.injected);
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

/// A desktop with capture of two monitors (64×32 and 48×16) that changes only when switched,
/// and input only if it has `injected`: no pointer to read, no indicator of ours — as a
/// Wayland portal, with or without remote input.
struct Portal {
    monitors: Vec<Monitor>,
    current: usize,
    /// The shared monitor changed since the last capture.
    changed: bool,
    pixels: Vec<u8>,
    injected: Option<Arc<Mutex<Vec<InputEvent>>>>,
}

impl Portal {
    fn open(injected: Option<Arc<Mutex<Vec<InputEvent>>>>) -> Open {
        Box::new(move || {
            let monitor = |name: &str, width, height| Monitor {
                name: name.into(),
                x: 0,
                y: 0,
                width,
                height,
            };
            let pixels = vec![0x80; 64 * 32 * 4];
            let injected = injected.clone();
            Ok(Box::new(Portal {
                monitors: vec![monitor("portal", 64, 32), monitor("second", 48, 16)],
                current: 0,
                changed: true,
                pixels,
                injected,
            }))
        })
    }
}

impl Capture for Portal {
    fn monitor(&self) -> &Monitor {
        &self.monitors[self.current]
    }

    fn monitors(&self) -> Monitors {
        Monitors {
            names: self.monitors.iter().map(|m| m.name.clone()).collect(),
            current: self.current,
        }
    }

    fn select(&mut self, index: usize) -> anyhow::Result<()> {
        anyhow::ensure!(
            index < self.monitors.len(),
            "the worker asked for a monitor out of the list"
        );
        self.current = index;
        self.changed = true;
        Ok(())
    }

    fn capture(&mut self, want: Want) -> anyhow::Result<Option<Image<'_>>> {
        if !std::mem::take(&mut self.changed) && want == Want::Changes {
            return Ok(None);
        }
        let m = &self.monitors[self.current];
        Ok(Some(Image {
            width: m.width,
            height: m.height,
            stride: usize::from(m.width) * 4,
            data: &self.pixels,
        }))
    }

    fn cursor_shape(&mut self) -> anyhow::Result<Option<CursorImage>> {
        Ok(None)
    }
}

impl Injector for Portal {
    fn inject(&mut self, event: &InputEvent) -> anyhow::Result<()> {
        if let Some(injected) = &self.injected {
            injected.lock().unwrap().push(event.clone());
        }
        Ok(())
    }

    fn restore_keymap(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}

impl Desktop for Portal {
    fn input(&mut self) -> Option<&mut dyn Injector> {
        match self.injected {
            Some(_) => Some(self),
            None => None,
        }
    }

    fn pointer(&mut self) -> Option<&mut dyn Pointer> {
        None
    }

    fn indicator(&mut self) -> Option<&mut dyn Indicator> {
        None
    }
}

fn click() -> Vec<InputEvent> {
    vec![
        InputEvent::Move { x: 10, y: 20 },
        InputEvent::Button {
            button: 1,
            pressed: true,
        },
        InputEvent::Button {
            button: 1,
            pressed: false,
        },
    ]
}

#[tokio::test]
async fn on_a_view_only_desktop_control_is_refused_plainly_and_the_screen_still_shared() {
    let desk = desk_on(&[Capability::Control], Portal::open(None));
    let mut request = input::Input::new(click());
    let decision = request.decide(&desk.ctx, true).await;
    assert_eq!(
        decision,
        Decision::Refuse(Reason::Desktop(DesktopError::ViewOnly))
    );
    // The assistant is told in English, the customer in their language: both say why.
    assert!(
        Reason::Desktop(DesktopError::ViewOnly)
            .english()
            .contains("view only"),
        "{}",
        Reason::Desktop(DesktopError::ViewOnly).english()
    );
    let local = Reason::Desktop(DesktopError::ViewOnly).local(desk.ctx.tr());
    assert!(local.contains("view only"), "{local}");
    // Input on a screen stream is dropped as such, not injected nowhere.
    let injected = desk.ctx.desktop.inject(click()).await.unwrap();
    assert_eq!(injected, Injected::ViewOnly);

    let opened = desk.ctx.desktop.open().await.unwrap();
    assert!(!opened.input);
    assert_eq!(opened.monitor.name, "portal");
    let encoder = Box::new(ponte_screen::Encoder::new().unwrap());
    let sharing = desk.ctx.desktop.share(1).unwrap();
    let (_, step) = desk
        .ctx
        .desktop
        .step(&sharing, 0, Some(usize::MAX), encoder)
        .await
        .unwrap();
    let step = step.unwrap();
    assert!(
        step.frame.is_some(),
        "the screen of a view-only desktop is not shared"
    );
    assert_eq!(step.pointer, None, "a pointer position made up");
}

#[tokio::test]
async fn a_desktop_with_input_but_no_pointer_or_indicator_takes_the_assistants_input() {
    let injected = Arc::new(Mutex::new(Vec::new()));
    let desk = desk_on(&[Capability::Control], Portal::open(Some(injected.clone())));
    let mut request = input::Input::new(click());
    assert_eq!(request.decide(&desk.ctx, true).await, Decision::Allow);
    assert_eq!(desk.ctx.desktop.inject(click()).await.unwrap(), Injected::Done);
    assert_eq!(*injected.lock().unwrap(), click());

    desk.ctx.grants.set(Grants::NONE);
    let dropped = desk.ctx.desktop.inject(click()).await.unwrap();
    assert_eq!(dropped, Injected::NotAllowed);
    assert_eq!(
        injected.lock().unwrap().len(),
        3,
        "input injected without control"
    );
}

/// The size a step's frame announces, if it has a frame that does.
fn announced_size(step: &ponte_agent::desktop::Step) -> Option<(u16, u16)> {
    match step.frame.as_ref()?.updates.first()? {
        ponte_e2e::screen::ScreenUpdate::Size { width, height } => Some((*width, *height)),
        _ => None,
    }
}

#[tokio::test]
async fn the_assistant_switches_among_the_shared_monitors_and_only_among_them() {
    let desk = desk_on(&[Capability::Screen], Portal::open(None));
    let opened = desk.ctx.desktop.open().await.unwrap();
    assert_eq!(opened.monitors.names, ["portal", "second"]);
    assert_eq!(opened.monitors.current, 0);
    // Two screen streams, each with its encoder, both with the first monitor's picture.
    let (a, b) = (
        desk.ctx.desktop.share(2).unwrap(),
        desk.ctx.desktop.share(2).unwrap(),
    );
    let mut encoders = [(); 2].map(|_| Some(Box::new(ponte_screen::Encoder::new().unwrap())));
    let desktop = &desk.ctx.desktop;
    let step = async |sharing, encoder: &mut Option<Box<ponte_screen::Encoder>>| {
        let (back, step) = desktop
            .step(sharing, 0, Some(usize::MAX), encoder.take().unwrap())
            .await
            .unwrap();
        *encoder = Some(back);
        step.unwrap()
    };
    assert_eq!(announced_size(&step(&a, &mut encoders[0]).await), Some((64, 32)));
    assert_eq!(announced_size(&step(&b, &mut encoders[1]).await), Some((64, 32)));

    // A hostile viewer's index out of the list, and the monitor already shared: nothing.
    for index in [2, 255, usize::MAX, 0] {
        assert_eq!(desktop.select(index).await.unwrap(), None, "{index}");
    }
    let second = desktop.select(1).await.unwrap().expect("switched");
    assert_eq!(
        (second.name.as_str(), second.width, second.height),
        ("second", 48, 16)
    );
    // Both streams show the second monitor, though the desktop told only the first that it
    // changed.
    for (sharing, encoder) in [(&a, 0), (&b, 1)] {
        let shown = step(sharing, &mut encoders[encoder]).await;
        assert_eq!(shown.monitors.current, 1);
        assert_eq!(announced_size(&shown), Some((48, 16)), "stream {encoder}");
    }

    // Without `screen` (the desktop is closed), nothing switches.
    desk.ctx.grants.set(Grants::NONE);
    assert!(desktop.select(0).await.is_err());
}
