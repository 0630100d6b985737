//! The assistant's commands in a session, typed at the prompt or read from a batch file:
//! `exec CMD`, `get REMOTE LOCAL`, `put LOCAL REMOTE`, `info`, `screen`, `screenshot FILE`,
//! `click X Y`, `type TEXT`, `chat TEXT`, `quit`.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use ponte_protocol::app::{Control, EndReason, Grants, Request, Response, Transfer};
use ponte_protocol::screen::InputEvent;
use ponte_session::files;
use ponte_session::{SecureSend, SecureStream, Session};

use crate::screen::{self, Progress, ScreenClient};

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Run a command on the customer's machine.
    Exec(String),
    /// Copy a remote path to a local one.
    Get {
        /// Path on the customer's machine.
        remote: String,
        /// Local destination.
        local: String,
        /// Replace an existing local destination.
        force: bool,
    },
    /// Copy a local path to a remote one.
    Put {
        /// Local source.
        local: String,
        /// Path on the customer's machine.
        remote: String,
        /// Replace an existing remote destination.
        force: bool,
    },
    /// Show system information.
    Info,
    /// Send a chat message.
    Chat(String),
    /// Interactive shell on the customer's computer (prompt only).
    Shell,
    /// Open a window showing the customer's screen.
    Screen,
    /// Save the customer's current screen as PNG.
    Screenshot(String),
    /// Click at a position on the customer's screen.
    Click {
        /// Horizontal position.
        x: u16,
        /// Vertical position.
        y: u16,
        /// X button (1 left, 2 middle, 3 right).
        button: u8,
    },
    /// Type text on the customer's computer.
    Type(String),
    /// End the session.
    Quit,
    /// Show the commands.
    Help,
}

/// Help text of the prompt.
pub const HELP: &str = "commands:
  shell                 open a terminal on the customer's computer (exit the shell to return)
  exec CMD              run CMD on the customer's computer (output and exit status)
  get [-f] REMOTE LOCAL copy a file or directory from the customer's computer
  put [-f] LOCAL REMOTE copy a file or directory to the customer's computer
  info                  show the customer's system information
  screen                open a window with the customer's screen (mouse and keyboard when allowed)
  screenshot FILE.png   save the customer's current screen as PNG
  click X Y [BUTTON]    click at X,Y on the customer's screen (left, middle or right)
  type TEXT             type TEXT on the customer's computer
  chat TEXT             send a chat message
  quit                  end the session";

/// Parses one line; `None` for blank lines and comments.
pub fn parse(line: &str) -> anyhow::Result<Option<Command>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (word, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let two = |rest: &str| -> anyhow::Result<(bool, String, String)> {
        let mut parts: Vec<&str> = rest.split_whitespace().collect();
        let force = parts.first() == Some(&"-f");
        if force {
            parts.remove(0);
        }
        match parts.as_slice() {
            [a, b] => Ok((force, (*a).to_owned(), (*b).to_owned())),
            _ => bail!("{word} needs two paths (no spaces in paths): {word} [-f] FROM TO"),
        }
    };
    Ok(Some(match word {
        "exec" if !rest.is_empty() => Command::Exec(rest.to_owned()),
        "exec" => bail!("exec needs a command"),
        "get" => {
            let (force, remote, local) = two(rest)?;
            Command::Get { remote, local, force }
        }
        "put" => {
            let (force, local, remote) = two(rest)?;
            Command::Put { local, remote, force }
        }
        "info" => Command::Info,
        "chat" if !rest.is_empty() => Command::Chat(rest.to_owned()),
        "chat" => bail!("chat needs a message"),
        "shell" => Command::Shell,
        "screen" => Command::Screen,
        "screenshot" if !rest.is_empty() => Command::Screenshot(rest.to_owned()),
        "screenshot" => bail!("screenshot needs a file name: screenshot FILE.png"),
        "click" => {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            let usage = "usage: click X Y [left|middle|right]";
            let (x, y, button) = match parts.as_slice() {
                [x, y] => (x, y, "left"),
                [x, y, b] => (x, y, *b),
                _ => bail!("{usage}"),
            };
            let button = match button {
                "left" | "1" => 1,
                "middle" | "2" => 2,
                "right" | "3" => 3,
                other => bail!("unknown button {other:?}; {usage}"),
            };
            Command::Click {
                x: x.parse().with_context(|| format!("bad X {x:?}; {usage}"))?,
                y: y.parse().with_context(|| format!("bad Y {y:?}; {usage}"))?,
                button,
            }
        }
        "type" if !rest.is_empty() => Command::Type(rest.to_owned()),
        "type" => bail!("type needs text"),
        "quit" | "exit" => Command::Quit,
        "help" | "?" => Command::Help,
        other => bail!("unknown command {other:?}; type help"),
    }))
}

