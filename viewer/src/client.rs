//! A joined session from the assistant's side, with typed operations: exec, shell, get, put,
//! info, screen, input, chat. The CLI, the window, the tests and the benchmarks all use these.
//!
//! Everything the customer's computer sends is hostile input here: strings arrive as
//! [`PeerText`] and are shown inert, files are received through the same checked, link-safe
//! code as on the agent, and every wait for an answer is bounded.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ponte_e2e::app::{Control, EndReason, Grants, ListEntry, QuickAccessGrant, Request, Response, Transfer};
use ponte_e2e::handshake::{Credentials, HandshakeError};
use ponte_e2e::screen::InputEvent;
use ponte_session::connect::{RelayOptions, TrustNote};
use ponte_session::files::{self, Destination, Hidden, Progress, Totals, TransferError};
use ponte_session::{SecureRecv, SecureSend, SecureStream, Session, SessionError};
use ponte_transport::client::{JoinExtras, RelayClient};
use ponte_wire::device::DevicePublic;
use ponte_wire::rendezvous::Refusal;
use ponte_wire::text::PeerText;
use ponte_wire::{OneTimeCode, SessionId};
use tokio::sync::{Mutex, mpsc, watch};

use crate::reply::{self, ClipboardText, CommandOutput, Done, Facts, Listed, Reply, TerminalOutput};
use crate::screen_client::ScreenClient;

/// How long a request waits for the customer's computer to accept or refuse it: longer than
/// the agent gives the customer to answer a question.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(200);

/// How long a short request (info, input) waits for its result once accepted.
const RESULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long an operation whose stream or connection was cut waits for the session's end
/// reason, which may still be on its way on the control stream.
const END_REASON_WAIT: Duration = Duration::from_secs(2);

/// How long the answer that ends a `get` may take to reach the relay before `get` returns:
/// closing the connection right after would discard it.
const ANSWER_FLUSH: Duration = Duration::from_secs(2);

/// How long telling the customer's side why the session ends (an attack on the path, the
/// assistant leaving as a resume completed) may take before the connection is closed anyway
/// (the relay may not pass it on).
const TELL_END: Duration = Duration::from_secs(2);

/// What can go wrong for the assistant.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    /// The code was wrong.
    #[error("wrong code: the customer's computer did not accept it. Ask them to read it again.")]
    WrongCode,
    /// The code was burned.
    #[error(
        "the code was tried wrongly too often and is no longer valid; the customer now sees a new ID and code"
    )]
    Burned,
    /// The relay refused.
    #[error("the relay refused: {0}")]
    Relay(Refusal),
    /// The relay's operator ended the session, saying this.
    #[error("the relay's operator ended the session: \"{0}\"")]
    EndedByOperator(PeerText),
    /// The relay's certificate changed since the last time.
    #[error(
        "WARNING: {0}. Someone may be intercepting the connection; rerun with --accept-new-fingerprint \
         only after the relay's operator confirmed the new fingerprint."
    )]
    FingerprintChanged(SessionError),
    /// The customer's computer refused the request.
    #[error("refused by the customer's computer: {0}")]
    Refused(PeerText),
    /// The customer's computer stopped or failed the request.
    #[error("the customer's computer reports: {0}")]
    Failed(PeerText),
    /// Quick access: whoever answered for the device does not hold its key.
    #[error(
        "the computer that answered is not the customer's device you remembered (its key does not match); \
         nothing was sent to it"
    )]
    WrongDevice,
    /// The session has ended.
    #[error("session ended: {0}")]
    Ended(String),
    /// The customer's computer did not answer in time.
    #[error("the customer's computer did not answer in time")]
    Timeout,
    /// It answered a request with a message that does not answer it (see [`crate::reply`]).
    #[error("unexpected message from the customer's computer (expected {expected})")]
    Unexpected {
        /// What the request waited for.
        expected: &'static str,
    },
    /// A local file problem.
    #[error("{}: {error}", PeerText::path(path))]
    Local {
        /// The file.
        path: std::path::PathBuf,
        /// What happened.
        error: std::io::Error,
    },
    /// A transfer failed.
    #[error(transparent)]
    Transfer(TransferError),
    /// The session failed.
    #[error(transparent)]
    Session(SessionError),
    /// The screen or window failed.
    #[error("{0:#}")]
    Screen(anyhow::Error),
}

impl From<SessionError> for ViewerError {
    fn from(e: SessionError) -> ViewerError {
        match e {
            SessionError::Handshake(HandshakeError::WrongCode) => ViewerError::WrongCode,
            SessionError::Handshake(HandshakeError::Burned) => ViewerError::Burned,
            SessionError::Handshake(HandshakeError::WrongDevice) => ViewerError::WrongDevice,
            e @ SessionError::FingerprintChanged { .. } => ViewerError::FingerprintChanged(e),
            other => match (other.operator_words(), other.refusal()) {
                (Some(words), _) => ViewerError::EndedByOperator(words),
                (None, Some(reason)) => ViewerError::Relay(reason),
                (None, None) => ViewerError::Session(other),
            },
        }
    }
}

impl From<TransferError> for ViewerError {
    fn from(e: TransferError) -> ViewerError {
        match e {
            TransferError::Session(e) => e.into(),
            TransferError::Remote(reason) => ViewerError::Failed(reason),
            other => ViewerError::Transfer(other),
        }
    }
}

