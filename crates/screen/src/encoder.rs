//! The agent's side: finds the tiles that changed since the last frame sent and compresses them.

use std::time::Instant;

use ponte_e2e::app::MAX_MESSAGE;
use ponte_e2e::screen::{
    BYTES_PER_PIXEL, Codec, CopyRect, FrameStats, LossyRect, MAX_LOSSY_SIDE, MAX_WEBP_TILE_WIDTH, Quality,
    ScreenUpdate, TILE, Tile,
};

use crate::error::ScreenError;
use crate::image::{CAPTURE_BYTES_PER_PIXEL, Image};
use crate::lossy;

/// Room left in a message for the tile list's framing.
const MESSAGE_BUDGET: usize = MAX_MESSAGE - 256;

/// Per-tile framing overhead in a message (coordinates, codec, length).
const TILE_OVERHEAD: usize = 16;

/// One encoded frame, ready to send in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    /// The frame's number.
    pub number: u64,
    /// The messages: possibly `Size`, then `Copy`, `Lossy` and `Tiles` batches that each fit a
    /// message, then `Stats` and `FrameEnd`.
    pub updates: Vec<ScreenUpdate>,
    /// Exact tiles in the frame.
    pub tiles: u32,
    /// Lossy rectangles in the frame.
    pub lossy: u32,
    /// Moved rectangles in the frame.
    pub copies: u32,
    /// Bytes of pixel data (tiles and lossy images) in the frame.
    pub bytes: usize,
    /// Nothing on the screen changed since the frame before: this one only sharpens or
    /// completes the picture.
    pub still: bool,
}

impl EncodedFrame {
    /// Whether the frame answers refresh `sync` (the picture is exact after it).
    pub fn answers(&self, sync: u64) -> bool {
        self.updates
            .iter()
            .any(|u| matches!(u, ScreenUpdate::FrameEnd { sync: s, .. } if *s >= sync))
    }

    /// The frame's statistics, for the sender to complete with what it measured.
    pub fn stats_mut(&mut self) -> Option<&mut FrameStats> {
        self.updates.iter_mut().rev().find_map(|u| match u {
            ScreenUpdate::Stats(s) => Some(s),
            _ => None,
        })
    }
}

/// What the viewer has of a tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    /// The exact pixels.
    Exact,
    /// A lossy approximation of the current pixels (to be refined).
    Lossy,
    /// Older pixels (the tile changed and nothing of the change was sent yet).
    Stale,
}

#[derive(Debug, Clone, Copy)]
struct TileState {
    level: Level,
    /// Since when the tile has not been exact.
    since: Option<Instant>,
    /// For a stale tile: whether the viewer's pixels are exactly the older ones kept in the
    /// encoder (the tile was exact when it changed), so only what differs needs sending.
    over_exact: bool,
}

impl TileState {
    const EXACT: TileState = TileState {
        level: Level::Exact,
        since: None,
        over_exact: false,
    };

    /// Whether the viewer's pixels of the tile are exactly what the encoder keeps of it.
    fn viewer_exact(self) -> bool {
        self.level == Level::Exact || (self.level == Level::Stale && self.over_exact)
    }

