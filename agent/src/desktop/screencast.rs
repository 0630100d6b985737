//! The screen-cast stream a portal hands out: PipeWire frames in shared memory, of which the
//! newest is kept. PipeWire's loop cannot leave the thread that made it, so the stream runs on
//! a thread of its own and hands frames over under a lock. A compositor sends a buffer only
//! when the screen changes (mutter 43 sends no damage metadata), so "a new buffer arrived" is
//! the change signal and the encoder's tile comparison finds what changed.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use pipewire as pw;
use pw::spa;
use spa::param::video::{VideoFormat, VideoInfoRaw};
use spa::pod::{ChoiceValue, Object, Pod, Property, Value};
use spa::utils::{Choice, ChoiceEnum, ChoiceFlags, Fraction, Id, Rectangle, SpaTypes};

use spa::buffer::meta::{MetaBitmap, MetaCursor};

use super::{CursorImage, DesktopError};

/// The largest side accepted from the compositor (the encoder's own limit is lower).
const MAX_SIDE: u32 = 16384;

/// One picture: rows of `width` BGRx pixels, `stride` bytes apart (the X11 capture layout).
#[derive(Debug, Default)]
pub struct Frame {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// The pixels.
    pub data: Vec<u8>,
}

/// How many pointer positions are kept for [`Stream::take_moves`].
const MAX_MOVES: usize = 64;

/// The largest pointer image taken from the compositor (the viewer's limit).
const MAX_CURSOR: u32 = ponte_e2e::screen::MAX_CURSOR as u32;

#[derive(Default)]
struct Latest {
    frame: Frame,
    /// Where the pointer is on the stream, once the compositor said (cursor metadata).
    pointer: Option<(i32, i32)>,
    /// The pointer's positions as the compositor reported them, oldest first (bounded).
    moves: std::collections::VecDeque<(i32, i32)>,
    /// The pointer's image, when it changed and was not taken yet.
    shape: Option<CursorImage>,
    /// How many frames arrived; 0 until the first.
    count: u64,
    /// Why the stream stopped, once it did.
    failed: Option<String>,
}

#[derive(Default)]
struct Shared {
    latest: Mutex<Latest>,
    changed: Condvar,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Latest)) {
        f(&mut self.latest.lock().unwrap_or_else(|e| e.into_inner()));
        self.changed.notify_all();
    }
}

/// Whether the session's PipeWire answers on its socket, found as libpipewire finds it
/// (`PIPEWIRE_REMOTE`, default `pipewire-0`, in `PIPEWIRE_RUNTIME_DIR` or `XDG_RUNTIME_DIR`);
/// why not, if it does not.
pub fn running() -> Result<(), String> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let name = var("PIPEWIRE_REMOTE").unwrap_or_else(|| "pipewire-0".into());
    let path = if std::path::Path::new(&name).is_absolute() {
        std::path::PathBuf::from(name)
    } else {
        let dir = var("PIPEWIRE_RUNTIME_DIR")
            .or_else(|| var("XDG_RUNTIME_DIR"))
            .ok_or("XDG_RUNTIME_DIR is not set")?;
        std::path::Path::new(&dir).join(name)
    };
    match std::os::unix::net::UnixStream::connect(&path) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// A running PipeWire stream of one screen-cast node.