/// Space left on the assistant's disk for a download to `local`, keeping a margin: a hostile
/// agent's announcement beyond it fails before anything is written.
fn room_in(local: &Path) -> Totals {
    const MARGIN: u64 = 256 << 20;
    let dir = match local.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let bytes = rustix::fs::statvfs(dir)
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize).saturating_sub(MARGIN))
        .unwrap_or(u64::MAX);
    Totals {
        files: files::MAX_ENTRIES,
        bytes,
    }
}

/// How to join a session.
pub struct JoinOptions {
    /// How to reach and trust the relay.
    pub relay: RelayOptions,
    /// Continue if the relay's certificate changed since the last time.
    pub accept_new_fingerprint: bool,
    /// The session ID the customer read out.
    pub session: SessionId,
    /// The code the customer read out.
    pub code: OneTimeCode,
    /// The assistant's identity.
    pub credentials: Credentials,
    /// What the relay is shown: the operator's credential, a ticket for its ledger.
    pub extras: JoinExtras,
}

/// How to reach a customer's device for quick access (no code: the device's key from the
/// address book, [`crate::devices`]).
pub struct DeviceJoinOptions {
    /// How to reach and trust the relay.
    pub relay: RelayOptions,
    /// Continue if the relay's certificate changed since the last time.
    pub accept_new_fingerprint: bool,
    /// The device's public key.
    pub device: DevicePublic,
    /// The assistant's identity (the customer's opt-in names it or its organisation).
    pub credentials: Credentials,
    /// What the relay is shown: the operator's credential, a ticket for its ledger.
    pub extras: JoinExtras,
}

/// What the viewer knows of the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// What the customer allows; `None` until the customer has answered.
    pub grants: Option<Grants>,
    /// The customer's last answer to [`Viewer::request_quick_access`] (`None`: no, or none yet).
    pub quick_access: Option<QuickAccessGrant>,
    /// How many such requests were sent.
    pub quick_requests: u32,
    /// How many replies to them came: a request waits for one more than there were before
    /// it. The agent replies to each, in order, so a `QuickAccess` beyond them is the
    /// customer's answer after the end.
    pub quick_answers: u32,
    /// The latest reply to a request.
    pub quick_reply: Option<QuickAccessReply>,
    /// The customer will be asked when the session ends; the answer follows the end.
    pub quick_pending: bool,
    /// Why the session ended, once it has.
    pub ended: Option<String>,
    /// The session ended because one side detected an attack on the path between the two
    /// ([`EndReason::Tampered`], which `ended` then says).
    pub tampered: bool,
    /// The connection was lost and the viewer is resuming the session.
    pub reconnecting: bool,
    /// How many times the session was resumed.
    pub resumes: u32,
    /// How long the customer's agent waits to be resumed after a lost connection, as it said
    /// (`None`: not said; [`ponte_session::resume::DEFAULT_WINDOW`] is assumed).
    pub resume_window: Option<Duration>,
}

/// The reply to [`Viewer::request_quick_access`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuickAccessReply {
    /// The customer will be asked once the session has ended (when the assistant can no longer
    /// act on their computer); [`Viewer::quit`] waits for the answer and returns it.
    Later,
    /// The customer's computer will not ask (an unverified assistant, a second request, a
    /// session opened by quick access, nobody there to ask).
    Refused,
    /// Allowed at once (only an older or modified agent answers so).
    Allowed(QuickAccessGrant),
}

/// How long the viewer waits, after the session's end, for the customer's answer to a quick
/// access request: the agent gives them three minutes from when the question is shown.
const QUICK_ANSWER_WAIT: Duration = Duration::from_secs(240);

/// How often a transfer cut by a lost connection starts again after a resume.
const MAX_RESTARTS: u32 = 3;

/// Whether `error` is a stream or connection cut (not an answer of the customer's side).
fn cut(error: &ViewerError) -> bool {
    matches!(
        error,
        ViewerError::Session(SessionError::Read(_) | SessionError::Write(_) | SessionError::Connection(_))
            | ViewerError::Relay(Refusal::PeerLost | Refusal::ShuttingDown)
    )
}

/// What the customer's side says on the control stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The permissions now.
    Grants(Grants),
    /// A chat message from the customer.
    Chat(PeerText),
    /// The connection was lost and the session is being resumed (`true`), or it was resumed
    /// (`false`): the customer's permissions follow.
    Reconnecting(bool),
    /// The session ended (after an attack on the path, with [`EndReason::Tampered`]'s text).
    Ended(String),
}

/// The longest the viewer tries to resume a session whose connection was lost, whatever the
/// agent says (the longest an agent can be told to wait).
const MAX_RESUME_WINDOW: Duration = Duration::from_secs(3600);

/// How to reach the relay again to resume the session.
struct Reconnect {
    relay: RelayOptions,
    extras: JoinExtras,
    /// The line to the relay of the latest resume (kept open for the session).
    client: Option<RelayClient>,
}