/// A running session from the viewer's side.
pub struct Viewer {
    session: Session,
    control: SecureSend,
    /// Why the session ended, once it has.
    pub ended: Arc<Mutex<Option<String>>>,
    /// What the customer allows; `None` until the customer has answered the consent prompt.
    pub grants: Arc<Mutex<Option<Grants>>>,
    /// The shared screen, once asked for.
    screen: Option<ScreenClient>,
    /// What had arrived at the last screenshot.
    last_shot: Progress,
}

fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_owned());
    bar
}

impl Viewer {
    /// Wraps an established session; a task prints what arrives on the control stream.
    pub fn new(session: Session, control: SecureStream) -> Viewer {
        let SecureStream { send, mut recv, .. } = control;
        let ended = Arc::new(Mutex::new(None));
        let grants = Arc::new(Mutex::new(None));
        let (ended2, grants2, connection) = (ended.clone(), grants.clone(), session.connection().clone());
        tokio::spawn(async move {
            let reason = loop {
                match recv.recv::<Control>().await {
                    Ok(Some(Control::Grants(g))) => {
                        *grants2.lock().unwrap_or_else(|e| e.into_inner()) = Some(g);
                        eprintln!("[ponte] the customer allows: {g}");
                    }
                    Ok(Some(Control::Chat { text, .. })) => {
                        eprintln!(
                            "[ponte] {} customer: {}",
                            ponte_session::clock(),
                            text.chars().filter(|c| !c.is_control()).collect::<String>()
                        );
                    }
                    Ok(Some(Control::End(reason))) => break reason.to_string(),
                    Ok(None) => break "the customer's side closed the session".into(),
                    Err(e) => break format!("connection lost ({e})"),
                }
            };
            let mut ended = ended2.lock().unwrap_or_else(|e| e.into_inner());
            if ended.is_none() {
                eprintln!("[ponte] session ended: {reason}");
                *ended = Some(reason);
            }
            connection.close(0u32.into(), b"session ended");
        });
        Viewer {
            session,
            control: send,
            ended,
            grants,
            screen: None,
            last_shot: Progress::default(),
        }
    }