    /// The less exact of two states (for content that a move mixed).
    fn worst(self, other: TileState) -> TileState {
        TileState {
            level: self.level.max(other.level),
            over_exact: self.viewer_exact() && other.viewer_exact(),
            since: match (self.since, other.since) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

/// A tile's place and size in pixels.
#[derive(Debug, Clone, Copy)]
struct Place {
    x: usize,
    y: usize,
    w: usize,
    h: usize,
}

/// Keeps the last frame sent and encodes the next one as what differs from it: moved
/// content as copies, text and UI as exact tiles, photo-like tiles lossy when the byte budget
/// cannot carry them exactly (refined to exact pixels in later frames, as the budget allows).
pub struct Encoder {
    width: u16,
    height: u16,
    /// The pixels the viewer has, or approximates, packed (stride = width * 4).
    previous: Vec<u8>,
    /// Per tile, row by row.
    states: Vec<TileState>,
    frame: u64,
    compressor: zstd::bulk::Compressor<'static>,
    /// Scratch: one tile's pixels in wire order.
    packed: Vec<u8>,
    /// Learned bytes per screen pixel of each rung of [`lossy::LADDER`].
    lossy_cost: [f64; lossy::LADDER.len()],
    /// Learned bytes per screen pixel of refinements (for sizing their runs).
    refine_cost: f64,
    /// What to give up first when the budget is short.
    quality: Quality,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("frame", &self.frame)
            .finish_non_exhaustive()
    }
}

/// zstd level for tiles. On 64×64 screen tiles level 3 is both smaller and faster than level
/// 1 (docs/BENCHMARKS.md § Screen), and half the size of lz4 at about twice its time.
pub const ZSTD_LEVEL: i32 = 3;

/// A tile whose zstd output is above this share of its raw size (percent) is photo-like:
/// text and UI compress to a few percent, photos and gradients barely.
const PHOTO_PERCENT: usize = 20;

/// Changed rectangles of at most this many pixels are never photo-like (a quarter tile).
const SMALL_CROP: usize = (TILE as usize * TILE as usize) / 4;

/// A changed text or UI tile that has waited this long for room in a frame goes lossy like a
/// photo (refined later): when the screen changes faster than the path carries it exactly,
/// the picture's age stays bounded instead of exact text queueing behind exact text. (In a
/// frame that moves content, at once.)
const LATE: std::time::Duration = std::time::Duration::from_millis(200);

/// Encodes per frame that do not pay before that kind of work stops for the frame: refinements
/// that do not fit the budget left, packed pictures of text no smaller than its tiles.
const TRIES: usize = 4;

/// Upper bound of one copy-rect's encoding, for splitting them into messages.
const COPY_BYTES: usize = 16;

/// Most tiles refined as one picture: [`MAX_WEBP_TILE_WIDTH`] over [`TILE`].
const MAX_RUN: usize = (MAX_WEBP_TILE_WIDTH / TILE) as usize;

/// First guess of a refinement's bytes per screen pixel (lossless WebP of a grainy photo).
const REFINE_COST: f64 = 0.75;

/// With at least this many changed tiles, look for moved content first.
const SCROLL_MIN_TILES: usize = 8;

/// One frame's work in progress: what it sends so far and the budget left.
struct Work {
    /// Bytes of pixel data the budget still allows.
    left: usize,
    copies: Vec<CopyRect>,
    rects: Vec<LossyRect>,
    tiles: Vec<Tile>,
    /// Per tile: what the viewer will have of it was set in this frame (so it is not refined
    /// in it again).
    touched: Vec<bool>,
    stats: FrameStats,
}

impl Work {
    fn new(budget: usize, tiles: usize) -> Work {
        Work {
            left: budget,
            copies: Vec::new(),
            rects: Vec::new(),
            tiles: Vec::new(),
            touched: vec![false; tiles],
            stats: FrameStats {
                budget: budget.min(u32::MAX as usize) as u32,
                ..FrameStats::default()
            },
        }
    }
}

impl Encoder {
    /// An encoder whose first frame is sent whole.
    pub fn new() -> Result<Encoder, ScreenError> {
        Ok(Encoder {
            width: 0,
            height: 0,
            previous: Vec::new(),
            states: Vec::new(),
            frame: 0,
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|_| ScreenError::Codec)?,
            packed: Vec::new(),
            lossy_cost: lossy::LADDER.map(|r| r.cost),
            refine_cost: REFINE_COST,
            quality: Quality::Balanced,
        })
    }

    /// Sets what to give up first when a frame's budget cannot carry every change exactly
    /// (from the next frame on).
    pub fn set_quality(&mut self, quality: Quality) {
        self.quality = quality;
    }

    /// Encodes `image` exactly as what changed since the last frame (no byte budget: for
    /// fast links). See [`Encoder::encode_within`].
    pub fn encode(&mut self, image: &Image<'_>, sync: u64) -> Result<Option<EncodedFrame>, ScreenError> {
        self.encode_within(image, sync, usize::MAX, Instant::now())
    }

    /// Encodes `image` as what changed since the last frame, in about `budget` bytes of pixel
    /// data: moved content first, then changed text and UI tiles exactly (oldest change
    /// first), then changed photo-like tiles and text tiles that waited [`LATE`] — exactly
    /// if they fit, else lossy at the best quality that fits — and with what is left, lossy tiles that did not change are refined
    /// to exact pixels. What does not fit waits for the next frame. At least one thing is sent
    /// when something changed, so a tiny budget slows the picture down but never stops it.
    ///
    /// Returns `None` when there is nothing to send. `sync` (non-zero) is answered in the
    /// frame's `FrameEnd` once the viewer's picture is exact; a frame is then sent even with
    /// nothing in it.
    pub fn encode_within(
        &mut self,
        image: &Image<'_>,
        sync: u64,
        budget: usize,
        now: Instant,
    ) -> Result<Option<EncodedFrame>, ScreenError> {
        image.check()?;
        let mut updates = Vec::new();
        if (image.width, image.height) != (self.width, self.height) {
            updates.push(self.resize(image, now));
        }
        let mut work = Work::new(budget, self.states.len());
        // The clock is read only for the statistics; `now` stays the frame's time.
        let diff_started = Instant::now();
        let changed = self.moves_and_changes(image, &mut work);
        work.stats.diff_us = diff_started.elapsed().as_micros().min(u32::MAX.into()) as u32;
        let still = changed.is_empty() && work.copies.is_empty();
        self.mark_stale(&changed, now);
        let photos = self.send_exact_within(image, now, &mut work)?;
        self.send_photos(image, photos, &mut work)?;
        self.refine(image, &mut work)?;
        Ok(self.finish(work, updates, still, sync, now))
    }

    /// Starts over at the size of `image`, every tile stale since `now`; returns the message
    /// announcing the size.
    fn resize(&mut self, image: &Image<'_>, now: Instant) -> ScreenUpdate {
        self.width = image.width;
        self.height = image.height;
        self.previous.clear();
        self.previous.resize(
            usize::from(image.width) * usize::from(image.height) * CAPTURE_BYTES_PER_PIXEL,
            0,
        );
        self.states.clear();
        let stale = TileState {
            level: Level::Stale,
            since: Some(now),
            over_exact: false,
        };
        self.states.resize(self.tiles_x() * self.tiles_y(), stale);
        ScreenUpdate::Size {
            width: image.width,
            height: image.height,
        }
    }

    /// Finds content that moved (when enough changed for a move to be likely), applies the
    /// moves to what the viewer has, and returns the tiles that still differ after them.
    fn moves_and_changes(&mut self, image: &Image<'_>, work: &mut Work) -> Vec<usize> {
        let changed = self.changed(image);
        if changed.len() < SCROLL_MIN_TILES {
            return changed;
        }
        let mut stripes = vec![false; self.tiles_x()];
        for &i in &changed {
            stripes[i % self.tiles_x()] = true;
        }
        work.copies = crate::scroll::vertical_moves(&self.previous, image, &stripes);
        if work.copies.is_empty() {
            return changed;
        }
        for rect in &work.copies {
            self.apply_copy(rect);
            work.stats.copied_pixels = work
                .stats
                .copied_pixels
                .saturating_add(u32::from(rect.width) * u32::from(rect.height));
        }
        self.changed(image)
    }

    /// Marks the `changed` tiles stale, remembering whether the viewer's pixels under them
    /// are exact and keeping the time of their oldest unsent change.
    fn mark_stale(&mut self, changed: &[usize], now: Instant) {
        for &i in changed {
            let s = &mut self.states[i];
            s.over_exact = s.viewer_exact();
            s.level = Level::Stale;
            s.since = s.since.or(Some(now));
        }
    }

    /// Sends changed text and UI tiles exactly, oldest change first, while the budget lasts.
    /// When the budget cannot carry them all as zstd tiles, bytes are what is short: runs of
    /// neighbouring ones in a tile row go as one lossless WebP picture where that is smaller
    /// (a page of text in about a quarter of the bytes, at three times zstd's time).
    /// Returns the tiles for [`Encoder::send_photos`]: photo-like ones, and text that does not
    /// fit and has waited [`LATE`] (or, while content moves, at once: a scroll keeps its pace
    /// and the text sharpens when it stops).
    fn send_exact_within(
        &mut self,
        image: &Image<'_>,
        now: Instant,
        work: &mut Work,
    ) -> Result<Vec<(usize, Tile)>, ScreenError> {
        let scrolling = !work.copies.is_empty();
        let mut stale: Vec<usize> = (0..self.states.len())
            .filter(|&i| self.states[i].level == Level::Stale)
            .collect();
        stale.sort_by_key(|&i| (self.states[i].since, i));
        let (mut photos, mut text) = (Vec::new(), Vec::new());
        for i in stale {
            let mut place = self.place(i);
            if self.states[i].over_exact {
                // Only the rectangle that differs from the viewer's exact pixels: a typed
                // glyph, or the rows a scroll uncovered.
                match self.difference(image, place) {
                    Some(part) => place = part,
                    None => {
                        // Changed back to what the viewer has.
                        self.keep(image, i, Level::Exact, &mut work.touched);
                        continue;
                    }
                }
            }
            let tile = self.encode_tile(image, place)?;
            // A small crop (a glyph, a caret) is text whatever its ratio: its exact bytes are
            // few, and zstd's own framing alone would exceed the share on a handful of pixels.
            let photo = place.w * place.h > SMALL_CROP
                && tile.data.len() * 100 > place.w * place.h * BYTES_PER_PIXEL * PHOTO_PERCENT;
            if photo {
                photos.push((i, tile));
            } else {
                text.push((i, tile));
            }
        }
        // Packing costs three times zstd's time: it stops at the first picture that does not
        // fit (the rest waits anyway) and after a few that are not smaller.
        let mut pack = text
            .iter()
            .map(|(_, t)| t.data.len() + TILE_OVERHEAD)
            .sum::<usize>()
            > work.left;
        let mut misses = 0;
        let mut text = text.into_iter().peekable();
        while let Some(first) = text.next() {
            let mut run = vec![first];
            while let Some(next) = text.next_if(|(i, t)| pack && self.continues(&run, *i, t)) {
                run.push(next);
            }
            let (indices, each): (Vec<usize>, Vec<Tile>) = run.into_iter().unzip();
            match pack.then(|| one_picture(image, &each)).flatten() {
                // Like a tile, the first picture goes even over the budget (it is smaller than
                // its at most nine text parts in zstd, each under a fifth of a raw tile).
                Some(picture)
                    if spend(
                        &mut work.left,
                        picture.data.len() + TILE_OVERHEAD,
                        work.tiles.is_empty(),
                    ) =>
                {
                    for &i in &indices {
                        self.keep(image, i, Level::Exact, &mut work.touched);
                    }
                    work.tiles.push(picture);
                    continue;
                }
                Some(_) => pack = false,
                None if pack => {
                    misses += 1;
                    pack = misses < TRIES;
                }
                None => {}
            }
            // One by one: what fits goes exact, the rest waits (or goes lossy).
            for (i, tile) in indices.into_iter().zip(each) {
                if spend(
                    &mut work.left,
                    tile.data.len() + TILE_OVERHEAD,
                    work.tiles.is_empty(),
                ) {
                    self.sent_exact(image, i, tile, work);
                } else if scrolling
                    || self.states[i]
                        .since
                        .is_some_and(|t| now.saturating_duration_since(t) >= LATE)
                {
                    photos.push((i, tile));
                }
            }
        }
        Ok(photos)
    }

    /// Sends `photos` exactly if all of them fit what is left of the budget, else as lossy
    /// previews at the best rung of the ladder expected to fit (learning that rung's cost).
    fn send_photos(
        &mut self,
        image: &Image<'_>,
        photos: Vec<(usize, Tile)>,
        work: &mut Work,
    ) -> Result<(), ScreenError> {
        if photos.is_empty() {
            return Ok(());
        }
        if self.quality == Quality::Sharp {
            // Exact only: as many as fit (one at least), the rest in the next frames.
            for (i, tile) in photos {
                if spend(
                    &mut work.left,
                    tile.data.len() + TILE_OVERHEAD,
                    work.tiles.is_empty(),
                ) {
                    self.sent_exact(image, i, tile, work);
                }
            }
            return Ok(());
        }
        let exact: usize = photos.iter().map(|(_, t)| t.data.len() + TILE_OVERHEAD).sum();
        if self.quality == Quality::Balanced && exact <= work.left {
            work.left -= exact;
            for (i, tile) in photos {
                self.sent_exact(image, i, tile, work);
            }
            return Ok(());
        }
        let pixels: usize = photos
            .iter()
            .map(|&(i, _)| self.place(i).w * self.place(i).h)
            .sum();
        // Fast skips the best rung: medium quality keeps motion smooth.
        let best = usize::from(self.quality == Quality::Fast);
        let rung = (best..lossy::LADDER.len())
            .find(|&r| (self.lossy_cost[r] * pixels as f64) as usize <= work.left)
            .unwrap_or(lossy::LADDER.len() - 1);
        let chosen: Vec<usize> = photos.iter().map(|&(i, _)| i).collect();
        let bytes = self.send_lossy(image, &chosen, rung, work)?;
        work.left = work.left.saturating_sub(bytes);
        self.lossy_cost[rung] = (self.lossy_cost[rung] + bytes as f64 / pixels.max(1) as f64) / 2.0;
        work.stats.quality = lossy::LADDER[rung].quality as u8;
        work.stats.scale = lossy::LADDER[rung].scale;
        Ok(())
    }

    /// Refines lossy tiles that stood still to exact pixels, oldest first, while the budget
    /// lasts; in runs of lossy neighbours in a tile row, as many as the budget is expected to
    /// carry.
    fn refine(&mut self, image: &Image<'_>, work: &mut Work) -> Result<(), ScreenError> {
        let mut lossy_tiles: Vec<usize> = (0..self.states.len())
            .filter(|&i| self.states[i].level == Level::Lossy && !work.touched[i])
            .collect();
        lossy_tiles.sort_by_key(|&i| (self.states[i].since, i));
        let mut misses = 0;
        for i in lossy_tiles {
            if work.left < TILE_OVERHEAD {
                break;
            }
            if work.touched[i] {
                // Refined with the run of a neighbour.
                continue;
            }
            let n = self.lossy_run(i, work);
            let (refined, n, cost) = self.refinement_within(image, i, n, work.left)?;
            // The first refinement goes out even over the budget when the frame is otherwise
            // empty (a noisy tile larger than a small budget must not block the rest forever);
            // a tile that does not fit lets smaller ones behind it go first.
            let anyway = work.tiles.is_empty() && work.rects.is_empty() && work.copies.is_empty();
            if !spend(&mut work.left, cost, anyway) {
                // Each try costs an encode: a few, then the rest waits for the next frame.
                misses += 1;
                if misses == TRIES {
                    break;
                }
                continue;
            }
            for k in i..i + n {
                self.keep(image, k, Level::Exact, &mut work.touched);
            }
            work.tiles.extend(refined);
        }
        Ok(())
    }

    /// How many tiles from lossy tile `i` to refine as one run: lossy neighbours in its tile
    /// row not yet touched in this frame, as many as the budget left is expected to carry.
    fn lossy_run(&self, i: usize, work: &Work) -> usize {
        let tile_pixels = usize::from(TILE) * usize::from(TILE);
        let wanted = (work.left as f64 / (self.refine_cost * tile_pixels as f64)) as usize;
        let mut n = 1;
        while n < wanted.min(MAX_RUN)
            && !(i + n).is_multiple_of(self.tiles_x())
            && self.states[i + n].level == Level::Lossy
            && !work.touched[i + n]
        {
            n += 1;
        }
        n
    }

    /// The refinement of the run of `n` tiles from `i`, shortened when it costs more than
    /// `left`; returns it with the run's length and its cost.
    fn refinement_within(
        &mut self,
        image: &Image<'_>,
        i: usize,
        mut n: usize,
        left: usize,
    ) -> Result<(Vec<Tile>, usize, usize), ScreenError> {
        let mut refined = self.refinement(image, i, n)?;
        let mut cost = self.learn_refinement(&refined);
        if cost > left && n > 1 {
            // Costlier than expected: as much of the run as fits by its mean cost, else the
            // tile alone (its neighbours may be the costly ones).
            n = (n * left / cost).max(1);
            refined = self.refinement(image, i, n)?;
            cost = self.learn_refinement(&refined);
            if cost > left && n > 1 {
                n = 1;
                refined = self.refinement(image, i, n)?;
                cost = self.learn_refinement(&refined);
            }
        }
        Ok((refined, n, cost))
    }

    /// Assembles the frame's messages after `updates` (a size, if any): its work in batches
    /// that each fit a message, then its statistics and its end, answering `sync` if the
    /// picture is exact. `None` if there is nothing to send.
    fn finish(
        &mut self,
        work: Work,
        updates: Vec<ScreenUpdate>,
        still: bool,
        sync: u64,
        now: Instant,
    ) -> Option<EncodedFrame> {
        let Work {
            copies,
            rects,
            tiles,
            mut stats,
            ..
        } = work;
        let exact = self.states.iter().all(|s| s.level == Level::Exact);
        let nothing = tiles.is_empty() && rects.is_empty() && copies.is_empty() && updates.is_empty();
        if nothing && (sync == 0 || !exact) {
            return None;
        }
        let mut frame = EncodedFrame {
            number: self.frame + 1,
            updates,
            tiles: tiles.len() as u32,
            lossy: rects.len() as u32,
            copies: copies.len() as u32,
            bytes: tiles.iter().map(|t: &Tile| t.data.len()).sum::<usize>()
                + rects.iter().map(|r: &LossyRect| r.data.len()).sum::<usize>(),
            still,
        };
        // A copy is a few bytes on the wire; many of them still must not overflow a message.
        batches(copies, |_| COPY_BYTES, ScreenUpdate::Copy, &mut frame.updates);
        batches(rects, |r| r.data.len(), ScreenUpdate::Lossy, &mut frame.updates);
        batches(tiles, |t| t.data.len(), ScreenUpdate::Tiles, &mut frame.updates);
        stats.inexact_tiles = self.states.iter().filter(|s| s.level != Level::Exact).count() as u32;
        stats.backlog_us = self.backlog_us(now);
        frame.updates.push(ScreenUpdate::Stats(stats));
        self.frame += 1;
        frame.updates.push(ScreenUpdate::FrameEnd {
            frame: self.frame,
            sync: if exact { sync } else { 0 },
            tiles: frame.tiles,
        });
        Some(frame)
    }

    /// How long the oldest change not yet sent has waited at `now`, microseconds.
    fn backlog_us(&self, now: Instant) -> u32 {
        let backlog = self
            .states
            .iter()
            .filter(|s| s.level == Level::Stale)
            .filter_map(|s| s.since)
            .min();
        backlog.map_or(0, |t| {
            now.duration_since(t).as_micros().min(u32::MAX.into()) as u32
        })
    }

    /// Whether the viewer's picture is not yet exactly the last image: tiles are lossy or
    /// changes did not fit the budget. The next frame has work even if the screen stands
    /// still.
    pub fn pending(&self) -> bool {
        // No picture yet: the first frame is the whole screen, changed or not.
        self.states.is_empty() || self.states.iter().any(|s| s.level != Level::Exact)
    }

    fn tiles_x(&self) -> usize {
        usize::from(self.width).div_ceil(usize::from(TILE))
    }

    fn tiles_y(&self) -> usize {
        usize::from(self.height).div_ceil(usize::from(TILE))
    }

    fn place(&self, i: usize) -> Place {
        let side = usize::from(TILE);
        let (x, y) = ((i % self.tiles_x()) * side, (i / self.tiles_x()) * side);
        Place {
            x,
            y,
            w: side.min(usize::from(self.width) - x),
            h: side.min(usize::from(self.height) - y),
        }
    }

    /// Whether tile `i`, whose changed part is `next`, continues `run` (changed parts of tiles
    /// left to right in one tile row) as its right neighbour, the rectangle holding them all
    /// staying within a WebP tile's width.
    fn continues(&self, run: &[(usize, Tile)], i: usize, next: &Tile) -> bool {
        let (first, last) = (&run[0], &run[run.len() - 1]);
        i == last.0 + 1
            && !i.is_multiple_of(self.tiles_x())
            && usize::from(next.x) + usize::from(next.width) - usize::from(first.1.x)
                <= usize::from(MAX_WEBP_TILE_WIDTH)
    }

    /// Tiles whose pixels differ from what the viewer has (or approximates).
    fn changed(&self, image: &Image<'_>) -> Vec<usize> {
        (0..self.states.len())
            .filter(|&i| {
                let p = self.place(i);
                (0..p.h).any(|r| image.row(p.y + r, p.x, p.w) != self.kept_row(p.y + r, p.x, p.w))
            })
            .collect()
    }

    /// What the viewer has (or approximates) of `width` pixels of row `y` from `x`.
    fn kept_row(&self, y: usize, x: usize, width: usize) -> &[u8] {
        let start = (y * usize::from(self.width) + x) * CAPTURE_BYTES_PER_PIXEL;
        &self.previous[start..start + width * CAPTURE_BYTES_PER_PIXEL]
    }

    /// The smallest rectangle of `p` holding every pixel where `image` differs from the
    /// pixels kept for the viewer; `None` if none does.
    fn difference(&self, image: &Image<'_>, p: Place) -> Option<Place> {
        let (mut x0, mut x1, mut rows) = (p.w, 0, None::<(usize, usize)>);
        for r in 0..p.h {
            let kept = self.kept_row(p.y + r, p.x, p.w);
            let now = image.row(p.y + r, p.x, p.w);
            if kept == now {
                continue;
            }
            let differ = |c: &usize| {
                let px = c * CAPTURE_BYTES_PER_PIXEL..(c + 1) * CAPTURE_BYTES_PER_PIXEL;
                kept[px.clone()] != now[px]
            };
            let Some(first) = (0..p.w).find(differ) else {
                continue;
            };
            let last = (first..p.w).rev().find(differ).unwrap_or(first);
            (x0, x1) = (x0.min(first), x1.max(last));
            rows = Some(rows.map_or((r, r), |(top, _)| (top, r)));
        }
        let (top, bottom) = rows?;
        Some(Place {
            x: p.x + x0,
            y: p.y + top,
            w: x1 + 1 - x0,
            h: bottom + 1 - top,
        })
    }

    /// Keeps what the viewer will have of tile `i`: the image's pixels at `level`.
    fn keep(&mut self, image: &Image<'_>, i: usize, level: Level, touched: &mut [bool]) {
        let p = self.place(i);
        let row_bytes = usize::from(self.width) * CAPTURE_BYTES_PER_PIXEL;
        for r in 0..p.h {
            let start = (p.y + r) * row_bytes + p.x * CAPTURE_BYTES_PER_PIXEL;
            self.previous[start..start + p.w * CAPTURE_BYTES_PER_PIXEL].copy_from_slice(image.row(
                p.y + r,
                p.x,
                p.w,
            ));
        }
        let s = &mut self.states[i];
        s.level = level;
        if level == Level::Exact {
            s.since = None;
        }
        touched[i] = true;
    }

    /// The exact pixels of the run of `n` tiles from tile `i` (in one tile row): as one
    /// lossless WebP picture if that is smaller than the tiles in zstd (see [`one_picture`]).
    fn refinement(&mut self, image: &Image<'_>, i: usize, n: usize) -> Result<Vec<Tile>, ScreenError> {
        let mut each = Vec::with_capacity(n);
        for k in i..i + n {
            each.push(self.encode_tile(image, self.place(k))?);
        }
        Ok(one_picture(image, &each).map_or(each, |t| vec![t]))
    }

    /// Bytes `refined` takes in a frame; learns its cost per pixel for sizing the next runs.
    fn learn_refinement(&mut self, refined: &[Tile]) -> usize {
        let cost: usize = refined.iter().map(|t| t.data.len() + TILE_OVERHEAD).sum();
        let pixels: usize = refined
            .iter()
            .map(|t| usize::from(t.width) * usize::from(t.height))
            .sum();
        self.refine_cost = (self.refine_cost * 3.0 + cost as f64 / pixels.max(1) as f64) / 4.0;
        cost
    }

    /// Sends changed tile `i` exactly as `tile`.
    fn sent_exact(&mut self, image: &Image<'_>, i: usize, tile: Tile, work: &mut Work) {
        self.keep(image, i, Level::Exact, &mut work.touched);
        work.tiles.push(tile);
    }

    /// Sends tiles `chosen` as lossy rectangles (runs of neighbouring tiles in a tile row) at
    /// `rung` of the ladder; returns the bytes of image data.
    fn send_lossy(
        &mut self,
        image: &Image<'_>,
        chosen: &[usize],
        rung: usize,
        work: &mut Work,
    ) -> Result<usize, ScreenError> {
        let mut sorted = chosen.to_vec();
        sorted.sort_unstable();
        let max_run = usize::from(MAX_LOSSY_SIDE / TILE);
        let mut bytes = 0;
        let mut k = 0;
        while k < sorted.len() {
            let first = sorted[k];
            let mut n = 1;
            while k + n < sorted.len()
                && sorted[k + n] == first + n
                && !(first + n).is_multiple_of(self.tiles_x())
                && n < max_run
            {
                n += 1;
            }
            let (a, b) = (self.place(first), self.place(first + n - 1));
            let made = lossy::lossy_rects(
                image,
                a.x,
                a.y,
                b.x + b.w - a.x,
                a.h,
                lossy::LADDER[rung],
                MESSAGE_BUDGET,
            )?;
            bytes += made.iter().map(|r| r.data.len() + TILE_OVERHEAD).sum::<usize>();
            work.rects.extend(made);
            for i in first..first + n {
                self.keep(image, i, Level::Lossy, &mut work.touched);
            }
            k += n;
        }
        Ok(bytes)
    }

    /// Moves the viewer's pixels in `previous` as the viewer will, and the tiles' states with
    /// them (a tile is only as exact as everything that moved into it).
    fn apply_copy(&mut self, rect: &CopyRect) {
        let (w, h) = (usize::from(rect.width), usize::from(rect.height));
        let (sx, sy, dx, dy) = (
            usize::from(rect.src_x),
            usize::from(rect.src_y),
            usize::from(rect.x),
            usize::from(rect.y),
        );
        let side = usize::from(TILE);
        let mut moved = Vec::new();
        for ty in dy / side..=(dy + h - 1) / side {
            for tx in dx / side..=(dx + w - 1) / side {
                let i = ty * self.tiles_x() + tx;
                let p = self.place(i);
                // The part of tile i the copy covers, and where it comes from.
                let (x0, x1) = (p.x.max(dx), (p.x + p.w).min(dx + w));
                let (y0, y1) = (p.y.max(dy), (p.y + p.h).min(dy + h));
                let covers_all = (x0, x1, y0, y1) == (p.x, p.x + p.w, p.y, p.y + p.h);
                let mut state = if covers_all {
                    TileState::EXACT
                } else {
                    self.states[i]
                };
                let (fx0, fy0) = (x0 + sx - dx, y0 + sy - dy);
                let (fx1, fy1) = (x1 - 1 + sx - dx, y1 - 1 + sy - dy);
                for fy in fy0 / side..=fy1 / side {
                    for fx in fx0 / side..=fx1 / side {
                        state = state.worst(self.states[fy * self.tiles_x() + fx]);
                    }
                }
                moved.push((i, state));
            }
        }
        for (i, state) in moved {
            self.states[i] = state;
        }
        let stride = usize::from(self.width) * CAPTURE_BYTES_PER_PIXEL;
        let rows: Box<dyn Iterator<Item = usize>> = if dy > sy {
            Box::new((0..h).rev())
        } else {
            Box::new(0..h)
        };
        for r in rows {
            let from = (sy + r) * stride + sx * CAPTURE_BYTES_PER_PIXEL;
            self.previous.copy_within(
                from..from + w * CAPTURE_BYTES_PER_PIXEL,
                (dy + r) * stride + dx * CAPTURE_BYTES_PER_PIXEL,
            );
        }
    }

    fn encode_tile(&mut self, image: &Image<'_>, p: Place) -> Result<Tile, ScreenError> {
        self.packed.clear();
        for r in 0..p.h {
            for px in image.row(p.y + r, p.x, p.w).chunks_exact(CAPTURE_BYTES_PER_PIXEL) {
                self.packed.extend_from_slice(&px[..BYTES_PER_PIXEL]);
            }
        }
        let compressed = self
            .compressor
            .compress(&self.packed)
            .map_err(|_| ScreenError::Codec)?;
        // Noise does not compress; the raw tile is then smaller and cheaper to decode.
        let (codec, data) = if compressed.len() < self.packed.len() {
            (Codec::Zstd, compressed)
        } else {
            (Codec::Raw, self.packed.clone())
        };
        // Tile coordinates and sides are below MAX_SIDE (checked), so they fit u16.
        Ok(Tile {
            x: p.x as u16,
            y: p.y as u16,
            width: p.w as u16,
            height: p.h as u16,
            codec,
            data,
        })
    }
}

/// The tiles `each` (parts of neighbouring tiles of one tile row, left to right) as one
/// lossless WebP picture of the rectangle holding them all, if that is smaller than they are:
/// WebP predicts where zstd on raw pixels cannot, and across tile borders — a run of four
/// photo tiles takes ~5 % fewer bytes than the four one by one, a page of text in runs of
/// eight a quarter of its zstd tiles. Pixels of the rectangle outside the parts did not change
/// (they are exact at the viewer), so sending them again is harmless.
fn one_picture(image: &Image<'_>, each: &[Tile]) -> Option<Tile> {
    let x = usize::from(each.first()?.x);
    let y = each.iter().map(|t| usize::from(t.y)).min()?;
    let right = each
        .iter()
        .map(|t| usize::from(t.x) + usize::from(t.width))
        .max()?;
    let bottom = each
        .iter()
        .map(|t| usize::from(t.y) + usize::from(t.height))
        .max()?;
    let (width, height) = (right.checked_sub(x)?, bottom - y);
    let parts: usize = each
        .iter()
        .map(|t| usize::from(t.width) * usize::from(t.height))
        .sum();
    // Sparse parts (a few pixels at different heights) would make a large picture of pixels
    // that did not change: not worth encoding.
    if width > usize::from(MAX_WEBP_TILE_WIDTH) || height > usize::from(TILE) || width * height > 2 * parts {
        return None;
    }
    let separately: usize = each.iter().map(|t| t.data.len() + TILE_OVERHEAD).sum();
    let webp = lossy::lossless_tile(image, x, y, width, height)?;
    // Within the screen and at most MAX_WEBP_TILE_WIDTH × TILE (checked), so every figure
    // fits u16.
    (webp.len() + TILE_OVERHEAD < separately && webp.len() <= MESSAGE_BUDGET).then_some(Tile {
        x: x as u16,
        y: y as u16,
        width: width as u16,
        height: height as u16,
        codec: Codec::Webp,
        data: webp,
    })
}

/// Takes `cost` from the budget if it fits (or if `anyway`, so a frame is never empty).
fn spend(left: &mut usize, cost: usize, anyway: bool) -> bool {
    if cost <= *left {
        *left -= cost;
        true
    } else if anyway {
        *left = 0;
        true
    } else {
        false
    }
}

/// Splits `items` into messages that fit.
fn batches<T>(
    items: Vec<T>,
    size: impl Fn(&T) -> usize,
    wrap: impl Fn(Vec<T>) -> ScreenUpdate,
    out: &mut Vec<ScreenUpdate>,
) {
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    for item in items {
        let n = size(&item) + TILE_OVERHEAD;
        if batch_bytes + n > MESSAGE_BUDGET && !batch.is_empty() {
            out.push(wrap(std::mem::take(&mut batch)));
            batch_bytes = 0;
        }
        batch_bytes += n;
        batch.push(item);
    }
    if !batch.is_empty() {
        out.push(wrap(batch));
    }
}