/// A joined session.
pub struct Viewer {
    _client: RelayClient,
    session: Session,
    control: Arc<Mutex<SecureSend>>,
    state: watch::Receiver<State>,
    ended_tx: watch::Sender<State>,
    notices: Option<mpsc::UnboundedReceiver<Notice>>,
    /// The control stream's follower, which alone ends a session that was attacked.
    follower: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// An interactive terminal on the customer's computer. It survives a resume of the session:
/// the customer's shell waits, and the terminal goes on with it on the resumed connection, the
/// output of the gap first.
pub struct Terminal {
    stream: SecureStream,
    link: Link,
    /// Its number in the session, which the customer's computer says first.
    number: Option<u64>,
    /// A first message that was not the number (an older or hostile agent's), for `output`.
    first: Option<Transfer>,
    /// The session's resumes when this stream was opened.
    resumes: u32,
}

impl Terminal {
    /// Keystrokes.
    pub async fn input(&mut self, bytes: Vec<u8>) -> Result<(), ViewerError> {
        self.send(&Transfer::Input(bytes)).await
    }

    /// The local terminal changed size.
    pub async fn resize(&mut self, cols: u16, rows: u16) -> Result<(), ViewerError> {
        self.send(&Transfer::Resize { cols, rows }).await
    }

    /// Closes the terminal (the shell and everything it started end).
    pub async fn close(&mut self) -> Result<(), ViewerError> {
        Ok(self.stream.send.finish().await?)
    }

    /// The next output. Cancel-safe.
    pub async fn output(&mut self) -> Result<TerminalOutput, ViewerError> {
        if let Some(first) = self.first.take() {
            return reply::decode(first);
        }
        loop {
            match self.stream.recv.recv::<Transfer>().await {
                Ok(Some(Transfer::Terminal(number))) => self.number = Some(number),
                Ok(Some(message)) => return reply::decode(message),
                Ok(None) => return Ok(TerminalOutput::Exit(None)),
                Err(e) => self.reattach(e).await?,
            }
        }
    }

    async fn send(&mut self, message: &Transfer) -> Result<(), ViewerError> {
        if let Err(e) = self.stream.send.send(message).await {
            self.reattach(e).await?;
            self.stream.send.send(message).await?;
        }
        Ok(())
    }

    /// The stream failed with `error`: if a resume cut it, goes on with the same shell on the
    /// resumed session; otherwise the error, explained.
    async fn reattach(&mut self, error: SessionError) -> Result<(), ViewerError> {
        let Some(terminal) = self.number else {
            return Err(self.link.explain(error).await);
        };
        if !self.link.resumed_since(self.resumes).await {
            return Err(self.link.explain(error).await);
        }
        self.resumes = self.link.state.borrow().resumes;
        self.stream = self.link.request(&Request::Reattach { terminal }).await?;
        Ok(())
    }
}

/// Connects to the relay, finds the customer's device by its tag and runs the
/// key-authenticated handshake: no code, and only the device that holds the key answers. The
/// customer must have started the agent; otherwise the relay knows no such device.
pub async fn join_device(options: DeviceJoinOptions) -> Result<(Viewer, TrustNote), ViewerError> {
    let (mut client, note) =
        ponte_session::connect::connect(&options.relay, options.accept_new_fingerprint).await?;
    let session = client
        .join_device(options.device.tag(), &options.extras)
        .await
        .map_err(SessionError::from)?;
    let (session, control) =
        ponte_session::handshake::viewer_key(&client, session, options.device, &options.credentials).await?;
    let reconnect = Reconnect {
        relay: options.relay,
        extras: options.extras,
        client: None,
    };
    Ok((Viewer::new(client, session, control, reconnect), note))
}

/// Connects to the relay, joins the session and runs the handshake.
pub async fn join(options: JoinOptions) -> Result<(Viewer, TrustNote), ViewerError> {
    let (mut client, note) =
        ponte_session::connect::connect(&options.relay, options.accept_new_fingerprint).await?;
    client
        .join_with(options.session, &options.extras)
        .await
        .map_err(SessionError::from)?;
    let (session, control) =
        ponte_session::handshake::viewer(&client, options.session, options.code, &options.credentials)
            .await?;
    let reconnect = Reconnect {
        relay: options.relay,
        extras: options.extras,
        client: None,
    };
    Ok((Viewer::new(client, session, control, reconnect), note))
}

impl Viewer {
    fn new(client: RelayClient, session: Session, control: SecureStream, reconnect: Reconnect) -> Viewer {
        let SecureStream { send, recv, .. } = control;
        let control = Arc::new(Mutex::new(send));
        let (state_tx, state) = watch::channel(State::default());
        let (notices_tx, notices) = mpsc::unbounded_channel();
        let follower = ControlFollower {
            recv,
            session: session.clone(),
            // Weak: a dropped `Viewer` drops (and so resets) the control stream, which tells
            // the customer's side the assistant left.
            to_customer: Arc::downgrade(&control),
            state: state_tx.clone(),
            notices: notices_tx,
            reconnect,
        };
        let follower = tokio::spawn(follower.run());
        Viewer {
            _client: client,
            session,
            control,
            state,
            ended_tx: state_tx,
            notices: Some(notices),
            follower: std::sync::Mutex::new(Some(follower)),
        }
    }