pub struct Stream {
    shared: Arc<Shared>,
    stop: Option<pw::channel::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stream {
    /// Connects to PipeWire through `fd` (the portal's OpenPipeWireRemote) and streams `node`.
    pub fn start(fd: OwnedFd, node: u32) -> anyhow::Result<Stream> {
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = pw::channel::channel();
        let thread = std::thread::Builder::new().name("ponte-pipewire".into()).spawn({
            let shared = shared.clone();
            move || {
                if let Err(e) = run(fd, node, stopped, &shared) {
                    shared.update(|l| l.failed = Some(format!("{e:#}")));
                }
            }
        })?;
        Ok(Stream {
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Waits until the first frame arrived, at most `timeout`.
    pub fn wait_first(&self, timeout: Duration) -> Result<(), DesktopError> {
        let deadline = Instant::now() + timeout;
        let mut latest = self.shared.latest.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if latest.count > 0 {
                return Ok(());
            }
            if let Some(why) = &latest.failed {
                return Err(DesktopError::PipeWire(why.clone()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(DesktopError::PipeWire(format!(
                    "no picture within {} s",
                    timeout.as_secs()
                )));
            }
            latest = self
                .shared
                .changed
                .wait_timeout(latest, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Where the pointer is on the stream, if the compositor says (cursor metadata).
    pub fn pointer(&self) -> Option<(i32, i32)> {
        self.shared
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pointer
    }

    /// The pointer positions the compositor reported since the last call, oldest first.
    pub fn take_moves(&self) -> Vec<(i32, i32)> {
        let mut latest = self.shared.latest.lock().unwrap_or_else(|e| e.into_inner());
        latest.moves.drain(..).collect()
    }

    /// The pointer's image, if it changed since the last call.
    pub fn take_shape(&self) -> Option<CursorImage> {
        self.shared
            .latest
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .shape
            .take()
    }

    /// Swaps the newest frame into `into` when it is newer than frame number `seen`; returns
    /// its number, or `None` when nothing new arrived.
    pub fn newest(&self, seen: u64, into: &mut Frame) -> Result<Option<u64>, DesktopError> {
        let mut latest = self.shared.latest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &latest.failed {
            return Err(DesktopError::PipeWire(why.clone()));
        }
        if latest.count == seen {
            return Ok(None);
        }
        std::mem::swap(&mut latest.frame, into);
        Ok(Some(latest.count))
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // Fails only when the loop has already ended.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the stream's callbacks keep.
struct State {
    info: VideoInfoRaw,
    shared: Arc<Shared>,
    mainloop: pw::main_loop::MainLoopRc,
}

/// The stream's thread: runs PipeWire's loop until told to stop or the stream fails.
fn run(
    fd: OwnedFd,
    node: u32,
    stopped: pw::channel::Receiver<()>,
    shared: &Arc<Shared>,
) -> anyhow::Result<()> {
    pw::init();
    let mainloop = pw::main_loop::MainLoopRc::new(None).context("starting a PipeWire loop")?;
    let context = pw::context::ContextRc::new(&mainloop, None).context("a PipeWire context")?;
    let core = context
        .connect_fd_rc(fd, None)
        .context("connecting to PipeWire")?;
    let stream = pw::stream::StreamBox::new(
        &core,
        "ponte-agent",
        pw::properties::properties! {
            *pw::keys::MEDIA_TYPE => "Video",
            *pw::keys::MEDIA_CATEGORY => "Capture",
            *pw::keys::MEDIA_ROLE => "Screen",
        },
    )?;
    let state = State {
        info: VideoInfoRaw::default(),
        shared: shared.clone(),
        mainloop: mainloop.clone(),
    };
    let _listener = stream
        .add_local_listener_with_user_data(state)
        .state_changed(|_, st, _, new| {
            if let pw::stream::StreamState::Error(why) = new {
                st.shared.update(|l| l.failed = Some(why));
                st.mainloop.quit();
            }
        })
        .param_changed(|stream, st, id, param| {
            let Some(param) = param else { return };
            if id != spa::param::ParamType::Format.as_raw() || st.info.parse(param).is_err() {
                return;
            }
            let size = st.info.size();
            let (buffers, cursor) = (buffers(size.width, size.height), cursor_meta());
            let (Some(buffers), Some(cursor)) = (Pod::from_bytes(&buffers), Pod::from_bytes(&cursor)) else {
                return;
            };
            if let Err(e) = stream.update_params(&mut [buffers, cursor]) {
                st.shared
                    .update(|l| l.failed = Some(format!("PipeWire buffers: {e}")));
                st.mainloop.quit();
            }
        })
        .process(receive)
        .register()?;
    let format = format();
    let mut params = [Pod::from_bytes(&format).context("the stream format")?];
    stream.connect(
        spa::utils::Direction::Input,
        Some(node),
        pw::stream::StreamFlags::AUTOCONNECT | pw::stream::StreamFlags::MAP_BUFFERS,
        &mut params,
    )?;
    let ml = mainloop.clone();
    let _stop = stopped.attach(mainloop.loop_(), move |()| ml.quit());
    mainloop.run();
    let _ = stream.disconnect();
    Ok(())
}

/// Takes the pointer from every waiting buffer, and copies the newest picture into the shared
/// frame (older ones go back unread).
fn receive(stream: &pw::stream::Stream, st: &mut State) {
    let mut newest = None;
    while let Some(mut buffer) = stream.dequeue_buffer() {
        cursor(&buffer, &st.shared);
        if has_picture(&mut buffer) {
            newest = Some(buffer);
        }
    }
    let Some(mut buffer) = newest else { return };
    let Some(data) = buffer.datas_mut().first_mut() else {
        return;
    };
    let chunk = data.chunk();
    let (offset, stride) = (chunk.offset() as usize, chunk.stride());
    let size_px = st.info.size();
    let (w, h) = (size_px.width, size_px.height);
    if !matches!(st.info.format(), VideoFormat::BGRx | VideoFormat::BGRA)
        || w == 0
        || h == 0
        || w > MAX_SIDE
        || h > MAX_SIDE
    {
        return;
    }
    let row = w as usize * 4;
    let stride = usize::try_from(stride).ok().filter(|s| *s >= row).unwrap_or(row);
    let Some(bytes) = data.data() else { return };
    let needed = (h as usize - 1) * stride + row;
    let Some(pixels) = bytes.get(offset..).and_then(|b| b.get(..needed)) else {
        return;
    };
    st.shared.update(|l| {
        let frame = &mut l.frame;
        frame.width = u16::try_from(w).unwrap_or(u16::MAX);
        frame.height = u16::try_from(h).unwrap_or(u16::MAX);
        frame.stride = row;
        frame.data.clear();
        frame.data.reserve(row * h as usize);
        for y in 0..h as usize {
            frame.data.extend_from_slice(&pixels[y * stride..][..row]);
        }
        l.count += 1;
    });
}

/// The formats we take: BGRx (or BGRA), the X11 capture layout, any size and rate.
fn format() -> Vec<u8> {
    serialize(Object {
        type_: SpaTypes::ObjectParamFormat.as_raw(),
        id: spa::param::ParamType::EnumFormat.as_raw(),
        properties: vec![
            Property::new(
                spa::sys::SPA_FORMAT_mediaType,
                Value::Id(Id(spa::sys::SPA_MEDIA_TYPE_video)),
            ),
            Property::new(
                spa::sys::SPA_FORMAT_mediaSubtype,
                Value::Id(Id(spa::sys::SPA_MEDIA_SUBTYPE_raw)),
            ),
            Property::new(
                spa::sys::SPA_FORMAT_VIDEO_format,
                Value::Choice(ChoiceValue::Id(Choice(
                    ChoiceFlags::empty(),
                    ChoiceEnum::Enum {
                        default: Id(spa::sys::SPA_VIDEO_FORMAT_BGRx),
                        alternatives: vec![
                            Id(spa::sys::SPA_VIDEO_FORMAT_BGRx),
                            Id(spa::sys::SPA_VIDEO_FORMAT_BGRA),
                        ],
                    },
                ))),
            ),
            Property::new(
                spa::sys::SPA_FORMAT_VIDEO_size,
                Value::Choice(ChoiceValue::Rectangle(Choice(
                    ChoiceFlags::empty(),
                    ChoiceEnum::Range {
                        default: Rectangle {
                            width: 1920,
                            height: 1080,
                        },
                        min: Rectangle { width: 1, height: 1 },
                        max: Rectangle {
                            width: MAX_SIDE,
                            height: MAX_SIDE,
                        },
                    },
                ))),
            ),
            Property::new(
                spa::sys::SPA_FORMAT_VIDEO_framerate,
                Value::Choice(ChoiceValue::Fraction(Choice(
                    ChoiceFlags::empty(),
                    ChoiceEnum::Range {
                        default: Fraction { num: 30, denom: 1 },
                        min: Fraction { num: 0, denom: 1 },
                        max: Fraction { num: 1000, denom: 1 },
                    },
                ))),
            ),
        ],
    })
}

/// Whether a buffer carries a picture: an empty or corrupted chunk does not (a cursor-only
/// update, say).
fn has_picture(buffer: &mut pw::buffer::Buffer) -> bool {
    buffer.datas_mut().first().is_some_and(|data| {
        let chunk = data.chunk();
        chunk.size() > 0 && !chunk.flags().contains(spa::buffer::ChunkFlags::CORRUPTED)
    })
}

/// Takes the pointer's position and, when it changed, its image from a buffer's cursor
/// metadata.
fn cursor(buffer: &pw::buffer::Buffer, shared: &Shared) {
    // Id 0: no pointer on this stream (or nothing new about it).
    let Some(meta) = buffer
        .find_meta::<MetaCursor>()
        .filter(|c| c.is_valid() && c.id() != 0)
    else {
        return;
    };
    let position = meta.position();
    let at = (position.x, position.y);
    let shape = meta.bitmap().and_then(|bitmap| {
        let hot = meta.hotspot();
        cursor_image(bitmap, (hot.x, hot.y))
    });
    shared.update(|l| {
        if l.pointer != Some(at) {
            l.pointer = Some(at);
            if l.moves.len() == MAX_MOVES {
                l.moves.pop_front();
            }
            l.moves.push_back(at);
        }
        if shape.is_some() {
            l.shape = shape;
        }
    });
}

/// A cursor bitmap as the viewer takes it (premultiplied ARGB), if it is one we read and no
/// larger than the viewer accepts.
fn cursor_image(bitmap: &MetaBitmap, (hot_x, hot_y): (i32, i32)) -> Option<CursorImage> {
    let size = bitmap.size();
    let (w, h) = (size.width, size.height);
    if w == 0 || h == 0 || w > MAX_CURSOR || h > MAX_CURSOR {
        return None;
    }
    // Where red, green, blue and alpha sit in a pixel's four bytes.
    let [r, g, b, a] = match bitmap.format() {
        VideoFormat::RGBA => [0, 1, 2, 3],
        VideoFormat::BGRA => [2, 1, 0, 3],
        VideoFormat::ARGB => [1, 2, 3, 0],
        VideoFormat::ABGR => [3, 2, 1, 0],
        _ => return None,
    };
    let row = w as usize * 4;
    // libspa reads height × stride bytes as the compositor states them: only within the room
    // every negotiated metadata has (at least a MAX_CURSOR-sided bitmap), or not at all.
    let stride = usize::try_from(bitmap.stride())
        .ok()
        .filter(|s| *s >= row && s * h as usize <= (MAX_CURSOR * MAX_CURSOR * 4) as usize)?;
    let data = bitmap.bitmap_data()?;
    let argb = (0..h as usize)
        .flat_map(|y| {
            data.get(y * stride..y * stride + row)
                .unwrap_or_default()
                .chunks_exact(4)
        })
        .map(|p| u32::from_be_bytes([p[a], p[r], p[g], p[b]]))
        .collect::<Vec<u32>>();
    if argb.len() != (w * h) as usize {
        return None;
    }
    let clamp = |v: i32, side: u32| u16::try_from(v.clamp(0, side as i32 - 1)).unwrap_or(0);
    Some(CursorImage {
        width: u16::try_from(w).ok()?,
        height: u16::try_from(h).ok()?,
        hot_x: clamp(hot_x, w),
        hot_y: clamp(hot_y, h),
        argb,
    })
}

/// The pointer as metadata beside the picture, with room for at least the largest bitmap taken
/// (see [`cursor_image`]). mutter 43 offers one fixed size, that of a 384×384 bitmap: the range
/// must include it, or the metadata is silently not negotiated.
fn cursor_meta() -> Vec<u8> {
    let size = |side: usize| {
        i32::try_from(
            std::mem::size_of::<spa::sys::spa_meta_cursor>()
                + std::mem::size_of::<spa::sys::spa_meta_bitmap>()
                + side * side * 4,
        )
        .unwrap_or(i32::MAX)
    };
    serialize(Object {
        type_: SpaTypes::ObjectParamMeta.as_raw(),
        id: spa::param::ParamType::Meta.as_raw(),
        properties: vec![
            Property::new(
                spa::sys::SPA_PARAM_META_type,
                Value::Id(Id(spa::sys::SPA_META_Cursor)),
            ),
            Property::new(
                spa::sys::SPA_PARAM_META_size,
                int_range(size(384), size(MAX_CURSOR as usize), size(1024)),
            ),
        ],
    })
}

/// Buffers in memory we can map (no DMA-BUF: there is no GPU to read it with).
fn buffers(width: u32, height: u32) -> Vec<u8> {
    let memory = [spa::sys::SPA_DATA_MemFd, spa::sys::SPA_DATA_MemPtr].map(|t| 1i32 << t);
    serialize(Object {
        type_: SpaTypes::ObjectParamBuffers.as_raw(),
        id: spa::param::ParamType::Buffers.as_raw(),
        properties: vec![
            Property::new(spa::sys::SPA_PARAM_BUFFERS_buffers, int_range(8, 2, 16)),
            Property::new(spa::sys::SPA_PARAM_BUFFERS_blocks, Value::Int(1)),
            Property::new(
                spa::sys::SPA_PARAM_BUFFERS_size,
                Value::Int(i32::try_from(width * height * 4).unwrap_or(i32::MAX)),
            ),
            Property::new(
                spa::sys::SPA_PARAM_BUFFERS_stride,
                Value::Int(i32::try_from(width * 4).unwrap_or(i32::MAX)),
            ),
            Property::new(
                spa::sys::SPA_PARAM_BUFFERS_dataType,
                Value::Choice(ChoiceValue::Int(Choice(
                    ChoiceFlags::empty(),
                    ChoiceEnum::Flags {
                        default: memory[0],
                        flags: memory.to_vec(),
                    },
                ))),
            ),
        ],
    })
}

/// A choice of integers from `min` to `max`, preferring `default`.
fn int_range(default: i32, min: i32, max: i32) -> Value {
    Value::Choice(ChoiceValue::Int(Choice(
        ChoiceFlags::empty(),
        ChoiceEnum::Range { default, min, max },
    )))
}

fn serialize(object: Object) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    // Writing into memory cannot fail.
    let _ = spa::pod::serialize::PodSerializer::serialize(&mut out, &Value::Object(object));
    out.into_inner()
}
