//! The customer's screen on the assistant's side: a stream of tile updates rebuilt into a
//! [`Canvas`], acknowledged frame by frame so the agent paces itself to what arrives here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use ponte_e2e::app::Request;
use ponte_e2e::screen::{ScreenFeedback, ScreenUpdate};
use ponte_screen::{Applied, Canvas};
use ponte_session::SecureStream;
use tokio::sync::{mpsc, watch};

use crate::client::Link;

/// Frames per second the viewer asks for.
pub const FPS: u8 = 60;

/// How long a screenshot waits for the frame it asked for.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a monitor switch may take: on Wayland the agent starts another stream.
const SWITCH_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a screenshot waits for the first picture: on Wayland the customer's system asks
/// first, in a dialog the agent gives three minutes (then it ends the stream, saying why).
const FIRST_PICTURE_TIMEOUT: Duration = Duration::from_secs(200);

/// What has arrived so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Complete frames.
    pub frames: u64,
    /// Tiles in them.
    pub tiles: u64,
    /// The highest refresh answered.
    pub sync: u64,
    /// Why the stream ended, once it has.
    pub ended: Option<String>,
    /// Why the customer's desktop takes no input, if it takes none.
    pub view_only: Option<String>,
    /// The customer's monitors one may switch among (inert names; empty until the agent said).
    pub monitors: Vec<String>,
    /// The shared one, an index into `monitors`.
    pub monitor: usize,
}

/// A shared screen.
pub struct ScreenClient {
    /// The picture (shared with a window, if one is open).
    pub canvas: Arc<Mutex<Canvas>>,
    progress: watch::Receiver<Progress>,
    feedback: mpsc::Sender<ScreenFeedback>,
    next_sync: u64,
}

impl ScreenClient {
    /// Starts receiving on an accepted screen stream; after a resume of the session (`link`),
    /// asks for the screen again (`max_fps`) and goes on with a fresh full picture.
    pub(crate) fn start(stream: SecureStream, link: Link, max_fps: u8) -> anyhow::Result<ScreenClient> {
        let resumes = link.resumes();
        let SecureStream { send, mut recv, .. } = stream;
        let canvas = Arc::new(Mutex::new(Canvas::new()?));
        let (progress_tx, progress) = watch::channel(Progress::default());
        let (feedback, mut feedback_rx) = mpsc::channel::<ScreenFeedback>(256);
        // The sending half, replaced after a resume.
        let (halves, mut next_half) = mpsc::channel::<ponte_session::SecureSend>(1);
        let acks = feedback.clone();
        tokio::spawn(async move {
            let mut send = send;
            // What the new stream after a resume must hear again: the monitor and quality
            // chosen, and the latest refresh asked for (it may have gone down with the old
            // stream).
            let (mut monitor, mut quality, mut refresh) = (None, None, None);
            loop {
                tokio::select! {
                    message = feedback_rx.recv() => {
                        let Some(message) = message else { break };
                        match message {
                            ScreenFeedback::Monitor(_) => monitor = Some(message.clone()),
                            ScreenFeedback::Quality(_) => quality = Some(message.clone()),
                            ScreenFeedback::Refresh { .. } => refresh = Some(message.clone()),
                            _ => {}
                        }
                        // An ack or input lost with a cut stream is not repeated.
                        let _ = send.send(&message).await;
                    }
                    half = next_half.recv() => match half {
                        Some(half) => {
                            send = half;
                            for message in monitor.iter().chain(&quality).chain(&refresh) {
                                let _ = send.send(message).await;
                            }
                        }
                        None => break,
                    },
                }
            }
            let _ = send.finish().await;
        });
        let picture = canvas.clone();
        tokio::spawn(async move {
            let mut resumes = resumes;
            // Frames and tiles of the streams before a resume.
            let (mut base_frames, mut base_tiles) = (0, 0);
            let ended = loop {
                let update = match recv.recv::<ScreenUpdate>().await {
                    Ok(Some(u)) => u,
                    Ok(None) => break "the customer's computer stopped sharing the screen".to_owned(),
                    Err(e) => {
                        // Cut by a lost connection: ask again on the resumed session.
                        if !link.resumed_since(resumes).await {
                            break format!("the screen stream failed: {e}");
                        }
                        resumes = link.resumes();
                        match link.request(&Request::Screen { max_fps }).await {
                            Ok(stream) => {
                                let SecureStream {
                                    send, recv: fresh, ..
                                } = stream;
                                recv = fresh;
                                if halves.send(send).await.is_err() {
                                    break "the screen stream closed".to_owned();
                                }
                                let mut c = picture.lock().unwrap_or_else(|e| e.into_inner());
                                (base_frames, base_tiles) = (base_frames + c.frames, base_tiles + c.tiles);
                                match Canvas::new() {
                                    Ok(fresh) => *c = fresh,
                                    Err(e) => break format!("the screen could not start again: {e}"),
                                }
                                continue;
                            }
                            Err(e) => {
                                break format!("the screen could not start again after the resume: {e}");
                            }
                        }
                    }
                };
                let (applied, frames, tiles) = {
                    let mut c = picture.lock().unwrap_or_else(|e| e.into_inner());
                    let applied = c.apply(update);
                    (applied, base_frames + c.frames, base_tiles + c.tiles)
                };
                match applied {
                    Ok(Applied::Frame { frame, sync, .. }) => {
                        progress_tx.send_modify(|p| {
                            p.frames = frames;
                            p.tiles = tiles;
                            p.sync = p.sync.max(sync);
                        });
                        if acks.send(ScreenFeedback::Ack { frame }).await.is_err() {
                            break "the screen stream closed".to_owned();
                        }
                    }
                    Ok(Applied::Ended(why)) => {
                        break format!("the customer's computer stopped sharing the screen: {why}");
                    }
                    Ok(Applied::ViewOnly(why)) => {
                        progress_tx.send_modify(|p| p.view_only = Some(why.to_string()));
                    }
                    Ok(Applied::Monitors { names, current }) => {
                        progress_tx.send_modify(|p| {
                            p.monitors = names.iter().map(ToString::to_string).collect();
                            p.monitor = current;
                        });
                    }
                    Ok(_) => {}
                    Err(e) => break format!("the customer's computer sent a bad screen update: {e}"),
                }
            };
            progress_tx.send_modify(|p| p.ended = Some(ended));
        });
        Ok(ScreenClient {
            canvas,
            progress,
            feedback,
            next_sync: 0,
        })
    }