    /// What the viewer knows now.
    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// Follows the state (for a window).
    pub fn watch(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    /// The customer's notices (grants, chat, end), for a front-end to show; once.
    pub fn notices(&mut self) -> Option<mpsc::UnboundedReceiver<Notice>> {
        self.notices.take()
    }

    /// Waits until the customer answered the consent question (or the session ended), at most
    /// `limit`; returns the grants.
    pub async fn consent(&self, limit: Duration) -> Option<Grants> {
        let mut state = self.state.clone();
        let answered = state.wait_for(|s| s.grants.is_some() || s.ended.is_some());
        match tokio::time::timeout(limit, answered).await {
            Ok(Ok(s)) => s.grants,
            _ => None,
        }
    }

    /// Asks the customer to let this assistant (or, with `organisation`, any verified
    /// assistant of its organisation) reconnect without a code for `days` days. The customer's
    /// computer says at once whether it will ask ([`QuickAccessReply::Later`]: when the session
    /// has ended, so nothing the assistant runs can answer for the customer) or not.
    pub async fn request_quick_access(
        &self,
        organisation: bool,
        days: u32,
    ) -> Result<QuickAccessReply, ViewerError> {
        let before = {
            let state = self.state.borrow();
            if let Some(reason) = state.ended.clone() {
                return Err(ViewerError::Ended(reason));
            }
            state.quick_answers
        };
        // Counted before it is sent: its reply may come back at once.
        self.ended_tx
            .send_modify(|s| s.quick_requests = s.quick_requests.saturating_add(1));
        let sent = self
            .control
            .lock()
            .await
            .send(&Control::QuickAccessRequest { organisation, days })
            .await;
        if let Err(e) = sent {
            // Not sent: no reply will come for it.
            self.ended_tx
                .send_modify(|s| s.quick_requests = s.quick_requests.saturating_sub(1));
            return Err(self.explain(e).await);
        }
        let mut state = self.state.clone();
        // An earlier answer (or one the agent sent unasked) is not this request's.
        let answered = state.wait_for(|s| s.quick_answers > before || s.ended.is_some());
        // The watch cannot close while waiting: `self` holds a sender.
        if tokio::time::timeout(RESPONSE_TIMEOUT, answered).await.is_err() {
            return Err(ViewerError::Timeout);
        }
        let state = self.state();
        if state.quick_answers > before {
            Ok(state.quick_reply.unwrap_or(QuickAccessReply::Refused))
        } else {
            Err(ViewerError::Ended(state.ended.unwrap_or_default()))
        }
    }

    /// The end-to-end session, for raw streams.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Sends a request and waits for the customer's computer to accept it; the stream then
    /// carries the request's messages.
    pub async fn request(&self, request: &Request) -> Result<SecureStream, ViewerError> {
        self.link().request(request).await
    }

    /// See [`Link::explain`].
    async fn explain(&self, e: SessionError) -> ViewerError {
        self.link().explain(e).await
    }

    /// See [`Link::resumed_since`].
    async fn resumed_since(&self, resumes: u32) -> bool {
        self.link().resumed_since(resumes).await
    }

    /// What requests go through.
    fn link(&self) -> Link {
        Link {
            session: self.session.clone(),
            state: self.state.clone(),
        }
    }

    /// The next message of a request, as the request's kind of answer, or why there is none.
    async fn reply<R: Reply>(&self, stream: &mut SecureStream) -> Result<R, ViewerError> {
        match stream.recv.expect::<Transfer>().await {
            Ok(message) => reply::decode(message),
            Err(e) => Err(self.explain(e).await),
        }
    }

    /// Sends a short request and waits for its one answer.
    async fn short<R: Reply>(&self, request: &Request) -> Result<R, ViewerError> {
        let mut stream = self.request(request).await?;
        tokio::time::timeout(RESULT_TIMEOUT, self.reply(&mut stream))
            .await
            .map_err(|_| ViewerError::Timeout)?
    }

    /// Runs a command; `output` gets its output as it comes (`true`: standard error). Returns
    /// the exit status (`None`: killed by a signal).
    pub async fn exec(
        &self,
        command: &str,
        mut output: impl FnMut(bool, &[u8]),
    ) -> Result<Option<i32>, ViewerError> {
        let mut stream = self
            .request(&Request::Exec {
                command: command.into(),
            })
            .await?;
        loop {
            match self.reply(&mut stream).await? {
                CommandOutput::Output { stderr, data } => output(stderr, &data),
                CommandOutput::Exit(code) => return Ok(code),
            }
        }
    }

    /// Opens a terminal of this size.
    pub async fn shell(&self, cols: u16, rows: u16) -> Result<Terminal, ViewerError> {
        let resumes = self.state.borrow().resumes;
        let mut stream = self.request(&Request::Shell { cols, rows }).await?;
        let (number, first) = match tokio::time::timeout(RESULT_TIMEOUT, stream.recv.recv::<Transfer>()).await
        {
            Ok(Ok(Some(Transfer::Terminal(number)))) => (Some(number), None),
            Ok(Ok(Some(other))) => (None, Some(other)),
            Ok(Ok(None)) => (None, Some(Transfer::Exit(None))),
            Ok(Err(e)) => return Err(self.explain(e).await),
            Err(_) => return Err(ViewerError::Timeout),
        };
        Ok(Terminal {
            stream,
            link: self.link(),
            number,
            first,
            resumes,
        })
    }

    /// Copies `remote` from the customer's computer to `local` (replacing only with `force`,
    /// and then never through a symbolic link).
    pub async fn get(
        &self,
        remote: &str,
        local: &Path,
        force: bool,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Totals, ViewerError> {
        let local_error = |error| ViewerError::Local {
            path: local.to_owned(),
            error,
        };
        if !force && std::fs::symlink_metadata(local).is_ok() {
            return Err(local_error(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "already exists (use get -f to replace it)",
            )));
        }
        if let Some(parent) = local.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(local_error)?;
        }
        // Nothing of a cut transfer stays (its partial file is removed): after a resume it
        // starts again, whole, and is verified end to end as always.
        let mut restarts = 0;
        loop {
            let resumes = self.state.borrow().resumes;
            match self.get_once(remote, local, force, progress).await {
                Err(e) if restarts < MAX_RESTARTS && cut(&e) && self.resumed_since(resumes).await => {
                    restarts += 1;
                }
                Err(e) => return Err(self.explain_viewer(e).await),
                Ok(totals) => return Ok(totals),
            }
        }
    }