    /// Why the session ended, if it did.
    pub fn ended(&self) -> Option<String> {
        self.ended.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn request(&self, request: &Request) -> anyhow::Result<SecureStream> {
        let mut stream = self.session.open().await.map_err(|e| self.explain(e.into()))?;
        stream
            .send
            .send(request)
            .await
            .map_err(|e| self.explain(e.into()))?;
        match stream
            .recv
            .expect::<Response>()
            .await
            .map_err(|e| self.explain(e.into()))?
        {
            Response::Accepted => Ok(stream),
            Response::Refused(reason) => bail!("refused by the customer's computer: {reason}"),
        }
    }

    /// Replaces a transport error with the session's end reason when there is one.
    fn explain(&self, e: anyhow::Error) -> anyhow::Error {
        match self.ended() {
            Some(reason) => anyhow::anyhow!("session ended: {reason}"),
            None => e,
        }
    }

    /// Runs one command; `Ok(false)` means the session should end.
    pub async fn run(&mut self, command: Command) -> anyhow::Result<bool> {
        if let Some(reason) = self.ended() {
            bail!("session ended: {reason}");
        }
        match command {
            Command::Exec(cmd) => self.exec(&cmd).await?,
            Command::Get { remote, local, force } => self.get(&remote, &local, force).await?,
            Command::Put { local, remote, force } => self.put(&local, &remote, force).await?,
            Command::Info => self.info().await?,
            Command::Chat(text) => {
                self.control
                    .send(&Control::Chat {
                        text,
                        sent_unix_ms: ponte_session::now_unix() * 1000,
                    })
                    .await
                    .map_err(|e| self.explain(e.into()))?;
            }
            Command::Shell => bail!("shell needs an interactive terminal; in a batch use exec CMD"),
            Command::Screen => self.window().await?,
            Command::Screenshot(path) => self.screenshot(&path).await?,
            Command::Click { x, y, button } => {
                self.input(vec![
                    InputEvent::Move { x, y },
                    InputEvent::Button {
                        button,
                        pressed: true,
                    },
                    InputEvent::Button {
                        button,
                        pressed: false,
                    },
                ])
                .await?
            }
            Command::Type(text) => self.input(vec![InputEvent::Text(text)]).await?,
            Command::Help => println!("{HELP}"),
            Command::Quit => return Ok(false),
        }
        Ok(true)
    }

    /// Ends the session from the assistant's side.
    pub async fn quit(&mut self) {
        let already = {
            let mut ended = self.ended.lock().unwrap_or_else(|e| e.into_inner());
            let already = ended.is_some();
            ended.get_or_insert_with(|| "you ended the session".into());
            already
        };
        if !already {
            let _ = self.control.send(&Control::End(EndReason::AssistantEnded)).await;
            let _ = self.control.finish().await;
            self.control.flushed().await;
        }
        self.session.connection().close(0u32.into(), b"quit");
    }

    async fn exec(&self, cmd: &str) -> anyhow::Result<()> {
        let mut stream = self
            .request(&Request::Exec {
                command: cmd.to_owned(),
            })
            .await?;
        loop {
            match stream
                .recv
                .expect::<Transfer>()
                .await
                .map_err(|e| self.explain(e.into()))?
            {
                Transfer::Output { stderr: false, data } => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&data)?;
                    out.flush()?;
                }
                Transfer::Output { stderr: true, data } => std::io::stderr().lock().write_all(&data)?,
                Transfer::Exit(Some(0)) => return Ok(()),
                Transfer::Exit(Some(code)) => bail!("exit status {code}"),
                Transfer::Exit(None) => bail!("the command was killed by a signal"),
                _ => bail!("unexpected message from the customer's computer"),
            }
        }
    }

    async fn get(&self, remote: &str, local: &str, force: bool) -> anyhow::Result<()> {
        let local = Path::new(local);
        if !force && local.exists() {
            bail!("{} already exists (use get -f to replace it)", local.display());
        }
        let mut stream = self
            .request(&Request::Get {
                path: remote.to_owned(),
            })
            .await?;
        let bar = progress(0, remote);
        let bytes = files::receive_into(&mut stream.recv, local, force, &mut |n| {
            bar.inc(n);
        })
        .await
        .map_err(|e| self.explain(e.into()))?;
        bar.finish_and_clear();
        eprintln!(
            "[ponte] received {remote} → {} ({bytes} bytes, SHA-256 verified)",
            local.display()
        );
        Ok(())
    }

    async fn put(&self, local: &str, remote: &str, force: bool) -> anyhow::Result<()> {
        let source = Path::new(local);
        let (kind, total) = files::measure(source)
            .await
            .with_context(|| format!("reading {local}"))?;
        let request = Request::Put {
            path: remote.to_owned(),
            kind,
            total_bytes: total,
            overwrite: force,
        };
        let mut stream = self.request(&request).await?;
        let bar = progress(total, local);
        files::send_path(&mut stream.send, source, &mut |n| bar.inc(n))
            .await
            .map_err(|e| self.explain(e.into()))?;
        stream.send.finish().await.map_err(|e| self.explain(e.into()))?;
        bar.finish_and_clear();
        match stream
            .recv
            .expect::<Transfer>()
            .await
            .map_err(|e| self.explain(e.into()))?
        {
            Transfer::Done => {
                eprintln!(
                    "[ponte] sent {local} → {remote} ({total} bytes, SHA-256 verified by the customer's computer)"
                );
                Ok(())
            }
            Transfer::Failed(reason) => bail!("the customer's computer did not accept the files: {reason}"),
            _ => bail!("unexpected message from the customer's computer"),
        }
    }

    /// An interactive terminal on the customer's computer, in raw mode until the remote shell
    /// exits. `input` delivers the local keystrokes.
    pub async fn shell(&self, input: &mut tokio::sync::mpsc::Receiver<Vec<u8>>) -> anyhow::Result<()> {
        let (cols, rows) = crossterm::terminal::size().unwrap_or((80, 24));
        let mut stream = self.request(&Request::Shell { cols, rows }).await?;
        crossterm::terminal::enable_raw_mode().context("switching the terminal to raw mode")?;
        struct Restore;
        impl Drop for Restore {
            fn drop(&mut self) {
                let _ = crossterm::terminal::disable_raw_mode();
            }
        }
        let _restore = Restore;
        #[cfg(unix)]
        let mut resized = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
        loop {
            #[cfg(unix)]
            let resize = resized.recv();
            #[cfg(not(unix))]
            let resize = std::future::pending::<Option<()>>();
            tokio::select! {
                message = stream.recv.recv::<Transfer>() => match message.map_err(|e| self.explain(e.into()))? {
                    Some(Transfer::Output { data, .. }) => {
                        let mut out = std::io::stdout().lock();
                        out.write_all(&data)?;
                        out.flush()?;
                    }
                    Some(Transfer::Exit(_)) | None => return Ok(()),
                    Some(_) => bail!("unexpected message from the customer's computer"),
                },
                keys = input.recv() => match keys {
                    Some(bytes) => stream.send.send(&Transfer::Input(bytes)).await.map_err(|e| self.explain(e.into()))?,
                    None => {
                        stream.send.finish().await?;
                        return Ok(());
                    }
                },
                _ = resize => {
                    if let Ok((cols, rows)) = crossterm::terminal::size() {
                        stream.send.send(&Transfer::Resize { cols, rows }).await?;
                    }
                }
            }
        }
    }

    /// The screen stream, opened on first use (again if the last one ended).
    async fn screen(&mut self) -> anyhow::Result<&mut ScreenClient> {
        if self.screen.as_ref().is_some_and(|s| s.progress().ended.is_some()) {
            self.screen = None;
        }
        let client = match self.screen.take() {
            Some(client) => client,
            None => {
                let stream = self.request(&Request::Screen { max_fps: screen::FPS }).await?;
                self.last_shot = Progress::default();
                ScreenClient::start(stream)?
            }
        };
        Ok(self.screen.insert(client))
    }

    async fn screenshot(&mut self, path: &str) -> anyhow::Result<()> {
        let client = self.screen().await?;
        let now = client.refresh().await?;
        let (width, height) = client.save_png(Path::new(path))?;
        let last = std::mem::replace(&mut self.last_shot, now.clone());
        eprintln!(
            "[ponte] saved {path} ({width}×{height}; {} tiles in {} frames since the last screenshot)",
            now.tiles - last.tiles,
            now.frames - last.frames
        );
        Ok(())
    }

    async fn input(&self, events: Vec<InputEvent>) -> anyhow::Result<()> {
        let mut stream = self.request(&Request::Input(events)).await?;
        match stream
            .recv
            .expect::<Transfer>()
            .await
            .map_err(|e| self.explain(e.into()))?
        {
            Transfer::Done => Ok(()),
            Transfer::Failed(reason) => bail!("the customer's computer did not take the input: {reason}"),
            _ => bail!("unexpected message from the customer's computer"),
        }
    }

    async fn window(&mut self) -> anyhow::Result<()> {
        let grants = self.grants.clone();
        let client = self.screen().await?;
        crate::window::show(client, grants).await
    }

    async fn info(&self) -> anyhow::Result<()> {
        let mut stream = self.request(&Request::Info).await?;
        match stream
            .recv
            .expect::<Transfer>()
            .await
            .map_err(|e| self.explain(e.into()))?
        {
            Transfer::Info(facts) => {
                let width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
                for (k, v) in facts {
                    println!("{k:width$}  {v}");
                }
                Ok(())
            }
            _ => bail!("unexpected message from the customer's computer"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(
            parse("exec ls -la /tmp").unwrap(),
            Some(Command::Exec("ls -la /tmp".into()))
        );
        assert_eq!(
            parse("get -f a b").unwrap(),
            Some(Command::Get {
                remote: "a".into(),
                local: "b".into(),
                force: true
            })
        );
        assert_eq!(
            parse("put x y").unwrap(),
            Some(Command::Put {
                local: "x".into(),
                remote: "y".into(),
                force: false
            })
        );
        assert_eq!(parse("  # comment").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("quit").unwrap(), Some(Command::Quit));
        assert!(parse("get onlyone").is_err());
        assert!(parse("exec").is_err());
        assert!(parse("rm -rf /").is_err());
        assert_eq!(
            parse("screenshot a.png").unwrap(),
            Some(Command::Screenshot("a.png".into()))
        );
        assert_eq!(
            parse("click 10 20 right").unwrap(),
            Some(Command::Click {
                x: 10,
                y: 20,
                button: 3
            })
        );
        assert_eq!(
            parse("click 10 20").unwrap(),
            Some(Command::Click {
                x: 10,
                y: 20,
                button: 1
            })
        );
        assert!(parse("click 10").is_err());
        assert!(parse("click -1 5").is_err());
        assert!(parse("click 1 5 thumb").is_err());
        assert_eq!(
            parse("type hello world").unwrap(),
            Some(Command::Type("hello world".into()))
        );
    }
}