    /// What has arrived so far.
    pub fn progress(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// A receiver of progress (for a window).
    pub fn progress_receiver(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }

    /// A sender of input events (for a window).
    pub fn input_sender(&self) -> mpsc::Sender<ScreenFeedback> {
        self.feedback.clone()
    }

    /// Waits for a frame captured after now; returns the progress at that frame.
    pub async fn refresh(&mut self) -> anyhow::Result<Progress> {
        self.next_sync += 1;
        let sync = self.next_sync;
        if let Some(reason) = self.progress().ended {
            bail!("{reason}");
        }
        self.feedback
            .send(ScreenFeedback::Refresh { sync })
            .await
            .context("the screen stream closed")?;
        let limit = if self.progress.borrow().frames == 0 {
            FIRST_PICTURE_TIMEOUT
        } else {
            REFRESH_TIMEOUT
        };
        let late = "the customer's computer sent no frame in time";
        self.wait_until(limit, late, |p| p.sync >= sync).await
    }

    /// Waits at most `limit` until `done` holds: the progress then, else why the stream ended
    /// first, or `late`.
    async fn wait_until(
        &self,
        limit: Duration,
        late: &'static str,
        done: impl Fn(&Progress) -> bool,
    ) -> anyhow::Result<Progress> {
        let mut progress = self.progress.clone();
        let wait = progress.wait_for(|p| done(p) || p.ended.is_some());
        let p = tokio::time::timeout(limit, wait)
            .await
            .context(late)?
            .context("the screen stream closed")?
            .clone();
        match &p.ended {
            Some(reason) if !done(&p) => bail!("{reason}"),
            _ => Ok(p),
        }
    }

    /// The customer's monitors one may switch among, and the shared one, once the agent said
    /// (it does before the first picture).
    pub async fn monitors(&self) -> anyhow::Result<(Vec<String>, usize)> {
        let late = "the customer's computer did not say which monitors it shares";
        let p = self
            .wait_until(FIRST_PICTURE_TIMEOUT, late, |p| !p.monitors.is_empty())
            .await?;
        Ok((p.monitors, p.monitor))
    }

    /// Shares the customer's monitor `index` (of [`ScreenClient::monitors`]) instead; returns
    /// once the agent says it is shared.
    pub async fn switch(&mut self, index: usize) -> anyhow::Result<()> {
        let (monitors, current) = self.monitors().await?;
        if index >= monitors.len() {
            bail!(
                "the customer's computer shares {} monitor(s); there is no monitor {}",
                monitors.len(),
                index + 1
            );
        }
        if index == current {
            return Ok(());
        }
        let message = ScreenFeedback::Monitor(u8::try_from(index)?);
        self.feedback
            .send(message)
            .await
            .context("the screen stream closed")?;
        let late = "the customer's computer did not switch the monitor in time";
        self.wait_until(SWITCH_TIMEOUT, late, |p| p.monitor == index)
            .await
            .map(drop)
    }

    /// Saves the picture as PNG.
    pub fn save_png(&self, path: &std::path::Path) -> anyhow::Result<(u16, u16)> {
        let (width, height, rgb) = {
            let c = self.canvas.lock().unwrap_or_else(|e| e.into_inner());
            (c.width(), c.height(), c.rgb())
        };
        if width == 0 {
            bail!("no picture received yet");
        }
        let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), width.into(), height.into());
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&rgb)?;
        writer.finish()?;
        Ok((width, height))
    }
}