    /// An error explained like [`Viewer::explain`] when the session failed.
    async fn explain_viewer(&self, e: ViewerError) -> ViewerError {
        match e {
            ViewerError::Session(e) => self.explain(e).await,
            other => other,
        }
    }

    /// One try of [`Viewer::get`]; its errors unexplained.
    async fn get_once(
        &self,
        remote: &str,
        local: &Path,
        force: bool,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Totals, ViewerError> {
        let mut stream = self.request(&Request::Get { path: remote.into() }).await?;
        let destination = Destination {
            path: local,
            kind: None,
            replace: force,
            limit: Some(room_in(local)),
            guard: &files::no_guard,
        };
        let received = files::receive_into(&mut stream.recv, destination, progress).await;
        // The customer's computer reports the transfer done only on this answer: the files
        // are verified and in place here (or why not). After an attack nothing more is sent.
        let answer = match &received {
            Ok(_) => Some(Transfer::Done),
            Err(TransferError::Remote(_)) => None,
            Err(_) if self.session.attack().is_some() => None,
            Err(e) => Some(Transfer::Failed(e.to_string().into())),
        };
        if let Some(answer) = answer
            && stream.send.send(&answer).await.is_ok()
            && stream.send.finish().await.is_ok()
        {
            stream.send.flushed(ANSWER_FLUSH).await;
        }
        Ok(received?)
    }

    /// Copies `local` to `remote` on the customer's computer (replacing only with `force`).
    pub async fn put(
        &self,
        local: &Path,
        remote: &str,
        force: bool,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<Totals, ViewerError> {
        let measured = files::measure(local, Hidden::Include).await?;
        // As for `get`: a cut upload left nothing on the customer's computer (its partial file
        // is removed there), so after a resume it is sent again, whole. Had it been put in
        // place just before the cut, the new one meets the file as any upload does (without
        // `force` it is refused as existing): the refusal then says what probably happened.
        let mut restarts = 0;
        loop {
            let resumes = self.state.borrow().resumes;
            match self.put_once(local, remote, force, &measured, progress).await {
                Err(e) if restarts < MAX_RESTARTS && cut(&e) && self.resumed_since(resumes).await => {
                    restarts += 1;
                }
                Err(ViewerError::Refused(reason)) if restarts > 0 => {
                    return Err(ViewerError::Failed(PeerText::new(format!(
                        "{} (the connection was lost as the upload was completing, so it may be \
                         in place already; put -f replaces it)",
                        reason.as_raw()
                    ))));
                }
                Err(e) => return Err(self.explain_viewer(e).await),
                Ok(()) => return Ok(measured.totals),
            }
        }
    }

    /// One try of [`Viewer::put`]; its errors unexplained.
    async fn put_once(
        &self,
        local: &Path,
        remote: &str,
        force: bool,
        measured: &files::Measured,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), ViewerError> {
        let request = Request::Put {
            path: remote.into(),
            kind: measured.kind,
            files: measured.totals.files,
            total_bytes: measured.totals.bytes,
            overwrite: force,
        };
        let mut stream = self.request(&request).await?;
        if let Err(e) = files::send_path(&mut stream.send, local, Hidden::Include, None, progress).await {
            if self.session.attack().is_none() {
                // Tell the customer's computer to discard what arrived.
                let _ = stream.send.send(&Transfer::Failed(e.to_string().into())).await;
                let _ = stream.send.finish().await;
                // It may have failed first, with the better reason.
                if let Ok(Ok(Transfer::Failed(reason))) =
                    tokio::time::timeout(Duration::from_secs(2), stream.recv.expect::<Transfer>()).await
                {
                    return Err(ViewerError::Failed(reason));
                }
            }
            return Err(e.into());
        }
        stream.send.finish().await?;
        // Sent is not done: the customer's computer verifies, puts the files in place, and
        // only then says so.
        Ok(files::confirmed(&mut stream.recv).await?)
    }

    /// The customer's system information.
    pub async fn info(&self) -> Result<Vec<(PeerText, PeerText)>, ViewerError> {
        let Facts(facts) = self.short(&Request::Info).await?;
        Ok(facts)
    }

    /// Lists the folder at `path` on the customer's computer (relative paths are in its shared
    /// folder: `.` is the folder itself): its entries in name order, at most
    /// [`MAX_LISTING`](ponte_e2e::app::MAX_LISTING) — a longer listing, which only a broken or
    /// hostile agent sends, fails.
    pub async fn list(&self, path: &str) -> Result<Vec<ListEntry>, ViewerError> {
        let mut stream = self.request(&Request::List { path: path.into() }).await?;
        let mut entries = Vec::new();
        let listed = tokio::time::timeout(RESULT_TIMEOUT, async {
            loop {
                match self.reply(&mut stream).await? {
                    Listed::Entries(more) => entries.extend(more),
                    Listed::Done => return Ok(()),
                }
                if entries.len() > ponte_e2e::app::MAX_LISTING {
                    return Err(ViewerError::Unexpected {
                        expected: "at most 10000 entries",
                    });
                }
            }
        });
        listed.await.map_err(|_| ViewerError::Timeout)??;
        Ok(entries)
    }

    /// The text on the customer's clipboard (with `clipboard` granted). Peer text: shown
    /// inert; its raw form is what the customer copied.
    pub async fn clipboard(&self) -> Result<PeerText, ViewerError> {
        let ClipboardText(text) = self.short(&Request::ClipboardGet).await?;
        Ok(text)
    }

    /// Puts `text` on the customer's clipboard (with `clipboard` granted; at most
    /// [`MAX_CLIPBOARD`](ponte_e2e::app::MAX_CLIPBOARD) bytes).
    pub async fn set_clipboard(&self, text: &str) -> Result<(), ViewerError> {
        let Done = self.short(&Request::ClipboardSet { text: text.into() }).await?;
        Ok(())
    }

    /// Starts receiving the customer's screen.
    pub async fn screen(&self, max_fps: u8) -> Result<ScreenClient, ViewerError> {
        let stream = self.request(&Request::Screen { max_fps }).await?;
        ScreenClient::start(stream, self.link(), max_fps).map_err(ViewerError::Screen)
    }

    /// Injects input events (click, type) on the customer's computer.
    pub async fn input(&self, events: Vec<InputEvent>) -> Result<(), ViewerError> {
        let Done = self.short(&Request::Input(events)).await?;
        Ok(())
    }

    /// Sends a chat message.
    pub async fn chat(&self, text: &str) -> Result<(), ViewerError> {
        let sent = self
            .control
            .lock()
            .await
            .send(&Control::Chat { text: text.into() })
            .await;
        match sent {
            Ok(()) => Ok(()),
            Err(e) => Err(self.explain(e).await),
        }
    }

    /// Ends the session from the assistant's side. With a quick-access request the customer
    /// will be asked about, it waits for their answer (a few minutes at most) and returns it
    /// (`None`: no, or no such request).
    pub async fn quit(&self) -> Option<QuickAccessGrant> {
        if self.session.attack().is_some() {
            // The follower tells the customer's side of the attack — the only thing sent after
            // it — and closes the connection; saying "the assistant ended" first, or closing
            // under it, would hide the attack from the customer. It is given that long.
            let follower = self.follower.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(mut follower) = follower
                && tokio::time::timeout(2 * TELL_END, &mut follower).await.is_err()
            {
                follower.abort();
            }
            self.session.connection().close(0u32.into(), b"quit");
            return None;
        }
        let mut already = true;
        self.ended_tx.send_modify(|s| {
            if s.ended.is_none() {
                s.ended = Some("you ended the session".into());
                already = false;
            }
        });
        if !already {
            let mut control = self.control.lock().await;
            let _ = control.send(&Control::End(EndReason::AssistantEnded)).await;
            let _ = control.finish().await;
            control.flushed(Duration::from_secs(5)).await;
        }
        let mut state = self.state.clone();
        let _ = tokio::time::timeout(QUICK_ANSWER_WAIT, state.wait_for(|s| !s.quick_pending)).await;
        self.session.connection().close(0u32.into(), b"quit");
        self.state().quick_access
    }
}

/// The session and what the viewer knows of it: what every request, and a terminal going on
/// after a resume, goes through.
#[derive(Clone)]
pub(crate) struct Link {
    session: Session,
    state: watch::Receiver<State>,
}

impl Link {
    /// How many times the session was resumed.
    pub(crate) fn resumes(&self) -> u32 {
        self.state.borrow().resumes
    }

    /// Sends a request and waits for the customer's computer to accept it; the stream then
    /// carries the request's messages.
    pub(crate) async fn request(&self, request: &Request) -> Result<SecureStream, ViewerError> {
        // A request made while the session is being resumed goes on the resumed connection.
        let mut state = self.state.clone();
        let _ = tokio::time::timeout(MAX_RESUME_WINDOW, state.wait_for(|s| !s.reconnecting)).await;
        if let Some(reason) = self.state.borrow().ended.clone() {
            return Err(ViewerError::Ended(reason));
        }
        let opened = async {
            let mut stream = self.session.open().await?;
            stream.send.send(request).await?;
            Ok(stream)
        };
        let mut stream = match opened.await {
            Ok(stream) => stream,
            Err(e) => return Err(self.explain(e).await),
        };
        let response = tokio::time::timeout(RESPONSE_TIMEOUT, stream.recv.expect::<Response>())
            .await
            .map_err(|_| ViewerError::Timeout)?;
        match response {
            Ok(Response::Accepted) => Ok(stream),
            Ok(Response::Refused(reason)) => Err(ViewerError::Refused(reason)),
            Err(e) => Err(self.explain(e).await),
        }
    }

    /// The error of an operation, or the session's end when that is why it failed: an attack on
    /// the path this side detected, or the reason the session ended — waited for a moment when a
    /// stream or the connection was cut, as the reason may still be on its way.
    async fn explain(&self, e: SessionError) -> ViewerError {
        if self.session.attack().is_some() {
            return ViewerError::Ended(EndReason::Tampered.to_string());
        }
        let cut = matches!(
            e,
            SessionError::Read(_) | SessionError::Write(_) | SessionError::Connection(_)
        );
        let mut state = self.state.clone();
        let ended = state.wait_for(|s| s.ended.is_some());
        let wait = if cut { END_REASON_WAIT } else { Duration::ZERO };
        match tokio::time::timeout(wait, ended).await {
            Ok(Ok(s)) => ViewerError::Ended(s.ended.clone().unwrap_or_default()),
            _ => e.into(),
        }
    }

    /// Whether the session was resumed since it had been resumed `resumes` times: after a
    /// cut, waits for the follower to notice, then for the resume to finish.
    pub(crate) async fn resumed_since(&self, resumes: u32) -> bool {
        let mut state = self.state.clone();
        let noticed = state.wait_for(|s| s.reconnecting || s.resumes > resumes || s.ended.is_some());
        if tokio::time::timeout(END_REASON_WAIT, noticed).await.is_err() {
            return false;
        }
        let _ = tokio::time::timeout(MAX_RESUME_WINDOW, state.wait_for(|s| !s.reconnecting)).await;
        let now = self.state.borrow();
        now.resumes > resumes && now.ended.is_none()
    }
}

/// Why the session ended, as the control stream (or an attack) told.
struct End {
    /// What the assistant is shown.
    reason: String,
    /// One side detected an attack on the path.
    tampered: bool,
}

impl End {
    fn new(reason: impl Into<String>, tampered: bool) -> End {
        End {
            reason: reason.into(),
            tampered,
        }
    }
}

/// The task that follows the customer's side on the control stream, for as long as the
/// session lasts and a moment after: grants, chat and quick-access replies become the
/// [`State`] and [`Notice`]s, then the end.
struct ControlFollower {
    recv: SecureRecv,
    session: Session,
    to_customer: Weak<Mutex<SecureSend>>,
    state: watch::Sender<State>,
    notices: mpsc::UnboundedSender<Notice>,
    reconnect: Reconnect,
}

impl ControlFollower {
    async fn run(mut self) {
        let mut end = self.until_end().await;
        // The relay's operator ended it: however that was noticed first (a stream the relay
        // cut, say), the assistant hears that and the operator's words.
        if let Some(words) = self.session.operator_words() {
            end = End::new(ViewerError::EndedByOperator(words).to_string(), false);
        }
        self.ended(end);
        if self.session.attack().is_some() {
            self.tell_tampered().await;
            // Nothing more is taken from the customer's side: no quick-access answer.
            self.state.send_modify(|s| answered(s, None));
        } else if self.state.borrow().quick_pending {
            let grant = tokio::time::timeout(QUICK_ANSWER_WAIT, self.quick_answer())
                .await
                .unwrap_or(None);
            self.state.send_modify(|s| answered(s, grant));
        }
        self.session.connection().close(0u32.into(), b"session ended");
    }

    /// Takes the customer's side's messages until the session ends.
    async fn until_end(&mut self) -> End {
        loop {
            let message = tokio::select! {
                // Any stream of the session, this one included, may detect an attack.
                _ = self.session.attacked() => return End::new(EndReason::Tampered.to_string(), true),
                message = self.recv.recv::<Control>() => message,
            };
            match message {
                Ok(Some(message)) => {
                    if let Some(end) = self.take(message) {
                        return end;
                    }
                }
                Ok(None) => return End::new("the customer's side closed the session", false),
                // An error after an attack on another stream (a relay that flips a record, then
                // closes) ends the session as attacked: an attacked session is never resumed.
                Err(e) if e.is_attack() || self.session.attack().is_some() => {
                    return End::new(EndReason::Tampered.to_string(), true);
                }
                Err(e)
                    if e.resumable() && self.state.borrow().grants.is_some() && !self.window().is_zero() =>
                {
                    if let Err(end) = self.resume().await {
                        return end;
                    }
                }
                Err(e) if e.relay_silent() => {
                    return End::new(
                        "the relay stopped answering: the relay, or its node of a cluster, may be down (connect again; another node may answer)",
                        false,
                    );
                }
                Err(e) => return End::new(format!("connection lost ({e})"), false),
            }
        }
    }

    /// How long the customer's agent waits to be resumed (see [`State::resume_window`]).
    fn window(&self) -> Duration {
        self.state
            .borrow()
            .resume_window
            .unwrap_or(ponte_session::resume::DEFAULT_WINDOW)
    }

    /// The connection was lost: finds the customer's agent again under the session's resume
    /// tag and goes on with a new control stream, or says why the session ended.
    async fn resume(&mut self) -> Result<(), End> {
        self.state.send_modify(|s| s.reconnecting = true);
        let _ = self.notices.send(Notice::Reconnecting(true));
        let resumed = self.reconnect().await;
        // Both at once: a waiting request or terminal sees the resume counted as it goes on.
        self.state.send_modify(|s| {
            s.reconnecting = false;
            s.resumes += u32::from(resumed.is_ok());
        });
        if resumed.is_ok() {
            let _ = self.notices.send(Notice::Reconnecting(false));
        }
        resumed
    }

    /// The resume itself, for [`ControlFollower::resume`], which publishes how it went.
    async fn reconnect(&mut self) -> Result<(), End> {
        let you_quit = || End::new("you ended the session", false);
        let window = self.window();
        let deadline = tokio::time::Instant::now() + window;
        let mut state = self.state.subscribe();
        let Reconnect { relay, extras, .. } = &self.reconnect;
        let resumed = tokio::select! {
            resumed = ponte_session::resume::viewer(relay, extras, &self.session, deadline) => resumed,
            // The assistant quit during the gap: nothing is resumed.
            _ = state.wait_for(|s| s.ended.is_some()) => return Err(you_quit()),
            _ = self.session.attacked() => return Err(End::new(EndReason::Tampered.to_string(), true)),
        };
        let resumed = resumed.map_err(|e| match e {
            ponte_session::SessionError::CustomerEnded => {
                End::new(EndReason::CustomerEnded.to_string(), false)
            }
            e => End::new(
                format!(
                    "the connection was lost and the session could not be resumed within {} s ({e})",
                    window.as_secs()
                ),
                false,
            ),
        })?;
        let SecureStream { mut send, recv, .. } = resumed.control;
        self.reconnect.client = Some(resumed.client);
        let quit = self.state.borrow().ended.is_some();
        let control = self.to_customer.upgrade().filter(|_| !quit);
        let Some(control) = control else {
            // The assistant left as the resume completed: the customer's side hears it now.
            if send.send(&Control::End(EndReason::AssistantEnded)).await.is_ok()
                && send.finish().await.is_ok()
            {
                send.flushed(TELL_END).await;
            }
            return Err(you_quit());
        };
        self.recv = recv;
        *control.lock().await = send;
        Ok(())
    }

    /// One message of the customer's side before the end; `Some` when it ends the session.
    fn take(&self, message: Control) -> Option<End> {
        match message {
            Control::Grants(g) => {
                self.state.send_modify(|s| s.grants = Some(g));
                let _ = self.notices.send(Notice::Grants(g));
            }
            Control::Chat { text } => {
                let _ = self.notices.send(Notice::Chat(text));
            }
            Control::QuickAccess(grant) => self.state.send_modify(|s| {
                if s.quick_pending && s.quick_answers >= s.quick_requests {
                    // The customer's answer, after the end.
                    answered(s, grant);
                } else {
                    // A reply to a request (a refusal, unless the agent allows at once).
                    replied(
                        s,
                        grant.map_or(QuickAccessReply::Refused, QuickAccessReply::Allowed),
                    );
                }
            }),
            // Only as the reply to a request of ours: an unasked one would hold `quit` for
            // minutes.
            Control::QuickAccessLater => self.state.send_modify(|s| {
                if s.quick_answers < s.quick_requests {
                    s.quick_pending = true;
                    replied(s, QuickAccessReply::Later);
                }
            }),
            Control::ResumeWindow { secs } => self.state.send_modify(|s| {
                s.resume_window = Some(Duration::from_secs(secs.into()).min(MAX_RESUME_WINDOW));
            }),
            // Only the assistant asks for quick access.
            Control::QuickAccessRequest { .. } => {}
            Control::End(reason) => return Some(End::new(reason.to_string(), reason == EndReason::Tampered)),
        }
        None
    }

    /// Records the end, unless the assistant ended the session first, and tells the front-end.
    fn ended(&self, end: End) {
        let mut first = false;
        self.state.send_modify(|s| {
            if s.ended.is_none() {
                s.ended = Some(end.reason.clone());
                s.tampered = end.tampered;
                first = true;
            }
        });
        if first {
            let _ = self.notices.send(Notice::Ended(end.reason));
        }
    }

    /// Tells the customer's side of the detected attack, on the control stream: the only thing
    /// sent after it.
    async fn tell_tampered(&self) {
        let tell = async {
            let Some(control) = self.to_customer.upgrade() else {
                return;
            };
            let mut control = control.lock().await;
            if control.send(&Control::End(EndReason::Tampered)).await.is_ok()
                && control.finish().await.is_ok()
            {
                control.flushed(TELL_END).await;
            }
        };
        let _ = tokio::time::timeout(TELL_END, tell).await;
    }

    /// The customer's answer to a quick-access request, which follows the end on the same
    /// stream (`None`: no, or none).
    async fn quick_answer(&mut self) -> Option<QuickAccessGrant> {
        loop {
            match self.recv.recv::<Control>().await {
                Ok(Some(Control::QuickAccess(grant))) => return grant,
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

/// The customer's computer replied to a quick-access request.
fn replied(s: &mut State, reply: QuickAccessReply) {
    if let QuickAccessReply::Allowed(grant) = reply {
        s.quick_access = Some(grant);
    }
    s.quick_reply = Some(reply);
    s.quick_answers = s.quick_answers.saturating_add(1);
}

/// The customer's answer, after the session's end, to the request they were to be asked about
/// (`None`: no, or no answer).
fn answered(s: &mut State, grant: Option<QuickAccessGrant>) {
    s.quick_access = grant;
    s.quick_pending = false;
}
